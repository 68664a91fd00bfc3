"""The training-loop model of one file, built once and queried by every rule.

    scopes  -> imports, functions, classes, assignments           (scopes.py)
    roles   -> what each name is: optimizer, scheduler, module...  (roles.py)
    events  -> per function, the calls that matter, with control  (events.py)
    loops   -> batch / epoch / step / micro-step loops            (loops.py)
    flow    -> gradient state per optimizer over all paths        (flow.py)
"""
from __future__ import annotations

import re
from functools import cached_property
from typing import Dict, Iterator, List, Optional, Set, Tuple

import libcst as cst

from looplint.model import events as ev
from looplint.model.events import Block, Branch, Event, EventBuilder, Loop, code
from looplint.model.flow import FRESH, NONE, STALE, UNKNOWN, USED, Facts, Interpreter, OptState, OverBudget, merge_facts
from looplint.model.loops import BATCH, EPOCH, IMPLICIT, MICRO, OTHER, STEP, classify_all, walk
from looplint.model.roles import OPTIMIZER, Frame, Role, Roles
from looplint.model.scopes import Function, Scopes, names_in

__all__ = [
    "FileModel", "build_model", "Event", "Loop", "Role", "OptState", "Function",
    "NONE", "FRESH", "USED", "STALE", "UNKNOWN", "BATCH", "EPOCH", "STEP", "MICRO", "OTHER", "IMPLICIT",
]

# A function without a loop of its own is one iteration of a loop we cannot see when its name says so.
PER_STEP_NAME = re.compile(
    r"^_*(train|training|run|update|optimi[sz]e|learn|fit)(_?(step|batch|iter|iteration|one_step|on_batch|"
    r"parameters|params|model|network|networks|generator|discriminator|g|d))?$|_step$|^step$", re.I)
GRADIENT_KINDS = (ev.STEP, ev.ZERO, ev.BACKWARD, ev.GRAD_CLEAR)


class FileModel:
    def __init__(self, module: cst.Module):
        self.module = module
        self.scopes = Scopes(module)
        self.roles = Roles(self.scopes)
        self.builder = EventBuilder(self.scopes, self.roles.ctor_kind)
        for fn in self.scopes.functions:
            self.builder.body(fn)
        classify_all(self.builder, self.roles, self.scopes.functions)
        self.branch_info: Dict[str, Tuple[frozenset, bool]] = {}
        self._tests: Dict[str, int] = {}  # how many ``if``s test each key (per counter for periodic tests)
        self._called: Set[Function] = set()
        for fn in self.scopes.functions:
            # each function's own items once (a depth at the walk's limit enters no callee)
            for item in walk(self.builder.body(fn), self.builder, depth=99):
                if isinstance(item, Branch) and item.key is not None:
                    k = f"mod:{item.mod[0]}:{item.mod[1]}" if item.mod is not None else item.key
                    self._tests[k] = self._tests.get(k, 0) + 1
                    self.branch_info[item.key] = (item.names, item.volatile)
                    if item.mod is not None:
                        self.branch_info[f"mod:{item.mod[0]}:{item.mod[1]}:{item.mod[2]}"] = (item.names, item.volatile)
                elif isinstance(item, Event):
                    if item.kind == ev.CALL and item.callee is not fn:
                        self._called.add(item.callee)
                    if isinstance(item.closure, Function):
                        self._called.add(item.closure)
        self._facts: Optional[Facts] = None

    def tested_again(self, key: str) -> bool:
        """Whether more than one ``if`` of the file tests ``key``: only then is its value worth remembering."""
        return self._tests.get(key, 0) > 1

    # -- the gradient flow, computed on first use ----------------------------------------------------------
    @property
    def facts(self) -> Facts:
        if self._facts is None:
            facts = Facts()
            for fn in self.roots():
                part = Facts()
                try:
                    Interpreter(self, part).run_root(fn, cyclic=self.is_per_step(fn))
                except OverBudget:
                    continue
                part.roots.append(fn)
                merge_facts(facts, part)
            self._facts = facts
        return self._facts

    @cached_property
    def precision(self):
        """Mixed-precision facts (scaled backward vs. raw step / clip), computed on first use."""
        from looplint.model.precision import analyse

        return analyse(self)

    @cached_property
    def useless_clips(self):
        """Clips that run when no optimizer holds gradients a step will apply (see clipping.py)."""
        from looplint.model.clipping import analyse

        return analyse(self)

    @cached_property
    def eval_leaks(self):
        """Backward passes that run with a trained module left in eval mode (see modes.py)."""
        from looplint.model.modes import analyse

        return analyse(self)

    @cached_property
    def graph_accumulations(self):
        """``total += loss`` of a backpropagated loss across loop iterations (see accumulators.py)."""
        from looplint.model.accumulators import find

        return find(self)

    def roots(self) -> List[Function]:
        """Functions nobody in this module calls (plus the module body) that touch gradients."""
        out = []
        for fn in self.scopes.functions:
            if fn in self._called and not fn.is_module:
                continue
            if fn.cls is not None and _optimizer_like(fn.cls):
                continue  # the implementation of an optimizer (wrapper) is no training loop
            if any(isinstance(i, Event) and i.kind in GRADIENT_KINDS for i in self.walk(fn)):
                out.append(fn)
        return out

    def is_per_step(self, fn: Function) -> bool:
        if fn.is_module or not PER_STEP_NAME.search(fn.name):
            return False
        items = list(self.walk(fn))
        return not any(isinstance(i, Loop) for i in items) and any(
            isinstance(i, Event) and i.kind == ev.STEP for i in items)

    # -- queries for rules --------------------------------------------------------------------------------------
    def walk(self, fn_or_block) -> Iterator[object]:
        block = self.builder.body(fn_or_block) if isinstance(fn_or_block, Function) else fn_or_block
        return walk(block, self.builder)

    def optimizer_events(self, kind: str) -> Iterator[Tuple[Event, Role, Set[OptState]]]:
        """(event, optimizer, states on arrival) for every event of ``kind`` that acted on an optimizer."""
        for (event, role), states in self.facts.incoming.items():
            if event.kind == kind or (kind == ev.ZERO and event.kind == ev.GRAD_CLEAR):
                yield event, role, states

    def loop_stacks(self, event: Event) -> Set[Tuple[Loop, ...]]:
        return self.facts.loops.get(event, set())

    def in_real_loop(self, event: Event) -> bool:
        return any(any(l.kind != IMPLICIT for l in stack) for stack in self.loop_stacks(event))

    def loop_items(self, loop: Loop) -> Iterator[object]:
        return walk(loop.body, self.builder)

    def statements_after(self, loop: Loop) -> list:
        """The statements that follow ``loop`` in its block."""
        return self.builder.after.get(loop.node, [])

    def backward_on_leaked_names(self, loop: Loop) -> List[cst.Call]:
        """``backward()`` calls after ``loop`` (in its block) whose loss derives, through plain
        assignments, from the loop's leaked variables: its targets and the names its body rebinds. A name
        the body only adds to (``losses[i] = ...``, ``total += ...``, ``.append``) collects every
        iteration and is no leak."""
        leaked = set(loop.target_names) | _rebound(loop.node.body)
        return list(_backward_calls_after(self.statements_after(loop), leaked))

    def steps_of(self, role: Role) -> List[Event]:
        return [e for e, roles in self.facts.acted_on.items() if e.kind == ev.STEP and role in roles]

    def source(self, node: cst.CSTNode) -> str:
        return " ".join(code(node).split())


