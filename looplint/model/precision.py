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
from looplint.model.flow import Interpreter
from looplint.model.events import Block, Branch, Event, Jump, Loop, Try
from looplint.model.roles import OPTIMIZER, PASS_THROUGH, SCALER, Frame, Role
from looplint.model.scopes import Function, dotted, keyword_arg, last_name

MAX_STATES = 48
# A role known from its constructor, or from its name (``scaler.scale(loss).backward()`` is a scaler's
# spelling; a parameter named ``optimizer``); framework-made objects may be wrappers that scale themselves.
TRUSTED = ("constructor", "name")
MAX_DEPTH = 3


class AmpState(NamedTuple):
    scaled: Optional[Event] = None  # the scaled backward whose gradients no step consumed yet
    unscaled: bool = False  # scaler.unscale_ ran since that backward
    clips: FrozenSet[Event] = frozenset()  # clips that ran on still-scaled gradients
    plain: bool = False  # an unscaled backward ran since the last step
    assume: FrozenSet[Tuple[str, bool, FrozenSet[str]]] = frozenset()


class _GiveUp(Exception):
    pass


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
        if not any(isinstance(i, Event) and i.kind == ev.BACKWARD and i.scaled for i in model.walk(fn)):
            continue
        run = _Run(model, facts)
        try:
            run.block(model.builder.body(fn), {AmpState()}, Frame(fn), (fn,))
        except _GiveUp:
            continue
        run.commit()
    for step, states in facts._step_in.items():
        if states and all(s.scaled is not None and not s.unscaled and not s.plain for s in states):
            facts.raw_steps[step] = {s.scaled for s in states}
    for clip, states in facts._clip_in.items():
        if states and all(s.scaled is not None and not s.unscaled and not s.plain for s in states) and facts._clip_then.get(clip):
            facts.scaled_clips[clip] = facts._clip_then[clip]
    return facts


class _Outcome:
    def __init__(self) -> None:
        self.normal: Set[AmpState] = set()
        self.brk: Set[AmpState] = set()
        self.cont: Set[AmpState] = set()
        self.ret: Set[AmpState] = set()


