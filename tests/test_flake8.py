"""The flake8 plugin, run the way a user runs it: ``flake8 --select LL`` in a subprocess, compared with
``looplint --output-format json`` on the same files (same rows, same columns, same codes and messages)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Set, Tuple

import pytest

from conftest import BAD_COLUMN, BAD_PROGRAM, BAD_ROW, BROKEN_PROGRAM, requires_ll101

pytest.importorskip("flake8", reason="flake8 is not installed (it is in the `test` extra)")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
# flake8's own separator would be ambiguous: messages contain colons, so fields are split on a tab.
FORMAT = "%(path)s\t%(row)d\t%(col)d\t%(code)s\t%(text)s"

Row = Tuple[str, int, int, str, str]

# An astral character before the finding on its row: both tools count columns in code points.
EMOJI_PROGRAM = BAD_PROGRAM.replace("    opt.step()", '    s = "\U0001F600"; opt.step()')


def run_flake8(paths: List[Path], *extra: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "flake8", "--isolated", f"--format={FORMAT}", *extra, *map(str, paths)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def flake8_rows(out: str) -> Set[Row]:
    rows = set()
    for line in out.splitlines():
        path, row, col, code, text = line.split("\t", 4)
        rows.add((os.path.abspath(path), int(row), int(col), code, text))
    return rows


def looplint_rows(paths: List[Path], cwd: Path) -> Set[Row]:
    cmd = [sys.executable, "-m", "looplint", "--isolated", "--output-format", "json", *map(str, paths)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    return {
        (os.path.abspath(d["filename"]), d["location"]["row"], d["location"]["column"], d["code"], d["message"])
        for d in json.loads(proc.stdout)
    }


def test_plugin_is_registered_under_LL():
    proc = subprocess.run([sys.executable, "-m", "flake8", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "looplint" in proc.stdout


@requires_ll101
def test_flake8_reports_what_looplint_reports_on_the_fixtures(tmp_path):
    files = sorted(FIXTURES.glob("*/*.py"))
    assert files, "no fixtures found"
    expected = looplint_rows(files, tmp_path)
    assert any(code == "LL101" for *_, code, _ in expected)  # the comparison is not between two empty sets
    proc = run_flake8(files, "--select", "LL", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert flake8_rows(proc.stdout) == expected


@requires_ll101
def test_row_and_column_of_one_finding(tmp_path):
    (tmp_path / "train.py").write_text(BAD_PROGRAM, encoding="utf-8")
    proc = run_flake8([Path("train.py")], "--select", "LL", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    [(path, row, col, code, text)] = flake8_rows(proc.stdout)
    assert (os.path.basename(path), row, col, code) == ("train.py", BAD_ROW, BAD_COLUMN, "LL101")
    assert "zero_grad" in text


@requires_ll101
def test_astral_character_before_the_finding(tmp_path):
    path = tmp_path / "emoji.py"
    path.write_text(EMOJI_PROGRAM, encoding="utf-8")
    proc = run_flake8([path], "--select", "LL", cwd=tmp_path)
    rows = flake8_rows(proc.stdout)
    assert rows == looplint_rows([path], tmp_path)
    assert {(r, c) for _, r, c, _, _ in rows} == {(BAD_ROW, BAD_COLUMN + len('s = "\U0001F600"; '))}


@requires_ll101
def test_noqa_and_flake8_selection(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BAD_PROGRAM.replace("opt.step()", "opt.step()  # noqa: LL101"), encoding="utf-8")
    assert run_flake8([path], "--select", "LL", cwd=tmp_path).stdout == ""
    path.write_text(BAD_PROGRAM, encoding="utf-8")
    assert run_flake8([path], "--select", "LL", "--extend-ignore", "LL101", cwd=tmp_path).stdout == ""
    # Enabled by default, beside flake8's own checks.
    assert {code for *_, code, _ in flake8_rows(run_flake8([path], cwd=tmp_path).stdout)} >= {"LL101"}


def test_unparsable_file_is_flake8s_E999_only(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(BROKEN_PROGRAM, encoding="utf-8")
    proc = run_flake8([path], "--select", "LL,E999", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert [code for *_, code, _ in flake8_rows(proc.stdout)] == ["E999"]
    assert "Traceback" not in proc.stderr


@requires_ll101
def test_lines_come_from_flake8_not_the_file(tmp_path):
    """``flake8 -`` lints stdin: there is no file to re-read, the plugin must use the lines flake8 gives it."""
    proc = subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "LL", f"--format={FORMAT}", "-"],
        input=BAD_PROGRAM, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert {(r, c, code) for _, r, c, code, _ in flake8_rows(proc.stdout)} == {(BAD_ROW, BAD_COLUMN, "LL101")}
