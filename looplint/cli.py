"""The command line: ``looplint [check] PATH...``, ``looplint rule CODE``, ``looplint rules``, and the
optional ``looplint server`` (extra ``lsp``) and ``looplint confirm`` (extra ``runtime``).

The flow of ``check``: settings per path (``looplint.config``) -> files (``looplint.files``) -> diagnostics
per file (``looplint.notebook.lint_any``: Python or notebook, in worker processes when there are many) ->
select / ignore / per-file-ignores -> sorted -> one writer of ``looplint.report``.

``main(argv)`` returns the exit status and never lets a traceback out: 0 clean, 1 findings, 2 a usage,
configuration or internal error.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import stat as stat_module
import sys
import time
import traceback
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

import looplint
from looplint.config import ConfigError, Overrides, Resolver, Selection, Settings, normalize_selectors
from looplint.diagnostics import REPOSITORY_URL, Diagnostic
from looplint.rule import PARSE_ERROR, PARSE_ERROR_NAME
from looplint.terminal import Paint

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
ISSUES_URL = f"{REPOSITORY_URL}/issues"
DEBUG_ENV = "LOOPLINT_DEBUG"
FORMAT_ENV = "LOOPLINT_OUTPUT_FORMAT"
OUTPUT_FORMATS = ("concise", "full", "json", "json-lines", "github", "gitlab", "junit", "sarif")
PARALLEL_THRESHOLD = 16  # fewer files than this are linted in this process
PROGRESS_DELAY = 1.0  # seconds a run lasts before its progress line appears (on a terminal, not in CI)

# Subcommands provided by optional parts: (module with ``main(argv)``, extra, its third-party imports).
OPTIONAL_COMMANDS = {
    "server": ("looplint.server", "lsp", ("pygls", "lsprotocol")),
    "confirm": ("looplint.runtime.confirm", "runtime", ("torch",)),
}
SUBCOMMANDS = ("check", "rule", "rules", "clean") + tuple(OPTIONAL_COMMANDS)

CHECK_EPILOG = f"""\
commands:
  looplint [check] PATH...   lint files and directories (the default command)
  looplint rule CODE|NAME    print a rule's documentation (LL101 or missing-zero-grad; --all: every rule)
  looplint rules             list the rules (LL000 included): code, name, summary
  looplint clean             remove the cache folder (.looplint_cache, or --cache-dir DIR)
  looplint server            language server over stdio (pip install 'looplint[lsp]')
  looplint confirm PATH...   run fixtures and confirm findings dynamically (pip install 'looplint[runtime]')
  (to lint a directory named like a command, write `looplint check rules`)

