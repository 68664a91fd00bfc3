"""Fixes: the engine (rounds, deferral of conflicting edits, formatting kept), writing files back (encoding,
BOM, line endings, mode, notebooks) and the command line (``--fix``, ``--diff``, ``--fix-only``,
``--unsafe-fixes``, ``--show-fixes``, ``--exit-non-zero-on-fix``, ``--add-noqa``)."""
from __future__ import annotations

import glob
import json
import os
import stat

import libcst as cst
import pytest

from conftest import BAD_PROGRAM
from looplint import fix as fixing
from looplint.fix import SAFE, UNSAFE, Fix, fix_source
from looplint.rewrite import add_noqa_source, fix_file
from looplint.rule import Finding, Rule, all_rules

HEAD = "from torch.optim import Optimizer\n"  # a training token: the engine judges only files with one
FIXED_BAD_PROGRAM = BAD_PROGRAM.replace("    loss = model(x)", "    opt.zero_grad()\n    loss = model(x)")


class _TagCalls(Rule):
    """Test rule: every statement ``f()`` is a finding whose fix inserts ``g()`` before it and ``h()``
    after it (``UNSAFE`` when the call has an argument), unless a ``g()`` is there already."""

    code = "LL990"
    name = "tag-calls"

    def check(self, model):
        tree = fixing.tree_of(model)
        if any(fixing.code_of(st).strip() == "g()" for st in model.module.body):
            return
        for st in model.module.body:
            line = st if isinstance(st, cst.SimpleStatementLine) else None
            call = line.body[0].value if line is not None and isinstance(line.body[0], cst.Expr) else None
            if isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value == "f":
                assert tree.statement(call) is st
                yield Finding(call, "f called", Fix("tag", UNSAFE if call.args else SAFE, (
                    fixing.insert_before(st, "g()"), fixing.insert_after(st, "h()"))))


class _ReplaceF(Rule):
    """Test rule: ``f()`` becomes ``k()`` (a second fix on the statement ``_TagCalls`` anchors at)."""

    code = "LL991"
    name = "replace-f"

    def check(self, model):
        for st in model.module.body:
            if isinstance(st, cst.SimpleStatementLine) and fixing.code_of(st).strip().startswith("f()"):
                call = st.body[0].value
                yield Finding(call, "f again", Fix("k", SAFE, (fixing.replace(call, cst.parse_expression("k()")),)))


# -------------------------------------------------------------------------------------------- the engine


def test_fix_keeps_comments_blank_lines_and_crlf():
    source = "from torch.optim import Optimizer  # training\r\n\r\n# call it\r\nf()  # here\r\nx = 1\r\n"
    result = fix_source(source, "t.py", [_TagCalls])
    assert result.source == "from torch.optim import Optimizer  # training\r\n\r\ng()\r\n# call it\r\nf()  # here\r\nh()\r\nx = 1\r\n"
    assert [d.code for d in result.fixed] == ["LL990"]


def test_unsafe_fix_needs_unsafe_fixes():
    source = HEAD + "f(1)\n"
    assert fix_source(source, "t.py", [_TagCalls]).source == source
    assert fix_source(source, "t.py", [_TagCalls], unsafe=True).source == HEAD + "g()\nf(1)\nh()\n"


def test_conflicting_fixes_are_deferred_to_the_next_round():
    # both fixes touch the statement ``f()``: one applies per round, the other after re-linting
    result = fix_source(HEAD + "f()\n", "t.py", [_TagCalls, _ReplaceF])
    assert [d.code for d in result.fixed] == ["LL990", "LL991"]
    assert result.source == HEAD + "g()\nk()\nh()\n"
    assert result.remaining == []


def test_fix_loop_is_bounded():
    class Forever(Rule):
        code, name = "LL992", "forever"

        def check(self, model):
            last = model.module.body[-1]
            yield Finding(last, "again", Fix("again", SAFE, (fixing.insert_after(last, "f()"),)))

    result = fix_source(HEAD + "f()\n", "t.py", [Forever], max_rounds=3)
    assert result.source == HEAD + "f()\nf()\nf()\nf()\n"
    assert len(result.fixed) == 3 and len(result.remaining) == 1


def test_noqa_suppressed_findings_are_not_fixed():
    source = BAD_PROGRAM.replace("opt.step()", "opt.step()  # noqa: LL101")
    assert fix_source(source, "t.py", all_rules()).source == source


