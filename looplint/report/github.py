"""``--output-format github``: GitHub Actions workflow commands, which GitHub shows as annotations.

    ::error title=looplint (LL101),file=train.py,line=7,col=5,endLine=7,endColumn=15::LL101 message

Escaping follows GitHub's runner: in the message ``%``, ``\\r`` and ``\\n``; in property values also ``:``
and ``,``. In a notebook the rows are relative to the cell, and the message starts with ``cell N:``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, TextIO

from looplint.diagnostics import Diagnostic

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    for d in diagnostics:
        props = [
            ("title", f"looplint ({d.code})"),
            ("file", context.display_path(d.path).replace("\\", "/")),
            ("line", str(d.line)),
            ("col", str(d.column)),
            ("endLine", str(d.end_line or d.line)),
            ("endColumn", str(d.end_column or d.column)),
        ]
        where = f"cell {d.cell}: " if d.cell is not None else ""
        head = ",".join(f"{k}={escape_property(v)}" for k, v in props)
        out.write(f"::error {head}::{escape_data(f'{where}{d.code} {d.message}')}\n")
