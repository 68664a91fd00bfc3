"""Ignore files, honoured while walking folders the way ruff (and ripgrep) honour them.

* ``.gitignore`` files inside a git repository (a folder holding ``.git``, searched upward), from the
  repository's top folder down to the file's folder, the repository's ``.git/info/exclude`` and the global
  excludes file (``git config core.excludesFile``, by default ``$XDG_CONFIG_HOME/git/ignore``).
* ``.ignore`` files in the file's folder and every folder above it, in a repository or not.

Patterns are git's (``gitwildmatch``), matched by ``pathspec``. Precedence follows ripgrep: a match in any
``.ignore`` beats one in any ``.gitignore``, which beats ``info/exclude``, which beats the global file; among
files of one kind the deepest folder's decides; within a file the last matching pattern wins, and
``!pattern`` re-includes.
A folder that is ignored is not entered, so nothing below it can be re-included (as in git).

Only what is met while walking a folder is subject to these files: a path named on the command line is
always linted.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import pathspec

IGNORE_FILES = (".gitignore", ".ignore")  # in increasing precedence within one folder
MAX_IGNORE_BYTES = 1 << 20

# (the folder the patterns are relative to, the compiled patterns)
Layer = Tuple[str, "pathspec.GitIgnoreSpec"]


def _read_patterns(path: str) -> Optional["pathspec.GitIgnoreSpec"]:
    from looplint.files import read_regular

    try:
        data = read_regular(path, MAX_IGNORE_BYTES)
    except OSError:
        return None  # missing, unreadable, a FIFO or too large: as if it were not there
    lines = data.decode("utf-8", errors="replace").splitlines()
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception:  # noqa: BLE001 - a pattern pathspec cannot compile: git would ignore the file too
        return None


def _git_dir(folder: str) -> Optional[str]:
    """The git directory of a repository whose top folder is ``folder`` (``.git`` as a folder, or a
    ``.git`` file pointing at one, as in a worktree or a submodule)."""
    dot_git = os.path.join(folder, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    if os.path.isfile(dot_git):
        try:
            with open(dot_git, encoding="utf-8", errors="replace") as f:
                first = f.readline().strip()
        except OSError:
            return None
        if first.startswith("gitdir:"):
            target = first[len("gitdir:"):].strip()
            return os.path.normpath(os.path.join(folder, target))
    return None


def global_excludes_file(cwd: Optional[str] = None) -> Optional[str]:
    """git's global excludes file: ``core.excludesFile`` if set, else ``$XDG_CONFIG_HOME/git/ignore``."""
    try:
        proc = subprocess.run(
            ["git", "config", "--path", "--get", "core.excludesFile"],
            cwd=cwd, capture_output=True, text=True, timeout=10,
        )
        configured = proc.stdout.strip() if proc.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError, ValueError):
        configured = ""
    if configured:
        return os.path.expanduser(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "git", "ignore")


@dataclass(frozen=True)
class _Chain:
    """The ignore files that apply in one folder, shallowest first."""

    top: Optional[str] = None  # the top folder of the repository holding the folder
    ignores: Tuple[Layer, ...] = ()
    gitignores: Tuple[Layer, ...] = ()


class IgnoreFiles:
    """Answers "is this path ignored?" for paths met while walking; reads each ignore file once."""

    def __init__(self) -> None:
        self._chains: Dict[str, _Chain] = {}
        self._repositories: Dict[str, Tuple[Layer, ...]] = {}  # top folder -> info/exclude, global file
        self._global: Optional[Tuple[Layer, ...]] = None

    def is_ignored(self, path: str, is_dir: bool) -> bool:
        path = os.path.abspath(path)
        chain = self._chain(os.path.dirname(path))
        repository = self._repository_layers(chain.top) if chain.top is not None else ()
        # ripgrep's order: any `.ignore` beats any `.gitignore`, which beats info/exclude, then the global
        # file; among files of one kind the deepest folder's decides.
        for layers in (chain.ignores, chain.gitignores, repository):
            for base, spec in reversed(layers):
                relative = os.path.relpath(path, base).replace(os.sep, "/")
                if relative.startswith("../"):
                    continue
                result = spec.check_file(relative + "/" if is_dir else relative)
                if result.include is not None:
                    return bool(result.include)
        return False

    def _chain(self, folder: str) -> _Chain:
        found = self._chains.get(folder)
        if found is not None:
            return found
        parent = os.path.dirname(folder)
        outer = self._chain(parent) if parent != folder else _Chain()
        top, gitignores = outer.top, outer.gitignores
        if _git_dir(folder) is not None:  # a repository starts here: the outer one's .gitignore stops
            top, gitignores = folder, ()
        ignores = outer.ignores + self._own(folder, ".ignore")
        if top is not None:  # git reads .gitignore only inside a repository
            gitignores = gitignores + self._own(folder, ".gitignore")
        chain = _Chain(top, ignores, gitignores)
        self._chains[folder] = chain
        return chain

    @staticmethod
    def _own(folder: str, name: str) -> Tuple[Layer, ...]:
        spec = _read_patterns(os.path.join(folder, name))
        return () if spec is None else ((folder, spec),)

    def _repository_layers(self, top: str) -> Tuple[Layer, ...]:
        """The global excludes file, then info/exclude (lowest precedence first, like every layer list)."""
        if top not in self._repositories:
            if self._global is None:
                found = global_excludes_file(top)
                spec = _read_patterns(found) if found else None
                self._global = () if spec is None else ((top, spec),)
            git_dir = _git_dir(top)
            exclude = _read_patterns(os.path.join(git_dir, "info", "exclude")) if git_dir else None
            own = () if exclude is None else ((top, exclude),)
            self._repositories[top] = tuple((top, spec) for _, spec in self._global) + own
        return self._repositories[top]
