"""Learning-rate schedulers: which optimizer a scheduler drives and in what unit it counts.

A scheduler's *unit* comes from its constructor and arguments, never from its variable name:

* per-step by definition: ``OneCycleLR``, ``CyclicLR``, the ``transformers`` warmup-schedule factories
  (``get_*_schedule*``) and their ``get_scheduler``;
* per-epoch or per-step by sizing: the horizon argument (``step_size``, ``milestones``, ``T_max``,
  ``T_0``, ``total_iters``) mentions epochs (``num_epochs``, ``args.epochs // 3``) or iterations
  (``len(loader)``, ``max_steps``, ``steps_per_epoch``, ``cfg.SOLVER.MAX_ITER``); names are followed through
  their assignments. Literal horizons (``StepLR(opt, 30)``) are *sized*: they read as epochs only next to
  an epoch loop whose literal length they do not exceed;
* plateau: ``ReduceLROnPlateau`` (stepped on a metric);
* unknown: ``LambdaLR`` whose lambda is not readable, schedulers chosen from configuration or built by a
  function of another module, a name that was assigned different schedulers, anything passed in.

``SequentialLR`` and ``ChainedScheduler`` take the unit of their parts. Unknown never produces a finding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

import libcst as cst

from looplint.model.walk import Walker

from looplint.model.events import Loop, code
from looplint.model.roles import OPTIMIZER, SCHEDULER, Frame, Role, Roles
from looplint.model.scopes import Function, arg, keyword_arg, last_name, positional_args
from looplint.model.values import PARAM, Def, literal_string as _string

PER_EPOCH, PER_STEP, PLATEAU, SIZED, UNKNOWN = "per-epoch", "per-step", "plateau", "sized", "unknown"

TORCH_SCHEDULERS = frozenset(
    "LRScheduler _LRScheduler StepLR MultiStepLR ExponentialLR CosineAnnealingLR CosineAnnealingWarmRestarts "
    "CyclicLR OneCycleLR LambdaLR MultiplicativeLR ReduceLROnPlateau LinearLR ConstantLR PolynomialLR "
    "SequentialLR ChainedScheduler".split()
)
PER_STEP_CLASSES = frozenset({"OneCycleLR", "CyclicLR"})
# The transformers family of warmup schedules (also re-exported by diffusers and copied into many repos).
WARMUP_FACTORY = re.compile(
    r"get_(linear|cosine|cosine_with_hard_restarts|constant|polynomial_decay|inverse_sqrt|wsd|"
    r"cosine_with_min_lr|reduce_on_plateau)_schedule(_with_warmup|_with_min_lr)?\w*$")
FRAMEWORKS = ("transformers.", "diffusers.", "accelerate.")
FACTORY_SIZING = frozenset({"num_warmup_steps", "num_training_steps", "num_decay_steps", "num_stable_steps"})

# class -> (position, keyword) of the argument that sizes the schedule; default when omitted
HORIZON = {
    "StepLR": ((1, "step_size"),),
    "MultiStepLR": ((1, "milestones"),),
    "CosineAnnealingLR": ((1, "T_max"),),
    "CosineAnnealingWarmRestarts": ((1, "T_0"),),
    "LinearLR": ((3, "total_iters"),),
    "ConstantLR": ((2, "total_iters"),),
    "PolynomialLR": ((1, "total_iters"),),
}
DEFAULT_HORIZON = {"LinearLR": 5, "ConstantLR": 5, "PolynomialLR": 5}
# Schedulers whose next rate is the current one times a factor, counting toward no end: ExponentialLR's
# ``gamma``; MultiplicativeLR's ``lr_lambda`` (position, keyword) when the factor it returns does not read the
# step count. A new one built over the same optimizer continues the decay from the current rate.
NO_HORIZON = {"ExponentialLR": None, "MultiplicativeLR": (1, "lr_lambda")}


@dataclass(frozen=True)
class SchedulerKind:
    """What looplint knows about a scheduler built in this file."""

    unit: str  # PER_EPOCH | PER_STEP | PLATEAU | SIZED | UNKNOWN
    known: bool  # built here by a known LR-scheduler constructor (its stepping order can be judged)
    cls_name: str = ""
    why: str = ""  # the evidence, for messages: "T_max `num_epochs`"
    sizes: Tuple[int, ...] = ()  # SIZED: the literal horizon values
    # whether the course depends on the scheduler's own step count (from ``initial_lr`` toward a horizon);
    # False for a constant factor applied to the current rate (NO_HORIZON): rebuilding one restarts nothing
    horizon: bool = True

    def unit_for(self, epochs: Optional[int]) -> str:
        """The unit next to an epoch loop of ``epochs`` passes (None: not known)."""
        if self.unit != SIZED:
            return self.unit
        if epochs is not None and self.sizes and max(self.sizes) <= epochs:
            return PER_EPOCH
        return UNKNOWN


_UNKNOWN = SchedulerKind(UNKNOWN, False)


def is_scheduler_call(call: Optional[cst.Call]) -> bool:
    """``x.step(...)`` shaped like an LR-scheduler step, not a diffusion sampler's ``step(out, t, x)``."""
    return call is not None and len(call.args) <= 1


