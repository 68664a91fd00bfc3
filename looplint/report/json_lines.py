"""``--output-format json-lines``: one JSON object per line, the same fields as ``json``."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Sequence, TextIO

from looplint.diagnostics import Diagnostic
from looplint.report.json import to_dict

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    for d in diagnostics:
        out.write(json.dumps(to_dict(d, context), ensure_ascii=False) + "\n")
