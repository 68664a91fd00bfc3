"""The names a tuple assignment unpacks from a container are the container's elements, not the container.
``opt_a, opt_b = optims`` gave both names the role the name ``optims`` suggests, one object: a GradScaler
stepping ``opt_b`` then unscaling ``opt_a`` before ``update()`` was reported as the same optimizer touched
twice (false LL407 on VITS, never used before). The elements are read from what every call site (or
binding) puts in the container; when that is unknown, each name is an object of its own.

Checked on variants: the container a parameter or a local name, named like an optimizer or not, a list or
a tuple; two sets of names. Control: the same optimizer in both places is one object (LL407)."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

PROGRAM = """import torch
from torch.cuda.amp import GradScaler


def one_epoch({box}, scaler, loader, net_a, net_b):
    {a}, {b} = {box}
    for x in loader:
        {b}.zero_grad()
        scaler.scale(net_b(x).mean()).backward()
        scaler.unscale_({b})
        scaler.step({b})
        {a}.zero_grad()
        scaler.scale(net_a(x).mean()).backward()
        scaler.unscale_({a})
        scaler.step({a})
        scaler.update()


def main(loader):
    net_a = torch.nn.Linear(4, 4)
    net_b = torch.nn.Linear(4, 1)
    first = torch.optim.AdamW(net_a.parameters())
    second = torch.optim.AdamW(net_b.parameters())
    scaler = GradScaler()
    for epoch in range(10):
        one_epoch({open}first, {second}{close}, scaler, loader, net_a, net_b)
"""

LOCAL = """import torch
from torch.cuda.amp import GradScaler


def main(loader):
    net_a = torch.nn.Linear(4, 4)
    net_b = torch.nn.Linear(4, 1)
    {box} = {open}torch.optim.AdamW(net_a.parameters()), torch.optim.AdamW(net_b.parameters()){close}
    {a}, {b} = {box}
    scaler = GradScaler()
    for x in loader:
        {b}.zero_grad()
        scaler.scale(net_b(x).mean()).backward()
        scaler.step({b})
        {a}.zero_grad()
        scaler.scale(net_a(x).mean()).backward()
        scaler.step({a})
        scaler.update()
"""

BOXES = ["optims", "optimizers", "pair"]
NAMES = [("opt_a", "opt_b"), ("optim_g", "optim_d")]
BRACKETS = [("[", "]"), ("(", ")")]


def codes(src):
    return [d.code for d in lint_source(src, "t.py")]


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("a, b", NAMES)
@pytest.mark.parametrize("open_, close", BRACKETS)
def test_elements_handed_in_are_two_optimizers(box, a, b, open_, close):
    src = PROGRAM.format(box=box, a=a, b=b, open=open_, close=close, second="second")
    assert codes(src) == []


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("a, b", NAMES)
def test_the_same_optimizer_twice_is_one_object(box, a, b):
    src = PROGRAM.format(box=box, a=a, b=b, open="[", close="]", second="first")
    assert codes(src) == ["LL407"]


@pytest.mark.parametrize("box", BOXES)
@pytest.mark.parametrize("a, b", NAMES)
@pytest.mark.parametrize("open_, close", BRACKETS)
def test_elements_of_a_local_container(box, a, b, open_, close):
    assert codes(LOCAL.format(box=box, a=a, b=b, open=open_, close=close)) == []
