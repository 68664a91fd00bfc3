"""The fixes on the differential corpus: generate N training programs, fix every program that has a fix
(``--unsafe``: unsafe fixes too), run the originals and the fixed copies under ``looplint confirm``, and print
per rule how many fixed findings the runtime confirmed before and still sees after.

    python bench/fixes.py --n 500 --seed 1 --jobs 2 [--unsafe] [--out DIR]

A fixed finding is *repaired* when the runtime saw its bug in the original and sees no bug of that code in
the fixed copy; *still seen* when it does; a fixed copy whose run fails, or that looplint reports something
new in, is counted too. Writes ``fixes.json`` (per fixed program: codes fixed, before/after verdicts, the
diff) to DIR (default: a new temporary folder).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from differential import corpus, judge, write  # noqa: E402


def main(argv=None) -> int:
    from looplint.engine import lint_file
    from looplint.rewrite import fix_file
    from looplint.rule import all_rules

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500, help="programs to generate (default 500)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--unsafe", action="store_true", help="apply unsafe fixes too")
    p.add_argument("--out", help="folder for the results (default: a new temporary folder)")
    ns = p.parse_args(argv)
    out = ns.out or tempfile.mkdtemp(prefix="looplint-fixes-")
    started = time.monotonic()
    programs = write(corpus(ns.seed, ns.n), os.path.join(out, "programs"))
    fixable = [prog for prog in programs
               if any(d.fix is not None and (d.fix.applicability == "safe" or ns.unsafe) for d in lint_file(prog.path))]
    fixed_dir = os.path.join(out, "fixed")
    copies = write([_copy(prog) for prog in fixable], fixed_dir)
    results = {}
    for prog in copies:
        before = lint_file(prog.path)
        results[prog.name] = (before, fix_file(prog.path, all_rules(), unsafe=ns.unsafe))
    before_runs = {o.program.name: o for o in judge.run(fixable, jobs=ns.jobs, timeout=ns.timeout)}
    after_runs = {o.program.name: o for o in judge.run(copies, jobs=ns.jobs, timeout=ns.timeout)}

    per_rule = {}
    rows = []
    for prog in copies:
        before, result = results[prog.name]
        b, a = before_runs[prog.name], after_runs[prog.name]
        seen_before = {c for c, _ in b.dynamic}
        seen_after = {c for c, _ in a.dynamic}
        new_static = {c for c, _ in a.static} - {d.code for d in before}
        for code in sorted({d.code for d in result.fixed}):
            r = per_rule.setdefault(code, Counter())
            r["fixed"] += 1
            r["confirmed before"] += code in seen_before
            r["still seen after"] += code in seen_after
            r["repaired"] += code in seen_before and code not in seen_after
            r["run failed after"] += a.error is not None and b.error is None
            r["new findings after"] += bool(new_static)
        rows.append({"program": prog.name, "fixed": [d.code for d in result.fixed], "before": b.dynamic,
                     "after": a.dynamic, "error_after": a.error, "new_static": sorted(new_static), "diff": result.diff})
    command = "python bench/fixes.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"{command}\n")
    print(f"{len(programs)} programs (seed {ns.seed}), {len(fixable)} with a fix, in {time.monotonic() - started:.0f} s\n")
    cols = ["fixed", "confirmed before", "repaired", "still seen after", "run failed after", "new findings after"]
    print("rule   " + "  ".join(f"{c:>18}" for c in cols))
    for code in sorted(per_rule):
        print(f"{code}  " + "  ".join(f"{per_rule[code][c]:>18}" for c in cols))
    with open(os.path.join(out, "fixes.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    shutil.rmtree(os.path.join(out, "programs"), ignore_errors=True)
    print(f"\nper-program results in {os.path.join(out, 'fixes.json')}")
    return 0


def _copy(prog):
    import copy

    return copy.copy(prog)


if __name__ == "__main__":
    sys.exit(main())
