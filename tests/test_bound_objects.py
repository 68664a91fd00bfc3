"""Objects bound where a call is made, checked on hand-written variants (other names, other sources of the
value, other nesting): a ``functools.partial`` binds arguments and runs nothing until it is called; an
argument that is a container's entry or an object built in place is the object it holds; one call of a
factory builds one set of objects (its scheduler drives its optimizer); a function that makes its own
iterator over a loader and draws from it until the data ends runs one pass over the data."""
from __future__ import annotations

import textwrap

import pytest

from looplint.engine import lint_source
from shapes import HELPER_CLASS


def findings(src: str, codes=None):
    got = lint_source(textwrap.dedent(src), "t.py")
    return sorted((d.code, d.line) for d in got if codes is None or d.code in codes)


def line_of(src: str, text: str) -> int:
    return next(i for i, row in enumerate(textwrap.dedent(src).splitlines(), 1) if text in row)


# -- a partial binds arguments and runs nothing --------------------------------------------------------------

CLOSURE = """
def {name}({params}):
    opt.zero_grad()
    loss = F.mse_loss(net(x), y)
{backward}    return loss
"""

PARTIAL_STEPS = {
    # name: (imports, the closure's parameters, statements that step the optimizer with it)
    "inline": ("import functools\n", "net, opt, x, y", "opt.step(functools.partial({name}, net, opt, x, y))"),
    "renamed import, bound first": (
        "from functools import partial as bind\n", "opt, net, x, y",
        "c = bind({name}, opt, net, x, y)\n        opt.step(c)"),
    "keyword closure, module alias": (
        "import functools as ft\n", "x, y, net=None, opt=None",
        "opt.step(closure=ft.partial({name}, net=net, opt=opt, x=x, y=y))"),
}


def _partial_program(variant: str, name: str, backward: bool) -> str:
    imports, params, step = PARTIAL_STEPS[variant]
    return (
        "import torch\nimport torch.nn.functional as F\n" + imports
        + CLOSURE.format(name=name, params=params, backward="    loss.backward()\n" if backward else "")
        + "\n\ndef fit(net, loader):\n"
        "    opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
        "    for x, y in loader:\n"
        "        " + step.format(name=name) + "\n"
    )


@pytest.mark.parametrize("variant", sorted(PARTIAL_STEPS))
@pytest.mark.parametrize("name", ["closure_fn", "reevaluate"])
def test_a_partial_closure_without_backward_is_ll303(variant, name):
    src = _partial_program(variant, name, backward=False)
    assert findings(src) == [("LL303", line_of(src, f"def {name}("))]
    assert findings(_partial_program(variant, name, backward=True)) == []


def test_calling_a_partial_of_an_unseen_function_acts_on_what_it_binds():
    # ``update`` comes from elsewhere and receives the optimizer through the partial: it may zero it
    src = """
    import functools
    import torch
    from helpers import update

    def fit(net, loader):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        apply = functools.partial(update, opt)
        for x, y in loader:
            net(x).sum().backward()
            apply()
            opt.step()
    """
    assert findings(src) == []
    # bound to configuration only, it cannot touch the optimizer: the missing zero_grad is reported
    unrelated = src.replace("functools.partial(update, opt)", "functools.partial(update, 'cfg')")
    assert findings(unrelated) == [("LL101", line_of(unrelated, "opt.step()"))]


# -- an argument that is an entry or an object built in place ------------------------------------------------

@pytest.mark.parametrize("built, passed", [
    ("opts = [torch.optim.Adam(net.parameters(), lr=1e-2)]", "opts[0]"),
    ("parts = {'optimizer': torch.optim.SGD(net.parameters(), lr=0.1)}", "parts['optimizer']"),
    ("", "torch.optim.SGD(net.parameters(), lr=0.1)"),
])
def test_a_factory_argument_read_from_an_entry_or_built_in_place(built, passed):
    src = f"""
    import torch
    import torch.nn.functional as F

    def closure_fn(net, x, y):
        net.zero_grad()
        return F.mse_loss(net(x), y)

    def make_step(optimizer, net):
        def step(x, y):
            return optimizer.step(lambda: closure_fn(net, x, y))
        return step

    def fit(net, loader):
        {built}
        step = make_step({passed}, net)
        for x, y in loader:
            step(x, y)
    """
    assert findings(src) == [("LL303", line_of(src, "lambda: closure_fn"))]


# -- one factory call builds one set of objects --------------------------------------------------------------

FACTORY = """
import torch
from torch.optim.lr_scheduler import {cls}


def build(net):
    {opt} = torch.optim.AdamW(net.parameters(), lr=1e-2)
    return {opt}, {cls}({opt}, {arg})


def fit(gen, disc, loader, epochs=4):
    opt_g, sched_g = build(gen)
    opt_d, sched_d = build(disc)
    for epoch in range(epochs):
        sched_g.step()
        for x in loader:
            opt_d.zero_grad()
            disc(x).mean().backward()
            opt_d.step()
            opt_g.zero_grad()
            gen(x).mean().backward()
            opt_g.step()
        sched_d.step()
"""


