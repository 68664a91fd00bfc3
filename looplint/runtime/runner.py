"""The runner: executes one program under the recorder, in its own subprocess, and reads back its trace.

The program runs in its own folder, on the CPU, seeded, with a budget of optimizer steps after which the
recorder stops it (the trace is then "truncated"), and a timeout counted from the moment the recorder
started: importing torch (2-4 s on a loaded machine) is never charged to the program. Starting up has its
own, generous bound (``STARTUP_TIMEOUT``); a program that exceeds either is "timed out". A crash of the
program is part of the trace, never an exception here; so is how it ended: its exit status or the signal
that killed it. Only the paths given are executed.

Importing torch (and ``torch._dynamo``, which the first optimizer pulls in) takes seconds, far longer than
a small program runs. So the runner starts a *fork server* where ``os.fork`` exists: a ``python -c``
process that imports torch once and forks a fresh child per program (own process, own session, own
folder, a clean copy of the pre-imported interpreter). The fork server is its programs' *subreaper*
(Linux): whatever a program starts is re-parented to it if its parent goes, however it detached itself
(``setsid()``, a double fork), and when the program ends, every process it left behind is killed, found
through ``/proc``. Elsewhere the program's own session is killed when it ends.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Dict, Iterable, List, NamedTuple, Optional

from looplint.runtime.recorder import MAX_STEPS_ENV, TRACE_ENV
from looplint.runtime.trace import Trace

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_STEPS = 200
STARTUP_TIMEOUT = 300.0  # seconds for the recorder to start (Python, torch): a guard, not a measure

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOTSTRAP = (
    "import sys; sys.path.append({parent!r}); "
    "from looplint.runtime.recorder import main; main(sys.argv[1:])"
).format(parent=_PACKAGE_PARENT)


# The server imports from a clean path: not its working directory, whose files could shadow modules.
SERVER = (
    "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; sys.path.append({parent!r}); "
    "from looplint.runtime.runner import serve; serve()"
).format(parent=_PACKAGE_PARENT)


class Ending(NamedTuple):
    """How a run ended, as its supervisor saw it."""

    returncode: Optional[int]  # the exit status, or minus the signal that killed it; None if unknown
    timed_out: bool = False
    before_start: bool = False  # timed out before the recorder started


def _environment(trace_path: Optional[str] = None, max_steps: Optional[int] = None) -> Dict[str, str]:
    env = dict(os.environ)
    if trace_path is not None:
        env[TRACE_ENV] = trace_path
    if max_steps is not None:
        env[MAX_STEPS_ENV] = str(max_steps)
    env.update({
        "CUDA_VISIBLE_DEVICES": "",  # CPU only
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",  # programs run side by side; one thread each is fastest for small models
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "TQDM_DISABLE": "1",
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def _trace(program: str, trace_path: str, err_path: str, started: float, timeout: float, startup_timeout: float,
           ending: Ending) -> Trace:
    """The trace of a run that ended as ``ending`` says (``timed_out``: the bound that was exceeded)."""
    try:
        with open(err_path, "rb") as f:
            stderr = f.read()[-4000:].decode("utf-8", "replace")
    except OSError:
        stderr = ""
    return Trace.load(program, trace_path, seconds=time.monotonic() - started, stderr=stderr,
                      timed_out=(startup_timeout if ending.before_start else timeout) if ending.timed_out else None,
                      returncode=ending.returncode,
                      before_start=ending.before_start)


def run_program(program: str, timeout: float = DEFAULT_TIMEOUT, max_steps: int = DEFAULT_MAX_STEPS,
                startup_timeout: float = STARTUP_TIMEOUT) -> Trace:
    """Runs ``program`` under the recorder and returns its trace (whatever happened to the program)."""
    if hasattr(os, "fork"):
        server = ForkServer(startup_timeout)
        try:
            return server.run(program, timeout, max_steps)
        finally:
            server.close()
    return _run_plain(program, timeout, max_steps, startup_timeout)


def _run_plain(program: str, timeout: float, max_steps: int, startup_timeout: float) -> Trace:
    """One fresh ``python`` per program (no fork server): it imports torch itself."""
    program = os.path.abspath(program)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="looplint-run-") as tmp:
        trace_path = os.path.join(tmp, "trace.jsonl")
        err_path = os.path.join(tmp, "stderr.txt")
        with open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", BOOTSTRAP, program, str(max_steps)],
                    cwd=os.path.dirname(program) or ".",
                    env=_environment(trace_path, max_steps),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,  # its own process group, so that its children end with it
                )
            except OSError as e:
                return Trace.failed(program, f"cannot start the program: {e}")
            ending = _supervise(lambda: proc.poll(), proc.pid, trace_path, timeout, startup_timeout)
        return _trace(program, trace_path, err_path, started, timeout, startup_timeout, ending)


def _supervise(poll, pid: int, trace_path: str, timeout: float, startup_timeout: float) -> Ending:
    """Waits for the program ``pid`` (``poll()``: its return code once it ended, else None) until the
    recorder has started and then for ``timeout`` seconds; kills it at a deadline, and everything it left
    behind when it ends."""
    start_deadline = time.monotonic() + startup_timeout
    deadline = None
    pause = 0.002
    ending = None
    while ending is None:
        code = poll()
        if code is not None:
            ending = Ending(code)
            break
        now = time.monotonic()
        if deadline is None and _recorder_started(trace_path):
            deadline = now + timeout
        if now >= (deadline if deadline is not None else start_deadline):
            _kill_tree(pid)
            ending = Ending(_reaped(poll), timed_out=True, before_start=deadline is None)
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    _kill_tree(pid)
    return ending


def _reaped(poll) -> Optional[int]:
    for _ in range(1000):
        code = poll()
        if code is not None:
            return code
        time.sleep(0.01)
    return None


def _recorder_started(trace_path: str) -> bool:
    try:
        return os.path.getsize(trace_path) > 0
    except OSError:
        return False


def _become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process instead of init (Linux 3.4+)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _descendants(root: int) -> List[int]:
    """Living processes below ``root``, from ``/proc`` (empty where there is no ``/proc``)."""
    children: Dict[int, List[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            state, ppid = fields[0], int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            found.append(child)
            stack.append(child)
    return found


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_tree(pid: int) -> None:
    """Kills the program ``pid``, its process group, and (from the fork server, its subreaper) every
    process it started, however detached; reaps the ones re-parented here."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    _kill(pid)
    if not _SUBREAPER:
        return
    for _ in range(100):  # new children may appear while a tree is killed: until none is left
        left = _descendants(os.getpid())
        for child in left:
            _kill(child)
        _reap_children()
        if not left:
            return
        time.sleep(0.01)


