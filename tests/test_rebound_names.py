"""A name bound again between two calls: each call sees the object bound before it. Module code (a notebook)
that runs two experiments one after the other rebinds ``model`` and ``optimizer`` and calls the same
``train()``/``test()`` helpers, which read them as globals; a ``main()`` does the same with functions
defined inside it. What the second experiment's helpers step is the second optimizer, over the second
model only, so the first model's eval mode (left by the first experiment's ``test()``) is no leak, while
a helper that really trains in eval mode or never zeroes is still found, in both experiments.

Checked on variants: other names, module code or an enclosing function, the optimizer read by the helper
or by a function it calls."""
from __future__ import annotations

import textwrap

import pytest

from looplint.engine import lint_source

NAMES = ({"opt": "optimizer", "a": "model_cnn", "b": "model_fnn", "train": "train", "test": "test"},
         {"opt": "opt", "a": "net_a", "b": "net_b", "train": "fit_epoch", "test": "evaluate"})


def program(names: dict, scope: str, depth: str, train_mode: bool, zero: bool) -> str:
    n = names
    update = (f"def update():\n    {n['opt']}.step()\n\n" if depth == "nested" else "")
    step = "update()" if depth == "nested" else f"{n['opt']}.step()"
    helpers = f"""\
{update}def {n['train']}(model, loader):
    {"model.train()" if train_mode else "pass"}
    for data, target in loader:
        {f"{n['opt']}.zero_grad()" if zero else "pass"}
        loss = F.nll_loss(model(data), target)
        loss.backward()
        {step}

def {n['test']}(model, loader):
    model.eval()
    with torch.no_grad():
        for data, target in loader:
            model(data)

"""
    runs = f"""\
{n['a']} = torch.nn.Sequential(torch.nn.Linear(784, 10), torch.nn.Dropout())
{n['opt']} = torch.optim.SGD({n['a']}.parameters(), lr=0.01)
for epoch in range(2):
    {n['train']}({n['a']}, train_loader)
    {n['test']}({n['a']}, test_loader)

{n['b']} = torch.nn.Sequential(torch.nn.Linear(784, 10), torch.nn.Dropout())
{n['opt']} = torch.optim.SGD({n['b']}.parameters(), lr=0.01)
for epoch in range(2):
    {n['train']}({n['b']}, train_loader)
    {n['test']}({n['b']}, test_loader)
"""
    head = "import torch\nimport torch.nn.functional as F\n\n"
    if scope == "module":
        return head + helpers + runs
    return head + "def main(train_loader, test_loader):\n" + textwrap.indent(helpers + runs, "    ")


CASES = [(i, s, d) for i in range(len(NAMES)) for s in ("module", "function") for d in ("direct", "nested")]


def codes(src: str):
    return sorted({d.code for d in lint_source(src, "t.py")} & {"LL101", "LL402"})


@pytest.mark.parametrize("names,scope,depth", CASES)
def test_each_experiment_steps_the_optimizer_bound_before_it(names, scope, depth):
    good = program(NAMES[names], scope, depth, train_mode=True, zero=True)
    assert codes(good) == [], good


@pytest.mark.parametrize("names,scope,depth", CASES)
def test_a_helper_that_trains_in_eval_mode_or_never_zeroes_is_still_found(names, scope, depth):
    eval_leak = program(NAMES[names], scope, depth, train_mode=False, zero=True)
    assert codes(eval_leak) == ["LL402"], eval_leak
    no_zero = program(NAMES[names], scope, depth, train_mode=True, zero=False)
    assert codes(no_zero) == ["LL101"], no_zero
