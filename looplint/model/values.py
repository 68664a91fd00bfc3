"""Values: what an expression may be, here.

One service answers that question for every other part of the model (roles, loop kinds, scheduler
sizing, closures, mixed precision, train/eval modes), so none keeps a lookup of its own:

* **Reaching definitions.** A name read in a function is what the assignments that reach that read
  made it (``loss = criterion(...)`` then ``loss = scaler.scale(loss)`` then ``loss.backward()``: the
  scaled one). Computed once per function, lazily, over the statements with their branches, loops,
  ``try`` and jumps. A name the function does not bind (a global, a free variable of a nested function)
  is every assignment of the scope that binds it.
* **Parameters.** A parameter nobody binds is its default plus the arguments of every call site in the
  module (``complete`` only when every call site passes something readable or leaves the default).
* **Attributes.** ``self.x`` is every ``self.x = ...`` in any method of the class, and a class-level
  assignment or annotation (``crit: Callable``) declares it.
* **Unpacking and containers.** ``a, (b, *c) = ...``, ``self.a, self.b = a, b``, ``d["k"]`` of a dict
  literal, ``l[0]`` of a list literal.
* **Callables.** ``def`` names, bound methods, lambdas, ``functools.partial`` (its arguments are bound
  like a call's), and functions a same-module factory returns.
* **Wrappers.** Iteration wrappers (``enumerate``, ``tqdm``, ``zip``...) and a name bound to one (``bar =
  tqdm(enumerate(loader))``); value-preserving calls (``.to(device)``); a scaled loss (``scaler.scale``).
* **Numbers.** The integers an expression may be (literals, arithmetic on them, parameter defaults and
  call-site arguments, ``self`` attributes, argparse defaults, config dict entries).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Set, Tuple, Union

import libcst as cst

from looplint.model.walk import Walker, children, descendants

from looplint.model.frameworks import framework_of
from looplint.model.scopes import Assignment, ClassInfo, Function, Scopes, dotted, last_name, positional_args, target_names

# Packages whose classes' methods the model knows by name (``Values.unseen_ancestry``): torch's, and the
# standard library's (Python 3.9 has no list of it: the modules classes are most often derived from).
_KNOWN_PACKAGES = frozenset({"torch", "torchvision", "torchaudio", "torchtext"}) | frozenset(getattr(
    sys, "stdlib_module_names", ("abc", "argparse", "collections", "contextlib", "dataclasses", "enum",
                                 "functools", "json", "logging", "threading", "typing", "unittest")))

# -- definitions -------------------------------------------------------------------------------------------
ASSIGN, PARAM, LOOP, AUG, OTHER = "assign", "param", "loop", "aug", "other"

# Calls that hand back their first argument's object (a module moved to a device, a tensor converted).
SAME_OBJECT = frozenset({"to", "cuda", "cpu", "float", "half", "double", "bfloat16", "train", "eval",
                         "requires_grad_", "share_memory", "contiguous"})
# Calls whose iteration yields the items of their first argument (possibly with a counter).
ITER_WRAPPERS = frozenset({"enumerate", "tqdm", "iter", "islice", "track", "progress_bar", "ProgressBar",
                           "tqdm_notebook", "cycle", "chain", "prefetch", "DataPrefetcher", "log_every",
                           "MetricLogger", "trange", "tqdm_auto", "auto_tqdm", "prefetcher", "BackgroundGenerator",
                           "repeat_loader", "infinite_loader", "sample_data", "alive_it", "rich_track"})
MAX_DEPTH = 6


@dataclass(eq=False)
class Def:
    """A binding that is not a plain assignment: a parameter, a loop target, an augmented assignment, or
    anything else (import, walrus, ``except ... as``, a ``def``) whose value we do not follow."""

    kind: str
    scope: Function
    name: str
    node: Optional[cst.CSTNode] = None
    value: Optional[cst.BaseExpression] = None  # LOOP: the iterable; AUG: the right-hand side
    path: Tuple[int, ...] = ()  # LOOP: the target's position in a tuple target


Binding = Union[Assignment, Def]


@dataclass(frozen=True)
class CallSite:
    call: cst.Call
    caller: Function
    bound_self: bool  # the callee's first parameter (self) is the receiver, not an argument
    # parameters of lambdas around the call (``lambda x, b: f(opt, x, b)``): an argument that reads one is
    # known only through the lambda's own call sites (indexed separately, with the arguments forwarded)
    lambda_params: FrozenSet[str] = frozenset()


@dataclass(frozen=True)
class Callable:
    """Something that may be called: a function of this module or a lambda, with the arguments that are
    already bound (``functools.partial``; the factory call that made a nested function)."""

    target: Union[Function, cst.Lambda]
    scope: Function  # where a lambda is written (for a Function: its parent)
    bound_args: Tuple[cst.Arg, ...] = ()  # arguments bound in front (partial), evaluated in ``bound_scope``
    bound_scope: Optional[Function] = None
    bound_self: bool = False
    factory: Optional[Tuple[cst.Call, Function, Function]] = None  # (factory call, caller, factory function)
    forward: Optional[cst.Lambda] = None  # a lambda whose body is one call of ``target``: it forwards to it

    def forwarded(self, call: cst.Call) -> cst.Call:
        """The call of ``target`` that calling the forwarding lambda with ``call``'s arguments makes: the
        lambda's parameters replaced by the arguments they receive."""
        lam = self.forward
        inner = lam.body
        params = [p.name.value for p in lam.params.params]
        given: Dict[str, cst.BaseExpression] = {}
        pos = [a for a in call.args if a.keyword is None and not a.star]
        for name, a in zip(params, pos):
            given[name] = a.value
        for a in call.args:
            if a.keyword is not None and a.keyword.value in params:
                given[a.keyword.value] = a.value
        args = []
        for a in inner.args:
            v = a.value
            if isinstance(v, cst.Name) and v.value in given:
                a = a.with_changes(value=given[v.value])
            args.append(a)
        return inner.with_changes(args=partial_args(self.bound_args, args))


def _passes_through(node: cst.FunctionDef) -> bool:
    """The function returns its first parameter, or yields every item of it (``yield from it``,
    ``for v in it: yield v``)."""
    params = node.params.params
    if not params:
        return False
    first = params[0].name.value
    stack: List[cst.CSTNode] = [node.body]
    returns = yields_from = False
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(n, cst.Return) and n.value is not None:
            if not (isinstance(n.value, cst.Name) and n.value.value == first):
                return False
            returns = True
        elif isinstance(n, cst.Yield) and isinstance(n.value, cst.From):
            yields_from = yields_from or (isinstance(n.value.item, cst.Name) and n.value.item.value == first)
        elif isinstance(n, cst.For) and isinstance(n.iter, cst.Name) and n.iter.value == first and any(
                isinstance(y, cst.Yield) for y in descendants(n.body)):
            yields_from = True
        stack.extend(children(n))
    return returns or yields_from


def partial_args(bound: Sequence[cst.Arg], given: Sequence[cst.Arg]) -> Tuple[cst.Arg, ...]:
    """The arguments ``partial(f, *bound)(*given)`` passes to ``f``: positional ones first (the bound before
    the given), then keywords, a keyword given at the call replacing the bound one of that name."""
    def positional(a: cst.Arg) -> bool:
        return a.keyword is None and a.star != "**"
    given_kw = {a.keyword.value for a in given if a.keyword is not None}
    kws = [a for a in bound if not positional(a) and (a.keyword is None or a.keyword.value not in given_kw)]
    return (*[a for a in bound if positional(a)], *[a for a in given if positional(a)],
            *kws, *[a for a in given if not positional(a)])


def _join(a: Optional[Dict[str, FrozenSet]], b: Optional[Dict[str, FrozenSet]]):
    if a is None:
        return b
    if b is None:
        return a
    if a is b:
        return a
    out = dict(a)
    for k, v in b.items():
        w = out.get(k)
        out[k] = v if w is None else (w | v)
    return out


