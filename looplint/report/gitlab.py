"""``--output-format gitlab``: a GitLab Code Quality report (a JSON list of issues), as ruff writes it.

Each finding is ``{"description", "check_name", "fingerprint", "severity", "location": {"path",
"positions": {"begin": {"line", "column"}, "end": {"line", "column"}}}}``. Paths are relative to
``$CI_PROJECT_DIR`` when GitLab sets it (the repository's checkout), else to the working directory. The
fingerprint is a hash of the code, path, notebook cell and message (and a counter for identical findings),
not of the row, so that a finding keeps its identity when lines above it move. In a notebook the rows are
relative to the cell named at the start of the description.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, Sequence, TextIO

from looplint.diagnostics import Diagnostic

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext

PROJECT_DIR_ENV = "CI_PROJECT_DIR"
SEVERITY = "major"


def project_path(path: str, context: "ReportContext") -> str:
    root = os.environ.get(PROJECT_DIR_ENV)
    if not root or path == "-":
        return context.display_path(path).replace("\\", "/")
    try:
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    except ValueError:  # another drive on Windows
        return context.absolute_path(path).replace("\\", "/")
    return relative.replace("\\", "/")


def issue(d: Diagnostic, path: str, fingerprint: str) -> Dict[str, Any]:
    where = f"cell {d.cell}: " if d.cell is not None else ""
    return {
        "description": f"{where}{d.code} {d.message}",
        "check_name": d.code,
        "fingerprint": fingerprint,
        "severity": SEVERITY,
        "location": {
            "path": path,
            "positions": {
                "begin": {"line": d.line, "column": d.column},
                "end": {"line": d.end_line or d.line, "column": d.end_column or d.column},
            },
        },
    }


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    seen: Counter = Counter()
    issues = []
    for d in diagnostics:
        path = project_path(d.path, context)
        key = "\0".join((d.code, path, str(d.cell or 0), d.message))
        seen[key] += 1
        digest = hashlib.sha256(f"{key}\0{seen[key]}".encode("utf-8", "surrogatepass")).hexdigest()
        issues.append(issue(d, path, digest))
    json.dump(issues, out, indent=2, ensure_ascii=False)
    out.write("\n")
