"""Where names live: imports, module globals, classes, functions and what each local name is assigned.

One pass over the module collects everything later stages look names up in. It is flow-insensitive on
purpose: roles are decided from every assignment a name receives, and a name with conflicting evidence
is treated as unknown.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Set, Tuple, Union

import libcst as cst

from looplint.model.walk import Walker, descendants

FunctionNode = Union[cst.FunctionDef, cst.Module]


def dotted(expr: cst.BaseExpression) -> Optional[str]:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name):
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


def last_name(expr: cst.BaseExpression) -> Optional[str]:
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    if isinstance(expr, cst.Call):
        return last_name(expr.func)
    if isinstance(expr, cst.Subscript):
        return last_name(expr.value)
    return None


def names_in(node: cst.CSTNode) -> Set[str]:
    """Every identifier read in an expression (``self`` included for ``self.x``)."""
    v = _Names()
    v.walk(node)
    return v.found


# the key under which ``Function.items`` keeps what a container stores under a computed key
ANY_KEY = "*"


class _Names(Walker):
    def __init__(self) -> None:
        self.found: Set[str] = set()

    def visit_Name(self, n: cst.Name) -> None:
        self.found.add(n.value)

    def visit_Attribute(self, n: cst.Attribute) -> bool:
        d = dotted(n)
        if d:
            self.found.add(d)
        self.walk(n.value)
        return False


def has_call(node: cst.CSTNode) -> bool:
    return any(type(n) is cst.Call for n in descendants(node))


def positional_args(call: cst.Call) -> List[cst.BaseExpression]:
    return [a.value for a in call.args if a.keyword is None and not a.star]


def keyword_arg(call: cst.Call, name: str) -> Optional[cst.BaseExpression]:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == name:
            return a.value
    return None


def arg(call: cst.Call, index: int, name: str) -> Optional[cst.BaseExpression]:
    pos = positional_args(call)
    if index < len(pos):
        return pos[index]
    return keyword_arg(call, name)


@dataclass(eq=False)
class ClassInfo:
    name: str
    node: cst.ClassDef
    bases: List[str]
    methods: Dict[str, "Function"] = field(default_factory=dict)
    home: Optional["Scopes"] = field(default=None, repr=False)  # the module that defines it
    # self.<attr> = value, from every method (and class-level assignments)
    attrs: Dict[str, List["Assignment"]] = field(default_factory=dict)
    # self.<attr>[<literal>] = value, from every method
    items: Dict[tuple, List["Assignment"]] = field(default_factory=dict)


@dataclass(eq=False)
class Assignment:
    value: cst.BaseExpression
    scope: "Function"
    # For tuple targets: the position of the name in the tuple and the tuple's length.
    index: Optional[int] = None
    size: Optional[int] = None
    node: Optional[cst.CSTNode] = None


@dataclass(eq=False)
class Function:
    """A function, method or the module body, with its local bindings."""

    name: str
    node: FunctionNode
    parent: Optional["Function"] = None
    cls: Optional[ClassInfo] = None
    params: List[str] = field(default_factory=list)
    assigns: Dict[str, List[Assignment]] = field(default_factory=dict)
    nested: Dict[str, "Function"] = field(default_factory=dict)
    globals_: Set[str] = field(default_factory=set)
    # <name>[<literal>] = value: entries stored into containers, by (container, key text)
    items: Dict[tuple, List[Assignment]] = field(default_factory=dict)
    home: Optional["Scopes"] = field(default=None, repr=False)  # the module that defines it
    # names its statements bind other than by assignment: loop and ``except`` targets, augmented
    # assignments, imports, nested classes (``Values.maybe_local`` adds nested functions and walrus targets)
    bound_other: Set[str] = field(default_factory=set)
    nonlocals: Set[str] = field(default_factory=set)  # names its ``nonlocal`` statements declare

    @property
    def is_module(self) -> bool:
        return isinstance(self.node, cst.Module)

    @property
    def qualname(self) -> str:
        if self.is_module:
            return self.name
        prefix = self.parent.qualname + "." if self.parent and not self.parent.is_module else ""
        if self.parent is not None and self.parent.is_module and self.parent.name != "<module>":
            prefix = self.parent.name + "."  # a function of an imported module (project.py)
        if self.cls is not None:
            prefix = self.cls.name + "."
        return prefix + self.name

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Function {self.qualname}>"


class Scopes:
    """Imports, functions, classes and assignments of one module.

    ``project`` (``looplint.model.project.Project``, for the linted file only) answers for names imported
    from other modules of the same project: ``lookup_function`` and ``lookup_class`` return their
    definitions, whose ``home`` is the imported module's ``Scopes`` (which resolves no imports of its own),
    and ``qualify`` reads a name of that module's code with that module's imports."""

    def __init__(self, module: cst.Module, project=None, name: str = "<module>", path: Optional[str] = None,
                 source: Optional[str] = None):
        """``source``: the text ``module`` was parsed from, when known (``has_walrus`` reads it)."""
        self.module_node = module
        self._walrus: Optional[bool] = None if source is None else ":=" in source
        self.project = project
        self.path = path
        self.imports: Dict[str, str] = {}  # local alias -> qualified name
        self.star_modules: List[str] = []  # the modules ``from M import *`` reads everything of
        self.classes: Dict[str, ClassInfo] = {}
        self.functions: List[Function] = []
        self.module = Function(name if name == "<module>" else f"<{name}>", module, home=self)
        self.functions.append(self.module)
        self.by_node: Dict[cst.CSTNode, Function] = {module: self.module}
        self._imported: Dict[str, object] = {}
        self._node_ids: Optional[Set[int]] = None
        _Collector(self).collect(module.body, self.module)

    @property
    def node_ids(self) -> Set[int]:
        """The ids of this module's names and attributes (to tell its code from another module's)."""
        if self._node_ids is None:
            ids: Set[int] = set()

            class V(Walker):
                def visit_Name(self, n: cst.Name) -> None:
                    ids.add(id(n))

                def visit_Attribute(self, n: cst.Attribute) -> None:
                    ids.add(id(n))

            V().walk(self.module_node)
            self._node_ids = ids
        return self._node_ids

    @property
    def has_walrus(self) -> bool:
        """Whether the module may hold an assignment expression (``:=``): read from its text when known
        (a text without ``:=`` holds none), else from one walk of the tree."""
        if self._walrus is None:
            self._walrus = any(type(n) is cst.NamedExpr for n in descendants(self.module_node))
        return self._walrus

    def home_of(self, expr: cst.CSTNode) -> "Scopes":
        """The module whose code holds ``expr``: an imported module's, or this one."""
        if self.project is not None:
            home = self.project.home_of(expr)
            if home is not None:
                return home
        return self

    # -- lookups ---------------------------------------------------------------------------------------
    def qualify(self, expr: cst.BaseExpression) -> Optional[str]:
        """The import-qualified dotted name of ``expr`` (``optim.Adam`` -> ``torch.optim.Adam``), read with
        the imports of the module whose code holds it."""
        d = dotted(expr)
        if d is None:
            return None
        if self.project is not None:
            home = self.project.home_of(expr)
            if home is not None and home is not self:
                return home.qualify(expr)
        head, _, rest = d.partition(".")
        if head in self.imports:
            q = self.imports[head]
            return q + ("." + rest if rest else "")
        return d

    def lookup_function(self, name: str, scope: Function) -> Optional[Function]:
        s: Optional[Function] = scope
        while s is not None:
            if name in s.nested:
                return s.nested[name]
            s = s.parent
        s = scope
        while s is not None:
            if name in s.assigns or name in s.params:
                return None  # a local binding hides any import of the name
            s = s.parent
        found = self.imported(name, scope)
        return found if isinstance(found, Function) else None

    def lookup_class(self, name: str, scope: Optional[Function] = None) -> Optional[ClassInfo]:
        """A class of this module, or one of another module of the project imported under ``name``."""
        home = scope.home if scope is not None and scope.home is not None else self
        if name in home.classes:
            return home.classes[name]
        found = self.imported(name, scope)
        return found if isinstance(found, ClassInfo) else None

    def imported(self, dotted_name: str, scope: Optional[Function] = None):
        """The function or class of another module of the project that a name (``make_opt``) or attribute
        chain (``helpers.make_opt``) read in ``scope`` denotes, through this module's imports; None when it
        is not imported, not found, or read in an imported module's code (only the linted file's imports
        are followed)."""
        home = scope.home if scope is not None and scope.home is not None else self
        if home is not self or self.project is None:
            return None
        head, _, rest = dotted_name.partition(".")
        if head in self.imports:
            return self._lookup(self.imports[head] + ("." + rest if rest else ""))
        if rest:
            return None
        for module in reversed(self.star_modules):  # a name a star import brings (the last one binds it)
            found = self._lookup(f"{module}.{head}" if not module.endswith(".") else module + head)
            if found is not None:
                return found
        return None

    def lookup_imported(self, qualified: str):
        """The function or class of another module of the project that an import-qualified name of this
        module (``.base.Trainer``, as ``qualify`` spells it) denotes, or None."""
        if self.project is None or not qualified or qualified.split(".")[0] in self.classes:
            return None
        return self._lookup(qualified)

    def _lookup(self, q: str):
        if q not in self._imported:
            self._imported[q] = self.project.lookup(q)
        return self._imported[q]

    def iter_functions(self) -> Iterator[Function]:
        return iter(self.functions)


