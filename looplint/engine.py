"""One file -> diagnostics: read, pre-filter, parse once, build the training-loop model, run the rules.

``lint_paths`` fans out over files (in worker processes when there are many); everything a user can get
wrong in a file (encoding, syntax, an unreadable path) becomes an ``LL000`` diagnostic, never a traceback.
"""
from __future__ import annotations

import io
import os
import re
import tokenize
from typing import Iterable, List, Optional, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from looplint.diagnostics import Diagnostic
from looplint.rule import PARSE_ERROR, PARSE_ERROR_NAME, Rule, all_rules

# A file that mentions none of these cannot hold a training loop; it is skipped before parsing.
TRAINING_TOKENS = re.compile(r"backward\(|\.backward\b|zero_grad|\.step\(|\bstep\(|\.grad\b|\bclosure\b|lr_scheduler|Optimizer\b")


def decode(data: bytes) -> str:
    """Decode Python source honouring a PEP 263 cookie and a BOM; raises on undecodable bytes."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    text = data.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


def _error(path: str, message: str, line: int = 1, column: int = 1) -> Diagnostic:
    return Diagnostic(path, line, column, PARSE_ERROR, message, PARSE_ERROR_NAME, line, column)


def _syntax_error(path: str, source: str, e: "cst.ParserSyntaxError") -> Diagnostic:
    """LL000 at the position Python's own parser names (libcst's positions can be a row off)."""
    import ast
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(source)
    except SyntaxError as se:
        if se.lineno:
            return _error(path, f"cannot parse file: {se.msg}", se.lineno, max(se.offset or 1, 1))
    except (ValueError, RecursionError, MemoryError):
        pass
    message = re.sub(r"^(?:parser|tokenizer) error: (?:error at \d+:\d+: )?", "", e.message)
    return _error(path, f"cannot parse file: {message}", e.raw_line, e.raw_column + 1)


def lint_file(path: str, rules: Optional[Sequence[type]] = None) -> List[Diagnostic]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return [_error(path, f"cannot read file: {e.strerror or e}")]
    try:
        source = decode(data)
    except (UnicodeDecodeError, SyntaxError, LookupError) as e:
        return [_error(path, f"cannot decode file: {e}")]
    return lint_source(source, path, rules)


def lint_source(source: str, path: str = "<stdin>", rules: Optional[Sequence[type]] = None) -> List[Diagnostic]:
    """All diagnostics of one Python source text, before ``# noqa`` suppression."""
    rules = all_rules() if rules is None else rules
    if not TRAINING_TOKENS.search(source):
        return []
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as e:
        return [_syntax_error(path, source, e)]
    except (RecursionError, ValueError, MemoryError) as e:  # pathological input
        return [_error(path, f"cannot parse file: {type(e).__name__}")]
    from looplint.suppress import apply_noqa

    try:
        return apply_noqa(check_module(module, path, rules), source)
    except RecursionError:
        # Only pathological code (thousands of nested or concatenated expressions) gets here.
        return [_error(path, "cannot analyse file: its expressions are nested too deeply")]


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


def check_module(module: cst.Module, path: str, rules: Iterable[type]) -> List[Diagnostic]:
    return run_deep(_check_module, module, path, rules)


def _check_module(module: cst.Module, path: str, rules: Iterable[type]) -> List[Diagnostic]:
    from looplint.model import build_model  # the model is only needed when there is code to judge

    model = build_model(module)
    found = []
    for rule_cls in rules:
        rule: Rule = rule_cls()
        for finding in rule.check(model):
            found.append((rule_cls, finding))
    if not found:
        return []
    # Positions are computed only for files with findings, once, over the same tree (no copy).
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    out = {}
    for rule_cls, finding in found:
        rng = positions[finding.node]
        key = (rule_cls.code, rng.start.line, rng.start.column)
        if key not in out:
            out[key] = Diagnostic(
                path, rng.start.line, rng.start.column + 1, rule_cls.code, finding.message, rule_cls.name,
                rng.end.line, rng.end.column + 1,
            )
    return sorted(out.values())


def lint_paths(files: Sequence[str], rules: Optional[Sequence[type]] = None, jobs: Optional[int] = None) -> List[Diagnostic]:
    """Lint many files; uses worker processes when it pays off. Result order is stable."""
    rules = all_rules() if rules is None else list(rules)
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(files) < 16:
        results = [lint_file(f, rules) for f in files]
    else:
        from concurrent.futures import ProcessPoolExecutor

        codes = [r.code for r in rules]
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_lint_by_codes, files, [codes] * len(files), chunksize=8))
    return [d for ds in results for d in ds]


def _lint_by_codes(path: str, codes: List[str]) -> List[Diagnostic]:
    from looplint.rule import rule_by_code

    return lint_file(path, [rule_by_code(c) for c in codes])
