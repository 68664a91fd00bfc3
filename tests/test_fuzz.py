"""Fuzzing in CI: a few hundred seeded programs, each of which must keep every property of ``tests/fuzz``
(looplint never raises, is deterministic, never reports outside the file, and a ``# noqa`` on one row
changes no other row). ``python bench/fuzz.py --count 10000`` checks as many as asked.

Two sources: the fixtures mutated (lines deleted, moved, re-indented, wrapped in blocks, training calls
swapped, code spliced in, noise inserted, the text cut short, line ends changed), and programs generated
from Python's grammar by ``hypothesmith`` (derandomized: the same programs on every run).
"""
from __future__ import annotations

import pytest

from fuzz import mutants, problems

MUTANTS = 300  # about 30 s on a loaded core
GRAMMAR_EXAMPLES = 60


def test_mutated_fixtures_keep_every_property():
    failures = [(name, found) for name, source in mutants(seed=0, n=MUTANTS) for found in [problems(source)] if found]
    assert not failures, "\n".join(f"{name}: {found}" for name, found in failures[:10])


hypothesmith = pytest.importorskip("hypothesmith", reason="hypothesmith is in the `test` extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402


@settings(max_examples=GRAMMAR_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_grammar() | hypothesmith.from_node())
def test_generated_programs_keep_every_property(source):
    # A training token makes looplint parse and model the program instead of only checking its syntax.
    for text in (source, "import torch\nloss.backward()\nopt.step()\n" + source):
        assert problems(text) == []
