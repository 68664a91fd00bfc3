"""Configuration: ``[tool.looplint]`` in ``pyproject.toml``, or top-level keys in ``looplint.toml`` /
``.looplint.toml``, resolved the way ruff resolves its configuration.

* The closest configuration file to a linted path wins (searching upward from the path); files are never
  merged. A ``pyproject.toml`` without a ``[tool.looplint]`` table does not count. In one directory
  ``.looplint.toml`` beats ``looplint.toml`` beats ``pyproject.toml``.
* ``--config PATH`` forces one file for every path; ``--isolated`` ignores every file.
* Globs (``exclude``, ``extend-exclude``, ``per-file-ignores``) resolve relative to the file's directory and
  are matched with ruff's semantics (``wcmatch``): against the absolute path and the basename, ``*`` matches
  any characters (``/`` included, as in ruff), ``**/`` zero or more folders (``experiments/**/*.py`` matches
  ``experiments/a.py``), ``{a,b}`` either, ``!`` in front negates.
* Options from the command line (``--config 'key = value'``, ``--extend-exclude``, ``--per-file-ignores``,
  ``--no-respect-gitignore``) are ``Overrides`` applied on top of every resolved configuration; their globs
  resolve relative to the working directory.
* Rule selection is layered like ruff's: the configuration file is one layer, the command line another on top
  of it. A layer with ``select`` starts afresh; ``extend-select`` adds; ``ignore`` removes. Within a layer the
  most specific selector wins (``LL101`` beats ``LL1`` beats ``LL`` beats ``ALL``); on a tie ``ignore`` wins.
* ``LL000`` (a file that cannot be read or parsed) is always reported unless ``LL000`` itself is ignored.

Every mistake in a configuration file (bad TOML, an unknown key, a wrong type, an unknown rule code) raises
``ConfigError`` naming the key or code and the file; the command line turns it into exit status 2.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

from wcmatch import fnmatch as wc
from wcmatch import glob as wcglob

from looplint.rule import PARSE_ERROR, rule_codes

CONFIG_FILES = (".looplint.toml", "looplint.toml", "pyproject.toml")

KNOWN_KEYS = (
    "select", "ignore", "extend-select", "per-file-ignores", "exclude", "extend-exclude", "respect-gitignore",
)

# Directories and files never worth linting (ruff's list, plus ``build``); ``exclude`` replaces it,
# ``extend-exclude`` adds to it. Hidden directories, virtualenvs and ``__pycache__`` are always skipped.
DEFAULT_EXCLUDE = (
    ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints", ".mypy_cache", ".nox",
    ".pants.d", ".pyenv", ".pytest_cache", ".pytype", ".ruff_cache", ".svn", ".tox", ".venv", ".vscode",
    "__pypackages__", "_build", "buck-out", "build", "dist", "node_modules", "site-packages", "venv",
)


class ConfigError(Exception):
    """A problem with the configuration or the rule selection; the message names the key/code and file."""


def known_codes() -> List[str]:
    """Every code a selector may name: the registered rules plus ``LL000``."""
    return [PARSE_ERROR] + rule_codes()


def _specificity(selector: str) -> int:
    return 0 if selector == "ALL" else len(selector)


def _matches(selector: str, code: str) -> bool:
    return selector == "ALL" or code.startswith(selector)


def normalize_selectors(values: Iterable[str], where: str) -> List[str]:
    """Upper-cases and validates rule selectors (``ALL``, ``LL``, a code prefix or a full code)."""
    codes = known_codes()
    out = []
    for raw in values:
        sel = raw.strip().upper()
        if not sel:
            continue
        if sel != "ALL" and not any(c.startswith(sel) for c in codes):
            hint = difflib.get_close_matches(sel, [c for c in codes if c != PARSE_ERROR], n=1, cutoff=0.8)
            extra = f" (did you mean `{hint[0]}`?)" if hint else ""
            raise ConfigError(f"unknown rule selector `{raw.strip()}` in {where}{extra}")
        out.append(sel)
    return out


@dataclass(frozen=True)
class Selection:
    """One layer of rule selection (a configuration file, or the command line)."""

    select: Optional[Tuple[str, ...]] = None
    extend_select: Tuple[str, ...] = ()
    ignore: Tuple[str, ...] = ()

    def apply(self, enabled: set, codes: Sequence[str]) -> set:
        base = set() if self.select is not None else set(enabled)
        selectors = list(self.select or ()) + list(self.extend_select)
        out = set()
        for code in codes:
            if code == PARSE_ERROR:
                keep = (code in enabled or self.select is not None) and PARSE_ERROR not in self.ignore
                if keep:
                    out.add(code)
                continue
            best_sel = max((_specificity(s) for s in selectors if _matches(s, code)), default=-1)
            best_ign = max((_specificity(s) for s in self.ignore if _matches(s, code)), default=-1)
            if best_sel > best_ign:
                out.add(code)
            elif best_ign < 0 and code in base:
                out.add(code)
        return out


_GLOB_FLAGS = wc.BRACE | wc.DOTMATCH | wc.FORCEUNIX
_REPEATED_GLOBSTAR = re.compile(r"(?:\*\*/)+")
_GLOBSTAR_DIRS = re.compile(r"(^|/)\*\*/")
_TRAILING_GLOBSTAR = re.compile(r"/\*\*$")


def ruff_glob(glob: str) -> str:
    """A glob with ruff's (globset's) meaning of ``**`` as a ``wcmatch.fnmatch`` pattern, whose ``*`` already
    crosses ``/`` like ruff's: a ``**/`` component is zero or more folders (``{,*/}``), a trailing ``/**``
    everything below."""
    glob = _REPEATED_GLOBSTAR.sub("**/", glob)
    glob = _GLOBSTAR_DIRS.sub(lambda m: m.group(1) + "{,*/}", glob)
    return _TRAILING_GLOBSTAR.sub("/*", glob)


@functools.lru_cache(maxsize=4096)
def _matcher(glob: str):
    """The compiled form of a glob (compiling costs ~0.2 ms; discovery matches every folder and file)."""
    return wc.compile([ruff_glob(glob)], flags=_GLOB_FLAGS)


@dataclass(frozen=True)
class Pattern:
    """A glob from a configuration file, matched like ruff: against the basename and the absolute path."""

    glob: str
    root: str
    negated: bool = False

    @classmethod
    def parse(cls, glob: str, root: str) -> "Pattern":
        negated = glob.startswith("!")
        body = glob[1:] if negated else glob
        body = body.rstrip("/\\") or body
        return cls(body, root, negated)

    @functools.cached_property
    def absolute(self) -> str:
        glob = _posix(os.path.expanduser(self.glob))
        if os.path.isabs(glob):
            return glob
        return wcglob.escape(_posix(os.path.abspath(self.root))).rstrip("/") + "/" + _posix(glob)

    def matches(self, path: str) -> bool:
        absolute = _posix(os.path.abspath(path))
        hit = _matcher(self.glob).match(os.path.basename(absolute)) or _matcher(self.absolute).match(absolute)
        return hit != self.negated

    def __str__(self) -> str:
        return ("!" if self.negated else "") + self.glob


def _posix(path: str) -> str:
    return path.replace(os.sep, "/") if os.sep != "/" else path


@dataclass(frozen=True)
class Settings:
    """The effective settings for the paths one configuration file governs."""

    path: Optional[str] = None  # the configuration file, None for the defaults
    root: str = field(default_factory=os.getcwd)  # globs resolve relative to this directory
    selection: Selection = Selection()
    per_file_ignores: Tuple[Tuple[Pattern, Tuple[str, ...]], ...] = ()
    exclude: Tuple[Pattern, ...] = ()
    extend_exclude: Tuple[Pattern, ...] = ()
    respect_gitignore: bool = True

    def is_excluded(self, path: str) -> bool:
        return self._exclusion(path)

    @cached_property
    def _exclusion(self) -> Callable[[str], bool]:
        """``exclude`` + ``extend-exclude`` compiled once: ``Pattern.matches`` of any, as one test."""
        return compile_patterns(self.exclude + self.extend_exclude)

    def is_excluded_with_parents(self, path: str) -> bool:
        """``--force-exclude``: the path or one of its folders below the configuration's root is excluded."""
        current = os.path.abspath(path)
        while current != self.root:
            if self.is_excluded(current):
                return True
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        return False

    def enabled_codes(self, path: str, cli: Selection = Selection()) -> List[str]:
        """The codes to report for ``path``: default ``ALL``, then this file's layer, the command line's,
        then the file's per-file-ignores."""
        codes, enabled = _layered(self.selection, cli)
        for pattern, selectors in self.per_file_ignores:
            if pattern.matches(path):
                enabled = Selection(ignore=selectors).apply(enabled, codes)
        return [c for c in codes if c in enabled]


