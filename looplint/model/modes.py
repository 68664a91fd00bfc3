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

from looplint.model import events as ev
from looplint.model.events import Event, Loop
from looplint.model.loops import walk
from looplint.model.precision import _GiveUp, _Run
from looplint.model.roles import OPTIMIZER, SCALER, Frame, covers
from looplint.model.scopes import Function, dotted, positional_args

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
    class V(cst.CSTVisitor):
        hit = False

        def visit_Attribute(self, n: cst.Attribute) -> None:
            if n.attr.value == "training":
                V.hit = True

    fn.node.visit(V())
    return V.hit


class ModeState(NamedTuple):
    # (module key, mode, the eval() call that set it, the function of that call, crossed a loop back edge)
    modes: FrozenSet[tuple] = frozenset()
    assume: FrozenSet[Tuple[str, bool, FrozenSet[str]]] = frozenset()


@dataclass(eq=False)
class EvalLeak:
    eval_call: Event
    module: str
    backward: Event
    helper: Optional[Function]  # the evaluation helper that set eval mode (None: an earlier iteration)


def analyse(model) -> List[EvalLeak]:
    found: Dict[Event, EvalLeak] = {}
    if not any(isinstance(i, Event) and i.kind == ev.MODE for fn in model.scopes.functions
               for i in walk(model.builder.body(fn), model.builder, depth=3)):
        return []
    for fn in model.roots():
        run = _ModeRun(model)
        try:
            run.block(model.builder.body(fn), {ModeState()}, (), (fn,))
        except _GiveUp:
            continue
        for leak in run.judge():
            found.setdefault(leak.eval_call, leak)
    return list(found.values())


