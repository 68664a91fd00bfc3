"""``--output-format sarif``: SARIF 2.1.0 (the format of GitHub code scanning).

One run. ``tool.driver.rules`` lists the rules that fired, with the rule's documentation as help text;
each result carries ``ruleId``, ``ruleIndex``, ``level``, ``message`` and one physical location whose
artifact URI is relative to the working directory (``uriBaseId`` ``%SRCROOT%``), or an absolute ``file:``
URI for a file outside it. Columns count Unicode code points (``columnKind``), ``endColumn`` is exclusive.
A notebook finding's rows are relative to its cell, named in the result's ``properties.cell``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, TextIO
from urllib.parse import quote

import looplint
from looplint.diagnostics import REPOSITORY_URL, Diagnostic, docs_url
from looplint.rule import PARSE_ERROR, PARSE_ERROR_NAME, rule_by_code

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = REPOSITORY_URL
PARSE_ERROR_DOC = (
    "## What it does\nReports a file that looplint cannot read, decode or parse.\n\n"
    "## Why is this bad?\nNothing in such a file can be checked; the message says what went wrong."
)


def _what_it_does(doc: str) -> str:
    m = re.search(r"## What it does\s*\n(.+?)(?=\n## |\Z)", doc, re.S)
    return " ".join((m.group(1) if m else doc).split())


def rule_descriptor(code: str) -> Dict[str, Any]:
    rule = rule_by_code(code)
    if rule is not None:
        name, doc, summary = rule.name, rule.documentation(), rule.summary()
    elif code == PARSE_ERROR:
        name, doc, summary = PARSE_ERROR_NAME, PARSE_ERROR_DOC, "File cannot be read, decoded or parsed."
    else:
        name, doc, summary = code.lower(), "", code
    descriptor: Dict[str, Any] = {
        "id": code,
        "name": name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": _what_it_does(doc) or summary},
        "help": {"text": doc or summary, "markdown": doc or summary},
        "defaultConfiguration": {"level": "error"},
    }
    if code == PARSE_ERROR or rule is not None:
        descriptor["helpUri"] = docs_url(code)
    return descriptor


def artifact_location(path: str, context: "ReportContext") -> Dict[str, str]:
    if path == "-":
        return {"uri": "stdin"}
    shown = context.display_path(path)
    if os.path.isabs(shown):
        return {"uri": Path(shown).as_uri()}
    return {"uri": quote(shown.replace(os.sep, "/")), "uriBaseId": "%SRCROOT%"}


def result(d: Diagnostic, index: int, context: "ReportContext") -> Dict[str, Any]:
    region = {
        "startLine": d.line,
        "startColumn": d.column,
        "endLine": max(d.end_line or d.line, d.line),
        "endColumn": d.end_column or d.column,
    }
    out: Dict[str, Any] = {
        "ruleId": d.code,
        "ruleIndex": index,
        "level": "error",
        "message": {"text": d.message},
        "locations": [{"physicalLocation": {"artifactLocation": artifact_location(d.path, context), "region": region}}],
    }
    if d.cell is not None:
        out["properties"] = {"cell": d.cell}
    return out


def to_sarif(diagnostics: Sequence[Diagnostic], context: "ReportContext") -> Dict[str, Any]:
    codes: List[str] = sorted({d.code for d in diagnostics})
    index = {c: i for i, c in enumerate(codes)}
    root = Path(context.cwd).resolve().as_uri().rstrip("/") + "/"
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "looplint",
                        "version": looplint.__version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [rule_descriptor(c) for c in codes],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": root}},
                "columnKind": "unicodeCodePoints",
                "results": [result(d, index[d.code], context) for d in diagnostics],
            }
        ],
    }


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    json.dump(to_sarif(diagnostics, context), out, indent=2, ensure_ascii=False)
    out.write("\n")