def test_fix_survives_a_worker_process_boundary():
    import pickle

    f = pickle.loads(pickle.dumps(Fix("t", UNSAFE, (fixing.insert_before(cst.parse_statement("x\n"), "y"),))))
    assert (f.title, f.applicability, f.edits) == ("t", UNSAFE, ())
    assert not f.applies(unsafe=True)


# -------------------------------------------------------------------------------------- files on disk


def test_fix_file_keeps_encoding_bom_line_endings_and_mode(tmp_path):
    latin = tmp_path / "latin.py"
    latin.write_bytes(("# -*- coding: latin-1 -*-\r\n# caf\u00e9\r\n" + BAD_PROGRAM.replace("\n", "\r\n")).encode("latin-1"))
    os.chmod(latin, 0o751)
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbf" + BAD_PROGRAM.encode())
    for path in (latin, bom):
        assert fix_file(str(path), all_rules()).changed
    assert latin.read_bytes() == ("# -*- coding: latin-1 -*-\r\n# caf\u00e9\r\n" + FIXED_BAD_PROGRAM.replace("\n", "\r\n")).encode("latin-1")
    assert stat.S_IMODE(os.stat(latin).st_mode) == 0o751
    assert bom.read_bytes() == b"\xef\xbb\xbf" + FIXED_BAD_PROGRAM.encode()
    assert sorted(os.listdir(tmp_path)) == ["bom.py", "latin.py"]  # no temporary file left


