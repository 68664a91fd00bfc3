"""Schedules restarted: a learning-rate scheduler constructed on every pass of a training loop over an
optimizer built outside it.

A scheduler counts its steps from its own construction (``last_epoch=-1``) and starts from the
optimizer's ``initial_lr``; a new one per epoch (or per batch) over the same optimizer restarts the
schedule every time. That is a bug when the schedule is longer than what one pass of the loop steps it:

* stepped once per construction (built and stepped in the same loop, no loop in between) while its
  horizon is known and longer than one step: the learning rate never moves past the schedule's first value;
* built per epoch, stepped per batch, with a horizon that counts the whole run (``T_max=epochs *
  len(loader)``, ``num_training_steps`` computed from the epochs, ``OneCycleLR(epochs=..., steps_per_epoch=...)``),
  or several passes over the data (``T_max=3 * len(loader)``): every epoch replays the first part of the schedule.

A scheduler built together with its optimizer (one per fold, per setting), in a gated branch (warm
restarts every few epochs), in a helper, or of a unit looplint cannot read is not judged; nor one without
a horizon (``ExponentialLR``: the current rate times a constant factor, schedulers.NO_HORIZON), which a new
construction continues from where the previous one left the rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import libcst as cst

from looplint.model import events as ev
from looplint.model.events import Event, Loop
from looplint.model.interp import items_below
from looplint.model.loops import BATCH, EPOCH
from looplint.model.roles import OPTIMIZER, SCHEDULER, Role
from looplint.model.scopes import Function, arg, dotted, keyword_arg
from looplint.model.schedulers import (FACTORY_SIZING, HORIZON, PER_EPOCH, PER_STEP, SIZED, _horizon,
                                       optimizer_of, scheduler_kind, scheduler_steps, varying_gate)

TRAINING_LOOPS = (EPOCH, BATCH)


@dataclass(eq=False)
class Restart:
    construct: Event
    scheduler: Role
    optimizer: Optional[Role]  # None: built by code looplint cannot see, outside the loop
    loop: Loop  # the loop whose every pass builds a new scheduler
    why: str  # what the schedule's horizon spans
    given: str = ""  # the optimizer as the constructor is given it

    @property
    def optimizer_label(self) -> str:
        return self.optimizer.label if self.optimizer is not None else self.given


def analyse(model) -> List[Restart]:
    out: List[Restart] = []
    steps = scheduler_steps(model)
    for fn in model.scopes.functions:
        for item in items_below(model.builder.body(fn)):
            if isinstance(item, Event) and item.kind == ev.CONSTRUCT and item.call is not None \
                    and model.roles.ctor_kind(item.call, fn)[0] == SCHEDULER:
                found = _restart(model, item, fn, steps)
                if found is not None:
                    out.append(found)
    return out


def _restart(model, e: Event, fn: Function, steps) -> Optional[Restart]:
    role = _scheduler_of(model, e, steps)
    if role is None:
        return None
    kind = scheduler_kind(role, model.roles)
    opt = optimizer_of(role, model.roles)
    if not kind.known or kind.unit not in (PER_EPOCH, PER_STEP, SIZED) or not kind.horizon:
        return None
    resumed = keyword_arg(e.call, "last_epoch")
    if resumed is not None and not (isinstance(resumed, cst.UnaryOperation) and isinstance(resumed.expression, cst.Integer)):
        return None  # ``last_epoch=epoch - 1``: each new scheduler resumes where the last one was
    given = arg(e.call, 0, "optimizer")
    # ``optimizer``, ``self.optimizer``, ``optimizers[0]``: the name bound to it (rebound in the loop or not)
    base = given.value if isinstance(given, cst.Subscript) else given
    if given is None or dotted(base) is None:
        return None
    if opt is None and not isinstance(base, cst.Name):
        return None  # an optimizer we cannot see, on an attribute a call in the loop might set anew
    built = model.constructions(opt.ctor) if opt is not None and opt.ctor is not None else []
    if opt is not None and opt.ctor is not None and not built:
        return None  # an optimizer built by code we cannot see
    opt_loops = {l for c in built for stack in model.loop_stacks(c) for l in stack}
    # loops in which an optimizer steps (the scheduler's optimizer may be bound to the caller's object in
    # the frame the step runs in, so any optimizer step counts: the loop is a training loop)
    step_loops = {l for s, roles in model.facts.acted_on.items() if s.kind == ev.STEP
                  and any(r.kind == OPTIMIZER for r in roles) for stack in model.loop_stacks(s) for l in stack}
    own = [s for s, r, _k in steps if r is role]
    if not own:
        return None
    for stack, conds in model.facts.contexts.get(e, ()):
        for depth in range(len(stack), 0, -1):
            loop = stack[depth - 1]
            if loop.kind not in TRAINING_LOOPS or loop in opt_loops or loop not in step_loops or loop.fn is not fn:
                continue
            if dotted(base) in loop.assigned:
                break  # the optimizer itself is rebound in the loop (or, unknown, may be built there)
            if varying_gate(model, e, stack, conds, depth):
                break  # rebuilt only on some passes (warm restarts): deliberate
            why = _spans(model, role, kind, loop, own)
            if why is not None:
                return Restart(e, role, opt, loop, why, " ".join(model.source(given).split()))
            break
    return None


def _scheduler_of(model, e: Event, steps) -> Optional[Role]:
    for _s, role, _k in steps:
        if role.ctor is e.call:
            return role
    return None


def _spans(model, role: Role, kind, loop: Loop, own: List[Event]) -> Optional[str]:
    """What makes the schedule longer than one pass of ``loop`` (None when it may not be)."""
    inner = set()
    for s in own:
        stacks = model.loop_stacks(s)
        if not stacks:
            return None
        for stack in stacks:
            if loop not in stack:
                return None  # stepped outside the loop that rebuilds it
            inner.add(stack[stack.index(loop) + 1:])
    if inner == {()}:  # stepped once per construction
        if kind.unit == SIZED and max(kind.sizes or (0,)) <= 1:
            return None
        return f"{kind.why or 'a schedule of several steps'}, but each new scheduler is stepped once"
    if loop.kind == EPOCH and all(len(i) == 1 and i[0].kind == BATCH for i in inner):
        spans = _whole_run_horizon(model, role)
        if spans:
            return f"{spans} counts more than one epoch, but each epoch's scheduler is stepped only that epoch's batches"
    return None


def _whole_run_horizon(model, role: Role) -> Optional[str]:
    """The sizing argument of a per-step schedule when it counts both epochs and batches."""
    call, scope = role.ctor, role.scope
    cls = role.cls_name or ""
    if cls == "OneCycleLR" and keyword_arg(call, "epochs") is not None and keyword_arg(call, "total_steps") is None:
        return "`epochs=` of OneCycleLR"
    candidates = []
    if cls in HORIZON:
        (index, name), = HORIZON[cls]
        candidates.append((name, arg(call, index, name)))
    elif cls == "OneCycleLR":
        candidates.append(("total_steps", arg(call, 2, "total_steps")))
    else:
        candidates.extend((a.keyword.value, a.value) for a in call.args
                          if a.keyword is not None and a.keyword.value in FACTORY_SIZING - {"num_warmup_steps"})
        positional = [a for a in call.args if a.keyword is None]
        if len(positional) >= 3 and cls.startswith("get_") and cls != "get_scheduler":
            candidates.append(("num_training_steps", positional[2].value))
    for name, expr in candidates:
        if expr is None:
            continue
        if _counts_epochs_and_steps(model, expr, scope):
            text = " ".join(model.source(expr).split())
            return f"{name} `{text if len(text) <= 40 else text[:37] + '...'}`"
    return None



def _counts_epochs_and_steps(model, expr, scope: Function, depth: int = 0) -> bool:
    """The horizon multiplies an epoch count by a per-epoch step count (``epochs * len(loader)``), also
    through the names it is assigned to (``total_steps = epochs * len(loader)``)."""
    if isinstance(expr, (cst.Name, cst.Attribute)) and depth < 3:
        values = model.values.assigned_values(expr, scope)
        if values:
            return all(_counts_epochs_and_steps(model, v, where, depth + 1) for v, where in values)
    found = _horizon(expr, scope, model.roles)
    return (found.epochs and found.steps and not found.product_doubt) or _several_passes(model, expr, scope)


def _several_passes(model, expr, scope: Function) -> bool:
    """``3 * len(loader)``: a whole number of passes over the data, at least two, written as a number (the
    epoch count as a literal or a constant) times a count of batches."""
    if not (isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Multiply)):
        return False
    for count, size in ((expr.left, expr.right), (expr.right, expr.left)):
        per_pass = _horizon(size, scope, model.roles)
        if not (isinstance(size, cst.Call) and per_pass.steps and not per_pass.epochs and not per_pass.unknown):
            continue
        ints = model.values.ints(count, scope)
        if ints and min(ints) >= 2:
            return True
    return False
