"""Which code of a file can matter to the rules, decided on Python's own syntax tree (``ast``) before libcst
parses anything: libcst's parse and the model cost in proportion to the code they are given, and most
code in a repository never trains.

Every rule judges gradient events (a ``backward``, an optimizer's or a scheduler's ``step``, a ``zero_grad``,
``.grad``, a closure, an ``Optimizer``): a file whose code names none of them cannot have a finding, and
within a file, a top-level function or class that names none of them and is not linked to code that does
cannot change one. ``TRAINING_NAMES`` are those names, tested on identifiers (names, attributes, arguments,
imported names, strings that are identifiers) rather than on text, so that a comment or a docstring does
not count (the engine's text pre-filter is the same test on raw text).

Whether a file trains is decided on the identifiers of its code; the links between its top-level
definitions on the words of their rows (comments and strings too: a word too many keeps more code). A
top-level definition is kept (``hot``) when

* it names a training name, or carries a decorator (a framework may call it), or declares ``global`` /
  ``nonlocal`` (it rebinds what other code reads), or mentions a variable bound at module level;
* its name is mentioned by module-level code or by a kept definition (a callee, a base class), or it
  mentions a kept definition's name (a caller: call sites tell the model what arguments are).

Everything at module level that is not a function or class definition is always kept. The others are
replaced by blank lines (``blank_cold``): rows and columns of the kept code are unchanged, so findings need
no mapping back.
"""
from __future__ import annotations

import ast
import re
from typing import Iterator, List, NamedTuple, Set, Tuple

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
    cold: List[Tuple[int, int]]  # row ranges (1-based, inclusive) of top-level definitions that cannot matter


def _module_variables(statements: List[ast.stmt]) -> Set[str]:
    """Names bound at module level by statements other than imports and definitions."""
    bound: Set[str] = set()
    for statement in statements:
        for n in ast.walk(statement):
            if type(n) is ast.Name and type(n.ctx) is not ast.Load:
                bound.add(n.id)
    return bound


def relevance(tree: ast.Module, source: str) -> Relevance:
    """Whether ``tree``'s code names training, and which of its top-level definitions cannot matter.

    Whether the file trains is decided on identifiers of the code (its comments and strings do not count).
    Within a training file, the links between definitions are decided on the words of each definition's
    rows, comments and strings included: a word too many only keeps more code (and costs a fraction of a
    walk over the tree)."""
    if not any(TRAINING_NAMES.search(n) for n in identifiers(tree)):
        return Relevance(False, [])
    rows = _LINES.findall(source)
    definitions = [s for s in tree.body if isinstance(s, _DEFS)]
    others = [s for s in tree.body if not isinstance(s, _DEFS)]
    spans = [(first_row(d), d.end_lineno or d.lineno) for d in definitions]
    names = [set(_WORD.findall("".join(rows[first - 1:last]))) for first, last in spans]
    module_names: Set[str] = set()
    for statement in others:
        module_names.update(_WORD.findall("".join(rows[statement.lineno - 1:statement.end_lineno or statement.lineno])))
    variables = _module_variables(others)
    hot = [
        names_training(n) or bool(getattr(d, "decorator_list", None)) or bool(n & variables)
        or "global" in n or "nonlocal" in n
        for d, n in zip(definitions, names)
    ]
    changed = True
    while changed:
        changed = False
        mentioned = set(module_names)
        hot_names = set()
        for d, n, h in zip(definitions, names, hot):
            if h:
                mentioned |= n
                hot_names.add(d.name)
        for i, (d, n) in enumerate(zip(definitions, names)):
            if not hot[i] and (d.name in mentioned or n & hot_names):
                hot[i] = changed = True
    return Relevance(True, [span for span, h in zip(spans, hot) if not h])


_WORD = re.compile(r"[^\W\d]\w*")


def first_row(definition: ast.stmt) -> int:
    """The row a statement starts on: its first decorator's, for a decorated definition."""
    decorators = getattr(definition, "decorator_list", None)
    return min([definition.lineno] + [d.lineno for d in decorators or ()])


_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")


def blank_cold(source: str, cold: List[Tuple[int, int]]) -> str:
    """``source`` with the rows of ``cold`` emptied (their line breaks kept: Python's own rows, which a form
    feed or a Unicode line separator does not end)."""
    if not cold:
        return source
    rows = _LINES.findall(source)
    for first, last in cold:
        for i in range(first - 1, min(last, len(rows))):
            row = rows[i]
            rows[i] = row[len(row.rstrip("\r\n")):]
    return "".join(rows)
