"""``# noqa`` suppression: ``# noqa`` and ``# noqa: LL101,LL102`` on the reported row, and a file-level
``# looplint: noqa`` (optionally with codes) on a line of its own. Only real comments count, never text
inside strings."""
from __future__ import annotations

import io
import re
import tokenize
from typing import Dict, List, Optional, Set, Tuple

from looplint.diagnostics import Diagnostic

NOQA_RE = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
FILE_NOQA_RE = re.compile(r"#\s*(?:looplint|flake8|ruff)\s*:\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)

ALL = None  # a bare noqa suppresses every code


def _codes(text: Optional[str]) -> Optional[Set[str]]:
    return None if not text else {c.upper() for c in re.split(r"[,\s]+", text.strip()) if c}


def parse_noqa(source: str) -> Tuple[Dict[int, Optional[Set[str]]], Optional[Set[str]], bool]:
    """Returns (per-row suppressions, file-level codes, whether a file-level noqa exists)."""
    rows: Dict[int, Optional[Set[str]]] = {}
    file_codes: Optional[Set[str]] = None
    file_level = False
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens = []
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        row = tok.start[0]
        m = FILE_NOQA_RE.match(tok.string)
        if m:
            codes = _codes(m.group("codes"))
            if codes is None:  # a bare file-level noqa silences every code
                file_level, file_codes = True, None
            elif not file_level or file_codes is not None:
                file_level, file_codes = True, (file_codes or set()) | codes
            continue
        m = NOQA_RE.search(tok.string)
        if m:
            codes = _codes(m.group("codes"))
            if row in rows and (rows[row] is None or codes is None):
                rows[row] = None
            else:
                rows[row] = (rows.get(row) or set()) | codes if codes is not None else None
    return rows, file_codes, file_level


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
