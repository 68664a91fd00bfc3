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


def module_file(directory: str, dotted_name: str, isfile=os.path.isfile) -> Optional[str]:
    """``directory/a/b.py`` or ``directory/a/b/__init__.py`` for ``a.b``; None when neither is a file.
    ``isfile`` (here and below) answers the probes: ``dependencies`` records them."""
    parts = [p for p in dotted_name.split(".") if p]
    if not parts:
        return None
    stem = os.path.join(directory, *parts)
    for candidate in (stem + ".py", os.path.join(stem, "__init__.py")):
        if isfile(candidate):
            return candidate
    return None


def search_roots(directory: str, isfile=os.path.isfile) -> List[str]:
    """Where absolute imports of a file in ``directory`` are looked for: the folder itself and, when it is
    inside packages, the folder holding the outermost one."""
    roots = [directory]
    top = directory
    while isfile(os.path.join(top, "__init__.py")):
        parent = os.path.dirname(top)
        if parent == top:
            break
        top = parent
    if top != directory:
        roots.append(top)
    return roots


def find_module(name: str, directory: str, isfile=os.path.isfile) -> Optional[str]:
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
            return init if isfile(init) else None
        return module_file(base, rest, isfile)
    for root in search_roots(directory, isfile):
        found = module_file(root, rest, isfile)
        if found is not None:
            return found
    return None


NOT_A_FILE, A_FILE, ITSELF, ABSENT = 0, 1, 2, 3  # what a probed path was (``dependencies``); a module read: its ``Content``

Content = Tuple[int, int, str]  # (modification time in ns, size, blake2b digest of the bytes)


def content(path: str) -> Optional[Content]:
    """The stamp and digest of the regular file ``path`` (not a link: a module reached through a link is
    read from the folder the link leads to, which a stamp of the path cannot follow); None otherwise."""
    import hashlib
    import stat as stat_module

    try:
        st = os.lstat(path)
        if not stat_module.S_ISREG(st.st_mode):
            return None
        with open(path, "rb") as f:
            digest = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, digest


def dependencies(source: str, path: Optional[str]) -> Optional[Dict[str, object]]:
    """Every path whose state the model's reading of a source's project depends on (``Project``: its
    imports, and theirs one re-export deep), as it is now: a module file the model may read, its
    ``Content``; the linted file itself reached by an import, ``ITSELF`` (the model stops there); every
    other path probed while resolving names, ``A_FILE`` or ``NOT_A_FILE`` (a module created later, an
    ``__init__.py`` that makes another search root, change the answer), or instead of all the paths below a
    missing folder, that folder: ``ABSENT`` (nothing there). Empty for a source that imports
    nothing; None when a module is reached through a symbolic link (what it depends on is not a path's
    state). What a cached result of this source depends on besides its own text."""
    directory = base_directory(path)
    me = os.path.realpath(path) if path and not path.startswith("<") else None
    out: Dict[str, object] = {}
    probed: Dict[str, bool] = {}

    def isfile(candidate: str) -> bool:
        found = probed.get(candidate)
        if found is None:
            found = probed[candidate] = os.path.isfile(candidate)
            if found:
                out[candidate] = A_FILE
            else:  # the outermost folder above it that is missing stands for it (and for all below)
                missing, folder = candidate, os.path.dirname(candidate)
                while folder != directory and not os.path.exists(folder) and os.path.dirname(folder) != folder:
                    missing, folder = folder, os.path.dirname(folder)
                out.setdefault(missing, ABSENT if missing != candidate or not os.path.exists(candidate) else NOT_A_FILE)
        return found

    todo: List[Tuple[str, str, int]] = [(n, directory, 1) for n in _imported(source)]
    seen: Set[Tuple[str, str, int]] = set()
    followed: Set[str] = set()  # modules whose own imports were followed
    while todo:
        name, where, hops = todo.pop()
        if (name, where, hops) in seen:
            continue
        seen.add((name, where, hops))
        found = find_module(name, where, isfile)
        if found is None or out.get(found) == ITSELF:
            continue
        if out.get(found) == A_FILE:
            real = os.path.realpath(found)
            if real == me:
                out[found] = ITSELF
                continue
            state = content(found) if not os.path.islink(found) else None
            if state is None:
                return None
            out[found] = state
        if hops > 0 and found not in followed:
            followed.add(found)
            try:
                with open(found, "rb") as f:
                    data = f.read(MAX_MODULE_BYTES + 1)
            except OSError:
                continue
            if len(data) <= MAX_MODULE_BYTES:  # the model does not read a larger one
                todo.extend((n, os.path.dirname(os.path.realpath(found)), hops - 1) for n in _imported(data.decode("utf-8", "replace")))
    return out


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


__all__ = ["ABSENT", "A_FILE", "Content", "ITSELF", "MAX_MODULE_BYTES", "NOT_A_FILE", "Stamp", "base_directory", "content", "dependencies", "find_module", "module_file", "search_roots", "stamp"]
