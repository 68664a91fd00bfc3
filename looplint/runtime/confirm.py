"""``looplint confirm PATH...``: lint each program, run it under the recorder, and put the static findings
beside the dynamic evidence.

Per program, every static finding is *confirmed* (an oracle of the same code saw the bug at that line) or
*unconfirmed* (with the reason); every bug the oracles saw that the linter did not report is *unexpected*,
unless its line carries a ``# noqa`` for that code (then it is *suppressed*: expected, and shown as such).
A program agrees when nothing is unconfirmed or unexpected and its run did not fail. Exit status: 0 when
every program agrees, 1 when one does not, 2 on a usage error.

Only the paths given are executed.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, TextIO

from looplint.diagnostics import Diagnostic
from looplint.engine import judges, lint_file
from looplint.files import MAX_SOURCE_BYTES, TooLarge, read_regular
from looplint.rule import PARSE_ERROR, all_rules
from looplint.runtime.oracles import EXPLAINS_CRASH, ORACLES, Evidence, evaluate
from looplint.runtime.runner import DEFAULT_MAX_STEPS, DEFAULT_TIMEOUT, run_programs
from looplint.runtime.trace import Trace
from looplint.suppress import parse_noqa

EXIT_AGREE, EXIT_DISAGREE, EXIT_USAGE = 0, 1, 2


@dataclass
class Verdict:
    code: str
    line: Optional[int]
    evidence: str = ""
    reason: str = ""


@dataclass
class ProgramReport:
    path: str
    static: List[str] = field(default_factory=list)
    confirmed: List[Verdict] = field(default_factory=list)
    unconfirmed: List[Verdict] = field(default_factory=list)
    unexpected: List[Verdict] = field(default_factory=list)
    suppressed: List[Verdict] = field(default_factory=list)
    unchecked: List[Verdict] = field(default_factory=list)  # evidence for codes with no registered rule
    error: Optional[str] = None
    status: str = ""
    steps: int = 0
    seconds: float = 0.0

    @property
    def agrees(self) -> bool:
        return not (self.unconfirmed or self.unexpected or self.error)

    def to_json(self) -> dict:
        def rows(items: List[Verdict], keys: Sequence[str]) -> List[dict]:
            return [{k: asdict(v)[k] for k in keys} for v in items]

        return {
            "path": self.path,
            "static": self.static,
            "confirmed": rows(self.confirmed, ("code", "line", "evidence")),
            "unconfirmed": rows(self.unconfirmed, ("code", "line", "reason")),
            "unexpected": rows(self.unexpected, ("code", "line", "evidence")),
            "suppressed": rows(self.suppressed, ("code", "line", "evidence", "reason")),
            "unchecked": rows(self.unchecked, ("code", "line", "evidence", "reason")),
            "error": self.error,
            "status": self.status,
            "steps": self.steps,
            "seconds": round(self.seconds, 2),
            "agrees": self.agrees,
        }


def oracle_codes() -> List[str]:
    """The codes to judge: every registered rule that has an oracle."""
    return sorted(ORACLES.keys() & {r.code for r in all_rules()})


def judge(path: str, trace: Trace, diagnostics: Sequence[Diagnostic], codes: Optional[Sequence[str]] = None,
          source: Optional[str] = None) -> ProgramReport:
    """Puts one program's static findings beside the evidence its trace holds."""
    codes = oracle_codes() if codes is None else list(codes)
    report = ProgramReport(path, static=[d.code for d in diagnostics], status=trace.status,
                           steps=trace.steps_taken, seconds=trace.seconds)
    observed = evaluate(trace) if trace.events else []
    evidence = [ev for ev in observed if ev.code in codes]
    for ev in observed:
        if ev.code not in codes:
            report.unchecked.append(Verdict(ev.code, ev.line, evidence=ev.text,
                                            reason=f"not judged: no rule {ev.code} is registered"))
    used = set()
    parse_error = next((d for d in diagnostics if d.code == PARSE_ERROR), None)
    for d in diagnostics:
        if d.code == PARSE_ERROR:
            continue
        last = max(d.end_line or d.line, d.line)
        match = [i for i, ev in enumerate(evidence)
                 if ev.code == d.code and any(d.line <= ln <= last for ln in ev.all_lines)]
        if match:
            used.update(match)
            report.confirmed.append(Verdict(d.code, d.line, evidence=evidence[match[0]].text))
        else:
            report.unconfirmed.append(Verdict(d.code, d.line, reason=_why_not(d, trace, evidence, codes)))
    noqa = _noqa(path if source is None else None, source)
    for i, ev in enumerate(evidence):
        if i in used:
            continue
        if _suppressed(ev, noqa):
            report.suppressed.append(Verdict(ev.code, ev.line, evidence=ev.text,
                                             reason=f"expected: the line carries `# noqa` for {ev.code}"))
        else:
            report.unexpected.append(Verdict(ev.code, ev.line, evidence=ev.text))
    report.error = _run_error(trace, observed)
    if parse_error is not None:
        report.error = f"{PARSE_ERROR}: {parse_error.message}"
    return report


