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
unknown, as it was before this service. Only the modules the linted file imports are ever read, and only
when the model asks for one of their names; at most ``KEEP_MODULES`` parsed modules stay in memory.

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

from looplint.imports import MAX_MODULE_BYTES, Stamp, base_directory, find_module
from looplint.imports import stamp as _stamp

MAX_MODULE_DEPTH = 200  # a module nested deeper is not read (libcst's parse cost grows with depth squared)

KEEP_MODULES = 32  # parsed modules kept per process, the most recently used

_lock = threading.Lock()
# realpath -> (stamp, Scopes or None when it did not parse); shared by every lint of this process
_parsed: "OrderedDict[str, Tuple[Stamp, object]]" = OrderedDict()


def _parse(path: str):
    """The ``Scopes`` of the module at ``path`` (cached per path, modification time and size), None when it
    cannot be read or parsed."""
    from looplint.engine import decode, nesting_depth
    from looplint.model.scopes import Scopes

    real = os.path.realpath(path)
    stamp = _stamp(real)
    if stamp is None:
        return None
    with _lock:
        hit = _parsed.get(real)
        if hit is not None and hit[0] == stamp:
            _parsed.move_to_end(real)
            return hit[1]
    scopes = None
    if stamp[1] <= MAX_MODULE_BYTES:
        try:
            with open(real, "rb") as f:
                source = decode(f.read())
            tree = ast.parse(source)
            if nesting_depth(tree) <= MAX_MODULE_DEPTH:
                scopes = Scopes(cst.parse_module(source), name=os.path.splitext(os.path.basename(real))[0], path=real)
        except Exception:  # noqa: BLE001 - unreadable, undecodable, a syntax error, a parser failure: unknown
            scopes = None
    with _lock:
        _parsed[real] = (stamp, scopes)
        _parsed.move_to_end(real)
        while len(_parsed) > KEEP_MODULES:
            _parsed.popitem(last=False)
    return scopes


class Project:
    """The modules one linted file reaches through its imports (see the module docstring)."""

    def __init__(self, path: Optional[str]):
        self.path = os.path.realpath(path) if path and not path.startswith("<") else None
        self.directory = base_directory(path)
        self.read: Dict[str, Optional[Stamp]] = {}  # every module file read, with the stamp it had
        self._loaded: Dict[str, object] = {}

    def module(self, name: str, importer=None):
        """The ``Scopes`` of module ``name`` imported by ``importer`` (a ``Scopes``; the linted file when
        None), or None."""
        directory = os.path.dirname(importer.path) if importer is not None and importer.path else self.directory
        path = find_module(name, directory)
        if path is None:
            return None
        real = os.path.realpath(path)
        if real == self.path:
            return None  # the linted file itself: a cycle
        scopes = _parse(real)
        self.read[real] = _stamp(real)
        if scopes is not None:
            self._loaded[real] = scopes
        return scopes

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
        scopes = self.module(module_name, importer)
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


def defined(scopes, name: str):
    """The top-level function or class ``name`` of a module's ``Scopes``, or None."""
    fn = scopes.module.nested.get(name)
    if fn is not None:
        return fn
    return scopes.classes.get(name)


__all__ = ["Project", "defined"]
