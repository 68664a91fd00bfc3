"""Which code of a file can matter to the rules, decided on Python's own syntax tree (``ast``) before libcst
parses anything: libcst's parse and the model cost in proportion to the code they are given, and most
code in a repository never trains.

Every rule judges gradient events (a ``backward``, an optimizer's or a scheduler's ``step``, a ``zero_grad``,
``.grad``, a closure, an ``Optimizer``): a file whose code names none of them cannot have a finding, and
within a file, a function or method that names none of them and is not linked to code that does
cannot change one. ``TRAINING_NAMES`` are those names, tested on identifiers (names, attributes, arguments,
imported names, strings that are identifiers) rather than on text, so that a comment or a docstring does
not count (the engine's text pre-filter is the same test on raw text).

Whether a file trains is decided on the identifiers of its code. Within a training file the units are its
top-level functions, the methods of its top-level classes and each class's own rows (header, class-level
statements); the links between them are decided on the words of their rows (comments and strings too: a
word too many keeps more code). The model follows calls down from the code that trains, so a unit is kept
when it trains (names a training name, or declares ``global``/``nonlocal``), calls what trains (a caller:
call sites tell the model what arguments are), or is reached from those or from module-level code (a
callee, a class and the methods Python calls for it, a method binding an attribute such code reads). What
only a framework calls, or only calls a callee, cannot change a finding (``relevance`` says how).

Everything at module level that is not a function or class definition is always kept. The other units are
replaced by blank lines (``blank_cold``; a ``pass`` keeps a class whose every statement is cold): rows and
columns of the kept code are unchanged, so findings need no mapping back.
"""
from __future__ import annotations

import ast
import re
from typing import FrozenSet, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

# A file that mentions none of these cannot hold a training loop; it is only checked for syntax (the
# engine's text pre-filter; the results cache asks it too, without importing the engine).
TRAINING_TOKENS = re.compile(r"backward\(|\.backward\b|zero_grad|\.step\(|\bstep\(|\.grad\b|\bclosure\b|lr_scheduler|Optimizer\b")
# Substrings every match of TRAINING_TOKENS holds: most files hold none of them, and a substring search is a
# few times faster than the regular expression over a file that does not match.
_TOKEN_PARTS = ("backward", "zero_grad", "step", ".grad", "closure", "lr_scheduler", "Optimizer")


def may_train(text: str) -> bool:
    """Whether ``text`` mentions something a rule judges (``TRAINING_TOKENS``)."""
    return any(part in text for part in _TOKEN_PARTS) and TRAINING_TOKENS.search(text) is not None

# The engine's text pre-filter (TRAINING_TOKENS) as a test on one identifier.
TRAINING_NAMES = re.compile(r"backward$|zero_grad|^step$|^grad$|^closure$|lr_scheduler|Optimizer$")

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifiers(node: ast.AST) -> Iterator[str]:
    """Every identifier the code under ``node`` spells (and every string constant that is one)."""
    for n in ast.walk(node):
        t = type(n)
        if t is ast.Name:
            yield n.id
        elif t is ast.Attribute:
            yield n.attr
        elif t is ast.arg:
            yield n.arg
        elif t is ast.keyword:
            if n.arg:
                yield n.arg
        elif t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            yield n.name
        elif t is ast.alias:
            yield from n.name.split(".")
            if n.asname:
                yield n.asname
        elif t is ast.ImportFrom:
            if n.module:
                yield from n.module.split(".")
        elif t in (ast.Global, ast.Nonlocal):
            yield from n.names
        elif t is ast.Constant:
            if type(n.value) is str and _IDENTIFIER.match(n.value):
                yield n.value
        elif t is ast.ExceptHandler:
            if n.name:
                yield n.name
        else:
            name = getattr(n, "name", None) or getattr(n, "rest", None)  # match patterns (MatchAs, ...)
            if isinstance(name, str):
                yield name


def names_training(names: Set[str]) -> bool:
    return any(TRAINING_NAMES.search(n) for n in names)


class Relevance(NamedTuple):
    training: bool  # the file's code names something a rule judges
    cold: List[Tuple[int, int]]  # row ranges (1-based, inclusive) of definitions that cannot matter
    # (row, column) of a ``pass`` that keeps a class statement whose whole body is cold (``blank_cold``)
    stubs: List[Tuple[int, int]] = []


class _Unit:
    """A top-level function, a method of a top-level class, or a class's own rows (``shell``: its header
    and the statements of its body that are not methods)."""

    __slots__ = ("node", "name", "words", "span", "cls", "seed", "kept", "up", "assigned")

    def __init__(self, node: ast.AST, name: str, words: Set[str], span: Tuple[int, int], cls: Optional["_Unit"]) -> None:
        self.node, self.name, self.words, self.span, self.cls = node, name, words, span, cls
        self.seed = self.kept = self.up = False
        self.assigned: Set[str] = set()  # for a method: the attributes of ``self``/``cls`` it binds