def _reap_children() -> None:
    """Collects the exit status of every ended child (orphans re-parented here among them)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


_SUBREAPER = False  # set in the fork server


class ForkServer:
    """A ``python -c`` process with torch imported that forks one child per program it is asked to run."""

    def __init__(self, startup_timeout: float = STARTUP_TIMEOUT) -> None:
        self.startup_timeout = startup_timeout
        self.home = tempfile.TemporaryDirectory(prefix="looplint-server-")
        self.proc: Optional["subprocess.Popen[bytes]"] = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=_environment(), cwd=self.home.name,
        )

    def run(self, program: str, timeout: float = DEFAULT_TIMEOUT, max_steps: int = DEFAULT_MAX_STEPS) -> Trace:
        program = os.path.abspath(program)
        if self.proc is None or self.proc.poll() is not None:
            return _run_plain(program, timeout, max_steps, self.startup_timeout)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="looplint-run-") as tmp:
            trace_path = os.path.join(tmp, "trace.jsonl")
            err_path = os.path.join(tmp, "stderr.txt")
            request = {"program": program, "cwd": os.path.dirname(program) or ".", "trace": trace_path,
                       "stderr": err_path, "max_steps": max_steps, "timeout": timeout,
                       "startup_timeout": self.startup_timeout}
            try:
                assert self.proc.stdin is not None and self.proc.stdout is not None
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
                reply = json.loads(self.proc.stdout.readline() or b"null")
            except (OSError, ValueError):
                reply = None
            if not isinstance(reply, dict):  # the server is gone: run this one the plain way
                self.close()
                return _run_plain(program, timeout, max_steps, self.startup_timeout)
            ending = Ending(reply.get("returncode"), bool(reply.get("timed_out")), bool(reply.get("before_start")))
            return _trace(program, trace_path, err_path, started, timeout, self.startup_timeout, ending)

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            self.home.cleanup()
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            self.home.cleanup()


def serve(stdin: Optional[IO[bytes]] = None, stdout: Optional[IO[bytes]] = None) -> None:
    """The fork server's loop: one JSON request per line in, one JSON reply per line out."""
    global _SUBREAPER
    from looplint.runtime import recorder

    _SUBREAPER = _become_subreaper()
    recorder.preload()
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    for raw in iter(stdin.readline, b""):
        try:
            req = json.loads(raw)
        except ValueError:
            continue
        pid = os.fork()
        if pid == 0:  # the child: becomes the program
            try:
                os.setsid()
                os.chdir(req["cwd"])
                null = os.open(os.devnull, os.O_RDWR)
                err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(err, 2)
                sys.stdin = open(os.devnull)
                os.environ[TRACE_ENV] = req["trace"]
                os.environ[MAX_STEPS_ENV] = str(req["max_steps"])
                recorder.main([req["program"], str(req["max_steps"])])
            finally:
                os._exit(0)
        ending = _supervise(_poller(pid), pid, req["trace"], float(req.get("timeout", DEFAULT_TIMEOUT)),
                            float(req.get("startup_timeout", STARTUP_TIMEOUT)))
        stdout.write((json.dumps(ending._asdict()) + "\n").encode())
        stdout.flush()


def _poller(pid: int):
    """``poll()`` for a forked child: its return code (minus the signal) once it ended, else None."""
    state: Dict[str, int] = {}

    def poll() -> Optional[int]:
        if "code" not in state:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return state.setdefault("code", -signal.SIGKILL)
            if done:
                state["code"] = os.waitstatus_to_exitcode(status)
        return state.get("code")

    return poll


def run_programs(programs: Iterable[str], timeout: float = DEFAULT_TIMEOUT, max_steps: int = DEFAULT_MAX_STEPS,
                 jobs: Optional[int] = None, fork: Optional[bool] = None) -> Dict[str, Trace]:
    """Runs several programs, ``jobs`` at a time (through fork servers where the platform has ``fork``);
    returns their traces by the path given, in the order given."""
    programs = list(dict.fromkeys(programs))
    jobs = max(1, min(jobs or min(2, os.cpu_count() or 1), len(programs) or 1))
    if fork is None:
        fork = hasattr(os, "fork")
    if not fork:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            traces: List[Trace] = list(pool.map(lambda p: _run_plain(p, timeout, max_steps, STARTUP_TIMEOUT), programs))
        return dict(zip(programs, traces))
    servers: "queue.Queue[ForkServer]" = queue.Queue()
    started = [ForkServer() for _ in range(jobs)]
    for s in started:
        servers.put(s)

    def one(program: str) -> Trace:
        server = servers.get()
        try:
            return server.run(program, timeout, max_steps)
        finally:
            servers.put(server)

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            traces = list(pool.map(one, programs))
    finally:
        for s in started:
            s.close()
    return dict(zip(programs, traces))
