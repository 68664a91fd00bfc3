"""Clips of partial sums: gradient clipping on micro-batches whose step is skipped.

With gradient accumulation the optimizer steps once per window; a clip that runs after every micro-batch's
backward rescales the sum so far, the next micro-batch's backward adds unclipped gradients to it, and the
update that is finally applied is not the clipped sum of the window's gradients. Every root function is interpreted over all paths (see
``interp.Interp``: periodic accumulation tests carry their phase around the loop). The state is the last
backward pass on this path and the clips that ran after it with no step or ``zero_grad`` since; a clip is
reported when, on some path, the same backward statement runs again before any step. Only the torch clip
functions count (a wrapper's clip may belong to a wrapper whose step is a no-op between windows), only
unscaled backward passes (with a GradScaler the repeated ``unscale_`` is LL406's), and a call we cannot
see that may step, zero or backpropagate (its effect summary, effects.py) ends what we know.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, NamedTuple, Optional, Set, Tuple

from looplint.model import events as ev
from looplint.model.events import Event
from looplint.model.interp import Ctx, Interp, OverBudget
from looplint.model.roles import ENGINE, OPTIMIZER, Frame, Role
from looplint.model.scopes import dotted, positional_args


class ClipWindow(NamedTuple):
    backward: Optional[Event] = None  # the last unscaled backward pass on this path
    pending: FrozenSet[Tuple[Event, Event]] = frozenset()  # (clip, the backward before it), no step since
    assume: FrozenSet[Tuple[str, bool]] = frozenset()


def analyse(model) -> Dict[Event, Set[Event]]:
    """clip event -> the backward passes that run again after it before any step."""
    out: Dict[Event, Set[Event]] = {}
    for fn in model.roots():
        if ev.CLIP not in model.reached_kinds(fn):
            continue
        run = _Run(model)
        try:
            run.run(fn, ClipWindow(), cyclic=model.is_per_step(fn))
        except OverBudget:
            continue
        for clip, bws in run.hits.items():
            out.setdefault(clip, set()).update(bws)
    return out


class _Run(Interp):
    KINDS = frozenset({ev.BACKWARD, ev.CLIP, ev.STEP, ev.ZERO, ev.GRAD_CLEAR, ev.GRAD_WRITE, ev.MANUAL_UPDATE,
                       ev.UNSCALE, ev.OPAQUE})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.hits: Dict[Event, Set[Event]] = {}
        self._opts: Optional[Tuple[Role, ...]] = None

    def on_unseen_call(self, e: Event, states, ctx: Ctx):
        return {ClipWindow(assume=s.assume) for s in states}

    def inert_event(self, e: Event, frame: Frame) -> bool:
        """A call we cannot see that reaches no optimizer or scaler and cannot run backward: the window goes
        on."""
        if e.kind != ev.OPAQUE:
            return False
        effect = self.m.effects.of(e, frame, self._optimizers())
        return not (effect.optimizers or effect.may_backward or effect.scalers or self._receives_optimizer(e, frame))

    def on_handler(self, states, t, ctx: Ctx):
        """An exception out of a ``try`` that steps (``except RuntimeError`` around ``opt.step()``, or around
        a helper that steps) skips that update on purpose: the clips before it belong to no micro-batch, the
        window ends."""
        if ev.STEP in self.kinds_below(t.body):
            return {ClipWindow(assume=s.assume) for s in states}
        return states

    def event(self, e: Event, states, ctx: Ctx):
        k = e.kind
        if k == ev.BACKWARD:
            if e.scaled or e.wrapper or e.dist:
                return {ClipWindow(assume=s.assume) for s in states}
            for s in states:
                for clip, before in s.pending:
                    if before is e:
                        self.hits.setdefault(clip, set()).add(e)
            return {s._replace(backward=e) for s in states}
        if k == ev.CLIP:
            if not self._torch_clip(e):
                return {ClipWindow(assume=s.assume) for s in states}
            return {s._replace(pending=s.pending | {(e, s.backward)}) if s.backward is not None else s for s in states}
        if k == ev.OPAQUE:
            if not self.inert_event(e, ctx.frame):
                return {ClipWindow(assume=s.assume) for s in states}
            return states
        # a step, a zero_grad, gradients written or unscaled by hand: the window (or what we know) ends
        return {ClipWindow(assume=s.assume) for s in states}

    def _receives_optimizer(self, e: Event, frame: Frame) -> bool:
        exprs = ([e.target] if e.target is not None else []) + [a.value for a in e.call.args] if e.call is not None else []
        for x in exprs:
            role = self.roles.resolve(x, frame) if dotted(x) else None
            if role is not None and role.kind in (OPTIMIZER, ENGINE):
                return True
        return False

    def _optimizers(self) -> Tuple[Role, ...]:
        """The optimizers the file steps (directly or through ``scaler.step``): what an unseen call may step."""
        if self._opts is None:
            found = {}
            for fn in self.m.scopes.functions:
                for i in self.m.walk(fn):
                    if isinstance(i, Event) and i.kind == ev.STEP and i.target is not None:
                        for expr in [i.target] + (positional_args(i.call)[:1] if i.call is not None else []):
                            role = self.roles.resolve(expr, Frame(fn)) if dotted(expr) else None
                            if role is not None and role.kind == OPTIMIZER:
                                found[id(role)] = role
            self._opts = tuple(found.values())
        return self._opts

    def _torch_clip(self, e: Event) -> bool:
        if e.call is None:
            return False
        q = self.m.scopes.qualify(e.call.func) or ""
        return q.startswith("torch.nn.utils")
