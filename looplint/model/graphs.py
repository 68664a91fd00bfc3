"""Autograd graphs: which backpropagated losses have no path to any parameter.

A tensor has no autograd history when it was computed under ``torch.no_grad()`` /
``torch.inference_mode()`` (a ``with`` block or a decorated function), taken from ``.detach()``, ``.data``
or ``.item()``, or copied by ``torch.tensor(...)``; so does anything computed from such tensors by torch
functions, tensor methods and loss modules (``nn.MSELoss()``), but not by a module (``model(x)`` adds its
parameters). ``backward()`` on such a loss raises *element 0 of tensors does not require grad*, and the
usual "fix" forces it: ``loss.requires_grad = True``, ``loss.requires_grad_()``,
``torch.tensor(value, requires_grad=True)``, ``Variable(loss, requires_grad=True)``. From then on the
backward runs without an error and reaches nothing but the forced leaf.

``analyse`` finds the backward passes whose loss is, on every definition that reaches them, such a forced
leaf, with the forcing calls; and those whose loss, never forced, lost its history where the graph was cut
(``CUTS``: under no_grad / inference_mode, in a helper decorated with them, by ``.detach()`` or ``.data``):
that backward raises *element 0 of tensors does not require grad*, and no gradient reaches the model. A
loss made of data and constants only (no model in it) is not a cut graph. A name it cannot follow (a
parameter, ``loss += ...``, a call it cannot see into) is never history-free: doubt keeps the rule silent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import libcst as cst

from looplint.model import events as ev
from looplint.model.events import Event
from looplint.model.interp import items_below
from looplint.model.roles import LOADER, OPTIMIZER, Frame
from looplint.model.scopes import Assignment, Function, dotted, keyword_arg, names_in
from looplint.model.values import LOOP, PARAM, SAME_OBJECT, Def
from looplint.model.walk import children, descendants

MAX_DEPTH = 10  # steps through names, helpers and their callers
NO_GRAD = frozenset({"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad",
                     "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode"})
ENABLE_GRAD = frozenset({"torch.enable_grad", "torch.autograd.enable_grad", "torch.autograd.grad_mode.enable_grad"})
SET_GRAD = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"})
# Methods whose result carries no history (a detached tensor or a Python number).
CUTTING = frozenset({"detach", "detach_", "item", "tolist", "numpy"})
# Torch functions that build a new tensor from data: a leaf, with history only when asked for.
FACTORIES = frozenset("tensor as_tensor from_numpy zeros ones full empty rand randn randint arange linspace "
                      "zeros_like ones_like full_like empty_like rand_like randn_like Tensor FloatTensor "
                      "LongTensor DoubleTensor".split())
VARIABLE = frozenset({"torch.autograd.Variable", "torch.autograd.variable.Variable"})
# Iterables of integers: a counter zipped with the batches (``zip(itertools.count(), loader)``).
COUNTERS = frozenset({"range", "count", "trange"})
# Calls that may hand back an object that already exists (a parameter), even under no_grad.
LOOKUPS = frozenset({"getattr", "next", "iter", "get", "pop", "popleft", "parameters", "named_parameters",
                     "values", "items", "keys", "copy", "deepcopy", "list", "tuple", "dict", "zip", "enumerate"})


@dataclass(eq=False)
class GraphlessBackward:
    """A backward pass whose loss has no history on every path: ``forcings`` are the calls or assignments
    that set ``requires_grad`` on it (empty when nothing forces it: then the graph was cut, ``cut``, and the
    backward itself fails), ``why`` how its history was lost."""

    backward: Event
    fn: Function
    loss: str
    forcings: List[cst.CSTNode] = field(default_factory=list)
    why: str = ""

    @property
    def cut(self) -> bool:
        return not self.forcings


def analyse(model) -> List[GraphlessBackward]:
    if not _steps_an_optimizer(model):
        return []
    return _Graphs(model).run()


def _steps_an_optimizer(model) -> bool:
    """Whether the file trains: it steps something that is an optimizer (``opt.step()``, or
    ``scaler.step(opt)``), itself or through a helper it calls (one of another module of the project too:
    the gradient flow's facts)."""
    if any(True for _ in model.optimizer_events(ev.STEP)):
        return True
    for fn in model.scopes.functions:
        for item in items_below(model.builder.body(fn)):
            if isinstance(item, Event) and item.kind == ev.STEP and item.target is not None:
                stepped = [item.target] + [a.value for a in item.call.args[:1]] if item.call is not None else [item.target]
                for target in stepped:
                    role = model.roles.resolve(target, Frame(fn))
                    if role is not None and role.kind == OPTIMIZER:
                        return True
    return False


class _Graphs:
    def __init__(self, model) -> None:
        self.m = model
        self.values = model.values
        self.scopes = model.scopes
        self._no_grad: Dict[Function, Set[int]] = {}
        self._forcing: Dict[Function, List[Tuple[cst.Name, cst.CSTNode]]] = {}
        self._free_params: List[Function] = []  # helpers being read with arguments that have no history

    def run(self) -> List[GraphlessBackward]:
        """Every backward pass of this file, and of the functions of the project's other modules the
        analysis entered (``backprop(loss)`` with the helper in ``helpers.py``: its loss is the caller's)."""
        out = []
        for fn in list(self.scopes.functions) + [f for f in list(self.m.builder.built()) if f.home is not self.scopes]:
            for item in items_below(self.m.builder.body(fn)):
                if isinstance(item, Event) and item.kind == ev.BACKWARD and not item.dist:
                    found = self.graphless(item, fn)
                    if found is not None:
                        out.append(found)
        return out

    # -- the backward's loss -----------------------------------------------------------------------------
    def graphless(self, e: Event, fn: Function) -> Optional[GraphlessBackward]:
        expr = e.call.args[0].value if e.wrapper and e.call is not None and e.call.args else e.target
        name = self._loss_name(expr, fn)
        if name is None:
            return None
        # a helper's parameter (``apply_update(opt, loss)``): the caller's loss, where the caller computes it
        name, fn = self.values.through_parameters(name, fn)
        binds = self.values.reaching(name, fn)
        if not binds:
            return None
        forcings: List[cst.CSTNode] = []
        why = ""
        cuts = []  # the reasons of the definitions nothing forces
        for b in binds:
            if not isinstance(b, Assignment) or b.index is not None:
                return None
            forced = self._forced_value(b.value, b.scope, b.node)
            if forced is not None:
                forcings.append(forced[0])
                why = why or forced[1]
                continue
            reason = self.history_free(b.value, b.scope, self._in_no_grad(b.node, b.scope), 0)
            if reason is None:
                return None
            later = [node for read, node in self.forcing_statements(fn) if b in (self.values.reaching(read, fn) or ())]
            if not later:
                cuts.append(reason)  # backward() on it raises
                continue
            forcings.extend(later)
            why = why or reason
        if self._optimized_leaf(name.value, fn):
            return None
        if cuts:
            # never forced: reported at the backward when every definition lost its history where the
            # graph was cut (data and constants alone hold no model to cut away)
            if forcings or not all(_is_cut(r) for r in cuts):
                return None
            return GraphlessBackward(e, fn, name.value, [], cuts[0])
        if not forcings:
            return None
        return GraphlessBackward(e, fn, name.value, list(dict.fromkeys(forcings)), why)

    def _loss_name(self, expr, fn: Function) -> Optional[cst.Name]:
        """``loss`` in ``loss``, ``loss / k`` (k without history), ``scaler.scale(loss)``, ``loss.mean()``."""
        for _ in range(MAX_DEPTH):
            if isinstance(expr, cst.Name):
                return expr
            if isinstance(expr, cst.BinaryOperation):
                if self.history_free(expr.right, fn, False, MAX_DEPTH - 1) is not None:
                    expr = expr.left
                elif self.history_free(expr.left, fn, False, MAX_DEPTH - 1) is not None:
                    expr = expr.right
                else:
                    return None
            elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "scale" \
                    and len(expr.args) == 1:
                expr = expr.args[0].value
            elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and not expr.args \
                    and expr.func.attr.value in ("mean", "sum", "float", "double", "squeeze"):
                expr = expr.func.value
            else:
                return None
        return None

    def _optimized_leaf(self, name: str, fn: Function) -> bool:
        """A forced leaf an optimizer holds (``w = torch.zeros(3, requires_grad=True); SGD([w])``) is a
        parameter of its own: backward on it is what trains it."""
        for f in self.scopes.functions:
            for item in items_below(self.m.builder.body(f)):
                if isinstance(item, Event) and item.kind == ev.CONSTRUCT and item.call is not None \
                        and self.m.roles.ctor_kind(item.call, f)[0] == OPTIMIZER \
                        and any(name in names_in(a.value) for a in item.call.args):
                    return True
        return False

    # -- forcing requires_grad -----------------------------------------------------------------------------
    def _forced_value(self, value, fn: Function, stmt) -> Optional[Tuple[cst.CSTNode, str]]:
        """(the forcing call, why) when ``value`` is a leaf made to require grad from data with no history:
        ``torch.tensor(v, requires_grad=True)``, ``Variable(v, requires_grad=True)``, ``v.requires_grad_()``."""
        in_ng = self._in_no_grad(stmt, fn)
        while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) \
                and value.func.attr.value in SAME_OBJECT - {"requires_grad_"}:
            value = value.func.value
        if not isinstance(value, cst.Call):
            return None
        q = self.scopes.qualify(value.func) or ""
        if _true(keyword_arg(value, "requires_grad")):
            if q.startswith("torch.") and q.rsplit(".", 1)[-1] in FACTORIES and value.args:
                return value, "copied into a new tensor by `{}`".format(dotted(value.func) or "torch.tensor")
            if q in VARIABLE and value.args and not value.args[0].keyword:
                reason = self.history_free(value.args[0].value, fn, in_ng, 0)
                return (value, reason) if reason is not None else None
            return None
        if isinstance(value.func, cst.Attribute) and value.func.attr.value == "requires_grad_" and _forces(value):
            reason = self.history_free(value.func.value, fn, in_ng, 0)
            return (value, reason) if reason is not None else None
        return None

    def forcing_statements(self, fn: Function) -> List[Tuple[cst.Name, cst.CSTNode]]:
        """(the name read, the statement) of ``x.requires_grad = True`` and ``x.requires_grad_()`` in ``fn``."""
        got = self._forcing.get(fn)
        if got is not None:
            return got
        found: List[Tuple[cst.Name, cst.CSTNode]] = []
        root = fn.node
        for n in descendants(root, prune=lambda x: type(x) is cst.ClassDef or type(x) is cst.Lambda
                             or (type(x) is cst.FunctionDef and x is not root)):
            t = type(n)
            if t is cst.Assign:
                for target in n.targets:
                    tt = target.target
                    if isinstance(tt, cst.Attribute) and tt.attr.value == "requires_grad" and isinstance(tt.value, cst.Name) \
                            and _true(n.value):
                        found.append((tt.value, n))
            elif t is cst.Expr:
                c = n.value
                if isinstance(c, cst.Call) and isinstance(c.func, cst.Attribute) and c.func.attr.value == "requires_grad_" \
                        and isinstance(c.func.value, cst.Name) and _forces(c):
                    found.append((c.func.value, c))
        self._forcing[fn] = found
        return found

    # -- history ----------------------------------------------------------------------------------------------
    def history_free(self, expr, fn: Function, in_ng: bool, depth: int) -> Optional[str]:
        """How ``expr`` lost (or never had) an autograd history, or None when it may have one."""
        if depth > MAX_DEPTH or expr is None:
            return None
        if isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString, cst.FormattedString)):
            return "a constant"
        if isinstance(expr, cst.UnaryOperation):
            return self.history_free(expr.expression, fn, in_ng, depth + 1)
        if isinstance(expr, cst.Comparison):
            return "a constant"  # a boolean: comparisons are not differentiable
        if isinstance(expr, cst.BinaryOperation):
            if in_ng:
                return "computed under `torch.no_grad()`"
            a = self.history_free(expr.left, fn, in_ng, depth + 1)
            b = self.history_free(expr.right, fn, in_ng, depth + 1) if a is not None else None
            return _stronger(a, b) if b is not None else None
        if isinstance(expr, (cst.Name, cst.Attribute)) and self._loader(expr, fn):
            return "a batch of data"  # a data loader, its dataset and what they hold
        if isinstance(expr, cst.Attribute):
            if expr.attr.value == "data":
                return "taken from `.data`"
            return self.history_free(expr.value, fn, in_ng, depth + 1)
        if isinstance(expr, cst.Subscript):
            return self.history_free(expr.value, fn, in_ng, depth + 1)
        if isinstance(expr, cst.IfExp):
            a = self.history_free(expr.body, fn, in_ng, depth + 1)
            return a if a is not None and self.history_free(expr.orelse, fn, in_ng, depth + 1) is not None else None
        if isinstance(expr, cst.Name):
            return self._name(expr, fn, depth)
        if isinstance(expr, cst.Call):
            return self._call(expr, fn, in_ng, depth)
        return None

    def _name(self, name: cst.Name, fn: Function, depth: int) -> Optional[str]:
        _scope, binds = self.values.bindings(name.value, fn, name)
        if not binds:
            return None
        reason = None
        for b in binds:
            if isinstance(b, Def) and b.kind == LOOP and self._from_loader(b):
                r = "a batch of data"
            elif isinstance(b, Def) and b.kind == PARAM and b.scope in self._free_params:
                r = "a constant"  # an argument of a call whose arguments have no history
            elif isinstance(b, Def) and b.kind == PARAM:
                r = self._arguments_free(b, depth)
            elif isinstance(b, Assignment):
                value = b.value
                if b.index is not None:
                    value = self.values._element(b.value, b.index, b.size, b.scope) or b.value
                r = self.history_free(value, b.scope, self._in_no_grad(b.node, b.scope), depth + 1)
            else:
                return None
            if r is None:
                return None
            reason = r if reason in (None, "a constant", "a batch of data") else reason
        return reason

    def _arguments_free(self, d: Def, depth: int) -> Optional[str]:
        """A parameter has no history when what every call site of this module passes it has none (the
        batch handed to ``train_step(model, x, y)``)."""
        args, complete = self.values.arguments(d.scope, d.name)
        if not complete:
            return None
        reason = None
        for arg, where in args:
            r = self.history_free(arg, where, False, depth + 1)
            if r is None:
                return None
            reason = r if reason in (None, "a constant", "a batch of data") else reason
        return reason

    def _from_loader(self, d: Def) -> bool:
        """A loop target drawn from a data loader (``for x, y in loader``, under iteration wrappers and the
        names bound to them, ``zip``ped with a counter): data, with no history."""
        return d.value is not None and self._draws_data(d.value, d.scope)

    def _draws_data(self, it, fn: Function) -> bool:
        """Iterating ``it`` yields batches of a data loader (and counters), nothing else."""
        sources = self.values.iterated(it, fn)
        loaders = 0
        for src, where, _zipped in sources:
            if isinstance(src, cst.Call) and (dotted(src.func) or "").rsplit(".", 1)[-1] in COUNTERS:
                continue
            if src is None or not self._loader(src, where):
                return False
            loaders += 1
        return loaders > 0

    def _loader(self, expr, fn: Function) -> bool:
        if not isinstance(expr, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
            return False
        role = self.m.roles.resolve(expr, Frame(fn))
        return role is not None and role.kind == LOADER

    def _call(self, call: cst.Call, fn: Function, in_ng: bool, depth: int) -> Optional[str]:
        func = call.func
        method = func.attr.value if isinstance(func, cst.Attribute) else None
        if method in CUTTING:
            return f"taken from `.{method}()`"
        if method in SAME_OBJECT and method != "requires_grad_":
            return self.history_free(func.value, fn, in_ng, depth + 1)  # ``x.to(device)``: x itself
        if method == "requires_grad_" or _true(keyword_arg(call, "requires_grad")):
            return None  # a leaf that requires grad: a parameter of its own
        last = method or (func.value if isinstance(func, cst.Name) else None)
        if last == "next" and call.args and self._draws_data(call.args[0].value, fn):
            return "a batch of data"  # ``x, y = next(batch_iter)`` with ``batch_iter = iter(loader)``
        if last in LOOKUPS:
            return None
        q = self.scopes.qualify(func) or ""
        if q.startswith("torch.") and q.rsplit(".", 1)[-1] in FACTORIES:
            return "copied into a new tensor by `{}`".format(dotted(func))
        if in_ng:
            return "computed under `torch.no_grad()`"
        callee, _ = self.values.resolve_callee(func, fn, classes=False)
        if callee is not None:
            if self._decorated_no_grad(callee):
                return f"returned by `{callee.name}`, which runs under `torch.no_grad()`"
            return self._helper_result(call, callee, fn, depth)
        if method is not None and not _torch_function(q):
            # a tensor method (``x.mean()``, ``a.mul(b)``): no history when neither receiver nor arguments have one
            if self.history_free(func.value, fn, False, depth + 1) is None:
                return None
            return self._args_free(call, fn, depth) and self.history_free(func.value, fn, False, depth + 1)
        if _torch_function(q) or self._loss_module(func, fn):
            return self._args_free(call, fn, depth)
        return None

    def _helper_result(self, call: cst.Call, callee: Function, fn: Function, depth: int) -> Optional[str]:
        """A function of this module (not a method) called with arguments that have no history returns a
        value without history when every value it returns is computed from its parameters and constants by
        torch functions and loss modules (``compute_loss(out, y)``)."""
        node = callee.node
        if not isinstance(node, cst.FunctionDef) or callee.cls is not None or callee in self._free_params \
                or depth >= MAX_DEPTH - 1:
            return None
        reason = self._args_free(call, fn, depth)
        if reason is None:
            return None
        returns = [n for n in descendants(node.body, prune=lambda n: isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda)))
                   if isinstance(n, (cst.Return, cst.Yield))]
        if not returns or any(isinstance(r, cst.Yield) or r.value is None for r in returns):
            return None
        self._free_params.append(callee)
        try:
            for r in returns:
                got = self.history_free(r.value, callee, self._in_no_grad(r, callee), depth + 1)
                if got is None:
                    return None
                reason = reason if got == "a constant" else got
        finally:
            self._free_params.pop()
        return reason

    def _args_free(self, call: cst.Call, fn: Function, depth: int) -> Optional[str]:
        reason = None
        for a in call.args:
            if a.keyword is not None and (isinstance(a.value, (cst.Integer, cst.Float, cst.SimpleString))
                                          or (isinstance(a.value, cst.Name) and a.value.value in ("True", "False", "None"))):
                continue  # options: reduction="sum", dim=1, keepdim=True
            r = self.history_free(a.value, fn, False, depth + 1)
            if r is None:
                return None
            reason = _stronger(reason, r)
        return reason or "a constant"

    def _loss_module(self, func, fn: Function) -> bool:
        """``criterion`` bound (on every path) to a loss module of ``torch.nn`` (``nn.MSELoss()``), also when a
        caller passes it (``train_step(model, criterion, x, y)``)."""
        if isinstance(func, cst.Name):
            func, fn = self.values.through_parameters(func, fn)
        values = self.values.assigned_values(func, fn) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if not values:
            return False
        for v, scope in values:
            if not isinstance(v, cst.Call):
                return False
            q = self.scopes.qualify(v.func) or ""
            if not (q.startswith("torch.nn.") and q.endswith("Loss")):
                return False
        return True

    def _decorated_no_grad(self, callee: Function) -> bool:
        node = callee.node
        if not isinstance(node, cst.FunctionDef):
            return False
        for d in node.decorators:
            dec = d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator
            if (self.scopes.qualify(dec) or "") in NO_GRAD:
                return True
        return False

    # -- no-grad regions -------------------------------------------------------------------------------------
    def _in_no_grad(self, stmt, fn: Function) -> bool:
        return stmt is not None and id(stmt) in self.no_grad_statements(fn)

    def no_grad_statements(self, fn: Function) -> Set[int]:
        """The statements of ``fn`` that run with gradients disabled (inside ``with torch.no_grad():``, or
        the whole body of a function decorated with it), minus ``with torch.enable_grad():`` blocks."""
        got = self._no_grad.get(fn)
        if got is not None:
            return got
        found: Set[int] = set()
        root = fn.node
        stack = [(root, self._decorated_no_grad(fn))]
        while stack:
            n, mode = stack.pop()
            t = type(n)
            if t is cst.With:
                mode = self._with_mode(n, mode)
            elif t is cst.SimpleStatementLine:
                if mode:
                    found.update(id(s) for s in n.body)
            elif t is cst.ClassDef or (t is cst.FunctionDef and n is not root):
                continue
            stack.extend((c, mode) for c in reversed(children(n)))
        self._no_grad[fn] = found
        return found

    def _with_mode(self, n: cst.With, outer: bool) -> bool:
        mode = outer
        for item in n.items:
            call = item.item
            if not isinstance(call, cst.Call):
                continue
            q = self.scopes.qualify(call.func) or ""
            if q in NO_GRAD:
                arg = call.args[0].value if call.args else None
                mode = not (isinstance(arg, cst.Name) and arg.value == "False")  # inference_mode(False)
            elif q in ENABLE_GRAD:
                mode = False
            elif q in SET_GRAD and call.args and isinstance(call.args[0].value, cst.Name) \
                    and call.args[0].value.value in ("True", "False"):
                mode = call.args[0].value.value == "False"
        return mode


