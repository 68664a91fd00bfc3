"""``path:line:col: LL101 message``, one line per finding; in a notebook ``path:cell 3:2:5: LL101 message``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, TextIO

from looplint.diagnostics import Diagnostic

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext


def location(d: Diagnostic, context: "ReportContext") -> str:
    cell = f"cell {d.cell}:" if d.cell is not None else ""
    return f"{context.display_path(d.path)}:{cell}{d.line}:{d.column}"


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    for d in diagnostics:
        out.write(f"{location(d, context)}: {d.code} {d.message}\n")
