"""An optimizer zeroed but never stepped, over tensors whose gradient the loop reads, is a hand-made update,
not gradients thrown away (looplint.model.FileModel.reads_gradients_of, read by LL105): a PGD attack builds
``SGD([x_adv])`` only to zero the perturbation's gradient and updates it by rebinding it from that
gradient. Reading another tensor's gradient, clearing it, or not reading it leaves LL105."""

import pytest

from looplint.engine import lint_source
from looplint.rule import all_rules

PROGRAM = """\
import torch
import torch.nn as nn
import torch.optim as optim

model = nn.Linear(4, 3)


def attack(model, x, y, steps=5, step_size=0.01):
    {t} = x.clone().requires_grad_(True)
    other = torch.zeros(1, requires_grad=True)
    for _ in range(steps):
        opt = optim.SGD({params}, lr=1e-3)
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model({t}), y)
        loss.backward()
        {update}
    return {t}


print(attack(model, torch.randn(8, 4), torch.randint(0, 3, (8,))))
"""

UPDATES = [
    "{t} = ({t}.data + step_size * {t}.grad.data.sign()).requires_grad_(True)",
    "eta = step_size * {t}.grad.sign()\n        {t} = ({t}.detach() + eta).requires_grad_()",
    "{t} = torch.clamp({t}.detach() + step_size * torch.sign({t}.grad.detach()), -1, 1).requires_grad_()",
]
NOT_READ = [
    "{t} = ({t}.detach() + 0.01).requires_grad_()",
    "{t}.grad.zero_()",
    "{t} = ({t}.detach() + other.grad.sign()).requires_grad_()",
]


def codes(t, params, update):
    source = PROGRAM.format(t=t, params=params.format(t=t), update=update.format(t=t))
    return [d.code for d in lint_source(source, "attack.py", all_rules()) if d.code == "LL105"]


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("t, params", [("x_adv", "[{t}]"), ("delta", "({t},)")])
def test_a_tensor_updated_from_its_own_gradient_is_no_gradient_thrown_away(t, params, update):
    assert codes(t, params, update) == []


@pytest.mark.parametrize("update", NOT_READ)
@pytest.mark.parametrize("t, params", [("x_adv", "[{t}]"), ("delta", "({t},)")])
def test_gradients_nobody_reads_are_thrown_away(t, params, update):
    assert codes(t, params, update) == ["LL105"]
