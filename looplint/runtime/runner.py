"""The runner: executes one program under the recorder, in its own subprocess, and reads back its trace.

The program runs with ``python -c`` (a bootstrap that installs the recorder and then
``runpy.run_path(program, run_name="__main__")``), in its own folder, on the CPU, seeded, with a timeout
and a budget of optimizer steps after which the recorder stops it (the trace is then "truncated"). A crash
of the program is part of the trace, never an exception here. Only the paths given are executed.

Importing torch (and ``torch._dynamo``, which the first optimizer pulls in) takes seconds, far longer than
a small program runs. ``run_programs`` therefore starts one *fork server* per job where ``os.fork`` exists:
a ``python -c`` process that imports torch once and forks a fresh child per program, which then runs the
same bootstrap (own process, own session, own folder, a clean copy of the pre-imported interpreter).
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
from typing import IO, Dict, Iterable, List, Optional

from looplint.runtime.recorder import MAX_STEPS_ENV, TRACE_ENV
from looplint.runtime.trace import Trace

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_STEPS = 200

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


def run_program(program: str, timeout: float = DEFAULT_TIMEOUT, max_steps: int = DEFAULT_MAX_STEPS) -> Trace:
    """Runs ``program`` under the recorder and returns its trace (whatever happened to the program)."""
    program = os.path.abspath(program)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="looplint-run-") as tmp:
        trace_path = os.path.join(tmp, "trace.jsonl")
        err_path = os.path.join(tmp, "stderr.txt")
        timed_out = False
        with open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", BOOTSTRAP, program, str(max_steps)],
                    cwd=os.path.dirname(program) or ".",
                    env=_environment(trace_path, max_steps),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,  # its own process group, so a timeout ends its children too
                )
            except OSError as e:
                return Trace.failed(program, f"cannot start the program: {e}")
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
        seconds = time.monotonic() - started
        with open(err_path, "rb") as f:
            stderr = f.read()[-4000:].decode("utf-8", "replace")
        return Trace.load(program, trace_path, seconds=seconds, stderr=stderr,
                          timed_out=timeout if timed_out else None)


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


class ForkServer:
    """A ``python -c`` process with torch imported that forks one child per program it is asked to run."""

    def __init__(self) -> None:
        self.home = tempfile.TemporaryDirectory(prefix="looplint-server-")
        self.proc: Optional["subprocess.Popen[bytes]"] = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=_environment(), cwd=self.home.name,
        )

    def run(self, program: str, timeout: float = DEFAULT_TIMEOUT, max_steps: int = DEFAULT_MAX_STEPS) -> Trace:
        program = os.path.abspath(program)
        if self.proc is None or self.proc.poll() is not None:
            return run_program(program, timeout, max_steps)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="looplint-run-") as tmp:
            trace_path = os.path.join(tmp, "trace.jsonl")
            err_path = os.path.join(tmp, "stderr.txt")
            request = {"program": program, "cwd": os.path.dirname(program) or ".", "trace": trace_path,
                       "stderr": err_path, "max_steps": max_steps, "timeout": timeout}
            try:
                assert self.proc.stdin is not None and self.proc.stdout is not None
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
                reply = json.loads(self.proc.stdout.readline() or b"null")
            except (OSError, ValueError):
                reply = None
            if not isinstance(reply, dict):  # the server is gone: run this one the plain way
                self.close()
                return run_program(program, timeout, max_steps)
            stderr = ""
            try:
                with open(err_path, "rb") as f:
                    stderr = f.read()[-4000:].decode("utf-8", "replace")
            except OSError:
                pass
            return Trace.load(program, trace_path, seconds=time.monotonic() - started, stderr=stderr,
                              timed_out=timeout if reply.get("timed_out") else None)

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            self.home.cleanup()
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            self.home.cleanup()


def serve(stdin: Optional[IO[bytes]] = None, stdout: Optional[IO[bytes]] = None) -> None:
    """The fork server's loop: one JSON request per line in, one JSON reply per line out."""
    from looplint.runtime import recorder

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
        timed_out = not _wait(pid, float(req.get("timeout", DEFAULT_TIMEOUT)))
        stdout.write((json.dumps({"timed_out": timed_out}) + "\n").encode())
        stdout.flush()


def _wait(pid: int, timeout: float) -> bool:
    """Waits for a child; kills its process group at the deadline. True when it ended by itself."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
        if time.monotonic() >= deadline:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def run_programs(programs: Iterable[str], timeout: float = DEFAULT_TIMEOUT, max_steps: int = DEFAULT_MAX_STEPS,
                 jobs: Optional[int] = None, fork: Optional[bool] = None) -> Dict[str, Trace]:
    """Runs several programs, ``jobs`` at a time (fork servers where the platform has ``fork``);
    returns their traces by the path given, in the order given."""
    programs = list(dict.fromkeys(programs))
    jobs = max(1, min(jobs or min(2, os.cpu_count() or 1), len(programs) or 1))
    if fork is None:
        fork = hasattr(os, "fork") and len(programs) > 1
    if not fork:
        if jobs == 1:
            return {p: run_program(p, timeout, max_steps) for p in programs}
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            traces: List[Trace] = list(pool.map(lambda p: run_program(p, timeout, max_steps), programs))
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