class _Reaching:
    """Reaching definitions of one function: for every read of a local name, the bindings that reach it."""

    def __init__(self, fn: Function, values: "Values"):
        self.fn = fn
        self.v = values
        self.uses: Dict[int, FrozenSet] = {}
        self.local: Set[str] = set(values.maybe_local(fn)) - fn.globals_ - fn.nonlocals
        self.walrus_here = fn.home is None or fn.home.has_walrus  # whether ``walrus`` has anything to find
        self._assign_of: Dict[Tuple[int, str], List[Assignment]] = {}
        for name, assigns in fn.assigns.items():
            for a in assigns:
                self._assign_of.setdefault((id(a.node), name), []).append(a)
        self._loops: List[list] = []  # per enclosing loop: [break envs, continue envs]
        self._try: List[list] = []
        self._defs: Dict[tuple, Def] = {}
        self._subtree: Dict[int, Dict[str, FrozenSet]] = {}
        self.before_loop: Dict[int, Dict[str, FrozenSet]] = {}  # the bindings that reach a loop from before it
        self.at_call: Dict[int, Dict[str, FrozenSet]] = {}  # the bindings that reach each call
        env = {p: frozenset({Def(PARAM, fn, p)}) for p in fn.params}
        node = fn.node
        body = node.body if isinstance(node, cst.Module) else node.body.body
        self.block(body, env)

    def make(self, kind: str, name: str, node, value=None, path=()) -> Def:
        """One Def object per binding site, however often the walk passes it."""
        key = (kind, id(node), name, path)
        d = self._defs.get(key)
        if d is None:
            d = self._defs[key] = Def(kind, self.fn, name, node, value, path)
        return d

    def subtree_defs(self, loop) -> Dict[str, FrozenSet]:
        """Every binding of a local name made anywhere in a loop (its target and body, nested blocks
        included, nested scopes excluded): what may reach the loop's head around its back edge."""
        got = self._subtree.get(id(loop))
        if got is not None:
            return got
        found: Dict[str, Set] = {}
        r = self

        def add(name, d):
            if name in r.local:
                found.setdefault(name, set()).add(d)

        def target(t, stmt, kind, value=None):
            for name, path, _s in target_names(t):
                if kind == ASSIGN:
                    got = r._assign_of.get((id(stmt), name))
                    for a in got or [r.make(OTHER, name, stmt, value, path)]:
                        add(name, a)
                else:
                    add(name, r.make(kind, name, stmt, value, path))

        class V(Walker):
            def visit_Assign(self, n: cst.Assign) -> None:
                for t in n.targets:
                    target(t.target, n, ASSIGN, n.value)

            def visit_AnnAssign(self, n: cst.AnnAssign) -> None:
                if n.value is not None:
                    target(n.target, n, ASSIGN, n.value)

            def visit_AugAssign(self, n: cst.AugAssign) -> None:
                if isinstance(n.target, cst.Name):
                    add(n.target.value, r.make(AUG, n.target.value, n, n.value))

            def visit_For(self, n: cst.For) -> None:
                if not isinstance(n.target, (cst.Attribute, cst.Subscript)):
                    for name, path, _s in target_names(n.target):
                        add(name, r.make(LOOP, name, n, n.iter, path))

            def visit_With(self, n: cst.With) -> None:
                for item in n.items:
                    if item.asname is not None:
                        target(item.asname.name, n, ASSIGN)

            def visit_NamedExpr(self, n: cst.NamedExpr) -> None:
                if isinstance(n.target, cst.Name):
                    add(n.target.value, r.make(OTHER, n.target.value, n, n.value))

            def visit_ExceptHandler(self, n: cst.ExceptHandler) -> None:
                if n.name is not None and isinstance(n.name.name, cst.Name):
                    add(n.name.name.value, r.make(OTHER, n.name.name.value, n))

            def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
                add(n.name.value, r.make(OTHER, n.name.value, n))
                return False

            def visit_ClassDef(self, n: cst.ClassDef) -> bool:
                add(n.name.value, r.make(OTHER, n.name.value, n))
                return False

            def visit_Lambda(self, n) -> bool:
                return False

            def visit_Import(self, n: cst.Import) -> None:
                for a in n.names:
                    name = a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name) \
                        else (dotted(a.name) or "").split(".")[0]
                    add(name, r.make(OTHER, name, n))

            def visit_ImportFrom(self, n: cst.ImportFrom) -> None:
                if not isinstance(n.names, cst.ImportStar):
                    for a in n.names:
                        name = a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name) \
                            else (dotted(a.name) or "").split(".")[0]
                        add(name, r.make(OTHER, name, n))

        V().walk(loop)
        out = {k: frozenset(v) for k, v in found.items()}
        self._subtree[id(loop)] = out
        return out

    # -- expressions -------------------------------------------------------------------------------------
    def loads(self, expr: Optional[cst.CSTNode], env) -> None:
        if expr is None or env is None:
            return
        stack = [expr]
        skip: Set[str] = set()
        part = _LOAD_PART
        while stack:
            e = stack.pop()
            t = type(e)  # exact types (libcst's node classes have no subclasses): cheaper than isinstance on ABCs
            if t is cst.Name:
                if e.value in self.local and e.value not in skip:
                    self.uses[id(e)] = env.get(e.value, frozenset())
            elif t is cst.Attribute:
                stack.append(e.value)
            elif t is cst.Call:
                self.at_call[id(e)] = env
                stack.append(e.func)
                stack.extend(a.value for a in e.args)
            elif t is cst.Lambda:
                stack.extend(p.default for p in e.params.params if p.default is not None)
            elif t in _COMPREHENSIONS:
                f = e.for_in
                while f is not None:
                    skip |= {n for n, _p, _s in target_names(f.target)}
                    stack.append(f.iter)
                    stack.extend(i.test for i in f.ifs)
                    f = f.inner_for_in
                if isinstance(e, cst.DictComp):
                    stack.extend((e.key, e.value))
                else:
                    stack.append(e.elt)
            elif t is cst.NamedExpr:
                stack.append(e.value)
            elif t in _LITERALS:
                continue
            else:
                for c in children(e):
                    k = part.get(type(c))
                    if k is None:
                        k = _load_part(type(c))
                    if k == 1:
                        stack.append(c)
                    elif k == 2 or k == 3:
                        for x in children(c):
                            kx = part.get(type(x))
                            if kx is None:
                                kx = _load_part(type(x))
                            if kx == 1 or kx == 3:
                                stack.append(x)

    def walrus(self, expr: Optional[cst.CSTNode], env):
        if env is None or expr is None or not self.walrus_here or not _has_walrus(expr):
            return env

        class V(Walker):
            found: List[cst.NamedExpr] = []

            def visit_NamedExpr(self, n: cst.NamedExpr) -> None:
                V.found.append(n)

            def visit_Lambda(self, n) -> bool:
                return False

        V.found = []
        V().walk(expr)
        env = dict(env)
        for n in V.found:
            if isinstance(n.target, cst.Name):
                env[n.target.value] = frozenset({self.make(OTHER, n.target.value, n, n.value)})
        return env

    # -- statements --------------------------------------------------------------------------------------
    def bind(self, env, target: cst.BaseExpression, stmt: cst.CSTNode, kind: str = ASSIGN,
             value: Optional[cst.BaseExpression] = None):
        if env is None:
            return env
        env = dict(env)
        if isinstance(target, (cst.Attribute, cst.Subscript)):
            self.loads(target.value, env)
            if isinstance(target, cst.Subscript):
                for el in target.slice:
                    self.loads(el.slice, env)
            return env
        for name, path, _starred in target_names(target):
            if name not in self.local:
                continue
            if kind == ASSIGN:
                got = self._assign_of.get((id(stmt), name))
                env[name] = frozenset(got) if got else frozenset({self.make(OTHER, name, stmt, value, path)})
            else:
                env[name] = frozenset({self.make(kind, name, stmt, value, path)})
        if isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                if isinstance(el.value, (cst.Attribute, cst.Subscript)):
                    self.loads(el.value.value, env)
        return env

    def block(self, stmts: Sequence[cst.CSTNode], env):
        for st in stmts:
            if env is None:
                return None
            env = self.stmt(st, env)
            if self._try:
                self._try[-1].append(env)
        return env

    def suite(self, suite, env):
        if suite is None:
            return env
        if isinstance(suite, (cst.IndentedBlock, cst.SimpleStatementSuite)):
            return self.block(suite.body, env)
        return self.suite(suite.body, env)

    def stmt(self, st, env):
        if isinstance(st, cst.SimpleStatementLine):
            for small in st.body:
                env = self.small(small, env)
                if env is None:
                    return None
            return env
        if isinstance(st, cst.BaseSmallStatement):  # the body of ``if c: x = 1``
            return self.small(st, env)
        if isinstance(st, cst.If):
            ends = []
            cur = st
            while True:  # an elif chain is walked without recursion
                self.loads(cur.test, env)
                env = self.walrus(cur.test, env)
                ends.append(self.suite(cur.body, env))
                if isinstance(cur.orelse, cst.If):
                    cur = cur.orelse
                    continue
                ends.append(self.suite(cur.orelse.body, env) if cur.orelse is not None else env)
                break
            out = None
            for e in ends:
                out = _join(out, e)
            return out
        if isinstance(st, (cst.For, cst.While)):
            if isinstance(st, cst.For):
                self.loads(st.iter, env)
                env = self.walrus(st.iter, env)
            before = env
            self.before_loop[id(st)] = before
            # what the back edge brings: every binding the body makes (one pass, linear in nesting)
            head = _join(before, self.subtree_defs(st))
            inner = head
            if isinstance(st, cst.For):
                inner = self._loop_target(st, inner)
            else:
                self.loads(st.test, inner)
                inner = self.walrus(st.test, inner)
            self._loops.append([[], []])
            end = self.suite(st.body, inner)
            brk, _cont = self._loops.pop()
            exits = _join(head, end)
            for b in brk:
                exits = _join(exits, b)
            if st.orelse is not None:
                exits = _join(exits, self.suite(st.orelse.body, head))
            return exits
        if isinstance(st, (cst.Try, cst.TryStar)):
            self._try.append([env])
            body = self.suite(st.body, env)
            seen = self._try.pop()
            anywhere = None
            for e in seen:
                anywhere = _join(anywhere, e)
            out = self.suite(st.orelse.body, body) if st.orelse is not None else body
            for h in st.handlers:
                henv = anywhere
                if h.name is not None and henv is not None:
                    henv = self.bind(henv, h.name.name, h, OTHER)
                out = _join(out, self.suite(h.body, henv))
            if st.finalbody is not None:
                fin = self.suite(st.finalbody.body, _join(out, anywhere))
                out = fin if out is not None else None
            return out
        if isinstance(st, cst.With):
            for item in st.items:
                self.loads(item.item, env)
                if item.asname is not None:
                    env = self.bind(env, item.asname.name, st)
            return self.suite(st.body, env)
        if isinstance(st, cst.Match):
            self.loads(st.subject, env)
            out = None
            for case in st.cases:
                cenv = dict(env)
                for name in _pattern_names(case.pattern):
                    if name in self.local:
                        cenv[name] = frozenset({self.make(OTHER, name, case)})
                if case.guard is not None:
                    self.loads(case.guard, cenv)
                out = _join(out, self.suite(case.body, cenv))
            return _join(out, env)
        if isinstance(st, (cst.FunctionDef, cst.ClassDef)):
            for d in st.decorators:
                self.loads(d.decorator, env)
            if isinstance(st, cst.FunctionDef):
                for p in (*st.params.params, *st.params.kwonly_params, *st.params.posonly_params):
                    if p.default is not None:
                        self.loads(p.default, env)
            else:
                for b in st.bases:
                    self.loads(b.value, env)
            if st.name.value in self.local:
                env = dict(env)
                env[st.name.value] = frozenset({self.make(OTHER, st.name.value, st)})
            return env
        return env

    def _loop_target(self, st: cst.For, env):
        env = dict(env)
        if isinstance(st.target, (cst.Attribute, cst.Subscript)):
            return env
        for name, path, _s in target_names(st.target):
            if name in self.local:
                env[name] = frozenset({self.make(LOOP, name, st, st.iter, path)})
        return env

    def small(self, small, env):
        if isinstance(small, cst.Expr):
            self.loads(small.value, env)
            return self.walrus(small.value, env)
        if isinstance(small, cst.Assign):
            self.loads(small.value, env)
            env = self.walrus(small.value, env)
            for t in small.targets:
                env = self.bind(env, t.target, small, ASSIGN, small.value)
            return env
        if isinstance(small, cst.AnnAssign):
            if small.value is None:
                return env
            self.loads(small.value, env)
            return self.bind(env, small.target, small, ASSIGN, small.value)
        if isinstance(small, cst.AugAssign):
            self.loads(small.target, env)
            self.loads(small.value, env)
            if isinstance(small.target, cst.Name):
                return self.bind(env, small.target, small, AUG, small.value)
            return env
        if isinstance(small, cst.Return):
            self.loads(small.value, env)
            return None
        if isinstance(small, cst.Raise):
            self.loads(small.exc, env)
            return None
        if isinstance(small, cst.Break):
            if self._loops:
                self._loops[-1][0].append(env)
            return None
        if isinstance(small, cst.Continue):
            if self._loops:
                self._loops[-1][1].append(env)
            return None
        if isinstance(small, (cst.Import, cst.ImportFrom)):
            if isinstance(small.names, cst.ImportStar):
                return env
            env = dict(env)
            for alias in small.names:
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    name = alias.asname.name.value
                else:
                    name = (dotted(alias.name) or "").split(".")[0]
                if name in self.local:
                    env[name] = frozenset({self.make(OTHER, name, small)})
            return env
        if isinstance(small, cst.Del):
            env = dict(env)
            for t in (small.target.elements if isinstance(small.target, (cst.Tuple, cst.List)) else [small.target]):
                t = t.value if isinstance(t, cst.Element) else t
                if isinstance(t, cst.Name):
                    env.pop(t.value, None)
            return env
        if isinstance(small, cst.Assert):
            self.loads(small.test, env)
            self.loads(small.msg, env)
            return env
        return env


