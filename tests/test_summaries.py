"""Summaries of calls and loops (model/interp.py ``project``/``restore``): a helper or loop is run once per
what it can observe of the paths that reach it. Assumptions about tests it never makes, and where gradients
came from before it ran, are set aside and given back to its exits, so findings are those of a run per path
while the cost stays that of the code."""
from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from looplint.engine import lint_source
from looplint.model import build_model
from looplint.model.flow import Facts, GradientFlow
from looplint.model.interp import BUDGET


def findings(src: str, codes=None):
    return sorted((d.code, d.line) for d in lint_source(src, "t.py") if codes is None or d.code in codes)


def line_of(src: str, text: str) -> int:
    return next(i for i, row in enumerate(src.splitlines(), 1) if text in row)


HELPERS = {
    # name: (helper definition, the call in the loop body)
    "logs": ("def record(loss, writer):\n    value = loss.item()\n    if value > 10:\n"
             "        report(value)\n\n\ndef report(value):\n    print(value)\n", "record(loss, writer)"),
    "backprop": ("def backprop(loss):\n    loss.backward()\n", "backprop(loss)"),
    "micro_loop": ("def backprop(model, x, y):\n    for xs, ys in zip(x.chunk(2), y.chunk(2)):\n"
                   "        F.mse_loss(model(xs), ys).backward()\n", "backprop(model, x, y)"),
}


@pytest.mark.parametrize("helper", sorted(HELPERS))
def test_gradients_keep_their_history_through_a_summarised_helper(helper):
    define, call = HELPERS[helper]
    backward = "" if "backward" in define else "loss.backward()\n            "
    src = ("import torch\nimport torch.nn.functional as F\n\n\n" + define + textwrap.dedent(f"""

    def train(model, loader, optimizer, writer):
        for i, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            {backward}{call}
            if (i + 1) % 4 == 0:
                optimizer.step()
    """))
    assert findings(src, {"LL108"}) == [("LL108", line_of(src, "optimizer.zero_grad()"))]
    fixed = src.replace("        optimizer.zero_grad()\n", "").replace(
        "            optimizer.step()\n", "            optimizer.step()\n            optimizer.zero_grad()\n")
    assert findings(fixed) == []


@pytest.mark.parametrize("helper", sorted(HELPERS))
def test_a_test_repeated_around_a_summarised_helper_keeps_its_value(helper):
    define, call = HELPERS[helper]
    backward = "" if "backward" in define else "loss.backward()\n            "
    src = ("import torch\nimport torch.nn.functional as F\n\n\n" + define + textwrap.dedent(f"""

    def train(model, loader, optimizer, writer, update):
        for x, y in loader:
            if update:
                optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            {backward}{call}
            if update:
                optimizer.step()
    """))
    # without ``update`` nothing is stepped; with it every step is zeroed: no path steps stale gradients
    assert findings(src, {"LL101"}) == []


def _steps(src: str, root: str) -> int:
    model = build_model(cst.parse_module(src))
    flow = GradientFlow(model, Facts())
    flow.run_root(next(f for f in model.scopes.functions if f.name == root), cyclic=False)
    return BUDGET - flow.budget


@pytest.mark.parametrize("clear", [True, False])
def test_a_helper_called_under_many_remembered_tests_runs_once_per_gradient_state(clear):
    def program(size):
        body = "".join(
            f"        if f{i}:\n            report({i})\n"
            f"        {'opt.zero_grad()' if clear else 'pass'}\n        backprop(model, x)\n        opt.step()\n"
            f"        if f{i}:\n            report(-{i})\n" for i in range(8))
        return ("import torch\n\n\ndef report(i):\n    print(i)\n\n\ndef backprop(net, x):\n"
                + "".join(f"    x = net.layer{j}(x)\n" for j in range(size))
                + "    net(x).sum().backward()\n\n\n"
                + "def train(model, loader, " + ", ".join(f"f{i}" for i in range(8)) + "):\n"
                "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n    for x in loader:\n" + body)
    big = program(40)
    # the helper's 40 extra statements cost a few runs of it, not one per combination of the caller's flags
    assert _steps(big, "train") - _steps(program(0), "train") <= 4 * 40
    assert sorted({c for c, _ in findings(big)}) == ([] if clear else ["LL101"])


@pytest.mark.parametrize("calls", [4, 12])
def test_calls_we_cannot_see_between_backward_and_step_cost_what_they_are(calls):
    # each may run a backward pass: gradients of unknown origin, one source for all of them, not one per
    # combination of the calls that may have run
    def program(k):
        return ("import torch\n\n\ndef train(model, loader, tracker):\n"
                "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n    for x in loader:\n"
                "        opt.zero_grad()\n        model(x).sum().backward()\n"
                + "".join(f"        tracker.save_part_{i}(model)\n" for i in range(k)) + "        opt.step()\n")
    assert _steps(program(calls), "train") - _steps(program(0), "train") <= 8 * calls
    assert findings(program(calls)) == []
