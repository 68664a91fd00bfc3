"""Roles: what a name denotes (optimizer, scheduler, scaler, module, data loader, ...).

Roles come from constructors resolved through imports (``torch.optim.*``, ``torch.optim.lr_scheduler.*``,
``transformers.get_*_schedule*``, ``GradScaler``, ``DataLoader``), from ``self.x = ...`` attributes, from
tuple-unpacking wrappers (``accelerator.prepare``, ``amp.initialize``, ``fabric.setup``), from arguments
bound at same-module call sites (see ``Frame``), and, as weak evidence only, from names. The same object
is returned for the same binding wherever it is looked up, so identity comparisons work across functions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Tuple

import libcst as cst

from looplint.model.scopes import Assignment, ClassInfo, Function, Scopes, arg, dotted, keyword_arg, last_name, positional_args

OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
SCALER = "scaler"
MODULE = "module"
LOADER = "loader"
ENGINE = "engine"  # an object whose step() also clears gradients (DeepSpeed engine)
ACCELERATOR = "accelerator"  # accelerate / Fabric: backward(loss), prepare(...)
UNKNOWN = "unknown"
OTHER = "other"  # known, and none of the roles above

OPTIMIZER_CLASSES = frozenset(
    "SGD Adam AdamW Adamax Adagrad Adadelta RMSprop Rprop ASGD LBFGS NAdam RAdam SparseAdam Lion Adafactor "
    "LAMB Lamb FusedAdam FusedLAMB FusedSGD AdamW8bit Adam8bit PagedAdamW PagedAdamW8bit "
    "ZeroRedundancyOptimizer Muon Shampoo AdaBelief Ranger Novograd NovoGrad Yogi AdamP SGDP Adan "
    "SGDW AdamWScheduleFree SGDScheduleFree Prodigy DAdaptAdam DistributedOptimizer".split()
)
SCHEDULER_CLASSES = frozenset(
    "LRScheduler _LRScheduler StepLR MultiStepLR ExponentialLR CosineAnnealingLR CosineAnnealingWarmRestarts "
    "CyclicLR OneCycleLR LambdaLR MultiplicativeLR ReduceLROnPlateau LinearLR ConstantLR PolynomialLR "
    "SequentialLR ChainedScheduler".split()
)
SCALER_CLASSES = frozenset({"GradScaler", "ShardedGradScaler"})
LOADER_CLASSES = frozenset({"DataLoader"})
ACCELERATOR_CLASSES = frozenset({"Accelerator", "Fabric"})
# Wrappers that return their arguments (wrapped) in the same order.
PASS_THROUGH = frozenset({"prepare", "initialize", "setup", "setup_optimizers", "setup_module", "prepare_model", "prepare_optimizer"})
# Constructors of things that are certainly not optimizers although their names may suggest a role.
MODULE_PREFIXES = ("torch.nn.", "nn.")


def _tokens(name: str) -> List[str]:
    return [t for t in re.split(r"_+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()) if t]


def name_kind(name: Optional[str]) -> Optional[str]:
    """The role a name suggests (weak evidence)."""
    if not name:
        return None
    lower = name.lower()
    toks = _tokens(name)
    if lower in ("opts", "options", "option", "optimal"):
        return None
    if "optimizer" in lower or "optimiser" in lower or any(t in ("opt", "optim", "optims") for t in toks):
        return OPTIMIZER
    if re.fullmatch(r"opt(im)?[A-Z0-9]\w{0,3}", name) or re.fullmatch(r"opt(im)?_?[dg]", lower):
        return OPTIMIZER
    if "scheduler" in lower or any(t in ("sched", "lr_sched", "schedulers") for t in toks):
        return SCHEDULER
    if lower in ("scaler", "grad_scaler", "gradscaler", "amp_scaler", "scaler_") or (toks and toks[-1] == "scaler" and "loss" not in toks):
        return SCALER
    if "loader" in lower or lower in ("batches", "data_iter", "batch_iter", "train_iter", "dataiter"):
        return LOADER
    if lower in ("accelerator", "fabric"):
        return ACCELERATOR
    if lower in ("engine", "model_engine", "ds_engine", "deepspeed_engine"):
        return ENGINE
    return None


@dataclass(eq=False)
class Role:
    kind: str
    label: str  # how messages name it, e.g. ``optimizer`` or ``self.opt``
    evidence: str = "name"  # constructor | framework | name | none
    cls_name: Optional[str] = None  # e.g. LBFGS, StepLR
    ctor: Optional[cst.Call] = None
    scope: Optional[Function] = None
    modules: Optional[FrozenSet[str]] = None  # module keys whose parameters an optimizer holds
    modules_built: bool = False  # every one of those modules is an object built in this file
    key: str = ""
    # A scheduler name assigned on different paths: every recognised role it may hold, and whether some
    # assignment was unrecognised (then its kind is unknown; see schedulers.py).
    alternatives: Tuple["Role", ...] = ()
    partial: bool = False

    @property
    def is_optimizer(self) -> bool:
        return self.kind == OPTIMIZER

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Role {self.kind} {self.label} {self.cls_name or ''}>"


@dataclass(frozen=True)
class Frame:
    """A function being interpreted, with the roles its parameters are bound to at the call site."""

    fn: Function
    bindings: Tuple[Tuple[str, Optional[Role]], ...] = ()

    def bound(self, name: str):
        for k, v in self.bindings:
            if k == name:
                return True, v
        return False, None


class Roles:
    def __init__(self, scopes: Scopes):
        self.s = scopes
        self._memo: Dict[tuple, Role] = {}
        self._busy: set = set()
        self.local_optimizer_classes = {c.name for c in scopes.classes.values() if any(_last(b) in ("Optimizer",) or "optim.Optimizer" in b for b in c.bases)}
        self.local_scheduler_classes = {c.name for c in scopes.classes.values() if any(_last(b) in ("LRScheduler", "_LRScheduler") for b in c.bases)}
        self.local_module_classes = {
            c.name
            for c in scopes.classes.values()
            if any(b.startswith(MODULE_PREFIXES) or _last(b) in ("Module", "LightningModule", "Sequential") for b in c.bases)
        }

    # -- constructor classification --------------------------------------------------------------------
    def ctor_kind(self, call: cst.Call) -> Tuple[Optional[str], Optional[str]]:
        """(role kind, class name) for a constructor/factory call, or (None, None)."""
        q = self.s.qualify(call.func)
        if q is None:
            return None, None
        last = q.rsplit(".", 1)[-1]
        local = self.s.classes.get(last) if "." not in q else None
        if local is not None:  # a class of this module shadows any torch name
            if last in self.local_optimizer_classes:
                return OPTIMIZER, last
            if last in self.local_scheduler_classes:
                return SCHEDULER, last
            if last in self.local_module_classes:
                return MODULE, last
            methods = set(local.methods)
            if {"step", "zero_grad"} <= methods:
                return OPTIMIZER, last  # a hand-written optimizer or wrapper
            if "step" in methods and ({"scale", "unscale_"} & methods or name_kind(last) == SCALER):
                return SCALER, last  # a stand-in for GradScaler
            return OTHER, last  # a class of this module that is none of the above: not an optimizer
        if "lr_scheduler" in q or (last in SCHEDULER_CLASSES and "." not in q.replace(last, "")):
            return (SCHEDULER, last) if last[:1].isupper() or last.startswith("_") else (None, None)
        if last in SCHEDULER_CLASSES:
            return SCHEDULER, last
        if re.fullmatch(r"get_\w*schedule\w*|get_scheduler|create_scheduler\w*", last):
            return SCHEDULER, last
        if last in OPTIMIZER_CLASSES or (q.startswith("torch.optim.") and last[:1].isupper() and last != "Optimizer"):
            return OPTIMIZER, last
        if last in SCALER_CLASSES:
            return SCALER, last
        if last in LOADER_CLASSES:
            return LOADER, last
        if last in ACCELERATOR_CLASSES:
            return ACCELERATOR, last
        if q.startswith(MODULE_PREFIXES) and last[:1].isupper():
            return MODULE, last
        if last in ("optimizers",) and isinstance(call.func, cst.Attribute):
            return OPTIMIZER, None  # Lightning: self.optimizers()
        return None, None

    # -- resolution -----------------------------------------------------------------------------------
    def resolve(self, expr: cst.BaseExpression, frame: Frame) -> Optional[Role]:
        """The role of an expression; names and self-attributes always get a role (maybe UNKNOWN)."""
        if isinstance(expr, cst.Name):
            return self._name(expr.value, frame)
        if isinstance(expr, cst.Attribute):
            if isinstance(expr.value, cst.Name) and expr.value.value == "self":
                cls = _class_of(frame.fn)
                if cls is not None:
                    return self._attr(cls, expr.attr.value)
            d = dotted(expr)
            if d is not None:
                if expr.attr.value == "module":  # DDP / DataParallel wrapper
                    return self.resolve(expr.value, frame)
                return self._memo_role(("expr", id(frame.fn), d), lambda: self._weak(expr.attr.value, d))
            return None
        if isinstance(expr, cst.Call):
            kind, cls_name = self.ctor_kind(expr)
            if kind is not None:
                # a getter (``self.optimizers()``) hands back the same object every time it is called
                key = ("getter", id(_class_of(frame.fn) or frame.fn), _text(expr.func)) if cls_name is None else ("call", id(expr))
                return self._memo_role(key, lambda: self._from_ctor(kind, cls_name, expr, frame, _text(expr.func)))
            return None
        if isinstance(expr, cst.Subscript):
            base = self.resolve(expr.value, frame)
            if base is not None and base.kind in (OPTIMIZER, SCHEDULER):
                return base
            return None
        return None

    def _memo_role(self, key, make) -> Role:
        r = self._memo.get(key)
        if r is None:
            r = make()
            self._memo[key] = r
        return r

    def _weak(self, name: str, label: str) -> Role:
        kind = name_kind(name) or UNKNOWN
        return Role(kind, label, evidence="name" if kind != UNKNOWN else "none", key=label)

    def _name(self, name: str, frame: Frame) -> Optional[Role]:
        hit, role = frame.bound(name)
        if hit:
            return role
        fn: Optional[Function] = frame.fn
        while fn is not None:
            if name in fn.assigns:
                return self._assigned(fn, name)
            if name in fn.params:
                return self._memo_role(("param", id(fn), name), lambda: self._weak(name, name))
            fn = fn.parent
        if name in self.s.imports:
            return None
        return self._memo_role(("free", name), lambda: self._weak(name, name))

    def _attr(self, cls: ClassInfo, attr: str) -> Role:
        key = ("attr", id(cls), attr)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return self._weak(attr, "self." + attr)
        self._busy.add(key)
        try:
            role = self._from_assignments(cls.attrs.get(attr, []), attr, "self." + attr)
        finally:
            self._busy.discard(key)
        role.key = f"{cls.name}.self.{attr}"
        self._memo[key] = role
        return role

    def _assigned(self, fn: Function, name: str) -> Role:
        key = ("local", id(fn), name)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return self._weak(name, name)
        self._busy.add(key)
        try:
            role = self._from_assignments(fn.assigns[name], name, name)
        finally:
            self._busy.discard(key)
        role.key = f"{fn.qualname}:{name}"
        self._memo[key] = role
        return role

    def _from_assignments(self, assigns: List[Assignment], name: str, label: str) -> Role:
        found: List[Role] = []
        unknown = False
        for a in assigns:
            r = self._from_value(a, label)
            if r is _NONE:
                continue
            if r is None or r.kind == UNKNOWN:
                unknown = True
                continue
            found.append(r)
        kinds = {r.kind for r in found}
        if len(kinds) == 1:
            if unknown and found[0].evidence == "constructor" and found[0].kind == OPTIMIZER:
                # Reassigned from something unknown too: keep the kind, forget the details.
                return Role(OPTIMIZER, label, evidence="name")
            if found[0].kind == SCHEDULER:
                # ``s = accelerator.prepare(s)`` reads the name being assigned: that is the same scheduler
                found = [r for r in found if r.evidence in ("constructor", "framework") or r.label != label] or found
            role = found[0]
            if role.kind == SCHEDULER and (unknown or len({id(r) for r in found}) > 1):
                # different schedulers (or something unrecognised) on different paths: a role of its own
                # that remembers them all, so that its kind is judged on every one (schedulers.py)
                return Role(SCHEDULER, label, role.evidence, role.cls_name, role.ctor, role.scope,
                            alternatives=tuple(found), partial=unknown)
            return role  # the same object under every alias, so identity comparisons hold
        if len(kinds) > 1:
            return Role(UNKNOWN, label, evidence="none")
        return self._weak(name, label)

    def _from_value(self, a: Assignment, label: str):
        value = a.value
        frame = Frame(a.scope)
        if isinstance(value, cst.Name) and value.value == "None":
            return _NONE
        if isinstance(value, cst.IfExp):
            arms = [self._from_value(Assignment(b, a.scope, a.index, a.size), label) for b in (value.body, value.orelse)]
            known = [r for r in arms if r is not None and r is not _NONE and r.kind != UNKNOWN]
            if known and known[0].kind == SCHEDULER and len(arms) - arms.count(_NONE) > 1:
                # ``A(...) if flag else B(...)``: a scheduler role that remembers both (see _from_assignments)
                partial = len(known) < len(arms) - arms.count(_NONE)
                if partial or len({id(r) for r in known}) > 1:
                    return Role(SCHEDULER, label, known[0].evidence, known[0].cls_name, known[0].ctor,
                                known[0].scope, alternatives=tuple(known), partial=partial)
            for branch in (value.body, value.orelse):
                r = self._from_value(Assignment(branch, a.scope, a.index, a.size), label)
                if r is not None and r is not _NONE and r.kind != UNKNOWN:
                    return r
            return None
        if isinstance(value, (cst.Tuple, cst.List)) and a.index is not None:
            elts = value.elements
            if a.index < len(elts):
                return self._from_value(Assignment(elts[a.index].value, a.scope), label)
            return None
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in (
                "to", "cuda", "cpu", "float", "half", "double", "train", "eval") and isinstance(value.func.value, cst.Call):
            return self._from_value(Assignment(value.func.value, a.scope, a.index, a.size), label)
        if isinstance(value, cst.Call):
            func = value.func
            method = func.attr.value if isinstance(func, cst.Attribute) else None
            if a.index is not None:
                if method in PASS_THROUGH or (isinstance(func, cst.Name) and func.value in PASS_THROUGH):
                    q = self.s.qualify(func) or ""
                    if q.startswith("deepspeed.") and method == "initialize":
                        return Role(ENGINE if a.index == 0 else OPTIMIZER if a.index == 1 else UNKNOWN, label, "framework")
                    pos = positional_args(value)
                    if a.index < len(pos):
                        return self.resolve(pos[a.index], frame)
                    return None
                if method == "optimizers":
                    return Role(OPTIMIZER, label, "framework")
                return None
            if method in PASS_THROUGH and len(positional_args(value)) == 1:
                return self.resolve(positional_args(value)[0], frame)
            kind, cls_name = self.ctor_kind(value)
            if kind is None:
                return None
            return self._from_ctor(kind, cls_name, value, frame, label)
        if isinstance(value, (cst.Name, cst.Attribute)):
            return self.resolve(value, frame)
        if isinstance(value, cst.Subscript):
            return self.resolve(value, frame)
        return None

    def _from_ctor(self, kind: str, cls_name: Optional[str], call: cst.Call, frame: Frame, label: str) -> Role:
        evidence = "framework" if cls_name is None else "constructor"
        role = Role(kind, label, evidence, cls_name, call, frame.fn)
        if kind == OPTIMIZER and cls_name is not None:
            q = self.s.qualify(call.func) or ""
            if cls_name == "DistributedOptimizer" and ("distributed.optim" in q or self._uses_dist_autograd()):
                role.kind = "rpc-optimizer"  # gradients live in the distributed autograd context
            params = arg(call, 0, "params")
            role.modules = self.param_modules(params, frame)
            role.modules_built = role.modules is not None and self._params_built(params, frame)
        return role

    def _uses_dist_autograd(self) -> bool:
        return any("dist_autograd" in k or v.endswith("distributed.autograd") for k, v in self.s.imports.items())

    # -- module identity -------------------------------------------------------------------------------
    def module_key(self, expr: cst.BaseExpression, frame: Frame) -> Optional[str]:
        """A stable identity for a module expression (``self.model.encoder`` -> ``Trainer.self.model.encoder``)."""
        return self.module_ref(expr, frame)[0]

    def module_built(self, expr: cst.BaseExpression, frame: Frame) -> bool:
        """Whether the module is known to be an object built here (so another such object is a different one)."""
        return self.module_ref(expr, frame)[1]

    def module_ref(self, expr: cst.BaseExpression, frame: Frame) -> Tuple[Optional[str], bool]:
        d = dotted(expr)
        if d is None:
            if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in ("to", "cuda", "cpu", "train", "eval", "float", "half"):
                return self.module_ref(expr.func.value, frame)
            return None, False
        parts = d.split(".")
        while len(parts) > 1 and parts[-1] == "module":
            parts.pop()
        if parts[0] == "self" and len(parts) >= 2:
            cls = _class_of(frame.fn)
            if cls is None:
                return d, False
            base = self._attr(cls, parts[1])
            rest = parts[2:]
        else:
            base = self._name(parts[0], frame)
            rest = parts[1:]
            if base is None:
                return None, False
        return ".".join([base.key or base.label, *rest]), base.evidence == "constructor" and base.kind == MODULE

    def _params_built(self, params: cst.BaseExpression, frame: Frame) -> bool:
        built = [True]
        roles = self

        class V(cst.CSTVisitor):
            def visit_Call(self, n: cst.Call) -> Optional[bool]:
                if isinstance(n.func, cst.Attribute) and n.func.attr.value in ("parameters", "named_parameters"):
                    built[0] = built[0] and roles.module_built(n.func.value, frame)
                    return False
                return True

        params.visit(V())
        return built[0]

    def param_modules(self, params: Optional[cst.BaseExpression], frame: Frame, depth: int = 0) -> Optional[FrozenSet[str]]:
        """Module keys whose ``.parameters()`` feed an optimizer's params argument; None when unknown."""
        if params is None or depth > 2:
            return None
        keys: set = set()
        unknown = [False]
        roles = self

        class V(cst.CSTVisitor):
            def visit_Call(self, n: cst.Call) -> Optional[bool]:
                if isinstance(n.func, cst.Attribute) and n.func.attr.value in ("parameters", "named_parameters"):
                    k = roles.module_key(n.func.value, frame)
                    if k is None:
                        unknown[0] = True
                    else:
                        keys.add(k)
                    return False
                return True

        params.visit(V())
        if not keys and isinstance(params, cst.Name):
            fn: Optional[Function] = frame.fn
            while fn is not None and params.value not in fn.assigns:
                fn = fn.parent
            if fn is not None:
                out: set = set()
                for a in fn.assigns[params.value]:
                    got = self.param_modules(a.value, Frame(a.scope), depth + 1)
                    if got is None:
                        return None
                    out |= got
                return frozenset(out) or None
        if unknown[0] or not keys:
            return None
        return frozenset(keys)


_NONE = object()


def _last(q: str) -> str:
    return q.rsplit(".", 1)[-1]


def _text(expr: cst.CSTNode) -> str:
    d = dotted(expr) if isinstance(expr, cst.BaseExpression) else None
    return d or (last_name(expr) if isinstance(expr, cst.BaseExpression) else None) or "?"


def _class_of(fn: Function) -> Optional[ClassInfo]:
    f: Optional[Function] = fn
    while f is not None:
        if f.cls is not None:
            return f.cls
        f = f.parent
    return None


def covers(opt: Role, module_key: Optional[str]) -> bool:
    """Whether zeroing the module's gradients may zero the optimizer's (doubt says yes)."""
    if module_key is None or opt.modules is None:
        return True
    for m in opt.modules:
        if m == module_key or m.startswith(module_key + ".") or module_key.startswith(m + "."):
            return True
    return False
