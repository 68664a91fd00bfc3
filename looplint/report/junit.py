"""``--output-format junit``: JUnit XML, which CI systems (GitLab, Jenkins, Azure) show as failed tests.

One ``<testsuite>`` per file with findings, one failing ``<testcase name="org.looplint.LL101">`` per
finding (``classname`` is the path without its suffix, ``line`` and ``column`` its place; in a notebook the
message starts with the cell). A run without findings is one passing test case, so that the report still
says the check ran.
"""
from __future__ import annotations

import os
import re
from itertools import groupby
from typing import TYPE_CHECKING, Sequence, TextIO
from xml.etree import ElementTree as ET

from looplint.diagnostics import Diagnostic

if TYPE_CHECKING:  # pragma: no cover
    from looplint.report import ReportContext

NAME = "looplint"
# What XML 1.0 cannot hold (control characters, lone surrogates from undecodable file names): escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def _counts(element: ET.Element, tests: int, failures: int) -> None:
    element.set("tests", str(tests))
    element.set("failures", str(failures))
    element.set("errors", "0")


def _case(d: Diagnostic, shown: str) -> ET.Element:
    case = ET.Element("testcase", name=f"org.{NAME}.{d.code}", classname=xml_text(os.path.splitext(shown)[0]))
    case.set("line", str(d.line))
    case.set("column", str(d.column))
    where = f"cell {d.cell}, " if d.cell is not None else ""
    failure = ET.SubElement(case, "failure", message=xml_text(d.message))
    failure.text = xml_text(f"{where}line {d.line}, col {d.column}, {d.code} {d.message}")
    return case


def write(diagnostics: Sequence[Diagnostic], out: TextIO, context: "ReportContext") -> None:
    suites = ET.Element("testsuites", name=NAME)
    _counts(suites, max(1, len(diagnostics)), len(diagnostics))
    if not diagnostics:
        suite = ET.SubElement(suites, "testsuite", name=NAME)
        _counts(suite, 1, 0)
        ET.SubElement(suite, "testcase", name="No errors found", classname=NAME)
    for path, group in groupby(diagnostics, key=lambda d: d.path):
        found = list(group)
        shown = context.display_path(path).replace("\\", "/")
        suite = ET.SubElement(suites, "testsuite", name=xml_text(shown))
        _counts(suite, len(found), len(found))
        suite.extend(_case(d, shown) for d in found)
    ET.indent(suites)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(suites, encoding="unicode"))
    out.write("\n")
