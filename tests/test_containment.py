"""No input takes a run down: the parser is contained, paths never hang, size and memory are bounded.

* Inputs that made libcst's native parser spin for minutes and then segfault (long flat chains) are an
  ``LL000`` each, beside the findings of a good file, whether files are linted here or in ``--jobs`` workers.
* Input that does crash the parser costs the worker process that parsed it, and that file an ``LL000``.
* FIFOs, devices and sockets are never opened for reading; files are read up to ``MAX_SOURCE_BYTES``.
* A worker has a memory cap (``LL000`` "too large to analyse") and is replaced when it died or grew large.

The command line runs in a subprocess wherever the old behaviour was a hang or a crash of the process.
"""
from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BAD_COLUMN, BAD_PROGRAM, BAD_ROW, CLEAN_PROGRAM
from looplint import engine, worker
from looplint.files import MAX_SOURCE_BYTES

GUARD = 300  # seconds: a guard against a hang, never a measure of speed

# Each made libcst spin for 30-126 s and then segfault (exit 139, nothing printed for any other file).
CRASHERS = {
    "chain_attribute.py": "opt" + ".a" * 7000 + ".step()\n",
    "chain_plus.py": "x = " + " + ".join(["a"] * 10000) + "\nloss.backward()\n",
    "chain_subscript.py": "x" + "[0]" * 7000 + "\nloss.backward()\n",
    "chain_and.py": "x = " + " and ".join(["a"] * 10000) + "\nloss.backward()\n",
}


def looplint(*args: str, cwd: Path, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "looplint", *args], cwd=cwd, capture_output=True, text=True, timeout=GUARD,
        stdin=stdin,
    )


FINDING = re.compile(r"^(?P<path>.*?):(?P<row>\d+):\d+: (?P<code>LL\d{3}) (?P<message>.*)$")


def findings(out: str):
    """(path, row, code, message) of each finding in concise output, sorted."""
    found = (FINDING.match(line) for line in out.splitlines())
    return sorted((m["path"], int(m["row"]), m["code"], m["message"]) for m in found if m)


