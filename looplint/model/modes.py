"""Train/eval mode: which training passes run with a module left in eval mode.

Each root function is interpreted over all paths (the control flow of ``precision._Run``), entering the
functions of this module it calls with their parameters renamed to the caller's expressions, so a
``validate(model)`` helper and ``self.validate()`` act on the caller's module. The state maps module
expressions (``model``, ``self.model``; ``m.to(dev).train()`` is ``m``) to the mode last set, with the
``eval()`` call that set it. A call we cannot see that receives the module makes its mode unknown.

A backward pass that runs while a module is in eval mode is a *leak* when the module is trained elsewhere
(some ``train()`` call sets it) and the ``eval()`` either ran in an earlier iteration of a loop around it
(``eval()`` at the end of the epoch, ``train()`` only before the loop), or ran in an evaluation helper
(no backward or step of its own, a loop over data or an evaluation name) that returned without
restoring train mode (dev case B29: ``validate()`` called mid-epoch from the batch loop).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Set, Tuple

import libcst as cst

from looplint.model.walk import Walker

from looplint.model import events as ev
from looplint.model.events import Event, Loop, code
from looplint.model.interp import Ctx, Interp, OverBudget, items_below
from looplint.model.roles import OPTIMIZER, SCALER, Frame, covers, overlaps, part_of
from looplint.model.scopes import Function, positional_args

TRAIN, EVAL = "train", "eval"
CHAIN = frozenset({"to", "cuda", "cpu", "float", "half", "double", "bfloat16", "train", "eval", "requires_grad_"})
EVALUATION_NAME = re.compile(r"val|eval|test|infer|predict|sampl|generat|visuali|metric|score|inspect|benchmark", re.I)


def _unchain(expr):
    """``m`` for ``m.to(device)``, ``m.cuda()``, ``m.eval()`` (calls that return the module itself)."""
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in CHAIN:
        expr = expr.func.value
    return expr


def _reads_training(fn: Function) -> bool:
    """Whether the function reads ``X.training`` (it remembers the mode, usually to restore it)."""
    class V(Walker):
        hit = False

        def visit_Attribute(self, n: cst.Attribute) -> None:
            if n.attr.value == "training":
                V.hit = True

    V().walk(fn.node)
    return V.hit


class ModeState(NamedTuple):
    # (module key, mode, the eval() call that set it, the function of that call, crossed a loop back edge)
    modes: FrozenSet[tuple] = frozenset()
    assume: FrozenSet[Tuple[str, bool]] = frozenset()


def _mode_of(s: ModeState, key: str):
    """The entry that sets the mode of module ``key`` (its own, or one of a module that contains it)."""
    best = None
    for m in s.modes:
        if part_of(key, m[0]):
            if best is None or len(m[0]) > len(best[0]):
                best = m
    return best


@dataclass(eq=False)
class EvalLeak:
    eval_call: Event
    key: str  # the module's identity (Roles.module_key)
    backward: Event
    helper: Optional[Function]  # the evaluation helper that set eval mode (None: an earlier iteration)

    @property
    def module(self) -> str:
        """The module as the ``eval()`` call spells it (``self.model``)."""
        return " ".join(code(_unchain(self.eval_call.target)).split())


def analyse(model) -> List[EvalLeak]:
    found: Dict[Event, EvalLeak] = {}
    if not any(isinstance(i, Event) and i.kind == ev.MODE for fn in model.scopes.functions
               for i in items_below(model.builder.body(fn))):
        return []
    for fn in model.roots():
        run = _ModeRun(model)
        try:
            run.run(fn, ModeState())
        except OverBudget:
            continue
        for leak in run.judge():
            found.setdefault(leak.eval_call, leak)
    return list(found.values())


class _ModeRun(Interp):
    """Train/eval mode per module over the paths of a root. A module with no entry in the state is in
    train mode (PyTorch's default: whatever the caller hands in was built in train mode)."""

    KINDS = frozenset({ev.MODE, ev.STEP, ev.OPAQUE, ev.CONSTRUCT})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.trained_by: Set[tuple] = set()  # (module key, id of an optimizer that stepped with it in train mode)
        self.candidates: List[tuple] = []  # (eval event, key, eval fn, crossed, step event, step fn, opt id)
        self._in_loop: Dict[Loop, Set[Event]] = {}
        self._evaluation: Dict[Function, bool] = {}
        self._loop_targets: Dict[Function, Set[str]] = {}

    # -- module keys -----------------------------------------------------------------------------------------
    def key(self, expr, frame: Frame) -> Optional[str]:
        return self.roles.module_key(expr, frame) if expr is not None else None

    def gates(self, a) -> bool:
        """A test with an arm that sets a mode is kept like one that gates gradient events: ``if cfg.two:
        aux.eval()`` ... ``if cfg.two: aux.train()`` take the same arm however many paths meet between them."""
        return super().gates(a) or (not a[0].startswith("mod:") and self.m.gates_mode(a[0]))

    def on_unseen_call(self, e: Event, states, ctx: Ctx):
        return {s._replace(modes=frozenset()) for s in states}

    def inert_event(self, e: Event, frame: Frame) -> bool:
        """A call we cannot see that receives no module and not ``self``: no mode can change."""
        if e.kind != ev.OPAQUE:
            return False
        if e.call is None:
            return True
        eff = self.m.effects.of(e, frame)
        return not eff.receives_self and not eff.modules

    # -- transfer ----------------------------------------------------------------------------------------------
    def event(self, e: Event, states, ctx: Ctx):
        k = e.kind
        frame = ctx.frame
        if k == ev.MODE and e.call is not None:
            method = e.call.func.attr.value
            root = _unchain(e.target)
            while isinstance(root, cst.Attribute):
                root = root.value
            if isinstance(root, cst.Name) and root.value in self._targets(frame.fn):
                return states  # ``for p in nets: p.train()``: which modules, and whether any, is unknown
            key = self.key(e.target, frame)
            if key is None:
                return states
            mode = TRAIN if method == "train" else EVAL
            # the module, and what it was handed when built (``Pair(teacher, student)``: its children too)
            keys = [key] + [k for k in self.roles.handed_parts(e.target, frame) if not part_of(k, key)]
            args = positional_args(e.call) or [a.value for a in e.call.args if a.keyword is not None and a.keyword.value == "mode"]
            if method == "train" and args:
                a = args[0]
                if isinstance(a, cst.Name) and a.value in ("True", "False"):
                    mode = TRAIN if a.value == "True" else EVAL
                else:
                    return {self._drop_all(s, keys) for s in states}
            if mode == TRAIN:
                return {self._set_all(s, keys, lambda k: (k, TRAIN, None, None, False)) for s in states}
            return {self._set_all(s, keys, lambda k: (k, EVAL, e, frame.fn, False)) for s in states}
        if k == ev.CONSTRUCT and e.call is not None and self.roles.ctor_kind(e.call, frame.fn)[0] == "module":
            # a module just built is in train mode (``model = Net()`` in a helper each run calls): what was
            # recorded of the object the name held before is forgotten, as for a module never set (no entry is
            # train mode; an entry would also count as trained by the optimizers that cover it)
            key = self.key(e.assigned if e.assigned is not None else e.call, frame)
            if key is None:
                return states
            return {self._built(s, key) for s in states}
        if k == ev.STEP and e.target is not None:
            opt = self._optimizer(e, frame)
            if opt is None:
                return states
            for s in states:
                for key in opt.modules or ():
                    mode = _mode_of(s, key)
                    if mode is None or mode[1] == TRAIN:  # unset: the module is in train mode by default
                        self.trained_by.add((key, id(opt)))
                for key, mode, ev_call, ev_fn, crossed in s.modes:
                    if mode == TRAIN and covers(opt, key):
                        self.trained_by.add((key, id(opt)))
                    if mode == EVAL and covers(opt, key) and not self._trains_inside(s, opt, key):
                        self.candidates.append((ev_call, key, ev_fn, crossed, e, frame.fn, id(opt)))
            return states
        if k == ev.OPAQUE and e.call is not None:
            eff = self.m.effects.of(e, frame)
            out = states
            if eff.receives_self:
                out = {s._replace(modes=frozenset(m for m in s.modes if ".self." not in m[0] and not m[0].endswith(".self"))) for s in out}
            for x in eff.modules:
                key = self.key(x, frame)
                if key is not None:
                    out = {self._drop(s, key) for s in out}
            return out
        return states

    def on_back_edge(self, state, loop: Loop):
        inside = self._events_in(loop)
        if not any(m[1] == EVAL and not m[4] and m[2] in inside for m in state.modes):
            return state
        return state._replace(modes=frozenset(
            (m[0], m[1], m[2], m[3], True) if m[1] == EVAL and m[2] in inside else m for m in state.modes))

    # -- helpers -----------------------------------------------------------------------------------------------
    @staticmethod
    def _set(s: ModeState, key: str, entry: tuple) -> ModeState:
        keep = frozenset(m for m in s.modes if not part_of(m[0], key))
        return s._replace(modes=keep | {entry})

    @classmethod
    def _set_all(cls, s: ModeState, keys: List[str], entry) -> ModeState:
        for key in keys:
            s = cls._set(s, key, entry(key))
        return s

    @classmethod
    def _drop_all(cls, s: ModeState, keys: List[str]) -> ModeState:
        for key in keys:
            s = cls._drop(s, key)
        return s

    @staticmethod
    def _built(s: ModeState, key: str) -> ModeState:
        """The state without entries for ``key`` and its submodules (those of modules holding it stay)."""
        if not any(part_of(m[0], key) for m in s.modes):
            return s
        return s._replace(modes=frozenset(m for m in s.modes if not part_of(m[0], key)))

    @staticmethod
    def _drop(s: ModeState, key: str) -> ModeState:
        return s._replace(modes=frozenset(
            m for m in s.modes if not overlaps(m[0], key)))

    def _optimizer(self, e: Event, frame: Frame):
        expr = e.target
        role = self.roles.resolve(expr, frame)
        if role is not None and role.kind == SCALER and e.call is not None and positional_args(e.call):
            expr = positional_args(e.call)[0]
            role = self.roles.resolve(expr, frame)
        return self.roles.in_frame(role, frame, expr) if role is not None and role.kind == OPTIMIZER else None

    def _targets(self, fn: Function) -> Set[str]:
        got = self._loop_targets.get(fn)
        if got is None:
            got = self._loop_targets[fn] = {n for i in items_below(self.m.builder.body(fn))
                                            if isinstance(i, Loop) for n in i.target_names}
        return got

    def _events_in(self, loop: Loop) -> Set[Event]:
        got = self._in_loop.get(loop)
        if got is None:
            got = self._in_loop[loop] = {i for i in self.m.walk(loop.body) if isinstance(i, Event)}
        return got

    def _evaluation_helper(self, fn: Function) -> bool:
        got = self._evaluation.get(fn)
        if got is None:
            items = list(self.m.walk(fn))
            trains = any(isinstance(i, Event) and i.kind in (ev.BACKWARD, ev.STEP, ev.ZERO) for i in items)
            got = not trains and not _reads_training(fn) and (any(isinstance(i, Loop) for i in items) or bool(EVALUATION_NAME.search(fn.name)))
            self._evaluation[fn] = got
        return got

    @staticmethod
    def _trains_inside(s: ModeState, opt, key: str) -> bool:
        """Whether every module of ``opt`` that ``key`` contains was set to train mode after ``key``'s
        ``eval()`` (``net.eval()`` for validation, then ``net.head.train()`` with an optimizer over the
        head's parameters alone): the parameters the step updates are trained in train mode, whatever the
        mode of the rest of ``key``."""
        inner = [m for m in opt.modules or () if m != key and part_of(m, key)]
        return bool(inner) and len(inner) == len(opt.modules) and all(
            _mode_of(s, m)[1] == TRAIN for m in inner)  # key's own entry covers each: never None

    def judge(self) -> List[EvalLeak]:
        out = []
        for ev_call, key, ev_fn, crossed, backward, bw_fn, opt in self.candidates:
            # the module is trained by this optimizer: some step of it ran with the module in train mode (a
            # discriminator kept in eval mode for the generator's step is trained by its own optimizer)
            if (key, opt) not in self.trained_by and not any(overlaps(k2, key) for k2, o2 in self.trained_by if o2 == opt):
                continue
            if ev_fn is not None and _reads_training(ev_fn):
                continue  # it remembers the mode it found (``was = m.training``) to restore it
            if crossed:
                out.append(EvalLeak(ev_call, key, backward, None))
            elif ev_fn is not bw_fn and ev_fn is not None and self._evaluation_helper(ev_fn):
                out.append(EvalLeak(ev_call, key, backward, ev_fn))
        return out
