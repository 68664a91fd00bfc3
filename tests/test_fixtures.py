"""The fixtures are the rules' specification: each ``fixtures/**/*.py`` is a small runnable training program
with ``# expect: LL101`` on every line where looplint must report (``bad_*``) or no marker at all
(``good_*``).

* ``test_diagnostics_match_markers``: looplint's ``(code, line)`` pairs on a fixture equal its markers exactly.
  Markers of rules that are not registered yet make the test xfail with the reason (after the registered
  rules have been checked strictly), so nothing pending passes silently.
* ``test_fixture_runs``: every fixture runs with ``python`` on CPU torch, exits 0 and writes no files.
* The layout tests: every mission rule has a bad fixture expecting it and a good fixture in its folder, and
  the markers are well formed.
"""
from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

import pytest

from looplint.engine import lint_file
from looplint.rule import all_rules

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE_FILES = sorted(FIXTURES.rglob("*.py"))
MISSION_CODES = [f"LL10{n}" for n in range(1, 10)]
RUN_TIMEOUT = 60  # seconds per fixture, counted from its fork (torch is already imported)
RUNNER_GUARD = 600  # seconds for the runner to start (Python, torch, warm-up): a guard, never a measure

MARKER_RE = re.compile(r"#\s*expect\b", re.I)
EXPECT_RE = re.compile(r"#\s*expect:\s*(?P<codes>LL\d{3}(?:\s*,\s*LL\d{3})*)\s*$")

Marker = Tuple[str, int]


def fixture_id(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


def parse_markers(source: str) -> Set[Marker]:
    """The ``(code, line)`` pairs of a source's ``# expect:`` comments.

    A comment that starts like a marker but is malformed, or a marker on a line without code, raises
    ``ValueError``: a typo must not silently turn a bad fixture into a good one.
    """
    markers: Set[Marker] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT or not MARKER_RE.match(tok.string):
            continue
        row = tok.start[0]
        m = EXPECT_RE.match(tok.string)
        if not m:
            raise ValueError(f"line {row}: malformed marker {tok.string!r} (write `# expect: LL101, LL106`)")
        if not tok.line[: tok.start[1]].strip():
            raise ValueError(f"line {row}: a marker must trail the reported statement, not stand on its own line")
        markers.update((code.strip(), row) for code in m.group("codes").split(","))
    return markers


def markers_of(path: Path) -> Set[Marker]:
    return parse_markers(path.read_text(encoding="utf-8"))


def describe(pairs, lines: List[str]) -> str:
    return "\n".join(f"    {code} at line {row}: {lines[row - 1].strip() if row <= len(lines) else ''}" for code, row in sorted(pairs, key=lambda p: (p[1], p[0])))


# --- the marker parser itself --------------------------------------------------------------------------


def test_parse_markers_reads_several_codes_on_trailing_comments():
    source = "a = 1\nopt.step()  # expect: LL101, LL106\nopt.zero_grad()  # expect:LL102\n"
    assert parse_markers(source) == {("LL101", 2), ("LL106", 2), ("LL102", 3)}


@pytest.mark.parametrize(
    "source",
    [
        "opt.step()  # expect LL101\n",  # missing colon
        "opt.step()  # expect: LL1O1\n",  # letter O for zero
        "opt.step()  # expect: LL101 LL102\n",  # missing comma
        "# expect: LL101\nopt.step()\n",  # on its own line
    ],
)
def test_parse_markers_rejects_malformed_markers(source):
    with pytest.raises(ValueError):
        parse_markers(source)


def test_parse_markers_ignores_code_in_strings_and_other_comments():
    source = 's = "# expect: LL101"\nx = 1  # we expect the loss to fall\nopt.step()  # noqa: LL106\n'
    assert parse_markers(source) == set()


# --- diagnostics equal markers ---------------------------------------------------------------------------


def judge(expected: Set[Marker], reported: Set[Marker], registered: Set[str]):
    """(missing, unexpected, pending): markers of registered rules that were not reported, reports without a
    marker, and markers of rules that are not registered yet (never silently passed)."""
    pending = {m for m in expected if m[0] not in registered}
    wanted = expected - pending
    return wanted - reported, reported - wanted, pending


def test_judge_separates_missing_unexpected_and_pending():
    expected = {("LL101", 5), ("LL106", 9)}
    assert judge(expected, {("LL101", 5)}, {"LL101"}) == (set(), set(), {("LL106", 9)})
    assert judge(expected, {("LL101", 5), ("LL102", 7)}, {"LL101", "LL102", "LL106"}) == (
        {("LL106", 9)}, {("LL102", 7)}, set())
    assert judge(set(), {("LL000", 1)}, set()) == (set(), {("LL000", 1)}, set())


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=fixture_id)
def test_diagnostics_match_markers(path: Path):
    registered = {rule.code for rule in all_rules()}
    reported = {(d.code, d.line) for d in lint_file(str(path))}
    missing, unexpected, pending = judge(markers_of(path), reported, registered)
    if missing or unexpected:
        lines = path.read_text(encoding="utf-8").splitlines()
        report = [f"{fixture_id(path)}: looplint's diagnostics differ from the `# expect:` markers"]
        if missing:
            report.append("  expected but not reported:\n" + describe(missing, lines))
        if unexpected:
            report.append("  reported but not expected:\n" + describe(unexpected, lines))
        pytest.fail("\n".join(report), pytrace=False)
    if pending:
        reason = ", ".join(f"{code} at line {row}" for code, row in sorted(pending, key=lambda p: (p[1], p[0])))
        pytest.xfail(f"rule not registered yet: {reason}")


