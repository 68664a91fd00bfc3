"""LL110 and a function that puts trainable modules into a frozen model: every parameter is frozen, then
``add_lora(model, rank=8)`` wraps its layers with ``setattr(module, name, LoRALinear(...))`` (or gives it a
new head, or switches gradients back on for part of it), then the optimizer is built over
``model.parameters()``. The optimizer holds parameters that train (``params._Block._handed_to_builders``). A
function handed the model that only reads it (counts, prints) changes nothing: still LL110."""
import pytest

from looplint.engine import lint_source

PROGRAM = """\
import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, linear, rank):
        super().__init__()
        self.linear = linear
        self.a = nn.Parameter(torch.zeros(linear.in_features, rank))
        self.b = nn.Parameter(torch.zeros(rank, linear.out_features))

    def forward(self, x):
        return self.linear(x) + x @ self.a @ self.b


{helper}


def {train}(loader):
    {model} = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    for p in {model}.parameters():
        p.requires_grad = False
    {call}
    opt = torch.optim.AdamW({model}.parameters(), lr=1e-3)
    for x, y in loader:
        opt.zero_grad()
        loss = (({model}(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
"""

EXTENDS = {
    "recursive_setattr": """\
def {fn}(module, rank):
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, LoRALinear(child, rank))
        else:
            {fn}(child, rank)""",
    "add_module": """\
def {fn}(module, rank):
    module.add_module("adapter", LoRALinear(nn.Linear(1, 1), rank))""",
    "new_head": """\
def {fn}(module, rank):
    module.head = nn.Linear(1, rank)""",
    "unfreeze": """\
def {fn}(module, rank):
    for p in module[-1].parameters():
        p.requires_grad = True""",
}

READS = """\
def {fn}(module, rank):
    print(sum(p.numel() for p in module.parameters() if p.requires_grad), rank)"""

NAMES = [("train", "model", "add_lora"), ("fit_adapter", "net", "inject")]


def codes(helper, train, model, fn):
    source = PROGRAM.format(helper=helper.format(fn=fn), train=train, model=model, call=f"{fn}({model}, 8)")
    return sorted(d.code for d in lint_source(source, "t.py"))


@pytest.mark.parametrize("kind", sorted(EXTENDS))
@pytest.mark.parametrize("train, model, fn", NAMES)
def test_a_function_that_adds_trainable_modules(kind, train, model, fn):
    assert codes(EXTENDS[kind], train, model, fn) == []


@pytest.mark.parametrize("train, model, fn", NAMES)
def test_a_function_that_only_reads_the_model(train, model, fn):
    assert codes(READS, train, model, fn) == ["LL110"]