def has_metric(call: Optional[cst.Call]) -> bool:
    return call is not None and bool(positional_args(call) or keyword_arg(call, "metrics") is not None)


def scheduler_kind(role: Optional[Role], roles: Roles, _depth: int = 0) -> SchedulerKind:
    """The kind of a scheduler role; UNKNOWN unless it was built here by a recognised constructor."""
    if role is None or role.kind != SCHEDULER or role.evidence != "constructor" or role.ctor is None:
        return _UNKNOWN
    if getattr(role, "partial", False):
        return _UNKNOWN  # also assigned from something unrecognised
    alternatives = [r for r in getattr(role, "alternatives", ()) if r is not role] or [role]
    kinds = [_one(r, roles, _depth) for r in alternatives]
    first = kinds[0]
    if any(not k.known for k in kinds):
        return _UNKNOWN
    if all(k == first for k in kinds):
        return first
    # different constructors on different paths: the order is still judged, the unit only if all agree
    units = {(k.unit, k.sizes) for k in kinds}
    if len(units) == 1:
        return SchedulerKind(first.unit, True, first.cls_name, first.why, first.sizes)
    return SchedulerKind(UNKNOWN, True, "/".join(sorted({k.cls_name for k in kinds})))


def optimizer_of(role: Optional[Role], roles: Roles, _depth: int = 0) -> Optional[Role]:
    """The optimizer a scheduler was built over, when its constructor says so."""
    if role is None or role.ctor is None or role.scope is None or _depth > 3:
        return None
    call, frame = role.ctor, (role.frame or Frame(role.scope))
    cls = role.cls_name or ""
    if cls == "ChainedScheduler":
        expr = arg(call, 1, "optimizer")
        if expr is None:
            for part in _parts(call, 0, "schedulers", roles, frame):
                got = optimizer_of(part, roles, _depth + 1)
                if got is not None:
                    return got
            return None
    elif cls == "get_scheduler":
        expr = arg(call, 1, "optimizer")
    else:
        expr = arg(call, 0, "optimizer")
    if expr is None:
        return None
    handed = roles.handed_argument(role, expr)
    if handed is not None:  # a factory's parameter: the optimizer the call that built this scheduler hands it
        got = roles.resolve(handed[0], handed[1])
        if got is not None and got.kind == OPTIMIZER:
            return got
    got = roles.built_with(role, roles.resolve(expr, frame))
    return got if got is not None and got.kind == OPTIMIZER else None


def epoch_count(loop: Loop, values) -> Optional[int]:
    """The fewest passes ``for _ in range(...)`` may make (bounds read by the values service: literals,
    parameter defaults and call-site arguments, ``self`` attributes, argparse defaults...); None when some
    possibility cannot be read."""
    e = loop.iter_expr
    scope = loop.fn
    if scope is None:
        return None
    while isinstance(e, cst.Call) and last_name(e.func) != "trange" and values.iteration_wrapper(e.func, scope):
        pos = positional_args(e)
        if not pos:
            return None
        e = pos[0]
    if isinstance(e, cst.Name):
        bound = values.assigned_values(e, scope)
        if bound and len(bound) == 1:
            e, scope = bound[0]
    if not (isinstance(e, cst.Call) and last_name(e.func) in ("range", "trange")):
        return None
    pos = positional_args(e)
    if len(pos) == 1:
        n = values.ints(pos[0], scope)
        return min(n) if n else None
    if len(pos) >= 2:
        a, b = pos[0], pos[1]
        # range(start, start + N)
        if isinstance(b, cst.BinaryOperation) and isinstance(b.operator, cst.Add) and code(b.left) == code(a):
            n = values.ints(b.right, scope)
            return min(n) if n else None
        lo, hi = values.ints(a, scope), values.ints(b, scope)
        if lo and hi:
            return min(hi) - max(lo)
    return None


