"""Which files to lint: walk the paths given on the command line like ruff does.

* Directories are searched recursively for ``*.py``, ``*.pyi`` and ``*.ipynb``.
* Hidden directories, ``__pycache__`` and virtualenvs (any directory holding a ``pyvenv.cfg``) are always
  skipped; so is whatever the governing configuration's ``exclude`` (default: ``.git``, ``venv``, ``.venv``,
  ``build``, ``dist``, ``node_modules``, ...) and ``extend-exclude`` globs match.
* Unless ``respect-gitignore = false`` (``--no-respect-gitignore``), what ``.gitignore``, ``.ignore``,
  ``.git/info/exclude`` and git's global excludes file ignore is skipped too (``looplint.ignore``).
* A path named on the command line is always linted, whatever its suffix or the excludes say, unless
  ``--force-exclude`` is given.
* Only regular files are linted. A path named on the command line that cannot be linted (it does not exist,
  it is a dangling symbolic link or a loop of them, a FIFO, a device, a socket) is returned in ``unreadable``
  with the reason; the command line reports it as an ``LL000`` diagnostic (like ruff's ``E902``) and lints
  the rest. Such entries met while walking a folder are reported the same way only when they look like a
  file to lint (a dangling ``train.py`` link); FIFOs and devices there are passed over, never opened.
* One file reached under several names (a symbolic link, a path through a link to a folder) is linted once,
  under the first name seen.

The result is sorted and free of duplicates, so output order never depends on the file system.

``read_regular`` is how every file is read: a regular file only (a FIFO would block forever, ``/dev/zero``
never ends), and at most a given number of bytes (``MAX_SOURCE_BYTES`` for Python source).
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

from looplint.config import Settings
from looplint.ignore import IgnoreFiles

SUFFIXES = (".py", ".pyi", ".ipynb")
ALWAYS_SKIPPED = ("__pycache__",)

MAX_SOURCE_BYTES = 1 << 20  # 1 MiB: parsing costs up to 2.5 GB of memory per MB of source
MAX_NOTEBOOK_BYTES = 32 << 20  # a notebook's JSON, outputs included (its code is held to MAX_SOURCE_BYTES)


class NotRegularFile(OSError):
    """The path is a FIFO, a device, a socket or a folder: reading it could block or never end."""


class TooLarge(OSError):
    def __init__(self, size: int) -> None:
        super().__init__(f"larger than the limit: {size} bytes")
        self.size = size


_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def size_text(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size / 1024:.0f} KiB"


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of the regular file ``path``; ``NotRegularFile`` for anything else (checked on the open
    descriptor, which a FIFO does not block on), ``TooLarge`` beyond ``limit`` bytes."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"not a regular file ({file_kind(st.st_mode)})")
        if st.st_size > limit:
            raise TooLarge(st.st_size)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew since fstat
        raise TooLarge(len(data))
    return data


@dataclass
class Discovery:
    files: List[str] = field(default_factory=list)
    unreadable: List[Tuple[str, str]] = field(default_factory=list)  # (path as given, the reason)


def is_notebook(path: str) -> bool:
    return path.lower().endswith(".ipynb")


def is_lintable(name: str) -> bool:
    return name.endswith(SUFFIXES)


def _is_virtualenv(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "pyvenv.cfg"))


def _skip_directory(path: str, name: str, settings: Settings, ignored: IgnoreFiles) -> bool:
    return (
        name.startswith(".")
        or name in ALWAYS_SKIPPED
        or _is_virtualenv(path)
        or settings.is_excluded(path)
        or (settings.respect_gitignore and ignored.is_ignored(path, is_dir=True))
    )


def _identity(path: str):
    """What makes two names one file: the device and inode it resolves to (or its real path)."""
    try:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    except OSError:
        return os.path.realpath(path)


def _unreadable_reason(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError as e:
        if os.path.islink(path) and e.errno == errno.ENOENT:
            return "broken symbolic link"
        return e.strerror or str(e)
    return f"not a regular file ({file_kind(st.st_mode)})"


def discover(
    paths: Sequence[str], settings_for: Callable[[str], Settings], force_exclude: bool = False
) -> Discovery:
    """The files to lint under ``paths``. ``settings_for(path)`` gives the settings governing a path."""
    ignored = IgnoreFiles()
    found: Dict[object, str] = {}  # file identity -> the path as it will be shown (first spelling seen)
    unreadable: Dict[object, Tuple[str, str]] = {}

    def add(path: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            found.setdefault((st.st_dev, st.st_ino), os.path.normpath(path))
        else:
            unreadable.setdefault(os.path.realpath(path), (path, _unreadable_reason(path)))

    for root in paths:
        if not os.path.exists(root):  # missing, a dangling link, a loop of links
            unreadable.setdefault(os.path.realpath(root), (root, _unreadable_reason(root)))
            continue
        if force_exclude and settings_for(root).is_excluded_with_parents(root):
            continue
        if not os.path.isdir(root):
            add(root)
            continue
        for directory, dirnames, filenames in os.walk(root):
            kept = []
            for name in dirnames:
                sub = os.path.join(directory, name)
                if not _skip_directory(sub, name, settings_for(sub), ignored):
                    kept.append(name)
            dirnames[:] = sorted(kept)
            if not filenames:
                continue
            settings = settings_for(directory)
            for name in filenames:
                if is_lintable(name):
                    path = os.path.join(directory, name)
                    if settings.is_excluded(path) or (settings.respect_gitignore and ignored.is_ignored(path, False)):
                        continue
                    if os.path.isfile(path):
                        add(path)
                    elif os.path.islink(path) and not os.path.exists(path):
                        add(path)  # a dangling link named like a file to lint: reported once
    return Discovery(sorted(found.values()), sorted(unreadable.values()))
