"""``--output-format json``: a JSON list of findings with ruff's field names (rows and columns 1-based;
in a notebook ``cell`` is the 1-based cell number and rows are relative to it; ``filename`` is absolute)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Sequence, TextIO

from looplint.diagnostics import Diagnostic

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext


def to_dict(d: Diagnostic, context: "ReportContext") -> Dict[str, Any]:
    return {
        "cell": d.cell,
        "code": d.code,
        "end_location": {"column": d.end_column or d.column, "row": d.end_line or d.line},
        "filename": context.absolute_path(d.path),
        "fix": _fix(d, context) if d.fix is not None else None,
        "location": {"column": d.column, "row": d.line},
        "message": d.message,
        "name": d.name,
        "noqa_row": d.noqa_row or d.line,
        "url": d.url,
    }


def _fix(d: Diagnostic, context: "ReportContext") -> Dict[str, Any]:
    edits = [{"content": e.content, "end_location": {"column": e.end_column, "row": e.end_row},
              "location": {"column": e.column, "row": e.row}} for e in context.fix_edits(d)]
    return {"applicability": d.fix.applicability, "edits": edits, "message": d.fix.title}


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    json.dump([to_dict(d, context) for d in diagnostics], out, indent=2, ensure_ascii=False)
    out.write("\n")
