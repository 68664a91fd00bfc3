"""Findings rest on what the code shows. Four mechanisms found on never-used repositories (botorch, dgl):

* A step over gradients that only calls looplint cannot see may have made, calls handed no loss
  (``callback(params, result)``, ``hook(model)``), is no evidence that old gradients are applied again
  (LL101): such a call may run no backward at all, or clear what it made (botorch's ``torch_minimize``: the
  closure it is handed zeroes and backpropagates, an opaque ``callback(parameters, result)`` follows). A
  call handed the loss the function computes (``backprop(loss)``) is what makes the gradients: LL101 stands.
* A name bound to two optimizers in one function is two objects: ``opt = Adam(...)`` builds the second one,
  whatever the name resolved to before (a test that trains two models one after the other, dgl).
* An optimizer built by a helper over a module the same helper builds on every call (a linear probe fitted
  at each epoch) keeps no state from one call to the next: no LL107.
* A scheduler step made once per window of the batch counter (``if (i + 1) % k == 0:``) is followed by the
  epoch's own scheduler step with no optimizer step between only when the epoch's length is a multiple of
  ``k``, which nothing in the code says: LL205 says what does happen, the schedule advancing in both places
  (``looplint confirm`` agrees). On every iteration, it is a second step with no update between.

Each mechanism is tested on spellings generated here (names, sources of the value, nesting), with controls
that keep the finding."""
import textwrap

import pytest

from looplint.engine import lint_source


def codes(src: str, only=None):
    return [(d.code, d.line) for d in lint_source(textwrap.dedent(src), "t.py")
            if only is None or d.code in only]


def line_of(src: str, text: str) -> int:
    return next(i for i, line in enumerate(textwrap.dedent(src).splitlines(), 1) if text in line)


# -- gradients only unseen calls may have made ------------------------------------------------------------

# calls looplint cannot see, handed what the optimizer trains but no loss: any backward would be their own
UNSEEN_CALLS = [
    "callback(params, stats)",
    "callback(params, {'loss': value})",
    "hooks.after_eval(model, value)",
    "log_parameters(model)",
]
# where the optimizer comes from
OPTIMIZERS = {
    "built": ("params = list(model.parameters())\n    opt = torch.optim.Adam(params, lr=0.1)\n", "opt"),
    "built_elsewhere": ("params = list(model.parameters())\n", "optimizer"),
    "factory_handed_it": ("params = list(model.parameters())\n    optimizer = make_optimizer(params)\n"
                          "    sched = make_scheduler(optimizer)\n", "optimizer"),
}


def _minimize(call: str, setup: str, opt: str, value: str = "closure().detach()") -> str:
    return f"""\
import torch
from helpers import callback, hooks, log_parameters, make_optimizer, make_scheduler

def minimize(closure, model, optimizer=None, steps=100):
    {setup}    for step in range(steps):
        value = {value}
        stats = {{"step": step, "value": value.item()}}
        {call}
        {opt}.step()
"""


@pytest.mark.parametrize("call", UNSEEN_CALLS)
@pytest.mark.parametrize("source", sorted(OPTIMIZERS))
def test_a_step_over_gradients_only_unseen_calls_may_have_made_is_not_reported(call, source):
    setup, opt = OPTIMIZERS[source]
    assert codes(_minimize(call, setup, opt), {"LL101"}) == []


@pytest.mark.parametrize("call", UNSEEN_CALLS)
@pytest.mark.parametrize("source", sorted(OPTIMIZERS))
def test_a_backward_the_code_shows_with_the_same_calls_is_still_reported(call, source):
    setup, opt = OPTIMIZERS[source]
    src = _minimize(call, setup, opt, value="model(x).sum()").replace(
        f"        {call}\n", f"        value.backward()\n        {call}\n")
    assert codes(src, {"LL101"}) == [("LL101", line_of(src, f"{opt}.step()"))]


@pytest.mark.parametrize("handed", ["backprop(loss)", "engine.run_backward(loss, model)", "backprop(loss=loss)"])
def test_a_call_handed_the_loss_makes_the_gradients_and_the_missing_zeroing_is_reported(handed):
    src = f"""\
import torch
from helpers import backprop, engine

def train(model, opt, loader):
    for x, y in loader:
        loss = model(x).sum()
        {handed}
        opt.step()
"""
    assert codes(src, {"LL101"}) == [("LL101", line_of(src, "opt.step()"))]


def test_a_closure_handed_in_whose_result_is_detached_makes_no_loss_to_hand_on():
    # ``closure()`` called with nothing may be a forward and backward of its own; its detached result
    # carries no graph, so handing it on is no backward of a loss the code computes
    src = """\
import torch

def fit(closure, params, report):
    opt = torch.optim.SGD(params, lr=0.1)
    for _ in range(10):
        value = closure()
        report(params, value)
        opt.step()
"""
    assert codes(src, {"LL101"}) == []


# -- a name bound to a second optimizer --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["opt", "optimizer", "o"])
@pytest.mark.parametrize("second", ["torch.optim.Adam(net.parameters(), lr=0.01)",
                                    "torch.optim.SGD(params=net.parameters(), lr=0.1, momentum=0.9)"])