def _optimizer_like(cls) -> bool:
    bases = " ".join(cls.bases)
    return ("step" in cls.methods and "zero_grad" in cls.methods) or "Optimizer" in bases or "LRScheduler" in bases


def build_model(module: cst.Module) -> FileModel:
    return FileModel(module)


def _backward_calls_after(statements, tainted):
    """Backward calls whose loss derives from ``tainted`` names, following simple assignments."""
    tainted = set(tainted)
    for st in statements:
        lines = [st] if isinstance(st, cst.SimpleStatementLine) else []
        if isinstance(st, (cst.With, cst.If)):
            body = st.body.body if isinstance(st.body, cst.IndentedBlock) else []
            lines = [b for b in body if isinstance(b, cst.SimpleStatementLine)]
        for line in lines:
            for small in line.body:
                if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and small.value is not None:
                    if names_in(small.value) & tainted:
                        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                        for t in targets:
                            tainted |= names_in(t)
                    for call in _calls(small.value):
                        if _is_backward(call) and names_in(call.func) & tainted:
                            yield call
                elif isinstance(small, cst.Expr):
                    for call in _calls(small.value):
                        if _is_backward(call) and names_in(call.func) & tainted:
                            yield call


def _is_backward(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "backward"


def _calls(expr):
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, n: cst.Call) -> None:
            found.append(n)

    if expr is not None:
        expr.visit(V())
    return found


def _rebound(suite) -> Set[str]:
    """Names a loop body binds afresh (``x = ...``, ``x, y = ...``), minus those it also accumulates into."""
    bound: Set[str] = set()
    grown: Set[str] = set()

    class V(cst.CSTVisitor):
        def visit_AssignTarget(self, n: cst.AssignTarget) -> None:
            t = n.target
            for el in (t.elements if isinstance(t, (cst.Tuple, cst.List)) else [t]):
                el = el.value if isinstance(el, (cst.Element, cst.StarredElement)) else el
                if isinstance(el, cst.Name):
                    bound.add(el.value)
                elif isinstance(el, cst.Subscript) and isinstance(el.value, cst.Name):
                    grown.add(el.value.value)

        def visit_AugAssign(self, n: cst.AugAssign) -> None:
            if isinstance(n.target, cst.Name):
                grown.add(n.target.value)

        def visit_Call(self, n: cst.Call) -> None:
            f = n.func
            if isinstance(f, cst.Attribute) and f.attr.value in ("append", "extend", "add", "update") and isinstance(f.value, cst.Name):
                grown.add(f.value.value)

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            return False

    suite.visit(V())
    return bound - grown