# ---------------------------------------------------------------------------------------------- the parser


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_inputs_that_crashed_the_parser_are_LL000_beside_a_good_files_findings(tmp_path, jobs):
    for name, text in CRASHERS.items():
        (tmp_path / name).write_text("import torch\n" + text, encoding="utf-8")
    (tmp_path / "good.py").write_text(BAD_PROGRAM, encoding="utf-8")
    for i in range(12):  # enough files for worker processes under --jobs 2
        (tmp_path / f"pad_{i}.py").write_text(CLEAN_PROGRAM, encoding="utf-8")
    proc = looplint("--jobs", jobs, ".", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    rows = findings(proc.stdout)
    assert [r[:3] for r in rows if r[0] == "good.py"] == [("good.py", BAD_ROW, "LL101")]
    assert sorted(r[0] for r in rows if r[2] == "LL000") == sorted(CRASHERS)
    assert all("cannot parse file" in r[3] for r in rows if r[2] == "LL000")
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_the_screen_rejects_what_cpython_refuses_and_what_is_too_deep_for_libcst():
    refused = engine.lint_source("import torch\nloss.backward()\n" + CRASHERS["chain_plus.py"], "t.py")
    assert [(d.code, d.line) for d in refused] == [("LL000", 1)]
    assert "Python's parser" in refused[0].message
    too_deep = engine.lint_source("import torch\n" + CRASHERS["chain_and.py"], "t.py")  # CPython takes this
    assert [d.code for d in too_deep] == ["LL000"] and f"up to {engine.MAX_DEPTH}" in too_deep[0].message
    # Depth counts `and` operands the way libcst nests them.
    assert engine.nesting_depth(engine.ast.parse(" and ".join(["a"] * 50))) > 50


def test_a_parser_crash_in_the_worker_costs_that_file_alone(project, run, monkeypatch):
    # With the depth limit lifted, 100,000 `and`s reach libcst, which overflows its stack: a real segfault.
    monkeypatch.setattr(engine, "MAX_DEPTH", 10**9)
    monkeypatch.setattr(engine, "_worker", None)
    project({
        "a_crash.py": "import torch\nloss.backward()\nx = " + " and ".join(["a"] * 100000) + "\n",
        "b_train.py": BAD_PROGRAM,
        "c_deep.py": "import torch\nloss.backward()\nx = " + " and ".join(["a"] * 400) + "\n",  # worker, no crash
    })
    result = run("--jobs", "1", ".")
    rows = findings(result.out)
    assert [r[:3] for r in rows] == [("a_crash.py", 1, "LL000"), ("b_train.py", BAD_ROW, "LL101")]
    assert rows[0][3] == "cannot parse file: the parser crashed (it was killed by SIGSEGV)"
    # c_deep.py went to a fresh worker: parsed, nothing to report
    assert result.code == 1 and "internal error" not in result.err
    engine._worker.close()


def test_run_tasks_charges_a_death_to_the_task_its_worker_held():
    outcomes = worker.run_tasks(_task, [(1,), ("die",), (3,), (4,), ("die",), (6,)], jobs=2)
    assert [o if isinstance(o, int) else type(o).__name__ for o in outcomes] == [
        2, "WorkerDied", 6, 8, "WorkerDied", 12]
    assert "SIGSEGV" in outcomes[1].reason and not outcomes[1].out_of_memory
    raised = worker.run_tasks(_task, [("raise",)], jobs=1)[0]
    assert isinstance(raised, worker.WorkerError) and raised.summary == "ValueError: no"


def test_run_tasks_gives_tasks_in_the_order_asked_and_returns_them_in_task_order():
    started = []
    outcomes = worker.run_tasks(_task, [(1,), (2,), (3,), (4,)], jobs=1, order=[3, 1, 0, 2],
                                on_done=lambda index, _seconds: started.append(index))
    assert outcomes == [2, 4, 6, 8]
    assert started == [3, 1, 0, 2]  # one worker: tasks end in the order they were given


def test_run_tasks_settles_each_outcome_as_its_task_ends_and_keeps_what_settle_returns():
    settled, ended = [], []

    def settle(index, outcome):
        settled.append(index)
        assert index not in ended  # before the task is reported done: nothing held until the last ends
        return ("kept", index, type(outcome).__name__)

    outcomes = worker.run_tasks(_task, [(1,), ("die",), (3,)], jobs=1, settle=settle,
                                on_done=lambda index, _seconds: ended.append(index))
    assert outcomes == [("kept", 0, "int"), ("kept", 1, "WorkerDied"), ("kept", 2, "int")]
    assert settled == ended == [0, 1, 2]


def test_run_tasks_never_runs_two_heavy_tasks_at_once(tmp_path):
    marker = str(tmp_path / "heavy-running")
    tasks = [(marker, True, i) for i in range(3)] + [(marker, False, i) for i in range(3, 6)]
    outcomes = worker.run_tasks(_heavy_or_light, tasks, jobs=2, heavy=[0, 1, 2])
    assert outcomes == [0, 1, 2, 3, 4, 5]  # "overlap" where a heavy task started while another ran


def test_a_heavy_task_starts_in_a_worker_that_has_run_nothing(tmp_path):
    # what earlier tasks left in a worker (up to its recycling limits) is not added to a heavy task's peak
    log = str(tmp_path / "log")
    tasks = [(log, i) for i in range(8)]
    assert worker.run_tasks(_note_process, tasks, jobs=1, heavy=[3, 6]) == list(range(8))
    rows = [(int(i), pid) for i, pid in (line.split() for line in open(log).read().splitlines())]
    assert [i for i, _pid in rows] == [3, 6, 0, 1, 2, 4, 5, 7]  # heavy tasks first
    first = {}  # pid -> the first task it ran
    for i, pid in rows:
        first.setdefault(pid, i)
    pid_of = dict(rows)
    assert first[pid_of[3]] == 3 and first[pid_of[6]] == 6  # each heavy task is its worker's first
    assert len({pid_of[i] for i in (0, 1, 2, 4, 5, 7)}) == 1  # light tasks share one worker, as before


def test_light_tasks_beside_a_heavy_one_run_in_workers_kept_small(tmp_path):
    # while a heavy task runs, the other worker is replaced as soon as it grew by TIGHT_GROWTH (the two
    # peaks add up); each light task here keeps more than that (and less than RECYCLE_GROWTH), so each of
    # them runs in a process of its own
    log = str(tmp_path / "log")
    tasks = [(log, "heavy", 0)] + [(log, "light", i) for i in range(1, 4)]
    assert worker.run_tasks(_kept_memory, tasks, jobs=2, heavy=[0]) == [0, 1, 2, 3]
    rows = [line.split() for line in open(log).read().splitlines()]
    light = [pid for kind, _i, pid in rows if kind == "light"]
    assert len(light) == 3 and len(set(light)) == 3
    # with no heavy task running, two of them share one worker (its limit is RECYCLE_GROWTH)
    os.remove(log)
    assert worker.run_tasks(_kept_memory, tasks[1:3], jobs=1) == [1, 2]
    assert len({pid for _k, _i, pid in (line.split() for line in open(log).read().splitlines())}) == 1


_KEPT = []


def _kept_memory(log, kind, i):
    import time

    if kind == "heavy":  # runs until the three light tasks have run beside it (a guard, never a measure)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not os.path.exists(log) or len(open(log).read().splitlines()) < 3):
            time.sleep(0.01)
    else:
        import mmap

        size = (worker.TIGHT_GROWTH + worker.RECYCLE_GROWTH) // 2
        _KEPT.append(mmap.mmap(-1, size))  # new pages (the heap may hold free pages forked from the parent)
        for j in range(0, size, mmap.PAGESIZE):  # touched: resident
            _KEPT[-1][j] = 1
    with open(log, "a") as f:
        f.write(f"{kind} {i} {os.getpid()}\n")
    return i


def _note_process(log, i):
    with open(log, "a") as f:
        f.write(f"{i} {os.getpid()}\n")
    return i


def test_large_files_go_first_and_the_others_by_path():
    from looplint.cli import _order

    tasks = [("b/x.py", ()), ("a/big.py", ()), ("a/y.py", ()), ("c/bigger.py", ()), ("a/b/z.py", ())]
    sizes = [10, 200_000, 30, 300_000, 20]
    assert _order(tasks, sizes, heavy=[1, 3]) == [3, 1, 4, 2, 0]  # bigger, big; then a/b/z, a/y, b/x


def _heavy_or_light(marker, heavy, i):
    import time

    if not heavy:
        return i
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return "overlap"
    time.sleep(0.5)  # long enough for a second worker to start a heavy task if it were given one
    os.remove(marker)
    return i


def _task(x):
    if x == "die":
        import ctypes

        ctypes.string_at(0)  # a segmentation fault, as the native parser's stack overflow is
    if x == "raise":
        raise ValueError("no")
    return 2 * x


# ---------------------------------------------------------------------------------------------- memory


DENSE = "import torch\nloss.backward()\nx = [" + "1," * 200_000 + "]\n"  # 400 KB: about 1 GB to parse


def test_a_worker_over_its_memory_cap_is_too_large_to_analyse_and_is_replaced():
    w = worker.Worker(memory_budget=150 << 20)
    try:
        with pytest.raises(worker.WorkerDied) as died:
            w.call(engine.lint_parsed, DENSE, "dense.py", [])
        assert died.value.out_of_memory
        assert engine.worker_died("dense.py", died.value).message.startswith("file too large to analyse")
        assert w.call(_task, 21) == 42  # a fresh worker
    finally:
        w.close()


def test_a_worker_that_grew_large_is_recycled():
    w = worker.Worker(recycle_rss=1)  # every task leaves it "large"
    try:
        assert w.call(_task, 1) == 2
        first = w.pid
        assert first is None  # it retired after answering
        assert w.call(_task, 2) == 4
    finally:
        w.close()
    keep = worker.Worker()
    try:
        keep.call(_task, 1)
        pid = keep.pid
        keep.call(_task, 2)
        assert keep.pid == pid is not None  # a worker that stayed small serves on
    finally:
        keep.close()


def test_sources_over_the_size_limit_are_too_large_to_analyse(project, run, tmp_path):
    big = "import torch\nloss.backward()\n" + "x = 1\n" * (MAX_SOURCE_BYTES // 6 + 1)
    project({"big.py": big, "train.py": BAD_PROGRAM})
    result = run(".")
    assert "big.py:1:1: LL000 file too large to analyse: 1.0 MiB" in result.out
    assert "train.py" in result.out
    proc = looplint("-", "--stdin-filename", "big.py", cwd=tmp_path, stdin=open(tmp_path / "big.py"))
    assert "LL000 file too large to analyse: more than 1.0 MiB" in proc.stdout
    assert [d.code for d in engine.lint_source(big, "big.py")] == ["LL000"]


def test_stdin_that_never_ends_is_read_up_to_the_limit(tmp_path):
    with open(os.devnull if not os.path.exists("/dev/zero") else "/dev/zero", "rb") as zero:
        proc = looplint("-", cwd=tmp_path, stdin=zero)
    assert proc.returncode == 1 and "LL000 file too large to analyse" in proc.stdout


# ---------------------------------------------------------------------------------------------- paths


fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@fifo_only
def test_fifos_never_hang_the_linter(tmp_path):
    (tmp_path / "train.py").write_text(BAD_PROGRAM, encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.py")
    os.mkfifo(tmp_path / "pipe.ipynb")
    walked = looplint(".", cwd=tmp_path)  # met while walking: passed over
    assert [r[:3] for r in findings(walked.stdout)] == [("train.py", BAD_ROW, "LL101")]
    named = looplint("pipe.py", "pipe.ipynb", "train.py", cwd=tmp_path)
    rows = findings(named.stdout)
    assert [r[:3] for r in rows] == [("pipe.ipynb", 1, "LL000"), ("pipe.py", 1, "LL000"), ("train.py", BAD_ROW, "LL101")]
    assert all(r[3] == "cannot read file: not a regular file (a FIFO)" for r in rows[:2])


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_named_on_the_command_line_is_not_read(tmp_path):
    proc = looplint("/dev/zero", cwd=tmp_path)
    assert findings(proc.stdout) == [("/dev/zero", 1, "LL000", "cannot read file: not a regular file (a character device)")]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_links_dangling_or_looping_are_reported_once_and_a_file_is_linted_once(project, run, tmp_path):
    project({"pkg/train.py": BAD_PROGRAM})
    os.symlink("gone.py", tmp_path / "pkg" / "dangling.py")
    os.symlink(".", tmp_path / "pkg" / "loop")  # pkg/loop/loop/train.py is pkg/train.py
    os.symlink("b.py", tmp_path / "a.py")
    os.symlink("a.py", tmp_path / "b.py")
    result = run("pkg", "pkg/dangling.py", "pkg/loop/loop/train.py", "a.py")
    rows = findings(result.out)
    assert [r[:3] for r in rows] == [
        ("a.py", 1, "LL000"), (os.path.join("pkg", "dangling.py"), 1, "LL000"), (os.path.join("pkg", "train.py"), BAD_ROW, "LL101")]
    assert rows[0][3] == f"cannot read file: {os.strerror(errno.ELOOP)}"
    assert rows[1][3] == "cannot read file: broken symbolic link"


def test_workers_retire_after_max_tasks_and_after_growing():
    w = worker.Worker(max_tasks=2)
    try:
        assert w.call(_task, 1) == 2 and w.pid is not None
        assert w.call(_task, 2) == 4 and w.pid is None  # retired after its second task
    finally:
        w.close()
    w = worker.Worker(recycle_growth=64 << 20)
    try:
        assert w.call(_task, 1) == 2 and w.pid is not None
        assert w.call(_hold, 128 << 20) == 128 << 20 and w.pid is None  # it kept 128 MB: replaced
        assert w.call(_task, 3) == 6 and w.pid is not None
    finally:
        w.close()


_HELD = []


def _hold(size):
    _HELD.append(bytearray(b"x" * size))  # written: resident, not only reserved
    return len(_HELD[-1])


def test_workers_start_with_the_engine_imported(tmp_path):
    import subprocess
    import sys

    program = """if True:
        import sys
        from looplint.worker import Worker
        w = Worker()
        wanted = "[m in __import__('sys').modules for m in ('libcst', 'looplint.model', 'looplint.rules.ll101_missing_zero_grad')]"
        print('looplint.model' in sys.modules, w.call(eval, wanted))
        w.close()
    """
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "False [True, True, True]", out.stderr


def test_no_syntax_tree_outlives_its_lint():
    """A lint keeps nothing of the file's tree (a process lints thousands of files, the editor's worker the
    same document again and again): walkers defined inside the model's functions once stayed in a table
    of the module that walks, and their closures kept every tree alive."""
    import gc

    import libcst

    from looplint import engine

    def trees() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is libcst.Module)

    fixtures = sorted((Path(__file__).resolve().parent.parent / "fixtures" / "ll101").glob("*.py"))[:4]
    engine.lint_source(fixtures[0].read_text(encoding="utf-8"), str(fixtures[0]))  # imports, first-use tables
    before = trees()
    for path in fixtures:
        assert engine.lint_source(path.read_text(encoding="utf-8"), str(path)) is not None
    assert trees() == before