# Methods nobody calls by name: Python calls them (``__init__``, ``__iter__``...) or the module's ``__call__`` does.
_DUNDER = re.compile(r"^__\w+__$")
_IMPLICIT = re.compile(r"^__\w+__$|^forward$")


# The statements that bind targets, and where their targets are.
_TARGETS = {ast.Assign: lambda s: s.targets, ast.AugAssign: lambda s: (s.target,),
            ast.AnnAssign: lambda s: (s.target,), ast.For: lambda s: (s.target,),
            ast.AsyncFor: lambda s: (s.target,), ast.Delete: lambda s: s.targets,
            ast.With: lambda s: [i.optional_vars for i in s.items if i.optional_vars is not None],
            ast.AsyncWith: lambda s: [i.optional_vars for i in s.items if i.optional_vars is not None]}
# The fields of statements that hold statements (nested definitions included: their code binds too).
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _assigned_attributes(method: ast.AST) -> Set[str]:
    """The attributes a method binds on its first parameter (``self.opt = ...``, ``cls.registry = ...``,
    ``for self.i in ...``, ``with ... as self.f``, ``del self.x``), in its code and the code it nests. Only
    statements are visited: a binding of an attribute is a statement's target (an expression's ``:=``
    cannot bind one), and the expressions are most of a method's nodes."""
    args = getattr(method, "args", None)
    first = (args.posonlyargs + args.args)[:1] if args is not None else []
    if not first:
        return set()
    me = first[0].arg
    found: Set[str] = set()
    stack = list(method.body)
    while stack:
        statement = stack.pop()
        targets = _TARGETS.get(type(statement))
        if targets is not None:
            pending = list(targets(statement))
            while pending:
                target = pending.pop()
                t = type(target)
                if t is ast.Attribute:
                    if type(target.value) is ast.Name and target.value.id == me:
                        found.add(target.attr)
                elif t is ast.Tuple or t is ast.List:
                    pending.extend(target.elts)
                elif t is ast.Starred:
                    pending.append(target.value)
        for field in _BODIES:
            nested = getattr(statement, field, None)
            if nested:
                stack.extend(nested)
    return found


def relevance(tree: ast.Module, source: str, trained: FrozenSet[str] = frozenset()) -> Relevance:
    """Whether ``tree``'s code names training, and which of its definitions cannot matter.

    Whether the file trains is decided on identifiers of the code (its comments and strings do not count),
    and on ``trained``: the names its imports bind to code of the project that trains
    (``looplint.model.project.Project.trained_imports``; a driver script that builds the optimizer and calls
    an imported ``train_epoch`` names no gradient call of its own). Within a training file the units are
    top-level functions, the methods of top-level classes and each class's own rows; the links between them
    are decided on the words of each unit's rows, comments and strings included (a word too many only keeps
    more code, and costs a fraction of a walk over the tree):

    * seeds: a unit that names training, names one of ``trained``, or declares ``global``/``nonlocal`` (it
      rebinds what other code reads);
    * callers: a unit that names a seed or a caller (call sites tell the model what arguments are),
      transitively; module-level code is a caller of everything it names;
    * callees: a unit named by module-level code, a caller, or a callee, transitively; a method that binds an
      attribute of ``self`` such code names; a class such code names, with its own rows, the methods
      Python calls for it (``__init__``, ``__iter__``...) and ``forward``.

    The callers of a callee are not kept: the model follows calls down from the code that trains, and what
    else calls a helper of it cannot change what that code does. Nor is a function that only a framework
    calls (a decorated handler) and that names nothing kept: the model judges it alone, and alone it holds
    no gradient event. A class with a kept unit keeps its own rows; a class none of whose units is kept is
    cold whole."""
    if not trained and not any(TRAINING_NAMES.search(n) for n in identifiers(tree)):
        return Relevance(False, [])
    units, classes, module_words = _units(tree, source)
    for unit in units:
        words = unit.words
        unit.seed = names_training(words) or "global" in words or "nonlocal" in words or bool(words & trained)
    _callers(units)
    # callees: what module-level code and kept units name, transitively
    named = set(module_words)
    found = [u for u in units if u.up]
    while True:
        for unit in found:
            unit.kept = True
            named |= unit.words
        found = [u for u in units if not u.kept and (
            (u.name in named and (u.cls is None or not _DUNDER.match(u.name)))  # __init__ is every class's
            or (u.cls is not None and u.cls.name in named and _IMPLICIT.match(u.name) is not None)
            or u.assigned & named)]
        chosen = {id(u) for u in found}
        for unit in units:  # a class with a kept unit keeps its own rows
            shell = unit.cls
            if shell is not None and not shell.kept and id(shell) not in chosen and (unit.kept or id(unit) in chosen):
                found.append(shell)
                chosen.add(id(shell))
        if not found:
            break
    cold: List[Tuple[int, int]] = []
    stubs: List[Tuple[int, int]] = []
    kept_functions = {id(u.node) for u in units if u.kept}
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if id(statement) not in kept_functions:
                cold.append((first_row(statement), statement.end_lineno or statement.lineno))
    for statement, shell, methods in classes:
        if not shell.kept:
            cold.append(shell.span)
            continue
        gone = [m for m in methods if not m.kept]
        cold.extend(m.span for m in gone)
        if gone and len(gone) == len(statement.body):
            stubs.append((gone[0].span[0], gone[0].node.col_offset))
    cold.sort()
    return Relevance(True, cold, stubs)


