"""The results cache: a file's diagnostics, keyed by what they depend on.

An entry's key is a hash of

* this looplint: its version and a fingerprint of its own source files (their names, sizes and modification
  times: an edited rule or model module is another looplint),
* the settings that reach the engine: the rule codes linted for the file, and whether it is a notebook,
* the file's content (its bytes).

A file whose model read the project around it (``looplint.model.project``: names it imports from the
project's own modules) also depends on that. Like mypy's and ruff's caches, its entry records what that was
when it was linted (``recorded``, from what the lint's project lookups did: ``engine.take_depended``): each
project module the model read (path, modification time, size and a digest of its bytes) and every other
path probed while resolving names, a file or not (``helpers.py`` or ``helpers/__init__.py`` that did not
exist, the ``__init__.py`` that make a folder a package). A lookup only stats those paths (once per path
and run): editing, deleting, renaming an imported module, or creating one that was missing, makes the
entry a miss; a module whose stamp changed but whose bytes did not is still a hit (the entry is rewritten
with the new stamp). Such an entry belongs to the file's folder (imports resolve from it): the key of the
content holds a marker that sends the lookup to the entry of (content, folder). Entries of files whose lint
read nothing of the project are shared by every copy of the content, and a hit gets the path it was looked
up with. (What a lint reads is what its result depends on: recording it costs nothing, where reading every
module a file imports, to be safe, took the parent process 1.6 s of a 7.9 s run over 666 files.)

Entries live below the cache folder (default ``.looplint_cache`` in the current folder; ``--cache-dir``,
``$LOOPLINT_CACHE_DIR``), which carries a ``CACHEDIR.TAG`` (backup tools skip it) and a ``.gitignore``;
``looplint clean`` removes it. ``--no-cache`` (or ``$LOOPLINT_NO_CACHE``) lints without it.

Concurrent runs and interrupted writes are safe: an entry is written to a temporary file in its own folder
and renamed into place (``os.replace`` is atomic), so a reader sees a whole entry or none; an entry that
cannot be read or does not decode (a truncated file left by a crash, a disk error) is a miss. A result is
stored only when the file and what it depends on did not change while it was linted. Nothing the cache
cannot do (a read-only folder, a full disk) fails a run: looplint then lints without it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat as stat_module
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence

from looplint.diagnostics import Diagnostic

DEFAULT_DIR = ".looplint_cache"
ENV_DIR = "LOOPLINT_CACHE_DIR"
NO_CACHE_ENV = "LOOPLINT_NO_CACHE"  # set (not "0"): as --no-cache
FORMAT = "v2"  # the layout of entries; a change makes earlier entries unreachable
TAG_NAME = "CACHEDIR.TAG"
TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by looplint.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)

FOLDER = "folder"  # the marker at a content's key: its entry is per folder
SETTLED_NS = 2_000_000_000  # a file changed more recently than this is not in the stat index (see Cache.indexed)

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
        self._seen = _Seen()  # the paths entries depend on, stated once per run
        self._stored: Dict[str, tuple] = {}  # path -> (key, whether it has depends) of the entry it was read from or put in
        self._index: Optional[Dict[str, list]] = None  # see ``indexed``
        self._index_changed = False

    def key(self, data: bytes, codes: Sequence[str], notebook: bool) -> str:
        """The entry of a file's content, rules and kind."""
        h = hashlib.blake2b(digest_size=20)
        h.update(("nb" if notebook else "py").encode() + b"\0" + ",".join(codes).encode() + b"\0")
        h.update(data)
        return h.hexdigest()

    # -- the stat index: a file's key without reading it ------------------------------------------------------
    # A warm run's cost is reading and hashing every file. The index remembers, per file, the key its content
    # had together with the file's size, inode, modification and change times (the change time cannot be set
    # by hand, and any write sets it); a file whose stat is as recorded has that content. A file is recorded
    # only once its change time is ``SETTLED_NS`` in the past, so that two writes within one tick of a coarse
    # clock cannot leave a stale record. The index is a hint: a record that is not matched is ignored. (On
    # Windows ``st_ctime`` is the creation time: there a rewrite that keeps the size and sets the modification
    # time back by hand goes unseen, as it does for tools that trust modification times.)

    def _index_path(self) -> str:
        return os.path.join(self._entries, "index.json")

    def _load_index(self) -> Dict[str, list]:
        if self._index is None:
            try:
                with open(self._index_path(), "rb") as f:
                    loaded = json.loads(f.read())
                self._index = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._index = {}
        return self._index

    @staticmethod
    def _index_key(path: str, codes: Sequence[str], notebook: bool) -> str:
        return f"{os.path.abspath(path)}\0{'nb' if notebook else 'py'}\0{','.join(codes)}"

    def indexed(self, path: str, st, codes: Sequence[str], notebook: bool) -> Optional[str]:
        """The key of the file at ``path`` (stat ``st``) as the index recorded it, if its stat is unchanged."""
        record = self._load_index().get(self._index_key(path, codes, notebook))
        if isinstance(record, list) and len(record) == 5 and record[:4] == stat_stamp(st):
            return record[4]
        return None

    def note(self, path: str, st, codes: Sequence[str], notebook: bool, key: str, now_ns: int) -> None:
        """Records that the file at ``path`` had stat ``st`` and the content of ``key`` (read at ``now_ns``)."""
        if now_ns - st.st_ctime_ns < SETTLED_NS or now_ns - st.st_mtime_ns < SETTLED_NS:
            return
        index = self._load_index()
        name = self._index_key(path, codes, notebook)
        record = stat_stamp(st) + [key]
        if index.get(name) != record:
            index[name] = record
            self._index_changed = True

    def save_index(self) -> None:
        """Writes the index when this run changed it (whole or not at all; a concurrent run's records may be
        lost, which costs that run's files a read next time)."""
        if self._index_changed and self.writable:
            self._write_file(self._index_path(), json.dumps(self._index, separators=(",", ":")).encode())
            self._index_changed = False

    def _path(self, key: str) -> str:
        return os.path.join(self._entries, key[:2], key)

    def _read(self, key: str):
        try:
            with open(self._path(key), "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None

    def get(self, key: str, path: str) -> Optional[List[Diagnostic]]:
        """The diagnostics stored under ``key``, for the file ``path``, if what they depend on is as it was
        (see the module docstring); None when there are none (a miss)."""
        try:
            folder, depends, rows = self._read(key)
            if folder == FOLDER:
                folder = _folder(path)
                stored, depends, rows = self._read(_folder_key(key, folder))
                refreshed = self._holds(depends, path, self._seen)
                if stored != folder or refreshed is None:
                    return None
            elif folder is not None or depends:
                return None
            else:
                refreshed = False
            hit = [Diagnostic(path, **dict(zip(_FIELDS, row)), fix=_fix(row[len(_FIELDS):])) for row in rows]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None
        if refreshed:
            self.put(key, hit, path, depends)  # the same bytes under new stamps: store those
        self._stored[path] = (key, bool(depends))
        return hit

    def recorded(self, depended: Optional[tuple]) -> Optional[Dict[str, object]]:
        """What a result depends on besides its file, as entries keep it, from what the lint that made it
        probed and read (``engine.take_depended``: the model's project lookups): each probed path, a file or
        not; each module read, with its stamp and the digest of its bytes. None when that is not known, a
        module was reached through a symbolic link (a path's state cannot follow it), or one changed after
        it was read: the result is then not stored."""
        if depended is None:
            return None
        from looplint.imports import A_FILE, ABSENT, NOT_A_FILE

        probed, read = depended
        out: Dict[str, object] = {}
        for path, was_file in probed.items():
            if was_file and os.path.islink(path):
                return None
            out[path] = A_FILE if was_file else NOT_A_FILE
        for real, stamp in read.items():
            if stamp is None:  # gone when the lint looked: its return is a change
                out[real] = ABSENT
                continue
            now = self._seen.content(real)
            if now is None or (now[0], now[1]) != tuple(stamp):
                return None
            out[real] = list(now)
        return out

    def still(self, depends: Optional[Dict[str, object]], path: str) -> bool:
        """Whether what a result depends on (``depends``) is still as it was, asked afresh (after a lint)."""
        return depends is not None and self._holds(depends, path, _Seen()) is not None

    def _holds(self, depends: Dict[str, object], path: str, seen: "_Seen") -> Optional[bool]:
        """None when a path is not as ``depends`` says; else whether a module's stamp changed while its
        bytes did not (``depends`` then holds the new stamp)."""
        from looplint.imports import A_FILE, ABSENT, NOT_A_FILE

        refreshed = False
        for name, state in depends.items():
            if state == NOT_A_FILE or state == A_FILE:
                if seen.isfile(name) != (state == A_FILE):
                    return None
            elif state == ABSENT:
                if seen.exists(name):
                    return None
            else:
                mtime, size, digest = state
                st = seen.lstat(name)
                if st is None or not stat_module.S_ISREG(st.st_mode):
                    return None
                if (st.st_mtime_ns, st.st_size) != (mtime, size):
                    now = seen.content(name)
                    if now is None or now[2] != digest:
                        return None
                    depends[name] = list(now)
                    refreshed = True
        return refreshed

    def put(self, key: str, diagnostics: Iterable[Diagnostic], path: Optional[str] = None,
            depends: Optional[Dict[str, object]] = None) -> None:
        """Stores the diagnostics under ``key`` (with what they depend on, for the file ``path``): whole or
        not at all, never failing the run."""
        if not self.writable:
            return
        rows = [[getattr(d, f) for f in _FIELDS] + _fix_row(d.fix) for d in diagnostics]
        if path is not None:
            self._stored[path] = (key, bool(depends))  # not what they are: a run of many files would hold them all
        if depends:
            folder = _folder(path)
            self._write(key, [FOLDER, None, None])
            self._write(_folder_key(key, folder), [folder, depends, rows])
        else:
            self._write(key, [None, None, rows])

    def add_text_edits(self, path: str, diagnostics: Iterable[Diagnostic]) -> None:
        """Stores the text edits of the fixes of ``diagnostics`` (all of one file, each ``fix.text_edits``
        set) in the entry that file was read from or put in during this run, so that a later report need
        not make them again; nothing when it has none."""
        stored = self._stored.get(path)
        if stored is None:
            return
        key, in_folder = stored
        entry = self._read(_folder_key(key, _folder(path)) if in_folder else key)
        try:
            rows = entry[2]
            edits = {(d.code, d.cell, d.line, d.column): d.fix.text_edits for d in diagnostics}
            changed = False
            for row in rows:
                found = edits.get((row[2], row[7], row[0], row[1]))
                if found is not None and len(row) == len(_FIELDS) + 1:
                    row[len(_FIELDS)] = row[len(_FIELDS)][:2] + [[list(e) for e in found]]
                    changed = True
        except (TypeError, IndexError, AttributeError, KeyError):
            return
        if changed:
            self._write(_folder_key(key, _folder(path)) if in_folder else key, entry)

    def _write(self, key: str, entry) -> None:
        if not self.writable:
            return
        self._write_file(self._path(key), json.dumps(entry, separators=(",", ":")).encode("utf-8", "surrogatepass"))

    def _write_file(self, target: str, data: bytes) -> None:
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


class _Seen:
    """The state of the paths entries depend on, asked once each (per run)."""

    def __init__(self) -> None:
        self._stat: Dict[str, object] = {}
        self._lstat: Dict[str, object] = {}
        self._content: Dict[str, object] = {}

    @staticmethod
    def _ask(table: Dict[str, object], stat, path: str):
        st = table.get(path, False)
        if st is False:
            try:
                st = stat(path)
            except (OSError, ValueError):
                st = None
            table[path] = st
        return st

    def isfile(self, path: str) -> bool:
        st = self._ask(self._stat, os.stat, path)
        return st is not None and stat_module.S_ISREG(st.st_mode)

    def exists(self, path: str) -> bool:
        return self._ask(self._stat, os.stat, path) is not None

    def lstat(self, path: str):
        return self._ask(self._lstat, os.lstat, path)

    def content(self, path: str):
        if path not in self._content:
            from looplint.imports import content

            self._content[path] = content(path)
        return self._content[path]


def _folder(path: Optional[str]) -> str:
    from looplint.imports import base_directory

    return base_directory(path)


def _folder_key(key: str, folder: str) -> str:
    return hashlib.blake2b(f"{key}\0{folder}".encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


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


def stat_stamp(st) -> list:
    """What tells a file's content apart from the stat alone (``Cache.indexed``): size, inode, modification
    and change times."""
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def _fix_row(fix) -> list:
    if fix is None:
        return []
    if fix.text_edits is None:
        return [[fix.title, fix.applicability]]
    return [[fix.title, fix.applicability, [list(e) for e in fix.text_edits]]]


def _fix(rest):
    """A stored fix's title and applicability (what reports show; its edits are made again by ``--fix``),
    and its text edits when a report stored them (``add_text_edits``)."""
    if not rest:
        return None
    from looplint.diagnostics import Fix

    title, applicability, *more = rest[0]
    edits = tuple((int(a), int(b), int(c), int(d), str(e)) for a, b, c, d, e in more[0]) if more else None
    return Fix(title, applicability, text_edits=edits)