def _has_walrus(expr) -> bool:
    return any(type(n) is cst.NamedExpr for n in descendants(expr))


_COMPREHENSIONS = frozenset({cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp})
_LITERALS = frozenset({cst.SimpleString, cst.Integer, cst.Float, cst.Imaginary, cst.Ellipsis})
# per node type, what ``_Reaching.loads`` does with a child: 1 an expression (read it), 2 a wrapper of
# expressions (read its expression children), 3 an index or a slice (read when inside a wrapper), 0 nothing
_LOAD_PART: Dict[type, int] = {}


def _load_part(t: type) -> int:
    if issubclass(t, cst.BaseExpression):
        k = 1
    elif issubclass(t, (cst.Arg, cst.Element, cst.DictElement, cst.StarredDictElement, cst.FormattedStringExpression,
                        cst.SubscriptElement, cst.Index, cst.Slice, cst.ComparisonTarget, cst.LeftParen,
                        cst.RightParen)):
        k = 3 if issubclass(t, (cst.Index, cst.Slice)) else 2
    else:
        k = 0
    _LOAD_PART[t] = k
    return k


def _pattern_names(pattern) -> Set[str]:
    found: Set[str] = set()

    class V(Walker):
        def visit_MatchAs(self, n: cst.MatchAs) -> None:
            if n.name is not None:
                found.add(n.name.value)

        def visit_MatchStar(self, n: cst.MatchStar) -> None:
            if n.name is not None:
                found.add(n.name.value)

        def visit_MatchMapping(self, n: cst.MatchMapping) -> None:
            if n.rest is not None:
                found.add(n.rest.value)

    V().walk(pattern)
    return found


def _bound_elsewhere(fn: Function) -> Set[str]:
    """Local names bound by statements the scope collector does not record as assignments (loop and
    ``except`` targets, augmented assignments, imports, walrus, nested ``def``/``class``): what the collector
    noted of them (``Function.bound_other``), and walrus targets, looked for only in a module that may hold
    one."""
    node = fn.node
    if fn.home is not None and not fn.home.has_walrus:
        return set(fn.nested) | fn.bound_other
    v = _BoundElsewhere(node, set(fn.nested))
    if isinstance(node, cst.Module):
        for st in node.body:
            v.walk(st)
    else:
        v.walk(node.body)
    return v.found


class _BoundElsewhere(Walker):
    def __init__(self, node, found: Set[str]) -> None:
        self.node = node
        self.found = found

    def visit_For(self, n: cst.For) -> None:
        self.found.update(x for x, _p, _s in target_names(n.target))

    def visit_AugAssign(self, n: cst.AugAssign) -> None:
        if isinstance(n.target, cst.Name):
            self.found.add(n.target.value)

    def visit_NamedExpr(self, n: cst.NamedExpr) -> None:
        if isinstance(n.target, cst.Name):
            self.found.add(n.target.value)

    def visit_ExceptHandler(self, n: cst.ExceptHandler) -> None:
        if n.name is not None and isinstance(n.name.name, cst.Name):
            self.found.add(n.name.name.value)

    def visit_Import(self, n: cst.Import) -> None:
        for a in n.names:
            self.found.add(a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name)
                           else (dotted(a.name) or "").split(".")[0])

    def visit_ImportFrom(self, n: cst.ImportFrom) -> None:
        if not isinstance(n.names, cst.ImportStar):
            for a in n.names:
                self.found.add(a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name)
                               else (dotted(a.name) or "").split(".")[0])

    def visit_ClassDef(self, n: cst.ClassDef) -> bool:
        self.found.add(n.name.value)
        return False

    def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
        if n is self.node:
            return True
        self.found.add(n.name.value)
        return False

    def visit_Lambda(self, n) -> bool:
        return False

    def visit_ListComp(self, n) -> bool:
        return False

    def visit_SetComp(self, n) -> bool:
        return False

    def visit_DictComp(self, n) -> bool:
        return False

    def visit_GeneratorExp(self, n) -> bool:
        return False


