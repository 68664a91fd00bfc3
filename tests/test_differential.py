"""The differential corpus (``tests/differential``): generated training programs judged by the runtime.

* The generator: the same seed gives the same bytes; every program and sibling module parses; the sample
  covers every dimension value and every rule; each injected bug is marked on a line of the program.
* The runtime's verdict: every program of the CI sample runs (no crash, timeout or failure that no rule
  explains) and the runtime sees exactly the bug that was injected (nothing in correct programs).
* The linter: its findings equal the runtime's verdicts, code and line, on every program of the sample
  (``looplint confirm`` agrees). ``python bench/differential.py`` runs the same on thousands of programs.
"""
from __future__ import annotations

import ast
import importlib.util
from collections import Counter

import pytest

from differential import DIMENSIONS, NA, NONE, RULES, corpus, generate, judge, write
from differential.choices import BUG_VARIANTS

SEED = 1
N = 300  # the CI sample; about 45 s of runs on two idle cores

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is not installed (pip install 'looplint[runtime]')")

# The runtime sees one more bug than the generator injected, for a reason recorded here: a GAN whose
# discriminator zero_grad sits between its backward and its step also shows LL103 at that step, because the
# generator's backward later in the iteration reaches the discriminator's parameters.
KNOWN_EXTRA = {("gan", "LL102"): {"LL103"}}


@pytest.fixture(scope="module")
def sample():
    return corpus(SEED, N)


def test_same_seed_gives_the_same_bytes():
    for i in range(0, 60, 3):
        a, b = generate(SEED, i), generate(SEED, i)
        assert (a.source, a.lib_source, a.choice, a.details) == (b.source, b.lib_source, b.choice, b.details)
    assert [generate(SEED, i).source for i in range(20)] != [generate(SEED + 1, i).source for i in range(20)]


def test_every_program_parses_and_marks_its_bug(sample):
    for p in sample:
        ast.parse(p.source, p.name)
        if p.lib_source is not None:
            ast.parse(p.lib_source, p.name + "_lib")
        lines = p.source.split("\n")
        if p.bug == NONE:
            assert p.intended == [], p.name
            continue
        assert {code for code, _ in p.intended} == {p.bug}, (p.name, p.intended)
        assert all(1 <= line <= len(lines) and lines[line - 1].strip() for _, line in p.intended), p.name


def test_sample_covers_every_dimension_value_and_rule(sample):
    seen = Counter((dim, p.choice[dim]) for p in sample for dim in list(DIMENSIONS) + ["bug", "bug_variant"])
    missing = [(dim, v) for dim, values in DIMENSIONS.items() for v in values if not seen[(dim, v)]]
    missing += [("bug", code) for code in RULES + (NONE,) if not seen[("bug", code)]]
    variants = Counter((p.bug, p.choice["bug_variant"]) for p in sample)
    missing += [(code, v) for code, vs in BUG_VARIANTS.items() for v in vs if not variants[(code, v)]]
    assert not missing, missing
    assert sum(p.bug == NONE for p in sample) >= N // 5
    assert all(v != NA for p in sample for d, v in p.choice.items() if d in ("recipe", "structure", "loop"))


@pytest.fixture(scope="module")
def outcomes(sample, tmp_path_factory):
    programs = write(sample, str(tmp_path_factory.mktemp("differential")))
    return judge.run(programs, jobs=2, timeout=60.0)


@needs_torch
def test_runtime_sees_exactly_the_injected_bug(outcomes):
    problems = []
    for o in outcomes:
        if o.error:
            problems.append(f"{o.program.path}: the run failed ({o.error}); a generator bug\n{judge.explain(o)}")
            continue
        want = set() if o.program.bug == NONE else {code for code, _ in o.program.intended}
        seen = {code for code, _ in o.dynamic}
        extra = KNOWN_EXTRA.get((o.program.choice["recipe"], o.program.bug), set())
        if not want <= seen or seen - want - extra:
            problems.append(f"{o.program.path}: injected {sorted(want)}, the runtime saw {sorted(seen)}\n"
                            f"{judge.explain(o)}")
    assert not problems, "\n".join(problems)


# The linter's agreement with the runtime on the CI sample may only go up. The goal is every program (issue 8);
# on 2026-12-04 (evening) it was 300 of 300 (python bench/differential.py --n 300 --seed 1 --jobs 1), once
# LL206 found the construction of an optimizer built in another project module (FileModel.constructions).
AGREEMENT_FLOOR = 1.0


@needs_torch
def test_linter_agrees_with_runtime(outcomes):
    bad = [o for o in outcomes if not o.agrees]
    summary = judge.summary(outcomes)
    agree = 1 - len(bad) / len(outcomes)
    assert agree >= AGREEMENT_FLOOR, (
        f"{len(bad)} of {len(outcomes)} programs disagree ({summary['disagreement_kinds']}):\n"
        + "\n".join(judge.explain(o) for o in bad))


# -- rewrites: an event moved into a helper (tests/differential/rewrite.py) ------------------------------------
# Programs of a fresh sample (other indices than the CI sample) with one gradient event moved into a helper
# function or object, of the program or of its sibling module (an object held by an attribute of the class
# that runs the event, too). On 2026-12-05, 1,800 rewrites of the old d5k corpus agreed 1,799 times (the last
# one disagrees unrewritten too) and 372 attribute rewrites of seeds 5 and 6 all agreed.
REWRITE_PER_KIND = 6  # programs per (event, home): 180 in all, about 20 s of runs on two idle cores


@pytest.fixture(scope="module")
def rewritten(tmp_path_factory):
    from differential.rewrite import KINDS, rewrite

    pool = corpus(SEED, 1000, start=N)
    out, used = [], set()
    for event, home in KINDS:
        made = 0
        for program in pool:
            if made == REWRITE_PER_KIND:
                break
            got = rewrite(program, event, home) if program.name not in used else None
            if got is not None:
                out.append(got)
                used.add(program.name)
                made += 1
    return write(out, str(tmp_path_factory.mktemp("rewritten")))


def test_rewrites_cover_every_event_and_home(rewritten):
    from differential.rewrite import KINDS

    seen = Counter(p.choice["rewrite"] for p in rewritten)
    assert all(seen[f"{event}/{home}"] == REWRITE_PER_KIND for event, home in KINDS), seen
    for p in rewritten:
        ast.parse(p.source)
        if p.lib_source:
            ast.parse(p.lib_source)


@needs_torch
def test_linter_agrees_with_runtime_on_rewritten_programs(rewritten):
    outcomes = judge.run(rewritten, jobs=2, timeout=60.0)
    bad = [o for o in outcomes if not o.agrees]
    assert not bad, f"{len(bad)} of {len(outcomes)} rewritten programs disagree:\n" + "\n".join(
        f"[{o.program.choice['rewrite']}] " + judge.explain(o) for o in bad)
