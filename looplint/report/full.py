"""ruff's ``full`` format: the concise header, the source around the finding with carets under it, and a
``help:`` line naming the rule and where its documentation is.

    train.py:7:5: LL101 optimizer `opt` steps on gradients accumulated since the previous step ...
      |
    5 |     loss = model(x).sum()
    6 |     loss.backward()
    7 |     opt.step()
      |     ^^^^^^^^^^ LL101
      |
      = help: missing-zero-grad: run `looplint rule LL101` or see https://...
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Sequence, TextIO

from looplint.diagnostics import Diagnostic
from looplint.report.concise import header

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext

CONTEXT_LINES = 2


def snippet(d: Diagnostic, lines: List[str]) -> List[str]:
    """The numbered source lines around the finding, with carets under the reported span."""
    if not 1 <= d.line <= len(lines):
        return []
    first = max(1, d.line - CONTEXT_LINES)
    last = min(len(lines), d.line + CONTEXT_LINES)
    width = len(str(last))
    gutter = " " * width
    out = [f"{gutter} |"]
    for row in range(first, last + 1):
        text = lines[row - 1].rstrip("\r\n").expandtabs(1)
        out.append(f"{row:>{width}} | {text}".rstrip())
        if row == d.line:
            start = max(d.column - 1, 0)
            if d.end_line > d.line:  # a multi-line node: underline to the end of its first line
                end = len(text)
            elif d.end_line == d.line and d.end_column > d.column:
                end = d.end_column - 1
            else:  # an empty span (e.g. LL000): one caret
                end = start + 1
            length = max(1, min(end, len(text)) - start)
            out.append(f"{gutter} | {' ' * start}{'^' * length} {d.code}")
    out.append(f"{gutter} |")
    return out


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    for d in diagnostics:
        out.write(f"{header(d, context)}\n")
        lines = context.source_lines(d)
        body = snippet(d, lines) if lines is not None else []
        for line in body:
            out.write(f"{line}\n")
        if d.url:
            indent = " " * (len(body[0]) - 1) if body else "  "
            out.write(f"{indent}= help: {d.name}: run `looplint rule {d.code}` or see {d.url}\n")
        out.write("\n")
