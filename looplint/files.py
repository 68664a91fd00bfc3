"""Which files to lint: walk the paths given on the command line like ruff does.

* Directories are searched recursively for ``*.py``, ``*.pyi`` and ``*.ipynb``.
* Hidden directories, ``__pycache__`` and virtualenvs (any directory holding a ``pyvenv.cfg``) are always
  skipped; so is whatever the governing configuration's ``exclude`` (default: ``.git``, ``venv``, ``.venv``,
  ``build``, ``dist``, ``node_modules``, ...) and ``extend-exclude`` globs match.
* A path named on the command line is always linted, whatever its suffix or the excludes say, unless
  ``--force-exclude`` is given.
* A path that does not exist is returned in ``missing``; the command line reports it as an ``LL000``
  diagnostic (like ruff's ``E902``) and lints the rest.

The result is sorted and free of duplicates, so output order never depends on the file system.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, List, Sequence

from looplint.config import Settings

SUFFIXES = (".py", ".pyi", ".ipynb")
ALWAYS_SKIPPED = ("__pycache__",)


@dataclass
class Discovery:
    files: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)


def is_lintable(name: str) -> bool:
    return name.endswith(SUFFIXES)


def _is_virtualenv(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "pyvenv.cfg"))


def _skip_directory(path: str, name: str, settings: Settings) -> bool:
    return (
        name.startswith(".")
        or name in ALWAYS_SKIPPED
        or _is_virtualenv(path)
        or settings.is_excluded(path)
    )


def discover(
    paths: Sequence[str], settings_for: Callable[[str], Settings], force_exclude: bool = False
) -> Discovery:
    """The files to lint under ``paths``. ``settings_for(path)`` gives the settings governing a path."""
    found = {}  # absolute path -> the path as it will be shown (first spelling seen)
    missing = []
    for root in paths:
        if not os.path.exists(root):
            missing.append(root)
            continue
        if force_exclude and settings_for(root).is_excluded_with_parents(root):
            continue
        if not os.path.isdir(root):
            found.setdefault(os.path.abspath(root), os.path.normpath(root))
            continue
        for directory, dirnames, filenames in os.walk(root):
            kept = []
            for name in dirnames:
                sub = os.path.join(directory, name)
                if not _skip_directory(sub, name, settings_for(sub)):
                    kept.append(name)
            dirnames[:] = sorted(kept)
            if not filenames:
                continue
            settings = settings_for(directory)
            for name in filenames:
                if is_lintable(name):
                    path = os.path.join(directory, name)
                    if not settings.is_excluded(path):
                        found.setdefault(os.path.abspath(path), os.path.normpath(path))
    return Discovery(sorted(found.values()), sorted(set(missing), key=missing.index))
