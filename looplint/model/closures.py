"""Closures handed to ``optimizer.step(closure)``: what they run and what they return.

A closure is a ``def`` (also through ``functools.partial`` and bound methods of the same class) or a
``lambda``; the event builder attaches it to its ``step`` event (``Event.closure``: a ``Function``, or a
``Block`` ending in ``Jump("return", <lambda>)`` for a lambda). This module answers the questions the
closure rules ask: which optimizer re-evaluates it, whether every path returns the loss, whether it runs
backward and zero_grad (through same-module calls), and where to report (the ``def`` or ``lambda``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Tuple, Union

import libcst as cst

from looplint.model.walk import Walker, descendants

from looplint.model import events as ev
from looplint.model.events import Block, Branch, Event, Jump, Loop, Try
from looplint.model.roles import OPTIMIZER, SCALER, Frame, Role
from looplint.model.scopes import Function, keyword_arg, positional_args

# Optimizers that call the closure several times per step and use its value (float(closure())).
RE_EVALUATING = frozenset({"LBFGS"})


@dataclass(frozen=True)
class ClosureStep:
    step: Event  # the ``optimizer.step(closure)`` call
    optimizer: Role
    closure: Union[Function, Block]
    node: cst.CSTNode  # the ``def`` or ``lambda``: where closure findings are reported
    name: str  # how messages name the closure

    @property
    def re_evaluated(self) -> bool:
        """LBFGS, built here: it evaluates the closure several times per step and needs its value."""
        return self.optimizer.evidence == "constructor" and self.optimizer.cls_name in RE_EVALUATING


def closure_steps(model) -> List[ClosureStep]:
    """Every optimizer step that was handed a closure looplint can read, once per (step, optimizer)."""
    out, seen = [], set()
    for event, role, _states in model.optimizer_events(ev.STEP):
        c = event.closure
        if c is None or role.kind != OPTIMIZER or (event, id(role)) in seen:
            continue
        seen.add((event, id(role)))
        if isinstance(c, Function) and event.closure_site is not None:
            node, name = event.closure_site, "lambda"
        elif isinstance(c, Function):
            node, name = c.node, c.name
        else:
            last = c.items[-1] if c.items else None
            if not (isinstance(last, Jump) and isinstance(last.node, cst.Lambda)):
                continue
            node, name = last.node, "lambda"
        out.append(ClosureStep(event, role, c, node, name))
    return out


def returns(model, closure: Union[Function, Block]) -> Tuple[bool, bool]:
    """(some path returns nothing, some path returns a value): falling off the end, ``return``,
    ``return None`` and ``return loss.backward()`` return nothing."""
    if isinstance(closure, Block):  # a lambda: returns its body
        last = closure.items[-1]
        empty = _returns_nothing(last.node.body) if isinstance(last.node, cst.Lambda) else False
        return empty, not empty
    if not isinstance(closure.node, cst.FunctionDef) or _is_generator(closure.node):
        return False, True
    falls, nothing, value = _flow(model.builder.body(closure))
    return falls or nothing, value


def runs(model, closure: Union[Function, Block]) -> List[Event]:
    """The events a closure runs, through functions and methods of this module it calls."""
    block = model.builder.body(closure) if isinstance(closure, Function) else closure
    return [i for i in model.walk(block) if isinstance(i, Event)]


def zeroes(events: List[Event]) -> bool:
    return any(e.kind in (ev.ZERO, ev.GRAD_CLEAR) for e in events)


def backward_runs(events: List[Event]) -> bool:
    return any(e.kind == ev.BACKWARD for e in events)


def unseen_effects(model, cs: "ClosureStep") -> Tuple[bool, bool]:
    """(may run backward, may zero the gradients) over the calls a closure makes that looplint cannot see
    into, from their effect summaries (``effects.py``): what they receive and how their result is used —
    a loss helper that is only handed configuration and the model's output does neither."""
    may_backward = may_zero = False
    returned = _returned_calls(model, cs.closure)
    for e in runs(model, cs.closure):
        if e.kind != ev.OPAQUE or e.call is None:
            continue
        fn = model.function_of(e) or model.scopes.module
        eff = model.effects.of(e, Frame(fn), [cs.optimizer])
        # the loss the closure returns comes from a method of an object looplint cannot see into
        # (``return trainer.training_step(x)``): nothing after it backpropagates, so it may well have
        may_backward = (may_backward or eff.may_backward or bool(eff.optimizers)
                        or (e.target is not None and id(e.call) in returned))
        may_zero = may_zero or bool(eff.optimizers) or (e.usage == "stmt" and bool(eff.modules))
    return may_backward, may_zero


