"""What a ruff user expects of the output: colour on a terminal only (``--color``, ``NO_COLOR``,
``FORCE_COLOR``), ``--silent``, ``-v`` with timing, a progress line on a terminal's stderr only, and the
``gitlab`` and ``junit`` formats (parsed here as GitLab and a JUnit reader would)."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from conftest import BAD_COLUMN, BAD_PROGRAM, BAD_ROW, CLEAN_PROGRAM, requires_ll101
from looplint import cli
from looplint.terminal import Paint, Progress, in_ci, use_color

pytestmark = requires_ll101

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_color_env(monkeypatch):
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM", "CI", "GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(name, raising=False)


def on_terminal(monkeypatch, *args):
    """Runs ``looplint`` with stdout and stderr on a (fake) terminal: (exit code, stdout, stderr)."""
    out, err = Terminal(), Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------------------ colour


def test_color_decision():
    tty, pipe = Terminal(), io.StringIO()
    assert use_color("auto", tty, {}) and not use_color("auto", pipe, {})
    assert not use_color("auto", tty, {"NO_COLOR": "1"})
    assert use_color("auto", pipe, {"FORCE_COLOR": "1"})
    assert use_color("auto", tty, {"NO_COLOR": "1", "FORCE_COLOR": "1"})  # FORCE_COLOR wins, as in ruff
    assert use_color("auto", tty, {"NO_COLOR": ""})  # empty means unset
    assert not use_color("auto", tty, {"TERM": "dumb"})
    assert use_color("always", pipe, {"NO_COLOR": "1"}) and not use_color("never", tty, {"FORCE_COLOR": "1"})
    assert Paint(False)("x", "red") == "x" and Paint(True)("x", "red") == "\x1b[31mx\x1b[0m"


def test_color_on_a_terminal_and_not_in_a_pipe(project, run, monkeypatch, no_color_env):
    project({"train.py": BAD_PROGRAM})
    code, out, _ = on_terminal(monkeypatch, "train.py")
    assert code == 1 and ANSI.search(out)
    assert "\x1b[1;31mLL101\x1b[0m" in out  # the code in bold red, like ruff
    plain = ANSI.sub("", out)
    assert f"train.py:{BAD_ROW}:{BAD_COLUMN}: LL101 " in plain
    monkeypatch.undo()
    monkeypatch.chdir(project({}))
    piped = run("train.py")
    assert not ANSI.search(piped.out) and piped.out == plain


@pytest.mark.parametrize("fmt", ["concise", "full"])
def test_color_always_never_and_the_environment(project, run, monkeypatch, no_color_env, fmt):
    project({"train.py": BAD_PROGRAM})
    always = run("--color", "always", "--output-format", fmt, "train.py").out
    never = run("--color", "never", "--output-format", fmt, "train.py").out
    assert ANSI.search(always) and not ANSI.search(never)
    assert ANSI.sub("", always) == never
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert run("--output-format", fmt, "train.py").out == always
    assert run("--color", "never", "--output-format", fmt, "train.py").out == never
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.setenv("NO_COLOR", "1")
    _, out, _ = on_terminal(monkeypatch, "--output-format", fmt, "train.py")
    assert not ANSI.search(out)


def test_machine_formats_are_never_coloured(project, run, no_color_env):
    project({"train.py": BAD_PROGRAM})
    for fmt in ("json", "github", "gitlab", "junit", "sarif"):
        assert not ANSI.search(run("--color", "always", "--output-format", fmt, "train.py").out), fmt


def test_clean_summary_is_green_when_coloured(project, run, no_color_env):
    project({"clean.py": CLEAN_PROGRAM})
    assert run("--color", "always", ".").out == "\x1b[1;32mAll checks passed!\x1b[0m\n"


# ------------------------------------------------------------------------------------------ --silent, -v


def test_silent_prints_nothing_but_keeps_the_exit_status(project, run):
    root = project({"train.py": BAD_PROGRAM, "clean.py": CLEAN_PROGRAM})
    loud = run("-s", ".")
    assert (loud.code, loud.out, loud.err) == (1, "", "")
    assert run("--silent", "clean.py") == (0, "", "")
    assert run("--silent", "empty-dir-that-is-missing").code == 1  # LL000 for the missing path, silently
    written = run("--silent", "-o", "report.json", "--output-format", "json", ".")
    assert written.out == "" and json.loads((root / "report.json").read_text())[0]["code"] == "LL101"


def test_verbose_reports_settings_and_timing_on_stderr(project, run, tmp_path):
    project({
        "a/train.py": BAD_PROGRAM, "a/pyproject.toml": "[tool.looplint]\nignore = []\n", "b/clean.py": CLEAN_PROGRAM,
    })
    quiet = run(".")
    result = run("-v", ".")
    assert result.code == 1 and result.out == quiet.out  # the report is unchanged
    err = result.err
    assert re.search(r"^looplint: found 2 files to lint in \d+\.\d{3} s$", err, re.M)
    assert f"looplint: settings from {tmp_path / 'a' / 'pyproject.toml'} for 1 file\n" in err
    assert "looplint: settings from (defaults: no configuration file) for 1 file\n" in err
    assert re.search(r"^looplint: linted 2 files in \d+\.\d{3} s$", err, re.M)
    slowest = re.search(r"^looplint: slowest: (.+)$", err, re.M).group(1)
    assert re.fullmatch(r"a/train\.py \d+\.\d{3} s, b/clean\.py \d+\.\d{3} s|b/clean\.py \d+\.\d{3} s, a/train\.py \d+\.\d{3} s", slowest)
    assert re.search(r"^looplint: total \d+\.\d{3} s$", err, re.M)


# ------------------------------------------------------------------------------------------ progress


def test_progress_line_is_rewritten_and_erased():
    stream = Terminal()
    progress = Progress(stream, 3, enabled=True, delay=0, interval=0)
    for _ in range(3):
        progress.update()
    progress.clear()
    text = stream.getvalue()
    assert "\r\x1b[2KLinting 1/3 files" in text and "\r\x1b[2KLinting 3/3 files" in text
    assert text.endswith("\r\x1b[2K")
    quiet = Terminal()
    late = Progress(quiet, 3, enabled=True, delay=3600)  # a short run never shows it
    late.update()
    late.clear()
    assert quiet.getvalue() == ""


def test_in_ci():
    assert in_ci({"CI": "true"}) and in_ci({"GITHUB_ACTIONS": "true"}) and in_ci({"GITLAB_CI": "1"})
    assert not in_ci({}) and not in_ci({"CI": "false"}) and not in_ci({"CI": ""})


def test_progress_on_a_terminal_only_and_never_in_ci(project, monkeypatch, no_color_env):
    project({"a.py": BAD_PROGRAM, "b.py": CLEAN_PROGRAM})
    monkeypatch.setattr(cli, "PROGRESS_DELAY", 0)
    _, out, err = on_terminal(monkeypatch, "--color", "never", ".")
    assert "Linting 2/2 files" in err and err.endswith("\r\x1b[2K")
    assert "Linting" not in out
    monkeypatch.setenv("CI", "true")
    _, _, err = on_terminal(monkeypatch, ".")
    assert "Linting" not in err
    monkeypatch.delenv("CI")
    _, _, err = on_terminal(monkeypatch, "-q", ".")
    assert "Linting" not in err


def test_no_progress_or_colour_in_a_pipe(project):
    root = project({"a.py": BAD_PROGRAM})
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("CI", "NO_COLOR", "FORCE_COLOR")}
    proc = subprocess.run(
        [sys.executable, "-m", "looplint", "-v", "."], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "\r" not in proc.stderr and "Linting" not in proc.stderr and not ANSI.search(proc.stdout + proc.stderr)


# ------------------------------------------------------------------------------------------ gitlab, junit

# GitLab's Code Quality report, as its documentation states it (a subset of Code Climate's issue format):
# https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format
GITLAB_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "minLength": 1},
            "fingerprint": {"type": "string", "minLength": 1},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "location": {
                "type": "object",
                "required": ["path"],
                "properties": {
                    "path": {"type": "string", "not": {"pattern": "^/"}},
                    "lines": {"type": "object", "required": ["begin"], "properties": {"begin": {"type": "integer", "minimum": 1}}},
                    "positions": {
                        "type": "object",
                        "required": ["begin"],
                        "properties": {
                            "begin": {"type": "object", "required": ["line"], "properties": {"line": {"type": "integer", "minimum": 1}, "column": {"type": "integer", "minimum": 1}}},
                        },
                    },
                },
                "anyOf": [{"required": ["lines"]}, {"required": ["positions"]}],
            },
        },
    },
}

TWO_BUGS = BAD_PROGRAM + "for x in torch.randn(4, 3, 2):\n    model(x).sum().backward()\n    opt.step()\n"


def test_gitlab_code_quality_report(project, run, monkeypatch):
    root = project({"src/train.py": TWO_BUGS, "clean.py": CLEAN_PROGRAM, "bad.py": "import torch\nloss.backward(\n"})
    monkeypatch.delenv("CI_PROJECT_DIR", raising=False)
    result = run("--output-format", "gitlab", ".")
    assert result.code == 1
    issues = json.loads(result.out)
    jsonschema.validate(issues, GITLAB_SCHEMA)
    by_code = {}
    for item in issues:
        by_code.setdefault(item["check_name"], []).append(item)
    assert sorted(by_code) == ["LL000", "LL101"]
    first = min(by_code["LL101"], key=lambda i: i["location"]["positions"]["begin"]["line"])
    assert first["location"]["path"] == "src/train.py"
    assert first["location"]["positions"]["begin"] == {"line": BAD_ROW, "column": BAD_COLUMN}
    assert first["description"].startswith("LL101 ")
    assert len({i["fingerprint"] for i in issues}) == len(issues)  # unique, as GitLab requires
    # Stable when lines above move (the fingerprint does not hash the row) and rooted at CI_PROJECT_DIR.
    (root / "src" / "train.py").write_text("# a comment\n" + TWO_BUGS)
    moved = json.loads(run("--output-format", "gitlab", ".").out)
    assert {i["fingerprint"] for i in moved} == {i["fingerprint"] for i in issues}
    monkeypatch.setenv("CI_PROJECT_DIR", str(root / "src"))
    nested = json.loads(run("--output-format", "gitlab", "src").out)
    assert {i["location"]["path"] for i in nested} == {"train.py"}
    assert json.loads(run("--output-format", "gitlab", "clean.py").out) == []


def test_junit_report(project, run):
    project({"src/train.py": TWO_BUGS, "other.py": BAD_PROGRAM, "clean.py": CLEAN_PROGRAM})
    result = run("--output-format", "junit", ".")
    assert result.code == 1
    assert result.out.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(result.out.split("\n", 1)[1])
    assert root.tag == "testsuites" and root.get("name") == "looplint"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "3", "0")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert sorted(suites) == ["other.py", "src/train.py"]
    cases = suites["src/train.py"].findall("testcase")
    assert suites["src/train.py"].get("failures") == "2" and len(cases) == 2
    case = cases[0]
    assert (case.get("name"), case.get("classname"), case.get("line"), case.get("column")) == (
        "org.looplint.LL101", "src/train", str(BAD_ROW), str(BAD_COLUMN),
    )
    failure = case.find("failure")
    assert failure is not None and failure.get("message") and f"line {BAD_ROW}, col {BAD_COLUMN}, LL101 " in failure.text

    clean = ET.fromstring(run("--output-format", "junit", "clean.py").out.split("\n", 1)[1])
    assert (clean.get("tests"), clean.get("failures")) == ("1", "0")
    [case] = clean.iter("testcase")
    assert case.find("failure") is None


def test_junit_survives_characters_xml_cannot_hold(project, run):
    from looplint.diagnostics import Diagnostic
    from looplint.report import ReportContext, junit

    out = io.StringIO()
    junit.write([Diagnostic("a\udc80.py", 1, 1, "LL101", "bell \x07 here", "missing-zero-grad")], out, ReportContext())
    root = ET.fromstring(out.getvalue().split("\n", 1)[1])
    assert "\\x07" in root.find("testsuite/testcase/failure").get("message")
