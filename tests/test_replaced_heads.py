"""A module built in place and moved as it is stored (``model.fc = nn.Linear(512, 2).to(device)``) is a new
module with parameters that require gradients, as ``nn.Linear(512, 2)`` alone is: a head replaced after the
backbone is frozen and before the optimizer is built trains (it was reported as LL110 on a course notebook
never used here), and one replaced after the optimizer was built is not in it (LL111).

Checked on variants: ``.to(device)``, ``.cuda()``, ``.float()``, none; a torch layer or a module class of
the file; two sets of names. Control: without the replacement, the optimizer holds only frozen parameters."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

MOVES = ["", ".to(dev)", ".cuda()", ".float()"]
BUILDS = {"layer": "nn.Linear(8, 2)", "local_class": "Head(8, 2)"}
NAMES = ({"net": "net", "head": "head", "opt": "opt"}, {"net": "model", "head": "fc", "opt": "optimizer"})


def program(n, build, move, *, replace_at):
    replace = f"{n['net']}.{n['head']} = {BUILDS[build]}{move}\n"
    return f"""import torch
from torch import nn

dev = torch.device("cpu")


class Head(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.lin = nn.Linear(i, o)

    def forward(self, x):
        return self.lin(x)


{n['net']} = nn.Sequential()
{n['net']}.body = nn.Linear(8, 8)
{n['net']}.{n['head']} = nn.Linear(8, 3)
for w in {n['net']}.parameters():
    w.requires_grad = False
{replace if replace_at == "before" else ""}{n['opt']} = torch.optim.Adam({n['net']}.parameters())
{replace if replace_at == "after" else ""}for xb, yb in [(torch.randn(4, 8), torch.tensor([0, 1, 0, 1]))] * 3:
    {n['opt']}.zero_grad()
    nn.functional.cross_entropy({n['net']}(xb), yb).backward()
    {n['opt']}.step()
"""


def codes(src):
    return [d.code for d in lint_source(src, "t.py")]


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("move", MOVES)
def test_a_head_replaced_before_the_optimizer_trains(names, build, move):
    assert codes(program(names, build, move, replace_at="before")) == []


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("move", MOVES)
def test_a_head_replaced_after_the_optimizer_is_not_in_it(names, build, move):
    assert "LL111" in codes(program(names, build, move, replace_at="after"))


@pytest.mark.parametrize("names", NAMES)
def test_without_a_new_head_every_parameter_is_frozen(names):
    assert codes(program(names, "layer", "", replace_at="none")) == ["LL110"]
