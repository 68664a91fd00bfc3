"""What a function is handed, and what each call makes, decide findings; found on never-used repositories
(apex, skorch, timm):

* Each call of a factory makes its own objects, also when looplint knows the object's kind only from how
  it is used (an optimizer class of another library): ``_, opt_a = make(); _, opt_b = make()`` are two
  optimizers, so zeroing and stepping each under its own test is no double step (apex's checkpoint test).
* ``if step_fn is None: opt.step() else: opt.step(step_fn)`` on a parameter every call site binds to a
  function: the first arm never runs (skorch's ``_step_optimizer``).
* A function the code was handed and calls with nothing (``step_fn()``, ``loss = closure()``) may run a
  forward and backward of its own: the step after it is no step without backward (skorch's accelerate
  mixin). Called with arguments (``criterion(out, y)``) it computes a value.
* ``out.backward(grad_out)`` is a tensor's backward, its argument the upstream gradient; and
  ``loss.backward(retain_graph=True)`` takes no loss argument: neither is ``accelerator.backward(loss)``.
* A helper that backpropagates a loss it was handed, rescaled or wrapped (``with amp.scale_loss(loss,
  opt) as scaled:``, ``loss / k``), is no per-step function of its own: its caller did the forward pass
  and may zero (timm's ``ApexScaler``)."""
import textwrap

import pytest

from looplint.engine import lint_source


def found(src: str, codes):
    src = textwrap.dedent(src)
    return [(d.code, d.line) for d in lint_source(src, "t.py") if d.code in codes]


def line_of(src: str, text: str, nth: int = 0) -> int:
    return [i for i, line in enumerate(textwrap.dedent(src).splitlines(), 1) if text in line][nth]


# -- objects each call of a factory makes ------------------------------------------------------------------

FACTORY = """\
import torch
try:
    from lib.optim import {cls}
except ImportError:
    {cls} = None

def make(size):
    net = torch.nn.Linear(size, size)
    opt = {cls}([{{"params": list(net.parameters())[1::2]}}, {{"params": list(net.parameters())[0::2]}}], lr=0.1)
    return net, opt

def test_two(rank, a_ranks, b_ranks, x):
    {unpack}
    for step in range(10):
        if rank < a_ranks:
            opt_a.zero_grad()
        if rank < b_ranks:
            opt_b.zero_grad()
        if rank < a_ranks:
            model_a(x).sum().backward()
        if rank < b_ranks:
            model_b(x).sum().backward()
        if rank < a_ranks:
            opt_a.step()
        if rank < b_ranks:
            opt_b.step()
"""


@pytest.mark.parametrize("cls", ["DistributedFusedAdam", "ShardedLamb"])
@pytest.mark.parametrize("unpack", ["model_a, opt_a = make(4)\n    model_b, opt_b = make(8)",
                                    "model_a, opt_a = make(4)\n    model_b, opt_b = make(size=4)"])
def test_each_call_of_a_factory_builds_its_own_optimizer(cls, unpack):
    assert found(FACTORY.format(cls=cls, unpack=unpack), {"LL101"}) == []


def test_one_object_a_factory_made_stepped_twice_is_still_reported():
    src = FACTORY.format(cls="DistributedFusedAdam", unpack="model_a, opt_a = make(4)\n    model_b, opt_b = model_a, opt_a")
    assert found(src, {"LL101"}) == [("LL101", line_of(src, "opt_b.step()"))]


# -- a parameter bound to a known function is never None ---------------------------------------------------

STEP_OPTIMIZER = """\
import torch


class Net:
    def __init__(self, module, optimizers=("optimizer",)):
        self.module_ = module
        self._optimizers = list(optimizers)
        self.optimizer_ = torch.optim.SGD(module.parameters(), lr=0.1)

    def zero_grad(self):
        for name in self._optimizers:
            getattr(self, name + "_").zero_grad()

    def _step_optimizer(self, step_fn):
        for name in self._optimizers:
            optimizer = getattr(self, name + "_")
            if step_fn {test}:
                {first}
            else:
                {second}

    def train_step_single(self, x):
        loss = self.module_(x).sum()
        loss.backward()
        return loss

    def train_step(self, x):
        def step_fn():
            self.zero_grad()
            return self.train_step_single(x)
        self._step_optimizer(step_fn)

    def fit(self, loader):
        for x in loader:
            self.train_step(x)
"""


