"""The reference runtime: recorder, runner, oracles and ``looplint confirm``.

Every program (``tests/runtime_programs/``, ``fixtures/``, and hand-fixed copies of bad fixtures) runs once
per session, two at a time, through the fork-server runner; the tests read the cached traces.

* ``tests/runtime_programs/llNNN_{bad,good}_*.py`` exercise each oracle beyond the fixtures: the evidence
  must sit exactly on the ``# expect: LLNNN`` markers (and nowhere in the good programs).
* Every fixture agrees with the linter (bad ones confirmed at their markers, good ones clean); a bad
  fixture fixed by hand stops being confirmed; a ``# noqa`` line turns run-time evidence into "expected".
* ``runner_*.py`` check what the runner promises: cwd, argv, seeds, CPU GradScaler, crash, exit status,
  step budget, timeout.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, List, NamedTuple, Set, Tuple

import pytest

if importlib.util.find_spec("torch") is None:  # pragma: no cover - the runtime extra is not installed
    pytest.skip("torch is not installed (pip install 'looplint[runtime]')", allow_module_level=True)

from looplint import cli
from looplint.diagnostics import Diagnostic
from looplint.engine import lint_file
from looplint.rule import all_rules, rule_by_code
from looplint.runtime import confirm
from looplint.runtime.loopmap import FrameLoops, LoopMap
from looplint.runtime.oracles import ORACLES, evaluate
from looplint.runtime.runner import _supervise, run_program, run_programs
from looplint.runtime.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "tests" / "runtime_programs"
FIXTURES = ROOT / "fixtures"
ORACLE_PROGRAMS = sorted(PROGRAMS.glob("ll[0-9][0-9][0-9]_*.py"))
RUNNER_PROGRAMS = sorted(p for p in PROGRAMS.glob("runner_*.py") if p.name != "runner_sleeps.py")
FIXTURE_FILES = sorted(FIXTURES.rglob("*.py"))
EXPECT_RE = re.compile(r"#\s*expect:\s*(LL\d{3}(?:\s*,\s*LL\d{3})*)")

Marker = Tuple[str, int]

# Bad fixtures fixed by hand: (text in the fixture, its correction). The fixed copy must run clean.
HAND_FIXES: Dict[str, List[Tuple[str, str]]] = {
    "ll101/bad_no_zero_grad.py": [(
        "        loss = criterion(model(inputs), targets)\n",
        "        optimizer.zero_grad()\n        loss = criterion(model(inputs), targets)\n",
    )],
    "ll102/bad_zero_grad_between_backward_and_step.py": [(
        "        optimizer.zero_grad()  # expect: LL102\n        optimizer.step()\n",
        "        optimizer.step()\n        optimizer.zero_grad()\n",
    )],
    "ll103/bad_step_before_backward.py": [(
        "            optimizer.step()  # expect: LL103\n            loss.backward()\n",
        "            loss.backward()\n            optimizer.step()\n",
    )],
    "ll104/bad_step_without_backward.py": [(
        "        optimizer.step()  # expect: LL104\n",
        "        loss.backward()\n        optimizer.step()\n",
    )],
    "ll105/bad_backward_without_step.py": [(
        "            loss.backward()  # expect: LL105\n",
        "            loss.backward()\n            optimizer.step()\n",
    )],
    "ll106/bad_step_after_batch_loop.py": [
        ("            loss.backward()\n",
         "            loss.backward()\n            optimizer.step()\n            optimizer.zero_grad()\n"),
        ("        optimizer.step()  # expect: LL106\n", ""),
    ],
    "ll107/bad_optimizer_in_epoch_loop.py": [(
        "    for epoch in range(3):\n"
        "        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)  # expect: LL107\n",
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)\n"
        "    for epoch in range(3):\n",
    )],
    "ll108/bad_zero_every_micro_batch.py": [
        ("        optimizer.zero_grad()  # expect: LL108\n", ""),
        ("            optimizer.step()\n", "            optimizer.step()\n            optimizer.zero_grad()\n"),
    ],
    "ll109/bad_training_after_reshape_loop.py": [(
        "            inputs = inputs.view(-1, 36)\n"
        "        optimizer.zero_grad()\n"
        "        outputs = model(inputs)\n"
        "        loss = criterion(outputs, targets)\n"
        "        loss.backward()  # expect: LL109\n"
        "        optimizer.step()\n",
        "            inputs = inputs.view(-1, 36)\n"
        "            optimizer.zero_grad()\n"
        "            outputs = model(inputs)\n"
        "            loss = criterion(outputs, targets)\n"
        "            loss.backward()\n"
        "            optimizer.step()\n",
    )],
}
NOQA_SOURCE = ("ll101/bad_no_zero_grad.py", "# expect: LL101", "# noqa: LL101")
SLEEP_TIMEOUT = 5.0


def markers(path: Path) -> Set[Marker]:
    found = set()
    for row, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = EXPECT_RE.search(line)
        if m:
            found.update((c, row) for c in re.split(r"\s*,\s*", m.group(1)))
    return found


def fixture_id(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


class Runs(NamedTuple):
    traces: Dict[str, Trace]
    fixed: Dict[str, Path]  # fixture id -> its hand-fixed copy
    noqa: Path
    sleeper: Trace  # runner_sleeps.py, run the plain way (no fork server) with a short timeout

    def of(self, path: Path) -> Trace:
        return self.traces[str(path)]


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runs:
    tmp = tmp_path_factory.mktemp("runtime")
    fixed = {}
    for fid, edits in HAND_FIXES.items():
        source = (FIXTURES / fid).read_text(encoding="utf-8")
        for old, new in edits:
            assert old in source, f"fixtures/{fid} changed: update its hand fix in HAND_FIXES"
            source = source.replace(old, new, 1)
        target = tmp / ("fixed_" + fid.replace("/", "_"))
        target.write_text(source, encoding="utf-8")
        fixed[fid] = target
    fid, old, new = NOQA_SOURCE
    noqa = tmp / "noqa_bad_no_zero_grad.py"
    noqa.write_text((FIXTURES / fid).read_text(encoding="utf-8").replace(old, new), encoding="utf-8")

    sleeper: Dict[str, Trace] = {}
    thread = threading.Thread(target=lambda: sleeper.setdefault(
        "trace", run_program(str(PROGRAMS / "runner_sleeps.py"), timeout=SLEEP_TIMEOUT)))
    thread.start()
    programs = [str(p) for p in ORACLE_PROGRAMS + RUNNER_PROGRAMS + FIXTURE_FILES + list(fixed.values()) + [noqa]]
    traces = run_programs(programs, jobs=2)
    thread.join()
    return Runs(traces, fixed, noqa, sleeper["trace"])


def _recorder_errors(trace: Trace) -> List[dict]:
    return [e for e in trace.events if e["kind"] == "recorder_error"]


# ---------------------------------------------------------------------------------------------- oracles

@pytest.mark.parametrize("program", ORACLE_PROGRAMS, ids=lambda p: p.name)
def test_oracle_evidence_sits_on_the_markers(runs, program):
    trace = runs.of(program)
    assert trace.status in ("finished", "crashed"), (trace.status, trace.failure, trace.stderr[-500:])
    assert not _recorder_errors(trace)
    want = markers(program)
    evidence = evaluate(trace)
    placed = {(ev.code, ev.line) for ev in evidence}
    covered = {(ev.code, ln) for ev in evidence for ln in ev.all_lines}
    assert placed <= want, f"evidence off the markers: {sorted(placed - want)}: {[e.text for e in evidence]}"
    assert want <= covered, f"markers without evidence: {sorted(want - covered)}"
    if trace.status == "crashed":  # a crash in these programs is the bug itself, explained by its oracle
        assert any(ev.explains_crash for ev in evidence), trace.error


@pytest.mark.parametrize("code", sorted(ORACLES))
def test_every_oracle_has_bad_and_good_programs(runs, code):
    prefix = code.lower()
    bad = [p for p in ORACLE_PROGRAMS if p.name.startswith(prefix + "_bad") and any(c == code for c, _ in markers(p))]
    good = [p for p in ORACLE_PROGRAMS if p.name.startswith(prefix + "_good")]
    assert bad, f"no tests/runtime_programs/{prefix}_bad_*.py expecting {code}"
    assert good, f"no tests/runtime_programs/{prefix}_good*.py"
    for p in good:
        assert evaluate(runs.of(p)) == [], p.name


def test_every_registered_rule_has_an_oracle():
    missing = [r.code for r in all_rules() if r.code not in ORACLES]
    assert not missing, f"rules without an oracle: {missing}"


def test_accumulation_is_recorded_per_backward_pass(runs):
    """The bookkeeping behind the oracles, on known programs: what each step consumed."""
    steps = runs.of(PROGRAMS / "ll101_good_accumulation.py").steps()
    assert steps and all(len(s["backwards"]) == 4 and not s["stale"] for s in steps)
    steps = runs.of(PROGRAMS / "ll101_bad_loader.py").steps()
    assert [len(s["backwards"]) for s in steps] == list(range(1, len(steps) + 1))
    assert [len(s["stale"]) for s in steps] == list(range(len(steps)))
    steps = runs.of(PROGRAMS / "ll102_bad.py").steps()
    assert steps and all(s["backwards"] == [] and s["delta"] == 0 for s in steps)
    assert all(s["delta"] > 0 for s in runs.of(PROGRAMS / "ll102_good.py").steps())


def test_recorder_sees_every_kind_of_event(runs):
    kinds = {e["kind"] for p in ORACLE_PROGRAMS for e in runs.of(p).events}
    assert {"start", "end", "optimizer", "scheduler", "loader_iter", "batch", "loader_end", "forward", "backward",
            "zero_grad", "step", "closure_call", "sched_step", "scaler", "clip", "mode"} <= kinds
    amp = runs.of(PROGRAMS / "ll101_good_amp_trainer.py")
    assert {e["op"] for e in amp.of("scaler")} == {"step", "update", "unscale_"}
    assert {e["training"] for e in amp.of("mode")} == {True, False}
    assert any(not e["grad"] for e in amp.of("forward")) and any(e["grad"] for e in amp.of("forward"))
    assert amp.of("loader_iter")[0]["len"] == 6
    closure = runs.of(PROGRAMS / "ll302_good.py")
    calls = closure.of("closure_call")
    assert calls and all(c["def_line"] == 11 and c["backwards"] == 1 and c["zero_grads"] == 1 for c in calls)
    warm = runs.of(PROGRAMS / "ll202_good_onecycle.py").of("sched_step")
    assert warm and warm[0]["lr_before"] != warm[0]["lr_after"]


# ---------------------------------------------------------------------------------------------- fixtures

def _fixture_report(runs, path: Path, trace: Trace) -> "confirm.ProgramReport":
    return confirm.judge(str(path), trace, lint_file(str(path)))


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=fixture_id)
def test_fixture_agrees(runs, fixture):
    want = markers(fixture)
    pending = sorted({c for c, _ in want if rule_by_code(c) is None})
    if pending:
        pytest.skip(f"rule {', '.join(pending)} is not registered yet")
    trace = runs.of(fixture)
    assert not _recorder_errors(trace)
    report = _fixture_report(runs, fixture, trace)
    assert report.agrees, json.dumps(report.to_json(), indent=2)
    assert {(v.code, v.line) for v in report.confirmed} == want
    if not want:
        assert not report.unchecked, [v.evidence for v in report.unchecked]


@pytest.mark.parametrize("fid", sorted(HAND_FIXES))
def test_fixture_fixed_by_hand_is_no_longer_confirmed(runs, fid):
    original = FIXTURES / fid
    code = next(iter(markers(original)))[0]
    if rule_by_code(code) is None:
        pytest.skip(f"rule {code} is not registered yet")
    before = _fixture_report(runs, original, runs.of(original))
    assert [v.code for v in before.confirmed] == [code]
    fixed = runs.fixed[fid]
    trace = runs.of(fixed)
    assert trace.status == "finished", (trace.error, trace.stderr[-500:])
    assert [ev.text for ev in evaluate(trace) if ev.code == code] == []
    after = _fixture_report(runs, fixed, trace)
    assert after.agrees and not after.confirmed, json.dumps(after.to_json(), indent=2)


def test_noqa_line_makes_run_time_evidence_expected(runs):
    report = _fixture_report(runs, runs.noqa, runs.of(runs.noqa))
    assert report.static == []
    assert [v.code for v in report.suppressed] == ["LL101"] and not report.unexpected
    assert report.agrees
    assert "noqa" in report.to_json()["suppressed"][0]["reason"]


def test_disagreement_is_reported_both_ways(runs):
    good = PROGRAMS / "ll102_good.py"
    fake = Diagnostic(str(good), 13, 9, "LL101", "made up", "missing-zero-grad", 13, 20)
    report = confirm.judge(str(good), runs.of(good), [fake], codes=["LL101"])
    assert not report.agrees and [v.code for v in report.unconfirmed] == ["LL101"]
    assert "looked for" in report.unconfirmed[0].reason
    bad = PROGRAMS / "ll101_bad_loader.py"
    report = confirm.judge(str(bad), runs.of(bad), [], codes=["LL101"])
    assert not report.agrees and [(v.code, v.line) for v in report.unexpected] == [("LL101", 14)]


# ---------------------------------------------------------------------------------------------- runner

def test_runner_gives_the_program_its_folder_argv_seed_and_a_cpu_grad_scaler(runs):
    trace = runs.of(PROGRAMS / "runner_environment.py")
    assert trace.status == "finished", (trace.error, trace.stderr[-800:])
    assert len(trace.steps()) == 3


def test_runner_records_a_crash_and_keeps_the_trace(runs):
    trace = runs.of(PROGRAMS / "runner_crash.py")
    assert trace.status == "crashed"
    assert trace.error["type"] == "ValueError" and trace.error["line"] == 11
    assert len(trace.steps()) == 3
    report = confirm.judge(str(PROGRAMS / "runner_crash.py"), trace, [])
    assert report.error and "ValueError" in report.error and not report.agrees


def test_runner_records_a_nonzero_exit(runs):
    trace = runs.of(PROGRAMS / "runner_exit.py")
    assert trace.status == "exited" and trace.exit_code == 3
    assert confirm.judge(str(PROGRAMS / "runner_exit.py"), trace, []).error == "the program exited with status 3"


@pytest.mark.parametrize("program, signal_name", [("runner_segfault.py", "SIGSEGV"), ("runner_abort.py", "SIGABRT")])
def test_runner_reports_the_signal_that_killed_a_program(runs, program, signal_name):
    trace = runs.of(PROGRAMS / program)
    assert trace.status == "crashed" and trace.returncode == -getattr(signal, signal_name)
    assert trace.error["type"] == signal_name and len(trace.steps()) == 1
    error = confirm.judge(str(PROGRAMS / program), trace, []).error
    assert error.startswith(f"crashed: {signal_name}: killed by {signal_name}")


def test_runner_reports_os_exit_and_sys_exit_with_a_message(runs):
    trace = runs.of(PROGRAMS / "runner_os_exit.py")
    assert trace.status == "exited" and trace.exit_code == 3 and trace.end is None
    assert confirm.judge(str(PROGRAMS / "runner_os_exit.py"), trace, []).error == (
        "the program exited with status 3 through os._exit, before the recorder's end")
    trace = runs.of(PROGRAMS / "runner_exit_message.py")
    assert trace.status == "exited" and trace.exit_code == 1
    assert confirm.judge(str(PROGRAMS / "runner_exit_message.py"), trace, []).error == (
        "the program exited with status 1: stopping: the loss is NaN")


def test_everything_a_program_started_ends_with_it(runs):
    trace = runs.of(PROGRAMS / "runner_leaves_children.py")
    assert trace.status == "finished", trace.stderr
    [line] = [row for row in trace.stderr.splitlines() if row.startswith("PIDS ")]
    pids = [int(p) for p in line.split()[1:]]
    assert len(pids) == 4
    for pid in pids:  # the detached one, a child, a shell and the shell's child: all gone
        assert not _alive_leftover(pid), pid


def _alive_leftover(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z" and (b"looplint-leftover" in cmdline or b"/bin/sh" in cmdline)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_timeout_before_the_recorder_started_is_a_timeout(tmp_path):
    # The recorder reads the program before it starts: a FIFO nobody writes keeps it from ever starting,
    # however fast or slow the machine.
    never = tmp_path / "never.py"
    os.mkfifo(never)
    trace = run_program(str(never), startup_timeout=0.5)
    assert trace.status == "timeout" and trace.before_start and trace.timed_out == 0.5 and not trace.events
    report = confirm.judge(str(never), trace, [])
    assert report.error.startswith("timed out after 0.5 s before the recorder started")


def test_step_budget_stops_a_program_that_catches_exceptions(runs):
    trace = runs.of(PROGRAMS / "runner_endless.py")
    assert trace.status == "truncated"
    assert len(trace.steps()) == trace.end["steps"] == 200


def test_timeout_ends_the_program(runs):
    trace = runs.sleeper  # its clock starts when the recorder has started: importing torch is not counted
    assert trace.status == "timeout" and trace.timed_out == SLEEP_TIMEOUT and not trace.before_start


def test_supervisor_kills_at_the_startup_deadline_and_at_the_run_deadline(tmp_path):
    never = str(tmp_path / "never.jsonl")  # the recorder never starts
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    ending = _supervise(proc.poll, proc.pid, never, timeout=600, startup_timeout=0.2)
    assert ending == (-signal.SIGKILL, True, True)
    started = tmp_path / "started.jsonl"
    started.write_text('{"kind": "start"}\n')
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    assert _supervise(proc.poll, proc.pid, str(started), timeout=0.2, startup_timeout=600) == (-signal.SIGKILL, True, False)
    quick = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"], start_new_session=True)
    assert _supervise(quick.poll, quick.pid, str(started), timeout=600, startup_timeout=600) == (4, False, False)


def test_the_linter_and_confirm_module_do_not_import_torch():
    code = "import sys, looplint.runtime.confirm, looplint.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(ROOT))


# ---------------------------------------------------------------------------------------------- loops

LOOP_SOURCE = '''\
import contextlib
def helper(record):
    record("helper")
def f(record):
    for epoch in range(2):
        for i in range(
                3):
            with contextlib.nullcontext():
                record("body")
            if i == 1:
                continue
            helper(record)
        record("after inner")
    n = 0
    while True:
        n += 1
        record("while")
        if n == 2:
            break
    record("end")
'''


def test_loop_paths_follow_iterations_across_with_continue_and_while_true():
    loopmap = LoopMap(LOOP_SOURCE)
    assert sorted(loopmap.loops) == [5, 6, 15]
    assert loopmap.loops[6].header_end == 7 and not loopmap.loops[6].data
    frames: Dict[int, FrameLoops] = {}
    seen: List[Tuple[str, list]] = []
    filename = "<looptest>"

    def local(frame, event, arg):
        if event == "line":
            frames[id(frame)].line(loopmap, frame.f_lineno)
        return local

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != filename:
            return None
        frames[id(frame)] = FrameLoops(len(frames) + 1, (frame.f_code.co_name, frame.f_code.co_firstlineno))
        return local

    def record(what):
        stack, fr = [], sys._getframe(1)
        while fr is not None:
            if fr.f_code.co_filename == filename:
                stack.append(fr)
            fr = fr.f_back
        path = [x for fr in reversed(stack) for x in frames[id(fr)].path()]
        seen.append((what, [tuple(x[1:]) for x in path]))

    namespace: dict = {}
    exec(compile(LOOP_SOURCE, filename, "exec"), namespace)
    sys.settrace(tracer)
    try:
        namespace["f"](record)
    finally:
        sys.settrace(None)
    assert seen == [
        ("body", [(5, 1, 0), (6, 1, 0)]), ("helper", [(5, 1, 0), (6, 1, 0)]),
        ("body", [(5, 1, 0), (6, 1, 1)]),
        ("body", [(5, 1, 0), (6, 1, 2)]), ("helper", [(5, 1, 0), (6, 1, 2)]),
        ("after inner", [(5, 1, 0)]),
        ("body", [(5, 1, 1), (6, 2, 0)]), ("helper", [(5, 1, 1), (6, 2, 0)]),
        ("body", [(5, 1, 1), (6, 2, 1)]),
        ("body", [(5, 1, 1), (6, 2, 2)]), ("helper", [(5, 1, 1), (6, 2, 2)]),
        ("after inner", [(5, 1, 1)]),
        ("while", [(15, 1, 0)]), ("while", [(15, 1, 1)]),
        ("end", []),
    ]


def test_trace_iteration_questions():
    a = {"loops": [[1, 5, 1, 0], [1, 6, 1, 2]]}
    b = {"loops": [[1, 5, 1, 0], [1, 6, 1, 3]]}
    c = {"loops": [[1, 5, 1, 0]]}
    d = {"loops": [[1, 5, 1, 0], [1, 6, 2, 0]]}
    assert not Trace.same_iteration(a, b)
    assert Trace.same_iteration(a, c) and Trace.same_iteration(a, d)
    assert Trace.inside(a, (1, 6, 1)) and not Trace.inside(d, (1, 6, 1))
    assert Trace.within(a, [(1, 5, 1, 0)]) and not Trace.within(c, [(1, 5, 1, 0), (1, 6, 1, 2)])


# ---------------------------------------------------------------------------------------------- command line

def test_confirm_command_end_to_end(tmp_path):
    bad = FIXTURES / "ll101" / "bad_no_zero_grad.py"
    good = FIXTURES / "ll101" / "good_zero_grad_per_batch.py"
    if rule_by_code("LL101") is None:
        pytest.skip("rule LL101 is not registered yet")
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "looplint", "confirm", "--output-format", "json", "--max-steps", "20", str(bad),
         str(good)], capture_output=True, text=True, cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out.write_text(proc.stdout)
    reports = json.loads(proc.stdout)
    assert [r["path"] for r in reports] == [str(bad), str(good)]
    assert set(reports[0]) >= {"path", "static", "confirmed", "unconfirmed", "unexpected", "error"}
    assert reports[0]["static"] == ["LL101"]
    assert [c["code"] for c in reports[0]["confirmed"]] == ["LL101"]
    assert reports[0]["status"] == "truncated" and reports[0]["steps"] == 20
    assert reports[1]["static"] == [] and reports[1]["confirmed"] == [] and reports[1]["error"] is None


def _fake_runs(runs, monkeypatch):
    monkeypatch.setattr(confirm, "run_programs", lambda programs, **kw: {p: runs.traces[str(Path(p))]
                                                                        for p in programs})


def test_confirm_table_and_exit_status(runs, monkeypatch, capsys):
    _fake_runs(runs, monkeypatch)
    bad = str(PROGRAMS / "ll101_bad_loader.py")
    good = str(PROGRAMS / "ll102_good.py")
    assert cli.main(["confirm", good]) == 0
    assert "agrees" in capsys.readouterr().out
    monkeypatch.setattr(confirm, "lint_file", lambda path: [])  # the linter "misses" the bug
    assert cli.main(["confirm", bad, good]) == 1
    out = capsys.readouterr().out
    assert "DISAGREES" in out and "UNEXPECTED" in out and "2 programs" in out and "1 agree, 1 disagree" in out


@pytest.mark.parametrize("argv, message", [
    (["confirm"], "required"),
    (["confirm", "no/such/file.py"], "no such file"),
    (["confirm", "--timeout", "0", "x.py"], "--timeout"),
    (["confirm", "--jobs", "two", "x.py"], "--jobs"),
    (["confirm", "--output-format", "xml", "x.py"], "--output-format"),
    (["confirm", str(FIXTURES.parent / "tests" / "runtime_programs" / "ll101_bad_gan.py"), "nope.ipynb"], "no such"),
])
def test_confirm_usage_errors_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_confirm_refuses_to_run_a_notebook(tmp_path, capsys):
    nb = tmp_path / "train.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    assert cli.main(["confirm", str(nb)]) == 2
    assert "only Python programs" in capsys.readouterr().err


def test_confirm_folder_without_programs_exits_2(tmp_path, capsys):
    (tmp_path / "notes.py").write_text("print('no training here')\n")
    assert cli.main(["confirm", str(tmp_path)]) == 2
    assert "no training programs" in capsys.readouterr().err


def test_confirm_collects_training_programs_only(tmp_path):
    (tmp_path / "notes.py").write_text("print('no training here')\n")
    (tmp_path / "train.py").write_text("import torch\nloss.backward()\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "train.py").write_text("loss.backward()\n")
    assert confirm.collect([str(tmp_path)]) == [str(tmp_path / "train.py")]
    assert confirm.collect([str(tmp_path / "notes.py")]) == [str(tmp_path / "notes.py")]
