"""GradScaler bookkeeping: the order of ``unscale_``, ``step`` and ``update`` per optimizer.

``torch.amp.GradScaler`` keeps a state per optimizer between two ``update()`` calls: *ready*, then
*unscaled* after ``unscale_(opt)``, then *stepped* after ``step(opt)``; ``update()`` returns every optimizer
to *ready*. A second ``unscale_(opt)`` while *unscaled* raises "unscale_() has already been called on this
optimizer since the last update()"; ``unscale_(opt)`` or ``step(opt)`` while *stepped* raises too, and the
scale never adapts.

Every root function is interpreted over all paths (``interp.Interp``: branches that test the same thing
take the same arm, periodic accumulation tests carry their phase around the loop, loops run to a
fixpoint, calls of this module are entered), with a function that something outside calls once per
iteration run as a loop. The state maps (scaler, optimizer) to the last ``unscale_``/``step`` since the
scaler's last ``update()``; an ``if`` that reads a scaler's own state forgets what we knew of that scaler. Only scalers built here (``GradScaler(...)``, not disabled by
``enabled=False``) and never handed to code we cannot see count; a call we cannot see that receives the
scaler or the optimizer forgets what we knew about them.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, NamedTuple, Optional, Set, Tuple

import libcst as cst

from looplint.model import events as ev
from looplint.model.events import Event
from looplint.model.interp import Ctx, Interp, OverBudget
from looplint.model.roles import OPTIMIZER, SCALER, Frame, Role
from looplint.model.scopes import dotted, keyword_arg, positional_args
from looplint.model.walk import descendants

UNSCALED, STEPPED = "unscaled", "stepped"


class ScalerBook(NamedTuple):
    # (scaler role, optimizer role, UNSCALED | STEPPED, the event that did it) since the scaler's last update
    ops: FrozenSet[Tuple[Role, Role, str, Event]] = frozenset()
    assume: FrozenSet[Tuple[str, bool]] = frozenset()


class ScalerFacts:
    """``repeated_unscales``: ``unscale_`` calls that may run while the same optimizer is already unscaled
    since the last ``update()`` (with the earlier ``unscale_`` calls). ``steps_without_update``:
    ``scaler.step`` calls whose optimizer may be unscaled or stepped again before any ``update()`` (with
    the call that does it)."""

    def __init__(self) -> None:
        self.repeated_unscales: Dict[Event, Set[Event]] = {}
        self.steps_without_update: Dict[Event, Set[Event]] = {}


def analyse(model) -> ScalerFacts:
    facts = ScalerFacts()
    if all(model.reached_kinds(fn).isdisjoint((ev.UNSCALE, ev.SCALER_UPDATE)) for fn in model.scopes.functions) \
            and not _scaler_steps(model):
        return facts
    for fn in model.roots():
        run = _Run(model, facts)
        try:
            run.run(fn, ScalerBook(), cyclic=model.is_per_step(fn))
        except OverBudget:
            continue
        run.commit()
    return facts


def _scaler_steps(model) -> bool:
    return any(isinstance(i, Event) and i.kind == ev.STEP and i.call is not None and positional_args(i.call)
               for fn in model.scopes.functions if ev.STEP in model.reached_kinds(fn) for i in model.walk(fn))


class _Run(Interp):
    KINDS = frozenset({ev.UNSCALE, ev.STEP, ev.SCALER_UPDATE, ev.OPAQUE, ev.CONSTRUCT})

    def __init__(self, model, facts: ScalerFacts) -> None:
        super().__init__(model)
        self.facts = facts
        self.unscales: Dict[Event, Set[Event]] = {}
        self.steps: Dict[Event, Set[Event]] = {}
        self._reads: Dict[tuple, tuple] = {}  # (branch, frame) -> the scalers its test reads (``_scalers_read``)

    def commit(self) -> None:
        for e, by in self.unscales.items():
            self.facts.repeated_unscales.setdefault(e, set()).update(by)
        for e, by in self.steps.items():
            self.facts.steps_without_update.setdefault(e, set()).update(by)

    def on_unseen_call(self, e: Event, states, ctx: Ctx):
        return {s._replace(ops=frozenset()) for s in states}

    def on_handler(self, states, t, ctx: Ctx):
        """An exception out of a ``try`` that steps, unscales or updates (``except RuntimeError`` around
        ``scaler.step(opt); scaler.update()``, or around a helper that does) leaves the scaler in a state we
        cannot know: the handler starts from nothing known."""
        if self.kinds_below(t.body) & {ev.STEP, ev.UNSCALE, ev.SCALER_UPDATE}:
            return {s._replace(ops=frozenset()) for s in states}
        return states

    def on_arm(self, br, index: int, states, ctx: Ctx):
        """A test that reads a scaler's own state (``scaler._per_optimizer_states[id(opt)]["stage"]``,
        ``scaler.is_enabled()``) decides on what we track: each arm starts knowing nothing of that scaler."""
        test = getattr(br.node, "test", None)
        if test is None or not any(s.ops for s in states):
            return states
        key = (id(br), ctx.frame)
        read = self._reads.get(key)
        if read is None:
            read = self._reads[key] = self._scalers_read(test, ctx.frame)
        if not read:
            return states
        # a role read where it is tested and where it was used may be two objects for one attribute: by key
        return {s._replace(ops=frozenset(o for o in s.ops if id(o[0]) not in read[0] and o[0].key not in read[1]))
                for s in states}

    def _scalers_read(self, test, frame: Frame) -> tuple:
        """The scalers an expression reads the state of, also through names assigned from such a read
        (``state = scaler._per_optimizer_states[id(opt)]`` ... ``if state["stage"] ...``): (their ids, their
        keys), or () when it reads none."""
        exprs = [test]
        for n in descendants(test):
            if isinstance(n, cst.Name):
                exprs.extend(v for v, where in self.m.values.assigned_values(n, frame.fn) or () if where is frame.fn)
        roles = [r for x in exprs for r in (
            self._role(n.value, frame) for n in descendants(x) if isinstance(n, cst.Attribute) and _names_object(n.value))
            if r is not None and r.kind == SCALER]
        return (frozenset(id(r) for r in roles), frozenset(r.key for r in roles if r.key)) if roles else ()

    def event(self, e: Event, states: Set[ScalerBook], ctx: Ctx) -> Set[ScalerBook]:
        frame = ctx.frame
        if e.kind == ev.SCALER_UPDATE:
            scaler = self._role(e.target, frame)
            if scaler is None or scaler.kind != SCALER:
                return states
            return {s._replace(ops=frozenset(o for o in s.ops if o[0] is not scaler)) for s in states}
        if e.kind == ev.OPAQUE:
            return {self._handed_away(s, e, frame) for s in states}
        if e.kind == ev.CONSTRUCT:  # ``scaler = GradScaler()`` again: a new scaler, nothing unscaled yet
            scaler = self._built_scaler(e, frame)
            if scaler is None:
                return states
            # the name's role where it is bound and where it is read may be two objects: one variable
            same = (lambda r: r is scaler) if scaler.key is None else (lambda r: r is scaler or r.key == scaler.key)
            return {s._replace(ops=frozenset(o for o in s.ops if not same(o[0]))) for s in states}
        # unscale_(opt) / step(opt) of a scaler
        scaler = self._role(e.target, frame)
        if scaler is None or scaler.kind != SCALER:
            return states
        args = positional_args(e.call) if e.call is not None else []
        opt = self._role(args[0], frame) if args and _names_object(args[0]) else None
        if not self._counts(scaler, e, frame) or opt is None or opt.kind != OPTIMIZER:
            return {s._replace(ops=frozenset(o for o in s.ops if o[0] is not scaler)) for s in states}
        out = set()
        for s in states:
            for sc, op, st, by in s.ops:
                if sc is not scaler or op is not opt:
                    continue
                if st == STEPPED:
                    self.steps.setdefault(by, set()).add(e)
                elif e.kind == ev.UNSCALE:
                    self.unscales.setdefault(e, set()).add(by)
            rest = frozenset(o for o in s.ops if not (o[0] is scaler and o[1] is opt))
            out.add(s._replace(ops=rest | {(scaler, opt, UNSCALED if e.kind == ev.UNSCALE else STEPPED, e)}))
        return out

    def _built_scaler(self, e: Event, frame: Frame) -> Optional[Role]:
        """The scaler a constructor call builds and assigns (``scaler = GradScaler()``), if it is one."""
        role = self._role(e.assigned, frame) if e.assigned is not None else None
        return role if role is not None and role.kind == SCALER else None

    def inert_event(self, e: Event, frame: Frame) -> bool:
        """A call we cannot see that is handed no scaler and no optimizer: a book holds only (scaler,
        optimizer) pairs, so ``_handed_away`` changes none; so does building anything but a scaler."""
        if e.kind == ev.CONSTRUCT:
            return self._built_scaler(e, frame) is None
        if e.kind != ev.OPAQUE:
            return False
        return e.call is None or all(r.kind not in (SCALER, OPTIMIZER) for r in self._touched(e, frame).values())

    def _touched(self, e: Event, frame: Frame) -> Dict[int, Role]:
        """The roles a call we cannot see is handed (its arguments, its receiver), by id."""
        exprs = [a.value for a in e.call.args] + ([e.target] if e.target is not None else [])
        touched = {}
        for x in exprs:
            role = self._role(x, frame) if _names_object(x) else None
            if role is not None:
                touched[id(role)] = role
        return touched

    def _handed_away(self, s: ScalerBook, e: Event, frame: Frame) -> ScalerBook:
        """A call we cannot see that receives a scaler or an optimizer may unscale, step or update it."""
        if not s.ops or e.call is None:
            return s
        touched = self._touched(e, frame)
        if not touched:
            return s
        return s._replace(ops=frozenset(o for o in s.ops if id(o[0]) not in touched and id(o[1]) not in touched))

    def _role(self, expr, frame: Frame) -> Optional[Role]:
        if expr is None:
            return None
        try:
            return self.roles.resolve(expr, frame)
        except RecursionError:  # pragma: no cover - defensive
            return None

    def _counts(self, scaler: Role, e: Event, frame: Frame) -> bool:
        """A GradScaler built here, enabled, and never handed to code that keeps it."""
        if scaler.evidence != "constructor" or scaler.ctor is None:
            return False
        enabled = keyword_arg(scaler.ctor, "enabled")
        if isinstance(enabled, cst.Name) and enabled.value == "False":
            return False
        return not self.m.scaler_handed_over(e.target, frame.fn)


def _names_object(expr) -> bool:
    """A name, an attribute chain or an entry of one (``optimizer_list[0]``, ``parts["opt"]``)."""
    while isinstance(expr, cst.Subscript):
        expr = expr.value
    return dotted(expr) is not None
