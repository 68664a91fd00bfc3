"""Gradient state through the ways real code hands the optimizer around and clears its gradients: a
``p.grad = None`` loop over a module's parameters, a helper bound with ``functools.partial``, an optimizer
a factory receives as a list or dict entry, a data loop written as ``while True: next(it)``. Each shape is
written several ways (other names, other sources, other nesting)."""
from __future__ import annotations

import textwrap

import pytest

from looplint.engine import lint_source


def findings(src: str, codes=("LL101", "LL102", "LL103", "LL104", "LL105", "LL106", "LL108")):
    got = lint_source(textwrap.dedent(src), "t.py")
    return sorted((d.code, d.line) for d in got if d.code in codes)


def line_of(src: str, text: str) -> int:
    return next(i for i, row in enumerate(textwrap.dedent(src).splitlines(), 1) if text in row)


# -- LL105: gradients cleared parameter by parameter, never stepped ---------------------------------------

CLEARS = [  # the statements that clear the gradients of ``net``'s parameters
    ["for p in net.parameters(): p.grad = None"],
    ["for param in net.parameters():", "    param.grad = None"],
    ["for w in list(net.parameters()):", "    if w.grad is not None:", "        w.grad.zero_()"],
    ["for w in net.parameters():", "    if w.grad is not None:", "        w.grad.detach_()", "        w.grad.zero_()"],
]


def _clear_then_backward(clear, where: str, step: bool) -> str:
    def at(indent, rows):
        return [" " * indent + r for r in rows]

    forward = ["loss = ((net(x) - y) ** 2).mean()", "loss.backward()", *(["opt.step()"] if step else [])]
    rows = ["import functools", "import torch", ""]
    if where == "inline":
        inner = at(12, clear + forward)
    else:
        rows += ["def one_step(net, opt, x, y):", *at(4, clear + forward + ["return loss"]), ""]
        inner = at(12, ["loss = one_step(net, opt, x, y)" if where == "helper" else "loss = run(x, y)"])
    rows += ["def fit(net, data):", "    opt = torch.optim.Adam(net.parameters(), lr=1e-2)"]
    if where == "partial":
        rows.append("    run = functools.partial(one_step, net, opt)")
    rows += ["    for epoch in range(2):", "        for x, y in data:", *inner]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("clear", CLEARS, ids=["one-line", "block", "zero_", "detach_"])
@pytest.mark.parametrize("where", ["inline", "helper", "partial"])
def test_a_parameter_loop_clear_then_backward_and_no_step_is_ll105(clear, where):
    src = _clear_then_backward(clear, where, step=False)
    assert findings(src) == [("LL105", line_of(src, "loss.backward()"))]
    assert findings(_clear_then_backward(clear, where, step=True)) == []


def test_a_parameter_loop_over_another_module_is_no_clear_of_this_optimizer():
    src = """
    import torch

    def fit(net, critic, data):
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for x, y in data:
            for p in critic.parameters(): p.grad = None
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
    """
    assert ("LL105", line_of(src, "loss.backward()")) not in findings(src)


# -- functools.partial over a function of this module: it acts where it is called ---------------------------

@pytest.mark.parametrize("opt_arg", ["opt", "opts[0]", "parts['opt']"])
def test_a_partial_of_a_local_step_function_binds_the_optimizer_without_touching_it(opt_arg):
    src = f"""
    import functools
    import torch

    def train_step(optimizer, model, x, y):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    def train(model, data):
        opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
        opts = [opt]
        parts = {{"opt": opt}}
        step_fn = functools.partial(train_step, {opt_arg}, model)
        for epoch in range(2):
            for x, y in data:
                loss = step_fn(x, y)
    """
    assert findings(src) == [("LL105", line_of(src, "loss.backward()"))]


def test_a_partial_handed_to_code_we_cannot_see_hands_over_what_it_binds():
    src = """
    import functools
    import torch
    from elsewhere import run_epochs

    def train_step(optimizer, model, batch):
        optimizer.zero_grad()
        loss = model(batch).sum()
        loss.backward()
        optimizer.step()

    def train(model, data):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in data:
            opt.zero_grad()
            model(x).sum().backward()
        run_epochs(functools.partial(train_step, opt, model), data)
    """
    assert findings(src) == []


