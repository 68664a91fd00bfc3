"""The differential corpus at scale: generate N training programs, run ``looplint confirm`` on them, and print
how often the linter agrees with the runtime, overall, per dimension value and per rule.

    python bench/differential.py --n 5000 --seed 1 --jobs 2 [--out DIR] [--keep] [--minimize] [--rewrite]
    python bench/differential.py --seed 1 --show 123        # print program 123 (and its sibling module)
    python bench/differential.py --rejudge DIR              # the linter again, against DIR's stored verdicts

Writes ``summary.json`` (the tables) and ``disagreements.json`` (per disagreeing program: path, metadata,
static vs dynamic findings, confirm's reasons and the program text) to DIR (default: a new temporary
folder), and ``labels.json`` (every program's runtime verdict). The programs are written to DIR/programs and
removed at the end unless ``--keep``. The runtime's verdict does not depend on the linter, so after a change
to the model ``--rejudge DIR`` lints the kept programs again and compares with the stored verdicts in
minutes, with the same per-dimension table (an estimate: confirm's own matching of lines is richer; rerun
the corpus for the figures).
``--rewrite`` moves one gradient event of each program into a helper (a function or an object, of the
program or of its sibling module: ``tests/differential/rewrite.py``), cycling through the kinds each program
has a line for, and adds a table per kind.
``--minimize`` also shrinks every disagreement to the dimensions that cause it (see
``tests/differential/minimize.py``) and prints the groups, largest first (written to ``groups.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from differential import corpus, generate, judge, write  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500, help="programs to generate (default 500)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=int, default=0, help="index of the first program (default 0)")
    p.add_argument("--jobs", type=int, default=2, help="programs run at a time (default 2)")
    p.add_argument("--timeout", type=float, default=60.0, help="per program, in seconds (default 60)")
    p.add_argument("--chunk", type=int, default=250, help="programs per confirm run (default 250)")
    p.add_argument("--out", help="folder for the results (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the generated programs in OUT/programs")
    p.add_argument("--minimize", action="store_true", help="group the disagreements by likely root cause")
    p.add_argument("--rewrite", action="store_true", help="move one event of each program into a helper")
    p.add_argument("--show", type=int, metavar="INDEX", help="print one program of the corpus and exit")
    p.add_argument("--rejudge", metavar="DIR", help="lint the programs kept in DIR again and compare with its labels")
    ns = p.parse_args(argv)
    if ns.rejudge:
        return rejudge(ns.rejudge)
    if ns.show is not None:
        prog = generate(ns.seed, ns.show)
        print(prog.source + (f"\n# ---- {prog.name}_lib.py\n{prog.lib_source}" if prog.lib_source else ""))
        print(f"# intended: {prog.intended}")
        return 0

    out = ns.out or tempfile.mkdtemp(prefix="looplint-differential-")
    programs_dir = os.path.join(out, "programs")
    os.makedirs(out, exist_ok=True)
    started = time.monotonic()
    outcomes = []
    for first in range(ns.start, ns.start + ns.n, ns.chunk):
        count = min(ns.chunk, ns.start + ns.n - first)
        programs = corpus(ns.seed, count, first)
        if ns.rewrite:
            programs = rewritten(programs, len(outcomes))
        programs = write(programs, programs_dir)
        outcomes += judge.run(programs, jobs=ns.jobs, timeout=ns.timeout)
        agree = sum(o.agrees for o in outcomes)
        print(f"{len(outcomes)}/{ns.n} programs, {agree} agree ({time.monotonic() - started:.0f} s)", file=sys.stderr)

    summary = judge.summary(outcomes)
    dims = judge.by_dimension(outcomes)
    rules = judge.by_rule(outcomes)
    command = "python bench/differential.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{command}\n")
    print(f"{summary['programs']} programs (seed {ns.seed}): {summary['agree']} agree ({summary['percent']:.2f} %) "
          f"in {time.monotonic() - started:.0f} s")
    print(f"runtime vs the injected bug: {summary['intent']}")
    if summary["errors"]:
        print(f"runs that failed: {summary['errors']}")
    print("\nper rule (programs where the linter, the runtime or the injection names it):")
    print(judge.format_rules(rules))
    print("\nper dimension value:")
    print(judge.format_table(dims))
    if ns.rewrite:
        kinds: dict = {}
        for o in outcomes:
            row = kinds.setdefault(o.program.choice.get("rewrite", "(none)"), [0, 0])
            row[0] += 1
            row[1] += o.agrees
        print("\nper rewrite (event/home: programs, agree):")
        for kind, (n, agree) in sorted(kinds.items()):
            print(f"  {kind:<28} {n:>6} {agree:>6}")

    disagreements = []
    for o in outcomes:
        if o.agrees:
            continue
        row = o.to_json()
        row["source"] = o.program.source
        row["lib_source"] = o.program.lib_source
        disagreements.append(row)
    with open(os.path.join(out, "disagreements.json"), "w", encoding="utf-8") as f:
        json.dump(disagreements, f, indent=1)
    with open(os.path.join(out, "labels.json"), "w", encoding="utf-8") as f:
        json.dump([{"path": o.program.path, "index": o.program.index, "seed": o.program.seed,
                    "dynamic": o.dynamic, "static": o.static, "metadata": o.program.metadata()} for o in outcomes], f)
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"command": command, "summary": summary, "rules": rules,
                   "dimensions": [vars(r) for r in dims]}, f, indent=1)
    if ns.minimize:
        from differential.minimize import group

        groups = group(outcomes)
        with open(os.path.join(out, "groups.json"), "w", encoding="utf-8") as f:
            json.dump(groups, f, indent=1)
        print("\ndisagreements by likely root cause (what went wrong; dimensions off the baseline; programs):")
        for g in groups:
            print(f"{len(g['programs']):>5}  {', '.join(g['kinds'])}; {', '.join(g['dimensions']) or '-'}; "
                  f"e.g. --show {g['programs'][0]}")
    if not ns.keep:
        shutil.rmtree(programs_dir, ignore_errors=True)
    print(f"\n{len(disagreements)} disagreements written to {os.path.join(out, 'disagreements.json')}")
    return 0


def rewritten(programs, offset: int):
    """Each program with one event moved into a helper (the next kind, from ``offset``, it has a line for)."""
    from differential.rewrite import KINDS, rewrite

    out = []
    for i, program in enumerate(programs):
        got = None
        for k in range(len(KINDS)):
            got = rewrite(program, *KINDS[(offset + i + k) % len(KINDS)])
            if got is not None:
                break
        out.append(got or program)
    return out


def rejudge(out: str) -> int:
    """The linter of this checkout on the programs kept in ``out``, against the runtime verdicts stored there."""
    import multiprocessing
    from collections import Counter

    with open(os.path.join(out, "labels.json"), encoding="utf-8") as f:
        labels = json.load(f)
    gone = [row["path"] for row in labels if not os.path.exists(row["path"])]
    if gone:
        print(f"{gone[0]} is gone: run the corpus with --keep", file=sys.stderr)
        return 2
    # one worker process, renewed every 200 programs: the memory of thousands of lints stays bounded
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=200) as pool:
        found = pool.map(_static, [row["path"] for row in labels], chunksize=50)
    agree, misses, false, changed, judged = 0, Counter(), Counter(), [], []
    for row, static in zip(labels, found):
        dynamic = sorted({tuple(x) for x in row["dynamic"]})
        choice = row["metadata"]["choice"]
        judged.append(SimpleNamespace(program=SimpleNamespace(choice=choice, bug=choice["bug"]), agrees=static == dynamic))
        if static == dynamic:
            agree += 1
        else:
            misses.update(c for c, _l in set(dynamic) - set(static))
            false.update(c for c, _l in set(static) - set(dynamic))
            changed.append(f"--show {row['index']}: static {static} runtime {dynamic}")
    print(f"{len(labels)} programs: {agree} agree ({100.0 * agree / max(1, len(labels)):.2f} %)")
    print("missed:", dict(misses.most_common()))
    print("false:", dict(false.most_common()))
    print("\nper dimension value:")
    print(judge.format_table(judge.by_dimension(judged)))
    print()
    for line in changed:
        print(" ", line)
    return 0


def _static(path: str):
    from looplint.engine import lint_file

    return sorted({(d.code, d.line) for d in lint_file(path)})


if __name__ == "__main__":
    raise SystemExit(main())