def _why_not(d: Diagnostic, trace: Trace, evidence: List[Evidence], codes: Sequence[str]) -> str:
    if d.code not in ORACLES:
        return f"no oracle for {d.code}"
    if d.code not in codes:
        return f"the oracle for {d.code} was not run"
    elsewhere = sorted({ln for ev in evidence if ev.code == d.code for ln in ev.all_lines})
    if elsewhere:
        return f"the run showed {d.code} at line {', '.join(map(str, elsewhere))}, not here"
    run = None
    if trace.status == "failed":
        run = f"the program did not run: {trace.failure}"
    elif trace.status == "timeout":
        run = f"the program timed out after {trace.timed_out or 0:g} s" + (
            " before the recorder started" if trace.before_start else "")
    elif trace.status == "crashed":
        run = "the program crashed before showing it"
    elif trace.status == "truncated" and d.code == "LL105":
        run = f"the run was stopped after {trace.steps_taken} steps; {d.code} needs a run to its end"
    doc = (ORACLES[d.code].__doc__ or "").strip().split("\n")[0].rstrip(".")
    looked = f"; looked for: {doc[0].lower() + doc[1:]}" if doc else ""
    return (run or f"no run-time evidence in a {trace.status} run of {trace.steps_taken} steps") + looked


def _run_error(trace: Trace, evidence: List[Evidence]) -> Optional[str]:
    status = trace.status
    if status == "failed":
        return f"the program did not run: {trace.failure}"
    if status == "timeout":
        if trace.before_start:
            return (f"timed out after {trace.timed_out:g} s before the recorder started "
                    "(Python and torch were still starting up)")
        return f"timed out after {trace.timed_out:g} s (raise --timeout, or lower --max-steps)"
    if status == "exited":
        code, err = trace.exit_code, trace.error or {}
        if code == 0:
            return None  # os._exit(0): an unusual way to finish, not a failure
        message = err.get("message")
        said = f": {message}" if message and message != str(code) else ""
        how = "" if trace.end is not None else " through os._exit, before the recorder's end"
        return f"the program exited with status {code}{how}{said}"
    if status == "crashed":
        if any(ev.explains_crash for ev in evidence):
            return None
        err = trace.error or {}
        where = f" (line {err['line']})" if err.get("line") else ""
        return f"crashed: {err.get('type')}: {err.get('message')}{where}"
    errors = [e for e in trace.events if e["kind"] == "recorder_error"]
    if errors:
        return f"the recorder failed {len(errors)} times: {errors[0]['error']['type']}: {errors[0]['error']['message']}"
    return None


def _noqa(path: Optional[str], source: Optional[str]):
    if source is None:
        try:
            from looplint.engine import decode

            source = decode(read_regular(path or "", MAX_SOURCE_BYTES))
        except (OSError, UnicodeDecodeError, SyntaxError, LookupError):
            source = ""
    return parse_noqa(source)


def _suppressed(ev: Evidence, noqa) -> bool:
    rows, file_codes, file_level = noqa

    def matches(codes) -> bool:
        return codes is None or any(ev.code.startswith(c) for c in codes)

    if file_level and matches(file_codes):
        return True
    return any(ln in rows and matches(rows[ln]) for ln in ev.all_lines)


# ---------------------------------------------------------------------------------------------- command line

