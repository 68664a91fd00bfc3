"""Cost of the model as a file grows: N small training functions in one file, CPU seconds for LibCST's
parse and for the model and rules, per size. Linear work per file means the per-function figure stays flat.

    python bench/model_cost.py [--sizes 250,500,1000]
"""
from __future__ import annotations

import argparse
import sys
import time


def program(n: int) -> str:
    parts = ["import torch\n"]
    for i in range(n):
        parts.append(f"""
def train_{i}(model, loader, epochs={i % 7 + 1}):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    for epoch in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            loss = (model(x) - y).pow(2).mean()
            loss.backward()
            opt.step()
        sched.step()
""")
    return "".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="250,500,1000")
    ns = p.parse_args(argv)
    import libcst as cst

    from looplint.engine import _check_module, run_deep
    from looplint.rule import all_rules

    rules = all_rules()
    print("python bench/model_cost.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(f"{'functions':>10} {'parse s':>8} {'model s':>8} {'model ms/function':>18}")
    for n in (int(x) for x in ns.sizes.split(",")):
        src = program(n)
        t0 = time.process_time()
        module = cst.parse_module(src)
        t1 = time.process_time()
        found = run_deep(lambda: _check_module(module, "many.py", rules))
        t2 = time.process_time()
        assert not found, found  # every function is correct
        print(f"{n:>10} {t1 - t0:>8.2f} {t2 - t1:>8.2f} {1000 * (t2 - t1) / n:>18.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
