"""A parameter is an instance of the class every call site hands it. ``fit(net, ...)`` after ``net = Net()``:
``net.draw()`` inside ``fit`` runs ``Net.draw``, a method of this module the model can read, not a call it
cannot see. A helper that calls a module method after ``eval()`` returns the module in eval mode (LL402),
and a training step written as a method (``net.step_on(x, opt)``) is read as one (LL101).

Checked on variants: the module reaches the helper directly or through another function, by position or
by keyword, bound by a plain or a tuple assignment, or held in ``self.<attr>`` of a trainer class; two
sets of names. Controls: call sites that hand instances of two classes, or a helper handed elsewhere
(callers we cannot see may pass anything), make the class unknown; a method that restores train mode
leaves no leak."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

NAMES = ({"Net": "Decoder", "net": "net", "draw": "draw", "show": "make_pictures", "epoch": "run_epoch",
          "opt": "opt", "loss": "nll"},
         {"Net": "Density", "net": "model", "draw": "sample_grid", "show": "visualise", "epoch": "train_epoch",
          "opt": "optimizer", "loss": "log_loss"})

CLASS = """import torch
from torch import nn


class {Net}(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))

    def forward(self, x):
        return self.body(x)

    def {draw}(self, count):
        out = self.body(torch.randn(count, 4))
        {restore}return out

    def {loss}(self, x):
        return self.body(x).pow(2).mean()

"""

HELPER = """
@torch.no_grad()
def {show}({net}, count):
    {net}.eval()
    return {net}.{draw}(count)

"""

EPOCH = """
def {epoch}({net}, loader, {opt}):
    {net}.train()
    for k, xb in enumerate(loader):
        loss = {loss_expr}
        {opt}.zero_grad()
        loss.backward()
        {opt}.step()
        if k % 50 == 0:
            {show_call}

"""


def program(n: dict, *, via: str, source: str, loss_from_method: bool, restore: bool = False,
            second_class: bool = False, handed_elsewhere: bool = False) -> str:
    """``via``: how the module reaches the helper ("epoch": through the epoch function's parameter,
    "keyword": the same by keyword, "trainer": a trainer class's ``self.<net>``); ``source``: how the
    module-level name is bound ("plain" or "tuple")."""
    n = dict(n, restore="self.train()\n        " if restore else "")
    text = CLASS.format(**n)
    if second_class:
        text += CLASS.format(**dict(n, Net="Other" + n["Net"], restore="self.train()\n        "))
    text += HELPER.format(**n)
    loss_expr = f"{n['net']}.{n['loss']}(xb)" if loss_from_method else f"{n['net']}(xb).pow(2).mean()"
    if via == "trainer":
        text += f"""
class Trainer:
    def __init__(self, {n['net']}, loader, {n['opt']}):
        self.{n['net']} = {n['net']}
        self.loader = loader
        self.{n['opt']} = {n['opt']}

    def {n['epoch']}(self):
        self.{n['net']}.train()
        for k, xb in enumerate(self.loader):
            loss = {loss_expr.replace(n['net'], 'self.' + n['net'], 1)}
            self.{n['opt']}.zero_grad()
            loss.backward()
            self.{n['opt']}.step()
            if k % 50 == 0:
                {n['show']}(self.{n['net']}, 8)

"""
    else:
        call = f"{n['show']}(count=8, {n['net']}={n['net']})" if via == "keyword" else f"{n['show']}({n['net']}, 8)"
        text += EPOCH.format(**dict(n, loss_expr=loss_expr, show_call=call))
    if source == "tuple":
        text += (f"\n{n['net']}, loader = {n['Net']}(), "
                 f"torch.utils.data.DataLoader(torch.randn(64, 4), batch_size=8)\n")
    else:
        text += (f"\n{n['net']} = {n['Net']}()\n"
                 f"loader = torch.utils.data.DataLoader(torch.randn(64, 4), batch_size=8)\n")
    if second_class:
        text += f"{n['show']}(Other{n['Net']}(), 4)\n"
    if handed_elsewhere:
        text += f"hooks = [{n['show']}]\n"
    text += f"{n['opt']} = torch.optim.Adam({n['net']}.parameters())\n"
    if via == "trainer":
        text += f"trainer = Trainer({n['net']}, loader, {n['opt']})\nfor ep in range(3):\n    trainer.{n['epoch']}()\n"
    else:
        text += f"for ep in range(3):\n    {n['epoch']}({n['net']}, loader, {n['opt']})\n"
    return text


def codes(src: str):
    return [d.code for d in lint_source(src, "t.py")]


VARIANTS = [(via, source, loss) for via in ("epoch", "keyword", "trainer") for source in ("plain", "tuple")
            for loss in (False, True)]


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("via, source, loss_from_method", VARIANTS)
def test_a_method_called_on_a_parameter_is_read(names, via, source, loss_from_method):
    assert codes(program(names, via=via, source=source, loss_from_method=loss_from_method)) == ["LL402"]


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("via, source, loss_from_method", VARIANTS)
def test_a_method_that_restores_train_mode_leaves_no_leak(names, via, source, loss_from_method):
    assert codes(program(names, via=via, source=source, loss_from_method=loss_from_method, restore=True)) == []


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("doubt", ["second_class", "handed_elsewhere"])
def test_a_parameter_of_unknown_class_stays_unseen(names, doubt):
    """Two classes handed in (one's ``draw`` restores train mode) or a helper stored where unseen code may
    call it: which ``draw`` runs is unknown, and the unseen call may restore the mode: no finding."""
    src = program(names, via="epoch", source="plain", loss_from_method=False, **{doubt: True})
    assert codes(src) == []


STEP_METHOD = """import torch
from torch import nn


class {Net}(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(x)

    def step_on(self, x, {opt}):
        loss = self.lin(x).pow(2).mean()
        loss.backward()
        {opt}.step()
        return loss.item()


def {epoch}({net}, loader, {opt}):
    for xb in loader:
        {net}.step_on(xb, {opt})


{net} = {Net}()
{opt} = torch.optim.SGD({net}.parameters(), lr=0.1)
for ep in range(3):
    {epoch}({net}, torch.randn(10, 8, 4), {opt})
"""


@pytest.mark.parametrize("names", NAMES)
def test_a_training_step_written_as_a_method_of_a_parameter(names):
    """The step method never zeroes the gradients; the loop that calls it on the parameter repeats it."""
    assert "LL101" in codes(STEP_METHOD.format(**names))