def collect(paths: Sequence[str]) -> List[str]:
    """Programs under ``paths``: files named are always taken; directories give their ``*.py`` files that
    mention a training call or call training code of their project (``engine.judges``; hidden folders, virtualenvs, ``__pycache__`` and build folders skipped)."""
    from looplint.config import Resolver
    from looplint.files import discover

    found = discover(paths, Resolver(isolated=True).for_path)
    for path, reason in found.unreadable:  # never run (or read) a FIFO, a device, a dangling link
        if not os.path.lexists(path):
            raise FileNotFoundError(path)
        raise ValueError(f"cannot run {path}: {reason}")
    for p in paths:
        if os.path.isfile(p) and p.endswith((".pyi", ".ipynb")):
            raise ValueError(f"cannot run {p}: only Python programs (*.py) can be run")
    named = {os.path.abspath(p) for p in paths if os.path.isfile(p)}
    out = []
    for f in found.files:
        if os.path.abspath(f) in named:
            out.append(f)
        elif f.endswith(".py") and _mentions_training(f):  # notebooks and stubs found in folders are not run
            out.append(f)
    return out


def _mentions_training(path: str) -> bool:
    try:
        return judges(read_regular(path, MAX_SOURCE_BYTES).decode("utf-8", "replace"), path)
    except TooLarge:
        return True  # its lint says it is too large to analyse
    except OSError:
        return False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="looplint confirm",
        description="Run training programs under looplint's recorder and confirm each static finding with "
                    "run-time evidence. Executes the programs given (on the CPU, in their own folder).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="programs, or folders of programs (*.py)")
    p.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"per program (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--max-steps", type=_positive_int, default=DEFAULT_MAX_STEPS, metavar="N",
                   help=f"stop a program after N optimizer steps (default {DEFAULT_MAX_STEPS})")
    p.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                   help="programs run at a time (default: 2, or 1 on a single core)")
    p.add_argument("--output-format", choices=("table", "json"), default="table")
    return p


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return x


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    out = out or sys.stdout
    try:
        ns = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # argparse has printed the usage error
        return EXIT_USAGE if e.code else EXIT_AGREE
    if importlib.util.find_spec("torch") is None:
        print("looplint confirm: error: it needs torch, which is not installed; install it with: "
              "pip install 'looplint[runtime]'", file=sys.stderr)
        return EXIT_USAGE
    try:
        programs = collect(ns.paths)
    except FileNotFoundError as e:
        print(f"looplint confirm: error: no such file or directory: {e.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        print(f"looplint confirm: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not programs:
        print("looplint confirm: error: no training programs (*.py) under the paths given", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    traces = run_programs(programs, timeout=ns.timeout, max_steps=ns.max_steps, jobs=ns.jobs)
    codes = oracle_codes()
    reports = [judge(p, traces[p], lint_file(p), codes) for p in programs]
    wall = time.monotonic() - started
    if ns.output_format == "json":
        json.dump([r.to_json() for r in reports], out, indent=2)
        out.write("\n")
    else:
        write_table(reports, out, wall)
    return EXIT_AGREE if all(r.agrees for r in reports) else EXIT_DISAGREE


def write_table(reports: Sequence[ProgramReport], out: TextIO, wall: Optional[float] = None) -> None:
    for r in reports:
        verdict = "agrees" if r.agrees else "DISAGREES"
        out.write(f"{r.path}  {verdict}  ({r.status}, {r.steps} steps, {r.seconds:.1f} s)\n")
        rows = (
            [(v, "confirmed", v.evidence) for v in r.confirmed]
            + [(v, "UNCONFIRMED", v.reason) for v in r.unconfirmed]
            + [(v, "UNEXPECTED", v.evidence) for v in r.unexpected]
            + [(v, "noqa", f"{v.reason}; run: {v.evidence}") for v in r.suppressed]
            + [(v, "unchecked", f"{v.reason}; run: {v.evidence}") for v in r.unchecked]
        )
        for v, label, text in sorted(rows, key=lambda x: (x[0].line or 0, x[0].code)):
            line = f"line {v.line}" if v.line is not None else "line ?"
            out.write(f"  {v.code}  {line:<9} {label:<12} {text}\n")
        if r.error:
            out.write(f"  error: {r.error}\n")
        if not rows and not r.error:
            out.write("  no findings, no run-time evidence\n")
    agree = sum(1 for r in reports if r.agrees)
    timing = f" in {wall:.1f} s" if wall is not None else ""
    out.write(f"\n{len(reports)} programs{timing}: {agree} agree, {len(reports) - agree} disagree\n")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