@lru_cache(maxsize=64)
def _layered(selection: Selection, cli: Selection) -> Tuple[List[str], set]:
    """The known codes and those a configuration's and the command line's selections enable (computed
    once per pair: every file under one configuration shares them)."""
    codes = known_codes()
    enabled = set(codes)
    for layer in (selection, cli):
        enabled = layer.apply(enabled, codes)
    return codes, frozenset(enabled)


def compile_patterns(patterns: Sequence[Pattern]) -> Callable[[str], bool]:
    """One test for "any of ``patterns`` matches" (``Pattern.matches``): the globs that are not negated
    become two compiled matchers (basenames, absolute paths); negated ones are tested one by one."""
    plain = [p for p in patterns if not p.negated]
    negated = [p for p in patterns if p.negated]
    if not plain and not negated:
        return lambda path: False

    def either(globs):
        return wc.compile([ruff_glob(g) for g in globs], flags=_GLOB_FLAGS).match if globs else (lambda s: False)

    by_name = either([p.glob for p in plain])
    by_path = either([p.absolute for p in plain])
    abspath, basename = os.path.abspath, os.path.basename

    def matches(path: str) -> bool:
        absolute = _posix(abspath(path))
        if by_name(basename(absolute)) or by_path(absolute):
            return True
        return any(p.matches(path) for p in negated)

    return matches


