"""A method a framework calls once per batch computes its loss from its own module, not from a loss it was
handed. ``out = self.net(xb)`` reads an attribute of ``self``; ``self`` is the object the method belongs to,
not a loss the caller computed, so the method is one iteration of the caller's loop (``is_per_step``). Read
as handed, the method was never analysed: zeroing on every call with a step every k calls (LL108) went
unreported on mammoth (never used here), and a missing zero_grad (LL101) too. A loss handed in as a
parameter still leaves the zeroing to the caller.

Checked on variants: the forward output held in a name or not, the criterion a function or an attribute of
``self``; two sets of names."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

CLASS = """import torch


class {Learner}:
    def __init__(self, net, k):
        self.{net} = net
        self.k = k
        self.calls = 0
        self.crit = torch.nn.CrossEntropyLoss()
        self.{opt} = torch.optim.SGD(net.parameters(), lr=0.1)

    def {observe}(self, xb, yb):
{body}
"""
FORWARDS = {
    "held": "        out = self.{net}(xb)\n        loss = torch.nn.functional.cross_entropy(out, yb)\n",
    "inline": "        loss = torch.nn.functional.cross_entropy(self.{net}(xb), yb)\n",
    "criterion": "        loss = self.crit(self.{net}(xb), yb)\n",
}
NAMES = ({"Learner": "Learner", "net": "net", "opt": "opt", "observe": "observe"},
         {"Learner": "Agent", "net": "backbone", "opt": "optimizer", "observe": "training_step_hook"})


def program(n, forward, *, zero_each_call):
    zero = f"        self.{n['opt']}.zero_grad()\n" if zero_each_call else ""
    body = (zero + FORWARDS[forward].format(**n) + "        (loss / self.k).backward()\n        self.calls += 1\n"
            f"        if self.calls % self.k == 0:\n            self.{n['opt']}.step()\n"
            f"            self.{n['opt']}.zero_grad()\n        return loss.item()")
    return CLASS.format(**n, body=body)


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("forward", FORWARDS)
def test_zeroing_every_call_of_a_per_batch_method(names, forward):
    assert [d.code for d in lint_source(program(names, forward, zero_each_call=True), "t.py")] == ["LL108"]


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("forward", FORWARDS)
def test_accumulating_per_batch_method(names, forward):
    assert [d.code for d in lint_source(program(names, forward, zero_each_call=False), "t.py")] == []


@pytest.mark.parametrize("names", NAMES)
def test_a_loss_handed_in_leaves_the_zeroing_to_the_caller(names):
    n = names
    src = CLASS.format(**n, body=f"        pass\n\n    def apply(self, loss):\n        loss.backward()\n"
                                 f"        self.{n['opt']}.step()")
    assert [d.code for d in lint_source(src, "t.py")] == []


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("forward", FORWARDS)
def test_a_per_batch_method_that_never_zeroes(names, forward):
    n = names
    body = FORWARDS[forward].format(**n) + f"        loss.backward()\n        self.{n['opt']}.step()\n        return loss.item()"
    assert [d.code for d in lint_source(CLASS.format(**n, body=body), "t.py")] == ["LL101"]