class _Run:
    def __init__(self, model, facts: PrecisionFacts) -> None:
        self.m = model
        self.roles = model.roles
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

    # -- control flow ------------------------------------------------------------------------------------
    def block(self, block: Block, states: Set[AmpState], frame: Frame, stack) -> _Outcome:
        out = _Outcome()
        cur = set(states)
        for item in block.items:
            if not cur:
                break
            o = self.item(item, cur, frame, stack)
            out.brk |= o.brk
            out.cont |= o.cont
            out.ret |= o.ret
            cur = o.normal
            if len(cur) > MAX_STATES:
                raise _GiveUp()
        out.normal = cur
        return out

    def item(self, item, states: Set[AmpState], frame: Frame, stack) -> _Outcome:
        if isinstance(item, Event):
            o = _Outcome()
            o.normal = self.event(item, states, frame, stack)
            return o
        if isinstance(item, Block):
            return self.block(item, states, frame, stack)
        if isinstance(item, Branch):
            return self.branch(item, states, frame, stack)
        if isinstance(item, Loop):
            return self.loop(item, states, frame, stack)
        if isinstance(item, Try):
            return self.try_(item, states, frame, stack)
        o = _Outcome()
        if isinstance(item, Jump):
            if item.kind == "break":
                o.brk = set(states)
            elif item.kind == "continue":
                o.cont = set(states)
            elif item.kind == "return":
                o.ret = set(states)
        return o

    def branch(self, br: Branch, states: Set[AmpState], frame: Frame, stack) -> _Outcome:
        out = _Outcome()
        if br.const is not None:
            arm = br.arms[0] if br.const == br.polarity else br.arms[1]
            return self.block(arm, states, frame, stack)
        for idx, arm in enumerate(br.arms):
            value = br.polarity if idx == 0 else not br.polarity
            if br.key is None or br.volatile or not self.correlate(br):
                ins = set(states)
            else:
                if len(br.arms) != 2:
                    ins = set(states)
                else:
                    ins = set()
                    for s in states:
                        known = {v for k, v, _ in s.assume if k == br.key}
                        if known and value not in known:
                            continue
                        ins.add(s._replace(assume=s.assume | {(br.key, value, br.names)}))
            if not ins:
                continue
            o = self.block(arm, ins, frame, stack)
            out.normal |= o.normal
            out.brk |= o.brk
            out.cont |= o.cont
            out.ret |= o.ret
        return out

    def loop(self, loop: Loop, states: Set[AmpState], frame: Frame, stack) -> _Outcome:
        out = _Outcome()
        entry = {_forget(s, loop.assigned) for s in states}
        seen: Set[AmpState] = set(entry)
        todo = set(entry)
        exits = set(entry)
        while todo:
            o = self.block(loop.body, todo, frame, stack)
            out.ret |= o.ret
            exits |= o.brk
            back = {self.back_edge(_forget(s, loop.assigned), loop) for s in (o.normal | o.cont)}
            exits |= {s for s in o.normal | o.cont}
            todo = back - seen
            seen |= back
            if len(seen) > MAX_STATES * 2:
                raise _GiveUp()
        o = self.block(loop.orelse, exits, frame, stack)
        out.normal = o.normal
        out.ret |= o.ret
        return out

    def correlate(self, br: Branch) -> bool:
        """Whether paths remember which arm of ``br`` they took (to pair it with a later test of the same
        condition)."""
        return True

    def back_edge(self, state, loop: Loop):
        """A state carried from the end of one iteration of ``loop`` to the start of the next."""
        return state

    def try_(self, t: Try, states: Set[AmpState], frame: Frame, stack) -> _Outcome:
        out = _Outcome()
        body = self.block(t.body, states, frame, stack)
        reach = set(states) | body.normal
        normal = set()
        for h in t.handlers:
            o = self.block(h, reach, frame, stack)
            normal |= o.normal
            out.brk |= o.brk
            out.cont |= o.cont
            out.ret |= o.ret
        o = self.block(t.orelse, body.normal, frame, stack)
        normal |= o.normal
        out.brk |= body.brk | o.brk
        out.cont |= body.cont | o.cont
        out.ret |= body.ret | o.ret
        if t.final.items:
            o = self.block(t.final, normal, frame, stack)
            normal = o.normal
        out.normal = normal
        return out

    # -- events --------------------------------------------------------------------------------------------
    def event(self, e: Event, states: Set[AmpState], frame: Frame, stack) -> Set[AmpState]:
        k = e.kind
        if k == ev.CALL and e.callee is not None:
            if e.callee in stack or len(stack) > MAX_DEPTH:
                return {AmpState(assume=s.assume) for s in states}  # unseen: forget what we knew
            o = self.block(self.m.builder.body(e.callee), states, Interpreter._bind(self, e, frame), stack + (e.callee,))
            return o.normal | o.ret
        if k == ev.BACKWARD:
            if e.scaled and self._scaler(e.target.func.value, frame):
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
            if role is not None and role.kind == OPTIMIZER and role.evidence in TRUSTED and not e.closure \
                    and not e.closure_unknown and not _wrapped(e.target, frame.fn):
                self.step_in.setdefault(e, set()).update(states)
                return {AmpState(assume=s.assume) for s in states}
            if role is not None and role.kind not in (OPTIMIZER, SCALER) and role.kind != "unknown":
                return states  # a scheduler, a sampler...
            return {AmpState(assume=s.assume) for s in states}
        if k == ev.OPAQUE and e.call is not None:
            exprs = [a.value for a in e.call.args] + ([e.target] if e.target is not None else [])
            for x in exprs:
                role = self._role(x, frame) if dotted(x) else None
                if role is not None and role.kind in (OPTIMIZER, SCALER, "engine", "accelerator"):
                    return {AmpState(assume=s.assume) for s in states}
        return states

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


def _wrapped(expr, fn: Function) -> bool:
    """Whether the optimizer name was ever assigned the result of a wrapper (``accelerator.prepare``,
    ``amp.initialize``, ``fabric.setup``...): such optimizers may handle the loss scale themselves."""
    assigns: List = []
    if isinstance(expr, cst.Name):
        f = fn
        while f is not None:
            assigns.extend(f.assigns.get(expr.value, []))
            f = f.parent
    elif isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        f = fn
        while f is not None and f.cls is None:
            f = f.parent
        if f is not None:
            assigns.extend(f.cls.attrs.get(expr.attr.value, []))
    for a in assigns:
        v = a.value
        if isinstance(v, cst.Call) and last_name(v.func) in PASS_THROUGH:
            return True
    return False


def _forget(s: AmpState, assigned: FrozenSet[str]) -> AmpState:
    if not s.assume:
        return s
    keep = frozenset(a for a in s.assume if not (a[2] & assigned))
    return s if keep == s.assume else s._replace(assume=keep)
