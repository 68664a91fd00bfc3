"""Where a file's imports lead: the Python source files of the same project that ``import`` statements name.

Only the standard library is used here: the model's project service (``looplint.model.project``) resolves
the names it reads with these rules, and the results cache (``looplint.cache``) checks the paths a result
depended on without importing libcst or the model.

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

import os
from typing import List, Optional, Tuple

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
    ``isfile`` (here and below) answers the probes: the model's project service records them."""
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


# What a path a result depends on was (``cache.Cache.recorded``): a probed path that was not a file, one that
# was, a module that was gone when the model looked (2 was the linted file itself, no longer recorded); a
# module read: its ``Content``
NOT_A_FILE, A_FILE, ABSENT = 0, 1, 3

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


__all__ = ["ABSENT", "A_FILE", "Content", "MAX_MODULE_BYTES", "NOT_A_FILE", "Stamp", "base_directory", "content", "find_module", "module_file", "search_roots", "stamp"]
