"""Mixed precision: which steps and clips meet gradients that a ``GradScaler`` scaled.

Every function of the module is interpreted once from a clean state (nothing scaled), entering the
functions of this module it calls, over all paths through branches (an ``if`` on the same test twice
takes the same arm both times), loops (to a fixpoint) and ``try``. The state says whether the gradients
come from a scaled backward (``scaler.scale(loss).backward()``) that no step has consumed yet, whether
``scaler.unscale_`` ran since, and which clips ran on still-scaled gradients. A call that hands the
optimizer or the scaler to code we cannot see ends what we know (doubt is silence).
"""
from __future__ import annotations

from typing import Dict, FrozenSet, List, NamedTuple, Optional, Set, Tuple

import libcst as cst

from looplint.model import events as ev
from looplint.model.events import Event
from looplint.model.interp import Ctx, Interp, OverBudget
from looplint.model.roles import OPTIMIZER, SCALER, Frame, Role
from looplint.model.scopes import Function, dotted, keyword_arg

# A role known from its constructor, or from its name (``scaler.scale(loss).backward()`` is a scaler's
# spelling; a parameter named ``optimizer``); framework-made objects may be wrappers that scale themselves.
TRUSTED = ("constructor", "name")


class AmpState(NamedTuple):
    scaled: Optional[Event] = None  # the scaled backward whose gradients no step consumed yet
    unscaled: bool = False  # scaler.unscale_ ran since that backward
    clips: FrozenSet[Event] = frozenset()  # clips that ran on still-scaled gradients
    plain: bool = False  # an unscaled backward ran since the last step
    assume: FrozenSet[Tuple[str, bool]] = frozenset()


class PrecisionFacts:
    """``raw_steps``: optimizer steps reached only by scaled, never-unscaled gradients, with the scaled
    backward(s) that fed them. ``scaled_clips``: clips reached only by scaled gradients (no unscale_
    before them) whose gradients a ``scaler.step`` then consumed."""

    def __init__(self) -> None:
        self.raw_steps: Dict[Event, Set[Event]] = {}
        self.scaled_clips: Dict[Event, Set[Event]] = {}  # clip -> the scaler.step calls that followed
        self._clip_in: Dict[Event, List[AmpState]] = {}
        self._step_in: Dict[Event, List[AmpState]] = {}
        self._clip_then: Dict[Event, Set[Event]] = {}


def analyse(model) -> PrecisionFacts:
    facts = PrecisionFacts()
    for fn in model.scopes.functions:
        if ev.BACKWARD not in model.reached_kinds(fn) or not any(
                isinstance(i, Event) and i.kind == ev.BACKWARD and i.scaled for i in model.walk(fn)):
            continue
        run = _Run(model, facts)
        try:
            run.run(fn, AmpState())
        except OverBudget:
            continue
        run.commit()
    for step, states in facts._step_in.items():
        if states and all(s.scaled is not None and not s.unscaled and not s.plain for s in states):
            facts.raw_steps[step] = {s.scaled for s in states}
    for clip, states in facts._clip_in.items():
        if states and all(s.scaled is not None and not s.unscaled and not s.plain for s in states) and facts._clip_then.get(clip):
            facts.scaled_clips[clip] = facts._clip_then[clip]
    return facts