# --- every fixture runs --------------------------------------------------------------------------------

# Starting Python and importing torch costs 1.5-3 s, the fixtures themselves a few milliseconds. So one
# `python` subprocess imports torch once and runs each fixture as `__main__` in a fork of itself: every
# fixture still gets its own process, working directory, exit status and output, for a fraction of the cost.
RUNNER = r"""
import json, os, runpy, shutil, signal, sys, tempfile, traceback
import torch
from torch.utils.data import DataLoader, TensorDataset

# Warm up once what torch loads lazily on first use (the first optimizer constructor alone costs ~1 s).
model = torch.nn.Linear(2, 1)
for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adadelta):
    optimizer = cls(model.parameters(), lr=0.1)
    model(torch.randn(3, 2)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
torch.optim.lr_scheduler.StepLR(optimizer, step_size=1).step()
scaler = torch.amp.GradScaler("cpu")
with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
    scaler.scale(model(torch.randn(3, 2)).float().sum()).backward()
scaler.step(optimizer)
scaler.update()
list(DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2, shuffle=True))

timeout, paths = int(sys.argv[1]), sys.argv[2:]
results = {}
for path in paths:
    cwd = tempfile.mkdtemp(prefix="looplint-fixture-")
    fd, log = tempfile.mkstemp(prefix="looplint-fixture-", suffix=".log")
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(cwd)
            os.dup2(fd, 1); os.dup2(fd, 2)
            sys.argv = [path]
            sys.path[0] = os.path.dirname(path)
            signal.alarm(timeout)
            runpy.run_path(path, run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, (int, type(None))):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    with open(log, errors="replace") as f:
        output = f.read()[-3000:]
    os.remove(log)
    written = sorted(os.listdir(cwd))
    shutil.rmtree(cwd, ignore_errors=True)
    if os.WIFSIGNALED(status):
        code = -os.WTERMSIG(status)
        output += "\n(killed by signal %d%s)" % (-code, ", timed out" if -code == signal.SIGALRM else "")
    else:
        code = os.WEXITSTATUS(status)
    results[path] = [code, output, written]
print(json.dumps(results))
"""


class RunResult(NamedTuple):
    returncode: Optional[int]  # negative: killed by that signal (SIGALRM: timed out); None: the runner failed
    output: str
    written: List[str]  # files left in the fixture's working directory


def run_fixtures(paths: List[Path]) -> Dict[Path, RunResult]:
    """Runs each file as `__main__` in its own process; see RUNNER. Falls back to one fresh `python` per file
    where fork() does not exist."""
    if not paths:
        return {}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    if not hasattr(os, "fork"):
        return {p: run_fresh(p, env) for p in paths}
    cmd = [sys.executable, "-c", RUNNER, str(RUN_TIMEOUT)] + [str(p) for p in paths]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUNNER_GUARD + RUN_TIMEOUT * len(paths))
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
        failure = RunResult(None, f"the fixture runner failed: {e!r}", [])
        return {p: failure for p in paths}
    return {p: RunResult(*results[str(p)]) if str(p) in results else RunResult(None, proc.stderr[-3000:], []) for p in paths}


