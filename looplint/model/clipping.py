"""Gradient clipping placement: clips that run when no optimizer holds gradients a step will apply.

Each root function is interpreted over all paths (the control flow of ``precision._Run``), entering the
functions of this module it calls. The state is the set of optimizers holding gradients from a backward
pass that no step of theirs (and no zero_grad) has consumed yet, or *unknown*: at the entry of the root
(its caller may have run backward) and after a call we cannot see that receives the optimizer, the model
or the loss. Optimizers are the roles the root steps, each as its frame resolves it
(``interp.reachable_optimizers``: ``parts["opt"]`` in the loop and ``opt`` in the helper it is handed to
are one). A module's zero_grad (``model.zero_grad()``, ``for p in model.parameters(): p.grad = None``)
clears the optimizers whose parameters it covers. A clip is useless when, on every path, the state is known and empty, and at least one path
got there through a step or zero_grad (so the gradients it clips are either already applied or about to
be discarded): clipping before ``backward()`` or after ``step()``.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, List, NamedTuple, Optional, Set, Tuple


from looplint.model import events as ev
from looplint.model.events import Event
from looplint.model.interp import Ctx, Interp, OverBudget
from looplint.model.roles import ENGINE, MODULE, OPTIMIZER, SCALER, Frame, Role, covers
from looplint.model.roles import UNKNOWN as UNKNOWN_ROLE
from looplint.model.scopes import last_name, positional_args

ENTRY, UNKNOWN = "entry", "unknown"


class ClipState(NamedTuple):
    # optimizers with unconsumed backward gradients; ENTRY / UNKNOWN when we cannot tell
    pending: object = ENTRY
    settled_by: Optional[Event] = None  # the step / zero_grad that last emptied ``pending``
    assume: FrozenSet[Tuple[str, bool]] = frozenset()


def analyse(model) -> Dict[Event, Set[Event]]:
    """clip event -> the steps / zero_grads that left nothing for it to clip."""
    incoming: Dict[Event, List[ClipState]] = {}
    for fn in model.roots():
        if ev.CLIP not in model.reached_kinds(fn):
            continue
        run = _ClipRun(model)
        try:
            run.opts = frozenset(run.reachable_optimizers(fn, (ev.STEP,), built=False))
            run.run(fn, ClipState())
        except OverBudget:
            continue
        for clip, states in run.clips.items():
            incoming.setdefault(clip, []).extend(states)
    out: Dict[Event, Set[Event]] = {}
    for clip, states in incoming.items():
        if states and all(isinstance(s.pending, frozenset) and not s.pending for s in states):
            out[clip] = {s.settled_by for s in states if s.settled_by is not None}
    return {c: s for c, s in out.items() if s}


class _ClipRun(Interp):
    KINDS = frozenset({ev.BACKWARD, ev.CLIP, ev.STEP, ev.ZERO, ev.GRAD_CLEAR, ev.GRAD_WRITE, ev.MANUAL_UPDATE, ev.OPAQUE})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.clips: Dict[Event, Set[ClipState]] = {}
        self.opts: FrozenSet[Role] = frozenset()  # the optimizers the root steps (interp.reachable_optimizers)

    def on_unseen_call(self, e: Event, states, ctx: Ctx):
        return {s._replace(pending=UNKNOWN) for s in states}

    def event(self, e: Event, states, ctx: Ctx):
        frame = ctx.frame
        k = e.kind
        if k == ev.BACKWARD:
            if e.dist:
                return states
            if e.wrapper:  # accelerator.backward(loss) may also step (a wrapped optimizer)
                return {s._replace(pending=UNKNOWN) for s in states}
            return {s._replace(pending=ALL) for s in states}
        if k == ev.CLIP:
            self.clips.setdefault(e, set()).update(states)
            return states
        if k == ev.STEP and e.target is not None:
            role, expr = self.roles.resolve(e.target, frame), e.target
            closure = e.closure or e.closure_unknown
            if role is not None and role.kind == SCALER and e.call is not None and positional_args(e.call):
                # ``scaler.step(optimizer[, closure])``: the optimizer is its first argument
                closure = len(positional_args(e.call)) > 1 or any(
                    a.keyword is not None and a.keyword.value == "closure" for a in e.call.args)
                expr = positional_args(e.call)[0]
                role = self.roles.resolve(expr, frame)
            opt = self._optimizer(role, expr)
            if opt is not None:
                if closure:
                    return {s._replace(pending=UNKNOWN) for s in states}
                return {self._settle(s, opt, e) for s in states}
            if role is not None and role.kind not in (OPTIMIZER, SCALER, ENGINE, "unknown"):
                return states  # a scheduler, a sampler ...
            return {s._replace(pending=UNKNOWN) for s in states}
        if k in (ev.ZERO, ev.GRAD_CLEAR):
            role = self.roles.resolve(e.target, frame) if (k == ev.ZERO and e.target is not None) else None
            opt = self._optimizer(role, e.target) if k == ev.ZERO else None
            if opt is not None:
                return {self._settle(s, opt, e) for s in states}
            # ``model.zero_grad()``, ``for p in model.parameters(): p.grad = None``: a module's gradients
            module = e.target if k == ev.ZERO else e.param_loop_module
            if module is not None and (role is None or role.kind in (MODULE, UNKNOWN_ROLE)):
                key = self.roles.module_key(module, frame)
                return {self._settle_module(s, key, e) for s in states}
            return {s._replace(pending=UNKNOWN) for s in states}
        if k in (ev.GRAD_WRITE, ev.MANUAL_UPDATE, ev.UNSCALE):
            return {s._replace(pending=UNKNOWN) for s in states} if k != ev.UNSCALE else states
        if k == ev.OPAQUE and not self.inert_event(e, frame):
            return {s._replace(pending=UNKNOWN) for s in states}
        return states

    def inert_event(self, e: Event, frame: Frame) -> bool:
        """What a call we cannot see may do to gradients, by def-use (effects.py): ``scaler.update()``, a
        logger or a loss helper leave them alone; a call handed an optimizer, a trained module or ``self``
        may not."""
        if e.kind != ev.OPAQUE:
            return False
        if e.call is None:
            return True
        eff = self.m.effects.of(e, frame, self._optimizer_roles())
        return not (eff.optimizers or eff.may_backward or eff.modules or eff.receives_self)

    def _optimizer_roles(self) -> tuple:
        if not hasattr(self, "_roles_cache"):
            self._roles_cache = tuple({r for rs in self.m.facts.acted_on.values() for r in rs if r.kind == OPTIMIZER})
        return self._roles_cache

    def _optimizer(self, role: Optional[Role], expr) -> Optional[Role]:
        """The optimizer a step or zero_grad acts on: its role in this frame, or when the role cannot be
        resolved and the name is one optimizers are stepped or zeroed under in the file, the only one."""
        if role is not None:
            return role if role.kind == OPTIMIZER else None
        if last_name(expr) in self._optimizer_names() and len(self.opts) == 1:
            return next(iter(self.opts))
        return None

    def _settle(self, s: ClipState, opt: Role, e: Event) -> ClipState:
        """Optimizers are told apart by their roles (``parts["opt"]`` in the loop and ``opt`` in the helper
        it is handed to are one optimizer)."""
        if opt not in self.opts:
            return s._replace(pending=UNKNOWN)
        if s.pending is ALL:
            # every optimizer received the gradients: only this one consumed them
            others = frozenset(o for o in self.opts if o is not opt)
            return s._replace(pending=others, settled_by=e if not others else s.settled_by)
        if isinstance(s.pending, frozenset):
            left = s.pending - {opt}
            return s._replace(pending=left, settled_by=e if not left else s.settled_by)
        if len(self.opts) == 1:  # the only optimizer: whatever was pending is consumed or cleared now
            return s._replace(pending=frozenset(), settled_by=e)
        return s

    def _settle_module(self, s: ClipState, key, e: Event) -> ClipState:
        """A module's zero_grad clears the optimizers that hold its parameters (``roles.covers``) when every
        optimizer's parameters are readable; when some are not, it is the only optimizer's, or unknown."""
        if key is None or not self.opts:
            return s._replace(pending=UNKNOWN)
        if any(o.modules is None for o in self.opts):
            return s._replace(pending=frozenset(), settled_by=e) if len(self.opts) == 1 else s._replace(pending=UNKNOWN)
        for o in sorted((o for o in self.opts if covers(o, key)), key=lambda r: r.key or r.label):
            s = self._settle(s, o, e)
        return s

    def _optimizer_names(self) -> Set[str]:
        """The names optimizers are stepped or zeroed under anywhere in the file."""
        if not hasattr(self, "_opt_cache"):
            found: Set[str] = set()
            for fn in self.m.scopes.functions:
                for i in self.m.walk(fn):
                    if isinstance(i, Event) and i.kind in (ev.STEP, ev.ZERO) and i.target is not None:
                        expr = i.target
                        role = self.roles.resolve(expr, Frame(fn))
                        if role is not None and role.kind == SCALER and i.call is not None and positional_args(i.call):
                            expr = positional_args(i.call)[0]
                            role = self.roles.resolve(expr, Frame(fn))
                        if role is not None and role.kind == OPTIMIZER and last_name(expr):
                            found.add(last_name(expr))
            self._opt_cache = found
        return self._opt_cache


class _All:
    def __repr__(self) -> str:  # pragma: no cover
        return "ALL"


ALL = _All()
