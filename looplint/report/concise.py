"""``path:line:col: LL101 message``, one line per finding; in a notebook ``path:cell 3:2:5: LL101 message``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, TextIO

from looplint.diagnostics import Diagnostic

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext


def location(d: Diagnostic, context: "ReportContext") -> str:
    paint = context.paint
    colon = paint(":", "cyan")
    cell = f"cell {d.cell}{colon}" if d.cell is not None else ""
    return f"{paint(context.display_path(d.path), 'bold')}{colon}{cell}{d.line}{colon}{d.column}"


def header(d: Diagnostic, context: "ReportContext") -> str:
    """ruff's first line of a finding, in its colours when ``context.color``: bold path, cyan colons, the
    code in bold red."""
    paint = context.paint
    return f"{location(d, context)}{paint(':', 'cyan')} {paint(d.code, 'bold', 'red')} {d.message}"


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    for d in diagnostics:
        out.write(f"{header(d, context)}\n")
