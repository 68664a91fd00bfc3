"""Shrinks a disagreeing program to the dimensions that cause the disagreement.

Starting from a program's choices, each dimension in turn is reset to a plain baseline value (built here,
inline, ``for x, y in loader``, no scheduler unless the bug needs one, ...) as long as the choices stay valid
and the linter still disagrees with the expected findings. The expected findings are the runtime's verdict
on the original program, assumed to carry over to the simpler ones (a helper, not a proof: confirm the
result by running it). What stays off the baseline names the shapes the linter does not understand.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Tuple

from . import render
from .choices import NA, NONE, ORDER, Choice, valid

BASELINE: Dict[str, str] = {
    "structure": "inline", "scheduler": NONE, "gating": NONE, "loop": "for", "epochs": "literal",
    "optimizer": "adam", "model_source": "here", "loader_source": "here", "opt_source": "here",
    "sched_source": "here", "scaler_source": "here", "loss": "functional", "zero": "optimizer", "clip": NONE,
    "eval": NONE, "extras": NONE, "imports": "qualified", "closure_form": "def", "amp_backward": "one_statement",
    "model_def": "sequential",
}


CANONICAL = (0, 0)  # (seed, index) whose small details (names, literals) trials are written with


@functools.lru_cache(maxsize=100_000)
def _disagrees(seed: int, index: int, frozen: Tuple[Tuple[str, str], ...]) -> bool:
    """Whether the linter's findings differ from the injected bug's (assumed to be the runtime's verdict,
    as it is for ~99 % of programs) on the program written for these choices."""
    from looplint.engine import lint_source

    choice = dict(frozen)
    p = render(seed, index, choice)
    static = {(d.code, d.line) for d in lint_source(p.source, p.name + ".py")}
    return static != (set() if choice["bug"] == NONE else set(p.intended))


def disagrees(seed: int, index: int, choice: Choice) -> bool:
    return _disagrees(seed, index, tuple(sorted(choice.items())))


def minimize(seed: int, index: int, choice: Choice) -> Tuple[Choice, List[str]]:
    """(the smallest choices found that still disagree, the dimensions left off the baseline)."""
    if disagrees(*CANONICAL, choice):
        seed, index = CANONICAL  # trials repeat across programs: the cache answers most of them
    elif not disagrees(seed, index, choice):
        return dict(choice), []
    cur = dict(choice)
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
        if valid(trial) and disagrees(seed, index, trial):
            cur = trial
    left = [d for d, _ in ORDER if d in BASELINE and cur.get(d) not in (BASELINE[d], NA)]
    return cur, left


def _minimize_all(items: List[Tuple[int, int, Choice]]) -> List[Tuple[Choice, List[str]]]:
    return [minimize(seed, index, choice) for seed, index, choice in items]


def group(outcomes, jobs: int = 2) -> List[dict]:
    """Minimizes every disagreement of a run and groups them by what went wrong and which dimensions stayed
    off the baseline (with their values): one group per likely root cause, largest first."""
    from concurrent.futures import ProcessPoolExecutor

    from .judge import kinds

    todo = [o for o in outcomes if not (o.agrees or o.error or o.intent != "exact")]
    items = [(o.program.seed, o.program.index, o.program.choice) for o in todo]
    chunks = [items[i::jobs] for i in range(jobs)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(_minimize_all, chunks))
    small = {}
    for chunk, res in zip(chunks, results):
        for (_, index, _), r in zip(chunk, res):
            small[index] = r
    groups: Dict[tuple, dict] = {}
    for o in todo:
        choice, left = small[o.program.index]
        key = (tuple(sorted(kinds(o))), tuple(f"{d}={choice[d]}" for d in left))
        g = groups.setdefault(key, {"kinds": list(key[0]), "dimensions": list(key[1]), "programs": []})
        g["programs"].append(o.program.index)
    return sorted(groups.values(), key=lambda g: -len(g["programs"]))
