"""One file -> diagnostics: read, screen, parse once, build the training-loop model, run the rules.

Everything a user can get wrong in a file (its kind, its size, its encoding, its syntax, an unreadable path)
becomes an ``LL000`` diagnostic, never a traceback, and no input takes the run down with it:

* Only regular files are read, at most ``MAX_SOURCE_BYTES`` of them (``looplint.files.read_regular``).
* Python's own parser screens every source first (``ast``, a small cost beside libcst's parse): code it
  refuses because it is nested beyond its limits is ``LL000`` at once, and a syntax error is ``LL000`` even
  in a file the pre-filter skips (unless libcst, which knows newer syntax than an older Python, parses it).
* libcst's native parser, which the model needs, takes time and memory that grow with the square of the
  nesting depth and crashes the whole process (a native stack overflow) on code nested thousands of levels
  deep that CPython accepts (10,000 ``and``s). Code nested deeper than ``MAX_DEPTH`` is ``LL000`` without
  parsing; code that is deep, large or refused by this Python is parsed in a worker process
  (``looplint.worker``) whose death is an ``LL000`` for that file alone.
"""
from __future__ import annotations

import ast
import io
import os
import re
import tokenize
import warnings
from dataclasses import replace
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import libcst as cst

from looplint import diagnostics
from looplint.diagnostics import Diagnostic
from looplint.files import MAX_SOURCE_BYTES, NotRegularFile, TooLarge, read_regular, size_text
from looplint.parse import parse_module
from looplint.rule import PARSE_ERROR, PARSE_ERROR_NAME, Rule, all_rules
from looplint.relevance import blank_cold, may_train, relevance


# Nesting depth (syntax-tree levels, ``and``/``or`` operands counted as libcst nests them). Measured on
# libcst 1.9 (CPython 3.11, 8 MB stack): parsing ``x[0]`` nested 1,000 deep takes 1 s, 2,000 deep 4.5 s and
# 3,000 deep 13 s; ``a if b else`` 3,000 deep takes 1.5 GB; 8,000 ``and``s or 10,000 ``elif``s crash the
# process. The model gives up (LL000) beyond a few hundred levels anyway.
MAX_DEPTH = 1000  # deeper code is LL000 without parsing
IN_PROCESS_DEPTH = 250  # deeper code is parsed in a worker process
IN_PROCESS_CHARS = 256 * 1024  # so is a larger source (memory: up to 2.5 GB per MB of source)

# Parse and model only the code that can matter (looplint.relevance): top-level definitions not linked to
# training code are blanked before libcst sees the file. False: every file whole (tests compare the two).
SKIP_COLD_CODE = True

IN_WORKER = False  # set in worker processes (looplint.worker), where risky input is parsed directly


_worker = None  # the worker that parses risky input for this process, started on first use
# What the lints since the last ``take_depended`` depended on besides their text
_depended: Optional[tuple] = ({}, {})


def decode(data: bytes) -> str:
    """Decode Python source honouring a PEP 263 cookie and a BOM; raises on undecodable bytes."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


def _error(path: str, message: str, line: int = 1, column: int = 1) -> Diagnostic:
    return Diagnostic(path, line, column, PARSE_ERROR, message, PARSE_ERROR_NAME, line, column)


def _python_error(source: str) -> Optional[Exception]:
    """What Python's own parser says of ``source``: None when it accepts it, else the error it raises."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return e
    return None


def _syntax_error(path: str, source: str, e: "cst.ParserSyntaxError") -> Diagnostic:
    """LL000 at the position Python's own parser names (libcst's positions can be a row off)."""
    se = _python_error(source)
    if isinstance(se, SyntaxError) and se.lineno:
        return _error(path, f"cannot parse file: {se.msg}", se.lineno, max(se.offset or 1, 1))
    message = re.sub(r"^(?:parser|tokenizer) error: (?:error at \d+:\d+: )?", "", e.message)
    return _error(path, f"cannot parse file: {message}", e.raw_line, e.raw_column + 1)


def lint_file(path: str, rules: Optional[Sequence[type]] = None) -> List[Diagnostic]:
    try:
        data = read_regular(path, MAX_SOURCE_BYTES)
    except TooLarge as e:
        return [too_large(path, e.size)]
    except NotRegularFile as e:
        return [_error(path, f"cannot read file: {e}")]
    except OSError as e:
        return [_error(path, f"cannot read file: {e.strerror or e}")]
    try:
        source = decode(data)
    except (UnicodeDecodeError, SyntaxError, LookupError) as e:
        return [_error(path, f"cannot decode file: {e}")]
    return lint_source(source, path, rules)


