"""The project around a file: the modules it imports that are Python source files of the same project.

``from helpers import make_optimizer``, ``from .utils import build_sched``, ``import models as m`` then
``m.Net()``: the model asks this service what such a name is, and gets the function or class defined in
that module (its ``Scopes``, parsed once per process and kept while the file's modification time and size
stay the same), so that roles, values and effects read it like a definition of the linted file.

Modules are found as Python finds them (``looplint.imports``: the importing file's folder, the folder above
its outermost package, relative imports from its folder). A name a module only re-exports (``from .impl
import make`` in it) is followed one more module, no further.

A module that cannot be found, read or parsed (or is larger than ``MAX_MODULE_BYTES``), an import cycle
back to the linted file, and the imports of an imported module (beyond that one re-export) leave the name
unknown, as it was before this service. So does a module of a framework's package (``frameworks.py``:
``accelerate``, ``lightning``...): the framework table says what its names do, also in the framework's own
repository, where its source is a module of the project (its tests and examples import it). Only the
modules the linted file imports are ever read, and only when the model asks for one of their names; at most
``KEEP_MODULES`` parsed modules stay in memory.

Source read from stdin (and a notebook) resolves against its folder: the folder of ``--stdin-filename``
(of the notebook), or the working directory for plain ``-``.
"""
from __future__ import annotations

import ast
import os
import re
import threading
from collections import OrderedDict
from typing import Dict, Iterator, Optional, Tuple

import libcst as cst

from looplint.imports import MAX_MODULE_BYTES, Stamp, base_directory, find_module, search_roots
from looplint.imports import stamp as _stamp
from looplint.model.frameworks import framework_of

MAX_MODULE_DEPTH = 200  # a module nested deeper is not read (libcst's parse cost grows with depth squared)

KEEP_MODULES = 32  # parsed modules kept per process, the most recently used

_lock = threading.Lock()
# realpath -> (stamp, Scopes or None when it did not parse); shared by every lint of this process
_parsed: "OrderedDict[str, Tuple[Stamp, object]]" = OrderedDict()


# realpath -> (stamp, the names a lookup can find in the module); shared like ``_parsed``
_named: "OrderedDict[str, Tuple[Stamp, frozenset]]" = OrderedDict()
KEEP_NAMES = 1024  # modules whose names are kept per process (a few KB each)


def _read_tree(real: str, stamp: Stamp):
    """(source, Python's syntax tree) of the module at ``real`` when it is small enough, decodable and
    parsed by Python, else None. The last one read is kept: a module whose names a lookup finds is parsed
    with libcst right after (``Project.module``)."""
    global _recent
    key, read = _recent
    if key == (real, stamp):
        return read
    source = _read_text(real, stamp)
    read = None
    if source is not None:
        try:
            read = source, ast.parse(source)
        except Exception:  # noqa: BLE001 - a syntax error: unknown
            read = None
    _recent = ((real, stamp), read)
    return read


_recent: tuple = (None, None)  # ((realpath, stamp), what _read_tree read there)


# The statements that hold statements, and the fields that hold them.
_NESTED = {ast.FunctionDef: ("body",), ast.AsyncFunctionDef: ("body",), ast.ClassDef: ("body",),
           ast.If: ("body", "orelse"), ast.For: ("body", "orelse"), ast.AsyncFor: ("body", "orelse"),
           ast.While: ("body", "orelse"), ast.With: ("body",), ast.AsyncWith: ("body",),
           ast.Try: ("body", "handlers", "orelse", "finalbody"), ast.ExceptHandler: ("body",)}
if hasattr(ast, "TryStar"):
    _NESTED[ast.TryStar] = ("body", "handlers", "orelse", "finalbody")
if hasattr(ast, "Match"):
    _NESTED[ast.Match] = ("cases",)
    _NESTED[ast.match_case] = ("body",)


def _statements(body) -> Iterator[ast.AST]:
    """The statements of ``body`` and those nested in them (not in expressions), handlers and cases too."""
    stack = list(body)
    while stack:
        n = stack.pop()
        yield n
        fields = _NESTED.get(type(n))
        if fields is not None:
            for field in fields:
                stack.extend(getattr(n, field))


def _defined_names(body, found: set) -> None:
    """The names the statements of ``body`` (and the statements nested in them) define or import."""
    for n in _statements(body):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for alias in n.names:
                found.add(alias.asname or alias.name)
                found.add(alias.name.split(".")[0])


