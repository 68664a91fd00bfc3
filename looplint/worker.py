"""Worker processes: a file that crashes the parser or exhausts memory costs that file an ``LL000``, never
the run.

libcst's native parser can die on input it cannot take (a stack overflow on code nested thousands of
levels deep kills the process: no exception, nothing printed for any other file) and needs about 2 GB of
memory per MB of token-dense source. So whatever may be too much for it runs in a ``Worker``: a child
process with a memory cap (``MEMORY_BUDGET`` above what it holds at start), replaced when it dies or when
a task left it large (``RECYCLE_RSS``, or ``RECYCLE_GROWTH`` over its size at start after freed memory is
given back), or after ``MAX_TASKS`` tasks. Workers import the engine, the model and the rules before their
first task (inherited from the parent when it has them and forks). The caller learns of a death as ``WorkerDied`` for the task the
worker held, and the next task gets a fresh worker.

``run_tasks`` spreads many tasks over several workers (``looplint --jobs``) and knows which task each
worker holds, so a death is charged to that task alone.
"""
from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Callable, Collection, Iterable, List, Optional, Sequence, Union

MEMORY_BUDGET = 4 << 30  # address space a worker may add to what it holds when it starts
RECYCLE_RSS = 1 << 30  # a worker resident above this after a task is replaced by a fresh one
# A worker that grew by more than this over what it held when it started, even after giving freed memory
# back to the system (a large file's parse leaves the native parser's buffers behind), is replaced too. A
# fresh worker is a fork of the parent, which holds the imports: replacing one costs milliseconds, and on
# the speed corpus 32 MB kept the process tree's peak at 291 MB (423 MB at 160 MB) in the same time.
RECYCLE_GROWTH = 32 << 20
# While another worker runs a heavy task, a worker running light ones is replaced once it grew by this much:
# the two peaks add up in the process tree, and the heavy one is large. On the large corpus the tree's peak
# was 257 MB with 32 MB here, 245 MB with 16 MB and 236 MB with 8 MB, which cost the speed corpus 5 % more
# time (replaced workers parse the project modules their files import again); 16 MB cost none.
TIGHT_GROWTH = 16 << 20
MAX_TASKS = 1000  # tasks a worker runs before a fresh one replaces it (fragmentation grows slowly)
STACK_SIZE = 64 << 20  # the stack of the thread that runs tasks (the parser recurses on native frames)

# Signals that mean "out of memory": the kernel's OOM killer, or an allocation failure aborting native code.
_MEMORY_SIGNALS = {getattr(signal, name) for name in ("SIGKILL", "SIGABRT") if hasattr(signal, name)}