class _ModeRun(_Run):
    def __init__(self, model) -> None:
        super().__init__(model, None)
        self.trained: Set[str] = set()
        self.trained_by: Set[tuple] = set()  # (module key, id of an optimizer that stepped with it in train mode)
        self.candidates: List[tuple] = []  # (eval event, key, eval fn, crossed, backward event, backward fn)
        self._in_loop: Dict[Loop, Set[Event]] = {}
        self._evaluation: Dict[Function, bool] = {}
        self._relevant: Dict[object, bool] = {}
        self._loop_targets: Dict[Function, Set[str]] = {}

    # -- module keys -----------------------------------------------------------------------------------------
    def key(self, expr, names) -> Optional[str]:
        expr = _unchain(expr)
        d = dotted(expr) if expr is not None else None
        if d is None:
            return None
        parts = d.split(".")
        while len(parts) > 1 and parts[-1] == "module":
            parts.pop()
        for name, bound in names:
            if name == parts[0]:
                if bound is None:
                    return None
                parts = bound.split(".") + parts[1:]
                break
        return ".".join(parts)

    # -- transfer ----------------------------------------------------------------------------------------------
    def event(self, e: Event, states, names, stack):
        k = e.kind
        if k == ev.CALL and e.callee is not None:
            if e.callee in stack or len(stack) > 3:
                return {s._replace(modes=frozenset()) for s in states}
            o = self.block(self.m.builder.body(e.callee), states, self._bind(e, names), stack + (e.callee,))
            return o.normal | o.ret
        if k == ev.MODE and e.call is not None:
            method = e.call.func.attr.value
            key = self.key(e.target, names)
            if key is None or key.split(".")[0] in self._targets(stack[-1]):
                return states  # ``for p in nets: p.train()``: which modules, and whether any, is unknown
            mode = TRAIN if method == "train" else EVAL
            args = positional_args(e.call) or [a.value for a in e.call.args if a.keyword is not None and a.keyword.value == "mode"]
            if method == "train" and args:
                a = args[0]
                if isinstance(a, cst.Name) and a.value in ("True", "False"):
                    mode = TRAIN if a.value == "True" else EVAL
                else:
                    return {self._drop(s, key) for s in states}
            if mode == TRAIN:
                self.trained.add(key)
                return {self._set(s, key, (key, TRAIN, None, None, False)) for s in states}
            return {self._set(s, key, (key, EVAL, e, stack[-1], False)) for s in states}
        if k == ev.STEP and e.target is not None:
            opt = self._optimizer(e, stack[-1])
            if opt is None:
                return states
            for s in states:
                for key, mode, ev_call, ev_fn, crossed in s.modes:
                    if mode == TRAIN:
                        self.trained_by.add((key, id(opt)))
                    if mode == EVAL and covers(opt, self.roles.module_key(_unchain(ev_call.target), Frame(ev_fn))):
                        self.candidates.append((ev_call, key, ev_fn, crossed, e, stack[-1], id(opt)))
            return states
        if k == ev.OPAQUE and e.call is not None:
            exprs = [a.value for a in e.call.args] + ([e.target] if e.target is not None else [])
            out = states
            for x in exprs:
                if isinstance(x, cst.Name) and x.value == "self":
                    out = {s._replace(modes=frozenset(m for m in s.modes if not m[0].startswith("self."))) for s in out}
                    continue
                key = self.key(x, names) if dotted(x) else None
                if key is not None:
                    out = {self._drop(s, key) for s in out}
            return out
        return states

    def correlate(self, br) -> bool:
        got = self._relevant.get(br)
        if got is None:
            got = self._relevant[br] = any(
                isinstance(i, Event) and i.kind in (ev.MODE, ev.BACKWARD) for arm in br.arms for i in walk(arm, self.m.builder))
        return got

    def back_edge(self, state, loop: Loop):
        inside = self._events_in(loop)
        if not any(m[1] == EVAL and not m[4] and m[2] in inside for m in state.modes):
            return state
        return state._replace(modes=frozenset(
            (m[0], m[1], m[2], m[3], True) if m[1] == EVAL and m[2] in inside else m for m in state.modes))

    # -- helpers -----------------------------------------------------------------------------------------------
    @staticmethod
    def _set(s: ModeState, key: str, entry: tuple) -> ModeState:
        keep = frozenset(m for m in s.modes if m[0] != key and not m[0].startswith(key + "."))
        return s._replace(modes=keep | {entry})

    @staticmethod
    def _drop(s: ModeState, key: str) -> ModeState:
        return s._replace(modes=frozenset(
            m for m in s.modes if m[0] != key and not m[0].startswith(key + ".") and not key.startswith(m[0] + ".")))

    def _bind(self, e: Event, names) -> tuple:
        callee = e.callee
        params = list(callee.params)
        bound: List[tuple] = []
        func = e.call.func if e.call is not None else None
        if params and params[0] in ("self", "cls") and (e.bound_self or callee.cls is not None):
            recv = func.value if isinstance(func, cst.Attribute) else None
            bound.append(("self", self.key(recv, names) if recv is not None else None))
            params = params[1:]
        i = 0
        for a in (e.call.args if e.call is not None else ()):
            if a.star:
                break
            if a.keyword is not None:
                name = a.keyword.value
            elif i < len(params):
                name = params[i]
                i += 1
            else:
                continue
            if name in callee.params:
                bound.append((name, self.key(a.value, names) if dotted(a.value) else None))
        if callee.parent is not None and not callee.parent.is_module and callee.cls is None:
            bound.extend(n for n in names if n[0] not in callee.params)  # a nested function sees the caller's names
        return tuple(bound)

    def _optimizer(self, e: Event, fn: Function):
        role = self.roles.resolve(e.target, Frame(fn))
        if role is not None and role.kind == SCALER and e.call is not None and positional_args(e.call):
            role = self.roles.resolve(positional_args(e.call)[0], Frame(fn))
        return role if role is not None and role.kind == OPTIMIZER else None

    def _targets(self, fn: Function) -> Set[str]:
        got = self._loop_targets.get(fn)
        if got is None:
            got = self._loop_targets[fn] = {n for i in walk(self.m.builder.body(fn), self.m.builder, depth=3)
                                            if isinstance(i, Loop) for n in i.target_names}
        return got

    def _events_in(self, loop: Loop) -> Set[Event]:
        got = self._in_loop.get(loop)
        if got is None:
            got = self._in_loop[loop] = {i for i in walk(loop.body, self.m.builder, depth=3) if isinstance(i, Event)}
        return got

    def _evaluation_helper(self, fn: Function) -> bool:
        got = self._evaluation.get(fn)
        if got is None:
            items = list(self.m.walk(fn))
            trains = any(isinstance(i, Event) and i.kind in (ev.BACKWARD, ev.STEP, ev.ZERO) for i in items)
            got = not trains and not _reads_training(fn) and (any(isinstance(i, Loop) for i in items) or bool(EVALUATION_NAME.search(fn.name)))
            self._evaluation[fn] = got
        return got

    def judge(self) -> List[EvalLeak]:
        out = []
        for ev_call, key, ev_fn, crossed, backward, bw_fn, opt in self.candidates:
            # the module is trained by this optimizer: some step of it ran with the module in train mode (a
            # discriminator kept in eval mode for the generator's step is trained by its own optimizer)
            if key not in self.trained or (key, opt) not in self.trained_by:
                continue
            if crossed:
                out.append(EvalLeak(ev_call, key, backward, None))
            elif ev_fn is not bw_fn and ev_fn is not None and self._evaluation_helper(ev_fn):
                out.append(EvalLeak(ev_call, key, backward, ev_fn))
        return out
