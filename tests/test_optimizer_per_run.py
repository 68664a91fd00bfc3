"""An optimizer a helper builds over the module it is handed holds that module, one run at a time. A
notebook trains a first model with ``fit(first, ...)``, evaluates it (``eval()``), then trains a second with
``fit(second, ...)``: the second run's optimizer holds only ``second``, so the first model's eval mode trains
nothing (it was reported as LL402 on a course notebook never used here). Training the first model again
after its evaluation, with no ``train()`` in ``fit`` (the caller set train mode once, before the first run),
does train it in eval mode (LL402).

Checked on variants: the model evaluated by a helper or directly, built as a layer or a local class, the
optimizer over ``net.parameters()`` or a list of them, two sets of names."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

NAMES = ({"fit": "fit", "net": "net", "opt": "optimizer", "a": "first", "b": "second", "ev": "evaluate"},
         {"fit": "train_model", "net": "model", "opt": "opt", "a": "cnn", "b": "gcnn", "ev": "test_model"})
BUILDS = {"layer": "torch.nn.Linear(4, 1)", "local_class": "Net()"}
PARAMS = {"parameters": "{net}.parameters()", "list": "list({net}.parameters())"}


def program(n, *, build, params, helper_eval, again, train_call):
    evaluate = f"{n['ev']}({n['a']})" if helper_eval else f"{n['a']}.eval()"
    train_line = f"        {n['net']}.train()\n" if train_call else ""
    return f"""import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))

    def forward(self, x):
        return self.body(x)


def {n['ev']}({n['net']}):
    {n['net']}.eval()


def {n['fit']}({n['net']}, loader):
    {n['opt']} = torch.optim.Adam({PARAMS[params].format(net=n['net'])})
    for epoch in range(3):
{train_line}        for x, y in loader:
            {n['opt']}.zero_grad()
            loss = ({n['net']}(x) - y).pow(2).mean()
            loss.backward()
            {n['opt']}.step()


loader = [(torch.randn(8, 4), torch.randn(8, 1))]
{n['a']} = {BUILDS[build]}
{n['b']} = {BUILDS[build]}
{n['a']}.train()
{n['fit']}({n['a']}, loader)
{evaluate}
{n['fit']}({n['a'] if again else n['b']}, loader)
"""


VARIANTS = [(build, params, helper_eval) for build in BUILDS for params in PARAMS for helper_eval in (True, False)]


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("build, params, helper_eval", VARIANTS)
@pytest.mark.parametrize("train_call", [True, False])
def test_the_next_run_trains_another_module(names, build, params, helper_eval, train_call):
    src = program(names, build=build, params=params, helper_eval=helper_eval, again=False, train_call=train_call)
    assert [d.code for d in lint_source(src, "t.py")] == []


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("build, params", [(build, params) for build in BUILDS for params in PARAMS])
def test_the_same_module_trained_again_in_eval_mode(names, build, params):
    """Left in eval mode by an evaluation helper (an ``eval()`` the caller writes itself may be meant: a
    frozen model fine-tuned, not reported)."""
    src = program(names, build=build, params=params, helper_eval=True, again=True, train_call=False)
    assert [d.code for d in lint_source(src, "t.py")] == ["LL402"]


FACTORY = """import torch
from torch import nn


def {ev}({net}, loader):
    {net}.eval()
    for x in loader:
        {net}(x)


def epoch_iteration({net}, {opt}, loader):
{train_line}    for x in loader:
        {opt}.zero_grad()
        {net}(x).sum().backward()
        {opt}.step()


def {fit}({net}, make, loader):
    {opt} = {build}
    for epoch in range(3):
        epoch_iteration({net}, {opt}, loader)
    {ev}({net}, loader)


{a} = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
{b} = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
{a}.train()
{fit}({a}, lambda params: torch.optim.SGD(params, lr=0.1), [])
{fit}({second}, lambda params: torch.optim.Adam(params, lr=0.1), [])
"""
FACTORY_BUILDS = {"factory": "make({net}.parameters())", "factory_kw": "make(params={net}.parameters())",
                  "list": "make(list({net}.parameters()))"}


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("build", FACTORY_BUILDS)
@pytest.mark.parametrize("train_call", [True, False])
def test_an_optimizer_made_by_a_factory_handed_the_parameters(names, build, train_call):
    """``optimizer = make(net.parameters())``, the factory a lambda each call site hands in, the optimizer
    handed on to an epoch helper: each run's optimizer holds that run's module."""
    n = names
    src = FACTORY.format(**n, build=FACTORY_BUILDS[build].format(net=n["net"]), second=n["b"],
                         train_line=f"    {n['net']}.train()\n" if train_call else "")
    assert [d.code for d in lint_source(src, "t.py")] == []


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("build", FACTORY_BUILDS)
def test_a_factory_made_optimizer_training_the_same_module_again(names, build):
    n = names
    src = FACTORY.format(**n, build=FACTORY_BUILDS[build].format(net=n["net"]), second=n["a"], train_line="")
    assert [d.code for d in lint_source(src, "t.py")] == ["LL402"]
