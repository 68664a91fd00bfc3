"""Where a file's imports lead: the Python source files of the same project that ``import`` statements name.

Only the standard library is used here: the results cache (``looplint.cache``) asks which modules a file
depends on without importing libcst or the model; the model's project service
(``looplint.model.project``) resolves the names it reads with the same rules.

Resolution follows Python's:

* an absolute import (``helpers``, ``pkg.utils``) is looked for in the importing file's own folder (the
  script's folder, first on ``sys.path`` when it runs) and, when that folder is a package (it holds an
  ``__init__.py``), in the folder above its outermost package;
* a relative import (``.utils``, ``..models``) from the importing file's folder, one folder up per extra dot;
* ``pkg/mod.py`` or ``pkg/mod/__init__.py``.

Source read from stdin resolves against the folder of ``--stdin-filename``, or the working directory for
plain ``-``; a notebook against its folder.
"""
from __future__ import annotations

import ast
import os
from typing import Dict, Iterable, List, Optional, Set, Tuple

MAX_MODULE_BYTES = 512 * 1024  # a larger imported module is not read (its names stay unknown)

Stamp = Tuple[int, int]  # (modification time in ns, size)


def stamp(path: str) -> Optional[Stamp]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def base_directory(path: Optional[str]) -> str:
    """The folder imports of a file named ``path`` resolve from (the working directory for ``<stdin>``)."""
    if not path or path.startswith("<"):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(path))


def module_file(directory: str, dotted_name: str) -> Optional[str]:
    """``directory/a/b.py`` or ``directory/a/b/__init__.py`` for ``a.b``; None when neither is a file."""
    parts = [p for p in dotted_name.split(".") if p]
    if not parts:
        return None
    stem = os.path.join(directory, *parts)
    for candidate in (stem + ".py", os.path.join(stem, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def search_roots(directory: str) -> List[str]:
    """Where absolute imports of a file in ``directory`` are looked for: the folder itself and, when it is
    inside packages, the folder holding the outermost one."""
    roots = [directory]
    top = directory
    while os.path.isfile(os.path.join(top, "__init__.py")):
        parent = os.path.dirname(top)
        if parent == top:
            break
        top = parent
    if top != directory:
        roots.append(top)
    return roots


def find_module(name: str, directory: str) -> Optional[str]:
    """The source file of module ``name`` (``pkg.mod``, ``.utils``, ``..models``) imported from a file in
    ``directory``; None when it is not a file of the project."""
    dots = len(name) - len(name.lstrip("."))
    rest = name[dots:]
    if dots:
        base = directory
        for _ in range(dots - 1):
            base = os.path.dirname(base)
        if not rest:
            init = os.path.join(base, "__init__.py")
            return init if os.path.isfile(init) else None
        return module_file(base, rest)
    for root in search_roots(directory):
        found = module_file(root, rest)
        if found is not None:
            return found
    return None


def dependencies(source: str, path: Optional[str]) -> List[Tuple[str, Optional[Stamp]]]:
    """Every project module a source may read through ``Project`` (its imports, and theirs one re-export
    deep), with their stamps, and the module names that resolve to no file (a file created later changes
    the answer): what a cached result of this source depends on besides its own text."""
    directory = base_directory(path)
    out: Dict[str, Optional[Stamp]] = {}
    todo: List[Tuple[str, str, int]] = [(n, directory, 1) for n in _imported(source)]
    seen: Set[Tuple[str, str]] = set()
    while todo:
        name, where, hops = todo.pop()
        if (name, where) in seen:
            continue
        seen.add((name, where))
        found = find_module(name, where)
        if found is None:
            out["?" + name] = None  # by name only: the same text elsewhere shares the entry until one appears
            continue
        real = os.path.realpath(found)
        if real in out:
            continue
        out[real] = stamp(real)
        if hops > 0:
            try:
                with open(real, "rb") as f:
                    text = f.read(MAX_MODULE_BYTES + 1).decode("utf-8", "replace")
            except OSError:
                continue
            todo.extend((n, os.path.dirname(real), hops - 1) for n in _imported(text))
    return sorted(out.items())


def _imported(source: str) -> Iterable[str]:
    """Module names a source imports (``from a import b`` also names ``a.b``: it may be a module)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    names: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            if base:
                names.append(base)
            names.extend((base + "." if base and not base.endswith(".") else base) + a.name for a in node.names if a.name != "*")
    return names


__all__ = ["MAX_MODULE_BYTES", "Stamp", "base_directory", "dependencies", "find_module", "module_file", "search_roots", "stamp"]