def default_settings(root: Optional[str] = None) -> Settings:
    root = os.path.abspath(root or os.getcwd())
    return Settings(None, root, exclude=tuple(Pattern.parse(g, root) for g in DEFAULT_EXCLUDE))


MAX_CONFIG_BYTES = 1 << 20


def _read_toml(path: str) -> dict:
    from looplint.files import read_regular

    try:
        data = read_regular(path, MAX_CONFIG_BYTES)
    except OSError as e:  # includes a FIFO or a device, and a file over the size limit
        raise ConfigError(f"cannot read configuration file {path}: {e.strerror or e}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot parse {path}: {e}") from None
    except ValueError:  # an integer longer than Python converts (4,300 digits)
        raise ConfigError(f"cannot parse {path}: a number too long to read") from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise ConfigError(f"cannot parse {path}: values nested too deeply") from None
    except MemoryError:
        raise ConfigError(f"cannot parse {path}: too large") from None


def _table(path: str, data: dict) -> Optional[dict]:
    """The looplint table of a file: ``[tool.looplint]`` of a pyproject.toml, the whole of any other file."""
    if os.path.basename(path) != "pyproject.toml":
        return data
    tool = data.get("tool")
    if not isinstance(tool, dict) or "looplint" not in tool:
        return None
    table = tool["looplint"]
    if not isinstance(table, dict):
        raise ConfigError(f"`tool.looplint` in {path} must be a table")
    return table


def _string_list(value: object, key: str, where: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"`{key}` in {where} must be a list of strings, got {_describe(value)}")
    return list(value)


def _describe(value: object) -> str:
    names = {str: "a string", int: "an integer", float: "a float", bool: "a boolean", dict: "a table", list: "a list"}
    return names.get(type(value), type(value).__name__)


def _selectors(table: dict, key: str, where: str) -> Tuple[str, ...]:
    return tuple(normalize_selectors(_string_list(table[key], key, where), f"`{key}` of {where}"))