def _stronger(reason: Optional[str], other: str) -> str:
    """What a value made of two without history is said to have lost: a cut graph over a batch of data
    over a constant."""
    weak = (None, "a constant", "a batch of data")
    if reason in weak and other != "a constant":
        return other if reason != "a batch of data" or other not in weak else reason
    return reason if reason is not None else other


def _is_cut(reason: str) -> bool:
    """A history lost where the graph was cut: under no_grad (a block or a decorated helper), by
    ``.detach()`` or ``.data``; not a constant, a batch, a Python number or a copy into a new tensor."""
    return "no_grad" in reason or reason in ("taken from `.detach()`", "taken from `.detach_()`", "taken from `.data`")


def _torch_function(q: str) -> bool:
    """A function of torch (``torch.mean``, ``F.mse_loss``), not a module class or an optimizer."""
    if not q.startswith("torch."):
        return False
    last = q.rsplit(".", 1)[-1]
    return bool(last) and not last[0].isupper() and not q.startswith(("torch.optim", "torch.utils"))


def _true(value) -> bool:
    return isinstance(value, cst.Name) and value.value == "True"


def _forces(call: cst.Call) -> bool:
    """``x.requires_grad_()`` / ``x.requires_grad_(True)`` (not ``requires_grad_(False)``)."""
    if not call.args:
        return True
    return _true(call.args[0].value)
