"""Running totals: ``total += loss`` where ``loss`` is a tensor that still carries its autograd graph.

Per function (and the module body), each ``T += V`` inside a loop is judged against what the loop does
with the names involved. It is a graph-keeping accumulation when ``V`` is a loss name (or a product or
quotient of it) that the same loop backpropagates (``loss.backward()``, ``scaler.scale(loss).backward()``,
``accelerator.backward(loss)``, a function of this module it is handed to that does: ``effects.
handed_to_backward``) or that a function returned after backpropagating it (``loss = train_step(x, y)``:
``effects.returns_backpropagated``), and never turns into a number (``loss = loss.item()``), ``T`` was
initialised before the loop and is not reassigned inside it (a reset in the step branch restarts it), ``T``
is never backpropagated itself (one loss built from several terms), and no ``torch.no_grad()`` /
``inference_mode()`` is active.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set

import libcst as cst

from looplint.model.walk import Walker

from looplint.model.events import BACKWARD, CALL, Event, Loop
from looplint.model.interp import items_below
from looplint.model.loops import walk
from looplint.model.scopes import Function, last_name, names_in, positional_args

# calls that turn a tensor into a number or drop its graph
DETACHING = frozenset({"item", "detach", "detach_", "float", "int", "cpu", "numpy", "tolist", "data"})
NO_GRAD = frozenset({"no_grad", "inference_mode"})


@dataclass(eq=False)
class GraphAccumulation:
    node: cst.AugAssign
    target: str
    value: str  # the loss name added
    loop: cst.CSTNode


def find(model) -> List[GraphAccumulation]:
    out: List[GraphAccumulation] = []
    for fn in model.scopes.functions:
        # only functions whose own loops backpropagate (the event tree is cheap to walk, the syntax tree is not)
        if not any(isinstance(i, Loop) and any(isinstance(j, Event) and j.kind == BACKWARD
                                               for j in walk(i.body, model.builder))
                   for i in walk(model.builder.body(fn), model.builder, depth=3)):
            continue
        node = fn.node
        if isinstance(node, cst.FunctionDef):
            if any(last_name(d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator) in NO_GRAD
                   for d in node.decorators):
                continue
            body = node.body
        else:
            body = node
        v = _Visitor(fn, model)
        v.walk(body)
        out.extend(v.judge())
    return out


class _LoopInfo:
    def __init__(self, node: cst.CSTNode) -> None:
        self.node = node
        self.backwarded: Set[str] = set()
        self.assigned: Set[str] = set()
        self.detached: Set[str] = set()  # names assigned a number / detached tensor in the loop
        self.augs: List[cst.AugAssign] = []


class _Visitor(Walker):
    def __init__(self, fn: Function, model=None) -> None:
        self.fn = fn
        self.model = model
        self.loops: List[_LoopInfo] = []
        self.all_loops: List[_LoopInfo] = []
        self.innermost: Dict[cst.AugAssign, _LoopInfo] = {}
        self.no_grad = 0
        self.backwarded_anywhere: Set[str] = set()
        self.assigned_outside: Dict[cst.CSTNode, Set[str]] = {}  # loop -> names assigned outside it
        self.assign_sites: List[tuple] = []  # (name, enclosing loops at the assignment)
        # calls of functions of this module, by call node
        self.calls: Dict[int, Event] = {} if model is None else {
            id(i.node): i for i in items_below(model.builder.body(fn))
            if isinstance(i, Event) and i.kind == CALL and i.callee is not None}

    # nested definitions run elsewhere
    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def _enter_loop(self, node) -> None:
        info = _LoopInfo(node)
        self.loops.append(info)
        self.all_loops.append(info)

    def visit_For(self, node: cst.For) -> None:
        self._enter_loop(node)
        self._assign_names(names_in(node.target), node.target)

    def leave_For(self, node: cst.For) -> None:
        self.loops.pop()

    def visit_While(self, node: cst.While) -> None:
        self._enter_loop(node)

    def leave_While(self, node: cst.While) -> None:
        self.loops.pop()

    def visit_With(self, node: cst.With) -> None:
        if any(isinstance(i.item, cst.Call) and last_name(i.item.func) in NO_GRAD for i in node.items):
            self.no_grad += 1
        for i in node.items:
            if i.asname is not None:
                self._assign_names(names_in(i.asname.name), None)

    def leave_With(self, node: cst.With) -> None:
        if any(isinstance(i.item, cst.Call) and last_name(i.item.func) in NO_GRAD for i in node.items):
            self.no_grad -= 1

    def _assign_names(self, names, value) -> None:
        for n in names:
            self.assign_sites.append((n, tuple(self.loops)))
            for info in self.loops:
                info.assigned.add(n)
                if value is not None and _detaching(value):
                    info.detached.add(n)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._assign_names(_plain_names(t.target), node.value)
        if self._backpropagated_value(node.value):
            # ``loss = train_step(x, y)`` (a helper that backpropagates the loss it returns) or an alias of
            # a backpropagated loss (``loss = g_loss``): the name holds a graph that backward ran on
            for t in node.targets:
                for n in _plain_names(t.target):
                    self.backwarded_anywhere.add(n)
                    for info in self.loops:
                        info.backwarded.add(n)

    def _backpropagated_value(self, value) -> bool:
        if isinstance(value, cst.Name):
            return any(value.value in info.backwarded for info in self.loops)
        if self.model is None or not isinstance(value, cst.Call):
            return False
        target = self.model.values.callable_of(value.func, self.fn)
        return target is not None and isinstance(target.target, Function) and \
            self.model.effects.returns_backpropagated(target.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._assign_names(_plain_names(node.target), node.value)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._assign_names(_plain_names(node.target), node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self.loops and self.no_grad == 0 and isinstance(node.operator, cst.AddAssign) and isinstance(node.target, cst.Name):
            self.loops[-1].augs.append(node)
            self.innermost[node] = self.loops[-1]

    def visit_Call(self, node: cst.Call) -> None:
        call = self.calls.get(id(node))
        if call is not None:  # a function of this module: the arguments it passes to backward
            for name in self.model.effects.handed_to_backward(call):
                self._backwarded(name)
            return
        func = node.func
        if not isinstance(func, cst.Attribute):
            return
        method = func.attr.value
        loss: Optional[cst.BaseExpression] = None
        if method == "backward":
            recv = func.value
            pos = positional_args(node)
            if isinstance(recv, cst.Call) and last_name(recv.func) == "scale" and positional_args(recv):
                loss = positional_args(recv)[0]
            elif isinstance(recv, cst.Name):
                loss = recv
            elif pos:
                loss = pos[0]  # accelerator.backward(loss)
        elif method == "manual_backward" and positional_args(node):
            loss = positional_args(node)[0]
        if isinstance(loss, cst.Name):
            self._backwarded(loss.value)

    def _backwarded(self, name: str) -> None:
        self.backwarded_anywhere.add(name)
        for info in self.loops:
            info.backwarded.add(name)

    # -- judgement ---------------------------------------------------------------------------------------------
    def judge(self) -> List[GraphAccumulation]:
        out = []
        for node, info in self.innermost.items():
            target = node.target.value
            value = next((n for n in _loss_names(node.value) if n in info.backwarded), None)
            if value is None or value in info.detached:
                continue
            if target in info.assigned or target in self.backwarded_anywhere or target == value:
                continue
            # initialised before the loop: an assignment outside this loop
            if not any(info not in loops for name, loops in self.assign_sites if name == target):
                continue
            out.append(GraphAccumulation(node, target, value, info.node))
        return out


def _plain_names(t) -> Set[str]:
    if isinstance(t, cst.Name):
        return {t.value}
    if isinstance(t, (cst.Tuple, cst.List)):
        out: Set[str] = set()
        for el in t.elements:
            out |= _plain_names(el.value)
        return out
    if isinstance(t, cst.StarredElement):
        return _plain_names(t.value)
    return set()


def _detaching(value: cst.BaseExpression) -> bool:
    """``x.item()``, ``float(x)``, ``x.detach()``, ``x.data``... at the top of the value, or anywhere down
    the chain it is read from (``x.data[0]``, the PyTorch 0.3 spelling of ``x.item()``;
    ``x.detach().cpu()``, ``x.data.cpu().numpy()[0]``): what is read from a detached tensor is detached."""
    e = value
    if isinstance(e, (cst.Integer, cst.Float)):
        return True
    while True:
        if isinstance(e, cst.Call):
            if last_name(e.func) in DETACHING:
                return True
            if not isinstance(e.func, cst.Attribute):
                return False
            e = e.func.value  # a method of what the chain read so far
        elif isinstance(e, cst.Attribute):
            if e.attr.value == "data":
                return True
            e = e.value
        elif isinstance(e, cst.Subscript):
            e = e.value
        else:
            return False


def _loss_names(value: cst.BaseExpression) -> List[str]:
    """``loss``, ``loss * n``, ``loss / n``, ``n * loss``: the names whose graph may be added (not inside a call)."""
    if isinstance(value, cst.Name):
        return [value.value]
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
        sides = [value.left] if isinstance(value.operator, cst.Divide) else [value.left, value.right]
        return [s.value for s in sides if isinstance(s, cst.Name)]
    return []
