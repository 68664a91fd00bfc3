"""The results cache: a file's diagnostics, keyed by what they depend on.

An entry's key is a hash of

* this looplint: its version and a fingerprint of its own source files (their names, sizes and modification
  times: an edited rule or model module is another looplint),
* the settings that reach the engine: the rule codes linted for the file, and whether it is a notebook,
* the file's content (its bytes),
* for a file that may train (``relevance.TRAINING_TOKENS``), the modules of the project it imports, which the
  model reads (``looplint.model.project``): each one's path, modification time and size, and the names that
  resolve to no file yet. Editing a sibling module, or creating one the file imports, is another key.

Diagnostics do not depend on a file's name beyond that, so an entry holds them without the path and a hit
gets the path it was looked up with. Entries live below the cache folder (default ``.looplint_cache`` in
the current folder; ``--cache-dir``, ``$LOOPLINT_CACHE_DIR``), which carries a ``CACHEDIR.TAG`` (backup
tools skip it) and a ``.gitignore``; ``looplint clean`` removes it. ``--no-cache`` (or ``$LOOPLINT_NO_CACHE``)
lints without it.

Concurrent runs and interrupted writes are safe: an entry is written to a temporary file in its own folder
and renamed into place (``os.replace`` is atomic), so a reader sees a whole entry or none; an entry that
cannot be read or does not decode (a truncated file left by a crash, a disk error) is a miss. Nothing the
cache cannot do (a read-only folder, a full disk) fails a run: looplint then lints without it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Iterable, List, Optional, Sequence

from looplint.diagnostics import Diagnostic

DEFAULT_DIR = ".looplint_cache"
ENV_DIR = "LOOPLINT_CACHE_DIR"
NO_CACHE_ENV = "LOOPLINT_NO_CACHE"  # set (not "0"): as --no-cache
FORMAT = "v1"  # the layout of entries; a change makes earlier entries unreachable
TAG_NAME = "CACHEDIR.TAG"
TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by looplint.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)

_FIELDS = ("line", "column", "code", "message", "name", "end_line", "end_column", "cell", "noqa_row")


class CacheError(Exception):
    """``looplint clean`` was asked to remove something that is not a looplint cache."""


def default_directory() -> str:
    return os.environ.get(ENV_DIR) or DEFAULT_DIR


def engine_fingerprint() -> str:
    """Names this looplint: its version and the name, size and modification time of every source file of
    the package and its rules."""
    import looplint
    import looplint.rules

    h = hashlib.blake2b(digest_size=16)
    h.update(f"{looplint.__version__}\0{FORMAT}\0".encode())
    for package in (looplint, looplint.rules):
        for root in package.__path__:
            for directory, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for name in sorted(filenames):
                    if name.endswith(".py"):
                        st = os.stat(os.path.join(directory, name))
                        h.update(f"{os.path.relpath(os.path.join(directory, name), root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


class Cache:
    """The entries of one looplint (``engine_fingerprint``) below ``directory``."""

    def __init__(self, directory: str, fingerprint: Optional[str] = None) -> None:
        self.directory = directory
        self.fingerprint = fingerprint or engine_fingerprint()
        self._entries = os.path.join(directory, FORMAT, self.fingerprint)
        self._prepared = False
        self.writable = True

    def key(self, data: bytes, codes: Sequence[str], notebook: bool, path: Optional[str] = None) -> str:
        """The entry of a file's content, rules and kind; with ``path``, also of the project modules it
        imports (see the module docstring)."""
        h = hashlib.blake2b(digest_size=20)
        h.update(("nb" if notebook else "py").encode() + b"\0" + ",".join(codes).encode() + b"\0")
        h.update(data)
        if path is not None:
            for module, stamp in imported_modules(data, path, notebook):
                h.update(f"\0{module}\0{stamp}".encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def _path(self, key: str) -> str:
        return os.path.join(self._entries, key[:2], key)

    def get(self, key: str, path: str) -> Optional[List[Diagnostic]]:
        """The diagnostics stored under ``key``, for the file ``path``; None when there are none (a miss)."""
        try:
            with open(self._path(key), "rb") as f:
                rows = json.loads(f.read())
            return [Diagnostic(path, **dict(zip(_FIELDS, row)), fix=_fix(row[len(_FIELDS):])) for row in rows]
        except (OSError, ValueError, TypeError):
            return None

    def put(self, key: str, diagnostics: Iterable[Diagnostic]) -> None:
        """Stores the diagnostics under ``key``: whole or not at all, never failing the run."""
        if not self.writable:
            return
        data = json.dumps([[getattr(d, f) for f in _FIELDS] + ([[d.fix.title, d.fix.applicability]] if d.fix is not None else [])
                           for d in diagnostics], separators=(",", ":")).encode()
        target = self._path(key)
        try:
            self._prepare()
            folder = os.path.dirname(target)
            os.makedirs(folder, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(temporary, target)
            except BaseException:
                _remove(temporary)
                raise
        except OSError:
            self.writable = False  # a read-only folder, a full disk: lint without storing

    def _prepare(self) -> None:
        if self._prepared:
            return
        os.makedirs(self.directory, exist_ok=True)
        for name, text in ((TAG_NAME, TAG), (".gitignore", "# Created by looplint.\n*\n")):
            path = os.path.join(self.directory, name)
            if not os.path.exists(path):
                fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(temporary, path)
        self._prepared = True


def imported_modules(data: bytes, path: str, notebook: bool):
    """(module path, stamp) of every project module a file's model may read (``imports.dependencies``);
    none for a file that cannot train."""
    from looplint.relevance import TRAINING_TOKENS

    text = data.decode("utf-8", "replace")  # enough to read import statements
    if notebook:
        text = _notebook_code(text)
    if TRAINING_TOKENS.search(text) is None:
        return []
    from looplint.imports import dependencies

    return dependencies(text, path)


def _notebook_code(text: str) -> str:
    """A notebook's code cells, each one that parses on its own (IPython magics and shell lines dropped)."""
    import ast

    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError, RecursionError):
        return ""
    out = []
    for cell in cells if isinstance(cells, list) else []:
        source = cell.get("source", "") if isinstance(cell, dict) and cell.get("cell_type", "code") == "code" else ""
        source = "".join(source) if isinstance(source, list) else source
        if not isinstance(source, str):
            continue
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        out.append(code)
    return "\n".join(out)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def is_cache_directory(directory: str) -> bool:
    """Whether ``directory`` is a looplint cache (it holds looplint's ``CACHEDIR.TAG``)."""
    try:
        with open(os.path.join(directory, TAG_NAME), encoding="utf-8") as f:
            text = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return text.startswith("Signature: 8a477f597d28d172789f06886806bc55") and "looplint" in text


def clean(directory: str) -> bool:
    """Removes the cache folder ``directory``; False if there is none. ``CacheError`` if it is a folder
    that is not a looplint cache (it is left alone)."""
    if not os.path.lexists(directory):
        return False
    if os.path.islink(directory) or not os.path.isdir(directory) or not is_cache_directory(directory):
        raise CacheError(f"{directory} is not a looplint cache (no looplint CACHEDIR.TAG in it); not removed")
    try:
        shutil.rmtree(directory)
    except OSError as e:
        raise CacheError(f"cannot remove {directory}: {e.strerror or e}") from None
    return True


def _fix(rest):
    """A stored fix's title and applicability (what reports show; its edits are made again by ``--fix``)."""
    if not rest:
        return None
    from looplint.diagnostics import Fix

    title, applicability = rest[0]
    return Fix(title, applicability)
