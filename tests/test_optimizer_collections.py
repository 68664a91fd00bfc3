"""A loop over optimizers binds another optimizer on every iteration (``for opt in optimizers:``): each is in
the state the collection was in when the loop began, not in the state the iteration before left its
predecessor in. Zeroing every optimizer in one such loop and stepping every one in another is the plain
training step (composer's trainer and its tests; a false LL101 before: the second iteration's step saw the
first one's). ``looplint confirm`` agrees on the three programs of ``PROGRAMS`` below."""
import textwrap

import pytest

from looplint.engine import lint_source

COLLECTIONS = ["optimizers", "self.optimizers", "state.optimizers", "optimizers.values()", "[opt_g, opt_d]",
               "list(optimizers)"]
ZEROINGS = {
    "plain": "for {o} in {c}:\n    {o}.zero_grad()",
    "set_to_none": "for {o} in {c}:\n    try:\n        {o}.zero_grad(set_to_none=True)\n    except TypeError:\n        {o}.zero_grad()",
    "enumerated": "for _i, {o} in enumerate({c}):\n    {o}.zero_grad()",
}


def program(collection: str, zeroing: str, name: str = "optimizer") -> str:
    zero = ZEROINGS[zeroing].format(o=name, c=collection)
    body = f"{zero}\nloss = model(x).sum()\nloss.backward()\nfor {name} in {collection}:\n    {name}.step()\n"
    return "import torch\n\n\ndef train_step(self, state, model, optimizers, opt_g, opt_d, x):\n" + textwrap.indent(body, "    ")


def ll101(src: str):
    found = lint_source(src, "t.py")
    assert not [d for d in found if d.code == "LL000"], src
    return [d.line for d in found if d.code == "LL101"]


@pytest.mark.parametrize("collection", COLLECTIONS)
@pytest.mark.parametrize("zeroing", sorted(ZEROINGS))
@pytest.mark.parametrize("name", ["optimizer", "opt"])
def test_zeroing_every_optimizer_then_stepping_every_one_is_one_update_each(collection, zeroing, name):
    assert ll101(program(collection, zeroing, name)) == []


LOOP = """\
def train(model, optimizers, loader):
    for x in loader:
{zero}        loss = model(x).sum()
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
"""
PROGRAMS = {
    "no_zeroing": (LOOP.format(zero=""), ["LL101"]),
    "zeroed_in_a_loop": (LOOP.format(zero="        for optimizer in optimizers:\n            optimizer.zero_grad()\n"), []),
    "each_its_own_pass": ("""\
def train(model, optimizers, loader):
    for x in loader:
        for optimizer in optimizers:
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
""", []),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_loops_over_optimizers_in_a_training_loop(name):
    body, expected = PROGRAMS[name]
    src = "import torch\n\n" + body
    assert [d.code for d in lint_source(src, "t.py") if d.code.startswith("LL1")] == expected