def too_large(path: str, size: int, limit: int = MAX_SOURCE_BYTES) -> Diagnostic:
    """The LL000 for input over a size limit (``size`` is what was seen: a stream may hold more)."""
    more = "more than " if size == limit + 1 else ""
    return _error(path, f"file too large to analyse: {more}{size_text(min(size, limit) if more else size)} "
                        f"(looplint reads up to {size_text(limit)})")


class Screen(NamedTuple):
    """What Python's own parser says about a source before libcst sees it."""

    refused: Optional[str] = None  # CPython cannot parse it at all (nested beyond its limits)
    syntax_error: bool = False  # a syntax error for this Python (libcst may know newer syntax)
    depth: int = 0  # nesting depth, as libcst will nest it
    tree: Optional[ast.Module] = None  # Python's syntax tree, when it parsed


def screen(source: str, depth: bool = True) -> Screen:
    """Parses with Python's own parser; measures the nesting depth if ``depth`` (only worth it for a
    source that libcst will parse)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like
            tree = ast.parse(source)
    except (SyntaxError, ValueError):  # ValueError: null bytes (Python < 3.12)
        return Screen(syntax_error=True)
    except (RecursionError, MemoryError) as e:
        return Screen(refused=f"nested too deeply for Python's parser ({type(e).__name__})")
    return Screen(depth=nesting_depth(tree) if depth else 0, tree=tree)


def nesting_depth(tree: ast.AST) -> int:
    """The deepest path in the tree, counting the operands of ``and``/``or`` as nested (libcst nests
    ``a and b and c`` as ``(a and b) and c``; CPython keeps them flat). Without recursion."""
    deepest = 0
    stack = [(tree, 0)]
    pop, push, node_type, bool_op = stack.pop, stack.append, ast.AST, ast.BoolOp
    while stack:
        node, depth = pop()
        if depth > deepest:
            deepest = depth
        depth += len(node.values) if type(node) is bool_op else 1
        for name in node._fields:  # ``ast.iter_child_nodes`` without its generators: half the time
            value = getattr(node, name, None)
            if type(value) is list:
                for child in value:
                    if isinstance(child, node_type):
                        push((child, depth))
            elif isinstance(value, node_type):
                push((value, depth))
    return deepest


def trained_imports(tree: ast.Module, source: str, path: str) -> frozenset:
    """The names the imports of a file (Python's syntax tree ``tree``) bind to code of its project that
    trains (``looplint.model.project.Project.trained_imports``): a driver script that builds the optimizer
    and the scheduler, and calls an imported ``train_epoch`` in its epoch loop, mentions no gradient call of
    its own, and is linted all the same. What the lookup probed and read is recorded for ``take_depended``:
    the result depends on it, also when it found nothing."""
    global _depended
    from looplint.model.project import Project

    project = Project(path)
    found = project.trained_imports(tree, source)
    _depended = _together(_depended, project.depends())
    return found


def screen_training(source: str, path: str, judged: bool = True) -> Tuple[Screen, bool, frozenset]:
    """(``screen`` of ``source``, whether the rules judge anything in it, the names its imports bind to
    training code of its project): it mentions training (``may_train``), or, when rules are ``judged``,
    calls training code of its project (``trained_imports``). The nesting depth is measured only for a
    source that trains (libcst will parse it)."""
    training = may_train(source)
    found = screen(source, depth=training)
    trained: frozenset = frozenset()
    if not training and judged and found.tree is not None:
        trained = trained_imports(found.tree, source, path)
        if trained:
            training = True
            found = found._replace(depth=nesting_depth(found.tree))
    return found, training, trained


def judges(source: str, path: str) -> bool:
    """Whether the rules judge anything in ``source`` (a file named ``path``): ``screen_training``."""
    return screen_training(source, path)[1]


def _together(a: Optional[tuple], b: Optional[tuple]) -> Optional[tuple]:
    """Two records of what lints depended on (``take_depended``) as one; None (unknown) if either is."""
    if a is None or b is None:
        return None
    if not b[0] and not b[1]:
        return a
    return {**a[0], **b[0]}, {**a[1], **b[1]}


def lint_source(source: str, path: str = "<stdin>", rules: Optional[Sequence[type]] = None,
                reuse: bool = False) -> List[Diagnostic]:
    """All diagnostics of one Python source text (``# noqa`` applied). ``reuse``: the process lints the same
    documents again and again (the language server's worker): a source whose code that can matter is as it
    was at the last lint of ``path`` (only definitions that cannot matter changed, row for row) gets that
    lint's findings again, when what they depend on besides (imported modules of the project) is
    unchanged too."""
    rules = all_rules() if rules is None else list(rules)
    if len(source) > MAX_SOURCE_BYTES:
        return [too_large(path, len(source.encode("utf-8", "surrogatepass")))]
    found, training, trained = screen_training(source, path, judged=bool(rules))
    if found.refused:
        return [_error(path, f"cannot parse file: {found.refused}")]
    if not training:
        if not found.syntax_error:
            return []
        rules = []  # nothing to judge: only whether libcst parses it
    syntax_error, depth = found.syntax_error, found.depth
    if found.depth > MAX_DEPTH:
        return [_error(path, f"cannot parse file: its code is nested {found.depth} levels deep (looplint parses up to {MAX_DEPTH})")]
    code = source  # what libcst parses and the model sees
    starts = None  # where its top-level statements start (looplint.positions)
    if found.tree is not None:
        cold = []
        if SKIP_COLD_CODE:
            relevant = relevance(found.tree, source, trained)
            if not relevant.training:  # only comments and strings mention training: nothing to judge
                return []
            cold = relevant.cold
            code = blank_cold(source, cold, relevant.stubs)
        from looplint.positions import statement_starts

        starts = statement_starts(found.tree, cold)
    del found
    risky = syntax_error or depth > IN_PROCESS_DEPTH or len(source) > IN_PROCESS_CHARS
    if risky and not IN_WORKER:
        return _lint_in_worker(code, path, rules, source, starts)
    try:
        if reuse and not risky:
            return _lint_reusing(code, path, rules, source, starts)
        return lint_parsed(code, path, rules, source, starts)
    except MemoryError:
        return [_error(path, "file too large to analyse: the parser ran out of memory")]


# The last lint of each document in a process that lints documents again and again (``lint_source(reuse=True)``):
# path -> (rule codes, the code parsed, its findings before ``# noqa``, what else they depend on: the paths the
# model's project lookups probed and the modules they read, ``Project.depends``)
_last: "dict[str, tuple]" = {}
KEEP_LAST = 32  # documents remembered


def _lint_reusing(code: str, path: str, rules: Sequence[type], source: str, starts) -> List[Diagnostic]:
    from looplint.model.project import unchanged
    from looplint.suppress import apply_noqa

    codes = tuple(r.code for r in rules)
    last = _last.pop(path, None)
    if last is not None and last[0] == codes and last[1] == code and (last[3] is None or unchanged(last[3])):
        _last[path] = last
        return apply_noqa(list(last[2]), source)
    kept: list = []
    found = lint_parsed(code, path, rules, source, starts, kept)
    if kept:
        found_before_noqa, project = kept
        # as they cross to the server: a fix's edits name nodes of this tree, which is not kept
        portable = tuple(d if d.fix is None else replace(d, fix=d.fix.portable()) for d in found_before_noqa)
        _last[path] = (codes, code, portable, project.depends() if project is not None else None)
        while len(_last) > KEEP_LAST:
            del _last[next(iter(_last))]
    return found


def take_depended() -> Optional[tuple]:
    """What the result of the lint since the last call depends on besides the text it linted: the paths the
    model's project lookups probed and the modules they read, as they were (``model.project.Project.depends``;
    nothing for a file no model read the project for), or None when the model ran in another process."""
    global _depended
    got, _depended = _depended, ({}, {})
    return got


def lint_document(source: str, path: str, rules: Sequence[type]) -> List[Diagnostic]:
    """``lint_source`` for a document linted again after each change (the language server's worker): the
    last result is reused while the code that can matter stays as it was."""
    return lint_source(source, path, rules, reuse=True)


def warm_up() -> None:
    """Imports what linting a training file needs (libcst, the model, the rules): done once in a parent
    that forks workers, so that none of them pays for it."""
    import looplint.model  # noqa: F401
    import looplint.suppress  # noqa: F401
    from looplint.rule import all_rules

    all_rules()


# A libcst tree of a few thousand lines is a few hundred thousand objects, made in one go and freed in one go
# (reference counting frees it: its nodes hold no cycles). With the collector's default threshold (700
# allocations) every file triggers hundreds of collections that scan the young trees, and older
# generations (the project's parsed modules) are scanned every tenth of those: on the speed corpus 38 % of
# the CPU time went to them. A larger first threshold costs no memory that matters (the cycles our model makes are few and small).
GC_THRESHOLD = 100_000


def linting_process() -> None:
    """Tunes this process to lint many files (a CLI run, a worker, the language server): young objects are
    collected by the hundred thousand, not by the 700. Not done for a host that imports the engine (flake8):
    its collector is its own."""
    import gc

    first, second, third = gc.get_threshold()
    if 0 < first < GC_THRESHOLD:
        gc.set_threshold(GC_THRESHOLD, second, third)


def _lint_in_worker(source: str, path: str, rules: List[type], noqa_source: Optional[str] = None,
                    starts=None) -> List[Diagnostic]:
    global _worker, _depended
    from looplint.worker import Worker, WorkerDied

    if _worker is None:
        _worker = Worker()
    # the worker resolves the project from the file's folder: give it the folder this process means (its
    # working directory may be another, the one it was started in)
    where = path if path.startswith("<") else os.path.abspath(path)
    try:
        found, depended = _worker.call(_lint_parsed_depending, source, where, rules, noqa_source, starts)
        _depended = _together(_depended, depended)
        return [d if d.path == path else replace(d, path=path) for d in found]
    except WorkerDied as e:
        _depended = None  # a death is no result to keep
        return [worker_died(path, e)]


def _lint_parsed_depending(source: str, path: str, rules: List[type], noqa_source: Optional[str], starts):
    """``lint_parsed`` in a worker process, with what its result depends on (``take_depended``)."""
    take_depended()
    return lint_parsed(source, path, rules, noqa_source, starts), take_depended()


def worker_died(path: str, death) -> Diagnostic:
    """The LL000 for a file whose worker process died (``looplint.worker.WorkerDied``)."""
    if death.out_of_memory:
        return _error(path, f"file too large to analyse: the parser ran out of memory ({death.reason})")
    return _error(path, f"cannot parse file: the parser crashed ({death.reason})")


def lint_parsed(source: str, path: str, rules: Sequence[type], noqa_source: Optional[str] = None,
                starts=None, kept: Optional[list] = None) -> List[Diagnostic]:
    """Parses with libcst and judges: the part of ``lint_source`` that may crash or exhaust memory.
    ``noqa_source`` is the file as written when ``source`` is it with cold code blanked (its comments
    decide what ``# noqa`` suppresses); ``starts``: where its top-level statements start
    (``looplint.positions.statement_starts``), when known; ``kept``: a list that receives the findings before
    ``# noqa`` and the model's ``Project`` (when the rules ran); what the model read of the project is also
    recorded for ``take_depended``."""
    global _depended
    shifts: Dict[int, Tuple[int, int]] = {}
    try:
        module = parse_module(source)
    except cst.ParserSyntaxError as e:
        # Python reads a tab in indentation as a move to the next multiple of 8 (a tab then four spaces is
        # 12 columns); libcst's tokenizer does not always agree, and refuses code Python runs. The same
        # indentation written with spaces is the same program.
        expanded, shifts = _spaces_for_tabs(source)
        try:
            if not shifts or _python_error(source) is not None:
                raise e
            module = parse_module(expanded)
        except cst.ParserSyntaxError:
            return [_syntax_error(path, source, e)]
        noqa_source = source if noqa_source is None else noqa_source
        source = expanded
    except (RecursionError, ValueError) as e:  # pathological input
        return [_error(path, f"cannot parse file: {type(e).__name__}")]
    except BaseException as e:  # noqa: BLE001 - a panic in the native parser (pyo3's PanicException)
        if type(e).__name__ != "PanicException":
            raise
        return [_error(path, "cannot parse file: the parser failed on it (a libcst bug)")]
    if not rules:
        return []
    from looplint.suppress import apply_noqa

    try:
        project: list = []
        found = check_module(module, path, rules, starts, project, source)
        if kept is not None:
            kept.extend((tuple(found), project[0] if project else None))
        if project and project[0] is not None:
            _depended = _together(_depended, project[0].depends())
        found = apply_noqa(found, source if noqa_source is None else noqa_source)
    except RecursionError:
        # Only pathological code (thousands of nested or concatenated expressions) gets here.
        _depended = _together(_depended, project[0].depends()) if project and project[0] is not None else None
        return [_error(path, "cannot analyse file: its expressions are nested too deeply")]
    if shifts:
        found = [_unshifted(d, shifts) for d in found]
    if diagnostics.MAKE_TEXT_EDITS and any(d.fix is not None and d.fix.edits for d in found):
        from looplint.model.walk import forget

        try:
            found = _with_text_edits(found, module, source, source if noqa_source is None else noqa_source)
        finally:
            forget()  # the walk's memory of this tree
    return found


_INDENT = re.compile(r"^[ \t]*\t[ \t]*(?=\S)")
_ROWS = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")


def _spaces_for_tabs(source: str) -> Tuple[str, Dict[int, Tuple[int, int]]]:
    """``source`` with every indentation that holds a tab written with spaces (a tab reaches the next
    multiple of 8, as Python reads it), and per row changed (1-based): (the indentation's length as
    written, as expanded)."""
    shifts: Dict[int, Tuple[int, int]] = {}
    rows = _ROWS.findall(source)  # Python's rows (a form feed or a Unicode line separator ends none)
    for i, row in enumerate(rows):
        m = _INDENT.match(row)
        if m:
            wide = m.group().expandtabs(8)
            shifts[i + 1] = (m.end(), len(wide))
            rows[i] = wide + row[m.end():]
    return "".join(rows), shifts


def _unshifted(d: Diagnostic, shifts: Dict[int, Tuple[int, int]]) -> Diagnostic:
    """A diagnostic of code whose tabs were written as spaces (``_spaces_for_tabs``), at its columns in the
    file as written, without a fix (its edits would be made on the spaced rows)."""
    def column(row: int, col: int) -> int:
        if row not in shifts:
            return col
        written, wide = shifts[row]
        return col - (wide - written) if col > wide else min(col, written + 1)

    return replace(d, column=column(d.line, d.column), end_column=column(d.end_line, d.end_column), fix=None)


def _with_text_edits(found: List[Diagnostic], module: cst.Module, code: str, text: str) -> List[Diagnostic]:
    """``found`` with their fixes' text edits (``Fix.text_edits``) on ``text`` (the file as written; ``code`` is
    it as parsed, cold definitions blanked): what ``looplint.rewrite.fix_edits`` makes of a finding, one
    replacement between what the fixed code shares with ``code`` at both ends. A diagnostic is left without
    them (the report then makes them) when an edit's node is not in the module or the replaced rows were
    blanked."""
    from looplint.fix import apply_edits
    from looplint.model.walk import descendants
    from looplint.notebook import is_notebook
    from looplint.rewrite import common_ends, row_column

    if any(is_notebook(d.path) for d in found):
        return found
    in_module: Optional[set] = None  # the ids of the module's nodes, and its rows, made once for all fixes
    out = []
    for d in found:
        fix = d.fix
        if fix is None or not fix.edits:
            out.append(d)
            continue
        if not fix.applies(unsafe=True):
            out.append(replace(d, fix=replace(fix, text_edits=())))
            continue
        if in_module is None:
            in_module = {id(n) for n in descendants(module)}
            code_rows, text_rows = code.split("\n"), text.split("\n")  # rows as row_column counts them
        try:
            if not all(id(e.node) in in_module for e in fix.edits):
                out.append(d)
                continue
            new = apply_edits(module, list(fix.edits)).code
        except Exception:  # noqa: BLE001 - the report makes them the usual way
            out.append(d)
            continue
        if new == code:
            out.append(replace(d, fix=replace(fix, text_edits=())))
            continue
        start, end = common_ends(code, new)
        (row, col), (end_row, end_col) = row_column(code, start), row_column(code, len(code) - end)
        if code_rows[row - 1:end_row] != text_rows[row - 1:end_row]:
            out.append(d)
            continue
        edit = (row, col, end_row, end_col, new[start:len(new) - end])
        out.append(replace(d, fix=replace(fix, text_edits=(edit,))))
    return out


def lint_for_fixes(source: str, path: str, rules: Sequence[type]):
    """(the parsed module, its diagnostics after ``# noqa``) for the fix loop (``looplint.fix``): the
    diagnostics' fixes edit that module. A source that is parsed only in a worker process (deep, large, or
    refused by this Python) is linted as usual and gets no fixes: (None, diagnostics)."""
    found, training, _ = screen_training(source, path, judged=bool(rules))
    if (found.refused or found.syntax_error or found.depth > IN_PROCESS_DEPTH or len(source) > IN_PROCESS_CHARS
            or not rules or not training):
        return None, lint_source(source, path, rules)
    try:
        module = parse_module(source)
    except Exception:  # noqa: BLE001 - whatever libcst refuses is reported the usual way
        return None, lint_source(source, path, rules)
    from looplint.suppress import apply_noqa

    try:
        return module, apply_noqa(check_module(module, path, rules, source=source), source)
    except RecursionError:
        return None, lint_source(source, path, rules)


# Deeply nested code (a few hundred ``elif``s, long chains) needs more Python frames than the default
# limit while LibCST's visitors walk it: the model runs on a thread with a large stack and a high limit.
DEEP_RECURSION_LIMIT = 20_000
DEEP_STACK_BYTES = 512 * 1024 * 1024


def run_deep(fn, *args):
    """``fn(*args)`` on a thread whose stack and recursion limit fit deeply nested syntax trees."""
    import sys
    import threading

    result: list = []
    error: list = []

    def target() -> None:
        try:
            result.append(fn(*args))
        except BaseException as e:  # re-raised in the calling thread
            error.append(e)

    old_size = threading.stack_size()
    old_limit = sys.getrecursionlimit()
    try:
        threading.stack_size(DEEP_STACK_BYTES)
        sys.setrecursionlimit(max(old_limit, DEEP_RECURSION_LIMIT))
        t = threading.Thread(target=target, name="looplint-model")
        t.start()
        t.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    if error:
        raise error[0]
    return result[0]


def check_module(module: cst.Module, path: str, rules: Iterable[type], starts=None,
                 project: Optional[list] = None, source: Optional[str] = None) -> List[Diagnostic]:
    """The rules' diagnostics of a parsed module. ``project``: a list that receives the model's ``Project``
    (the modules it read, the paths it probed: what the diagnostics depend on besides the module);
    ``source``: the text ``module`` was parsed from, when known (the model reads facts of it that would
    otherwise cost a walk of the tree)."""
    from looplint.model.walk import forget

    try:
        return run_deep(_check_module, module, path, rules, starts, project, source)
    finally:
        forget()  # the walks' memory of this file's tree (looplint.model.walk)


def _run_here(model, found, positions, path: str) -> list:
    """The findings in the code of a module the linted file imports (the model follows calls into the
    project's modules), each reported instead at the call of this file that runs that code, without a fix
    (its edits would be in the other file); dropped when no single call of this file runs it."""
    from looplint.rule import Finding

    out = []
    for rule_cls, finding in found:
        if finding.node in positions:
            continue
        site, home = model.site_in_file(finding.node)
        if site is None:
            continue
        where = getattr(home, "path", None)
        if where and not path.startswith("<"):
            where = os.path.relpath(where, os.path.dirname(os.path.abspath(path)))
        suffix = f" (in `{where}`, run by this call)" if where else " (in an imported module, run by this call)"
        out.append((rule_cls, Finding(site, finding.message + suffix)))
    return out


def _check_module(module: cst.Module, path: str, rules: Iterable[type], starts=None,
                  project: Optional[list] = None, source: Optional[str] = None) -> List[Diagnostic]:
    from looplint.model import build_model  # the model is only needed when there is code to judge

    model = build_model(module, path, source)
    if project is not None:
        project.append(model.scopes.project)
    found = []
    for rule_cls in rules:
        rule: Rule = rule_cls()
        for finding in rule.check(model):
            found.append((rule_cls, finding))
    if not found:
        return []
    # Positions are computed only for files with findings, once, through the statements that hold them.
    from looplint.positions import positions as positions_of

    positions = positions_of(module, [finding.node for _, finding in found], starts)
    if any(finding.node not in positions for _, finding in found):
        found = [(r, f) for r, f in found if f.node in positions] + _run_here(model, found, positions, path)
        positions = positions_of(module, [finding.node for _, finding in found], starts)
    out = {}
    for rule_cls, finding in found:
        rng = positions.get(finding.node)
        if rng is None:  # in an imported module's code, run by no single call of this file (_run_here)
            continue
        key = (rule_cls.code, rng.start.line, rng.start.column)
        if key not in out:
            out[key] = Diagnostic(
                path, rng.start.line, rng.start.column + 1, rule_cls.code, finding.message, rule_cls.name,
                rng.end.line, rng.end.column + 1, fix=finding.fix,
            )
    return sorted(out.values())