def _per_module(cache: OrderedDict, real: str, empty, read):
    """What ``read(real, stamp)`` says of the module at ``real``, remembered in ``cache`` while its stamp
    holds; ``empty`` for a module that is gone."""
    stamp = _stamp(real)
    if stamp is None:
        return empty
    hit = _recall(cache, real, stamp)
    if hit is not None:
        return hit[0]
    return _remember(cache, KEEP_NAMES, real, stamp, read(real, stamp))


def names(path: str) -> frozenset:
    """Every name a lookup can find in the module at ``path``, read without libcst: the names of its
    functions and classes (at any depth) and the names its imports bind (a re-export). Empty when the module
    cannot be read or parsed. A lookup of any other name finds nothing (``Project.module``)."""
    def read_names(real: str, stamp: Stamp) -> frozenset:
        read = _read_tree(real, stamp)
        found: set = set()
        if read is not None:
            _defined_names(read[1].body, found)
        return frozenset(found)

    return _per_module(_named, os.path.realpath(path), frozenset(), read_names)


# realpath -> (stamp, the names of the module's top-level definitions that train); and -> (stamp, its top-level
# re-exports ``{bound name: (module, name)}``). Kept like ``_named``.
_trains: "OrderedDict[str, Tuple[Stamp, frozenset]]" = OrderedDict()
_reexports: "OrderedDict[str, Tuple[Stamp, dict]]" = OrderedDict()


def _read_text(real: str, stamp: Stamp) -> Optional[str]:
    """The decoded text of the module at ``real`` when it is small enough and decodable, else None. The
    last one read is kept: the facts read of a module (``trained_definitions``, ``_spelled_definitions``,
    ``_read_tree``) are asked of it one after the other."""
    global _recent_text
    from looplint.engine import decode

    if _recent_text[0] == (real, stamp):
        return _recent_text[1]
    text = None
    if stamp[1] <= MAX_MODULE_BYTES:
        try:
            with open(real, "rb") as f:
                text = decode(f.read())
        except Exception:  # noqa: BLE001 - unreadable, undecodable: unknown
            text = None
    _recent_text = ((real, stamp), text)
    return text


_recent_text: tuple = (None, None)  # ((realpath, stamp), what _read_text read there)


def trained_definitions(real: str) -> frozenset:
    """The names of the top-level functions and classes of the module at ``real`` that train or call what
    trains (``relevance.training_definitions``), read without libcst; a module whose text mentions no
    training (``may_train``) is not parsed."""
    from looplint.relevance import may_train, training_definitions

    def read_definitions(real: str, stamp: Stamp) -> frozenset:
        text = _read_text(real, stamp)
        if text is None or not may_train(text):
            return frozenset()
        read = _read_tree(real, stamp)
        return training_definitions(read[1], read[0]) if read is not None else frozenset()

    return _per_module(_trains, real, frozenset(), read_definitions)


def reexports(real: str) -> dict:
    """The top-level ``from M import n [as m]`` of the module at ``real``: ``{m: (M, n)}``."""
    def read_imports(real: str, stamp: Stamp) -> dict:
        read = _read_tree(real, stamp)
        found = {}
        for statement in read[1].body if read is not None else ():
            if isinstance(statement, ast.ImportFrom):
                module = "." * statement.level + (statement.module or "")
                for alias in statement.names:
                    if alias.name != "*":
                        found[alias.asname or alias.name] = (module, alias.name)
        return found

    return _per_module(_reexports, real, {}, read_imports)


def _recall(cache: OrderedDict, real: str, stamp: Stamp):
    """(what ``cache`` holds for the module at ``real``,) when it was stored for this stamp, else None."""
    with _lock:
        hit = cache.get(real)
        if hit is not None and hit[0] == stamp:
            cache.move_to_end(real)
            return (hit[1],)
    return None


def _remember(cache: OrderedDict, keep: int, real: str, stamp: Stamp, value):
    """Stores ``value`` for the module at ``real`` with its stamp, the ``keep`` most recently used kept."""
    with _lock:
        cache[real] = (stamp, value)
        cache.move_to_end(real)
        while len(cache) > keep:
            cache.popitem(last=False)
    return value


def _parse(path: str):
    """The ``Scopes`` of the module at ``path`` (cached per path, modification time and size), None when it
    cannot be read or parsed."""
    from looplint.model.scopes import Scopes

    real = os.path.realpath(path)
    stamp = _stamp(real)
    if stamp is None:
        return None
    hit = _recall(_parsed, real, stamp)
    if hit is not None:
        return hit[0]
    from looplint.engine import nesting_depth
    from looplint.parse import parse_module

    scopes = None
    read = _read_tree(real, stamp)
    if read is not None and nesting_depth(read[1]) <= MAX_MODULE_DEPTH:
        try:
            scopes = Scopes(parse_module(read[0]), name=os.path.splitext(os.path.basename(real))[0], path=real,
                            source=read[0])
        except Exception:  # noqa: BLE001 - a parser failure: unknown
            scopes = None
    return _remember(_parsed, KEEP_MODULES, real, stamp, scopes)