def _returned_calls(model, closure: Union[Function, Block]) -> set:
    """ids of the calls whose result a closure returns: ``return f(x)``, ``loss = f(x); return loss``, a
    lambda's body."""
    if isinstance(closure, Block):
        last = closure.items[-1] if closure.items else None
        values = [last.node.body] if isinstance(last, Jump) and isinstance(last.node, cst.Lambda) else []
        fn = None
    else:
        fn = closure
        values = [r.value for r in _returns_of(closure.node) if r.value is not None]
    out = set()
    for v in values:
        if isinstance(v, cst.Call):
            out.add(id(v))
        elif isinstance(v, cst.Name) and fn is not None:
            for value, _where in model.values.assigned_values(v, fn) or ():
                if isinstance(value, cst.Call):
                    out.add(id(value))
    return out


def _returns_of(node: cst.CSTNode) -> List[cst.Return]:
    """The function's own ``return`` statements (not those of functions, classes or lambdas inside it)."""
    if not isinstance(node, cst.FunctionDef):
        return []
    nested = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
    return [n for n in descendants(node.body, prune=lambda n: isinstance(n, nested)) if isinstance(n, cst.Return)]


def scaler_closure_steps(model) -> Iterator[Event]:
    """``scaler.step(optimizer, closure)``: a GradScaler built here handed a closure."""
    facts = model.facts
    for event, roles in facts.acted_on.items():
        if event.kind != ev.STEP or event.call is None or event.target is None:
            continue
        if not any(r.kind == OPTIMIZER for r in roles):
            continue
        call = event.call
        if keyword_arg(call, "closure") is None and len(positional_args(call)) < 2:
            continue
        for frame in facts.frames.get(event, ()):
            target = model.roles.resolve(event.target, frame)
            if target is not None and target.kind == SCALER and target.evidence == "constructor":
                yield event
                break


# -- return paths over the event tree -----------------------------------------------------------------------
def _flow(block: Block) -> Tuple[bool, bool, bool]:
    """(may fall off the end, some return gives nothing, some return gives a value)."""
    nothing = value = False
    for item in block.items:
        if isinstance(item, Jump):
            if item.kind == "return":
                if isinstance(item.node, cst.Return) and (item.node.value is None or _returns_nothing(item.node.value)):
                    nothing = True
                else:
                    value = True
                return False, nothing, value
            if item.kind in ("raise", "break", "continue"):
                return False, nothing, value
            continue
        if isinstance(item, Block):
            falls, n, v = _flow(item)
        elif isinstance(item, Branch):
            falls, n, v = False, False, False
            arms = item.arms
            if item.key is None and arms and not arms[-1].items:
                arms = arms[:-1]  # a ``match``: taken to be exhaustive (doubt must not accuse)
            for arm in arms:
                f2, n2, v2 = _flow(arm)
                falls, n, v = falls or f2, n or n2, v or v2
        elif isinstance(item, Loop):
            _f, n, v = _flow(item.body)
            of, on, ov = _flow(item.orelse)
            n, v = n or on, v or ov
            falls = not (item.infinite and not item.leaves_at_head and not _breaks(item.body))
        elif isinstance(item, Try):
            bf, bn, bv = _flow(item.body)
            if item.orelse.items:
                of, on, ov = _flow(item.orelse)
                bf, bn, bv = bf and of, bn or on, bv or ov
            falls, n, v = bf, bn, bv
            for h in item.handlers:
                hf, hn, hv = _flow(h)
                falls, n, v = falls or hf, n or hn, v or hv
            if item.final.items:
                ff, fn_, fv = _flow(item.final)
                n, v = n or fn_, v or fv
                if not ff:
                    falls = False
        else:
            continue
        nothing, value = nothing or n, value or v
        if not falls:
            return False, nothing, value
    return True, nothing, value


def _breaks(block: Block) -> bool:
    for item in block.items:
        if isinstance(item, Jump) and item.kind == "break":
            return True
        if isinstance(item, Block) and _breaks(item):
            return True
        if isinstance(item, Branch) and any(_breaks(a) for a in item.arms):
            return True
        if isinstance(item, Try) and any(_breaks(b) for b in (item.body, *item.handlers, item.orelse, item.final)):
            return True
    return False


def _returns_nothing(value: cst.BaseExpression) -> bool:
    if isinstance(value, cst.Name) and value.value == "None":
        return True
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in (
            "backward", "manual_backward", "zero_grad"):
        return True
    return False


def _is_generator(node: cst.FunctionDef) -> bool:
    found = []

    class V(Walker):
        def visit_Yield(self, n: cst.Yield) -> None:
            found.append(n)

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            return n is node

        def visit_Lambda(self, n: cst.Lambda) -> bool:
            return False

    V().walk(node)
    return bool(found)