files:
  Directories are searched for *.py, *.pyi and *.ipynb, skipping hidden directories, virtualenvs,
  __pycache__, the configured `exclude` (default .git, venv, .venv, build, dist, node_modules, ...) and
  `extend-exclude` globs, and what .gitignore (in a git repository), .ignore, .git/info/exclude and git's
  global excludes file ignore (--no-respect-gitignore: lint those too). Globs match like ruff's: `*` any
  characters, `**/` zero or more folders (`experiments/**/*.py` matches experiments/a.py). Files named on
  the command line are always linted unless --force-exclude. --show-files lists what would be linted.
  A path that does not exist is reported as an LL000 finding naming it (like ruff's E902): the other
  paths are still linted and the exit status is 1.

cache:
  Results are cached per file content, rule selection, looplint version and the project modules the
  file imports in .looplint_cache in the current folder (--cache-dir DIR or env LOOPLINT_CACHE_DIR
  elsewhere; --no-cache or LOOPLINT_NO_CACHE=1 to lint without it; `looplint clean` removes it). Its folder holds a CACHEDIR.TAG and a .gitignore.

configuration:
  [tool.looplint] in pyproject.toml, or looplint.toml; the closest file to each path wins. Keys: select,
  ignore, extend-select, per-file-ignores, exclude, extend-exclude, respect-gitignore. Options given here
  override it: --config 'key = value' sets one key (a TOML fragment), --extend-exclude and
  --extend-per-file-ignores add, --per-file-ignores replaces. --show-settings prints the result.

exit status:
  0  no findings (or --exit-zero)
  1  findings (including LL000: a file that cannot be read, decoded or parsed)
  2  usage or configuration error, or an internal error (set {DEBUG_ENV}=1 or pass --debug for the traceback)
"""


class UsageError(Exception):
    """A mistake on the command line: exit status 2 with the message."""


def _error(message: str) -> None:
    _to_stderr(f"looplint: error: {message}\n")


def _warn(message: str) -> None:
    _to_stderr(f"looplint: warning: {message}\n")


def _to_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
    except (AttributeError, OSError, ValueError):  # stderr closed: the exit status must do
        pass


class OutputError(Exception):
    """The report cannot be written (a full disk, a closed stdout): exit status 2 with the reason."""


# ---------------------------------------------------------------------------------------------- parsers


def _check_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Find the bugs that make a PyTorch training loop train wrongly.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories to lint (default: .); - reads stdin")
    parser.add_argument(
        "--output-format",
        metavar="FORMAT",
        default=None,
        help=f"{' | '.join(OUTPUT_FORMATS)} (default: concise; env {FORMAT_ENV})",
    )
    parser.add_argument("-o", "--output-file", metavar="PATH", help="write the report to PATH instead of stdout")
    parser.add_argument("--select", action="append", metavar="CODES", help="comma-separated codes or prefixes to enable (replaces the configured selection); ALL enables every rule")
    parser.add_argument("--extend-select", action="append", metavar="CODES", help="codes or prefixes to enable in addition")
    parser.add_argument("--ignore", action="append", metavar="CODES", help="codes or prefixes to disable")
    parser.add_argument(
        "--config", action="append", metavar="PATH|KEY=VALUE",
        help="a configuration file to use for every path (pyproject.toml or looplint.toml), or a `key = value` "
        "TOML fragment overriding a setting (e.g. --config 'ignore = [\"LL109\"]'); may be repeated",
    )
    parser.add_argument("--extend-exclude", action="append", metavar="GLOBS", help="comma-separated globs to exclude in addition to the configured ones")
    parser.add_argument("--per-file-ignores", action="append", metavar="GLOB:CODES", help="GLOB:CODE,... ignores the codes in files matching GLOB (replaces the configured per-file-ignores; repeatable)")
    parser.add_argument("--extend-per-file-ignores", action="append", metavar="GLOB:CODES", help="like --per-file-ignores, in addition to the configured ones")
    parser.add_argument("--respect-gitignore", dest="respect_gitignore", action="store_true", default=None, help="skip files ignored by .gitignore, .ignore, .git/info/exclude and git's global excludes (the default)")
    parser.add_argument("--no-respect-gitignore", dest="respect_gitignore", action="store_false", help="lint files even if ignore files name them")
    parser.add_argument("--show-files", action="store_true", help="print the files that would be linted, then exit")
    parser.add_argument("--show-settings", action="store_true", help="print the settings that apply to the first file, then exit")
    parser.add_argument("--isolated", action="store_true", help="ignore every configuration file")
    parser.add_argument("--stdin-filename", metavar="PATH", help="the name of the file read from stdin (config and per-file-ignores apply to it)")
    parser.add_argument("--force-exclude", action="store_true", help="apply the excludes to paths named on the command line too")
    parser.add_argument("--statistics", action="store_true", help="print the number of findings per rule instead of the findings")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("-q", "--quiet", action="store_true", help="print the findings only, no summary line")
    parser.add_argument("-s", "--silent", action="store_true", help="print nothing (no findings, no warnings); the exit status still tells (a --output-file is still written)")
    parser.add_argument("-v", "--verbose", action="store_true", help="on stderr: the configuration files used, how long finding, linting and reporting took, the slowest files")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the concise and full formats: auto (default) on a terminal; NO_COLOR=1 turns auto off, FORCE_COLOR=1 on")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the results cache")
    parser.add_argument("--cache-dir", metavar="DIR", help="the results cache folder (default: .looplint_cache; env LOOPLINT_CACHE_DIR)")
    parser.add_argument("-j", "--jobs", type=_positive_int, metavar="N", help="worker processes (default: the CPUs this process may use)")
    parser.add_argument("--debug", action="store_true", help=f"show tracebacks of internal errors (also env {DEBUG_ENV}=1)")
    parser.add_argument("--version", action="version", version=f"looplint {looplint.__version__}")
    _add_fix_options(parser)
    return parser


def _add_fix_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fixes")
    group.add_argument("--fix", action="store_true", help="apply the safe fixes, then report what remains")
    group.add_argument("--unsafe-fixes", action="store_true", help="apply the unsafe fixes too")
    group.add_argument("--fix-only", action="store_true", help="apply fixes and report nothing else")
    group.add_argument("--diff", action="store_true", help="print the fixes as a unified diff instead of writing them (exit 1 when there is one)")
    group.add_argument("--show-fixes", action="store_true", help="list the findings that were fixed")
    group.add_argument("--exit-non-zero-on-fix", action="store_true", help="exit 1 when a fix was applied, even if nothing remains")
    group.add_argument("--add-noqa", action="store_true", help="add `# noqa: LLxxx` to every line with a finding")


def _fixing(ns: argparse.Namespace) -> bool:
    if ns.add_noqa and (ns.fix or ns.fix_only or ns.diff):
        raise UsageError("--add-noqa cannot be combined with --fix, --fix-only or --diff")
    return ns.fix or ns.fix_only or ns.diff or ns.add_noqa


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _rule_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="looplint rule", description="Print the documentation of a rule.")
    parser.add_argument("code", nargs="?", metavar="CODE|NAME", help="a rule code or name, e.g. LL101 or missing-zero-grad")
    parser.add_argument("--all", action="store_true", help="print the documentation of every rule")
    parser.add_argument("--output-format", choices=("text", "json"), default="text")
    return parser


def _clean_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="looplint clean", description="Remove the results cache folder.")
    parser.add_argument("--cache-dir", metavar="DIR", help="the cache folder (default: .looplint_cache; env LOOPLINT_CACHE_DIR)")
    return parser


def _rules_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="looplint rules", description="List the rules: code, name, summary.")
    parser.add_argument("--output-format", choices=("text", "json"), default="text")
    return parser


# ---------------------------------------------------------------------------------------------- main


def _tolerant_streams() -> None:
    """A terminal that cannot show a character (a file name, a message) gets an escape, not a crash."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    _tolerant_streams()
    try:
        return _dispatch(args)
    except SystemExit as e:  # argparse: --help, --version, usage errors
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_ERROR)
    except (UsageError, ConfigError, OutputError) as e:
        _error(str(e))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `looplint . | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback
        _internal_error(f"{type(e).__name__}: {e}", traceback.format_exc(), debug)
        return EXIT_ERROR


def _internal_error(summary: str, trace: str, debug: bool, where: str = "") -> None:
    place = f" while linting {where}" if where else ""
    _error(
        f"internal error{place}: {summary} -- this is a bug in looplint, please report it at {ISSUES_URL}"
        + ("" if debug else f" (rerun with {DEBUG_ENV}=1 to see the traceback)")
    )
    if debug:
        sys.stderr.write(trace if trace.endswith("\n") else trace + "\n")


def _dispatch(args: List[str]) -> int:
    if args and args[0] in SUBCOMMANDS:
        command, rest = args[0], args[1:]
        if command == "check":
            return check(rest, prog="looplint check")
        if command == "rule":
            return rule_command(rest)
        if command == "rules":
            return rules_command(rest)
        if command == "clean":
            return clean_command(rest)
        return optional_command(command, rest)
    return check(args, prog="looplint")


def optional_command(command: str, argv: List[str]) -> int:
    """Runs ``looplint server`` / ``looplint confirm``, whose code and dependencies are optional."""
    module_name, extra, dependencies = OPTIONAL_COMMANDS[command]
    install = f"pip install 'looplint[{extra}]'"
    try:
        module = importlib.import_module(module_name)
        entry = getattr(module, "main", None)
        if entry is None:
            raise UsageError(f"`looplint {command}` is not available in this installation; install it with: {install}")
        result = entry(argv)
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if missing in dependencies:
            raise UsageError(f"`looplint {command}` needs `{missing}`, which is not installed; install it with: {install}") from None
        if e.name and module_name.startswith(e.name):
            raise UsageError(f"`looplint {command}` is not available in this installation; install it with: {install}") from None
        raise
    return int(result or 0)


# ---------------------------------------------------------------------------------------------- check


def _split_codes(values: Optional[List[str]]) -> List[str]:
    return [c for v in values or () for c in v.split(",") if c.strip()]


def _cli_selection(ns: argparse.Namespace) -> Selection:
    if ns.select is not None and not _split_codes(ns.select):
        raise UsageError("--select needs at least one rule code or prefix (`ALL` selects every rule)")
    try:
        select = normalize_selectors(_split_codes(ns.select), "--select") if ns.select is not None else None
        extend = normalize_selectors(_split_codes(ns.extend_select), "--extend-select")
        ignore = normalize_selectors(_split_codes(ns.ignore), "--ignore")
    except ConfigError as e:
        raise UsageError(str(e)) from None
    return Selection(tuple(select) if select is not None else None, tuple(extend), tuple(ignore))


def _config_and_overrides(ns: argparse.Namespace) -> Tuple[Optional[str], Overrides]:
    """``--config`` (a file, at most one, and any number of ``key = value`` fragments) and the other options
    that override settings; a bad one is a ``ConfigError`` naming it (exit status 2)."""
    from looplint.config import Pattern, parse_fragment

    path, fields = None, {}
    for value in ns.config or ():
        if os.path.isfile(value) or (value.endswith(".toml") and "=" not in value):
            if path is not None:
                raise UsageError(f"--config names two configuration files: {path} and {value}")
            path = value
        else:
            fields.update(parse_fragment(value))
    cwd = os.getcwd()
    extend_exclude = tuple(Pattern.parse(g.strip(), cwd) for g in _split_codes(ns.extend_exclude))
    replaced = _cli_per_file_ignores(ns.per_file_ignores, "--per-file-ignores", cwd) if ns.per_file_ignores else None
    extended = _cli_per_file_ignores(ns.extend_per_file_ignores, "--extend-per-file-ignores", cwd)
    return path, Overrides(fields, extend_exclude, replaced, extended, ns.respect_gitignore)


def _cli_per_file_ignores(values: Optional[List[str]], option: str, cwd: str):
    from looplint.config import Pattern

    out = []
    for value in values or ():
        glob, sep, codes = value.rpartition(":")
        if not sep or not glob or not codes.strip():
            raise UsageError(f"{option} expects GLOB:CODE[,CODE...], got {value!r}")
        try:
            selectors = normalize_selectors(codes.split(","), f"{option} {value!r}")
        except ConfigError as e:
            raise UsageError(str(e)) from None
        out.append((Pattern.parse(glob, cwd), tuple(selectors)))
    return tuple(out)


def _output_format(ns: argparse.Namespace) -> str:
    if ns.output_format is not None:
        value, source = ns.output_format, "--output-format"
    else:
        value, source = os.environ.get(FORMAT_ENV) or "concise", FORMAT_ENV
    if value not in OUTPUT_FORMATS:
        raise UsageError(f"invalid {source} value {value!r} (choose from {', '.join(OUTPUT_FORMATS)})")
    return value


def _lint_task(path: str, codes: Tuple[str, ...], depends: bool = True) -> Tuple[List[Diagnostic], Optional[Tuple[str, str]], Optional[tuple]]:
    """Lints one file with the rules ``codes`` (runs in a worker process), with what the result depends on
    besides the file (``engine.take_depended``: None when unknown, or when not ``depends``: a run without a
    cache has no use for it, and the parent need not receive it). Never raises: an exception is returned
    as (summary, traceback) so that one broken file cannot stop the others."""
    try:
        from looplint.engine import take_depended
        from looplint.notebook import lint_any
        from looplint.rule import rule_by_code

        rules = [r for r in (rule_by_code(c) for c in codes) if r is not None]
        take_depended()  # nothing left from an earlier task
        found = lint_any(path, rules)
        depended = take_depended()
        return found, None, depended if depends else None
    except Exception as e:  # noqa: BLE001
        summary, trace = getattr(e, "summary", None), getattr(e, "trace", None)  # raised in a worker
        if summary is None:
            summary, trace = f"{type(e).__name__}: {e}", traceback.format_exc()
        return [], (summary, trace), None


TaskResult = Tuple[List[Diagnostic], Optional[Tuple[str, str]]]  # diagnostics, or an internal error


def _run_tasks(tasks: List[Tuple[str, Tuple[str, ...]]], jobs: Optional[int], on_done=None, settle=None) -> List[Any]:
    """``_lint_task`` for every task, in worker processes when there are many. A worker that dies (the
    parser crashed, or ran out of memory) costs the file it held an LL000; the others are still linted.
    ``on_done(index, seconds)`` is called as each task ends (progress, ``-v`` timing). Each result comes
    with whether it is the file's own (not a death or an internal error: worth caching); with ``settle``,
    also with what it depends on besides the file (``_lint_task``), and ``settle(index, result, own,
    depended)`` is called as the task ends and what it returns is kept in place of (result, own): the
    parent holds no task's dependencies until the last task ends (tens of objects a file: 20 MB on 3,000
    files, which every worker forked later would count as its own)."""
    jobs = jobs or default_jobs()
    depends = settle is not None

    def settled(index: int, result: TaskResult, own: bool, depended: Optional[tuple]) -> Any:
        return settle(index, result, own, depended) if depends else (result, own)

    if jobs > 1 and len(tasks) >= PARALLEL_THRESHOLD:
        from looplint.engine import warm_up, worker_died
        from looplint.worker import WorkerDied, WorkerError, return_free_memory, run_tasks

        warm_up()  # before the workers start: forked ones inherit it
        return_free_memory()  # nor what finding and hashing the files left free (each fork's RSS counts it)

        def arrived(index: int, outcome) -> Any:
            path = tasks[index][0]
            if isinstance(outcome, WorkerDied):
                return settled(index, ([worker_died(path, outcome)], None), False, None)
            if isinstance(outcome, WorkerError):
                return settled(index, ([], (outcome.summary, outcome.trace)), False, None)
            return settled(index, outcome[:2], outcome[1] is None, outcome[2])

        try:
            sizes = _sizes(tasks)
            heavy = [i for i, size in enumerate(sizes) if size >= HEAVY_BYTES]
            return run_tasks(_lint_task, [(path, codes, depends) for path, codes in tasks], jobs,
                             on_done=on_done, order=_order(tasks, sizes, heavy), heavy=heavy, settle=arrived)
        except (OSError, NotImplementedError):
            pass  # no worker processes on this machine: lint here instead
    if tasks:
        from looplint.engine import linting_process

        linting_process()
    results = []
    for index, (path, codes) in enumerate(tasks):
        started = time.monotonic()
        result = _lint_task(path, codes, depends)
        results.append(settled(index, result[:2], result[1] is None, result[2]))
        if on_done is not None:
            on_done(index, time.monotonic() - started)
    return results


# A file this large may take a worker a few hundred MB while it is linted (its syntax tree, the modules of the
# project it imports): two of them are not linted at the same time (``worker.run_tasks``).
HEAVY_BYTES = 128 * 1024


def _order(tasks: List[Tuple[str, Tuple[str, ...]]], sizes: List[int], heavy: List[int]) -> List[int]:
    """The order workers take the tasks in: the large files first, largest first (one long lint never ends
    the run alone), then the others by path, so that a worker lints the files of one package one after
    the other and the modules they import, parsed once (``model.project``), serve each of them (by size
    they came from every project in turn, and each worker parsed the same modules again and again)."""
    first = sorted(heavy, key=lambda i: -sizes[i])
    chosen = set(heavy)
    return first + sorted((i for i in range(len(tasks)) if i not in chosen), key=lambda i: tasks[i][0])


def _sizes(tasks: List[Tuple[str, Tuple[str, ...]]]) -> List[int]:
    """Each task's file size: the best cheap guess of its lint time and of the memory it takes."""
    def size(path: str) -> int:
        try:
            return os.stat(path).st_size
        except OSError:
            return 0

    return [size(path) for path, _ in tasks]


def default_jobs() -> int:
    """The CPUs this process may use (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0)) or 1
        except OSError:
            pass
    return os.cpu_count() or 1


def _lint_cached(tasks: List[Tuple[str, Tuple[str, ...]]], jobs: Optional[int], cache, on_done=None) -> List[TaskResult]:
    """``_run_tasks`` for the files whose content, rules and looplint have no entry in ``cache``; the
    others from it (``on_done`` is called for them too, with 0 seconds). A file that changed while it was
    linted is not stored."""
    if cache is None:
        return [result for result, _own in _run_tasks(tasks, jobs, on_done)]
    from looplint.files import MAX_NOTEBOOK_BYTES, MAX_SOURCE_BYTES, is_notebook, read_regular

    results: List[Optional[TaskResult]] = [None] * len(tasks)
    missing = []  # (index, key, (stat, time) when read)
    for index, (path, codes) in enumerate(tasks):
        notebook = is_notebook(path)
        try:
            st = os.stat(path)
            now = time.time_ns()
            key = cache.indexed(path, st, codes, notebook) if stat_module.S_ISREG(st.st_mode) else None
            hit = cache.get(key, path) if key is not None else None  # known content: not read again
            if hit is None:
                data = read_regular(path, MAX_NOTEBOOK_BYTES if notebook else MAX_SOURCE_BYTES)
                key = cache.key(data, codes, notebook)
                hit = cache.get(key, path)
        except OSError:  # unreadable, too large, not a regular file: the engine says why, uncached
            missing.append((index, None, None))
            continue
        if hit is not None:
            cache.note(path, st, codes, notebook, key, now)
            results[index] = (hit, None)
            if on_done is not None:
                on_done(index, 0.0)
        else:
            missing.append((index, key, (st, now)))

    def done(i: int, seconds: float) -> None:
        if on_done is not None:
            on_done(missing[i][0], seconds)

    def store(i: int, result: TaskResult, own: bool, depended: Optional[tuple]) -> None:
        """Stores a result as it arrives (while the file is as it was when read and linted)."""
        index, key, seen = missing[i]
        results[index] = result
        path = tasks[index][0]
        depends = cache.recorded(depended) if own and key is not None else None
        if depends is not None and _unchanged(path, seen[0]) and cache.still(depends, path):
            cache.put(key, result[0], path, depends)
            cache.note(path, seen[0], tasks[index][1], is_notebook(path), key, seen[1])

    _run_tasks([tasks[i] for i, _, _ in missing], jobs, done, store)
    cache.save_index()
    return results  # type: ignore[return-value]


def _unchanged(path: str, seen) -> bool:
    """Whether the file at ``path`` has the stat ``seen`` still."""
    from looplint.cache import stat_stamp

    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat_stamp(st) == stat_stamp(seen)


def _fix_tasks(tasks, ns: argparse.Namespace, fixes: List) -> List:
    """Like ``_run_tasks``, fixing each file (or adding noqa comments) first; ``fixes`` collects the
    ``looplint.rewrite.FileFix`` of every file (``--add-noqa``: (path, directives added))."""
    from looplint import rewrite
    from looplint.rule import rule_by_code

    outcomes = []
    for path, codes in tasks:
        rules = [r for r in (rule_by_code(c) for c in codes) if r is not None]
        try:
            if ns.add_noqa:
                fixes.append((path, rewrite.add_noqa_file(path, rules)))
                outcomes.append(_lint_task(path, codes)[:2])
                continue
            result = rewrite.fix_file(path, rules, unsafe=ns.unsafe_fixes, write=not ns.diff)
        except OSError as e:
            outcomes.append(([], (f"cannot write {path}: {e.strerror or e}", "")))
            continue
        if result is None:
            outcomes.append(_lint_task(path, codes)[:2])
        else:
            fixes.append(result)
            outcomes.append((result.remaining, None))
    return outcomes


def _fix_report(ns: argparse.Namespace, fmt: str, fixes: List, remaining: List[Diagnostic], context, failures: int) -> int:
    """The output and exit status of ``--fix``, ``--fix-only``, ``--diff`` and ``--add-noqa``."""
    from looplint import report

    fixed = [d for f in fixes if not ns.add_noqa for d in f.fixed]
    with _report_output(ns.output_file) as out:
        if ns.add_noqa:
            added = sum(n for _path, n in fixes)
            _to_stderr(f"Added {added} noqa directive{'s' if added != 1 else ''}.\n")
            return EXIT_ERROR if failures else EXIT_CLEAN
        if ns.diff:
            for f in fixes:
                out.write(f.diff)
            n = len(fixed)
            _to_stderr(f"Would fix {n} error{'s' if n != 1 else ''}.\n" if n else "No errors would be fixed.\n")
            if failures:
                return EXIT_ERROR
            return EXIT_FINDINGS if any(f.changed for f in fixes) else EXIT_CLEAN
        if not ns.fix_only:
            report.FORMATS[fmt](remaining, out, context)
        if fmt in report.HUMAN_FORMATS and not ns.quiet:
            if ns.show_fixes and fixed:
                _write_fixed(fixes, out, context)
            _write_fix_summary(fixed, remaining, out, ns.fix_only, ns.unsafe_fixes)
    if failures:
        return EXIT_ERROR
    if ns.exit_non_zero_on_fix and fixed:
        return EXIT_FINDINGS
    if remaining and not ns.fix_only and not ns.exit_zero:
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _write_fixed(fixes: List, out: TextIO, context) -> None:
    n = sum(len(f.fixed) for f in fixes)
    out.write(f"Fixed {n} error{'s' if n != 1 else ''}:\n")
    for f in fixes:
        if f.fixed:
            out.write(f"- {context.display_path(f.path)}:\n")
            for (code, name), count in sorted(Counter((d.code, d.name) for d in f.fixed).items()):
                out.write(f"    {count} \u00d7 {code} ({name})\n")


def _write_fix_summary(fixed: List[Diagnostic], remaining: List[Diagnostic], out: TextIO, fix_only: bool,
                       unsafe: bool) -> None:
    f, r = len(fixed), len(remaining)
    if fix_only:
        out.write(f"Fixed {f} error{'s' if f != 1 else ''}.\n")
    elif f and r:
        out.write(f"Found {f + r} errors ({f} fixed, {r} remaining).\n")
    elif f:
        out.write(f"Found {f} error{'s' if f != 1 else ''} ({f} fixed, 0 remaining).\n")
    else:
        _write_summary(remaining, out, unsafe=unsafe)


def _unreadable(path: str, reason: str) -> Diagnostic:
    return Diagnostic(path, 1, 1, PARSE_ERROR, f"cannot read file: {reason}", PARSE_ERROR_NAME, 1, 1)


def _sort_key(d: Diagnostic, shown: Dict[str, str]):
    return (shown[d.path], d.cell or 0, d.line, d.column, d.code, d.message)


def check(argv: List[str], prog: str = "looplint") -> int:
    ns = _check_parser(prog).parse_args(argv)
    timer = _Timer(ns.verbose and not ns.silent)
    debug = ns.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    fmt = _output_format(ns)
    cli = _cli_selection(ns)
    config_path, overrides = _config_and_overrides(ns)
    resolver = Resolver(config=config_path, isolated=ns.isolated, overrides=overrides)

    from looplint import report

    context = report.ReportContext()
    diagnostics: List[Diagnostic] = []
    failures = 0
    cache = None  # the results cache of a run over files
    use_stdin = ns.paths == ["-"] or (ns.stdin_filename is not None and not ns.paths)
    if "-" in ns.paths and not use_stdin:
        raise UsageError("`-` (stdin) cannot be combined with other paths")
    if ns.stdin_filename is not None and ns.paths and not use_stdin:
        _warn("ignoring the paths given: --stdin-filename lints stdin")
        use_stdin = True

    if use_stdin and ns.add_noqa:
        raise UsageError("--add-noqa works on files, not stdin")
    if use_stdin and _fixing(ns):
        return _fix_stdin(ns, resolver, cli, fmt, context)
    if use_stdin:
        diagnostics = _lint_stdin(ns, resolver, cli, context)
    else:
        from looplint.files import discover

        found = discover(ns.paths or ["."], resolver.for_path, force_exclude=ns.force_exclude)
        if ns.show_files or ns.show_settings:
            return _show(ns, found, resolver, cli, context)
        timer.lap(f"found {len(found.files)} files to lint")
        if not found.files and not found.unreadable and not ns.silent:
            _warn("no Python files found under the given paths")  # like ruff; still exit 0
        tasks = []
        wanted: Dict[str, List[str]] = {}
        for path in found.files:
            codes = resolver.for_path(path).enabled_codes(path, cli)
            wanted[path] = codes
            tasks.append((path, tuple(c for c in codes if c != PARSE_ERROR)))
        for path, reason in found.unreadable:
            if PARSE_ERROR in resolver.for_path(path).enabled_codes(path, cli):
                diagnostics.append(_unreadable(path, reason))
        timer.settings(resolver, found.files)
        fixes: List = []
        cache = None if _fixing(ns) else _open_cache(ns)
        if _fixing(ns):
            outcomes = _fix_tasks(tasks, ns, fixes)
        elif fmt in report.EDIT_FORMATS:
            from looplint import diagnostics as diagnostics_module

            diagnostics_module.MAKE_TEXT_EDITS = True  # made in the workers, beside the trees the fixes edit
            try:
                outcomes = _run_with_progress(ns, tasks, timer, cache)
            finally:
                diagnostics_module.MAKE_TEXT_EDITS = False
        else:
            outcomes = _run_with_progress(ns, tasks, timer, cache)
        for (path, _), (found_here, error) in zip(tasks, outcomes):
            if error is not None:
                failures += 1
                _internal_error(error[0], error[1], debug, where=path)
                continue
            allowed = set(wanted[path])
            diagnostics.extend(d for d in found_here if d.code in allowed)

    shown = {d.path: context.display_path(d.path) for d in diagnostics}
    diagnostics.sort(key=lambda d: _sort_key(d, shown))
    if _fixing(ns):
        return _fix_report(ns, fmt, fixes, diagnostics, context, failures)

    context.color = _color(ns, fmt)
    _write_report(ns, fmt, diagnostics, context)
    if cache is not None and context.made_edits:
        for path in {d.path for d in context.made_edits}:  # the next report reads them from the cache
            cache.add_text_edits(path, [d for d in context.made_edits if d.path == path])
    timer.lap("wrote the report")
    timer.report()

    if failures:
        return EXIT_ERROR
    if diagnostics and not ns.exit_zero:
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _write_report(ns: argparse.Namespace, fmt: str, diagnostics: List[Diagnostic], context) -> None:
    from looplint import report

    if ns.silent and not ns.output_file:
        return
    with _report_output(ns.output_file) as out:
        if ns.statistics:
            _write_statistics(diagnostics, out, fmt)
            if diagnostics and fmt in report.HUMAN_FORMATS and not ns.quiet:
                _write_summary(diagnostics, out, unsafe=ns.unsafe_fixes)  # ruff prints the table, then its summary line
        else:
            report.FORMATS[fmt](diagnostics, out, context)
            if fmt in report.HUMAN_FORMATS and not ns.quiet:
                _write_summary(diagnostics, out, context.paint, unsafe=ns.unsafe_fixes)


def _color(ns: argparse.Namespace, fmt: str) -> bool:
    """Colour only the formats meant for people, and in ``auto`` only on a terminal (``looplint.terminal``)."""
    from looplint import report
    from looplint.terminal import use_color

    if fmt not in report.HUMAN_FORMATS or ns.statistics:
        return False
    if ns.output_file and ns.color == "auto":
        return False
    return use_color(ns.color, sys.stdout)


def _run_with_progress(ns: argparse.Namespace, tasks, timer: "_Timer", cache=None):
    """Lints the tasks with a progress line on stderr when it is a terminal and not in CI."""
    from looplint.terminal import Progress, in_ci, is_terminal

    shown = not (ns.quiet or ns.silent) and is_terminal(sys.stderr) and not in_ci()
    progress = Progress(sys.stderr, len(tasks), shown, delay=PROGRESS_DELAY)

    def done(index: int, seconds: float) -> None:
        timer.file(tasks[index][0], seconds)
        progress.update()

    try:
        return _lint_cached(tasks, ns.jobs, cache, done)
    finally:
        progress.clear()
        timer.lap(f"linted {len(tasks)} files")


class _Timer:
    """``-v``: what each phase of a run took, which configuration files governed the files, and the
    slowest files, written to stderr at the end."""

    SLOWEST = 5

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = self.last = time.monotonic()
        self.lines: List[str] = []
        self.files: List[Tuple[float, str]] = []

    def lap(self, what: str) -> None:
        now = time.monotonic()
        self.lines.append(f"{what} in {now - self.last:.3f} s")
        self.last = now

    def file(self, path: str, seconds: float) -> None:
        self.files.append((seconds, path))

    def settings(self, resolver: Resolver, files: Sequence[str]) -> None:
        if not self.enabled:
            return
        governing = Counter(resolver.for_path(f).path or "(defaults: no configuration file)" for f in files)
        for path, n in sorted(governing.items()):
            self.lines.append(f"settings from {path} for {n} file{'s' if n != 1 else ''}")

    def report(self) -> None:
        if not self.enabled:
            return
        slowest = sorted(self.files, reverse=True)[: self.SLOWEST]
        if slowest:
            self.lines.append("slowest: " + ", ".join(f"{path} {seconds:.3f} s" for seconds, path in slowest))
        self.lines.append(f"total {time.monotonic() - self.start:.3f} s")
        for line in self.lines:
            _to_stderr(f"looplint: {line}\n")


def _show(ns: argparse.Namespace, found, resolver: Resolver, cli: Selection, context) -> int:
    """``--show-files``: the files to lint, one a line; ``--show-settings``: the settings of the first one."""
    with _writing():
        out = _stdout()
        if ns.show_files:
            for path in found.files:
                out.write(context.display_path(path) + "\n")
        if ns.show_settings:
            first = found.files[0] if found.files else (ns.paths or ["."])[0]
            out.write(_settings_text(first, resolver.for_path(first), cli, context))
        out.flush()
    return EXIT_CLEAN


def _settings_text(path: str, settings: Settings, cli: Selection, context) -> str:
    import json

    def patterns(items) -> str:
        return "[" + ", ".join(f'"{p}"' for p in items) + "]"

    rows = [
        f"Resolved settings for: {context.display_path(path)}",
        f"Settings path: {settings.path or '(none: defaults)'}",
        "",
        f"root = {settings.root}",
        f"enabled = {json.dumps(settings.enabled_codes(path, cli))}",
        f"select = {json.dumps(list(settings.selection.select)) if settings.selection.select is not None else '(default: ALL)'}",
        f"extend-select = {json.dumps(list(settings.selection.extend_select))}",
        f"ignore = {json.dumps(list(settings.selection.ignore))}",
        f"command line: select = {json.dumps(list(cli.select)) if cli.select is not None else '(not given)'}, "
        f"extend-select = {json.dumps(list(cli.extend_select))}, ignore = {json.dumps(list(cli.ignore))}",
        f"exclude = {patterns(settings.exclude)}",
        f"extend-exclude = {patterns(settings.extend_exclude)}",
        "per-file-ignores = {"
        + ", ".join(f'"{p}" = {json.dumps(list(codes))}' for p, codes in settings.per_file_ignores)
        + "}",
        f"respect-gitignore = {'true' if settings.respect_gitignore else 'false'}",
    ]
    return "\n".join(rows) + "\n"


def _open_cache(ns: argparse.Namespace):
    """The results cache this run reads and writes, or None (``--no-cache``)."""
    from looplint.cache import NO_CACHE_ENV, Cache, default_directory

    if ns.no_cache or os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None

    return Cache(ns.cache_dir or default_directory())


def clean_command(argv: List[str]) -> int:
    ns = _clean_parser().parse_args(argv)
    from looplint.cache import CacheError, clean, default_directory

    directory = ns.cache_dir or default_directory()
    try:
        removed = clean(directory)
    except CacheError as e:
        raise UsageError(str(e)) from None
    with _writing():
        _stdout().write(f"Removed {directory}\n" if removed else f"No cache at {directory}\n")
        _stdout().flush()
    return EXIT_CLEAN


@contextlib.contextmanager
def _report_output(path: Optional[str]):
    """The stream the report goes to (stdout or ``--output-file``), closed or flushed afterwards."""
    out, close = _open_output(path)
    with _writing(path):
        try:
            yield out
        finally:
            if close:
                out.close()
            else:
                out.flush()


@contextlib.contextmanager
def _writing(path: Optional[str] = None):
    """Turns a failure to write the output (``-o /dev/full``, a closed stdout) into an ``OutputError``."""
    where = f"--output-file {path}" if path else "stdout"
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(f"cannot write to {where}: {e.strerror or e}") from None


def _stdout() -> TextIO:
    if sys.stdout is None:
        raise OutputError("cannot write to stdout: it is closed")
    return sys.stdout


def _open_output(path: Optional[str]) -> Tuple[TextIO, bool]:
    if path is None:
        return _stdout(), False
    try:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        return open(path, "w", encoding="utf-8"), True
    except OSError as e:
        raise UsageError(f"cannot write --output-file {path}: {e.strerror or e}") from None


def _read_stdin(limit: int) -> bytes:
    """At most ``limit + 1`` bytes of stdin (enough to tell that it is too large; ``/dev/zero`` never ends)."""
    stream = sys.stdin
    if stream is None:
        return b""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return buffer.read(limit + 1)
    return stream.read(limit + 1).encode("utf-8")


def _stdin_text(ns: argparse.Namespace, resolver: Resolver, cli: Selection):
    """Reads stdin: (its name, its text or None, the enabled codes, the diagnostics that replace a lint —
    too large, undecodable — or None; an excluded ``--stdin-filename`` gives no codes at all)."""
    from looplint.engine import decode, too_large
    from looplint.files import MAX_NOTEBOOK_BYTES, MAX_SOURCE_BYTES
    from looplint.notebook import is_notebook

    name = ns.stdin_filename or "-"
    limit = MAX_NOTEBOOK_BYTES if is_notebook(name) else MAX_SOURCE_BYTES
    settings: Settings = resolver.for_path(name if ns.stdin_filename else os.getcwd())
    if ns.force_exclude and ns.stdin_filename and settings.is_excluded_with_parents(name):
        return name, _read_stdin(limit).decode("utf-8", "replace"), [], []
    codes = settings.enabled_codes(name, cli)
    data = _read_stdin(limit)
    if len(data) > limit:
        return name, None, codes, [d for d in [too_large(name, len(data), limit)] if d.code in codes]
    try:
        text = data.decode("utf-8-sig") if is_notebook(name) else decode(data)
    except (UnicodeDecodeError, SyntaxError, LookupError) as e:
        return name, None, codes, [Diagnostic(name, 1, 1, PARSE_ERROR, f"cannot decode stdin: {e}", PARSE_ERROR_NAME, 1, 1)]
    return name, text, codes, None


def _stdin_rules(codes: Sequence[str]) -> List[type]:
    from looplint.rule import rule_by_code

    return [r for r in (rule_by_code(c) for c in codes if c != PARSE_ERROR) if r is not None]


def _lint_stdin(ns: argparse.Namespace, resolver: Resolver, cli: Selection, context) -> List[Diagnostic]:
    from looplint.notebook import lint_text

    name, text, codes, found = _stdin_text(ns, resolver, cli)
    if found is None:
        context.texts[name] = text
        found = lint_text(text, name, _stdin_rules(codes))
    return [d for d in found if d.code in codes]


def _fix_stdin(ns: argparse.Namespace, resolver: Resolver, cli: Selection, fmt: str, context) -> int:
    """``--fix``/``--fix-only``/``--diff`` on stdin, like ruff: the fixed text (or the diff) goes to stdout,
    what remains is reported on stderr."""
    from looplint import report, rewrite
    from looplint.notebook import is_notebook

    name, text, codes, found = _stdin_text(ns, resolver, cli)
    if found is not None:
        if text is not None:  # excluded (--force-exclude): the text goes through unchanged
            if not ns.diff:
                sys.stdout.write(text)
            return EXIT_CLEAN
        report.FORMATS[fmt](found, sys.stderr, context)  # too large or undecodable: nothing to fix
        return EXIT_FINDINGS if found and not ns.exit_zero else EXIT_CLEAN
    fixer = rewrite.fix_notebook_text if is_notebook(name) else rewrite.fix_python_text
    result = fixer(text, name, _stdin_rules(codes), ns.unsafe_fixes)
    fixed = [d for d in result.fixed if d.code in codes]
    remaining = [d for d in result.remaining if d.code in codes]
    context.texts[name] = result.after
    if ns.diff:
        sys.stdout.write(result.diff)
        n = len(fixed)
        _to_stderr(f"Would fix {n} error{'s' if n != 1 else ''}.\n" if n else "No errors would be fixed.\n")
        return EXIT_FINDINGS if result.changed else EXIT_CLEAN
    sys.stdout.write(result.after)
    sys.stdout.flush()
    if not ns.fix_only and remaining:
        report.FORMATS[fmt](remaining, sys.stderr, context)
    if ns.exit_non_zero_on_fix and fixed:
        return EXIT_FINDINGS
    if remaining and not ns.fix_only and not ns.exit_zero:
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _write_summary(diagnostics: Sequence[Diagnostic], out: TextIO, paint: Paint = Paint(), unsafe: bool = False) -> None:
    n = len(diagnostics)
    if n:
        out.write(f"Found {n} error{'s' if n != 1 else ''}.\n")
        _write_fixable(diagnostics, out, unsafe)
    else:
        out.write(paint("All checks passed!", "bold", "green") + "\n")


def _write_fixable(diagnostics: Sequence[Diagnostic], out: TextIO, unsafe: bool = False) -> None:
    """ruff's hint: how many findings ``--fix`` would repair (with ``--unsafe-fixes`` given, the unsafe ones
    count as fixable; otherwise they are the hidden fixes)."""
    fixes = Counter(d.fix.applicability for d in diagnostics if d.fix is not None)
    safe, hidden_count = (fixes["safe"] + fixes["unsafe"], 0) if unsafe else (fixes["safe"], fixes["unsafe"])
    hidden = (f"{hidden_count} hidden fix{'es' if hidden_count != 1 else ''} can be enabled with the `--unsafe-fixes` option"
              if hidden_count else "")
    if safe:
        out.write(f"[*] {safe} fixable with the `--fix` option" + (f" ({hidden})" if hidden else "") + ".\n")
    elif hidden_count:
        out.write(f"No fixes available ({hidden}).\n")


def _write_statistics(diagnostics: Sequence[Diagnostic], out: TextIO, fmt: str) -> None:
    counts = Counter(d.code for d in diagnostics)
    names = {d.code: d.name for d in diagnostics}
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if fmt in ("json", "json-lines"):
        import json

        stats = [{"code": c, "name": names[c], "count": n, "fixable": False} for c, n in rows]
        json.dump(stats, out, indent=2)
        out.write("\n")
        return
    if not rows:
        return
    width = max(len(str(n)) for _, n in rows)
    code_width = max(len(c) for c, _ in rows)
    for code, n in rows:
        out.write(f"{n:>{width}}\t{code:<{code_width}}\t{names[code]}\n")


# ---------------------------------------------------------------------------------------------- rule docs


def _rule_entry(text: str) -> Tuple[str, str, str, str]:
    """(code, name, summary, documentation) of the rule named by a code (``LL101``, any case) or a name
    (``missing-zero-grad``), ``LL000`` included; a UsageError naming it (with a close match) otherwise."""
    from looplint.ruledocs import rule_docs

    docs = rule_docs()
    wanted = text.strip()
    for entry in docs:
        if wanted.upper() == entry[0] or wanted.lower() == entry[1]:
            return entry
    hint = difflib.get_close_matches(wanted.lower(), [e[1] for e in docs], n=1) or difflib.get_close_matches(
        wanted.upper(), [e[0] for e in docs], n=1, cutoff=0.8
    )
    extra = f" (did you mean `{hint[0]}`?)" if hint else ""
    raise UsageError(f"unknown rule `{wanted}`{extra}: give a code like LL101 or a name like missing-zero-grad (run `looplint rules` for the list)")


def rule_command(argv: List[str]) -> int:
    parser = _rule_parser()
    ns = parser.parse_args(argv)
    from looplint.diagnostics import docs_url
    from looplint.ruledocs import rule_docs

    if ns.all == bool(ns.code):
        parser.error("give either a rule CODE or NAME, or --all")
    docs = rule_docs() if ns.all else [_rule_entry(ns.code)]
    if ns.output_format == "json":
        import json

        items = [{"code": c, "name": n, "summary": s, "explanation": d, "url": docs_url(c)} for c, n, s, d in docs]
        with _writing():
            json.dump(items if ns.all else items[0], _stdout(), indent=2)
            _stdout().write("\n")
            _stdout().flush()
        return EXIT_CLEAN
    with _writing():
        _stdout().write("\n".join(f"# {n} ({c})\n\n{d.rstrip()}\n" for c, n, _, d in docs))
        _stdout().flush()
    return EXIT_CLEAN


def rules_command(argv: List[str]) -> int:
    """Every rule, ``LL000`` first: code, name, summary."""
    ns = _rules_parser().parse_args(argv)
    from looplint.ruledocs import rule_docs

    docs = rule_docs()
    with _writing():
        out = _stdout()
        if ns.output_format == "json":
            import json

            json.dump([{"code": c, "name": n, "summary": s} for c, n, s, _ in docs], out, indent=2)
            out.write("\n")
        else:
            name_width = max(len(n) for _, n, _, _ in docs)
            for code, name, summary, _ in docs:
                out.write(f"{code}  {name:<{name_width}}  {summary}\n")
        out.flush()
    return EXIT_CLEAN
