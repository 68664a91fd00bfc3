"""Roles: what a name denotes (optimizer, scheduler, scaler, module, data loader, ...).

Roles come from constructors resolved through imports (``torch.optim.*``, ``torch.optim.lr_scheduler.*``,
``transformers.get_*_schedule*``, ``GradScaler``, ``DataLoader``), from ``self.x = ...`` attributes, from
tuple-unpacking wrappers (``accelerator.prepare``, ``amp.initialize``, ``fabric.setup``), from arguments
bound at same-module call sites (see ``Frame``), and, as weak evidence only, from names. The same object
is returned for the same binding wherever it is looked up, so identity comparisons work across functions.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Tuple

import libcst as cst

from looplint.model.walk import Walker, descendants

from looplint.model.scopes import Assignment, ClassInfo, Function, Scopes, arg, dotted, keyword_arg, last_name, positional_args
from looplint.model import frameworks
from looplint.model.values import PARAM, SAME_OBJECT, Def, Values, class_of

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
# Constructors of things that are certainly not optimizers although their names may suggest a role.
MODULE_PREFIXES = ("torch.nn.", "nn.")


# Imports that show a file is PyTorch code (torch itself or a framework built on it), and imports of other
# frameworks whose ``trainer.step()`` / ``optimizer.update()`` are no PyTorch optimizer.
TORCH_PACKAGES = frozenset(
    "torch torchvision torchaudio torchtext pytorch_lightning lightning lightning_fabric accelerate transformers "
    "deepspeed timm fastai ignite opacus apex diffusers peft detectron2 mmcv mmengine mmdet mmseg mmpretrain "
    "fairseq composer colossalai trl torchmetrics pytorch_metric_learning gpytorch botorch pyro skorch catalyst "
    "poutyne torch_geometric dgl kornia monai segmentation_models_pytorch lightly funasr espnet".split())
OTHER_PACKAGES = frozenset("mxnet gluonnlp gluoncv jax jaxlib flax optax haiku tensorflow keras tf_keras paddle "
                           "mindspore oneflow chainer theano trax cntk".split())
# Spellings that only PyTorch code uses, for files that import no framework at all (helpers handed objects).
_TORCH_SPELLINGS = re.compile(r"\.zero_grad\(|\.parameters\(\)|named_parameters\(|\bnn\.Module\b|\.state_dict\(|no_grad\(")


def torch_evidence(scopes: Scopes) -> bool:
    """Whether the file shows torch: it imports torch or a framework built on it, or it imports no other
    deep-learning framework and uses spellings only PyTorch code has."""
    heads = {q.lstrip(".").split(".")[0] for q in scopes.imports.values()}
    if heads & TORCH_PACKAGES:
        return True
    if heads & OTHER_PACKAGES:
        return False
    return bool(_TORCH_SPELLINGS.search(scopes.module_node.code)) or not heads


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
    # of ``modules``, the keys of the module expressions themselves (``modules`` also names each under its
    # owner's identity: ``state.model`` is ``Cls.self.model`` and ``train:state.model``)
    own_modules: Optional[FrozenSet[str]] = None
    key: str = ""
    # A scheduler name assigned on different paths: every recognised role it may hold, and whether some
    # assignment was unrecognised (then its kind is unknown; see schedulers.py).
    alternatives: Tuple["Role", ...] = ()
    partial: bool = False
    # an object a same-module factory built for one call site: the factory's frame at that call (its
    # parameters bound to the call's arguments), in which the constructor's arguments are read
    frame: Optional["Frame"] = None

    @property
    def is_optimizer(self) -> bool:
        return self.kind == OPTIMIZER

    def _replace_key(self, key: str) -> "Role":
        self.key = key
        return self

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Role {self.kind} {self.label} {self.cls_name or ''}>"


@dataclass(frozen=True)
class Frame:
    """A function being interpreted, with the roles its parameters are bound to at the call site."""

    fn: Function
    bindings: Tuple[Tuple[str, Optional[Role]], ...] = ()
    # the module identity (``Roles.module_key``) of each bound parameter's argument
    keys: Tuple[Tuple[str, Optional[str]], ...] = ()
    # the caller's test key of each parameter bound to a name (a flag handed down: ``if need_update:`` in
    # the callee tests what the caller's ``if not need_update:`` tests)
    tests: Tuple[Tuple[str, str], ...] = ()
    # the truth value of each parameter the call binds to a literal (``step(model, x, False)``) or leaves at
    # a literal default (``do_backward=True``), when the function never rebinds it: a test of the parameter
    # alone takes one arm
    literals: Tuple[Tuple[str, bool], ...] = ()
    # (parameter, argument, the caller's function) for each parameter the call binds to an expression that
    # is neither a name nor a literal (``update_grad=(i + 1) % k == 0``): a test of the parameter alone in
    # the callee is that expression's test, read where the call is written
    exprs: Tuple[Tuple[str, cst.BaseExpression, Function], ...] = ()
    # (name, role, the scope that binds it) for each name of an enclosing scope (a module's global) that
    # scope binds more than once, read here: the role of the bindings that reached the call from that
    # scope (``optimizer`` bound to a new optimizer between two ``train(model)`` calls of module code)
    free: Tuple[Tuple[str, Optional["Role"], Function], ...] = ()

    def bound(self, name: str):
        for k, v in self.bindings:
            if k == name:
                return True, v
        for k, v, _scope in self.free:
            if k == name:
                return True, v
        return False, None

    def bound_key(self, name: str):
        for k, v in self.keys:
            if k == name:
                return True, v
        return False, None


class Roles:
    def __init__(self, scopes: Scopes, values: Optional[Values] = None):
        self.s = scopes
        self.v = values if values is not None else Values(scopes)
        self.torch_evidence = torch_evidence(scopes)
        self._memo: Dict[tuple, Role] = {}
        self._keys: Dict[tuple, Optional[str]] = {}
        self._busy: set = set()
        self._ctor_kinds: Dict[Tuple[int, int, int], tuple] = {}  # ctor_kind's answers (with the objects asked of)
        self._built_in: Dict[int, Tuple[Function, cst.Call, Frame]] = {}  # per-call object -> its factory call
        self.local_optimizer_classes = {c.name for c in scopes.classes.values() if _optimizer_class(c)}
        self.local_scheduler_classes = {c.name for c in scopes.classes.values() if _scheduler_class(c)}
        self.local_module_classes = {c.name for c in scopes.classes.values() if _module_class(c)}

    # -- constructor classification --------------------------------------------------------------------
    def ctor_kind(self, call: cst.Call, fn: Optional[Function] = None, cls: Optional[ClassInfo] = None) -> Tuple[Optional[str], Optional[str]]:
        """(role kind, class name) for a constructor/factory call, or (None, None). With the scope ``fn``, a
        class passed in or given as a default (``opt_cls=torch.optim.LBFGS`` ... ``opt_cls(params)``) is
        read through the values service. With ``cls``, the call builds that class (of this module or an
        imported one). Asked again and again of the same calls (by the events, the interpreter, every
        analysis): answered once per call, scope and class (the syntax and the project do not change)."""
        key = (id(call), id(fn), id(cls))
        hit = self._ctor_kinds.get(key)
        if hit is not None and hit[0] is call and hit[1] is fn and hit[2] is cls:
            return hit[3]
        kind = self._ctor_kind(call, fn, cls)
        self._ctor_kinds[key] = (call, fn, cls, kind)  # the nodes kept: their ids are not reused meanwhile
        return kind

    def _ctor_kind(self, call: cst.Call, fn: Optional[Function], cls: Optional[ClassInfo]) -> Tuple[Optional[str], Optional[str]]:
        if cls is not None:
            return self.class_kind(cls)
        if fn is not None and isinstance(call.func, cst.Name):
            scope, binds = self.v.bindings(call.func.value, fn, call.func)
            if binds:
                classes = self._class_values(binds)
                if classes is not None:
                    kinds = {self.ctor_kind(call.with_changes(func=c)) for c in classes}
                    return kinds.pop() if len(kinds) == 1 else (None, None)
        q = self.s.qualify(call.func)
        if q is None:
            return None, None
        last = q.rsplit(".", 1)[-1]
        local = self.s.home_of(call.func).classes.get(last) if "." not in q else None
        if local is None and isinstance(call.func, (cst.Name, cst.Attribute)):
            found = self.s.imported(dotted(call.func) or "", fn)  # a class of another module of the project
            local = found if isinstance(found, ClassInfo) else None
        if local is not None:  # a class of this module (or the project) shadows any torch name
            return self.class_kind(local)
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
        if frameworks.OBJECTS.get(last) == ACCELERATOR:
            return ACCELERATOR, last
        if q.startswith(MODULE_PREFIXES) and last[:1].isupper():
            return MODULE, last
        if last in ("optimizers",) and isinstance(call.func, cst.Attribute):
            return OPTIMIZER, None  # Lightning: self.optimizers()
        return None, None

    def class_kind(self, cls: ClassInfo) -> Tuple[str, str]:
        """What instances of a class defined in the project are: an optimizer, scheduler or module by its
        bases; a hand-written optimizer or GradScaler stand-in by its methods; else OTHER (a writer, a
        timer: no torch object)."""
        last = cls.name
        if _optimizer_class(cls):
            return OPTIMIZER, last
        if _scheduler_class(cls):
            return SCHEDULER, last
        if _module_class(cls) or self._module_base(cls):
            return MODULE, last
        methods = set(cls.methods)
        if {"step", "zero_grad"} <= methods:
            return OPTIMIZER, last  # a hand-written optimizer or wrapper
        if "step" in methods and ({"scale", "unscale_"} & methods or name_kind(last) == SCALER):
            return SCALER, last  # a stand-in for GradScaler
        return OTHER, last  # a class of this module that is none of the above: not an optimizer

    def _module_base(self, cls: ClassInfo, depth: int = 0) -> bool:
        """An ``nn.Module`` through a base class defined beside it (``class Net(Base)``, ``class Base(nn.Module)``)."""
        if depth > 5:
            return False
        for b in cls.bases:
            base = (cls.home or self.s).classes.get(b) if "." not in b else None
            if base is not None and base is not cls and (_module_class(base) or self._module_base(base, depth + 1)):
                return True
        return False

    def _class_values(self, binds) -> Optional[List[cst.BaseExpression]]:
        """The class expressions a name bound to classes holds (parameter defaults and call-site arguments,
        assignments), when every one is a dotted name of a known constructor; else None."""
        found: List[cst.BaseExpression] = []
        for b in binds:
            if isinstance(b, Def) and b.kind == PARAM:
                args, complete = self.v.arguments(b.scope, b.name)
                if not complete:
                    return None
                found.extend(a for a, _w in args)
            elif isinstance(b, Assignment) and b.index is None:
                found.append(b.value)
            else:
                return None
        if not found or not all(dotted(c) is not None and self.ctor_kind(cst.Call(c))[0] is not None for c in found):
            return None
        return found

    # -- resolution -----------------------------------------------------------------------------------
    def resolve(self, expr: cst.BaseExpression, frame: Frame) -> Optional[Role]:
        """The role of an expression; names and self-attributes always get a role (maybe UNKNOWN)."""
        if isinstance(expr, cst.Name):
            return self._name(expr.value, frame, expr)
        if isinstance(expr, cst.Attribute):
            if isinstance(expr.value, cst.Name) and expr.value.value == "self":
                cls = class_of(frame.fn)
                if cls is not None:
                    return self._attr(cls, expr.attr.value)
            d = dotted(expr)
            if d is not None:
                if expr.attr.value == "module":  # DDP / DataParallel wrapper
                    return self.resolve(expr.value, frame)
                if isinstance(expr.value, cst.Name):
                    cls = self.v.instance_class(expr.value, frame.fn)
                    if cls is not None:  # ``state.optimizer`` of ``state = TrainState()``
                        return self._attr(cls, expr.attr.value)
                return self._memo_role(("expr", id(frame.fn), d), lambda: self._weak(expr.attr.value, d))
            return None
        if isinstance(expr, cst.Call):
            kind, cls_name = self.ctor_kind(expr, frame.fn)
            if kind is not None:
                # a getter (``self.optimizers()``) hands back the same object every time it is called
                key = ("getter", id(class_of(frame.fn) or frame.fn), _text(expr.func)) if cls_name is None else ("call", id(expr))
                return self._memo_role(key, lambda: self._from_ctor(kind, cls_name, expr, frame, _text(expr.func)))
            return None
        if isinstance(expr, cst.Subscript):
            stored = self.v.entries(expr, frame.fn)
            if stored:
                # the same entry is the same object wherever it is read
                found = [self._memo_role(("entry", id(v)), lambda v=v, w=where: self._from_value(Assignment(v, w), _text(expr)))
                         for v, where in stored]
                known = {id(r): r for r in found if r is not None and r is not _NONE}
                if len(known) == 1 and len(found) == len(stored):
                    return next(iter(known.values()))
            base = self.resolve(expr.value, frame)
            if base is not None and base.kind in (OPTIMIZER, SCHEDULER):
                return base
            return None
        return None

    def argument(self, expr: cst.BaseExpression, frame: Frame) -> Optional[Role]:
        """The role of an argument a call passes: a name or attribute chain, a container's entry
        (``make_step(opts[0])``) or an object built in place; any other expression has none."""
        return self.resolve(expr, frame) if _is_reference(expr) else None

    def _memo_role(self, key, make) -> Role:
        r = self._memo.get(key)
        if r is None:
            r = make()
            self._memo[key] = r
        return r

    def _weak(self, name: str, label: str) -> Role:
        """The role a name suggests: only in a file that shows torch (an MXNet ``trainer`` or an optax
        ``optimizer`` is no PyTorch optimizer)."""
        kind = (name_kind(name) if self.torch_evidence else None) or UNKNOWN
        return Role(kind, label, evidence="name" if kind != UNKNOWN else "none", key=label)

    def _name(self, name: str, frame: Frame, at: Optional[cst.Name] = None) -> Optional[Role]:
        hit, role = frame.bound(name)
        if hit:
            return role
        scope, binds = self.v.bindings(name, frame.fn, at)
        if scope is None:
            if name in self.s.imports:
                return None
            return self._memo_role(("free", name), lambda: self._weak(name, name))
        assigns = [b for b in binds if isinstance(b, Assignment)]
        if assigns:
            return self._assigned(scope, name, assigns)
        if any(isinstance(b, Def) and b.kind == PARAM for b in binds):
            return self._param_role(scope, name)
        return self._memo_role(("bound", id(scope), name), lambda: self._weak(name, name))

    def _param_role(self, fn: Function, name: str) -> Role:
        """An unbound parameter: the role of the argument every same-module call site passes (when they all
        agree), else what its name suggests."""
        key = ("param", id(fn), name)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return self._weak(name, name)
        self._busy.add(key)
        try:
            role = None
            if self.v.call_sites(fn):
                args, complete = self.v.arguments(fn, name)
                found = {id(r): r for r in (self.argument(a, Frame(where)) for a, where in args)}
                if complete and len(found) == 1:
                    role = next(iter(found.values()))
            if role is None or role.kind == UNKNOWN:
                role = self._weak(name, name)._replace_key(f"{fn.qualname}:{name}")
        finally:
            self._busy.discard(key)
        self._memo[key] = role
        return role

    def _attr(self, cls: ClassInfo, attr: str) -> Role:
        key = ("attr", id(cls), attr)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return self._weak(attr, "self." + attr)
        self._busy.add(key)
        try:
            role = self._from_assignments(self.v.attribute_assignments(cls, attr), attr, "self." + attr)
        finally:
            self._busy.discard(key)
        role.key = f"{cls.name}.self.{attr}"
        self._memo[key] = role
        return role

    def assigned(self, fn: Function, name: str, assigns: List[Assignment]) -> Role:
        """The role of ``fn``'s local ``name`` where only ``assigns`` reach (one object per set of them)."""
        return self._assigned(fn, name, assigns)

    def _assigned(self, fn: Function, name: str, assigns: Optional[List[Assignment]] = None) -> Role:
        """The role of a local name from the assignments that reach a read of it (all of them when the
        read is not known): the same assignments give the same object."""
        assigns = fn.assigns[name] if assigns is None else assigns
        key = ("local", id(fn), name, frozenset(id(a) for a in assigns))
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return self._weak(name, name)
        self._busy.add(key)
        try:
            role = self._from_assignments(assigns, name, name)
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
            method = last_name(func)
            local = self.v.resolve_callee(func, frame.fn, classes=False)[0] is not None
            wrap = frameworks.wrapper(method, self.s.qualify(func) or "") if not local else None
            if wrap is not None:
                return self._unwrapped(value, wrap, a.index, frame, label)
            if a.index is not None:
                if method == "optimizers" and isinstance(func, cst.Attribute):
                    return Role(OPTIMIZER, label, "framework")
                factory = self._factory_result(value, a.index, frame)
                return factory
            factory = self._factory_result(value, None, frame)
            if factory is not None:
                return factory
            kind, cls_name = self.ctor_kind(value, frame.fn)
            if kind is None:
                return None
            # one object per constructor call, however it is reached (a name, a factory's return, an entry)
            return self._memo_role(("call", id(value)), lambda: self._from_ctor(kind, cls_name, value, frame, label))
        if isinstance(value, (cst.Name, cst.Attribute)):
            if a.index is not None:
                return self._element_of(value, a.index, frame, label)
            return self.resolve(value, frame)
        if isinstance(value, cst.Subscript):
            return self.resolve(value, frame)
        return None

    def _element_of(self, container: cst.BaseExpression, index: int, frame: Frame, label: str) -> Optional[Role]:
        """The object at ``index`` of a container a tuple assignment unpacks (``opt_a, opt_b = optims``):
        the element of the literal list or tuple that every binding of the container holds (for a
        parameter, every call site's argument), when they agree; else unknown. The container's own role,
        read from its name, is no element's: both names would be one object."""
        sources = None
        if isinstance(container, cst.Name):
            scope, binds = self.v.bindings(container.value, frame.fn, container)
            if scope is not None and len(binds) == 1 and isinstance(binds[0], Def) and binds[0].kind == PARAM:
                args, complete = self.v.arguments(scope, container.value, used_default=True)
                sources = args if complete else None
            else:
                sources = self.v.assigned_values(container, frame.fn)
        found = []
        for v, where in sources or ():
            elts = v.elements if isinstance(v, (cst.Tuple, cst.List)) else ()
            if index >= len(elts) or any(isinstance(e, cst.StarredElement) for e in elts[:index + 1]):
                return None
            found.append(self._from_value(Assignment(elts[index].value, where), label))
        if found and all(r is not None and r is found[0] for r in found):
            return found[0]
        return None

    def _unwrapped(self, call: cst.Call, wrap, index: Optional[int], frame: Frame, label: str):
        """The object a framework wrapper returns at ``index`` (see frameworks.py): the argument it wraps,
        or an object of the framework's own (a DeepSpeed engine)."""
        if index is None:
            pos = positional_args(call)
            return self.resolve(pos[0], frame) if len(pos) == 1 and not wrap.roles else None
        if index < len(wrap.roles) and wrap.roles[index] == ENGINE:
            return Role(ENGINE, label, "framework")
        source = None
        if wrap.positions is None:
            pos = positional_args(call)
            source = pos[index] if index < len(pos) else None
        elif index < len(wrap.positions):
            where = wrap.positions[index]
            if isinstance(where, int):
                pos = positional_args(call)
                source = pos[where] if where < len(pos) else None
            else:
                source = keyword_arg(call, where)
        if source is not None:
            return self.resolve(source, frame)
        if index < len(wrap.roles) and wrap.roles[index] == OPTIMIZER:
            return Role(OPTIMIZER, label, "framework")
        return None

    def _factory_result(self, call: cst.Call, index: Optional[int], frame: Frame):
        """What a same-module factory returns (``model, opt = build(cfg)``), when every return agrees (a
        ``return None`` aside: what is used as that object is not None); the same object for every caller
        (the factory runs once per call, but its roles are one)."""
        callee, _b = self.v.resolve_callee(call.func, frame.fn)
        if callee is None or callee.is_module or callee.cls is not None and callee.name == "__init__":
            return None
        key = ("factory", id(call), index)
        if key in self._memo:
            return self._memo[key]
        if key in self._busy:
            return None
        self._busy.add(key)
        try:
            found = []
            made = True  # every value returned is an object this call of the factory builds
            for r in self.v.returned(callee):
                v = self.v._element(r, index, len(r.elements) if isinstance(r, (cst.Tuple, cst.List)) else None,
                                    callee) if index is not None else r
                if v is None:
                    return None
                got = self._from_value(Assignment(v, callee), self._label_of(v))
                if got is _NONE:
                    continue  # ``return None`` on one path (``make_sched`` for a constant rate): no object there
                if got is None or got.kind == UNKNOWN:
                    return None
                found.append(got)
                made = made and self.v.made_here(v, callee)
            got = found[0] if found and len({id(r) for r in found}) == 1 else None
            if got is not None and (got.ctor is not None and got.evidence == "constructor" and _within(got.scope, callee)
                                    or got.ctor is None and made):
                got = self._per_call(got, callee, call, frame)
            self._memo[key] = got
            return got
        finally:
            self._busy.discard(key)

    def _per_call(self, role: Role, callee: Function, call: cst.Call, caller: Frame) -> Role:
        """The object one call of a factory builds: a copy of the constructor's role whose arguments are
        read in the factory's frame for this call (``make_optimizer(G)`` and ``make_optimizer(D)`` build two
        optimizers, over G's and D's parameters)."""
        memo = ("per-call", id(call), id(role))
        if memo in self._memo:
            return self._memo[memo]
        keys = [(name, self.module_key(value, caller) or self.fresh_module_key(value))
                for name, value in self.v.parameters_bound(callee, call).items()]
        site = Frame(callee, (), tuple(keys))
        clone = copy.copy(role)
        clone.frame = site
        if clone.kind == OPTIMIZER and role.ctor is not None:
            clone.modules, clone.own_modules = self.param_module_keys(arg(role.ctor, 0, "params"), site)
        self._memo[memo] = clone
        self._built_in[id(clone)] = (callee, call, caller)
        return clone

    def in_frame(self, role: Optional[Role], frame: Frame, expr: Optional[cst.BaseExpression] = None) -> Optional[Role]:
        """An optimizer built in the function a frame runs, over modules that function is handed, as one run
        of it builds it: holding the modules this frame binds. ``optimizer = Adam(net.parameters())`` in
        ``fit(net, ...)`` (the role's constructor is read in the frame), or ``optimizer = make(net.parameters())``
        (``expr``, the name read, is bound once in the frame to a call handed those parameters and no
        others: a factory builds the optimizer over what it is handed). Statically, with ``fit(first, ...)``
        and ``fit(second, ...)`` both called, which module it holds is unknown; each run holds its own. The
        role itself when nothing is to be read."""
        if (role is None or role.kind != OPTIMIZER or role.modules is not None or role.frame is not None
                or not frame.keys or frame.fn is None):
            return role
        params = None
        if role.ctor is not None and role.scope is frame.fn:
            params = arg(role.ctor, 0, "params")
        elif isinstance(expr, cst.Name):
            made = self.v.assigned_values(expr, frame.fn)
            if made and len(made) == 1 and made[0][1] is frame.fn and isinstance(made[0][0], cst.Call):
                call = made[0][0]
                params = arg(call, 0, "params")
                others = [a.value for a in call.args if a.value is not params]
                if any(_hands_parameters(o) for o in others):
                    params = None  # parameters of several modules handed apart: which it holds is unclear
        if params is None:
            return role
        memo = ("in-frame", id(role), id(params), frame)
        got = self._memo.get(memo)
        if got is None:
            modules, own = self.param_module_keys(params, frame)
            got = role
            if modules is not None:
                got = copy.copy(role)
                got.modules, got.own_modules = modules, own
            self._memo[memo] = got
        return got

    def built_with(self, role: Role, other: Optional[Role]) -> Optional[Role]:
        """``other``, read where ``role`` was built, as the object of the same factory call: in
        ``opt, sched = build(net)`` the scheduler's optimizer is the one this call built, not the factory's
        constructor in general."""
        site = self._built_in.get(id(role))
        if site is None or other is None or other.frame is not None or other.ctor is None:
            return other
        callee, call, caller = site
        if other.evidence != "constructor" or not _within(other.scope, callee):
            return other
        return self._per_call(other, callee, call, caller)

    def handed_argument(self, role: Role, expr: Optional[cst.BaseExpression]):
        """For an object one call of a factory built (``_per_call``) and ``expr``, a parameter of the factory
        that its constructor reads (``StepLR(optimizer, ...)`` in ``make_sched(optimizer, cfg)``): the
        argument that call hands it and the caller's frame, where it can be resolved (``self.gen_opt`` in
        ``self.gen_sched = make_sched(self.gen_opt, cfg)``); None otherwise."""
        site = self._built_in.get(id(role))
        if site is None or not isinstance(expr, cst.Name):
            return None
        callee, call, caller = site
        if expr.value not in callee.params or expr.value in callee.assigns:
            return None
        value = self.v.parameters_bound(callee, call).get(expr.value)
        return (value, caller) if value is not None else None

    @staticmethod
    def _label_of(v) -> str:
        return dotted(v) or last_name(v) or "?"

    def _from_ctor(self, kind: str, cls_name: Optional[str], call: cst.Call, frame: Frame, label: str) -> Role:
        evidence = "framework" if cls_name is None else "constructor"
        role = Role(kind, label, evidence, cls_name, call, frame.fn)
        if kind == OPTIMIZER and cls_name is not None:
            q = self.s.qualify(call.func) or ""
            if cls_name == "DistributedOptimizer" and ("distributed.optim" in q or self._uses_dist_autograd()):
                role.kind = "rpc-optimizer"  # gradients live in the distributed autograd context
            params = arg(call, 0, "params")
            role.modules, role.own_modules = self.param_module_keys(params, frame)
        return role

    def _uses_dist_autograd(self) -> bool:
        return any("dist_autograd" in k or v.endswith("distributed.autograd") for k, v in self.s.imports.items())

    # -- module identity -------------------------------------------------------------------------------
    def module_key(self, expr: Optional[cst.BaseExpression], frame: Frame) -> Optional[str]:
        """A stable identity for a module expression, the same for every alias of one object: through
        value-preserving calls (``m.to(dev)``), module wrappers (``DDP(m)``, ``m.module``,
        ``torch.compile(m)``), names and ``self`` attributes assigned from another binding, and parameters
        (the caller's argument when the frame binds it, else the argument every call site of this module
        passes; a parameter nobody here passes is an object of its own). Distinct bindings of distinct
        objects get distinct keys (``Trainer.self.G`` vs ``Trainer.self.D``); None when unknown."""
        return self._module_key(expr, frame, 0) if expr is not None else None

    def fresh_module_key(self, expr: cst.BaseExpression) -> Optional[str]:
        """An identity for an object built inline (``train(nn.Linear(2, 2), ...)``, ``fit(Net(), ...)`` with
        ``Net`` imported, ``local_train(copy.deepcopy(global_model).to(dev))``): each constructor or copy
        call is an object of its own (``new@`` the call; ``FileModel.built_in`` says where it runs). A call
        of a function of this module is not (what it returns is followed by the roles of its result)."""
        expr = unwrap_module(expr)
        if not isinstance(expr, cst.Call):
            return None
        if self.ctor_kind(expr)[0] == MODULE or self.v.s.qualify(expr.func) == "copy.deepcopy":
            return f"new@{id(expr)}"
        if isinstance(expr.func, (cst.Name, cst.Attribute)) and self.v.s.qualify(expr.func) != dotted(expr.func):
            return f"new@{id(expr)}"  # a class or factory imported from elsewhere
        return None

    def module_ref(self, expr: cst.BaseExpression, frame: Frame) -> Tuple[Optional[str], bool]:
        key = self.module_key(expr, frame)
        return key, key is not None

    def _module_key(self, expr: cst.BaseExpression, frame: Frame, depth: int) -> Optional[str]:
        if depth > 8:
            return None
        expr = unwrap_module(expr)
        if isinstance(expr, cst.Subscript):  # ``parts["model"]``: what the entry holds
            stored = self.v.entries(expr, frame.fn)
            if not stored:
                # a child of a module container at a literal index (``model.heads[-1]``,
                # ``net.classifier[6]``): a part of the container, as ``model.head`` is of ``model``
                index = _literal_index(expr)
                base = self._module_key(expr.value, frame, depth + 1) if index is not None else None
                return f"{base}[{index}]" if base is not None else None
            if len(stored) != 1:
                return None
            v, where = stored[0]
            v = unwrap_module(v)
            if dotted(v) is None:  # an object built into the entry: one of its own (not the whole container)
                return f"{where.qualname}:{_text(expr.value)}[{id(v)}]"
            return self._module_key(v, frame if where is frame.fn else Frame(where), depth + 1)
        d = dotted(expr)
        if d is None:
            return None
        parts = d.split(".")
        while len(parts) > 1 and parts[-1] == "module":
            parts.pop()
        head = expr
        while isinstance(head, cst.Attribute):
            head = head.value
        if parts[0] == "self":
            cls = class_of(frame.fn)
            if cls is None:
                return d
            hit, bound = frame.bound_key("self")
            if len(parts) < 2:
                return bound if hit and bound is not None else d  # the module a method was called on
            if hit:
                base = f"{bound}.{parts[1]}" if bound is not None else None
            else:
                base = self._attr_key(cls, parts[1], depth)
            return _join_key(base, parts[2:])
        hit, bound = frame.bound_key(parts[0])
        if hit:
            return _join_key(bound, parts[1:])
        hit, role = frame.bound(parts[0])
        if hit:
            return _join_key(role.key if role is not None else None, parts[1:])
        if len(parts) > 1 and isinstance(head, cst.Name):
            cls = self.v.instance_class(head, frame.fn)
            if cls is not None:  # ``trainer.generator`` of ``trainer = Trainer()``: the class's attribute
                return _join_key(self._attr_key(cls, parts[1], depth), parts[2:])
        scope, binds = self.v.bindings(parts[0], frame.fn, head if isinstance(head, cst.Name) else None)
        if scope is None:
            return None if parts[0] in self.s.imports else d
        return _join_key(self._binding_key(scope, parts[0], binds, depth), parts[1:])

    def _binding_key(self, scope: Function, name: str, binds, depth: int) -> Optional[str]:
        memo = ("mkey", id(scope), name, frozenset(id(b) for b in binds))
        if memo in self._keys:
            return self._keys[memo]
        self._keys[memo] = None  # a cycle of aliases knows nothing
        own = f"{scope.qualname}:{name}"
        keys = set()
        for b in binds:
            if isinstance(b, Assignment):
                v = self.v._element(b.value, b.index, b.size, b.scope)
                v = unwrap_module(v) if v is not None else None
                if v is not None and dotted(v) is not None and not _is_literal_name(v):
                    keys.add(self._module_key(v, Frame(b.scope), depth + 1))
                else:
                    keys.add(self._returned_key(b, depth) or own)
            elif isinstance(b, Def) and b.kind == PARAM:
                if len(binds) > 1 and self._only_none(b.scope, name):
                    continue  # ``model=None`` that no call site fills: ``if model is None: model = Net()`` decides
                keys.add(self._param_key(b.scope, name, depth))
            elif isinstance(b, Def) and b.kind == "loop":
                keys.add(None)  # ``for net in nets``: another object every iteration
            else:
                keys.add(own)
        got = keys.pop() if len(keys) == 1 else None
        self._keys[memo] = got
        return got

    def _only_none(self, fn: Function, name: str) -> bool:
        """Every value the parameter may receive in this module is ``None``."""
        args, complete = self.v.arguments(fn, name)
        return complete and bool(args) and all(isinstance(a, cst.Name) and a.value == "None" for a, _w in args)

    def _returned_key(self, b: Assignment, depth: int) -> Optional[str]:
        """``net, opt = build_parts()``: the identity of what a same-module factory returns (at the
        unpacked position), when every return agrees."""
        value = b.value
        if not isinstance(value, cst.Call):
            return None
        callee, _bound = self.v.resolve_callee(value.func, b.scope)
        if callee is None or callee.is_module:
            return None
        keys = set()
        for r in self.v.returned(callee):
            if b.index is not None:
                if not (isinstance(r, (cst.Tuple, cst.List)) and len(r.elements) == b.size
                        and not any(isinstance(e, cst.StarredElement) for e in r.elements)):
                    return None
                r = r.elements[b.index].value
            r = unwrap_module(r)
            if dotted(r) is None or _is_literal_name(r):
                return None
            keys.add(self._module_key(r, Frame(callee), depth + 1))
        return keys.pop() if len(keys) == 1 else None

    def _param_key(self, fn: Function, name: str, depth: int) -> Optional[str]:
        """A parameter's module identity: the argument every same-module call site passes, else its own."""
        sites = self.v.call_sites(fn)
        if not sites:
            return f"{fn.qualname}:{name}"
        args, complete = self.v.arguments(fn, name)
        if not complete:
            return None
        keys = set()
        for a, where in args:
            key = self._module_key(a, Frame(where), depth + 1)
            if key is None and dotted(unwrap_module(a)) is None:  # a fresh object built at the call site
                key = self.fresh_module_key(a) or f"{fn.qualname}:{name}"
            keys.add(key)
        return keys.pop() if len(keys) == 1 else None

    def _attr_key(self, cls: ClassInfo, attr: str, depth: int) -> Optional[str]:
        assigns = self.v.attribute_assignments(cls, attr)
        memo = ("akey", id(cls), attr)
        if memo in self._keys:
            return self._keys[memo]
        self._keys[memo] = None
        # one key per attribute of a class hierarchy: the class that assigns it names it
        owner = next((a.scope.cls for a in assigns if a.scope is not None and a.scope.cls is not None), cls)
        own = f"{owner.name}.self.{attr}"
        keys = set()
        for a in assigns:
            v = self.v._element(a.value, a.index, a.size, a.scope)
            v = unwrap_module(v) if v is not None else None
            if v is not None and dotted(v) is not None and not _is_literal_name(v) and dotted(v) != f"self.{attr}":
                keys.add(self._module_key(v, Frame(a.scope), depth + 1))
            else:  # ``self.model, self.opt = build_parts()``: what the factory returns there
                keys.add(self._returned_key(a, depth) or own)
        got = keys.pop() if len(keys) == 1 else (own if not keys else None)
        self._keys[memo] = got
        return got

    def handed_parts(self, expr: Optional[cst.BaseExpression], frame: Frame) -> List[str]:
        """The module keys of the objects an object holds because it was handed them when built:
        ``pair = Pair(teacher, student)`` with ``self.student = student`` in ``Pair.__init__`` holds
        ``student``, and ``pair.train()`` sets its mode too (``nn.Module.train`` sets every child's). What
        the class builds itself is a child under the object's own key already (``part_of``)."""
        head = unwrap_module(expr) if expr is not None else None
        if not isinstance(head, cst.Name) or self.v is None:
            return []
        memo = ("handed", id(head), frame)  # asked at every mode event the paths of a root pass
        if memo not in self._memo:
            self._memo[memo] = self._handed_parts(head, frame)
        return self._memo[memo]

    def _handed_parts(self, head: cst.Name, frame: Frame) -> List[str]:
        cls = self.v.instance_class(head, frame.fn)
        init = self.v.method(cls, "__init__") if cls is not None else None
        if init is None:
            return []
        out = []
        for attr in sorted(cls.attrs):
            assigns = self.v.attribute_assignments(cls, attr)
            if assigns and all(a.scope is init and isinstance(a.value, cst.Name) and a.value.value in init.params
                               and a.index is None for a in assigns):
                key = self._attr_key(cls, attr, 0)
                if key is not None:
                    out.append(key)
        return out

    def _owner_path_keys(self, expr: cst.BaseExpression, frame: Frame) -> List[str]:
        """``net.head`` of an instance ``net`` of a class of this module is keyed as the class's attribute
        (``Net.self.head``); it is also a submodule of ``net`` (``main:net.head``), which ``net.zero_grad()``
        reaches: the key under its owner's identity."""
        d = dotted(unwrap_module(expr))
        if d is None or "." not in d:
            return []
        first, rest = d.split(".", 1)
        if first in ("self", "cls"):
            return []
        owner = self.module_key(cst.Name(first), frame)
        return [f"{owner}.{rest}"] if owner is not None else []

    def param_module_keys(self, params: Optional[cst.BaseExpression], frame: Frame,
                          depth: int = 0) -> Tuple[Optional[FrozenSet[str]], Optional[FrozenSet[str]]]:
        """(the module keys whose ``.parameters()`` feed an optimizer's params argument, the keys of those
        module expressions themselves, without their owners' names for them); (None, None) when unknown."""
        if params is None or depth > 2:
            return None, None
        keys: set = set()
        own: set = set()
        unknown = [False]
        roles = self

        class V(Walker):
            def visit_Call(self, n: cst.Call) -> Optional[bool]:
                if isinstance(n.func, cst.Attribute) and n.func.attr.value in ("parameters", "named_parameters"):
                    k = roles.module_key(n.func.value, frame)
                    if k is None:
                        unknown[0] = True
                    else:
                        keys.add(k)
                        own.add(k)
                        keys.update(roles._owner_path_keys(n.func.value, frame))
                    return False
                return True

        V().walk(params)
        if not keys and isinstance(params, cst.Name):
            fn: Optional[Function] = frame.fn
            while fn is not None and params.value not in fn.assigns:
                fn = fn.parent
            if fn is not None:
                out: set = set()
                out_own: set = set()
                for a in fn.assigns[params.value]:
                    got, got_own = self.param_module_keys(a.value, Frame(a.scope), depth + 1)
                    if got is None:
                        return None, None
                    out |= got
                    out_own |= got_own or set()
                return (frozenset(out), frozenset(out_own)) if out else (None, None)
        if unknown[0] or not keys:
            return None, None
        return frozenset(keys), frozenset(own)