@pytest.mark.parametrize("looped", [False, True])
def test_a_name_bound_to_a_new_optimizer_over_a_new_model_starts_afresh(name, second, looped):
    head = "    for _ in range(3):\n" if looped else ""
    pad = "    " if looped else ""
    body = textwrap.indent(f"""\
net = torch.nn.Linear(4, 1)
{name} = torch.optim.SGD(net.parameters(), lr=0.1)
{name}.zero_grad()
torch.nn.functional.mse_loss(net(x), y).backward()
{name}.step()
net = torch.nn.Linear(4, 1)
{name} = {second}
torch.nn.functional.mse_loss(net(x), y).backward()
{name}.step()
""", "    " + pad)
    src = f"import torch\n\ndef test_two_models(x, y):\n{head}{body}"
    assert codes(src, {"LL101", "LL107"}) == []


@pytest.mark.parametrize("name", ["opt", "optimizer"])
def test_the_same_optimizer_stepped_twice_without_zeroing_is_still_reported(name):
    src = f"""\
import torch

def test_one_model(x, y):
    net = torch.nn.Linear(4, 1)
    {name} = torch.optim.SGD(net.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(net(x), y).backward()
    {name}.step()
    torch.nn.functional.mse_loss(net(x), y).backward()
    {name}.step()
"""
    assert codes(src, {"LL101"}) == [("LL101", line_of(src, f"    {name}.step()") + 2)]


# -- an optimizer over a module the same helper builds -----------------------------------------------------

PROBES = [
    "probe = nn.Linear(feats.size(1), 3)",
    "probe = nn.Sequential(nn.Linear(feats.size(1), 16), nn.ReLU(), nn.Linear(16, 3))",
    "probe = Probe(feats.size(1))",
    "probe = make_probe(feats.size(1)).to(feats.device)",
]


def _probe_program(build: str, opt_over: str = "probe") -> str:
    return f"""\
import torch
import torch.nn as nn
from helpers import make_probe

class Probe(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, 3)

    def forward(self, x):
        return self.fc(x)

def fit_probe(feats, labels, model):
    {build}
    opt = torch.optim.AdamW({opt_over}.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(probe(feats), labels).backward()
        opt.step()
    return probe

def main(model, loader, x, y):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(10):
        for xb, yb in loader:
            optimizer.zero_grad()
            model(xb).pow(2).mean().backward()
            optimizer.step()
        with torch.no_grad():
            feats = model(x)
        fit_probe(feats, y, model)
"""


@pytest.mark.parametrize("build", PROBES)
def test_an_optimizer_over_a_module_its_helper_builds_on_each_call_is_no_rebuilt_state(build):
    assert codes(_probe_program(build), {"LL107"}) == []


@pytest.mark.parametrize("build", PROBES)
def test_an_optimizer_built_each_call_over_the_model_it_is_handed_is_still_reported(build):
    src = _probe_program(build, opt_over="model")
    assert codes(src, {"LL107"}) == [("LL107", line_of(src, "opt = torch.optim.AdamW"))]


def test_an_optimizer_over_a_module_the_helper_only_reads_is_still_reported():
    src = _probe_program("probe = model.head")
    assert codes(src, {"LL107"}) == [("LL107", line_of(src, "opt = torch.optim.AdamW"))]


# -- a scheduler step once per window of the batch counter -------------------------------------------------

def _schedule(test: str, counter: str = "enumerate(loader)", target: str = "it, x") -> str:
    return f"""\
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.9)
for epoch in range(5):
    for {target} in {counter}:
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
        {test}
            scheduler.step()
    scheduler.step()
"""


@pytest.mark.parametrize("test", ["if (it + 1) % 300 == 0:", "if it % 300 == 0:", "if (it + 1) % decay_every == 0:",
                                  "if (1 + it) % 300 == 0:", "if it % 300 == 299:", "if not (it + 1) % 300:",
                                  "if not ((it + 1) % 300 != 0):"])
@pytest.mark.parametrize("counter", ["enumerate(loader)", "enumerate(loader, 1)"])
def test_a_scheduler_step_once_per_window_then_per_epoch_advances_in_both_places(test, counter):
    src = _schedule(test, counter)
    found = [d for d in lint_source(textwrap.dedent(src), "t.py") if d.code == "LL205"]
    assert [d.line for d in found] == [len(textwrap.dedent(src).splitlines())]
    assert "advances in both places" in found[0].message and "no optimizer step" not in found[0].message


def test_a_scheduler_step_once_per_window_of_a_counted_step_advances_in_both_places():
    src = _schedule("global_step += 1\n        if global_step % 300 == 0:", "loader", "x").replace(
        "for epoch in range(5):", "global_step = 0\nfor epoch in range(5):")
    found = [d for d in lint_source(textwrap.dedent(src), "t.py") if d.code == "LL205"]
    assert len(found) == 1 and "advances in both places" in found[0].message


@pytest.mark.parametrize("test", ["if True:", "if it > 5:", "if (it + 1) % 300 != 0:", "if use_decay:",
                                  "if (it + 1) % 300:", "if not ((it + 1) % 300 == 0):"])
def test_a_scheduler_step_on_most_iterations_then_per_epoch_is_a_double_step(test):
    src = _schedule(test)
    found = [d for d in lint_source(textwrap.dedent(src), "t.py") if d.code == "LL205"]
    assert [d.line for d in found] == [len(textwrap.dedent(src).splitlines())]
    assert "no optimizer step since its previous" in found[0].message