def _per_file_ignores(value: object, root: str, where: str) -> Tuple[Tuple[Pattern, Tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"`per-file-ignores` in {where} must be a table of glob = [codes], got {_describe(value)}")
    per_file = []
    for glob, codes in value.items():
        key = f"per-file-ignores.\"{glob}\""
        selectors = normalize_selectors(_string_list(codes, key, where), f"`{key}` of {where}")
        per_file.append((Pattern.parse(glob, root), tuple(selectors)))
    return tuple(per_file)


def _check_keys(table: dict, where: str) -> None:
    for key in table:
        if key not in KNOWN_KEYS:
            hint = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            extra = f" (did you mean `{hint[0]}`?)" if hint else ""
            raise ConfigError(f"unknown key `{key}` in {where}{extra}; known keys: {', '.join(KNOWN_KEYS)}")


def parse_fields(table: dict, root: str, where: str) -> Dict[str, object]:
    """The ``Settings`` fields (and the ``Selection`` fields ``select``, ``extend_select``, ``ignore``) that
    ``table`` sets, validated; globs relative to ``root``. Keys the table does not hold are left out."""
    _check_keys(table, where)
    fields: Dict[str, object] = {}
    for key in ("select", "extend-select", "ignore"):
        if key in table:
            fields[key.replace("-", "_")] = _selectors(table, key, where)
    if "per-file-ignores" in table:
        fields["per_file_ignores"] = _per_file_ignores(table["per-file-ignores"], root, where)
    for key in ("exclude", "extend-exclude"):
        if key in table:
            fields[key.replace("-", "_")] = tuple(Pattern.parse(g, root) for g in _string_list(table[key], key, where))
    if "respect-gitignore" in table:
        value = table["respect-gitignore"]
        if not isinstance(value, bool):
            raise ConfigError(f"`respect-gitignore` in {where} must be true or false, got {_describe(value)}")
        fields["respect_gitignore"] = value
    return fields


_SELECTION_FIELDS = ("select", "extend_select", "ignore")


def with_fields(settings: Settings, fields: Dict[str, object]) -> Settings:
    """``settings`` with the fields of ``parse_fields`` replaced."""
    selection = dataclasses.replace(settings.selection, **{k: v for k, v in fields.items() if k in _SELECTION_FIELDS})
    rest = {k: v for k, v in fields.items() if k not in _SELECTION_FIELDS}
    return dataclasses.replace(settings, selection=selection, **rest)


def parse_settings(path: str, table: dict) -> Settings:
    """Validates one looplint table and turns it into ``Settings`` (globs relative to the file's directory)."""
    path = os.path.abspath(path)
    root = os.path.dirname(path)
    fields = parse_fields(table, root, path)
    base = Settings(path, root, exclude=tuple(Pattern.parse(g, root) for g in DEFAULT_EXCLUDE))
    return with_fields(base, fields)


@dataclass(frozen=True)
class Overrides:
    """Settings given on the command line, applied on top of every configuration (globs relative to the
    working directory, where they were typed)."""

    fields: Dict[str, object] = field(default_factory=dict)  # from `--config 'key = value'`, as parse_fields
    extend_exclude: Tuple[Pattern, ...] = ()  # --extend-exclude adds to the configured ones
    per_file_ignores: Optional[Tuple[Tuple[Pattern, Tuple[str, ...]], ...]] = None  # --per-file-ignores replaces
    extend_per_file_ignores: Tuple[Tuple[Pattern, Tuple[str, ...]], ...] = ()
    respect_gitignore: Optional[bool] = None

    def apply(self, settings: Settings) -> Settings:
        settings = with_fields(settings, self.fields)
        per_file = settings.per_file_ignores if self.per_file_ignores is None else self.per_file_ignores
        respect = settings.respect_gitignore if self.respect_gitignore is None else self.respect_gitignore
        return dataclasses.replace(
            settings,
            extend_exclude=settings.extend_exclude + self.extend_exclude,
            per_file_ignores=per_file + self.extend_per_file_ignores,
            respect_gitignore=respect,
        )


def parse_fragment(text: str) -> Dict[str, object]:
    """``--config 'key = value'``: a TOML fragment holding looplint keys, as ``parse_fields`` returns them.
    ``tool.looplint.select = [...]`` is accepted as well as ``select = [...]``."""
    where = f"--config {text!r}"
    try:
        table = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as e:
        raise ConfigError(f"{where} is neither a configuration file nor a valid `key = value` TOML fragment: {e}") from None
    tool = table.get("tool")
    if set(table) == {"tool"} and isinstance(tool, dict) and set(tool) == {"looplint"} and isinstance(tool["looplint"], dict):
        table = tool["looplint"]
    if not table:
        raise ConfigError(f"{where} sets no key")
    return parse_fields(table, os.getcwd(), where)


def load_file(path: str) -> Settings:
    """Settings from one configuration file (used for ``--config``; a pyproject.toml without
    ``[tool.looplint]`` gives the defaults rooted at its directory)."""
    if not os.path.isfile(path):
        raise ConfigError(f"configuration file {path} does not exist")
    table = _table(path, _read_toml(path))
    if table is None:
        return default_settings(os.path.dirname(os.path.abspath(path)))
    return parse_settings(path, table)


class Resolver:
    """Finds the settings governing each path: the closest configuration file, searched upward."""

    def __init__(self, config: Optional[str] = None, isolated: bool = False, overrides: Optional[Overrides] = None):
        self._overrides = overrides or Overrides()
        self._forced: Optional[Settings] = None
        if isolated:
            self._forced = self._overrides.apply(default_settings())
        elif config is not None:
            self._forced = self._overrides.apply(load_file(config))
        self._by_dir: Dict[str, Optional[Settings]] = {}
        self._default = self._overrides.apply(default_settings())

    def for_path(self, path: str) -> Settings:
        if self._forced is not None:
            return self._forced
        path = os.path.abspath(path)
        start = path if os.path.isdir(path) else os.path.dirname(path)
        found = self._closest(start)
        return found if found is not None else self._default

    def _closest(self, directory: str) -> Optional[Settings]:
        seen = []
        current = directory
        result: Optional[Settings] = None
        while True:
            if current in self._by_dir:
                result = self._by_dir[current]
                break
            seen.append(current)
            here = self._in_directory(current)
            if here is not None:
                result = here
                break
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for d in seen:
            self._by_dir[d] = result
        return result

    def _in_directory(self, directory: str) -> Optional[Settings]:
        for name in CONFIG_FILES:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                table = _table(candidate, _read_toml(candidate))
                if table is not None:
                    return self._overrides.apply(parse_settings(candidate, table))
        return None