def _called(name: str, source: str) -> bool:
    """Whether ``source`` calls ``name``, reaches into it or hands it on, as text tells: ``name(``,
    ``name.``, ``(name``, ``, name``, ``=name`` (a keyword argument)."""
    return any(spelled in source for spelled in (name + "(", name + ".", "(" + name, ", " + name, "=" + name))


def _may_reexport(real: str, name: str) -> bool:
    """Whether the module at ``real`` may re-export ``name`` rather than define it: its text holds no
    ``def``/``class`` of that name (a module defining it, as most do, is not parsed to tell)."""
    return name not in _spelled_definitions(real)


_spelled: "OrderedDict[str, Tuple[Stamp, frozenset]]" = OrderedDict()
_DEFINITION = re.compile(r"\b(?:def|class)\s+([A-Za-z_]\w*)")


def _spelled_definitions(real: str) -> frozenset:
    """The names the text of the module at ``real`` spells after ``def`` or ``class`` (read once per stamp)."""
    def read_spelled(real: str, stamp: Stamp) -> frozenset:
        text = _read_text(real, stamp)
        return frozenset(_DEFINITION.findall(text)) if text is not None else frozenset()

    return _per_module(_spelled, real, frozenset(), read_spelled)


class Project:
    """The modules one linted file reaches through its imports (see the module docstring)."""

    def __init__(self, path: Optional[str]):
        self.path = os.path.realpath(path) if path and not path.startswith("<") else None
        self.directory = base_directory(path)
        self.read: Dict[str, Optional[Stamp]] = {}  # every module file read, with the stamp it had
        self.probed: Dict[str, bool] = {}  # every path asked whether it is a file, with the answer
        self._loaded: Dict[str, object] = {}
        self._framework: Dict[str, bool] = {}  # real path -> whether a framework's (``_in_framework``)
        self._modules: Dict[Tuple[str, str], Optional[str]] = {}  # (name, folder) -> ``_real_module``

    def module(self, name: str, importer=None, wanted: Optional[str] = None):
        """The ``Scopes`` of module ``name`` imported by ``importer`` (a ``Scopes``; the linted file when
        None), or None; None too when ``wanted`` is given and the module defines or imports no such name
        (decided on Python's own syntax tree: libcst's parse is paid only for a module that can answer)."""
        directory = os.path.dirname(importer.path) if importer is not None and importer.path else self.directory
        path = find_module(name, directory, self._isfile)
        if path is None:
            return None
        real = os.path.realpath(path)
        if real == self.path:
            return None  # the linted file itself: a cycle
        if self._in_framework(real):
            return None  # the table says what a framework's names do (``frameworks.py``)
        if wanted is not None and wanted not in names(real):
            self.read[real] = _stamp(real)
            return None
        scopes = _parse(real)
        self.read[real] = _stamp(real)
        if scopes is not None:
            self._loaded[real] = scopes
        return scopes

    def trained_imports(self, tree: ast.Module, source: str) -> frozenset:
        """The names the imports of the linted file (Python's syntax tree ``tree``) bind to code of the
        project that trains: functions and classes of imported modules that train or call what trains
        (``relevance.training_definitions``), found as ``module`` finds modules (the linted file itself and a
        framework's modules excluded) and through one re-export, as ``lookup`` does. ``from trainlib import
        train_epoch as fit`` gives ``fit``; ``import trainlib`` (or ``from . import trainlib``) gives the
        names ``trainlib.`` reaches. Only names the file's calls call or hand on count (not those a package's
        ``__init__`` re-exports, or a module binds again). What is probed and read is recorded (``depends``)."""
        def called(name: str) -> bool:  # a name only imported or bound again runs nothing here
            return _called(name, source)

        found: set = set()
        for node in _statements(tree.body):
            if type(node) is ast.ImportFrom:
                base = "." * node.level + (node.module or "")
                for alias in node.names:
                    if alias.name == "*":
                        found |= {n for n in self._trained(base, None) if called(n)}
                    elif not called(alias.asname or alias.name):
                        continue
                    elif self._trained(base, alias.name):
                        found.add(alias.asname or alias.name)
                    else:  # ``from pkg import trainlib``: a module of a package
                        module = base + ("" if base.endswith(".") else ".") + alias.name
                        found |= {n for n in self._trained_module(module) if called(n)}
            elif type(node) is ast.Import:
                for alias in node.names:
                    if called(alias.asname or alias.name.partition(".")[0]):
                        found |= {n for n in self._trained_module(alias.name) if called(n)}
        return frozenset(found)

    def _real_module(self, name: str, directory: Optional[str] = None) -> Optional[str]:
        """The real path of module ``name`` of the project as imported from ``directory`` (the linted file's
        folder when None), recorded as read; None for none, the linted file itself or a framework's."""
        key = (name, self.directory if directory is None else directory)
        if key in self._modules:
            return self._modules[key]
        real = None
        path = find_module(name, key[1], self._isfile)
        if path is not None:
            real = os.path.realpath(path)
            if real == self.path or self._in_framework(real):
                real = None
            else:
                self.read[real] = _stamp(real)
        self._modules[key] = real
        return real

    def _trained_module(self, name: str) -> frozenset:
        """The definitions of module ``name`` that train (empty when it is none of the project's)."""
        if name.endswith("."):
            return frozenset()
        real = self._real_module(name)
        return trained_definitions(real) if real is not None else frozenset()

    def _trained(self, module: str, name: Optional[str]) -> frozenset:
        """Of ``from module import name``: {name} when that name is a definition of the module that trains,
        directly or re-exported once; every such definition for ``name`` None (``import *``)."""
        real = self._real_module(module)  # ``from . import x``: the package's ``__init__``
        if real is None:
            return frozenset()
        defs = trained_definitions(real)
        if name is None:
            return defs
        if name in defs:
            return frozenset({name})
        target = reexports(real).get(name) if _may_reexport(real, name) else None
        if target is not None:
            inner = self._real_module(target[0], os.path.dirname(real))
            if inner is not None and target[1] in trained_definitions(inner):
                return frozenset({name})
        return frozenset()

    def _in_framework(self, real: str) -> bool:
        """Whether the module at ``real`` belongs to a framework's package: its dotted name, from the folder
        holding its outermost package (``search_roots``), starts with one the table names."""
        found = self._framework.get(real)
        if found is None:
            found = self._framework[real] = self._framework_module(real)
        return found

    def _framework_module(self, real: str) -> bool:
        top = search_roots(os.path.dirname(real), self._isfile)[-1]
        parts = os.path.relpath(os.path.splitext(real)[0], top).split(os.sep)
        if parts[-1] == "__init__":
            parts.pop()
        return bool(parts) and framework_of(".".join(parts)) is not None

    def _isfile(self, path: str) -> bool:
        found = self.probed.get(path)
        if found is None:
            found = self.probed[path] = os.path.isfile(path)
        return found

    def depends(self) -> Tuple[Dict[str, bool], Dict[str, Optional[Stamp]]]:
        """What a result drawn with this project depends on besides the linted text: the paths its lookups
        probed and the modules they read, as they were (a module no lookup read cannot change the answers)."""
        return dict(self.probed), dict(self.read)

    def lookup(self, qualified: str, importer=None, hops: int = 1):
        """The function or class (``Function`` / ``ClassInfo``) a qualified name imported by ``importer``
        denotes (``helpers.make_optimizer``, ``.utils.Net``, ``.Net`` from a package's ``__init__``), or
        None. ``hops``: how many re-exports may still be followed."""
        rest = qualified.lstrip(".")
        dots = qualified[:len(qualified) - len(rest)]
        module_name, _, attr = rest.rpartition(".")
        module_name = dots + module_name
        if not attr or not module_name:
            return None
        scopes = self.module(module_name, importer, wanted=attr)
        if scopes is None:
            return None
        found = defined(scopes, attr)
        if found is not None:
            return found
        target = scopes.imports.get(attr)  # ``from .impl import make`` in the module: one more module
        if target is None or hops <= 0:
            return None
        return self.lookup(target, scopes, hops - 1)

    def home_of(self, node: cst.CSTNode):
        """The ``Scopes`` of the imported module whose code holds ``node`` (a name or attribute), or None."""
        for scopes in self._loaded.values():
            if id(node) in scopes.node_ids:
                return scopes
        return None


def unchanged(depends: Tuple[Dict[str, bool], Dict[str, Optional[Stamp]]]) -> bool:
    """Whether the paths of ``Project.depends`` are as they were: each probed path is (or is not) a file as
    it was, each module read has the same stamp (modification time and size)."""
    probed, read = depends
    return all(os.path.isfile(p) == was for p, was in probed.items()) and \
        all(_stamp(real) == was for real, was in read.items())


def defined(scopes, name: str):
    """The top-level function or class ``name`` of a module's ``Scopes``, or None."""
    fn = scopes.module.nested.get(name)
    if fn is not None:
        return fn
    return scopes.classes.get(name)


__all__ = ["Project", "defined", "unchanged"]