# -- one constructor ---------------------------------------------------------------------------------------
def _one(role: Role, roles: Roles, depth: int) -> SchedulerKind:
    call, scope = role.ctor, role.scope
    if call is None or scope is None or depth > 3:
        return _UNKNOWN
    q = roles.s.qualify(call.func) or ""
    cls = role.cls_name or q.rsplit(".", 1)[-1]
    frame = Frame(scope)
    if cls in roles.s.classes or cls in getattr(roles, "local_scheduler_classes", ()):
        return _UNKNOWN  # a class of this module: its step() may count anything
    if cls == "ReduceLROnPlateau":
        return SchedulerKind(PLATEAU, True, cls, "stepped on a metric")
    if cls in PER_STEP_CLASSES:
        sizing = [arg(call, 2, "total_steps")] if cls == "OneCycleLR" else [
            arg(call, 3, "step_size_up"), keyword_arg(call, "step_size_down")]
        return _per_step_by_definition(cls, [a for a in sizing if a is not None], scope, roles)
    if WARMUP_FACTORY.match(cls) or (cls == "get_scheduler" and q.startswith(FRAMEWORKS)):
        if roles.s.lookup_function(cls, scope) is not None:
            return _UNKNOWN  # a local re-implementation: unread
        skip = 2 if cls == "get_scheduler" else 1
        sizing = positional_args(call)[skip:skip + 2] + [
            a.value for a in call.args if a.keyword is not None and a.keyword.value in FACTORY_SIZING]
        return _per_step_by_definition(cls, sizing, scope, roles)
    if cls not in TORCH_SCHEDULERS:
        return _UNKNOWN
    kind = _one_known(cls, call, scope, roles, frame, depth)
    if kind.known and not _has_horizon(cls, call, roles, frame, depth):
        return SchedulerKind(kind.unit, kind.known, kind.cls_name, kind.why, kind.sizes, horizon=False)
    return kind


def _has_horizon(cls: str, call: cst.Call, roles: Roles, frame: Frame, depth: int) -> bool:
    """Whether a torch scheduler's course counts its own steps (NO_HORIZON: not when it multiplies the
    current rate by a factor that does not read the step count); a chain has one when a part has one."""
    if cls in ("SequentialLR", "ChainedScheduler"):
        parts = _parts(call, 1 if cls == "SequentialLR" else 0, "schedulers", roles, frame)
        return cls == "SequentialLR" or not parts or any(scheduler_kind(p, roles, depth + 1).horizon for p in parts)
    if cls not in NO_HORIZON:
        return True
    factor = NO_HORIZON[cls]
    if factor is None:
        return False
    fn = arg(call, *factor)
    if not isinstance(fn, cst.Lambda) or len(fn.params.params) != 1:
        return True  # a function looplint does not read: it may count the steps
    return fn.params.params[0].name.value in _idents(fn.body)


