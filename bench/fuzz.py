"""Fuzz looplint: N seeded mutations of the fixtures and M programs generated from Python's grammar, each
checked for the properties of ``tests/fuzz`` (never raises, deterministic, never reports outside the
file, a ``# noqa`` on one row changes no other row).

    python bench/fuzz.py --count 10000 --seed 1 --grammar 500 --out /tmp/fuzz

Prints the command, the counts and the time; writes every program that breaks a property to ``--out``
(with the broken properties) so that it can be turned into a test. Exit status 1 if any did.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from fuzz import mutants, problems  # noqa: E402


def grammar_programs(n: int, seed: int):
    """``n`` programs from hypothesmith's grammar strategies (seeded)."""
    import hypothesmith
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    found = []

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hypothesmith.from_grammar() | hypothesmith.from_node())
    def collect(source):
        found.append(source)

    collect()
    return [(f"grammar seed {seed} #{i}", text) for i, source in enumerate(found)
            for text in (source, "import torch\nloss.backward()\nopt.step()\n" + source)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="mutated fixtures to check (default 10000)")
    parser.add_argument("--grammar", type=int, default=0, help="programs to generate with hypothesmith (slow: ~0.3 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for the programs that break a property")
    ns = parser.parse_args(argv)
    print("$ python bench/fuzz.py " + " ".join(sys.argv[1:] if argv is None else argv), flush=True)
    started = time.monotonic()
    programs = list(mutants(ns.seed, ns.count))
    if ns.grammar:
        programs += grammar_programs(ns.grammar, ns.seed)
    broken = 0
    for i, (name, source) in enumerate(programs, 1):
        found = problems(source)
        if found:
            broken += 1
            print(f"BROKEN {name}: {'; '.join(found)}", flush=True)
            if ns.out:
                os.makedirs(ns.out, exist_ok=True)
                with open(os.path.join(ns.out, f"broken_{broken}.py"), "w", encoding="utf-8", newline="") as f:
                    f.write(f"# {name}: {'; '.join(found)}\n" + source)
        if i % 1000 == 0:
            print(f"{i} programs, {broken} broken, {time.monotonic() - started:.0f} s", flush=True)
    print(f"{len(programs)} programs ({ns.count} mutated fixtures, {len(programs) - ns.count} from the grammar): "
          f"{broken} broke a property; {time.monotonic() - started:.0f} s")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
