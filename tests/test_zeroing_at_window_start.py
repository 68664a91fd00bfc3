"""A zeroing on the first iteration only drops no accumulation (LL108). ``if i == 0: opt.zero_grad()`` with
the step every ``k`` iterations of ``i`` is a zeroing before the loop written inside it: it runs once per
run of the counter and drops at most the incomplete window of the previous run (reported three times on
mammoth, never used here, where a framework resets the counter every epoch). Zeroing on every iteration
with the step every ``k`` still is LL108.

Checked on variants: a loop's ``enumerate`` counter or a counter attribute of a per-batch method, the step
window written ``(i + 1) % k == 0`` or ``i > 0 and i % k == 0``; two sets of names."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

LOOP = """import torch


def train(model, opt, loader, {k}):
    for {i}, (x, y) in enumerate(loader):
{zero}        (torch.nn.functional.mse_loss(model(x), y) / {k}).backward()
        if {window}:
            opt.step()
            opt.zero_grad()
"""
METHOD = """import torch


class Learner:
    def __init__(self, net, {k}):
        self.net = net
        self.{k} = {k}
        self.{i} = 0
        self.opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def observe(self, x, y):
        loss = torch.nn.functional.mse_loss(self.net(x), y)
{zero}        (loss / self.{k}).backward()
        if {window}:
            self.opt.step()
            self.opt.zero_grad()
        return loss.item()
"""
WINDOWS = ["({i} + 1) % {k} == 0", "{i} > 0 and {i} % {k} == 0"]
NAMES = ({"i": "i", "k": "accum"}, {"i": "task_iteration", "k": "virtual_bs"})


def program(shape, names, window, first_only):
    if shape == "loop":
        i, k, opt, template = names["i"], names["k"], "opt", LOOP
    else:
        i, k, opt, template = "self." + names["i"], "self." + names["k"], "self.opt", METHOD
    zero = (f"        if {i} == 0:\n            {opt}.zero_grad()\n" if first_only else f"        {opt}.zero_grad()\n")
    return template.format(i=names["i"], k=names["k"], zero=zero, window=window.format(i=i, k=k))


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("shape", ["loop", "method"])
def test_zeroing_on_the_first_iteration_only(names, window, shape):
    assert [d.code for d in lint_source(program(shape, names, window, True), "t.py")] == []


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("shape", ["loop", "method"])
def test_zeroing_on_every_iteration(names, window, shape):
    assert [d.code for d in lint_source(program(shape, names, window, False), "t.py")] == ["LL108"]