def _one_known(cls: str, call: cst.Call, scope: Function, roles: Roles, frame: Frame, depth: int) -> SchedulerKind:
    """The kind of a scheduler of ``torch.optim.lr_scheduler``, by its class and arguments."""
    if cls in HORIZON:
        (index, name), = HORIZON[cls]
        expr = arg(call, index, name)
        if expr is None:
            default = DEFAULT_HORIZON.get(cls)
            if default is None:
                return SchedulerKind(UNKNOWN, True, cls)
            return SchedulerKind(SIZED, True, cls, f"default {name}={default}", (default,))
        return _sized(cls, name, expr, scope, roles)
    if cls == "ExponentialLR":
        gamma = _literal_float(arg(call, 1, "gamma"))
        if gamma is not None and gamma < 0.99:
            return SchedulerKind(PER_EPOCH, True, cls, f"gamma={gamma:g}")
        return SchedulerKind(UNKNOWN, True, cls)
    if cls in ("LambdaLR", "MultiplicativeLR"):
        return _lambda(cls, arg(call, 1, "lr_lambda"), scope, roles)
    if cls in ("SequentialLR", "ChainedScheduler"):
        index = 1 if cls == "SequentialLR" else 0
        parts = [scheduler_kind(p, roles, depth + 1) for p in _parts(call, index, "schedulers", roles, frame)]
        if not parts or any(not p.known for p in parts):
            return SchedulerKind(UNKNOWN, bool(parts) and all(p.known for p in parts), cls)
        definite = {p.unit for p in parts if p.unit in (PER_EPOCH, PER_STEP)}
        if cls == "SequentialLR":
            milestones = arg(call, 2, "milestones")
            if milestones is not None:
                u = _horizon(milestones, scope, roles)
                if u.unit in (PER_EPOCH, PER_STEP):
                    definite.add(u.unit)
        if len(definite) == 1:
            unit = definite.pop()
            why = next((p.why for p in parts if p.unit == unit and p.why), "")
            return SchedulerKind(unit, True, cls, why)
        if not definite and all(p.unit == SIZED for p in parts):
            sizes = tuple(s for p in parts for s in p.sizes)
            return SchedulerKind(SIZED, True, cls, "parts sized by literals", sizes)
        return SchedulerKind(UNKNOWN, True, cls)
    return SchedulerKind(UNKNOWN, True, cls)


def _per_step_by_definition(cls, horizon_args, scope, roles) -> SchedulerKind:
    """Per-step unless the sizing plainly counts epochs (then the code means something else: unknown)."""
    units = {_horizon(a, scope, roles).unit for a in horizon_args if not isinstance(a, (cst.Float, cst.SimpleString))}
    if PER_EPOCH in units and PER_STEP not in units:
        return SchedulerKind(UNKNOWN, True, cls)
    return SchedulerKind(PER_STEP, True, cls, "a per-step schedule")


def _sized(cls, name, expr, scope, roles) -> SchedulerKind:
    u = _horizon(expr, scope, roles)
    text = " ".join(code(expr).split())
    if len(text) > 40:
        text = text[:37] + "..."
    if u.unit == PER_EPOCH:
        return SchedulerKind(PER_EPOCH, True, cls, f"{name} `{text}`")
    if u.unit == PER_STEP:
        return SchedulerKind(PER_STEP, True, cls, f"{name} `{text}`")
    if u.unit == SIZED:
        return SchedulerKind(SIZED, True, cls, f"{name}={text}", u.sizes)
    return SchedulerKind(UNKNOWN, True, cls)


def _lambda(cls, fn_expr, scope: Function, roles: Roles) -> SchedulerKind:
    """The unit of a readable lambda: its parameter's name and the horizons its body mentions."""
    if fn_expr is None:
        return SchedulerKind(UNKNOWN, True, cls)
    if isinstance(fn_expr, (cst.List, cst.Tuple)):
        kinds = {_lambda(cls, el.value, scope, roles) for el in fn_expr.elements}
        return kinds.pop() if len(kinds) == 1 else SchedulerKind(UNKNOWN, True, cls)
    param, body = None, None
    if isinstance(fn_expr, cst.Lambda):
        params = fn_expr.params.params
        param, body = (params[0].name.value if params else None), fn_expr.body
    elif isinstance(fn_expr, cst.Name):
        fn = roles.s.lookup_function(fn_expr.value, scope)
        if fn is not None and not fn.is_module and fn.params:
            param, body = fn.params[0], fn.node.body
        else:
            found = _bound(fn_expr, scope, roles)
            if found and len(found) == 1 and isinstance(found[0][0], cst.Lambda):
                return _lambda(cls, found[0][0], found[0][1], roles)
    if body is None:
        return SchedulerKind(UNKNOWN, True, cls)  # a bound method or something passed in: not readable
    by_param = _param_unit(param)
    names = _idents(body) - {param}
    by_body = {_ident_unit(n) for n in names} - {None}
    units = ({by_param} if by_param else set()) | by_body
    if len(units) == 1:
        unit = units.pop()
        why = f"lambda of `{param}`" if by_param else "lambda"
        return SchedulerKind(unit, True, cls, why)
    return SchedulerKind(UNKNOWN, True, cls)


def _parts(call: cst.Call, index: int, name: str, roles: Roles, frame: Frame) -> List[Optional[Role]]:
    expr = arg(call, index, name)
    if not isinstance(expr, (cst.List, cst.Tuple)):
        return []
    return [roles.resolve(el.value, frame) for el in expr.elements]


