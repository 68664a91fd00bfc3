"""Runs ``looplint confirm`` on generated programs and compares the linter with the runtime.

The label of a program is the runtime's verdict: the bugs the oracles saw, at their lines. A program agrees
when ``looplint confirm`` says so: every static finding confirmed at its line, no bug the oracles saw left
unreported, and the run did not fail. Separately, the runtime's verdict is compared with the generator's
intention (the injected bug), to measure how often an injection does not produce the bug it meant to.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from . import DIMENSIONS, NA, NONE, RULES, Program

Finding = Tuple[str, int]


@dataclass
class Outcome:
    program: Program
    static: List[Finding]  # what the linter reported
    dynamic: List[Finding]  # what the runtime saw (confirmed findings at the linter's line, others at the oracle's)
    agrees: bool
    error: Optional[str]
    status: str
    row: dict  # the program's entry in `looplint confirm --output-format json`

    @property
    def intent(self) -> str:
        """How the runtime's verdict relates to the injected bug: exact | missed | other | extra."""
        want = {code for code, _ in self.program.intended}
        if self.program.bug == NONE:
            want = set()
        seen = {code for code, _ in self.dynamic}
        if seen == want:
            return "exact"
        if want and not want & seen:
            return "missed" if not seen else "other"
        return "extra"

    def to_json(self) -> dict:
        return {
            "path": self.program.path,
            "metadata": self.program.metadata(),
            "static": [list(f) for f in self.static],
            "dynamic": [list(f) for f in self.dynamic],
            "intent": self.intent,
            "error": self.error,
            "status": self.status,
            "confirm": self.row,
        }


def run(programs: Sequence[Program], jobs: int = 2, timeout: float = 60.0) -> List[Outcome]:
    """Runs ``looplint confirm`` (in this process, the programs in subprocesses) on written programs."""
    from looplint.runtime import confirm

    paths = [p.path for p in programs]
    out = io.StringIO()
    confirm.main(paths + ["--jobs", str(jobs), "--timeout", f"{timeout:g}", "--output-format", "json"], out=out)
    rows = {r["path"]: r for r in json.loads(out.getvalue())}
    outcomes = []
    for p in programs:
        row = rows[p.path]
        static = [(v["code"], v["line"]) for v in row["confirmed"] + row["unconfirmed"]]
        dynamic = [(v["code"], v["line"]) for v in row["confirmed"] + row["unexpected"] + row["suppressed"]]
        outcomes.append(Outcome(p, sorted(static), sorted(dynamic), row["agrees"], row["error"], row["status"], row))
    return outcomes


def explain(o: Outcome) -> str:
    """One disagreement, for an assertion message or a report."""
    row = o.row
    parts = [f"{o.program.path}: {o.program.bug} ({o.program.choice['bug_variant']}); "
             + ", ".join(f"{k}={v}" for k, v in o.program.choice.items()
                         if k not in ("bug", "bug_variant") and v != NA)]
    parts.append(f"  static {o.static} / runtime {o.dynamic} / intended {o.program.intended}; the program: "
                 f"python bench/differential.py --seed {o.program.seed} --show {o.program.index}")
    for v in row["unconfirmed"]:
        parts.append(f"  unconfirmed {v['code']} line {v['line']}: {v['reason']}")
    for v in row["unexpected"]:
        parts.append(f"  unreported {v['code']} line {v['line']}: {v['evidence']}")
    if o.error:
        parts.append(f"  error: {o.error}")
    return "\n".join(parts)


def kinds(o: Outcome) -> List[str]:
    """Short labels of what went wrong: 'missed LL101', 'false LL201', 'error'."""
    out = [f"missed {v['code']}" for v in o.row["unexpected"]]
    out += [f"false {v['code']}" for v in o.row["unconfirmed"]]
    if o.error:
        out.append("error")
    return out


# ---------------------------------------------------------------------------------------------- tables

@dataclass
class Row:
    dimension: str
    value: str
    programs: int
    agree: int

    @property
    def percent(self) -> float:
        return 100.0 * self.agree / self.programs if self.programs else 100.0


def by_dimension(outcomes: Sequence[Outcome]) -> List[Row]:
    rows: Dict[Tuple[str, str], List[int]] = {}
    for o in outcomes:
        for dim in ("bug", "bug_variant") + tuple(DIMENSIONS):
            v = o.program.choice.get(dim, NA)
            if v == NA:
                continue
            key = (dim, f"{o.program.bug}:{v}" if dim == "bug_variant" else v)
            r = rows.setdefault(key, [0, 0])
            r[0] += 1
            r[1] += o.agrees
    order = {d: i for i, d in enumerate(("bug", "bug_variant") + tuple(DIMENSIONS))}
    return [Row(d, v, n, a) for (d, v), (n, a) in sorted(rows.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]


def by_rule(outcomes: Sequence[Outcome]) -> List[dict]:
    """Per rule: programs where the linter, the runtime or the generator named it, and how they agree."""
    out = []
    for code in RULES:
        involved = [o for o in outcomes if code in {c for c, _ in o.static + o.dynamic + o.program.intended}]
        static = sum(1 for o in involved if any(c == code for c, _ in o.static))
        dynamic = sum(1 for o in involved if any(c == code for c, _ in o.dynamic))
        confirmed = sum(1 for o in involved for v in o.row["confirmed"] if v["code"] == code)
        missed = sum(1 for o in involved for v in o.row["unexpected"] if v["code"] == code)
        false = sum(1 for o in involved for v in o.row["unconfirmed"] if v["code"] == code)
        out.append({"rule": code, "programs": len(involved), "agree": sum(o.agrees for o in involved),
                    "runtime": dynamic, "linter": static, "confirmed": confirmed, "missed": missed, "false": false})
    return out


def summary(outcomes: Sequence[Outcome]) -> dict:
    n = len(outcomes)
    agree = sum(o.agrees for o in outcomes)
    intents = Counter(o.intent for o in outcomes)
    errors = Counter((o.error or "").split(":")[0] for o in outcomes if o.error)
    return {"programs": n, "agree": agree, "percent": round(100.0 * agree / n, 2) if n else 100.0,
            "intent": dict(intents), "errors": dict(errors),
            "disagreement_kinds": dict(Counter(k for o in outcomes for k in kinds(o)).most_common())}


def format_table(rows: Iterable[Row]) -> str:
    lines = [f"{'dimension':<14} {'value':<34} {'programs':>8} {'agree':>7} {'%':>7}"]
    for r in rows:
        lines.append(f"{r.dimension:<14} {r.value:<34} {r.programs:>8} {r.agree:>7} {r.percent:>6.1f}%")
    return "\n".join(lines)


def format_rules(rows: Iterable[dict]) -> str:
    lines = [f"{'rule':<6} {'programs':>8} {'agree':>6} {'%':>7} {'runtime':>8} {'linter':>7} {'confirmed':>9} "
             f"{'missed':>7} {'false':>6}"]
    for r in rows:
        pct = 100.0 * r["agree"] / r["programs"] if r["programs"] else 100.0
        lines.append(f"{r['rule']:<6} {r['programs']:>8} {r['agree']:>6} {pct:>6.1f}% {r['runtime']:>8} "
                     f"{r['linter']:>7} {r['confirmed']:>9} {r['missed']:>7} {r['false']:>6}")
    return "\n".join(lines)
