"""``# noqa`` suppression: ``# noqa`` and ``# noqa: LL101,LL102`` on the reported row, and a file-level
``# looplint: noqa`` (also ``# flake8: noqa``, ``# ruff: noqa``; optionally with codes) on a line of its own.
Only real comments count, never text inside strings; rows are Python's (``\\r`` alone ends a row too).

A directive whose code list is not a list of codes (``# noqa: garbage``, the typo ``# noqa: LL1O1``, an
empty ``# noqa:``) suppresses nothing: a mistake never widens a suppression. Codes after the first word that
is not a code are not read (``# noqa: LL101 see #12`` is ``LL101``). Every directive in a comment counts
(``# type: ignore # noqa: LL101 # noqa: LL102``). A file-level directive after code on its line is not one.
"""
from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterator, List, Optional, Set, Tuple

from looplint.diagnostics import Diagnostic

ROW_DIRECTIVE = re.compile(r"#\s*noqa\b", re.I)
FILE_DIRECTIVE = re.compile(r"#\s*(?:looplint|flake8|ruff)\s*:\s*noqa\b", re.I)
_COLON = re.compile(r"\s*:\s*")
_WORD = re.compile(r"[^\s,#]+|#")
_CODE = re.compile(r"[A-Za-z]+[0-9]+")

ALL = None  # a bare noqa suppresses every code


@dataclass(frozen=True)
class Directive:
    codes: Optional[FrozenSet[str]]  # None: every code
    end: int  # where its code list ends in the comment (where another code would go); -1 when bare


def directives(comment: str, pattern: "re.Pattern[str]" = ROW_DIRECTIVE) -> Iterator[Directive]:
    """The valid ``noqa`` directives in one comment's text."""
    for m in pattern.finditer(comment):
        colon = _COLON.match(comment, m.end())
        if colon is None:
            yield Directive(ALL, -1)
            continue
        codes, end = [], -1
        for word in _WORD.finditer(comment, colon.end()):
            if not _CODE.fullmatch(word.group()):
                break
            codes.append(word.group().upper())
            end = word.end()
        if codes:
            yield Directive(frozenset(codes), end)


def comments(source: str) -> Iterator[Tuple[int, bool, str]]:
    """(row, whether it is alone on its line, text) of every comment; none if the source does not tokenize."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source, newline=None).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], not tok.line[: tok.start[1]].strip(), tok.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return


def _union(a: Optional[Set[str]], b: Optional[FrozenSet[str]]) -> Optional[Set[str]]:
    return ALL if a is ALL or b is ALL else set(a) | set(b)


def parse_noqa(source: str) -> Tuple[Dict[int, Optional[Set[str]]], Optional[Set[str]], bool]:
    """Returns (per-row suppressions, file-level codes, whether a file-level noqa exists)."""
    rows: Dict[int, Optional[Set[str]]] = {}
    file_codes: Optional[Set[str]] = set()
    file_level = False
    for row, alone, text in comments(source):
        for d in directives(text, FILE_DIRECTIVE) if alone else ():
            file_level, file_codes = True, _union(file_codes, d.codes)
        for d in directives(text):
            rows[row] = _union(rows.get(row, set()), d.codes)
    return rows, file_codes if file_level else ALL, file_level


def _matches(code: str, codes: Optional[Set[str]]) -> bool:
    return codes is None or any(code == c or code.startswith(c) for c in codes)


def apply_noqa(diagnostics: List[Diagnostic], source: str) -> List[Diagnostic]:
    """Drops suppressed diagnostics. ``LL000`` (an unparsable file) is never suppressed."""
    if not diagnostics or "noqa" not in source.lower():
        return diagnostics
    rows, file_codes, file_level = parse_noqa(source)
    out = []
    for d in diagnostics:
        if d.code == "LL000":
            out.append(d)
            continue
        if file_level and _matches(d.code, file_codes):
            continue
        row = d.noqa_row or d.line
        if row in rows and _matches(d.code, rows[row]):
            continue
        out.append(d)
    return out