def _units(tree: ast.Module, source: str):
    """The units of a module (``_Unit``), its top-level classes (statement, shell, methods) and the words of
    its module-level statements that are not definitions."""
    rows = _LINES.findall(source)

    def words(first: int, last: int) -> Set[str]:
        return set(_WORD.findall("".join(rows[first - 1:last])))

    units: List[_Unit] = []
    classes: List[Tuple[ast.ClassDef, _Unit, List[_Unit]]] = []
    module_words: Set[str] = set()
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            span = (first_row(statement), statement.end_lineno or statement.lineno)
            units.append(_Unit(statement, statement.name, words(*span), span, None))
        elif isinstance(statement, ast.ClassDef):
            first, last = first_row(statement), statement.end_lineno or statement.lineno
            shell = _Unit(statement, statement.name, set(), (first, last), None)
            methods: List[_Unit] = []
            row = first
            for member in statement.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    span = (first_row(member), member.end_lineno or member.lineno)
                    shell.words |= words(row, span[0] - 1)
                    method = _Unit(member, member.name, words(*span), span, shell)
                    method.assigned = _assigned_attributes(member)
                    methods.append(method)
                    row = span[1] + 1
            shell.words |= words(row, last)
            classes.append((statement, shell, methods))
            units.append(shell)
            units.extend(methods)
        else:
            module_words |= words(statement.lineno, statement.end_lineno or statement.lineno)
    return units, classes, module_words


def _callers(units: List[_Unit]) -> Set[str]:
    """Marks the callers (``up``) among ``units``: the seeds and what names a caller, transitively (see
    ``relevance``); returns their names (a class is one when one of its methods is)."""
    up_names: Set[str] = set()
    changed = True
    while changed:
        changed = False
        for unit in units:
            if not unit.up and (unit.seed or unit.words & up_names):
                unit.up = changed = True
                up_names.add(unit.name)
                if unit.cls is not None:
                    up_names.add(unit.cls.name)  # constructing the class binds what its methods read
    return up_names


# A definition that runs gradient events when called names one of these in its code (not only in a comment,
# a string or an annotation: ``opt: Optimizer`` runs nothing).
EVENT_NAMES = re.compile(r"backward$|zero_grad|^step$|^grad$|^closure$")


def training_definitions(tree: ast.Module, source: str) -> FrozenSet[str]:
    """The names of a module's top-level functions and classes that run gradient events when called: a
    function or method whose code names one (``EVENT_NAMES``), and what names such a definition, linked
    as ``relevance`` links callers (a method named ``step`` that calls none is a timer's or a scheduler's).
    What an import of them brings into a file that names no training of its own."""
    units, _, _ = _units(tree, source)
    seeded = False
    for unit in units:
        if not isinstance(unit.node, ast.ClassDef):
            unit.seed = any(EVENT_NAMES.search(n) for statement in unit.node.body for n in identifiers(statement))
            seeded = seeded or unit.seed
    if not seeded:
        return frozenset()
    return frozenset(n for n in _callers(units) if not _DUNDER.match(n))


_WORD = re.compile(r"[^\W\d]\w*")


def first_row(definition: ast.stmt) -> int:
    """The row a statement starts on: its first decorator's, for a decorated definition."""
    decorators = getattr(definition, "decorator_list", None)
    return min([definition.lineno] + [d.lineno for d in decorators or ()])


_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")


def blank_cold(source: str, cold: List[Tuple[int, int]], stubs: Sequence[Tuple[int, int]] = ()) -> str:
    """``source`` with the rows of ``cold`` emptied (their line breaks kept: Python's own rows, which a form
    feed or a Unicode line separator does not end), and a ``pass`` at each of ``stubs`` (row, column)."""
    if not cold:
        return source
    rows = _LINES.findall(source)
    for first, last in cold:
        for i in range(first - 1, min(last, len(rows))):
            row = rows[i]
            rows[i] = row[len(row.rstrip("\r\n")):]
    for row, column in stubs:
        rows[row - 1] = " " * column + "pass" + rows[row - 1]
    return "".join(rows)