# -- a factory's parameter is the entry its only caller passes ---------------------------------------------

@pytest.mark.parametrize("holder, entry", [
    ("optimizer_list = [torch.optim.SGD(model.parameters(), lr=0.05)]", "optimizer_list[0]"),
    ("parts = {}\n        parts['opt'] = torch.optim.SGD(model.parameters(), lr=0.05)", "parts['opt']"),
    ("pair = (torch.optim.SGD(model.parameters(), lr=0.05), None)", "pair[0]"),
])
def test_a_closure_made_by_a_factory_zeroes_the_entry_it_was_given(holder, entry):
    src = f"""
    import torch

    def make_step(optimizer, net):
        def step(x, y):
            optimizer.zero_grad(set_to_none=True)
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            return loss
        return step

    def train(model, loader):
        {holder}
        step = make_step({entry}, model)
        for epoch in range(2):
            for x, y in loader:
                loss = step(x, y)
            {entry}.step()
    """
    # the step after the data loop: every batch's gradients are zeroed before a step consumed them
    assert findings(src) == [("LL108", line_of(src, "optimizer.zero_grad"))]


# -- ``while True: next(it)`` ends like ``for`` -------------------------------------------------------------

def _iterator_loop(zero: bool, step_inside: bool, catch: str = "StopIteration") -> str:
    rows = [
        "import torch",
        "",
        "def train(model, loader):",
        "    opt = torch.optim.SGD(model.parameters(), lr=0.1)",
        "    for epoch in range(3):",
        "        it = iter(loader)",
        "        while True:",
        "            try:",
        "                x, y = next(it)",
        f"            except {catch}:",
        "                break",
        *(["            opt.zero_grad()"] if zero else []),
        "            loss = ((model(x) - y) ** 2).mean()",
        "            loss.backward()",
        "            opt.step()" if step_inside else "        opt.step()",
    ]
    return "\n".join(rows) + "\n"


def test_an_iterator_loop_with_a_step_per_batch_is_clean():
    assert findings(_iterator_loop(zero=True, step_inside=True)) == []


def test_an_iterator_loop_without_zero_grad_is_ll101():
    src = _iterator_loop(zero=False, step_inside=True)
    assert findings(src) == [("LL101", line_of(src, "opt.step()"))]


@pytest.mark.parametrize("catch", ["StopIteration", "(StopIteration,)"])
def test_a_step_after_an_iterator_loop_that_zeroes_per_batch_is_ll108_only(catch):
    src = _iterator_loop(zero=True, step_inside=False, catch=catch)
    assert findings(src) == [("LL108", line_of(src, "opt.zero_grad()"))]


@pytest.mark.parametrize("zero", [False, True])
def test_a_step_after_an_iterator_loop_is_judged_like_one_after_a_for_loop(zero):
    src = _iterator_loop(zero=zero, step_inside=False)
    as_for = src.replace("        while True:\n            try:\n                x, y = next(it)\n"
                         "            except StopIteration:\n                break\n", "        for x, y in it:\n")
    assert "for x, y in it" in as_for
    def texts(code):
        rows = code.splitlines()
        return [(c, rows[line - 1].strip()) for c, line in findings(code)]

    assert texts(src) == texts(as_for) != []


# -- ``self.model, self.opt = build()``: the module a factory returns is the one its optimizer holds --------

@pytest.mark.parametrize("unpack", ["self.model, self.opt = build_parts()", "(self.model, self.opt) = build_parts()"])
@pytest.mark.parametrize("clear", ["self.model.zero_grad()", "for p in self.model.parameters(): p.grad = None"])
def test_a_module_unpacked_from_a_factory_is_the_one_its_optimizer_was_built_over(unpack, clear):
    src = f"""
    import torch
    from torch import nn

    def build_parts():
        net = nn.Linear(4, 1)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        return net, optimizer

    class Trainer:
        def __init__(self):
            {unpack}

        def fit(self, loader):
            for x, y in loader:
                {clear}
                loss = ((self.model(x) - y) ** 2).mean()
                loss.backward()
                self.opt.step()
    """
    assert findings(src) == []
    dropped = src.replace(clear, "pass")
    assert findings(dropped) == [("LL101", line_of(src, "self.opt.step()"))]