@pytest.mark.parametrize("cls, arg", [("StepLR", "step_size=2"), ("CosineAnnealingLR", "T_max=4")])
@pytest.mark.parametrize("opt", ["opt", "optimizer"])
def test_a_factory_calls_scheduler_drives_that_calls_optimizer(cls, arg, opt):
    src = FACTORY.format(cls=cls, arg=arg, opt=opt)
    # the generator's scheduler steps before the generator's optimizer ever did; the discriminator's after
    assert findings(src, {"LL203"}) == [("LL203", line_of(src, "sched_g.step()"))]


# -- a function that draws one pass from its own iterator ----------------------------------------------------

EPOCH_HELPERS = {
    "counted": """
    def run_epoch(loader, model, opt, sched):
        batches = iter(loader)
        i = 0
        while i < len(loader):
            x, y = next(batches)
            {body}
            i += 1
    """,
    "until exhausted": """
    def run_epoch(loader, model, opt, sched):
        it = iter(loader)
        while True:
            try:
                x, y = next(it)
            except StopIteration:
                break
            {body}
    """,
}

BODY = "opt.zero_grad(); model(x).sub(y).pow(2).mean().backward(); opt.step(); sched.step()"


def _epoch_program(helper: str) -> str:
    return textwrap.dedent(helper).format(body=BODY) + textwrap.dedent("""
    def fit(model, loader, epochs=3):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
        for epoch in range(epochs):
            run_epoch(loader, model, opt, sched)
    """)


@pytest.mark.parametrize("helper", sorted(EPOCH_HELPERS))
def test_a_helper_drawing_one_pass_from_its_own_iterator_is_a_batch_loop(helper):
    src = "import torch\n" + _epoch_program(EPOCH_HELPERS[helper])
    assert findings(src) == [("LL201", line_of(src, "sched.step()"))]


def test_an_iterator_refilled_inside_the_loop_is_a_stream_of_steps():
    # the loop restarts the data when it runs out: it counts updates, not one pass over the data
    helper = EPOCH_HELPERS["counted"].replace(
        "x, y = next(batches)",
        "try:\n                x, y = next(batches)\n            except StopIteration:\n"
        "                batches = iter(loader)\n                x, y = next(batches)")
    src = "import torch\n" + _epoch_program(helper)
    assert findings(src) == []


# -- a method of an object an attribute holds --------------------------------------------------------------
# ``self.helper = Helper(...)`` in one method, ``self.helper.optimize(self.opt)`` in another: the call runs
# that class's method, with what it is handed, like ``helper = Helper(); helper.optimize(opt)`` does.

HELD = "import torch\n\n\n" + HELPER_CLASS + """

class Loop:
    def __init__(self, model, data):
        self.model = model
        self.data = data
{bind}
        self.opt = torch.optim.AdamW(self.{attr}.params, lr=1e-3)

    def run(self):
        for batch in self.data:
            self.forward_backward(batch)
            self.{attr}.{apply}(self.opt)

    def forward_backward(self, batch):
{clears}        loss = self.model(batch).sum()
        self.{attr}.{back}(loss)
"""

BINDINGS = {
    "built in __init__": "        self.{attr} = {Helper}(model)",
    "through a local name": "        made = {Helper}(model)\n        self.{attr} = made",
    "built in a setup method": None,  # written below: the attribute is bound in another method
}


def _held(binding: str, attr: str, names: tuple, clears: bool) -> str:
    Helper, clear, back, apply = names
    bind = BINDINGS[binding]
    src = HELD
    if bind is None:
        bind = "        self.setup(model)"
        src = src.replace("    def run(self):", "    def setup(self, model):\n        self.{attr} = {Helper}(model)\n\n    def run(self):")
    src = src.replace("{bind}", bind).replace("{clears}", "        self.{attr}.{clear}()\n" if clears else "")
    return src.format(Helper=Helper, clear=clear, back=back, apply=apply, attr=attr)


@pytest.mark.parametrize("binding", sorted(BINDINGS))
@pytest.mark.parametrize("attr, names", [
    ("helper", ("Helper", "zero", "backward", "optimize")),
    ("mp", ("MixedPrecision", "clear_grads", "run_backward", "take_step")),
])
def test_a_method_of_an_object_an_attribute_holds_is_followed(binding, attr, names):
    bad = _held(binding, attr, names, clears=False)
    step = line_of(bad, "        opt.step()")
    assert findings(bad) == [("LL101", step)]
    assert findings(_held(binding, attr, names, clears=True)) == []


def test_an_attribute_holding_objects_of_two_classes_is_not_followed():
    src = _held("built in __init__", "helper", ("Helper", "zero", "backward", "optimize"), clears=False)
    src = src.replace("        self.helper = Helper(model)",
                      "        self.helper = Helper(model) if data else Other(model)")
    src += "\n\nclass Other(Helper):\n    def optimize(self, opt):\n        opt.zero_grad()\n        opt.step()\n"
    assert findings(src) == []  # which one runs is unknown: what it may do to the optimizer silences