def run_fresh(path: Path, env: Dict[str, str]) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="looplint-fixture-") as cwd:
        try:
            proc = subprocess.run(
                [sys.executable, str(path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            return RunResult(None, f"timed out after {RUN_TIMEOUT} s", sorted(os.listdir(cwd)))
        return RunResult(proc.returncode, (proc.stdout + proc.stderr)[-3000:], sorted(os.listdir(cwd)))


def needs_torch():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: install the `runtime` extra to run the fixtures")


@pytest.fixture(scope="session")
def fixture_runs(request) -> Dict[Path, RunResult]:
    """Runs every fixture selected for test_fixture_runs, once per session."""
    needs_torch()
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_fixture_runs" and hasattr(item, "callspec")
    ]
    return run_fixtures(selected)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=fixture_id)
def test_fixture_runs(path: Path, fixture_runs):
    result = fixture_runs[path] if path in fixture_runs else run_fixtures([path])[path]
    assert result.returncode == 0, f"{fixture_id(path)} failed (exit {result.returncode}):\n{result.output}"
    assert result.written == [], f"{fixture_id(path)} wrote files: {result.written}"


def test_runner_reports_failures_timeouts_and_written_files(tmp_path, monkeypatch):
    needs_torch()
    # Each fixture's own timeout ends hangs.py; starting the runner (importing torch: seconds on a loaded
    # machine) is not counted against it.
    monkeypatch.setattr(sys.modules[__name__], "RUN_TIMEOUT", 3)
    scripts = {
        "ok.py": "import torch\nprint(torch.ones(2).sum().item())\n",
        "main_guard.py": "import sys\nif __name__ == '__main__':\n    sys.exit(3)\n",
        "raises.py": "raise RuntimeError('boom')\n",
        "writes.py": "open('checkpoint.pt', 'w').close()\n",
        "hangs.py": "import time\ntime.sleep(30)\n",
    }
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    results = {p.name: r for p, r in run_fixtures([tmp_path / name for name in scripts]).items()}
    assert results["ok.py"] == RunResult(0, "2.0\n", [])
    assert results["main_guard.py"].returncode == 3
    assert results["raises.py"].returncode == 1 and "RuntimeError: boom" in results["raises.py"].output
    assert results["writes.py"].returncode == 0 and results["writes.py"].written == ["checkpoint.pt"]
    assert results["hangs.py"].returncode not in (0, None)


# --- layout ----------------------------------------------------------------------------------------------


def test_fixtures_exist():
    assert len(FIXTURE_FILES) >= 2 * len(MISSION_CODES)


@pytest.mark.parametrize("code", MISSION_CODES)
def test_every_mission_rule_has_a_bad_and_a_good_fixture(code: str):
    folder = FIXTURES / code.lower()
    bad = [p for p in folder.glob("bad_*.py") if code in {c for c, _ in markers_of(p)}]
    good = list(folder.glob("good_*.py"))
    assert bad, f"no fixtures/{folder.name}/bad_*.py expects {code}"
    assert good, f"no fixtures/{folder.name}/good_*.py"


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=fixture_id)
def test_fixture_is_well_formed(path: Path):
    folder, name = path.parent.name, path.name
    assert path.parent.parent == FIXTURES, "fixtures live one folder deep: fixtures/<ll1NN|traps>/<file>.py"
    assert re.fullmatch(r"ll\d{3}|traps", folder), f"unexpected fixture folder {folder!r}"
    assert re.fullmatch(r"(bad|good)_[a-z0-9_]+\.py", name), f"name must be bad_<shape>.py or good_<shape>.py: {name}"
    source = path.read_text(encoding="utf-8")
    assert ast.get_docstring(ast.parse(source)), "a fixture's docstring says what it shows and why"
    codes = {code for code, _ in parse_markers(source)}
    if name.startswith("good_"):
        assert not codes, f"a good fixture has no `# expect:` markers, found {sorted(codes)}"
    else:
        assert folder != "traps", "fixtures/traps holds good programs only"
        assert folder.upper() in codes, f"a bad fixture in {folder}/ expects {folder.upper()} somewhere"