# -- a loop over the pieces of a batch is a micro-batch loop ------------------------------------------------

@pytest.mark.parametrize("pieces", [
    "zip(x.chunk(4), y.chunk(4))",
    "zip(torch.split(x, 2), torch.split(y, 2))",
    "zip(x.tensor_split(k), y.tensor_split(k))",
])
def test_zero_grad_per_piece_of_a_batch_discards_the_accumulation(pieces):
    src = f"""
    import torch

    def train(model, opt, loader, k=4):
        for x, y in loader:
            for xb, yb in {pieces}:
                opt.zero_grad()
                loss = ((model(xb) - yb) ** 2).mean() / k
                loss.backward()
            opt.step()
    """
    assert findings(src) == [("LL108", line_of(src, "opt.zero_grad()"))]
    hoisted = src.replace("            for xb, yb", "            opt.zero_grad()\n            for xb, yb", 1).replace(
        "                opt.zero_grad()\n", "", 1)
    assert hoisted != src and findings(hoisted) == []


# -- modules built into the entries of one container are different objects ---------------------------------

@pytest.mark.parametrize("store", [
    'parts = {}\n        parts["gen"] = nn.Linear(4, 8)\n        parts["disc"] = nn.Linear(8, 1)',
    'parts = {"gen": nn.Linear(4, 8), "disc": nn.Linear(8, 1)}',
])
def test_an_optimizer_over_one_entry_is_not_zeroed_by_the_other_entrys_optimizer(store):
    src = f"""
    import torch
    from torch import nn

    def make_optimizer(module):
        return torch.optim.Adam(module.parameters(), lr=1e-2)

    def train(loader):
        {store}
        opt_g = make_optimizer(parts["gen"])
        opt_d = make_optimizer(parts["disc"])
        for x in loader:
            opt_d.zero_grad()
            fake = parts["gen"](x)
            d_loss = parts["disc"](fake.detach()).mean()
            d_loss.backward()
            opt_d.step()
            g_loss = -parts["disc"](fake).mean()
            g_loss.backward()
            opt_g.step()
    """
    # ``opt_g`` is never zeroed: its step applies the generator's gradients of every earlier iteration
    assert findings(src) == [("LL101", line_of(src, "opt_g.step()"))]
    fixed = src.replace("            opt_d.zero_grad()\n", "            opt_d.zero_grad()\n            opt_g.zero_grad()\n")
    assert fixed != src and findings(fixed) == []


# -- a function that runs one epoch: its ``next(it)`` loop is a pass over the data ---------------------------

EPOCH_PASSES = {
    "counted": ["i = 0", "while i < len(loader):", "    x, y = next(batch_iter)", "    i += 1"],
    "exhausted": ["while True:", "    try:", "        x, y = next(batch_iter)", "    except StopIteration:",
                  "        break"],
    "ranged": ["for _ in range(len(loader)):", "    x, y = next(batch_iter)"],
}


def _one_epoch(draw, step_inside: bool, source: str = "iter(loader)") -> str:
    rows = ["import torch", "", "def train_one_epoch(opt, loader, net):", "    opt.zero_grad()",
            f"    batch_iter = {source}", *["    " + r for r in EPOCH_PASSES[draw]],
            "        loss = ((net(x) - y) ** 2).mean()", "        loss.backward()",
            *(["        opt.step()", "        opt.zero_grad()"] if step_inside else ["    opt.step()"]),
            "", "def train(net, loader):", "    opt = torch.optim.SGD(net.parameters(), lr=0.05)",
            "    for epoch in range(3):", "        train_one_epoch(opt, loader, net)"]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("draw", sorted(EPOCH_PASSES))
def test_one_step_after_a_pass_drawn_with_next_is_ll106(draw):
    src = _one_epoch(draw, step_inside=False)
    assert findings(src) == [("LL106", line_of(src, "    opt.step()"))]
    assert findings(_one_epoch(draw, step_inside=True)) == []