class _Run(Interp):
    """Mixed-precision state over the paths of one function (see the module docstring)."""

    KINDS = frozenset({ev.BACKWARD, ev.UNSCALE, ev.CLIP, ev.STEP, ev.OPAQUE})

    def __init__(self, model, facts: Optional[PrecisionFacts]) -> None:
        super().__init__(model)
        self.facts = facts
        self.step_in: Dict[Event, Set[AmpState]] = {}
        self.clip_in: Dict[Event, Set[AmpState]] = {}
        self.clip_then: Dict[Event, Set[Event]] = {}

    def commit(self) -> None:
        for e, states in self.step_in.items():
            self.facts._step_in.setdefault(e, []).extend(states)
        for e, states in self.clip_in.items():
            self.facts._clip_in.setdefault(e, []).extend(states)
        for e, steps in self.clip_then.items():
            self.facts._clip_then.setdefault(e, set()).update(steps)

    def on_unseen_call(self, e: Event, states, ctx: Ctx):
        return {AmpState(assume=s.assume) for s in states}  # unseen: forget what we knew

    def inert_event(self, e: Event, frame: Frame) -> bool:
        """A call we cannot see that receives no optimizer, scaler, engine or accelerator."""
        return e.kind == ev.OPAQUE and not self._hands_over(e, frame)

    # -- events --------------------------------------------------------------------------------------------
    def event(self, e: Event, states: Set[AmpState], ctx: Ctx) -> Set[AmpState]:
        frame = ctx.frame
        k = e.kind
        if k == ev.BACKWARD:
            scaler = self.m.values.scaled_by(e.target, frame.fn) if e.scaled else None
            if scaler is not None and self._scaler(scaler[0], frame if scaler[1] is frame.fn else Frame(scaler[1])):
                return {s._replace(scaled=e, unscaled=False, clips=frozenset(), plain=False) for s in states}
            if e.wrapper or e.dist:
                return {AmpState(assume=s.assume) for s in states}
            return {s._replace(plain=True) for s in states}
        if k == ev.UNSCALE:
            return {s._replace(unscaled=True) for s in states}
        if k == ev.CLIP:
            if not self._raw_clip(e):
                return {s._replace(clips=frozenset(), unscaled=True) for s in states}  # a wrapper unscales first
            self.clip_in.setdefault(e, set()).update(states)
            return {s._replace(clips=s.clips | {e}) if s.scaled is not None and not s.unscaled else s for s in states}
        if k == ev.STEP:
            role = self._role(e.target, frame)
            if role is not None and role.kind == SCALER:
                for s in states:
                    for c in s.clips:
                        self.clip_then.setdefault(c, set()).add(e)
                return {AmpState(assume=s.assume) for s in states}
            if role is not None and role.kind == OPTIMIZER and role.cls_name in self.m.scopes.classes:
                return {AmpState(assume=s.assume) for s in states}  # an optimizer class of this module: its step is its own
            if role is not None and role.kind == OPTIMIZER and role.evidence in TRUSTED and not e.closure \
                    and not e.closure_unknown and not self._handed_over(states):
                self.step_in.setdefault(e, set()).update(states)
                return {AmpState(assume=s.assume) for s in states}
            if role is not None and role.kind not in (OPTIMIZER, SCALER) and role.kind != "unknown":
                return states  # a scheduler, a sampler...
            return {AmpState(assume=s.assume) for s in states}
        if k == ev.OPAQUE and self._hands_over(e, frame):
            return {AmpState(assume=s.assume) for s in states}
        return states

    def _hands_over(self, e: Event, frame: Frame) -> bool:
        """Whether a call we cannot see receives an optimizer, a scaler, an engine or an accelerator."""
        if e.call is None:
            return False
        for x in [a.value for a in e.call.args] + ([e.target] if e.target is not None else []):
            role = self._role(x, frame) if dotted(x) else None
            if role is not None and role.kind in (OPTIMIZER, SCALER, "engine", "accelerator"):
                return True
        return False

    def _handed_over(self, states) -> bool:
        """Whether the GradScaler that scaled these gradients is handed to code outside the module (a
        framework's precision plugin that then owns it): only then may a raw step be the owner's business.
        A wrapper never owns a scaler it was not given (frameworks.py)."""
        for s in states:
            if s.scaled is None:
                continue
            got = self.m.values.scaled_by(s.scaled.target, self._scope_of(s.scaled))
            if got is not None and self.m.scaler_handed_over(got[0], got[1]):
                return True
        return False

    def _scope_of(self, e: Event) -> Function:
        return self.m.function_of(e) or self.m.scopes.module

    def _role(self, expr, frame: Frame) -> Optional[Role]:
        if expr is None:
            return None
        try:
            return self.roles.resolve(expr, frame)
        except RecursionError:  # pragma: no cover - defensive
            return None

    def _scaler(self, expr, frame: Frame) -> bool:
        role = self._role(expr, frame)
        if role is None or role.kind != SCALER or role.evidence not in TRUSTED:
            return False
        enabled = keyword_arg(role.ctor, "enabled") if role.ctor is not None else None
        return not (isinstance(enabled, cst.Name) and enabled.value == "False")  # GradScaler(enabled=False) scales by 1

    def _raw_clip(self, e: Event) -> bool:
        """``torch.nn.utils.clip_grad_norm_`` and friends (not a wrapper's clip method that unscales)."""
        if e.call is None:
            return False
        q = self.m.scopes.qualify(e.call.func) or ""
        if q.startswith("torch.nn.utils"):
            return True
        text = dotted(e.call.func) or ""
        return text.endswith(("nn.utils.clip_grad_norm_", "nn.utils.clip_grad_value_"))


