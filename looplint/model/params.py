"""Parameter sets: which module parameters an optimizer holds, which are frozen, and which submodules are
replaced after the optimizer took its parameters.

An optimizer takes the parameters its constructor is given (``model.head.parameters()``, parameter
groups of such calls) once, when it is built; ``requires_grad`` is read at every backward pass. So:

* **frozen** -- a freezing loop (``for p in model.parameters(): p.requires_grad = False``,
  ``model.requires_grad_(False)``) that covers every module an optimizer holds, with nothing under those
  modules re-enabled afterwards, leaves the optimizer without a single parameter that receives a gradient
  (a module built and put under a frozen one before the optimizer is built -- a new head,
  ``model.classifier[6] = nn.Linear(...)``, or LoRA layers a function of the project handed the model
  puts into it with ``setattr`` -- brings parameters that require gradients);
* **replaced** -- ``model.fc = nn.Linear(...)`` (or ``setattr``/``add_module``) after an optimizer was built
  over ``model.parameters()`` gives the model parameters the optimizer never holds: they receive gradients
  and never change.

The facts are read from straight-line code: the constructor, the freezing or replacing statements and the
statement that trains (runs a step of that optimizer, directly or through functions of this module) must
be statements of one block, in that order, outside any ``if``/loop of their own; module paths are dotted
names (``model``, ``model.head``, ``self.net.fc``), one covering another when it is a prefix of it. A
freezing loop under a test (``if "head" not in name``), a parameter set built by a call looplint cannot
read, or a path it cannot compare keeps everything silent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst

from looplint.model import events as ev
from looplint.model.events import Event
from looplint.model.interp import items_below
from looplint.model.roles import MODULE, OPTIMIZER, Frame, Role, unwrap_module
from looplint.model.scopes import Function, dotted, keyword_arg, positional_args
from looplint.model.walk import children, descendants


@dataclass(eq=False)
class FrozenOptimizer:
    """Every module ``optimizer`` holds (``holds``) is frozen when it trains: by ``freeze`` after the
    constructor, or before it (``freeze`` is then None and the constructor is reported)."""

    ctor: cst.Call
    optimizer: Role
    holds: Tuple[str, ...]
    freeze: Optional[cst.CSTNode]
    by: cst.CSTNode  # the freezing statement that covers them last


@dataclass(eq=False)
class MissedModule:
    """``node`` replaces or adds the submodule ``path`` after ``optimizer`` took the parameters of ``holds``."""

    node: cst.CSTNode
    path: str
    optimizer: Role
    ctor: cst.Call
    holds: str


@dataclass
class ParamFacts:
    frozen: List[FrozenOptimizer] = field(default_factory=list)
    missed: List[MissedModule] = field(default_factory=list)


def analyse(model) -> ParamFacts:
    facts = ParamFacts()
    trainers = _step_functions(model)
    for fn in model.scopes.functions:
        root = fn.node if isinstance(fn.node, cst.Module) else fn.node.body
        for block in _blocks(root):
            _Block(model, fn, block, trainers, facts).run()
    return facts


def _blocks(node) -> List[Sequence[cst.BaseStatement]]:
    """Every statement list in a function body (its own, and those of ``if``/``with``/``try``/loops), not
    those of nested functions and classes."""
    out: List[Sequence[cst.BaseStatement]] = []
    stack = [node]
    while stack:
        n = stack.pop()
        body = n.body if isinstance(n, (cst.Module, cst.IndentedBlock)) else None
        if body is not None:
            out.append(body)
            for st in body:
                if isinstance(st, (cst.FunctionDef, cst.ClassDef)):
                    continue
                for child in children(st):
                    if isinstance(child, (cst.IndentedBlock, cst.Else, cst.If, cst.ExceptHandler, cst.Finally)):
                        stack.append(child)
        else:
            for child in children(n):
                if isinstance(child, (cst.IndentedBlock, cst.Else, cst.If, cst.ExceptHandler, cst.Finally)):
                    stack.append(child)
    return out


def _step_functions(model) -> Dict[int, Set[Function]]:
    """Per optimizer role (by id): the functions whose bodies step it, and every function of the module
    that calls one of those (transitively)."""
    direct: Dict[int, Set[Function]] = {}
    for e, roles in model.facts.acted_on.items():
        if e.kind != ev.STEP:
            continue
        fn = model.function_of(e)
        for r in roles:
            if r.kind == OPTIMIZER and fn is not None:
                direct.setdefault(id(r), set()).add(fn)
    callers: Dict[Function, Set[Function]] = {}
    for f in model.scopes.functions:
        for i in items_below(model.builder.body(f)):
            if isinstance(i, Event) and i.kind == ev.CALL and i.callee is not None:
                callers.setdefault(i.callee, set()).add(f)
    out: Dict[int, Set[Function]] = {}
    for key, fns in direct.items():
        seen = set(fns)
        todo = list(fns)
        while todo:
            f = todo.pop()
            for c in callers.get(f, ()):
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        out[key] = seen
    return out


class _Block:
    def __init__(self, model, fn: Function, block, trainers, facts: ParamFacts) -> None:
        self.m = model
        self.fn = fn
        self.block = list(block)
        self.trainers = trainers
        self.facts = facts
        self._adds: Dict[Function, bool] = {}  # function -> whether it may add trainable parameters

    def run(self) -> None:
        for i, st in enumerate(self.block):
            ctor = self._optimizer_ctor(st)
            if ctor is None:
                continue
            call, role = ctor
            holds = self._held_paths(call)
            if holds is None:
                continue
            train = self._first_training(i, role)
            if train is None:
                continue
            self._frozen(i, train, call, role, holds)
            self._replaced(i, train, call, role, holds)

    # -- the optimizer ----------------------------------------------------------------------------------
    def _optimizer_ctor(self, st) -> Optional[Tuple[cst.Call, Role]]:
        if not isinstance(st, cst.SimpleStatementLine) or len(st.body) != 1 or not isinstance(st.body[0], cst.Assign):
            return None
        a = st.body[0]
        if len(a.targets) != 1 or not isinstance(a.value, cst.Call) or dotted(a.targets[0].target) is None:
            return None
        if self.m.roles.ctor_kind(a.value, self.fn)[0] != OPTIMIZER:
            return None
        role = self.m.roles.resolve(a.targets[0].target, Frame(self.fn))
        if role is None or role.kind != OPTIMIZER or role.ctor is not a.value:
            return None
        return a.value, role

    def _held_paths(self, call: cst.Call) -> Optional[Tuple[str, ...]]:
        """The module paths whose parameters the constructor is given (None when not readable)."""
        params = positional_args(call)[0] if positional_args(call) else keyword_arg(call, "params")
        paths = _param_paths(params)
        return tuple(paths) if paths else None

    def _first_training(self, after: int, role: Role) -> Optional[int]:
        """Index of the first statement after ``after`` that steps ``role`` (directly, or by calling a
        function of this module that does)."""
        fns = self.trainers.get(id(role))
        if not fns:
            return None
        steps = {id(e.node) for e, roles in self.m.facts.acted_on.items() if e.kind == ev.STEP and role in roles}
        for j in range(after + 1, len(self.block)):
            if self._trains(self.block[j], steps, fns):
                return j
        return None

    def _trains(self, st, steps: Set[int], fns: Set[Function]) -> bool:
        """Whether statement ``st`` steps the optimizer (one of ``steps``) or calls one of ``fns`` (not in a
        function or class it defines)."""
        if isinstance(st, (cst.FunctionDef, cst.ClassDef)):
            return False
        m, fn = self.m, self.fn
        for n in descendants(st, prune=_defines):
            if type(n) is not cst.Call:
                continue
            if id(n) in steps:
                return True
            callee, _ = m.values.resolve_callee(n.func, fn)
            if callee is None:  # a partial, a lambda, a function a factory returned, bound to a name
                got = m.values.callable_of(n.func, fn)
                callee = got.target if got is not None else None
            if callee is not None and callee in fns:
                return True
        return False

    # -- frozen -------------------------------------------------------------------------------------------
    def _frozen(self, i: int, train: int, call: cst.Call, role: Role, holds: Tuple[str, ...]) -> None:
        """Every held path frozen by the last statement covering it before the training statement."""
        ops = [(j, op) for j in range(train) for op in _grad_switches(self.block[j])]
        if any(op is None for _, op in ops):
            return  # a freezing statement we cannot read
        # a module built and put into the model before the optimizer took its parameters brings parameters
        # that require gradients (a new head after a frozen backbone); one put in later is not held (LL111);
        # so does a function of the project handed the module that puts modules into it (LoRA layers)
        ops += [(j, (path, True, node)) for j in range(i) for node, path in self._new_modules(self.block[j])]
        ops += [(j, (path, True, node)) for j in range(i) for node, path in self._handed_to_builders(self.block[j])]
        ops.sort(key=lambda o: o[0])
        last: Optional[Tuple[int, cst.CSTNode]] = None
        for path in holds:
            state: Optional[bool] = None
            node = None
            for j, (where, value, stmt) in ops:
                if _covers(where, path):
                    state, node = value, (j, stmt)
                elif _covers(path, where) and value:
                    state = True  # part of it re-enabled
            if state is not False or node is None:
                return
            if last is None or node[0] > last[0]:
                last = node
        if last is None:
            return
        j, stmt = last
        self.facts.frozen.append(FrozenOptimizer(call, role, holds, stmt if j > i else None, stmt))

    # -- replaced -----------------------------------------------------------------------------------------
    def _replaced(self, i: int, train: int, call: cst.Call, role: Role, holds: Tuple[str, ...]) -> None:
        for j in range(i + 1, train):
            st = self.block[j]
            if self._optimizer_ctor(st) is not None:
                return  # another optimizer built in between: which one trains the new module is unclear
            for node, path in self._new_modules(st):
                under = [h for h in holds if _covers(h, path) and h != path]
                if under:
                    self.facts.missed.append(MissedModule(node, path, role, call, under[0]))

    def _new_modules(self, st) -> List[Tuple[cst.CSTNode, str]]:
        out = []
        if not isinstance(st, cst.SimpleStatementLine):
            return out
        for small in st.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and self._builds_module(small.value):
                path = _module_path(small.targets[0].target)
                if path is not None:
                    out.append((small, path))
            elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                c = small.value
                name = c.func.attr.value if isinstance(c.func, cst.Attribute) else dotted(c.func)
                args = positional_args(c)
                if name == "setattr" and len(args) == 3 and isinstance(args[1], cst.SimpleString) \
                        and dotted(args[0]) is not None and self._builds_module(args[2]):
                    out.append((small, f"{dotted(args[0])}.{args[1].evaluated_value}"))
                elif name in ("add_module", "register_module") and isinstance(c.func, cst.Attribute) and len(args) == 2 \
                        and isinstance(args[0], cst.SimpleString) and dotted(c.func.value) is not None \
                        and self._builds_module(args[1]):
                    out.append((small, f"{dotted(c.func.value)}.{args[0].evaluated_value}"))
        return out

    def _handed_to_builders(self, st) -> List[Tuple[cst.CSTNode, str]]:
        """(call, module path) for each call in ``st`` that hands a module (``model``, ``self.net``) to a
        function of the project that puts modules into what it is handed or switches gradients back on
        (``replace_linear_with_lora(model, rank=8)``: its ``setattr(module, name, LinearWithLoRA(...))``)."""
        out = []
        if isinstance(st, (cst.FunctionDef, cst.ClassDef)):
            return out
        for n in descendants(st, prune=_defines):
            if type(n) is not cst.Call:
                continue
            handed = [dotted(a.value) for a in n.args if dotted(a.value) is not None]
            if not handed:
                continue
            callee, _ = self.m.values.resolve_callee(n.func, self.fn)
            if callee is not None and self._adds_parameters(callee):
                out.extend((n, path) for path in handed)
        return out

    def _adds_parameters(self, fn: Function) -> bool:
        """Whether the body of ``fn`` stores a module it builds (``setattr``, ``add_module``, an attribute
        assignment) or sets ``requires_grad`` back on: parameters that require gradients may appear."""
        got = self._adds.get(fn)
        if got is None:
            got = self._adds[fn] = self._stores_modules(fn)
        return got

    def _stores_modules(self, fn: Function) -> bool:
        for n in descendants(fn.node):
            if type(n) is cst.Assign:
                targets = [t.target for t in n.targets]
                if any(isinstance(t, cst.Attribute) for t in targets) and self._builds_module(n.value, fn):
                    return True
                if any(isinstance(t, cst.Attribute) and t.attr.value == "requires_grad" for t in targets) \
                        and _bool(n.value) is not False:
                    return True
            elif type(n) is cst.Call:
                name = n.func.attr.value if isinstance(n.func, cst.Attribute) else dotted(n.func)
                args = positional_args(n)
                if name == "setattr" and len(args) == 3 and self._builds_module(args[2], fn):
                    return True
                if name in ("add_module", "register_module") and len(args) == 2 and self._builds_module(args[1], fn):
                    return True
                if name == "requires_grad_" and (not n.args or _bool(n.args[0].value) is not False):
                    return True
        return False

    def _builds_module(self, value, fn: Optional[Function] = None) -> bool:
        """A module built in place (``nn.Linear(...)``, a module class of the project), also moved or wrapped
        as it is stored (``nn.Linear(512, 2).to(device)``: the same new module); read in ``fn`` (this
        block's function when None)."""
        value = unwrap_module(value)
        return isinstance(value, cst.Call) and self.m.roles.ctor_kind(value, fn or self.fn)[0] == MODULE


def _module_path(target) -> Optional[str]:
    """The submodule path an assignment target names: ``model.fc``, ``model.classifier[6]`` (an entry of a
    ``Sequential``/``ModuleList``/``ModuleDict`` submodule, written as the code writes it)."""
    if isinstance(target, cst.Attribute):
        return dotted(target)
    if isinstance(target, cst.Subscript) and len(target.slice) == 1 and isinstance(target.slice[0].slice, cst.Index):
        owner = dotted(target.value)
        key = target.slice[0].slice.value
        if owner is not None and isinstance(key, (cst.Integer, cst.SimpleString)):
            return f"{owner}[{key.value}]"
    return None


def _param_paths(params) -> Optional[List[str]]:
    """``m.parameters()``, ``list(m.parameters())``, ``[{"params": m.parameters()}, ...]`` -> module paths."""
    if params is None:
        return None
    if isinstance(params, cst.Call) and dotted(params.func) in ("list", "tuple") and len(params.args) == 1:
        return _param_paths(params.args[0].value)
    if isinstance(params, cst.Call) and isinstance(params.func, cst.Attribute) and params.func.attr.value == "parameters" \
            and not params.args and dotted(params.func.value) is not None:
        return [dotted(params.func.value)]
    if isinstance(params, (cst.List, cst.Tuple)) and params.elements:
        out: List[str] = []
        for el in params.elements:
            v = el.value
            if isinstance(v, cst.Dict):
                group = next((e.value for e in v.elements if isinstance(e, cst.DictElement)
                              and isinstance(e.key, cst.SimpleString) and e.key.evaluated_value == "params"), None)
                got = _param_paths(group)
            else:
                got = _param_paths(v)
            if not got:
                return None
            out.extend(got)
        return out
    return None


def _grad_switches(st) -> List[Optional[Tuple[str, bool, cst.CSTNode]]]:
    """(module path, requires_grad value, the node) for each statement that sets ``requires_grad`` on a
    module's parameters; None for one that does it in a way we cannot read."""
    out: List[Optional[Tuple[str, bool, cst.CSTNode]]] = []
    if isinstance(st, cst.For):
        path = _params_iterated(st.iter)
        target = st.target
        if isinstance(target, cst.Tuple) and len(target.elements) == 2:
            target = target.elements[1].value
        sets = _sets_in(st.body, target.value if isinstance(target, cst.Name) else None)
        if sets:
            if path is None or sets == [None] or any(s is None for s in sets):
                return [None]
            return [(path, value, node) for value, node in sets]
        return []
    if isinstance(st, cst.SimpleStatementLine):
        for small in st.body:
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                c = small.value
                if isinstance(c.func, cst.Attribute) and c.func.attr.value == "requires_grad_":
                    recv = c.func.value
                    value = _bool(c.args[0].value) if c.args else True
                    if dotted(recv) is None or value is None:
                        out.append(None)
                    else:
                        out.append((dotted(recv), value, c))
        return out
    if isinstance(st, (cst.If, cst.While, cst.With, cst.Try)) and _mentions_requires_grad(st):
        return [None]  # a conditional freeze: not readable
    return out


def _params_iterated(it) -> Optional[str]:
    if isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and it.func.attr.value in (
            "parameters", "named_parameters") and not it.args and dotted(it.func.value) is not None:
        return dotted(it.func.value)
    return None


def _sets_in(body, name: Optional[str]) -> List[Optional[Tuple[bool, cst.CSTNode]]]:
    """``p.requires_grad = <bool>`` / ``p.requires_grad_(<bool>)`` statements of a loop body on its target
    ``p``, unconditional; [None] when there is one we cannot read (under a test, on another name)."""
    stmts = body.body if isinstance(body, cst.IndentedBlock) else []
    out: List[Optional[Tuple[bool, cst.CSTNode]]] = []
    for st in stmts:
        if not isinstance(st, cst.SimpleStatementLine):
            if _mentions_requires_grad(st):
                return [None]
            continue
        for small in st.body:
            if isinstance(small, cst.Assign) and any(isinstance(t.target, cst.Attribute)
                                                     and t.target.attr.value == "requires_grad" for t in small.targets):
                t = small.targets[0].target
                value = _bool(small.value)
                ok = len(small.targets) == 1 and isinstance(t.value, cst.Name) and t.value.value == name
                out.append((value, small) if ok and value is not None else None)
            elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) \
                    and isinstance(small.value.func, cst.Attribute) and small.value.func.attr.value == "requires_grad_":
                c = small.value
                value = _bool(c.args[0].value) if c.args else True
                ok = isinstance(c.func.value, cst.Name) and c.func.value.value == name
                out.append((value, c) if ok and value is not None else None)
    return out


def _mentions_requires_grad(node) -> bool:
    return any(type(n) is cst.Name and n.value in ("requires_grad", "requires_grad_") for n in descendants(node))


def _defines(n) -> bool:
    return type(n) is cst.FunctionDef or type(n) is cst.ClassDef


def _bool(value) -> Optional[bool]:
    if isinstance(value, cst.Name) and value.value in ("True", "False"):
        return value.value == "True"
    return None


def _covers(outer: str, inner: str) -> bool:
    """``model`` covers ``model.head`` (and itself)."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))