def _notebook(*cells, indent=1):
    return json.dumps({
        "cells": [{"cell_type": kind, "metadata": {}, "source": src, **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                  for kind, src in cells],
        "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5,
    }, indent=indent) + "\n"


def test_notebook_is_fixed_in_its_cells(tmp_path):
    head, loop = BAD_PROGRAM.split("for x in")
    path = tmp_path / "train.ipynb"
    path.write_text(_notebook(("code", ["%matplotlib inline\n", *head.splitlines(True)]), ("markdown", "# Train"),
                              ("code", ("for x in" + loop).splitlines(True))), encoding="utf-8")
    result = fix_file(str(path), all_rules())
    assert result.changed and [(d.code, d.cell) for d in result.fixed] == [("LL101", 3)]
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["cells"][0]["source"][0] == "%matplotlib inline\n"  # the masked magic is untouched
    assert "".join(data["cells"][2]["source"]) == "for x in" + FIXED_BAD_PROGRAM.split("for x in")[1]
    assert result.remaining == []
    assert fix_file(str(path), all_rules()).changed is False


# ----------------------------------------------------------------------------------------- --add-noqa


def test_add_noqa_merges_and_is_idempotent(tmp_path, run):
    two = BAD_PROGRAM.replace("opt.step()", "opt.step()  # noqa: LL102 see docs")
    path = tmp_path / "a.py"
    path.write_text(two, encoding="utf-8")
    code, _out, err = run("--add-noqa", path)
    assert code == 0 and "Added 1 noqa directive." in err
    assert path.read_text() == BAD_PROGRAM.replace("opt.step()", "opt.step()  # noqa: LL102, LL101 see docs")
    code, out, err = run("--add-noqa", path)
    assert "Added 0 noqa directives." in err
    assert run(path).code == 0  # the finding is suppressed now


def test_add_noqa_in_a_notebook_writes_the_directive_into_the_cell(tmp_path, run):
    head, loop = BAD_PROGRAM.split("for x in")
    path = tmp_path / "train.ipynb"
    path.write_text(_notebook(("code", ["%matplotlib inline\n", *head.splitlines(True)]), ("markdown", "# Train"),
                              ("code", ("for x in" + loop).splitlines(True))), encoding="utf-8")
    code, _out, err = run("--add-noqa", path)
    assert code == 0 and "Added 1 noqa directive." in err
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["cells"][0]["source"][0] == "%matplotlib inline\n"
    assert "".join(data["cells"][2]["source"]) == ("for x in" + loop).replace("opt.step()", "opt.step()  # noqa: LL101")
    assert run(path).code == 0  # suppressed now
    assert "Added 0 noqa directives." in run("--add-noqa", path).err


def test_add_noqa_source_appends_a_directive_and_respects_a_bare_noqa():
    from looplint.engine import lint_source

    found = lint_source(BAD_PROGRAM, "a.py")
    new, n = add_noqa_source(BAD_PROGRAM, found)
    assert n == 1 and "    opt.step()  # noqa: LL101\n" in new
    bare = BAD_PROGRAM.replace("opt.step()", "opt.step()  # noqa")
    assert add_noqa_source(bare, found) == (bare, 0)


# ---------------------------------------------------------------------------------------- command line


def test_diff_prints_and_does_not_write(project, run):
    project({"train.py": BAD_PROGRAM})
    code, out, err = run("--diff", "train.py")
    assert code == 1
    assert out.startswith("--- train.py\n+++ train.py\n")
    assert "+    opt.zero_grad()\n" in out
    assert "Would fix 1 error." in err
    assert open("train.py").read() == BAD_PROGRAM
    project({"train.py": FIXED_BAD_PROGRAM})
    assert run("--diff", "train.py")[:2] == (0, "")


def test_fix_writes_and_reports_what_remains(project, run):
    project({"train.py": BAD_PROGRAM})
    code, out, _err = run("--fix", "--show-fixes", "train.py")
    assert code == 0
    assert "Fixed 1 error:\n- train.py:\n    1 \u00d7 LL101 (missing-zero-grad)\n" in out
    assert out.endswith("Found 1 error (1 fixed, 0 remaining).\n")
    assert open("train.py").read() == FIXED_BAD_PROGRAM
    assert run("--fix", "train.py")[:2] == (0, "All checks passed!\n")  # a second --fix changes nothing


def test_exit_non_zero_on_fix_and_fix_only(project, run):
    project({"a.py": BAD_PROGRAM, "b.py": BAD_PROGRAM})
    assert run("--fix", "--exit-non-zero-on-fix", "a.py").code == 1
    code, out, _err = run("--fix-only", "b.py")
    assert (code, out) == (0, "Fixed 1 error.\n")
    assert open("b.py").read() == FIXED_BAD_PROGRAM


def test_add_noqa_with_stdin_or_with_fix_is_a_usage_error(project, run, monkeypatch):
    project({"a.py": BAD_PROGRAM})
    _stdin(monkeypatch, BAD_PROGRAM)
    code, _out, err = run("--add-noqa", "-")
    assert code == 2 and "stdin" in err
    code, _out, err = run("--add-noqa", "--fix", "a.py")
    assert code == 2 and "--add-noqa" in err


def _stdin(monkeypatch, text: str) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8"))


def test_fix_on_stdin_prints_the_fixed_text_and_reports_what_remains_on_stderr(project, run, monkeypatch):
    project({})
    two = BAD_PROGRAM + "opt.zero_grad()\n"  # LL101 (fixable) stays fixable; a trailing zero_grad is harmless
    _stdin(monkeypatch, two)
    code, out, err = run("--fix", "--stdin-filename", "train.py")
    assert (code, out) == (0, FIXED_BAD_PROGRAM + "opt.zero_grad()\n") and err == ""
    unfixable = BAD_PROGRAM.replace("    loss = model(x)", "    opt.zero_grad()\n    loss = model(x)").replace("    opt.step()\n", "")
    _stdin(monkeypatch, unfixable)  # LL105 (never stepped) has no fix
    code, out, err = run("--fix", "-")
    assert (code, out) == (1, unfixable) and err.startswith("-:7:5: LL105 ")
    _stdin(monkeypatch, BAD_PROGRAM)
    code, out, err = run("--fix-only", "-")
    assert (code, out, err) == (0, FIXED_BAD_PROGRAM, "")


def test_diff_on_stdin_prints_the_diff_and_exits_1(project, run, monkeypatch):
    project({})
    _stdin(monkeypatch, BAD_PROGRAM)
    code, out, err = run("--diff", "--stdin-filename", "train.py")
    assert code == 1 and out.startswith("--- train.py\n+++ train.py\n") and "+    opt.zero_grad()\n" in out
    assert "Would fix 1 error." in err
    _stdin(monkeypatch, FIXED_BAD_PROGRAM)
    assert run("--diff", "-")[:2] == (0, "")


def test_summary_counts_fixable_findings(project, run):
    project({"a.py": BAD_PROGRAM, "b.py": BAD_PROGRAM})
    code, out, _err = run(".")
    assert code == 1 and out.endswith("Found 2 errors.\n[*] 2 fixable with the `--fix` option.\n")


def _apply(text: str, edits) -> str:
    """``text`` with ruff-shaped JSON edits (1-based rows and columns, end exclusive) applied."""
    lines = text.splitlines(True)

    def offset(loc):
        return sum(len(line) for line in lines[:loc["row"] - 1]) + loc["column"] - 1

    for e in sorted(edits, key=lambda e: offset(e["location"]), reverse=True):
        text = text[:offset(e["location"])] + e["content"] + text[offset(e["end_location"]):]
    return text


def test_summary_counts_unsafe_fixes_as_fixable_with_unsafe_fixes(project, run):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    unsafe = open(os.path.join(root, "fixtures", "ll304", "bad_lbfgs_step_without_closure.py"), encoding="utf-8").read()
    project({"a.py": BAD_PROGRAM, "b.py": unsafe})
    out = run(".").out
    assert out.endswith("[*] 1 fixable with the `--fix` option (1 hidden fix can be enabled with the `--unsafe-fixes` option).\n")
    assert run("--unsafe-fixes", ".").out.endswith("[*] 2 fixable with the `--fix` option.\n")
    assert run("b.py").out.endswith("No fixes available (1 hidden fix can be enabled with the `--unsafe-fixes` option).\n")


def test_json_output_names_the_fix_and_its_edits(project, run):
    project({"a.py": BAD_PROGRAM})
    code, out, _err = run("--output-format", "json", "a.py")
    fix = json.loads(out)[0]["fix"]
    assert (fix["applicability"], fix["message"]) == ("safe", "Insert `opt.zero_grad()` before the forward pass")
    assert _apply(BAD_PROGRAM, fix["edits"]) == FIXED_BAD_PROGRAM


@pytest.mark.parametrize("rule_dir", ["ll201", "ll203", "ll401", "ll404", "ll405"])
def test_json_edits_make_the_same_change_as_fix(rule_dir, tmp_path, run):
    from looplint.fix import fixed_text

    fixtures = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", rule_dir)
    checked = 0
    for name in sorted(os.listdir(fixtures)):
        if not name.startswith("bad"):
            continue
        text = open(os.path.join(fixtures, name), encoding="utf-8").read()
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        for d in json.loads(run("--output-format", "json", "--select", rule_dir.upper(), path).out):
            if d["fix"] is None or d["fix"]["applicability"] != "safe":
                continue
            finding = (d["code"], d["location"]["row"], d["location"]["column"])
            rule = [r for r in all_rules() if r.code == d["code"]]
            assert _apply(text, d["fix"]["edits"]) == fixed_text(text, str(path), rule, finding=finding), (name, finding)
            checked += 1
    assert checked


def test_json_edits_made_beside_the_tree_are_the_reports(tmp_path, run, monkeypatch):
    """The JSON report's edits are made in the worker that linted the file (looplint.diagnostics.MAKE_TEXT_EDITS),
    also when cold code around the finding was blanked; the report makes the same ones from the file."""
    from looplint import report

    fixtures = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
    cold = "\n\ndef unrelated(a):\n    return [x * 2 for x in a]  # cold: blanked before parsing\n\n\n"
    for i, path in enumerate(sorted(glob.glob(os.path.join(fixtures, "*", "bad_*.py")))):
        text = open(path, encoding="utf-8").read()
        (tmp_path / f"f{i:03d}.py").write_text(cold + text if i % 2 else text + cold, encoding="utf-8")
    from looplint import rewrite

    real, calls = rewrite.fix_edits, []
    monkeypatch.setattr(rewrite, "fix_edits", lambda *a: calls.append(a) or real(*a))
    made_beside = json.loads(run("--output-format", "json", "--no-cache", tmp_path).out)
    assert calls == []  # the report made none
    monkeypatch.setattr(report, "EDIT_FORMATS", ())
    made_by_report = json.loads(run("--output-format", "json", "--no-cache", tmp_path).out)
    assert calls
    assert made_beside == made_by_report
    assert sum(1 for d in made_beside if d["fix"] and d["fix"]["edits"]) > 30


def test_json_edits_in_a_notebook_are_rows_of_the_cell(tmp_path, run):
    head, loop = BAD_PROGRAM.split("for x in")
    cell = "for x in" + loop
    path = tmp_path / "train.ipynb"
    path.write_text(_notebook(("code", head.splitlines(True)), ("code", cell.splitlines(True))), encoding="utf-8")
    (d,) = json.loads(run("--output-format", "json", path).out)
    assert d["cell"] == 2
    assert _apply(cell, d["fix"]["edits"]) == "for x in" + FIXED_BAD_PROGRAM.split("for x in")[1]
