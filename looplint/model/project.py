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
import threading
from collections import OrderedDict
from typing import Dict, Optional, Tuple

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
    from looplint.engine import decode

    key, read = _recent
    if key == (real, stamp):
        return read
    read = None
    if stamp[1] <= MAX_MODULE_BYTES:
        try:
            with open(real, "rb") as f:
                source = decode(f.read())
            read = source, ast.parse(source)
        except Exception:  # noqa: BLE001 - unreadable, undecodable, a syntax error: unknown
            read = None
    _recent = ((real, stamp), read)
    return read


_recent: tuple = (None, None)  # ((realpath, stamp), what _read_tree read there)


def _defined_names(body, found: set) -> None:
    """The names the statements of ``body`` (and the statements nested in them) define or import."""
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for alias in n.names:
                found.add(alias.asname or alias.name)
                found.add(alias.name.split(".")[0])
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            nested = getattr(n, field, None)
            if isinstance(nested, list):
                stack.extend(nested)


def names(path: str) -> frozenset:
    """Every name a lookup can find in the module at ``path``, read without libcst: the names of its
    functions and classes (at any depth) and the names its imports bind (a re-export). Empty when the module
    cannot be read or parsed. A lookup of any other name finds nothing (``Project.module``)."""
    real = os.path.realpath(path)
    stamp = _stamp(real)
    if stamp is None:
        return frozenset()
    hit = _recall(_named, real, stamp)
    if hit is not None:
        return hit[0]
    read = _read_tree(real, stamp)
    found: set = set()
    if read is not None:
        _defined_names(read[1].body, found)
    return _remember(_named, KEEP_NAMES, real, stamp, frozenset(found))


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


class Project:
    """The modules one linted file reaches through its imports (see the module docstring)."""

    def __init__(self, path: Optional[str]):
        self.path = os.path.realpath(path) if path and not path.startswith("<") else None
        self.directory = base_directory(path)
        self.read: Dict[str, Optional[Stamp]] = {}  # every module file read, with the stamp it had
        self.probed: Dict[str, bool] = {}  # every path asked whether it is a file, with the answer
        self._loaded: Dict[str, object] = {}

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

    def _in_framework(self, real: str) -> bool:
        """Whether the module at ``real`` belongs to a framework's package: its dotted name, from the folder
        holding its outermost package (``search_roots``), starts with one the table names."""
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