class _Collector:
    def __init__(self, scopes: Scopes):
        self.s = scopes

    def collect(self, body, fn: Function) -> None:
        for stmt in body:
            self.stmt(stmt, fn)

    # Statements -------------------------------------------------------------------------------------
    def stmt(self, stmt: cst.CSTNode, fn: Function) -> None:
        if isinstance(stmt, cst.FunctionDef):
            self.function(stmt, fn, None)
            return
        if isinstance(stmt, cst.ClassDef):
            fn.bound_other.add(stmt.name.value)
            self.klass(stmt, fn)
            return
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self.small(small, fn)
            return
        if isinstance(stmt, cst.BaseSmallStatement):  # the body of ``if c: x = 1``
            self.small(stmt, fn)
            return
        # compound statements: for targets, with-as, except-as, then nested bodies
        if isinstance(stmt, cst.For):
            self.target(stmt.target, stmt.iter, fn, stmt, loop_target=True)
            fn.bound_other.update(n for n, _p, _s in target_names(stmt.target))
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            fn.bound_other.update(h.name.name.value for h in stmt.handlers
                                  if h.name is not None and isinstance(h.name.name, cst.Name))
        if isinstance(stmt, cst.With):
            for item in stmt.items:
                if item.asname is not None:
                    self.target(item.asname.name, item.item, fn, stmt)
        for child in _child_blocks(stmt):
            self.collect(child, fn)

    def small(self, small: cst.BaseSmallStatement, fn: Function) -> None:
        if isinstance(small, cst.Import):
            for alias in small.names:
                full = dotted(alias.name) or ""
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self.s.imports[alias.asname.name.value] = full
                    fn.bound_other.add(alias.asname.name.value)
                else:
                    head = full.split(".")[0]
                    self.s.imports.setdefault(head, head)
                    fn.bound_other.add(head)
        elif isinstance(small, cst.ImportFrom):
            mod = dotted(small.module) if small.module is not None else ""
            mod = "." * len(small.relative) + (mod or "")
            if isinstance(small.names, cst.ImportStar):
                self.s.star_modules.append(mod)  # ``from helpers import *``: what it defines, by name
                return
            for alias in small.names:
                name = dotted(alias.name) or ""
                local = alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name) else name
                self.s.imports[local] = f"{mod}.{name}" if mod and not mod.endswith(".") else mod + name
                fn.bound_other.add(local.split(".")[0])
        elif isinstance(small, cst.AugAssign):
            if isinstance(small.target, cst.Name):
                fn.bound_other.add(small.target.value)
        elif isinstance(small, cst.Nonlocal):
            fn.nonlocals.update(n.name.value for n in small.names)
        elif isinstance(small, cst.Assign):
            for t in small.targets:
                self.target(t.target, small.value, fn, small)
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            self.target(small.target, small.value, fn, small)
        elif isinstance(small, cst.Global):
            fn.globals_.update(n.name.value for n in small.names)

    def target(self, target, value, fn: Function, node, loop_target: bool = False) -> None:
        if isinstance(target, cst.Name):
            if not loop_target:
                self._bind(fn, target.value, Assignment(value, fn, node=node))
        elif isinstance(target, (cst.Tuple, cst.List)):
            elts = [e.value for e in target.elements]
            for i, e in enumerate(elts):
                if isinstance(e, cst.Name) and not loop_target:
                    self._bind(fn, e.value, Assignment(value, fn, i, len(elts), node=node))
                elif isinstance(e, cst.Attribute) and isinstance(e.value, cst.Name) and e.value.value == "self":
                    cls = _class_of(fn)
                    if cls is not None:  # ``self.a, self.b = a, b``
                        cls.attrs.setdefault(e.attr.value, []).append(
                            Assignment(cst.Name("None") if loop_target else value, fn, i, len(elts), node=node))
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            cls = _class_of(fn)
            if target.value.value == "self" and cls is not None:
                cls.attrs.setdefault(target.attr.value, []).append(Assignment(value, fn, node=node))
        elif isinstance(target, cst.Subscript) and len(target.slice) == 1 and isinstance(target.slice[0].slice, cst.Index):
            base, key = dotted(target.value), target.slice[0].slice.value
            if base is not None and not loop_target:
                # ``parts["opt"] = ...``: an entry of a container, found again by ``parts["opt"]``; under
                # ``ANY_KEY`` when the key is computed (``modules[name] = m``: what the container may hold)
                owner = _class_of(fn) if base.startswith("self.") else None
                table = owner.items if owner is not None else fn.items
                literal = isinstance(key, (cst.SimpleString, cst.Integer))
                table.setdefault((base, code_of(key) if literal else ANY_KEY), []).append(Assignment(value, fn, node=node))

    def _bind(self, fn: Function, name: str, a: Assignment) -> None:
        scope = self.s.module if name in fn.globals_ else fn
        scope.assigns.setdefault(name, []).append(a)

    def function(self, node: cst.FunctionDef, parent: Function, cls: Optional[ClassInfo]) -> Function:
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params)]
        if isinstance(node.params.star_arg, cst.Param):
            params.append(node.params.star_arg.name.value)
        if node.params.star_kwarg is not None:
            params.append(node.params.star_kwarg.name.value)
        fn = Function(node.name.value, node, parent=parent, cls=cls, params=params, home=self.s)
        self.s.functions.append(fn)
        self.s.by_node[node] = fn
        if cls is not None:
            cls.methods[fn.name] = fn
        else:
            parent.nested[fn.name] = fn
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else node.body.body
        self.collect(body, fn)
        return fn

    def klass(self, node: cst.ClassDef, parent: Function) -> None:
        bases = [self.s.qualify(b.value) or "" for b in node.bases]
        info = ClassInfo(node.name.value, node, bases, home=self.s)
        self.s.classes[info.name] = info
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else node.body.body
        for stmt in body:
            if isinstance(stmt, cst.FunctionDef):
                self.function(stmt, parent, info)
            elif isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
                        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                        for t in targets:
                            if isinstance(t, cst.Name):
                                info.attrs.setdefault(t.value, []).append(Assignment(small.value, parent, node=small))


