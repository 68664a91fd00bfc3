"""Shrinks a disagreeing program to the dimensions that cause the disagreement.

Starting from a program's choices, each dimension in turn is reset to a plain baseline value (built here,
inline, ``for x, y in loader``, no scheduler unless the bug needs one, ...) as long as the choices stay valid
and the linter still disagrees with the expected findings. The expected findings are the runtime's verdict
on the original program, assumed to carry over to the simpler ones (a helper, not a proof: confirm the
result by running it). What stays off the baseline names the shapes the linter does not understand.
"""
from __future__ import annotations

from typing import Dict, List, Set, Tuple

from . import render
from .choices import NA, NONE, ORDER, Choice, valid

BASELINE: Dict[str, str] = {
    "structure": "inline", "scheduler": NONE, "gating": NONE, "loop": "for", "epochs": "literal",
    "optimizer": "adam", "model_source": "here", "loader_source": "here", "opt_source": "here",
    "sched_source": "here", "scaler_source": "here", "loss": "functional", "zero": "optimizer", "clip": NONE,
    "eval": NONE, "extras": NONE, "imports": "qualified", "closure_form": "def", "amp_backward": "one_statement",
    "model_def": "sequential",
}


def static_findings(seed: int, index: int, choice: Choice) -> Set[Tuple[str, int]]:
    from looplint.engine import lint_source

    p = render(seed, index, choice)
    return {(d.code, d.line) for d in lint_source(p.source, p.name + ".py")}


def expected(seed: int, index: int, choice: Choice) -> Set[Tuple[str, int]]:
    """The injected bug's findings, assumed to be what the runtime sees (true for ~99 % of programs)."""
    p = render(seed, index, choice)
    return set() if choice["bug"] == NONE else set(p.intended)


def minimize(seed: int, index: int, choice: Choice) -> Tuple[Choice, List[str]]:
    """(the smallest choices found that still disagree, the dimensions left off the baseline)."""
    cur = dict(choice)

    def disagrees(c: Choice) -> bool:
        return static_findings(seed, index, c) != expected(seed, index, c)

    if not disagrees(cur):
        return cur, []
    for dim, _ in ORDER:
        base = BASELINE.get(dim)
        if base is None or cur.get(dim) in (base, NA):
            continue
        trial = dict(cur)
        trial[dim] = base
        for later, allowed_fn in ORDER:  # dimensions that stop applying, or must change, follow along
            allowed = list(allowed_fn(trial))
            if trial.get(later) not in allowed:
                trial[later] = BASELINE.get(later) if BASELINE.get(later) in allowed else allowed[0]
        if valid(trial) and disagrees(trial):
            cur = trial
    left = [d for d, _ in ORDER if d in BASELINE and cur.get(d) not in (BASELINE[d], NA)]
    return cur, left


def group(outcomes) -> List[dict]:
    """Minimizes every disagreement of a run and groups them by what went wrong and which dimensions stayed
    off the baseline (with their values): one group per likely root cause, largest first."""
    from .judge import kinds

    groups: Dict[tuple, dict] = {}
    for o in outcomes:
        if o.agrees or o.error or o.intent != "exact":
            continue
        p = o.program
        small, left = minimize(p.seed, p.index, p.choice)
        key = (tuple(sorted(kinds(o))), tuple(f"{d}={small[d]}" for d in left))
        g = groups.setdefault(key, {"kinds": list(key[0]), "dimensions": list(key[1]), "programs": []})
        g["programs"].append(p.index)
    return sorted(groups.values(), key=lambda g: -len(g["programs"]))