# -- the service -----------------------------------------------------------------------------------------------
class Values:
    """What expressions may be, for the whole module. Everything is computed lazily and cached."""

    def __init__(self, scopes: Scopes):
        self.s = scopes
        self._reaching: Dict[Function, Optional[_Reaching]] = {}
        self._maybe_local: Dict[Function, FrozenSet[str]] = {}
        self._sites: Optional[Dict[Function, List[CallSite]]] = None
        self._home_sites: Dict[int, tuple] = {}  # id(an imported module's Scopes) -> (it, its call sites)
        self._referenced: Optional[Set[Function]] = None
        self._indexing = False  # ``_index`` is running
        self._argparse: Optional[Dict[str, List[cst.BaseExpression]]] = None
        self._callees: Dict[tuple, tuple] = {}  # resolve_callee's answers
        self._param_classes: Dict[tuple, Optional[ClassInfo]] = {}  # _parameter_class's answers

    # -- definitions -------------------------------------------------------------------------------------
    def reaching(self, name: cst.Name, fn: Function) -> Optional[FrozenSet[Binding]]:
        """The bindings that reach this read of a local name (None when ``name`` is not such a read: a
        global or free variable, or a node the function does not contain)."""
        r = self._reaching_of(fn, name.value)
        if r is None:
            return None
        got = r.uses.get(id(name))
        return got if got else None

    def _reaching_of(self, fn: Function, name: Optional[str] = None) -> Optional[_Reaching]:
        """The reaching definitions of ``fn`` (built on first use); None for pathological nesting, and
        without building them when ``name`` is given and ``fn`` binds no such name (no local read)."""
        if fn in self._reaching:
            return self._reaching[fn]
        try:
            if name is not None and name not in self.maybe_local(fn):
                return None
            r = _Reaching(fn, self)
        except RecursionError:  # pragma: no cover - pathological nesting: every binding, flow-insensitively
            r = None
        self._reaching[fn] = r
        return r

    def maybe_local(self, fn: Function) -> FrozenSet[str]:
        """Every name ``fn`` binds (assignments, parameters, loop and ``with`` targets, imports, ...), before
        ``global``/``nonlocal`` declarations take some away: a read of any other name is no local read."""
        got = self._maybe_local.get(fn)
        if got is None:
            got = self._maybe_local[fn] = frozenset(set(fn.assigns) | set(fn.params) | _bound_elsewhere(fn))
        return got

    def start_value(self, loop: cst.CSTNode, name: str, fn: Function) -> Optional[int]:
        """The integer a local name holds when a loop starts (``i = 0`` before ``while i < n:``), when every
        binding that reaches the loop from before it says the same literal."""
        r = self._reaching_of(fn)
        env = r.before_loop.get(id(loop)) if r is not None else None
        binds = env.get(name) if env else None
        if not binds:
            return None
        got = set()
        for b in binds:
            v = b.value if isinstance(b, Assignment) and b.index is None else None
            sign = 1
            if isinstance(v, cst.UnaryOperation) and isinstance(v.operator, cst.Minus):  # ``i = -1``
                v, sign = v.expression, -1
            if not isinstance(v, cst.Integer):
                return None
            got.add(sign * int(v.value.replace("_", ""), 0))
        return got.pop() if len(got) == 1 else None

    def bound_before_loop(self, loop: cst.CSTNode, name: str, fn: Function) -> bool:
        """Whether some binding of ``fn``'s local ``name`` made before ``loop`` reaches it (``total = 0``
        before ``for x in loader:``)."""
        r = self._reaching_of(fn, name)
        env = r.before_loop.get(id(loop)) if r is not None else None
        return bool(env and env.get(name))

    def reaching_call(self, call: cst.Call, fn: Function, name: str) -> Optional[List[Binding]]:
        """The bindings of ``fn``'s local ``name`` that reach ``call`` (a call ``fn`` makes), in source order;
        None when ``name`` is no local of ``fn`` or the call is not one of its own."""
        r = self._reaching_of(fn, name)
        env = r.at_call.get(id(call)) if r is not None else None
        if env is None or name not in r.local:
            return None
        return _in_source_order(env.get(name, frozenset()), fn.assigns.get(name, ()))

    def bindings(self, name: str, fn: Function, at: Optional[cst.CSTNode] = None) -> Tuple[Optional[Function], List[Binding]]:
        """(scope that binds ``name``, the bindings visible at ``at``): the reaching ones for a local read,
        else every assignment and the parameter of the nearest enclosing scope that binds the name."""
        if isinstance(at, cst.Name) and at.value == name:
            got = self.reaching(at, fn)
            if got is not None:
                return fn, _in_source_order(got, fn.assigns.get(name, ()))
        f: Optional[Function] = fn
        while f is not None:
            if name in f.globals_ and not f.is_module:
                f = self._home(f).module
                continue
            if name in f.assigns or name in f.params:
                out: List[Binding] = list(f.assigns.get(name, []))
                if name in f.params:
                    out.append(Def(PARAM, f, name))
                return f, out
            if name in f.nested:
                return f, [Def(OTHER, f, name, f.nested[name].node)]
            f = f.parent
        return None, []

    # -- call sites and references ------------------------------------------------------------------------
    def call_sites(self, fn: Function) -> List[CallSite]:
        """The calls of ``fn`` in this module (direct calls by name, ``self.m(...)``, ``obj.m(...)`` on an
        instance of its class); for a function of an imported module of the project, also those of its own
        module (``helpers.main()`` calling ``helpers.train(args, model)`` says what ``model`` is)."""
        if self._sites is None:
            self._index()
        here = self._sites.get(fn, [])
        home = fn.home
        if home is None or home is self.s:
            return here
        got = self._home_sites.get(id(home))
        if got is None or got[0] is not home:
            indexing, self._indexing = self._indexing, True
            try:
                got = self._home_sites[id(home)] = (home, self._index_calls(home.functions)[0])
            finally:
                self._indexing = indexing
        there = got[1].get(fn)
        return here + there if there else here

    def referenced(self, fn: Function) -> bool:
        """Whether anything in the module mentions ``fn`` other than by calling it directly: passed as an
        argument, stored, returned, wrapped in ``partial``, registered as a callback."""
        if self._referenced is None:
            self._index()
        return fn in self._referenced

    def called(self, fn: Function) -> bool:
        return bool(self.call_sites(fn))

    def _index(self) -> None:
        self._indexing = True  # what a call runs is read here without the parameters' call sites
        try:
            self._sites, self._referenced = self._index_calls(self.s.functions)
        finally:
            self._indexing = False

    def _index_calls(self, functions) -> Tuple[Dict[Function, List[CallSite]], Set[Function]]:
        """The call sites and the references of the functions called or referred to by ``functions``."""
        sites: Dict[Function, List[CallSite]] = {}
        refs: Set[Function] = set()
        values = self

        for fn in functions:
            node = fn.node
            body = node.body if isinstance(node, cst.Module) else [node.body]

            class V(Walker):
                def __init__(self) -> None:
                    self.func_nodes: Set[int] = set()
                    self.lambdas: List[FrozenSet[str]] = []
                    self.forwarding: Set[int] = set()  # the body call of a ``lambda ...: f(...)``

                def visit_Import(self, n: cst.Import) -> bool:
                    return False  # a name imported is neither called nor handed anywhere

                def visit_ImportFrom(self, n: cst.ImportFrom) -> bool:
                    return False

                def visit_Lambda(self, n: cst.Lambda) -> None:
                    self.lambdas.append(frozenset(p.name.value for p in (*n.params.params, *n.params.kwonly_params)))
                    if isinstance(n.body, cst.Call):
                        self.forwarding.add(id(n.body))

                def leave_Lambda(self, n: cst.Lambda) -> None:
                    self.lambdas.pop()

                def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
                    for d in n.decorators:
                        self.walk(d.decorator)
                    return n is node  # nested functions are indexed as functions of their own

                def visit_ClassDef(self, n: cst.ClassDef) -> bool:
                    for stmt in (n.body.body if isinstance(n.body, cst.IndentedBlock) else []):
                        if not isinstance(stmt, cst.FunctionDef):
                            self.walk(stmt)
                        else:
                            for d in stmt.decorators:
                                self.walk(d.decorator)
                    return False

                def visit_Call(self, n: cst.Call) -> None:
                    around = frozenset().union(*self.lambdas) if self.lambdas else frozenset()
                    callee, bound_self = values.resolve_callee(n.func, fn)
                    if callee is not None:
                        self.func_nodes.add(id(n.func))
                        if id(n) in self.forwarding:
                            refs.add(callee)  # called where the lambda is called (indexed there), or elsewhere
                            return
                        sites.setdefault(callee, []).append(CallSite(n, fn, bound_self, around))
                        return
                    if isinstance(n.func, (cst.Name, cst.Attribute)):
                        c = values.callable_of(n.func, fn)
                        if c is not None and isinstance(c.target, Function):
                            made = c.forwarded(n) if c.forward is not None else n.with_changes(
                                args=partial_args(c.bound_args, n.args))
                            sites.setdefault(c.target, []).append(CallSite(made, fn, c.bound_self, around))

                def visit_Name(self, n: cst.Name) -> None:
                    if id(n) in self.func_nodes:
                        return
                    f = values.s.lookup_function(n.value, fn)
                    if f is not None and not f.is_module:
                        refs.add(f)

                def visit_Attribute(self, n: cst.Attribute) -> bool:
                    if id(n) not in self.func_nodes:
                        callee, _b = values.resolve_callee(n, fn)
                        if callee is not None:
                            refs.add(callee)
                    self.walk(n.value)
                    return False

                def visit_Arg(self, n: cst.Arg) -> bool:
                    self.walk(n.value)  # the keyword is no reference
                    return False

            v = V()
            for st in body:
                v.walk(st)
        return sites, refs

    def resolve_callee(self, func: cst.BaseExpression, fn: Function, classes: bool = True) -> Tuple[Optional[Function], bool]:
        """The function of this module a call's ``func`` names: a function in scope, ``self.method``,
        ``cls.method``, ``Class.method``, a method of a local instance (``t = Trainer(); t.fit()``), and
        with ``classes`` a local class (its ``__init__``). Asked about the same expression many times:
        remembered (syntax trees never change)."""
        key = (id(func), id(fn), classes)
        hit = self._callees.get(key)
        if hit is not None and hit[0] is func and hit[1] is fn:
            return hit[2]
        got = self._resolve_callee(func, fn, classes)
        if not self._indexing:  # read without the parameters' call sites: asked again once they are known
            self._callees[key] = (func, fn, got)
        return got

    def _resolve_callee(self, func: cst.BaseExpression, fn: Function, classes: bool) -> Tuple[Optional[Function], bool]:
        if isinstance(func, cst.Name):
            f = self.s.lookup_function(func.value, fn)
            if f is not None:
                return f, False
            cls = self.s.lookup_class(func.value, fn) if classes else None
            if cls is not None:
                init = self.method(cls, "__init__")
                if init is not None:
                    return init, True
            return None, False
        if isinstance(func, cst.Attribute):
            recv, attr = func.value, func.attr.value
            if isinstance(recv, cst.Name) and recv.value in ("self", "cls"):
                cls = class_of(fn)
                if cls is not None:
                    m = self.method(cls, attr)
                    if m is None:
                        # a base class calling a method only a subclass defines (template method)
                        found = {id(f): f for f in (self.method(c, attr) for c in self.subclasses(cls)) if f is not None}
                        m = next(iter(found.values())) if len(found) == 1 else None
                    if m is not None:
                        return m, True
                return None, False
            if isinstance(recv, cst.Name) and recv.value in self._home(fn).classes:
                m = self.method(self._home(fn).classes[recv.value], attr)
                return (m, False) if m is not None else (None, False)
            d = dotted(func)
            imported = self.s.imported(d, fn) if d is not None else None  # ``helpers.make_opt``
            if isinstance(imported, Function):
                return imported, False
            if isinstance(imported, ClassInfo):
                init = self.method(imported, "__init__") if classes else None
                return (init, True) if init is not None else (None, False)
            cls = self.instance_class(recv, fn)
            if cls is not None:
                m = self.method(cls, attr)
                if m is not None:
                    return m, True
        return None, False

    def _home(self, fn: Optional[Function]) -> Scopes:
        """The module a function belongs to: the linted file's, or an imported module's (project.py)."""
        return fn.home if fn is not None and fn.home is not None else self.s

    def base_classes(self, cls: ClassInfo) -> List[ClassInfo]:
        """The classes ``cls`` derives from that the model can read, in order: classes of its own module,
        and, for a class of the linted file, classes of the project it imports (``from .base import
        Trainer``; project.py). A base of another package, or one no module of the project defines, is not
        among them."""
        home = cls.home or self.s
        out = []
        for b in cls.bases:
            if "." not in b:
                base = home.classes.get(b)
            elif home is self.s and self.s.project is not None:
                found = self.s.lookup_imported(b)
                base = found if isinstance(found, ClassInfo) else None
            else:
                base = None
            if base is not None and base is not cls:
                out.append(base)
        return out

    def unseen_ancestry(self, cls: Optional[ClassInfo], depth: int = 0) -> bool:
        """Whether ``cls`` inherits code the model cannot read: a base that is not among ``base_classes``
        (a module of the project it cannot find or read, another package's class), directly or through a
        base it reads. A builtin (``object``, ``Exception``), a class of the standard library, of torch or of
        a framework the table knows (``frameworks.py``) is no such base: what their methods do is known."""
        if cls is None or depth > 5:
            return False
        read = self.base_classes(cls)
        read_names = {base.name for base in read}
        home = cls.home or self.s
        for b in cls.bases:
            if not b or b in home.classes or b.rsplit(".", 1)[-1] in read_names:
                continue  # ``Generic[T]`` or a call (no class's name), or a base the model reads
            if not b.startswith(".") and ("." not in b or b.split(".")[0] in _KNOWN_PACKAGES or framework_of(b) is not None):
                continue  # a builtin, or a class whose methods the model knows by name
            return True
        return any(self.unseen_ancestry(base, depth + 1) for base in read)

    def method(self, cls: ClassInfo, name: str, depth: int = 0) -> Optional[Function]:
        """A method of a class, looked up through the base classes the model reads (``base_classes``)."""
        if name in cls.methods:
            return cls.methods[name]
        if depth > 5:
            return None
        for base in self.base_classes(cls):
            m = self.method(base, name, depth + 1)
            if m is not None:
                return m
        return None

    def subclasses(self, cls: ClassInfo) -> List[ClassInfo]:
        """Classes of this module that derive from ``cls`` (directly or through other local classes)."""
        out = []
        for c in self.s.classes.values():
            seen, todo = set(), list(c.bases)
            while todo:
                b = todo.pop().rsplit(".", 1)[-1]
                if b in seen:
                    continue
                seen.add(b)
                base = self.s.classes.get(b)
                if base is cls and c is not cls:
                    out.append(c)
                    break
                if base is not None:
                    todo.extend(base.bases)
        return out

    def instance_class(self, expr: cst.BaseExpression, fn: Function, depth: int = 0) -> Optional[ClassInfo]:
        """The class of this module an expression is an instance of, when every binding says so: a name's
        bindings (a tuple assignment's element), for ``self.attr`` in a method every ``self.attr = ...`` of
        its class, for a parameter every call site's argument (``_parameter_class``)."""
        if isinstance(expr, cst.Call) and isinstance(expr.func, (cst.Name, cst.Attribute)):
            if isinstance(expr.func, cst.Name):
                return self.s.lookup_class(expr.func.value, fn) if self.s.lookup_function(expr.func.value, fn) is None else None
            found = self.s.imported(dotted(expr.func) or "", fn)  # ``models.Net()``
            return found if isinstance(found, ClassInfo) else None
        if depth > 4:  # names and attributes bound from one another, parameters from their call sites
            return None
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
            owner = class_of(fn)
            assigns = self.attribute_assignments(owner, expr.attr.value) if owner is not None else []
            values = [self._element(a.value, a.index, a.size, a.scope) for a in assigns]
            if not values or any(v is None for v in values):
                return None
            classes = {self.instance_class(v, a.scope, depth + 1) for v, a in zip(values, assigns)}
            return classes.pop() if len(classes) == 1 else None
        if isinstance(expr, cst.Name):
            scope, binds = self.bindings(expr.value, fn, expr)
            if len(binds) == 1 and isinstance(binds[0], Def) and binds[0].kind == PARAM:
                return self._parameter_class(scope, expr.value)
            classes = set()
            for b in binds:
                value = self._element(b.value, b.index, b.size, b.scope) if isinstance(b, Assignment) else None
                if value is None:
                    return None  # ``a, b = pair()``, a loop target, a parameter among other bindings
                classes.add(self.instance_class(value, b.scope, depth + 1))
            if len(classes) == 1:
                return classes.pop()
        return None

    def _parameter_class(self, fn: Function, name: str) -> Optional[ClassInfo]:
        """The class of this module parameter ``name`` of ``fn`` is an instance of, when every call site of
        this module hands it an instance of that class (``fit(net, ...)`` after ``net = Net()``) and nothing
        else can call ``fn`` (it is not handed anywhere). Not while the call sites are being indexed: what a
        call runs is read there without them."""
        if self._indexing or fn.is_module or self.referenced(fn):
            return None
        key = (fn, name)
        if key in self._param_classes:
            return self._param_classes[key]  # None too while it is being read (a cycle of calls)
        self._param_classes[key] = None
        args, complete = self.arguments(fn, name, used_default=True)
        # read afresh at each call site (the depth of the question does not cut it: the answer is remembered)
        classes = {self.instance_class(a, where, 1) for a, where in args} if complete else {None}
        got = self._param_classes[key] = classes.pop() if len(classes) == 1 else None
        return got

    def made_here(self, value: cst.BaseExpression, fn: Function) -> bool:
        """Whether ``value`` is an object each call of ``fn`` makes: a call, or a local name every binding of
        which in ``fn`` is a call (not a parameter, an attribute or a module-level object)."""
        if isinstance(value, cst.Call):
            return True
        if not isinstance(value, cst.Name) or value.value in fn.params or value.value not in fn.assigns:
            return False
        values = self.assigned_values(value, fn)
        return bool(values) and all(isinstance(v, cst.Call) and where is fn for v, where in values)

    # -- parameters --------------------------------------------------------------------------------------
    def handed(self, name: cst.Name, fn: Function) -> bool:
        """Whether ``name``, read in ``fn``, is only ever bound as a parameter: what the caller handed over."""
        _scope, binds = self.bindings(name.value, fn, name)
        return bool(binds) and all(isinstance(b, Def) and b.kind == PARAM for b in binds)

    def through_parameters(self, name: cst.Name, fn: Function, depth: int = 0) -> Tuple[cst.Name, Function]:
        """The caller's name a parameter stands for when every call site of this module passes that same
        name (``train_step(x, y, k)`` for ``def train_step(x, y, batch_idx)``); else the name itself."""
        if depth > 4:
            return name, fn
        scope, binds = self.bindings(name.value, fn, name)
        if scope is None or not binds or not all(isinstance(b, Def) and b.kind == PARAM for b in binds):
            return name, fn
        args, complete = self.arguments(scope, name.value, used_default=True)
        sites = {(a.value, id(w)) if isinstance(a, cst.Name) else None for a, w in args}
        if not complete or len(sites) != 1 or None in sites or any(a is _default(scope, name.value) for a, _w in args):
            return name, fn
        arg, where = args[0]
        return self.through_parameters(arg, where, depth + 1)

    def counter_key(self, name: str, fn: Function) -> str:
        """A stable identity for a counter variable: its binding scope and name, after following
        parameters to the caller's variable."""
        got, where = self.through_parameters(cst.Name(name), fn)
        scope, _b = self.bindings(got.value, where)
        return f"{scope.qualname}@{got.value}" if scope is not None else got.value

    def arguments(self, fn: Function, name: str, used_default: bool = False) -> Tuple[List[Tuple[cst.BaseExpression, Function]], bool]:
        """The expressions parameter ``name`` of ``fn`` may receive: its default and the argument of every
        call site in this module (with the scope each is evaluated in); ``complete`` is False when some call
        site passes it in a form we cannot read (``*args``/``**kwargs``) or it has no default and is not
        passed. With ``used_default`` the default is there only when some call site leaves the parameter
        to it (or none is known)."""
        node = fn.node
        if not isinstance(node, cst.FunctionDef) or name not in fn.params:
            return [], False
        params = [p for p in (*node.params.posonly_params, *node.params.params)]
        kwonly = list(node.params.kwonly_params)
        param = next((p for p in params + kwonly if p.name.value == name), None)
        if param is None:
            return [], False  # *args / **kwargs
        out: List[Tuple[cst.BaseExpression, Function]] = []
        complete = True
        defaulted = False  # some call site leaves the parameter to its default
        default = param.default
        if default is not None:
            out.append((default, fn.parent or self.s.module))
        positional = [p.name.value for p in params]
        for site in self.call_sites(fn):
            pos_names = positional[1:] if (site.bound_self and positional[:1] in (["self"], ["cls"])) or (
                fn.cls is not None and positional[:1] in (["self"], ["cls"]) and site.bound_self) else positional
            if fn.cls is not None and not site.bound_self and positional[:1] == ["self"]:
                pos_names = positional  # Class.method(obj, ...)
            got = None
            unreadable = False
            i = 0
            for a in site.call.args:
                if a.star or (site.lambda_params and isinstance(a.value, cst.Name) and a.value.value in site.lambda_params):
                    unreadable = a.star or (a.keyword is not None and a.keyword.value == name) or (
                        a.keyword is None and i < len(pos_names) and pos_names[i] == name)
                    if a.star:
                        break
                    if a.keyword is None:
                        i += 1
                    continue
                if a.keyword is not None:
                    if a.keyword.value == name:
                        got = a.value
                    continue
                if i < len(pos_names) and pos_names[i] == name and param not in kwonly:
                    got = a.value
                i += 1
            if got is not None:
                out.append((got, site.caller))
            elif unreadable:
                complete = False
            elif default is None:
                complete = False
            else:
                defaulted = True
        if default is None and not self.call_sites(fn):
            complete = False
        if used_default and default is not None and not defaulted and len(out) > 1:
            out = out[1:]  # every call site passes it: the default is never used
        return out, complete and bool(out)

    @staticmethod
    def parameters_bound(callee: Function, call: Optional[cst.Call], bound_args: Sequence[cst.Arg] = ()) -> Dict[str, cst.BaseExpression]:
        """The argument each parameter of ``callee`` receives at a call: ``partial``-bound arguments first,
        then the call's own (a method's ``self``/``cls`` is the receiver); nothing after a ``*args``."""
        params = list(callee.params)
        if params[:1] in (["self"], ["cls"]) and callee.cls is not None:
            params = params[1:]
        out: Dict[str, cst.BaseExpression] = {}
        i = 0
        for a in partial_args(bound_args, call.args if call is not None else ()):
            if a.star:
                break
            if a.keyword is not None:
                if a.keyword.value in callee.params:
                    out[a.keyword.value] = a.value
            elif i < len(params):
                out[params[i]] = a.value
                i += 1
        return out

    # -- what an expression is -----------------------------------------------------------------------------
    def unwrap(self, expr: cst.BaseExpression) -> cst.BaseExpression:
        """``m`` for ``m.to(device)``, ``m.cuda()``, ``m.train()``: calls that return the object itself."""
        while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value in SAME_OBJECT:
            expr = expr.func.value
        return expr

    def assigned_values(self, expr: cst.BaseExpression, fn: Function) -> Optional[List[Tuple[cst.BaseExpression, Function]]]:
        """The expressions a name, ``self`` attribute or container entry was assigned (after unpacking
        tuples and reading literal containers), or None when some binding is not an assignment we can read."""
        if isinstance(expr, cst.Subscript):
            return self.entries(expr, fn)
        if isinstance(expr, cst.Name):
            _scope, binds = self.bindings(expr.value, fn, expr)
            if not binds:
                return None
            out = []
            for b in binds:
                if not isinstance(b, Assignment):
                    return None
                v = self._element(b.value, b.index, b.size, b.scope)
                if v is None:
                    return None
                out.append((v, b.scope))
            return out
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
            cls = class_of(fn)
            if cls is None:
                return None
            assigns = self.attribute_assignments(cls, expr.attr.value)
            if not assigns:
                return None
            out = []
            for a in assigns:
                v = self._element(a.value, a.index, a.size, a.scope)
                if v is None:
                    return None
                out.append((v, a.scope))
            return out
        return None

    def attribute_assignments(self, cls: ClassInfo, attr: str, depth: int = 0) -> List[Assignment]:
        """``self.attr = ...`` in any method of the class or its bases (``base_classes``); when none assigns
        it, in the local subclasses (a base class using what its subclasses set up)."""
        got = self._inherited_assignments(cls, attr, depth)
        if not got and depth == 0:
            for sub in self.subclasses(cls):
                got.extend(sub.attrs.get(attr, []))
        return got

    def _inherited_assignments(self, cls: ClassInfo, attr: str, depth: int) -> List[Assignment]:
        got = list(cls.attrs.get(attr, []))
        if depth < 5:
            for base in self.base_classes(cls):
                got.extend(self._inherited_assignments(base, attr, depth + 1))
        return got

    def _element(self, value, index, size, scope) -> Optional[cst.BaseExpression]:
        if index is None:
            return value
        if isinstance(value, (cst.Tuple, cst.List)):
            elts = value.elements
            if len(elts) == size and not any(isinstance(e, cst.StarredElement) for e in elts) and index < len(elts):
                return elts[index].value
        return None

    def ints(self, expr: Optional[cst.BaseExpression], fn: Function, depth: int = 0) -> Optional[FrozenSet[int]]:
        """Every integer ``expr`` may be, or None when some possibility cannot be read."""
        if expr is None or depth > MAX_DEPTH:
            return None
        if isinstance(expr, cst.Integer):
            try:
                return frozenset({int(expr.value.replace("_", ""), 0)})
            except ValueError:
                return None
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            got = self.ints(expr.expression, fn, depth + 1)
            return None if got is None else frozenset(-v for v in got)
        if isinstance(expr, cst.BinaryOperation):
            a = self.ints(expr.left, fn, depth + 1)
            b = self.ints(expr.right, fn, depth + 1) if a is not None else None
            if a is None or b is None or len(a) * len(b) > 64:
                return None
            op = expr.operator
            try:
                if isinstance(op, cst.Add):
                    return frozenset(x + y for x in a for y in b)
                if isinstance(op, cst.Subtract):
                    return frozenset(x - y for x in a for y in b)
                if isinstance(op, cst.Multiply):
                    return frozenset(x * y for x in a for y in b)
                if isinstance(op, cst.FloorDivide):
                    return frozenset(x // y for x in a for y in b)
            except ZeroDivisionError:
                return None
            return None
        if isinstance(expr, cst.IfExp):
            a, b = self.ints(expr.body, fn, depth + 1), self.ints(expr.orelse, fn, depth + 1)
            return None if a is None or b is None else a | b
        if isinstance(expr, cst.Call) and last_name(expr.func) == "int" and len(expr.args) == 1:
            return self.ints(expr.args[0].value, fn, depth + 1)
        if isinstance(expr, cst.Name):
            _scope, binds = self.bindings(expr.value, fn, expr)
            if not binds:
                return None
            out: Set[int] = set()
            for b in binds:
                if isinstance(b, Assignment):
                    got = self.ints(self._element(b.value, b.index, b.size, b.scope), b.scope, depth + 1)
                elif isinstance(b, Def) and b.kind == PARAM:
                    args, complete = self.arguments(b.scope, b.name)
                    if not complete:
                        return None
                    got = frozenset()
                    for a, where in args:
                        g = self.ints(a, where, depth + 1)
                        if g is None:
                            return None
                        got |= g
                else:
                    return None
                if got is None:
                    return None
                out |= got
            return frozenset(out) if out else None
        if isinstance(expr, cst.Attribute):
            if isinstance(expr.value, cst.Name) and expr.value.value == "self":
                got = self.assigned_values(expr, fn)
                if got is None:
                    return None
                out = set()
                for v, where in got:
                    g = self.ints(v, where, depth + 1)
                    if g is None:
                        return None
                    out |= g
                return frozenset(out) if out else None
            if isinstance(expr.value, cst.Name):
                cls = self.instance_class(expr.value, fn)
                if cls is not None:  # ``config.epochs`` of ``config = TrainConfig()``: what the class assigns
                    assigns = self.attribute_assignments(cls, expr.attr.value)
                    out = set()
                    for a in assigns or ():
                        g = self.ints(self._element(a.value, a.index, a.size, a.scope), a.scope, depth + 1)
                        if g is None:
                            return None
                        out |= g
                    return frozenset(out) if out else None
            return self._option_default(expr, fn, depth)
        if isinstance(expr, cst.Subscript):
            v = self.entry(expr, fn, depth)
            return None if v is None else self.ints(v[0], v[1], depth + 1)
        return None

    def entry(self, expr: cst.Subscript, fn: Function, depth: int = 0) -> Optional[Tuple[cst.BaseExpression, Function]]:
        """The one expression a container entry holds (see ``entries``), or None."""
        got = self.entries(expr, fn, depth)
        return got[0] if got and len(got) == 1 else None

    def entries(self, expr: cst.Subscript, fn: Function, depth: int = 0) -> Optional[List[Tuple[cst.BaseExpression, Function]]]:
        """What ``d["k"]`` / ``l[0]`` may hold: the values stored with ``d["k"] = ...`` (in the scope that binds
        ``d``, or in any method for ``self.d``), else the entry of the dict or list literal (``{"k": v}``,
        ``dict(k=v)``, ``[a, b]``) the container was assigned. None when unknown."""
        if depth > MAX_DEPTH or len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
            return None
        key = expr.slice[0].slice.value
        base = expr.value
        base_text = dotted(base)
        if base_text is not None and isinstance(key, (cst.SimpleString, cst.Integer)):
            stored = self._stored(base_text, cst.Module([]).code_for_node(key), fn)
            if stored:
                return [(a.value, a.scope) for a in stored]
        found = self.assigned_values(base, fn) if isinstance(base, (cst.Name, cst.Attribute)) else [(base, fn)]
        if not found or len(found) != 1:
            return None
        container, where = found[0]
        if isinstance(container, cst.Dict) and isinstance(key, cst.SimpleString):
            k = literal_string(key)
            for el in container.elements:
                if isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString) and literal_string(el.key) == k:
                    return [(el.value, where)]
            return None
        if isinstance(container, cst.Call) and last_name(container.func) == "dict" and isinstance(key, cst.SimpleString):
            k = literal_string(key)
            for a in container.args:
                if a.keyword is not None and a.keyword.value == k:
                    return [(a.value, where)]
            return None
        if isinstance(container, (cst.List, cst.Tuple)) and isinstance(key, cst.Integer):
            i = int(key.value, 0)
            elts = container.elements
            if not any(isinstance(e, cst.StarredElement) for e in elts) and -len(elts) <= i < len(elts):
                return [(elts[i].value, where)]
        return None

    def stored_anywhere(self, base: cst.BaseExpression, fn: Function) -> List[Tuple[cst.BaseExpression, Function]]:
        """Every value stored into the container ``base`` under any key (``modules[name] = m``,
        ``parts["opt"] = o``), where it is stored."""
        base_text = dotted(base)
        if base_text is None:
            return []
        return [(a.value, a.scope) for (b, _k), stored in self._items(base_text, fn).items() if b == base_text
                for a in stored]

    def _stored(self, base_text: str, key_text: str, fn: Function) -> List[Assignment]:
        return list(self._items(base_text, fn).get((base_text, key_text), []))

    def _items(self, base_text: str, fn: Function) -> Dict[tuple, List[Assignment]]:
        """The table of container stores that holds ``base_text``'s: its class's for ``self.x``, else the
        scope's that binds its head."""
        if base_text.startswith("self."):
            cls = class_of(fn)
            return cls.items if cls is not None else {}
        scope, _b = self.bindings(base_text.split(".")[0], fn)
        return (scope or self.s.module).items

    def _option_default(self, expr: cst.Attribute, fn: Function, depth: int) -> Optional[FrozenSet[int]]:
        """``args.epochs`` where ``args = parser.parse_args(...)``: the ``default=`` of ``--epochs``."""
        base = expr.value
        found = self.assigned_values(base, fn) if isinstance(base, cst.Name) else None
        if not found or not all(isinstance(v, cst.Call) and last_name(v.func) in ("parse_args", "parse_known_args")
                                for v, _w in found):
            return None
        defaults = self._argparse_defaults().get(expr.attr.value)
        if not defaults:
            return None
        out: Set[int] = set()
        for d in defaults:
            g = self.ints(d, self.s.module, depth + 1)
            if g is None:
                return None
            out |= g
        return frozenset(out)

    def _argparse_defaults(self) -> Dict[str, List[cst.BaseExpression]]:
        if self._argparse is None:
            found: Dict[str, List[cst.BaseExpression]] = {}

            class V(Walker):
                def visit_Call(self, n: cst.Call) -> None:
                    if last_name(n.func) != "add_argument":
                        return
                    dest = None
                    default = None
                    for a in n.args:
                        if a.keyword is not None and a.keyword.value == "dest" and isinstance(a.value, cst.SimpleString):
                            dest = literal_string(a.value)
                        elif a.keyword is not None and a.keyword.value == "default":
                            default = a.value
                    if dest is None:
                        flags = [literal_string(a.value) for a in n.args if a.keyword is None and isinstance(a.value, cst.SimpleString)]
                        longs = [f for f in flags if f.startswith("--")] or flags
                        if longs:
                            dest = longs[0].lstrip("-").replace("-", "_")
                    if dest is not None and default is not None:
                        found.setdefault(dest, []).append(default)

            V().walk(self.s.module_node)
            self._argparse = found
        return self._argparse

    # -- iteration ---------------------------------------------------------------------------------------
    def iterated(self, expr: Optional[cst.BaseExpression], fn: Function, depth: int = 0) -> List[Tuple[cst.BaseExpression, Function, bool]]:
        """What a ``for`` loop over ``expr`` really iterates: the data source(s) under iteration wrappers
        (``enumerate``, ``tqdm``, ``zip`` — every argument), through names bound to such a wrapper. Each
        item is (expression, scope, wrapped-by-zip)."""
        if expr is None or depth > MAX_DEPTH:
            return []
        e = expr
        while isinstance(e, cst.Call) and self.iteration_wrapper(e.func, fn) and last_name(e.func) not in ("trange",):
            args = positional_args(e)
            if not args:
                return [(e, fn, False)]
            e = args[0]
        if isinstance(e, cst.Call) and last_name(e.func) == "zip":
            out = []
            for a in positional_args(e):
                out.extend((x, f, True) for x, f, _z in self.iterated(a, fn, depth + 1))
            return out
        if isinstance(e, cst.Name):
            found = self.assigned_values(e, fn)
            if found and all(isinstance(v, cst.Call) and (last_name(v.func) == "zip" or self.iteration_wrapper(v.func, w))
                             for v, w in found):
                out = []
                for v, where in found:
                    out.extend(self.iterated(v, where, depth + 1))
                return out
        return [(e, fn, False)]

    def iteration_wrapper(self, func: cst.BaseExpression, fn: Function) -> bool:
        """Iterating ``func(it, ...)`` yields the items of ``it``: a known wrapper under the name it was imported
        from (``from tqdm import tqdm as progress``), or a function of this module that returns its first
        parameter or yields from it (a fallback ``def progress(iterable, **kw): return iterable``)."""
        q = self.s.qualify(func)
        if q is not None and q.rsplit(".", 1)[-1] in ITER_WRAPPERS:
            return True
        if isinstance(func, cst.Name):
            local = self.s.lookup_function(func.value, fn)
            if local is not None and isinstance(local.node, cst.FunctionDef) and _passes_through(local.node):
                return True
        return last_name(func) in ITER_WRAPPERS

    # -- mixed precision ---------------------------------------------------------------------------------------
    def scaled_by(self, expr: Optional[cst.BaseExpression], fn: Function, depth: int = 0) -> Optional[Tuple[cst.BaseExpression, Function]]:
        """(the scaler, its scope) when ``expr`` is ``scaler.scale(...)`` on every path (also through a name:
        ``loss = scaler.scale(loss)`` ... ``loss.backward()``, and through a parameter every call passes it
        to: ``backprop(scaler.scale(loss))``)."""
        if expr is None or depth > MAX_DEPTH:
            return None
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "scale":
            return expr.func.value, fn
        if isinstance(expr, cst.Name):
            found = self.assigned_values(expr, fn)
            if not found and expr.value in fn.params and expr.value not in fn.assigns:
                passed, complete = self.arguments(fn, expr.value, used_default=True)
                found = passed if complete else []
            if not found:
                return None
            got = [self.scaled_by(v, where, depth + 1) for v, where in found]
            if all(g is not None for g in got) and len({_text(g[0]) for g in got}) == 1:
                return got[0]
        return None

    # -- callables -------------------------------------------------------------------------------------------
    def callable_of(self, expr: Optional[cst.BaseExpression], fn: Function, depth: int = 0) -> Optional[Callable]:
        """The function a callable expression denotes: a ``def`` in scope, ``self.method``, a lambda,
        ``functools.partial(f, ...)`` (its arguments bound), an instance of a class of this module that
        defines ``__call__``, a name bound to one of these, a parameter every call site hands the same one,
        or the function a same-module factory returns."""
        if expr is None or depth > MAX_DEPTH:
            return None
        if isinstance(expr, cst.Lambda):
            body = expr.body
            if isinstance(body, cst.Call) and not any(a.star for a in body.args):
                inner = self.callable_of(body.func, fn, depth + 1)
                if inner is not None and isinstance(inner.target, Function) and (
                        not inner.bound_args or inner.bound_scope is fn):
                    # a partial called by the lambda keeps its bound arguments (they come first)
                    return Callable(inner.target, inner.scope, inner.bound_args, inner.bound_scope, inner.bound_self,
                                    inner.factory, expr)
            return Callable(expr, fn)
        if isinstance(expr, cst.Call) and (self.s.qualify(expr.func) == "functools.partial" or last_name(expr.func) == "partial") \
                and expr.args and not expr.args[0].keyword:
            inner = self.callable_of(expr.args[0].value, fn, depth + 1)
            if inner is None:
                return None
            bound = tuple(a for a in expr.args[1:])
            if inner.bound_args and inner.bound_scope is not fn:
                return None
            return Callable(inner.target, inner.scope, inner.bound_args + bound, fn, inner.bound_self, inner.factory)
        if isinstance(expr, cst.Call):
            cls = self.instance_class(expr, fn)
            call = self.method(cls, "__call__") if cls is not None else None
            if call is not None:  # an instance of a class of this module that defines ``__call__``
                return Callable(call, call.parent or self._home(call).module, bound_self=True)
            factory, _b = self.resolve_callee(expr.func, fn)
            if factory is None or factory.is_module:
                return None
            returned = self.returned(factory)
            targets = [self.callable_of(r, factory, depth + 1) for r in returned]
            if returned and all(t is not None for t in targets) and len({id(t.target) for t in targets}) == 1:
                t = targets[0]
                return Callable(t.target, t.scope, t.bound_args, t.bound_scope, t.bound_self, (expr, fn, factory))
            return None
        if isinstance(expr, (cst.Name, cst.Attribute)):
            if isinstance(expr, cst.Name):
                scope, binds = self.bindings(expr.value, fn, expr)
                if binds and all(isinstance(b, Def) and b.kind == OTHER and isinstance(b.node, cst.FunctionDef) for b in binds):
                    f = self._home(fn).by_node.get(binds[-1].node)
                    if f is not None:
                        return Callable(f, f.parent or self._home(fn).module)
                if scope is not None and binds and not self._indexing \
                        and all(isinstance(b, Def) and b.kind == PARAM for b in binds):
                    # a parameter: what every call site of this module (and the default) hands it (not while
                    # the call sites are being found: finding them resolves callables too)
                    args, complete = self.arguments(scope, expr.value, used_default=True)
                    got = [self.callable_of(a, where, depth + 1) for a, where in args] if complete else []
                    if got and all(g is not None for g in got) and len({id(g.target) for g in got}) == 1:
                        return got[0]
            callee, bound_self = self.resolve_callee(expr, fn)
            if callee is not None:
                return Callable(callee, callee.parent or self._home(callee).module, bound_self=bound_self)
            found = self.assigned_values(expr, fn)
            if found:
                got = [self.callable_of(v, where, depth + 1) for v, where in found]
                if all(g is not None for g in got) and len({id(g.target) for g in got}) == 1:
                    return got[0]
        return None

    def returned(self, fn: Function) -> List[cst.BaseExpression]:
        """The expressions a function returns (top level of its body and nested blocks, not nested defs)."""
        out: List[cst.BaseExpression] = []
        node = fn.node

        class V(Walker):
            def visit_Return(self, n: cst.Return) -> None:
                if n.value is not None:
                    out.append(n.value)

            def visit_FunctionDef(self, n) -> bool:
                return n is node

            def visit_Lambda(self, n) -> bool:
                return False

            def visit_ClassDef(self, n) -> bool:
                return False

        if isinstance(node, cst.FunctionDef):
            V().walk(node)
        return out


