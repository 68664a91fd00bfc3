"""A recorded run, read back: the events and the questions the oracles ask of them.

Every event has ``seq``, ``kind``, ``line`` (the innermost line of the program file on the stack),
``stack`` and ``loops``, its loop path: ``[frame, loop header line, instance, iteration]`` per active loop,
outermost first. Kinds: ``start``, ``optimizer``, ``scheduler``, ``loader_iter``, ``batch``,
``loader_end``, ``forward``, ``backward``, ``zero_grad``, ``step``, ``closure_call``, ``sched_step``,
``scaler``, ``scale`` (a loss multiplied by a GradScaler, with the factor), ``clip``, ``mode``, ``graphs``
(after each step: the size of the autograd graph each program local still holds), ``end`` (see
``recorder``).
"""
from __future__ import annotations

import json
import signal
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

Entry = Tuple[int, int, int, int]  # frame, loop line, instance, iteration
Instance = Tuple[int, int, int]  # frame, loop line, instance


class Trace:
    def __init__(self, program: str, events: List[dict], seconds: float = 0.0, stderr: str = "",
                 timed_out: Optional[float] = None, failure: Optional[str] = None,
                 returncode: Optional[int] = None, before_start: bool = False) -> None:
        self.program = program
        self.events = events
        self.seconds = seconds
        self.stderr = stderr
        self.timed_out = timed_out
        self.failure = failure
        self.returncode = returncode  # the process's exit status, or minus the signal that killed it
        self.before_start = before_start  # timed out before the recorder started
        start = self.first("start") or {}
        self.loops: Dict[int, dict] = {int(k): v for k, v in (start.get("loop_map") or {}).items()}
        self.end = self.first("end")
        self._data_loops: Optional[set] = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, program: str, path: str, seconds: float = 0.0, stderr: str = "",
             timed_out: Optional[float] = None, returncode: Optional[int] = None,
             before_start: bool = False) -> "Trace":
        events = []
        try:
            with open(path, encoding="utf-8") as f:
                for raw in f:
                    try:
                        events.append(json.loads(raw))
                    except ValueError:  # a line cut short by a kill
                        break
        except OSError:
            pass
        failure = None
        if not events and timed_out is None:
            tail = stderr.strip().splitlines()[-1:] or ["no trace was written"]
            failure = f"the recorder did not start: {tail[0]}"
            if returncode:
                failure += f" ({describe_returncode(returncode)})"
        return cls(program, events, seconds, stderr, timed_out, failure, returncode, before_start)

    @classmethod
    def failed(cls, program: str, reason: str) -> "Trace":
        return cls(program, [], failure=reason)

    # ------------------------------------------------------------------ run outcome
    @property
    def status(self) -> str:
        """finished | truncated | crashed | exited | timeout | failed. A program that ended without the
        recorder's last word was killed by a signal (crashed) or left through ``os._exit`` (exited)."""
        if self.failure:
            return "failed"
        if self.timed_out is not None:
            return "timeout"
        if self.end is None:
            return "crashed" if self.returncode is not None and self.returncode < 0 else "exited"
        return self.end["status"]

    @property
    def exit_code(self) -> Optional[int]:
        """The status the program exited with (``sys.exit(3)``, ``os._exit(3)``; 1 for ``sys.exit("msg")``)."""
        if self.end is not None and self.end.get("exit_code") is not None:
            return self.end["exit_code"]
        return self.returncode if self.returncode is not None and self.returncode >= 0 else None

    @property
    def error(self) -> Optional[dict]:
        if self.end is None and self.returncode is not None and self.returncode < 0 and self.timed_out is None:
            return {"type": _signal_name(-self.returncode), "message": describe_returncode(self.returncode),
                    "line": self.events[-1].get("line") if self.events else None}
        return self.end.get("error") if self.end else None

    @property
    def steps_taken(self) -> int:
        return len(self.of("step"))

    # ------------------------------------------------------------------ lookups
    def first(self, kind: str) -> Optional[dict]:
        for e in self.events:
            if e["kind"] == kind:
                return e
        return None

    def of(self, *kinds: str) -> List[dict]:
        return [e for e in self.events if e["kind"] in kinds]

    def optimizers(self) -> Dict[int, dict]:
        return {e["opt"]: e for e in self.of("optimizer")}

    def schedulers(self) -> Dict[int, dict]:
        return {e["sched"]: e for e in self.of("scheduler")}

    def steps(self, opt: Optional[int] = None) -> List[dict]:
        return [e for e in self.of("step") if opt is None or e["opt"] == opt]

    def backwards(self) -> Dict[int, dict]:
        return {e["id"]: e for e in self.of("backward")}

    def reaches(self, backward: dict, opt: int) -> bool:
        return str(opt) in backward.get("opts", {})

    def opt_name(self, opt: Optional[int]) -> str:
        e = self.optimizers().get(opt) if opt is not None else None
        return e["cls"] if e else "optimizer"

    # ------------------------------------------------------------------ loops
    @staticmethod
    def path(event: dict) -> List[Entry]:
        return [tuple(x) for x in event.get("loops") or []]  # type: ignore[misc]

    @staticmethod
    def same_iteration(a: dict, b: dict) -> bool:
        """True when every loop instance enclosing both events is in the same iteration for both."""
        pa, pb = Trace.path(a), Trace.path(b)
        for x, y in zip(pa, pb):
            if x[:3] != y[:3]:
                return True
            if x[3] != y[3]:
                return False
        return True

    @staticmethod
    def within(event: dict, prefix: Sequence[Entry]) -> bool:
        """The event ran inside every (loop instance, iteration) of ``prefix``."""
        p = Trace.path(event)
        return len(p) >= len(prefix) and all(tuple(p[i]) == tuple(prefix[i]) for i in range(len(prefix)))

    @staticmethod
    def inside(event: dict, instance: Instance) -> bool:
        """The event ran inside the loop instance (any iteration)."""
        return any(tuple(x[:3]) == tuple(instance) for x in Trace.path(event))

    def data_loops(self) -> set:
        """Loop lines that draw data: ``for`` loops over something other than a counter, in which a
        DataLoader batch was drawn at the header or a grad-enabled forward pass ran."""
        if self._data_loops is None:
            found = set()
            for e in self.events:
                if e["kind"] == "batch" and e.get("loops"):
                    found.add(e["loops"][-1][1])
            for e in self.of("forward"):
                if e.get("grad"):
                    for x in e.get("loops") or []:
                        if self.loops.get(x[1], {}).get("data"):
                            found.add(x[1])
            self._data_loops = found
        return self._data_loops

    def data_entry(self, event: dict) -> Optional[Tuple[int, Entry]]:
        """The innermost data loop around the event: (its index in the loop path, its entry)."""
        data = self.data_loops()
        path = self.path(event)
        for i in range(len(path) - 1, -1, -1):
            if path[i][1] in data:
                return i, path[i]
        return None

    def iterations(self, instance: Instance) -> int:
        """Iterations of a loop instance in which something was recorded (or batches drawn)."""
        n = 0
        for e in self.events:
            if e["kind"] == "loader_end":  # raised at the header's exit test, after the last iteration
                continue
            for x in e.get("loops") or []:
                if tuple(x[:3]) == tuple(instance):
                    n = max(n, x[3] + 1)
        return n

    def loader_len(self, instance: Instance) -> Optional[int]:
        """``len(loader)`` of the DataLoader iterated by this loop instance, when one was."""
        for e in self.of("batch"):
            loops = e.get("loops") or []
            if loops and tuple(loops[-1][:3]) == tuple(instance):
                for it in self.of("loader_iter"):
                    if it["loader"] == e["loader"] and it["epoch"] == e["epoch"]:
                        return it.get("len")
        return None

    def between(self, a: Optional[dict], b: dict, kinds: Iterable[str]) -> List[dict]:
        lo = a["seq"] if a else 0
        kinds = set(kinds)
        return [e for e in self.events if lo < e["seq"] < b["seq"] and e["kind"] in kinds]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_returncode(code: int) -> str:
    if code < 0:
        name = _signal_name(-code)
        try:
            what = signal.strsignal(-code)
        except (ValueError, AttributeError):
            what = None
        return f"killed by {name}" + (f" ({what.lower()})" if what else "")
    return f"exit status {code}"