def test_an_endless_iterator_is_a_stream_of_steps_not_a_pass():
    src = _one_epoch("counted", step_inside=False, source="iter(itertools.cycle(loader))")
    assert ("LL106", line_of(src, "    opt.step()")) not in findings(src)


# -- LL103: a step before the training loop belongs to no iteration ----------------------------------------

BEFORE_LOOP = """\
import torch

def fit(model, loader, epochs):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
{before}    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
{inside}            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        scheduler.step()
"""


@pytest.mark.parametrize("before", ["    optimizer.zero_grad()\n    optimizer.step()\n", "    optimizer.step()\n",
                                    "    optimizer.zero_grad(set_to_none=True)\n    optimizer.step()  # silence the warning\n"])
def test_a_step_before_the_training_loop_is_no_step_of_an_iteration(before):
    # MONAI's luna16 training: a no-op step so that the warmup scheduler does not warn
    assert findings(BEFORE_LOOP.format(before=before, inside=""), ("LL103",)) == []


def test_a_step_inside_the_loop_before_its_backward_is_still_ll103():
    src = BEFORE_LOOP.format(before="", inside="            optimizer.step()\n")
    assert findings(src, ("LL103",)) == [("LL103", line_of(src, "            optimizer.step()"))]


# -- a window of k batches drawn from a stream that never runs out is gradient accumulation, not a pass --------

STREAMS = {
    "itertools": ("", "itertools.cycle(loader)"),
    "local generator": ("def forever(batches):\n    while True:\n        for b in batches:\n            yield b\n\n",
                        "forever(loader)"),
    "iter of local generator": ("def endless(batches):\n    while True:\n        yield from batches\n\n",
                                "iter(endless(loader))"),
}
WINDOWS = {
    "range": ("", "range(k)"),
    "local contexts": ("def windows(n):\n    for _ in range(n):\n        yield\n\n", "windows(k)"),
}


def _window(stream: str, window: str, attribute: bool, leaves: bool = False) -> str:
    s_def, s_make = STREAMS[stream]
    w_def, w_iter = WINDOWS[window]
    if leaves:
        s_def = s_def.replace("            yield b\n", "            yield b\n        break\n")
    it = "self.stream" if attribute else "stream"
    body = (f"class Loop:\n    def __init__(self, net, loader):\n        self.net = net\n        self.stream = None\n"
            f"        self.stream = {s_make}\n\n    def run(self, opt, k, steps):\n") if attribute else (
            f"def run(net, loader, opt, k, steps):\n    stream = {s_make}\n")
    ind = "        " if attribute else "    "
    net = "self.net" if attribute else "net"
    fresh = [f"    {it} = {s_make}"] if leaves else []  # a finite iterator made for each pass
    rows = [f"for step in range(steps):", *fresh, f"    opt.zero_grad()", f"    for _ in {w_iter}:",
            f"        x = next({it})", f"        ({net}(x).mean() / k).backward()", f"    opt.step()"]
    return "import itertools\nimport torch\n\n" + s_def + w_def + body + "".join(ind + r + "\n" for r in rows)


def test_a_window_drawn_from_an_iterator_made_before_the_outer_loop_is_accumulation():
    # a full pass in every step would exhaust the iterator in the second: each run takes a few batches
    src = _window("itertools", "range", False).replace("itertools.cycle(loader)", "iter(loader)")
    assert "iter(loader)" in src and findings(src) == []
    fresh = src.replace("    stream = iter(loader)\n", "").replace(
        "        opt.zero_grad()\n", "        opt.zero_grad()\n        stream = iter(loader)\n")
    assert fresh != src and findings(fresh) == [("LL106", line_of(fresh, "    opt.step()"))]


@pytest.mark.parametrize("stream", sorted(STREAMS))
@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize("attribute", [False, True])
def test_a_window_drawn_from_an_endless_stream_is_accumulation(stream, window, attribute):
    src = _window(stream, window, attribute)
    assert findings(src) == []
    if stream == "local generator" and not attribute:
        # a generator that stops after one pass, made afresh for each run of the loop: k draws may be the pass
        leaving = _window(stream, window, attribute, leaves=True)
        assert leaving != src and findings(leaving) == [("LL106", line_of(leaving, "    opt.step()"))]