class WorkerDied(Exception):
    """The worker ended (a crash, or the memory cap) before it finished the task."""

    def __init__(self, reason: str, out_of_memory: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.out_of_memory = out_of_memory


class WorkerError(Exception):
    """The task raised in the worker: ``summary`` (type and message) and the worker's traceback."""

    def __init__(self, summary: str, trace: str) -> None:
        super().__init__(summary)
        self.summary = summary
        self.trace = trace


def _context():
    # fork is cheap and keeps what the parent imported, but forking a process that runs other threads
    # (the language server) can deadlock the child: start a fresh interpreter there.
    if sys.platform != "darwin" and hasattr(os, "fork") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class Worker:
    """One child process that runs tasks, one at a time; started on first use, restarted after a death."""

    def __init__(self, memory_budget: int = MEMORY_BUDGET, recycle_rss: int = RECYCLE_RSS,
                 recycle_growth: int = RECYCLE_GROWTH, max_tasks: int = MAX_TASKS) -> None:
        self.memory_budget = memory_budget
        self.recycle_rss = recycle_rss
        self.recycle_growth = recycle_growth
        self.max_tasks = max_tasks
        self._process = None
        self._conn = None
        self._kill_requested = False
        self.tasks = 0  # tasks given to the running process
        self._calling = threading.Lock()  # one ``call`` at a time (a warm-up in one thread, a task in another)

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    @property
    def connection(self):
        return self._conn

    def _start(self) -> None:
        ctx = _context()
        here, there = ctx.Pipe()
        process = ctx.Process(
            target=_serve, args=(there, self.memory_budget, Recycling(self.recycle_rss, self.recycle_growth, self.max_tasks)),
            daemon=True, name="looplint-worker",
        )
        process.start()
        there.close()
        self._process, self._conn = process, here
        self.tasks = 0

    def submit(self, fn: Callable, *args: Any, tight: bool = False) -> None:
        """Sends ``fn(*args)`` (a module-level function, arguments that pickle) to the worker; ``tight``: it
        retires after the task when it grew by ``TIGHT_GROWTH`` (another worker's heavy task is running)."""
        for attempt in (1, 2):
            if self._conn is None:
                self._start()
            try:
                self._conn.send((fn, args, tight))
                self.tasks += 1
                if self._kill_requested:  # killed while it started: the task must not run
                    self._kill_now()
                return
            except (BrokenPipeError, ConnectionResetError, EOFError):
                if attempt == 2:
                    raise
                self._reap()  # it died while idle (or retired): a fresh one takes the task

    def result(self) -> Any:
        """Waits for the task's outcome: its value, or ``WorkerDied`` / ``WorkerError``."""
        try:
            status, payload, retired = self._conn.recv()
        except (EOFError, OSError):
            raise WorkerDied(*self._reap()) from None
        if retired:
            self._reap()
        if status == "ok":
            return payload
        if status == "memory":
            raise WorkerDied("it ran out of memory", True)
        raise WorkerError(*payload)

    def call(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` in the worker; calls from several threads take turns."""
        with self._calling:
            self.submit(fn, *args)
            return self.result()

    def _reap(self):
        process, conn = self._process, self._conn
        self._process = self._conn = None
        self._kill_requested = False
        if conn is not None:
            try:
                conn.send(None)  # "stop" (a forked child may hold a copy of this end: no end of input)
            except (OSError, ValueError):
                pass
            conn.close()
        if process is None:
            return "it was not running", False
        process.join(5)
        if process.exitcode is None:  # still alive: it must not outlive its task
            process.kill()
            process.join()
        return _describe_exit(process.exitcode)

    def close(self) -> None:
        """Ends the worker: asked to stop, killed if it does not."""
        self._reap()

    def refresh(self) -> None:
        """Replaces a process that has run tasks by a fresh one (started by the next task): what those
        tasks left in it, up to the recycling limits, is not added to the next task's peak."""
        if self.tasks:
            self._reap()

    def kill(self) -> None:
        """Kills the process at once, from any thread (also one that is starting it for a task): a
        ``result`` waiting in another thread raises ``WorkerDied`` (and reaps it); the next task gets a
        fresh worker."""
        self._kill_requested = True
        self._kill_now()

    def _kill_now(self) -> None:
        process = self._process
        if process is not None:
            try:
                process.kill()
            except (OSError, ValueError, AttributeError):
                pass


def _describe_exit(code: Optional[int]):
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"it was killed by {name}", -code in _MEMORY_SIGNALS
    return f"it exited with status {code}", False


Outcome = Union[Any, WorkerDied, WorkerError]


def run_tasks(
    fn: Callable,
    tasks: Sequence[Iterable[Any]],
    jobs: int,
    on_done: Optional[Callable[[int, float], None]] = None,
    order: Optional[Sequence[int]] = None,
    heavy: Collection[int] = (),
    settle: Optional[Callable[[int, Outcome], Any]] = None,
    **worker_options: Any,
) -> List[Any]:
    """``fn(*task)`` for every task, ``jobs`` workers at a time; in task order, the value or the
    ``WorkerDied`` / ``WorkerError`` in its place. ``on_done(index, seconds)`` is called as each task ends
    (in the order they end), with the time it took. ``order``: the task indices in the order workers take
    them (default: task order); the longest first keeps one long task from ending the run alone.
    ``heavy``: indices of tasks that need much memory (large files): one runs at a time, the other
    workers take the next light tasks meanwhile (or wait), so that their peaks do not add up; and each starts
    in a fresh worker, so that its peak is not added to what earlier tasks left behind. ``settle(index,
    outcome)``: called as each task ends; what it returns is kept in the outcome's place (a caller that
    stores or drops part of an outcome need not hold every one until the last task ends)."""
    tasks = [tuple(t) for t in tasks]
    outcomes: List[Outcome] = [None] * len(tasks)
    workers = [Worker(**worker_options) for _ in range(max(1, min(jobs, len(tasks))))]
    heavy = frozenset(heavy)
    every = list(range(len(tasks)) if order is None else order)
    queues = (deque(i for i in every if i in heavy), deque(i for i in every if i not in heavy))
    holding = {}  # worker -> the index of the task it runs
    started = {}  # task index -> when it was given to a worker

    def give(worker: Worker) -> None:
        heavies, lights = queues
        if heavies and not any(i in heavy for i in holding.values()):
            index = heavies.popleft()
            worker.refresh()
        elif lights:
            index = lights.popleft()
        else:
            return  # nothing, or only heavy tasks while one runs: this worker waits
        tight = index not in heavy and any(i in heavy for i in holding.values())
        worker.submit(fn, *tasks[index], tight=tight)
        holding[worker] = index
        started[index] = time.monotonic()

    try:
        for worker in workers:
            give(worker)
        while holding:
            by_connection = {w.connection: w for w in holding}
            for ready in wait(list(by_connection)):
                worker = by_connection[ready]
                index = holding.pop(worker)
                try:
                    outcome = worker.result()
                except (WorkerDied, WorkerError) as e:
                    outcome = e
                outcomes[index] = settle(index, outcome) if settle is not None else outcome
                if on_done is not None:
                    on_done(index, time.monotonic() - started[index])
                for idle in [w for w in workers if w not in holding]:  # one that waited may go on now
                    give(idle)
    finally:
        for worker in workers:
            worker.close()
    return outcomes


# ---------------------------------------------------------------------------------------------- the child


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        import resource  # the peak: not quite "now", but all some platforms tell

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _cap_memory(budget: int) -> None:
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = size + STACK_SIZE + budget
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError, AttributeError):
        pass  # no address-space limit on this platform: the size limit still bounds the input


class Recycling:
    """When a worker retires after a task: resident above ``rss``, grown by more than ``growth`` since it
    started (after returning freed memory to the system), or ``max_tasks`` tasks done."""

    def __init__(self, rss: int = RECYCLE_RSS, growth: int = RECYCLE_GROWTH, max_tasks: int = MAX_TASKS) -> None:
        self.rss, self.growth, self.max_tasks = rss, growth, max_tasks
        self.start = 0
        self.tasks = 0

    def started(self) -> None:
        return_free_memory()  # the baseline without free pages forked from the parent (later trims drop them)
        self.start = _resident_bytes()

    def retire_after_task(self, tight: bool = False) -> bool:
        """``tight``: another worker runs a heavy task, and ``TIGHT_GROWTH`` is the growth allowed."""
        self.tasks += 1
        if self.tasks >= self.max_tasks:
            return True
        growth = min(self.growth, TIGHT_GROWTH) if tight else self.growth
        resident = _resident_bytes()
        if resident - self.start > growth:
            return_free_memory()
            resident = _resident_bytes()
        return resident > self.rss or resident - self.start > growth


def return_free_memory() -> None:
    """Gives the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _serve(conn, memory_budget: int, recycling: Recycling) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # A dying parser writes to stderr ("memory allocation failed", a backtrace, a fault handler's dump);
    # the parent reports the death as an LL000 for the file.
    faulthandler.disable()
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    except OSError:
        pass
    from looplint import engine

    engine.IN_WORKER = True  # input that is risky in-process is parsed right here
    engine.warm_up()  # nothing to do when the parent had it all and forked
    engine.linting_process()
    import gc

    gc.freeze()  # what the imports made lives as long as the worker: the collector need not scan it
    recycling.started()
    _cap_memory(memory_budget)
    threading.stack_size(STACK_SIZE)
    runner = threading.Thread(target=_loop, args=(conn, recycling), name="looplint-task")
    runner.start()
    runner.join()


def _loop(conn, recycling: Recycling) -> None:
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, args, tight = task
        try:
            reply = ("ok", fn(*args))
        except MemoryError:
            reply = ("memory", None)
        except BaseException as e:  # noqa: BLE001 - the parent decides what a failure means
            reply = ("error", (f"{type(e).__name__}: {e}", traceback.format_exc()))
        retire = reply[0] == "memory" or recycling.retire_after_task(tight)
        try:
            conn.send(reply + (retire,))
        except (OSError, ValueError):
            return
        if retire:
            return