def _default(fn: Function, name: str):
    node = fn.node
    if isinstance(node, cst.FunctionDef):
        for p in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params):
            if p.name.value == name:
                return p.default
    return None


def _in_source_order(found, assigns) -> List[Binding]:
    """Reaching bindings in a deterministic order: assignments as they stand in the source, then the rest."""
    ordered: List[Binding] = [a for a in assigns if a in found]
    rest = [b for b in found if not isinstance(b, Assignment)]
    rest.sort(key=lambda d: (d.kind, d.path))
    return ordered + rest


def literal_string(node: cst.SimpleString) -> str:
    text = node.value
    while text and text[0] in "rbuRBUfF":
        text = text[1:]
    return text.strip("'\"")


def _text(e: cst.CSTNode) -> str:
    return dotted(e) if isinstance(e, cst.BaseExpression) and dotted(e) else cst.Module([]).code_for_node(e)


def class_of(fn: Optional[Function]) -> Optional[ClassInfo]:
    f = fn
    while f is not None:
        if f.cls is not None:
            return f.cls
        f = f.parent
    return None


__all__ = ["Values", "Def", "Binding", "CallSite", "Callable", "ASSIGN", "PARAM", "LOOP", "AUG", "OTHER",
           "ITER_WRAPPERS", "SAME_OBJECT", "class_of"]
