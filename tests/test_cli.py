"""The command line contract: exit codes, discovery, options, stdin, errors. Most tests call
``cli.main`` in-process; a handful run the installed ``looplint`` command end to end."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types

import pytest

import looplint
from looplint import cli
from conftest import BAD_COLUMN, BAD_PROGRAM, BAD_ROW, BROKEN_COLUMN, BROKEN_PROGRAM, CLEAN_PROGRAM, relative, requires_ll101

CONCISE = re.compile(r"^(?P<path>.+?):(?:cell (?P<cell>\d+):)?(?P<row>\d+):(?P<col>\d+): (?P<code>LL\d{3}) (?P<message>.+)$")


def findings(out: str):
    """(path, row, column, code) of every concise line of ``out``."""
    rows = []
    for line in out.splitlines():
        m = CONCISE.match(line)
        if m:
            rows.append((m["path"], int(m["row"]), int(m["col"]), m["code"]))
    return rows


# ---------------------------------------------------------------------------------------------- end to end


def _looplint_command():
    """The console script installed beside this interpreter (so a virtualenv tests its own install)."""
    exe = shutil.which("looplint", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "looplint"]


def test_installed_command_reports_unparsable_file_beside_clean_one(project):
    root = project({"pkg/broken.py": BROKEN_PROGRAM, "pkg/clean.py": CLEAN_PROGRAM})
    proc = subprocess.run(_looplint_command() + ["pkg"], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert findings(proc.stdout) == [(relative("pkg/broken.py"), 2, BROKEN_COLUMN, "LL000")]
    assert proc.stdout.rstrip().endswith("Found 1 error.")
    assert "Traceback" not in proc.stderr


def test_python_dash_m_version_and_clean_exit(project):
    root = project({"clean.py": CLEAN_PROGRAM})
    version = subprocess.run([sys.executable, "-m", "looplint", "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0
    assert version.stdout.strip() == f"looplint {looplint.__version__}"
    proc = subprocess.run([sys.executable, "-m", "looplint", "clean.py"], cwd=root, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, "All checks passed!\n")


def test_installed_command_reads_stdin_under_the_given_name(project):
    root = project({})
    proc = subprocess.run(
        _looplint_command() + ["-", "--stdin-filename", "src/train.py", "--output-format", "json"],
        cwd=root, input=BROKEN_PROGRAM, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    [item] = json.loads(proc.stdout)
    assert item["code"] == "LL000"
    assert item["filename"] == os.path.join(str(root), "src", "train.py")


def test_terminal_that_cannot_show_a_name_gets_an_escape_not_a_crash(project):
    root = project({"caf\u00e9.py": BROKEN_PROGRAM})
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    proc = subprocess.run(_looplint_command() + ["."], cwd=root, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(b"caf\\xe9.py:2:%d: LL000" % BROKEN_COLUMN)


@requires_ll101
def test_installed_command_reports_ll101(project):
    root = project({"train.py": BAD_PROGRAM})
    proc = subprocess.run(_looplint_command() + ["train.py"], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert findings(proc.stdout) == [("train.py", BAD_ROW, BAD_COLUMN, "LL101")]


# ---------------------------------------------------------------------------------------------- exit codes


def test_clean_file_exits_zero_with_ruff_summary(project, run):
    project({"clean.py": CLEAN_PROGRAM})
    result = run("clean.py")
    assert result == (0, "All checks passed!\n", "")


def test_no_python_files_warns_and_exits_zero(project, run):
    project({"notes.txt": BROKEN_PROGRAM})
    result = run(".")
    assert result.code == 0
    assert "no Python files found" in result.err


def test_check_subcommand_is_the_default_command(project, run):
    project({"broken.py": BROKEN_PROGRAM})
    assert run("check", "broken.py") == run("broken.py")


def test_no_path_lints_the_working_directory(project, run):
    project({"a/broken.py": BROKEN_PROGRAM})
    result = run()
    assert findings(result.out) == [(relative("a/broken.py"), 2, BROKEN_COLUMN, "LL000")]


def test_unparsable_file_is_ll000_and_others_are_still_linted(project, run):
    project({"a_broken.py": BROKEN_PROGRAM, "b_clean.py": CLEAN_PROGRAM, "c_broken.py": BROKEN_PROGRAM})
    result = run(".")
    assert result.code == 1
    assert [f[0] for f in findings(result.out)] == ["a_broken.py", "c_broken.py"]
    assert "cannot parse" in result.out
    assert result.out.endswith("Found 2 errors.\n")


def test_undecodable_file_is_ll000(project, run, tmp_path):
    project({})
    (tmp_path / "latin.py").write_bytes(b"# -*- coding: utf-8 -*-\nloss.backward()  # \xff\xfe\n")
    result = run("latin.py")
    assert result.code == 1
    assert findings(result.out)[0][3] == "LL000"
    assert "cannot decode" in result.out


def test_missing_path_is_reported_like_ruff_e902_and_the_rest_is_linted(project, run):
    project({"broken.py": BROKEN_PROGRAM})
    result = run("nope.py", "broken.py")
    assert result.code == 1
    assert findings(result.out) == [("broken.py", 2, BROKEN_COLUMN, "LL000"), ("nope.py", 1, 1, "LL000")]
    assert "nope.py:1:1: LL000 cannot read file: No such file or directory" in result.out


def test_help_documents_missing_paths_and_exit_codes(run):
    result = run("--help")
    assert result.code == 0
    assert "does not exist" in result.out and "LL000" in result.out
    for status in ("0  ", "1  ", "2  "):
        assert status in result.out


def test_exit_zero_keeps_findings_but_exits_zero(project, run):
    project({"broken.py": BROKEN_PROGRAM})
    result = run("--exit-zero", "broken.py")
    assert result.code == 0
    assert findings(result.out)


def test_quiet_drops_the_summary_line(project, run):
    project({"broken.py": BROKEN_PROGRAM, "clean.py": CLEAN_PROGRAM})
    assert "Found" not in run("-q", "broken.py").out
    assert run("--quiet", "clean.py") == (0, "", "")


# ---------------------------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("option", ["--select", "--ignore", "--extend-select"])
def test_unknown_rule_selector_exits_2_naming_it(project, run, option):
    project({"clean.py": CLEAN_PROGRAM})
    result = run(option, "LL000,LL999", "clean.py")
    assert result.code == 2
    assert "LL999" in result.err and option in result.err
    assert result.out == ""


def test_unknown_output_format_exits_2(project, run):
    project({"clean.py": CLEAN_PROGRAM})
    result = run("--output-format", "xml", "clean.py")
    assert result.code == 2
    assert "xml" in result.err


def test_output_format_from_environment(project, run, monkeypatch):
    project({"broken.py": BROKEN_PROGRAM})
    monkeypatch.setenv("LOOPLINT_OUTPUT_FORMAT", "json")
    assert json.loads(run("broken.py").out)[0]["code"] == "LL000"
    # the option beats the environment
    assert findings(run("--output-format", "concise", "broken.py").out)
    monkeypatch.setenv("LOOPLINT_OUTPUT_FORMAT", "yaml")
    result = run("broken.py")
    assert result.code == 2 and "LOOPLINT_OUTPUT_FORMAT" in result.err


def test_bad_option_and_bad_jobs_exit_2(project, run):
    project({"clean.py": CLEAN_PROGRAM})
    assert run("--no-such-option", "clean.py").code == 2
    assert run("--jobs", "0", "clean.py").code == 2


def test_stdin_dash_cannot_be_mixed_with_paths(project, run):
    project({"clean.py": CLEAN_PROGRAM})
    result = run("-", "clean.py")
    assert result.code == 2 and "stdin" in result.err


# ---------------------------------------------------------------------------------------------- discovery


def test_discovery_skips_hidden_virtualenv_and_build_folders(project, run):
    skipped = [
        ".git/x.py", ".hidden/x.py", "venv/x.py", ".venv/x.py", "env3/x.py", "__pycache__/x.py",
        "build/x.py", "dist/x.py", "node_modules/x.py", "pkg/build/x.py",
    ]
    linted = ["pkg/a.py", "pkg/b.pyi", "top.py", "nested/deeper/c.py"]
    root = project({name: BROKEN_PROGRAM for name in skipped + linted})
    (root / "env3" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "notes.txt").write_text(BROKEN_PROGRAM)
    result = run(".")
    assert [f[0] for f in findings(result.out)] == sorted(relative(p) for p in linted)


def test_explicit_files_are_linted_even_in_excluded_folders(project, run):
    project({"build/gen.py": BROKEN_PROGRAM, "script": BROKEN_PROGRAM})
    result = run(relative("build/gen.py"), "script")
    assert [f[0] for f in findings(result.out)] == [relative("build/gen.py"), "script"]
    forced = run("--force-exclude", relative("build/gen.py"))
    assert forced.code == 0 and not findings(forced.out)


def test_output_order_is_sorted_and_stable(project, run):
    names = ["z.py", "a.py", "m/b.py", "m/a.py", "B.py"]
    project({n: BROKEN_PROGRAM for n in names})
    first = run("z.py", "m", ".", "a.py", os.path.abspath("a.py"))  # overlapping arguments: each file once
    assert [f[0] for f in findings(first.out)] == sorted(relative(n) for n in names)
    assert run(".").out == first.out


def test_parallel_jobs_give_the_same_report(project, run):
    files = {f"pkg/m{i:02d}.py": (BROKEN_PROGRAM if i % 3 == 0 else CLEAN_PROGRAM) for i in range(24)}
    project(files)
    serial = run("--jobs", "1", "pkg")
    parallel = run("--jobs", "2", "pkg")
    assert parallel == serial
    assert len(findings(serial.out)) == 8


# ---------------------------------------------------------------------------------------------- stdin


def _stdin(monkeypatch, text: str) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8"))


def test_stdin_is_reported_under_stdin_filename(project, run, monkeypatch):
    project({})
    _stdin(monkeypatch, BROKEN_PROGRAM)
    result = run("-", "--stdin-filename", relative("src/train.py"))
    assert findings(result.out) == [(relative("src/train.py"), 2, BROKEN_COLUMN, "LL000")]


def test_stdin_without_a_name_is_dash(project, run, monkeypatch):
    project({})
    _stdin(monkeypatch, BROKEN_PROGRAM)
    assert findings(run("-").out) == [("-", 2, BROKEN_COLUMN, "LL000")]


def test_stdin_applies_config_and_per_file_ignores_for_its_name(project, run, monkeypatch):
    project({"pyproject.toml": '[tool.looplint]\nper-file-ignores = {"legacy/*.py" = ["LL000"]}\n'})
    _stdin(monkeypatch, BROKEN_PROGRAM)
    assert run("-", "--stdin-filename", relative("legacy/old.py")).code == 0
    _stdin(monkeypatch, BROKEN_PROGRAM)
    assert run("-", "--stdin-filename", relative("src/new.py")).code == 1


def test_stdin_filename_alone_reads_stdin(project, run, monkeypatch):
    project({})
    _stdin(monkeypatch, CLEAN_PROGRAM)
    assert run("--stdin-filename", "x.py") == (0, "All checks passed!\n", "")


# ---------------------------------------------------------------------------------------------- statistics, output file


def test_statistics_counts_per_code_with_name(project, run):
    project({"a.py": BROKEN_PROGRAM, "b.py": BROKEN_PROGRAM, "c.py": CLEAN_PROGRAM})
    result = run("--statistics", ".")
    assert result.code == 1
    assert result.out.splitlines() == ["2\tLL000\tunreadable-file", "Found 2 errors."]
    assert run("--statistics", "-q", ".").out == "2\tLL000\tunreadable-file\n"
    as_json = json.loads(run("--statistics", "--output-format", "json", ".").out)
    assert as_json == [{"code": "LL000", "name": "unreadable-file", "count": 2, "fixable": False}]
    assert run("--statistics", "c.py") == (0, "", "")


def test_output_file_receives_the_report(project, run, tmp_path):
    project({"broken.py": BROKEN_PROGRAM})
    result = run("--output-format", "json", "--output-file", relative("out/report.json"), "broken.py")
    assert result.code == 1 and result.out == ""
    assert json.loads((tmp_path / "out" / "report.json").read_text())[0]["code"] == "LL000"


# ---------------------------------------------------------------------------------------------- internal errors


def test_internal_error_in_one_file_is_one_line_and_exit_2(project, run, monkeypatch):
    project({"boom.py": CLEAN_PROGRAM, "broken.py": BROKEN_PROGRAM})
    import looplint.notebook

    real = looplint.notebook.lint_any

    def flaky(path, rules=None):
        if path.endswith("boom.py"):
            raise RuntimeError("kaput")
        return real(path, rules)

    monkeypatch.setattr(looplint.notebook, "lint_any", flaky)
    result = run("--jobs", "1", ".")
    assert result.code == 2
    assert findings(result.out) == [("broken.py", 2, BROKEN_COLUMN, "LL000")]  # the other file is still reported
    assert "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    assert "boom.py" in line and "RuntimeError: kaput" in line and "please report" in line

    monkeypatch.setenv("LOOPLINT_DEBUG", "1")
    debug = run("--jobs", "1", ".")
    assert debug.code == 2 and "Traceback" in debug.err


def test_internal_error_outside_files_never_shows_a_traceback(project, run, monkeypatch):
    project({"clean.py": CLEAN_PROGRAM})

    def broken_resolver(*args, **kwargs):
        raise ValueError("resolver exploded")

    monkeypatch.setattr(cli, "Resolver", broken_resolver)
    result = run("clean.py")
    assert result.code == 2
    assert "please report" in result.err and "resolver exploded" in result.err
    assert "Traceback" not in result.err
    assert "Traceback" in run("--debug", "clean.py").err


# ---------------------------------------------------------------------------------------------- optional commands


@pytest.mark.parametrize("command, module, extra", [
    ("server", "looplint.server", "lsp"),
    ("confirm", "looplint.runtime.confirm", "runtime"),
])
def test_optional_command_without_its_module_names_the_extra(run, monkeypatch, command, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail as if it were not installed
    result = run(command)
    assert result.code == 2
    assert f"pip install 'looplint[{extra}]'" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("command, module, extra, dependency", [
    ("server", "looplint.server", "lsp", "pygls"),
    ("confirm", "looplint.runtime.confirm", "runtime", "torch"),
])
def test_optional_command_with_missing_dependency_names_the_extra(run, monkeypatch, command, module, extra, dependency):
    fake = types.ModuleType(module)

    def main(argv):
        raise ModuleNotFoundError(f"No module named '{dependency}'", name=dependency)

    fake.main = main
    monkeypatch.setitem(sys.modules, module, fake)
    result = run(command)
    assert result.code == 2
    assert dependency in result.err and f"pip install 'looplint[{extra}]'" in result.err


def test_optional_command_receives_its_arguments_and_returns_its_status(run, monkeypatch):
    seen = []
    fake = types.ModuleType("looplint.server")
    fake.main = lambda argv: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "looplint.server", fake)
    assert run("server", "--stdio").code == 3
    assert seen == [["--stdio"]]


# ---------------------------------------------------------------------------------------------- with LL101


@requires_ll101
def test_ll101_concise_location_and_exit_code(project, run):
    project({"train.py": BAD_PROGRAM})
    result = run("train.py")
    assert result.code == 1
    assert findings(result.out) == [("train.py", BAD_ROW, BAD_COLUMN, "LL101")]


@requires_ll101
def test_select_and_ignore_with_prefixes(project, run):
    project({"train.py": BAD_PROGRAM})
    assert run("--ignore", "LL101", "train.py").code == 0
    assert run("--ignore", "LL1", "train.py").code == 0
    assert run("--select", "LL1", "--ignore", "LL10", "train.py").code == 0
    assert run("--select", "LL101", "--ignore", "LL1", "train.py").code == 1  # the more specific wins
    assert run("--select", "ll1", "train.py").code == 1  # case-insensitive
    assert run("--select", "ALL", "train.py").code == 1
    others = [r.code for r in __import__("looplint.rule", fromlist=["all_rules"]).all_rules() if r.code != "LL101"]
    if others:
        assert run("--select", ",".join(others), "train.py").code == 0
    assert run("--ignore", "LL101", "--extend-select", "LL101", "train.py").code == 0  # tie: ignore wins


@requires_ll101
def test_exit_zero_and_statistics_with_ll101(project, run):
    project({"a.py": BAD_PROGRAM, "b.py": BAD_PROGRAM})
    assert run("--exit-zero", ".").code == 0
    from looplint.rule import rule_by_code

    assert run("--statistics", "-q", ".").out == f"2\tLL101\t{rule_by_code('LL101').name}\n"


# ---------------------------------------------------------------------------------------------- edge cases


def test_select_with_no_codes_is_a_usage_error(project, run):
    project({"broken.py": BROKEN_PROGRAM})
    result = run("--select", "", "broken.py")  # it used to turn off every rule, LL000 included
    assert result.code == 2 and "--select" in result.err and "All checks passed" not in result.out


def test_a_file_the_prefilter_skips_is_still_checked_for_syntax(project, run):
    project({"notes.py": "def f(:\n    pass\n", "fine.py": "x = 1\n"})
    result = run(".")
    assert result.code == 1
    assert [line.split(":")[0] for line in result.out.splitlines() if "LL000" in line] == ["notes.py"]


def test_a_file_python_refuses_for_its_encoding_is_ll000(project, run, tmp_path):
    project({})
    # CPython decodes the whole file as UTF-16 and finds nothing but invalid characters.
    (tmp_path / "wide.py").write_bytes(b"# coding: utf-16-le\nimport torch\nloss.backward() \n")  # an even length
    (tmp_path / "bom.py").write_bytes(b"# coding: utf-16\nx = 1\n")
    result = run(".")
    rows = sorted(line.split(":")[0] for line in result.out.splitlines() if "LL000" in line)
    assert result.code == 1 and rows == ["bom.py", "wide.py"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_an_output_that_cannot_be_written_is_exit_2_naming_it(project, run):
    project({"train.py": BAD_PROGRAM})
    result = run("-o", "/dev/full", "train.py")
    assert result.code == 2 and "cannot write to --output-file /dev/full" in result.err
    assert "internal error" not in result.err


@pytest.mark.skipif(os.name != "posix", reason="closes a file descriptor before exec")
def test_a_closed_stdout_is_exit_2_naming_it(project):
    root = project({"train.py": BAD_PROGRAM})
    for args in (["train.py"], ["rules"]):
        proc = subprocess.run(_looplint_command() + args, cwd=root, capture_output=False, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(1))
        assert proc.returncode == 2 and "cannot write to stdout: it is closed" in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr
