"""``# noqa`` as users write it: on the reported row (bare or with codes), file-level ``# looplint: noqa``,
never from inside a string, never for LL000. Unit tests use hand-made diagnostics; the end-to-end ones need
LL101 and are skipped until it lands."""
from __future__ import annotations

import pytest

from looplint.diagnostics import Diagnostic
from looplint.suppress import apply_noqa

from conftest import BAD_PROGRAM, BAD_ROW, BROKEN_PROGRAM, requires_ll101


def diag(line, code="LL101", noqa_row=None):
    return Diagnostic("t.py", line, 1, code, "msg", "name", line, 2, noqa_row=noqa_row)


SOURCE = "a = 1\nb = 2\nc = 3\n"


def with_comment(row: int, comment: str) -> str:
    lines = SOURCE.splitlines()
    lines[row - 1] += "  " + comment
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("comment, suppressed", [
    ("# noqa", True),
    ("# NOQA", True),
    ("# noqa: LL101", True),
    ("# noqa:LL101", True),
    ("# noqa: LL102, LL101", True),
    ("# noqa: LL102", False),
    ("# a comment", False),
    ("# noqa: LL101 see issue #12", True),
    ("# type: ignore # noqa: LL101", True),
    ("# noqa: LL102 # noqa: LL101", True),  # every directive in the comment counts
    # a directive that is not a list of codes suppresses nothing (it used to silence every code)
    ("# noqa: garbage", False),
    ("# noqa:", False),
    ("# noqa: LL1O1", False),  # a typo: letter O (it used to read as the prefix LL1)
    ("# noqa: LL102, LL1O1", False),
])
def test_row_noqa(comment, suppressed):
    kept = apply_noqa([diag(2)], with_comment(2, comment))
    assert (kept == []) is suppressed


def test_noqa_on_another_row_does_not_apply():
    assert apply_noqa([diag(2)], with_comment(3, "# noqa")) == [diag(2)]


def test_noqa_row_of_the_diagnostic_is_used():
    assert apply_noqa([diag(2, noqa_row=3)], with_comment(3, "# noqa: LL101")) == []


def test_noqa_inside_a_string_is_not_a_comment():
    source = 'a = 1\nb = "# noqa"\nc = 3\n'
    assert apply_noqa([diag(2)], source) == [diag(2)]


@pytest.mark.parametrize("header, suppressed", [
    ("# looplint: noqa", True),
    ("# looplint: noqa: LL101", True),
    ("# looplint: noqa: LL102", False),
])
def test_file_level_noqa(header, suppressed):
    kept = apply_noqa([diag(2), diag(3)], header + "\n" + SOURCE)
    assert (kept == []) is suppressed


@pytest.mark.parametrize("line_end", ["\r", "\r\n"])
def test_noqa_rows_follow_python_line_ends(line_end):
    source = with_comment(2, "# noqa: LL101").replace("\n", line_end)
    assert apply_noqa([diag(2), diag(3)], source) == [diag(3)]


@pytest.mark.parametrize("source", [
    "a = 1  # looplint: noqa\nb = 2\nc = 3\n",
    "a = 1  # ruff: noqa\nb = 2\nc = 3\n",
    "# looplint: noqa: LL1O1\n" + SOURCE,
    "# looplint: noqa: garbage\n" + SOURCE,
])
def test_a_file_level_noqa_after_code_or_without_codes_suppresses_nothing(source):
    assert apply_noqa([diag(2), diag(3)], source) == [diag(2), diag(3)]


def test_ll000_is_never_suppressed():
    d = diag(2, code="LL000")
    assert apply_noqa([d], "# looplint: noqa\n" + with_comment(2, "# noqa")) == [d]


def test_noqa_does_not_hide_a_parse_error_end_to_end(project, run):
    project({"broken.py": "# looplint: noqa\nimport torch\nloss.backward(  # noqa\n"})
    result = run("broken.py")
    assert result.code == 1 and "LL000" in result.out


@requires_ll101
@pytest.mark.parametrize("comment, suppressed", [
    ("# noqa", True),
    ("# noqa: LL101", True),
    ("# noqa: LL102", False),
])
def test_noqa_end_to_end(project, run, comment, suppressed):
    lines = BAD_PROGRAM.splitlines()
    lines[BAD_ROW - 1] += "  " + comment
    project({"train.py": "\n".join(lines) + "\n"})
    result = run("train.py")
    assert (result.code == 0) is suppressed


@requires_ll101
def test_file_level_noqa_end_to_end(project, run):
    project({"a.py": "# looplint: noqa\n" + BAD_PROGRAM, "b.py": "# looplint: noqa: LL102\n" + BAD_PROGRAM})
    result = run(".")
    assert result.code == 1
    assert "b.py" in result.out and "a.py" not in result.out


@requires_ll101
def test_noqa_text_in_a_string_does_not_suppress(project, run):
    program = BAD_PROGRAM.replace("    opt.step()", "    opt.step(); note = '# noqa'")
    project({"train.py": program})
    assert run("train.py").code == 1


def test_broken_program_helper_is_really_broken(project, run):
    """Guards the helper the other tests rely on: it must stay an LL000 case."""
    project({"b.py": BROKEN_PROGRAM})
    assert "LL000" in run("b.py").out