_NONE = object()


def _optimizer_class(c: ClassInfo) -> bool:
    return any(_last(b) in ("Optimizer",) or "optim.Optimizer" in b for b in c.bases)


def _scheduler_class(c: ClassInfo) -> bool:
    return any(_last(b) in ("LRScheduler", "_LRScheduler") for b in c.bases)


def _module_class(c: ClassInfo) -> bool:
    return any(b.startswith(MODULE_PREFIXES) or _last(b) in ("Module", "LightningModule", "Sequential") for b in c.bases)


def _last(q: str) -> str:
    return q.rsplit(".", 1)[-1]


def _text(expr: cst.CSTNode) -> str:
    d = dotted(expr) if isinstance(expr, cst.BaseExpression) else None
    return d or (last_name(expr) if isinstance(expr, cst.BaseExpression) else None) or "?"


# Calls whose result is the module they are given (wrapped for parallelism or compilation).
MODULE_WRAPPERS = frozenset({"DistributedDataParallel", "DataParallel", "DDP", "FullyShardedDataParallel", "FSDP",
                             "compile", "convert_sync_batchnorm", "ShardedDataParallel", "fully_shard"})


def unwrap_module(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``m`` for ``m.to(dev)``, ``m.cuda().train()``, ``DDP(m, ...)``, ``torch.compile(m)``."""
    while isinstance(expr, cst.Call):
        f = expr.func
        if isinstance(f, cst.Attribute) and f.attr.value in SAME_OBJECT:
            expr = f.value
        elif last_name(f) in MODULE_WRAPPERS and positional_args(expr):
            expr = positional_args(expr)[0]
        else:
            break
    return expr


def _within(scope: Optional[Function], fn: Function) -> bool:
    f = scope
    while f is not None:
        if f is fn:
            return True
        f = f.parent
    return False


def _is_literal_name(e) -> bool:
    return isinstance(e, cst.Name) and e.value in ("None", "True", "False")


def _literal_index(expr: cst.Subscript) -> Optional[int]:
    """The index of ``x[3]`` / ``x[-1]`` when it is a single integer literal, else None."""
    if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
        return None
    value = expr.slice[0].slice.value
    negative = isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus)
    if negative:
        value = value.expression
    if not isinstance(value, cst.Integer):
        return None
    return -int(value.value) if negative else int(value.value)


def _join_key(base: Optional[str], rest) -> Optional[str]:
    if base is None:
        return None
    return ".".join([base, *rest])


def part_of(key: str, whole: str) -> bool:
    """Whether the module of ``key`` is the module of ``whole`` or one of its children, at any depth
    (``model.head``, ``model.heads[-1]`` of ``model``)."""
    return key == whole or (key.startswith(whole) and key[len(whole):len(whole) + 1] in (".", "["))


def overlaps(a: str, b: str) -> bool:
    """Whether one of two module keys is part of the other."""
    return part_of(a, b) or part_of(b, a)


def covers(opt: Role, module_key: Optional[str]) -> bool:
    """Whether zeroing the module's gradients may zero the optimizer's (doubt says yes)."""
    if module_key is None or opt.modules is None:
        return True
    return any(overlaps(m, module_key) for m in opt.modules)


def _hands_parameters(expr: cst.BaseExpression) -> bool:
    """Whether an expression calls ``.parameters()`` / ``.named_parameters()`` of something."""
    return any(isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute)
               and n.func.attr.value in ("parameters", "named_parameters") for n in descendants(expr))


def _is_reference(e: cst.BaseExpression) -> bool:
    """An argument that names an object (``opt``, ``self.opt``, ``opts[0]``, ``parts["opt"]``) or builds one
    inline (``SGD(...)``): its role is what the parameter receives."""
    return bool(dotted(e)) or isinstance(e, (cst.Subscript, cst.Call))