def target_names(t: cst.BaseExpression, path=()) -> List[Tuple[str, Tuple[int, ...], bool]]:
    """(name, position path, starred) for every name a target binds (``i``, ``(i, (x, y))``, ``a, *rest``)."""
    out = []
    if isinstance(t, cst.Name):
        out.append((t.value, path, False))
    elif isinstance(t, (cst.Tuple, cst.List)):
        for i, el in enumerate(t.elements):
            if isinstance(el, cst.StarredElement):
                if isinstance(el.value, cst.Name):
                    out.append((el.value.value, path + (i,), True))
            else:
                out.extend(target_names(el.value, path + (i,)))
    return out


def _class_of(fn: Optional[Function]) -> Optional[ClassInfo]:
    while fn is not None:
        if fn.cls is not None:
            return fn.cls
        fn = fn.parent
    return None


def code_of(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _child_blocks(stmt: cst.CSTNode):
    """The statement lists nested directly in a compound statement (bodies, else, handlers, ...)."""
    out = []

    def block(b):
        if b is None:
            return
        if isinstance(b, (cst.IndentedBlock, cst.SimpleStatementSuite)):
            out.append(b.body)
        elif hasattr(b, "body"):
            block(b.body)

    if isinstance(stmt, cst.If):
        block(stmt.body)
        if stmt.orelse is not None:
            if isinstance(stmt.orelse, cst.If):
                out.append([stmt.orelse])
            else:
                block(stmt.orelse.body)
    elif isinstance(stmt, (cst.For, cst.While)):
        block(stmt.body)
        if stmt.orelse is not None:
            block(stmt.orelse.body)
    elif isinstance(stmt, (cst.Try, cst.TryStar)):
        block(stmt.body)
        for h in stmt.handlers:
            block(h.body)
        if stmt.orelse is not None:
            block(stmt.orelse.body)
        if stmt.finalbody is not None:
            block(stmt.finalbody.body)
    elif isinstance(stmt, cst.With):
        block(stmt.body)
    elif isinstance(stmt, cst.Match):
        for case in stmt.cases:
            block(case.body)
    return out