@pytest.mark.parametrize("test", ["is None", "is not None"])
def test_a_parameter_every_caller_binds_to_a_function_is_not_none(test):
    plain, closure = "optimizer.step()", "optimizer.step(step_fn)"
    first, second = (plain, closure) if test == "is None" else (closure, plain)
    src = STEP_OPTIMIZER.format(test=test, first=first, second=second)
    assert found(src, {"LL104", "LL101"}) == []


# -- a function handed in and called with nothing ----------------------------------------------------------

@pytest.mark.parametrize("call", ["step_fn()", "loss = step_fn()", "step_fn().detach()", "value = float(step_fn())"])
def test_a_handed_function_called_with_nothing_may_train(call):
    src = f"""\
    import torch

    class Mixin:
        def _step_optimizer(self, step_fn):
            {call}
            for name in self._optimizers:
                optimizer = getattr(self, name + "_")
                optimizer.step()
    """
    assert found(src, {"LL104"}) == []


@pytest.mark.parametrize("call", ["loss = closure()", "closure()", "value = closure().detach()"])
def test_a_fitting_loop_over_a_handed_closure_steps_what_it_made(call):
    src = f"""\
    import torch

    def minimize(closure, params, steps=100):
        optimizer = torch.optim.Adam(params, lr=0.1)
        for _ in range(steps):
            {call}
            optimizer.step()
    """
    assert found(src, {"LL104"}) == []


@pytest.mark.parametrize("call", ["loss = criterion(out, y)", "loss = loss_fn(model(x), y)"])
def test_a_handed_function_called_with_arguments_computes_a_value(call):
    src = f"""\
    import torch

    def train(model, criterion, loss_fn, loader):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            out = model(x)
            {call}
            optimizer.step()
    """
    assert found(src, {"LL104"}) == [("LL104", line_of(src, "optimizer.step()"))]


# -- which backward takes a loss argument ------------------------------------------------------------------

LOOP = """\
import torch
from accelerate import Accelerator

model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
accelerator = Accelerator()
for x, g in loader:
    opt.zero_grad()
    out = model(x)
    {backward}
    opt.step()
"""


@pytest.mark.parametrize("backward", ["out.backward(g.detach())", "out.backward(g.detach(), retain_graph=True)",
                                      "out.sum().backward(torch.ones(()))", "(out * 2).backward(g.clone().detach())"])
def test_a_tensors_backward_with_an_upstream_gradient_reaches_the_model(backward):
    src = LOOP.format(backward=backward)
    assert found(src, {"LL112", "LL104"}) == []


@pytest.mark.parametrize("backward", ["loss = out.sum().detach()\n    loss.backward(retain_graph=True)",
                                      "loss = out.sum().detach()\n    loss.backward(create_graph=False)",
                                      "loss = out.sum().detach()\n    accelerator.backward(loss)"])
def test_a_loss_without_history_is_reported_whatever_the_keywords(backward):
    src = LOOP.format(backward=backward)
    assert [c for c, _ in found(src, {"LL112"})] == ["LL112"]


# -- a helper that backpropagates a loss it was handed -----------------------------------------------------

@pytest.mark.parametrize("backward", [
    "with amp.scale_loss(loss, optimizer) as scaled_loss:\n            scaled_loss.backward(create_graph=create_graph)",
    "scaled = loss / accum\n        scaled.backward()",
    "scaled = scaler.scale(loss)\n        scaled.backward()",
    "loss.mean().backward(retain_graph=True)",
])
def test_a_helper_that_backpropagates_a_handed_loss_is_judged_where_it_is_called(backward):
    src = f"""\
    import torch
    from apex import amp

    class Scaler:
        def __call__(self, loss, optimizer, scaler=None, accum=1, create_graph=False):
            {backward}
            optimizer.step()
    """
    assert found(src, {"LL101"}) == []


def test_a_per_step_function_that_computes_its_loss_is_still_one_iteration():
    src = """\
    import torch

    class Trainer:
        def training_step(self, batch):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.model(x), y)
            loss.backward()
            self.optimizer.step()
    """
    assert found(src, {"LL101"}) == [("LL101", line_of(src, "self.optimizer.step()"))]