# -- horizons ------------------------------------------------------------------------------------------------
@dataclass
class _Evidence:
    epochs: bool = False
    steps: bool = False
    unknown: bool = False
    product_doubt: bool = False  # epochs multiplied by something unknown
    sizes: Tuple[int, ...] = ()

    def merge(self, o: "_Evidence") -> "_Evidence":
        return _Evidence(self.epochs or o.epochs, self.steps or o.steps, self.unknown or o.unknown,
                         self.product_doubt or o.product_doubt, self.sizes + o.sizes)

    @property
    def unit(self) -> str:
        if self.steps:
            return PER_STEP
        if self.epochs:
            return UNKNOWN if self.product_doubt else PER_EPOCH
        if self.sizes and not self.unknown:
            return SIZED
        return UNKNOWN


_STEP_WORDS = frozenset({"steps", "step", "iters", "iter", "iterations", "iteration", "batches", "batch", "loader",
                         "dataloader"})
_COUNT_WORDS = frozenset({"max", "num", "n", "total", "train", "training", "global", "warmup", "current", "per"})
_GLUED = frozenset({"niters", "nsteps", "niter", "nbatches", "nbatch", "maxiter", "maxiters", "max_it", "total_it",
                    "num_updates", "max_updates", "total_updates"})


def _tokens(name: str) -> List[str]:
    return [t for t in re.split(r"_+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()) if t]


def _ident_unit(name: str) -> Optional[str]:
    """What one identifier counts: ``num_epochs`` epochs; ``max_steps``, ``iters_per_epoch``,
    ``num_training_steps`` iterations. A bare ``steps``/``lr_step``/``step_size`` says nothing."""
    if not name:
        return None
    toks = _tokens(name)
    lower = name.lower()
    if "epoch" in lower:
        if "per" in toks or any(t in ("size", "len", "length") for t in toks) or any(t in _STEP_WORDS for t in toks):
            return PER_STEP  # steps_per_epoch, epoch_size, iters_per_epoch
        return PER_EPOCH
    if lower in _GLUED:
        return PER_STEP
    if any(t in _STEP_WORDS for t in toks) and any(t in _COUNT_WORDS for t in toks):
        return PER_STEP  # max_iter, num_steps, total_iterations, warmup_steps, num_training_steps
    return None


def _param_unit(name: Optional[str]) -> Optional[str]:
    """What a schedule function's argument counts, from its name (``epoch``; ``step``, ``it``, ``iteration``)."""
    if not name:
        return None
    if "epoch" in name.lower():
        return _ident_unit(name)
    if any(t in _STEP_WORDS or t in ("it", "updates", "update") for t in _tokens(name)):
        return PER_STEP
    return None


def _horizon(expr: cst.BaseExpression, scope: Function, roles: Roles, depth: int = 0,
             neutral: frozenset = frozenset()) -> _Evidence:
    """The evidence a horizon expression gives; ``neutral`` names (comprehension targets) give none."""
    if isinstance(expr, cst.Integer):
        return _Evidence(sizes=(int(expr.value.replace("_", ""), 0),))
    if isinstance(expr, (cst.Float, cst.Imaginary)):
        return _Evidence()
    if isinstance(expr, cst.SimpleString):
        unit = _ident_unit(_string(expr))
        return _Evidence(epochs=unit == PER_EPOCH, steps=unit == PER_STEP, unknown=unit is None)
    if isinstance(expr, cst.Name) and expr.value in neutral:
        return _Evidence()
    if isinstance(expr, cst.Name):
        unit = _ident_unit(expr.value)
        if unit is not None:
            return _Evidence(epochs=unit == PER_EPOCH, steps=unit == PER_STEP)
        if depth < 3:
            found = _bound(expr, scope, roles)
            if found:
                out = _Evidence()
                for v, where in found:
                    out = out.merge(_horizon(v, where, roles, depth + 1))
                return out
        return _Evidence(unknown=True)
    if isinstance(expr, cst.Attribute):
        unit = _ident_unit(expr.attr.value)
        if unit is not None:
            return _Evidence(epochs=unit == PER_EPOCH, steps=unit == PER_STEP)
        if isinstance(expr.value, cst.Name) and expr.value.value == "self" and depth < 3:
            found = roles.v.assigned_values(expr, scope)
            if found:
                out = _Evidence()
                for v, where in found:
                    out = out.merge(_horizon(v, where, roles, depth + 1))
                return out
        return _Evidence(unknown=True)
    if isinstance(expr, cst.Subscript):
        out = _Evidence()
        keyed = False
        for el in expr.slice:
            if isinstance(el.slice, cst.Index) and isinstance(el.slice.value, cst.SimpleString):
                out = out.merge(_horizon(el.slice.value, scope, roles, depth, neutral))
                keyed = True
        return out if keyed else _Evidence(unknown=True)
    if isinstance(expr, cst.Call):
        name = last_name(expr.func) or ""
        if name == "len":
            return _Evidence(steps=True)
        unit = _ident_unit(name)
        out = _Evidence(epochs=unit == PER_EPOCH, steps=unit == PER_STEP)
        if name not in ("int", "round", "ceil", "floor", "max", "min", "float", "abs") and unit is None:
            out.unknown = True
        for a in expr.args:
            out = out.merge(_horizon(a.value, scope, roles, depth, neutral))
        return out
    if isinstance(expr, cst.BinaryOperation):
        left = _horizon(expr.left, scope, roles, depth, neutral)
        right = _horizon(expr.right, scope, roles, depth, neutral)
        out = left.merge(right)
        if isinstance(expr.operator, (cst.Add, cst.Subtract, cst.Multiply)):
            # a sum or product of literals is not a horizon we can read without evaluating it
            if left.sizes and right.sizes:
                out.sizes = ()
                out.unknown = True
        if isinstance(expr.operator, cst.Multiply):
            for a, b in ((left, right), (right, left)):
                if a.epochs and not a.steps and b.unknown and not b.epochs:
                    out.product_doubt = True
        elif isinstance(expr.operator, (cst.Add, cst.Subtract, cst.FloorDivide, cst.Divide)) and (left.epochs or right.epochs):
            out.sizes = ()
        return out
    if isinstance(expr, cst.UnaryOperation):
        return _horizon(expr.expression, scope, roles, depth, neutral)
    if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
        out = _Evidence()
        for el in expr.elements:
            out = out.merge(_horizon(el.value, scope, roles, depth, neutral))
        return out
    if isinstance(expr, (cst.ListComp, cst.GeneratorExp)):
        targets = set()
        for_in = expr.for_in
        out = _Evidence()
        while for_in is not None:
            targets |= _idents(for_in.target)
            it = _horizon(for_in.iter, scope, roles, depth, neutral)
            it.sizes = ()  # ``for r in (0.5, 0.75)``: fractions, not horizons
            out = out.merge(it)
            for_in = for_in.inner_for_in
        elt = _horizon(expr.elt, scope, roles, depth, neutral | frozenset(targets))
        elt.sizes = ()
        return out.merge(elt)
    return _Evidence(unknown=True)


def _bound(expr: cst.Name, scope: Function, roles: Roles):
    """What a name holds, from the values service: the assigned expressions that reach it, or a
    parameter's default and call-site arguments (None when some binding cannot be read)."""
    _s, binds = roles.v.bindings(expr.value, scope, expr)
    if not binds:
        return None
    out = []
    for b in binds:
        if isinstance(b, Def) and b.kind == PARAM:
            args, complete = roles.v.arguments(b.scope, b.name)
            if not complete:
                return None
            out.extend(args)
        elif isinstance(b, Def):
            return None
        else:
            v = roles.v._element(b.value, b.index, b.size, b.scope)
            if v is None:
                return None
            out.append((v, b.scope))
    return out


def _literal_float(expr: Optional[cst.BaseExpression]) -> Optional[float]:
    if isinstance(expr, (cst.Float, cst.Integer)):
        try:
            return float(expr.value.replace("_", ""))
        except ValueError:
            return None
    return None


def _idents(node: cst.CSTNode) -> set:
    found = set()

    class V(Walker):
        def visit_Name(self, n: cst.Name) -> None:
            found.add(n.value)

        def visit_Attribute(self, n: cst.Attribute) -> None:
            found.add(n.attr.value)

    V().walk(node)
    return found


def describe(role: Role, kind: SchedulerKind) -> str:
    """```scheduler` (CosineAnnealingLR, T_max `num_epochs`)`` for messages."""
    detail = kind.cls_name or role.cls_name or "scheduler"
    if kind.why:
        detail += ", " + kind.why
    return f"`{role.label}` ({detail})"




# -- queries for the scheduler rules ---------------------------------------------------------------------------
def scheduler_steps(model):
    """(step event, scheduler role, kind) for every ``step()`` that acted on a scheduler, in source order."""
    from looplint.model.events import STEP

    facts = model.facts
    found = []
    for e, roles in facts.acted_on.items():
        if e.kind != STEP:
            continue
        for r in roles:
            if r.kind == SCHEDULER:
                found.append((e, r, scheduler_kind(r, model.roles)))
    return found


def optimizer_steps(model, optimizer: Optional[Role]):
    """Step events of ``optimizer`` (of every optimizer when it is not known)."""
    return model.steps_of(optimizer)


def presence_test(key: Optional[str], value: bool) -> bool:
    """``if scheduler:`` / ``if self.lr_scheduler is not None:`` -- a test of whether there is a scheduler."""
    if key is None:
        return False
    m = re.fullmatch(r"(not\s+)?((?:self\.)?[\w.]+?)(\s+is(\s+not)?\s+None)?", key.strip())
    if m is None:
        return False
    toks = _tokens(m.group(2).rsplit(".", 1)[-1])
    if not toks or toks[-1] not in ("scheduler", "sched", "schedulers", "scheduler_"):
        return False  # ``if step_scheduler_batch:`` is a flag, not the scheduler
    positive = value
    if m.group(1):
        positive = not positive
    if m.group(3) and not m.group(4):  # ``is None``
        positive = not positive
    return positive


def gated_within(conds, depth: int) -> bool:
    """Whether an ``if`` entered at loop depth ``depth`` or deeper (inside that loop) guards the event; tests
    of whether a scheduler exists do not count."""
    return any(c[2] >= depth and not presence_test(c[0], c[1]) for c in conds)


def varying_gate(model, event, stack, conds, depth: int) -> bool:
    """Whether an ``if`` entered inside ``stack[depth - 1]`` may skip the event on some of that loop's
    iterations: a periodic test, a test that calls something, or one on names the loop (or a loop inside
    it) assigns, on ``self`` attributes, or on the parameters of the function the event runs in. A test
    that cannot change while the loop runs (``if phase == "train":``, ``if scheduler is not None:``) does not
    gate it; an unknown test does."""
    variant = set()
    for loop in stack[depth - 1:]:
        variant |= set(loop.assigned) | set(loop.target_names)
    params = {p for frame in model.facts.frames.get(event, ()) for p in frame.fn.params}
    for key, value, at in conds:
        if at < depth or presence_test(key, value):
            continue
        if key is None or key.startswith("mod:") or key not in model.branch_info:
            return True
        names, volatile = model.branch_info[key]
        if volatile or names & variant or names & params or any(n.startswith("self.") for n in names):
            return True
    return False


def counts_steps(loop: Loop, values=None) -> bool:
    """A loop whose header counts updates (``for step in range(max_steps)``, ``while it < max_iter``), even
    when the model calls it an epoch loop because it encloses a data loop: it has no epoch unit. With the
    values service, a name the loop iterates is read as what it is bound to (``with trange(n_iters) as
    bar: for _ in bar:``)."""
    node = loop.node
    if isinstance(node, cst.For):
        names = _idents(node.target) | _idents(node.iter)
        if values is not None and isinstance(node.iter, cst.Name) and loop.fn is not None:
            for v, _where in values.assigned_values(node.iter, loop.fn) or ():
                names |= _idents(v)
    elif isinstance(node, cst.While):
        names = _idents(node.test)
    else:
        return False
    units = {_ident_unit(n) for n in names} | {_param_unit(n) for n in _idents(node.target)} if isinstance(
        node, cst.For) else {_ident_unit(n) for n in names}
    return PER_STEP in units and PER_EPOCH not in units


def loop_function(model, loop: Loop) -> Optional[Function]:
    """The function whose body holds ``loop``."""
    return loop.fn


__all__ = [
    "PER_EPOCH", "PER_STEP", "PLATEAU", "SIZED", "UNKNOWN", "SchedulerKind", "scheduler_kind", "optimizer_of",
    "epoch_count", "is_scheduler_call", "has_metric", "describe", "scheduler_steps", "optimizer_steps",
    "presence_test", "gated_within", "varying_gate", "loop_function", "counts_steps",
]
