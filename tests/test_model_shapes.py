"""The mechanisms of the model (values, effects, default facts, evidence of torch, linear path cost), each
checked on generated variants of one shape: other names, other sources of the value, other nesting. A
variant that fails names the capability the model lacks, not a pattern to add."""
from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from looplint.engine import lint_source, run_deep
from looplint.model import build_model
from looplint.model.values import partial_args


def over_budget(src: str) -> bool:
    # as the engine builds models: on a thread whose stack fits deeply nested syntax trees
    return run_deep(lambda: bool(build_model(cst.parse_module(src)).facts.over_budget))


def findings(src: str, codes=None):
    got = lint_source(textwrap.dedent(src), "t.py")
    return sorted((d.code, d.line) for d in got if codes is None or d.code in codes)


def codes(src: str):
    return sorted({c for c, _ in findings(src)})


def line_of(src: str, text: str) -> int:
    return next(i for i, row in enumerate(textwrap.dedent(src).splitlines(), 1) if text in row)


# -- 1. value provenance: where an epoch count comes from ---------------------------------------------------

EPOCH_SOURCES = {
    # name: (code before the function, the function's signature, statements at its start, the epoch expression, caller)
    "default": ("", "def train(model, loader, {n}=9):", "", "{n}", ""),
    "call-site literal": ("", "def train(model, loader, {n}):", "", "{n}", "train(None, [], 9)\n"),
    "keyword call site": ("", "def train(model, loader, {n}):", "", "{n}", "train(None, [], {n}=9)\n"),
    "local literal": ("", "def train(model, loader):", "{n} = 9\n", "{n}", ""),
    "config dict": ("", "def train(model, loader):", "cfg = {{'{n}': 9}}\n", "cfg['{n}']", ""),
    "argparse default": (
        "import argparse\nparser = argparse.ArgumentParser()\nparser.add_argument('--{n}', type=int, default=9)\n"
        "args = parser.parse_args()\n", "def train(model, loader):", "", "args.{n}", ""),
}


@pytest.mark.parametrize("source", sorted(EPOCH_SOURCES))
@pytest.mark.parametrize("name", ["epochs", "n_iter", "total"])
@pytest.mark.parametrize("wrap", ["{b}", "enumerate({b})", "bar"])
def test_ll201_epoch_count_from_any_source(source, name, wrap):
    before, sig, start, epochs, caller = EPOCH_SOURCES[source]
    loop_target = "i, (x, y)" if wrap != "{b}" else "x, y"
    bar = "        bar = tqdm(enumerate(loader))\n" if wrap == "bar" else ""
    src = (
        "import torch\nfrom tqdm import tqdm\n" + before.format(n=name) + sig.format(n=name) + "\n"
        + textwrap.indent(start.format(n=name), "    ")
        + "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3)\n"
        f"    for epoch in range({epochs.format(n=name)}):\n"
        + bar
        + f"        for {loop_target} in {wrap.format(b='loader')}:\n"
        "            opt.zero_grad()\n"
        "            model(x).sum().backward()\n"
        "            opt.step()\n"
        "            sched.step()\n"
        + caller.format(n=name)
    )
    assert findings(src, {"LL201"}) == [("LL201", line_of(src, "sched.step()"))]


def test_ll201_silent_when_a_call_site_passes_an_unreadable_epoch_count():
    src = """\
    import sys
    import torch
    def train(model, loader, epochs=90):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)
        for epoch in range(epochs):
            for x, y in loader:
                opt.zero_grad(); model(x).sum().backward(); opt.step()
                sched.step()
    train(None, [], int(sys.argv[1]))
    """
    assert findings(src, {"LL201"}) == []


@pytest.mark.parametrize("attr_set", [
    "self.{n} = {v}",
    "self.{n}, self.other = {v}, 1",
    "self.other, self.{n} = (1, {v})",
])
@pytest.mark.parametrize("where", ["__init__", "setup"])
def test_ll201_epoch_count_set_in_another_method(attr_set, where):
    src = f"""\
    import torch
    class Fitter:
        def {where}(self, net):
            self.net = net
            {attr_set.format(n='n_rounds', v=40)}
            self.opt = torch.optim.Adam(net.parameters())
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=self.n_rounds)
        def fit(self, batches):
            for r in range(self.n_rounds):
                for a, b in batches:
                    self.opt.zero_grad()
                    self.net(a).sum().backward()
                    self.opt.step()
                    self.sched.step()
    """
    assert findings(src, {"LL201"}) == [("LL201", line_of(src, "self.sched.step()"))]


@pytest.mark.parametrize("wrapper", [
    "from tqdm import tqdm as progress",
    "from tqdm.auto import tqdm as progress",
    "def progress(iterable, **kwargs):\n    return iterable",
    "def progress(iterable, desc=None):\n    yield from iterable",
    "def progress(it):\n    for item in it:\n        yield item",
    "try:\n    from tqdm import tqdm as progress\nexcept ImportError:\n    def progress(x, **kw):\n        return x",
])
def test_an_iteration_wrapper_is_known_by_what_it_is_not_what_it_is_called(wrapper):
    src = "import torch\n" + wrapper + "\n" + textwrap.dedent("""\
    def run(model, loader, num_epochs=3):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
        for epoch in range(num_epochs):
            it = progress(enumerate(loader), desc="train")
            for i, (x, y) in it:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
                scheduler.step()
    """)
    assert findings(src, {"LL201"}) == [("LL201", line_of(src, "scheduler.step()"))]


def test_a_local_function_that_transforms_its_argument_is_not_an_iteration_wrapper():
    src = textwrap.dedent("""\
    import torch
    def progress(n, **kwargs):
        return range(n)
    def run(model, loader, num_epochs=3):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
        for epoch in range(num_epochs):
            for step in progress(100):
                x, y = next(loader)
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()
            scheduler.step()
    """)
    assert findings(src, {"LL201"}) == []


@pytest.mark.parametrize("rebind", ["loss = scaler.scale(loss)", "scaled = scaler.scale(loss)"])
@pytest.mark.parametrize("scaler_from", ["torch.amp.GradScaler('cpu')", "GradScaler()", "param"])
def test_ll404_scaled_loss_through_a_name(rebind, scaler_from):
    name = rebind.split(" =")[0]
    make = "" if scaler_from == "param" else f"    amp_scaler = {scaler_from}\n"
    src = (
        "import torch\nfrom torch.cuda.amp import GradScaler\n"
        f"def train(model, loader, optimizer{', amp_scaler' if scaler_from == 'param' else ''}):\n" + make +
        "    for x, y in loader:\n"
        "        optimizer.zero_grad()\n"
        "        loss = (model(x) - y).pow(2).mean()\n"
        f"        {rebind.replace('scaler', 'amp_scaler')}\n"
        f"        {name}.backward()\n"
        "        optimizer.step()\n"
    )
    if scaler_from == "param":
        src += "train(torch.nn.Linear(2, 1), [], torch.optim.SGD([], lr=1), torch.amp.GradScaler('cpu'))\n"
    assert findings(src, {"LL404"}) == [("LL404", line_of(src, "optimizer.step()"))]


def test_partial_arguments_keep_python_order():
    call = cst.parse_expression("f(p, k=1)")
    given = cst.parse_expression("g(x, k=2, z=3)")
    merged = partial_args(call.args, given.args)
    text = cst.Module([]).code_for_node(cst.Call(cst.Name("f"), args=merged))
    assert text.replace(" ", "") == "f(p,x,k=2,z=3)"


@pytest.mark.parametrize("bind", [
    "functools.partial(closure_fn, net, x, opt)",
    "functools.partial(closure_fn, net, x=x, opt=opt)",
    "partial(closure_fn, net)",
    "lambda: closure_fn(net, x, opt)",
])
@pytest.mark.parametrize("returns", [True, False])
def test_a_partial_closure_binds_its_optimizer(bind, returns):
    bound_first = bind == "partial(closure_fn, net)"  # a partial bound to a name, called by a lambda
    step = f"opt.step({bind})" if not bound_first else f"step_fn = {bind}\n    opt.step(lambda: step_fn(x, opt))"
    src = textwrap.dedent(f"""\
    import functools
    from functools import partial
    import torch
    def closure_fn(net, x, opt):
        opt.zero_grad()
        loss = net(x).sum()
        loss.backward()
        {'return loss' if returns else 'print(loss.item())'}
    net = torch.nn.Linear(2, 1)
    x = torch.randn(4, 2)
    opt = torch.optim.LBFGS(net.parameters())
    for _ in range(3):
        {step}
    """).replace("\n    opt.step(lambda", "\n        opt.step(lambda")
    got = codes(src)
    assert "LL105" not in got and "LL102" not in got
    assert ("LL301" in got) == (not returns)


# -- 2. calls looplint cannot see -------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["loss_kind", "loss_fn", "loss_weight", "cfg.loss", "'mse'"])
@pytest.mark.parametrize("helper", ["compute", "losses.compute", "self_made.loss"])
def test_an_unseen_loss_helper_given_configuration_hides_no_missing_zero_grad(config, helper):
    src = textwrap.dedent(f"""\
    import torch
    import losses
    from helpers import compute, self_made
    def train(net, opt, loader, loss_kind, loss_fn, loss_weight, cfg):
        for x, y in loader:
            loss = {helper}({config}, net(x), y)
            loss.backward()
            opt.step()
    """)
    assert findings(src, {"LL101"}) == [("LL101", line_of(src, "opt.step()"))]


@pytest.mark.parametrize("call", ["backprop(loss)", "trainer.backward_pass(loss)", "utils.run_backward(loss, net)"])
def test_a_statement_call_handed_the_loss_may_run_backward(call):
    src = textwrap.dedent(f"""\
    import torch
    from helpers import backprop, trainer, utils
    def train(net, opt, loader):
        for x, y in loader:
            opt.zero_grad()
            loss = net(x).sum()
            {call}
            opt.step()
    """)
    assert codes(src) == []  # no LL104: the helper may have run backward


def test_a_call_that_may_run_backward_never_hides_gradients_left_from_the_last_step():
    src = textwrap.dedent("""\
    import torch
    from helpers import backprop
    def train(net, opt, loader):
        for x, y in loader:
            loss = net(x).sum()
            backprop(loss)
            opt.step()
    """)
    assert findings(src, {"LL101"}) == [("LL101", line_of(src, "opt.step()"))]


@pytest.mark.parametrize("use", [
    "with self.autocast_ctx():\n                loss = self.net(x).sum()",
    "loss = self.compute_loss(self.net(x), y)",
    "loss = self.criterion_from_base(x, y)",
])
def test_an_inherited_method_used_as_a_value_or_context_has_no_gradient_effect(use):
    # the model reads every class Trainer derives from (a method inherited from code it cannot read may
    # clear the gradients however it is used: test_unseen_bases.py)
    src = textwrap.dedent("""\
    import torch
    import torch.nn as nn
    class BaseTrainer(nn.Module):
        pass
    class Trainer(BaseTrainer):
        def __init__(self, net):
            self.net = net
            self.opt = torch.optim.SGD(net.parameters(), lr=0.1)
        def fit(self, loader):
            for x, y in loader:
                {use}
                loss.backward()
                self.opt.step()
    """).replace("{use}", use)
    assert findings(src, {"LL101"}) == [("LL101", line_of(src, "self.opt.step()"))]


@pytest.mark.parametrize("name", ["clear_grads", "reset_state", "zero_all"])
def test_an_inherited_statement_call_whose_name_says_it_clears_keeps_the_doubt(name):
    src = textwrap.dedent(f"""\
    import torch
    from base import BaseTrainer
    class Trainer(BaseTrainer):
        def __init__(self, net):
            self.net = net
            self.opt = torch.optim.SGD(net.parameters(), lr=0.1)
        def fit(self, loader):
            for x, y in loader:
                self.{name}()
                self.net(x).sum().backward()
                self.opt.step()
    """)
    assert findings(src, {"LL101"}) == []


# -- 3. default facts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [
    "G, D = Generator(), Discriminator()",
    "G = make('G')\n    D = make('D')",
    "G = nets.generator(cfg)\n    D = nets.discriminator(cfg)",
])
@pytest.mark.parametrize("names", [("opt_g", "opt_d"), ("g_optim", "d_optim")])
def test_gan_generator_never_zeroed_whatever_builds_the_networks(build, names):
    g, d = names
    src = textwrap.dedent("""\
    import torch
    from nets import Generator, Discriminator, make, nets
    def train(loader, cfg):
        {build}
        {g} = torch.optim.Adam(G.parameters())
        {d} = torch.optim.Adam(D.parameters())
        for z, real in loader:
            {d}.zero_grad()
            (D(G(z).detach()).mean() - D(real).mean()).backward()
            {d}.step()
            (-D(G(z)).mean()).backward()
            {g}.step()
    """).replace("{build}", build).replace("{g}", g).replace("{d}", d)
    assert findings(src, {"LL101"}) == [("LL101", line_of(src, f"{g}.step()"))]


def test_aliasing_that_is_visible_keeps_the_networks_together():
    src = textwrap.dedent("""\
    import torch
    from nets import Net
    def train(loader):
        net = Net()
        body = net.backbone
        opt_a = torch.optim.Adam(net.parameters())
        opt_b = torch.optim.Adam(body.parameters())
        for x in loader:
            opt_a.zero_grad()
            net(x).sum().backward()
            opt_a.step()
            opt_b.step()
    """)
    assert findings(src, {"LL101"}) == []


@pytest.mark.parametrize("helper_param", ["m", "network", "model"])
@pytest.mark.parametrize("caller", ["fit(Net(), data, 3)", "fit(model=Net(), batches=data, epochs=3)"])
def test_a_module_from_the_caller_starts_in_train_mode(helper_param, caller):
    src = textwrap.dedent(f"""\
    import torch
    from nets import Net, data
    def evaluate({helper_param}, batches):
        {helper_param}.eval()
        return sum({helper_param}(a).sum().item() for a, _ in batches)
    def fit(model, batches, epochs):
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for epoch in range(epochs):
            for a, b in batches:
                opt.zero_grad()
                model(a).sum().backward()
                opt.step()
            evaluate(model, batches)
    {caller}
    """)
    assert findings(src, {"LL402"}) == [("LL402", line_of(src, f"{helper_param}.eval()"))]


# -- 5. evidence of torch and of training -------------------------------------------------------------------


@pytest.mark.parametrize("src", [
    # MXNet / gluon: the trainer's step takes a batch size
    """\
    from mxnet import autograd, gluon
    def train(net, trainer, loader, loss_fn, batch_size):
        for data, label in loader:
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
            trainer.step(batch_size)
    """,
    # optax / JAX
    """\
    import jax
    import optax
    def train(params, optimizer, batches, loss_fn):
        opt_state = optimizer.init(params)
        for batch in batches:
            grads = jax.grad(loss_fn)(params, batch)
            updates, opt_state = optimizer.update(grads, opt_state)
            params = optax.apply_updates(params, updates)
            optimizer.step()
        return params
    """,
])
def test_names_make_no_role_without_evidence_of_torch(src):
    assert findings(src) == []


def test_a_loop_less_update_referenced_elsewhere_is_judged_in_its_callers():
    src = textwrap.dedent("""\
    import torch
    def make_update(model, optimizer):
        def update(batch):
            model(batch).sum().backward()
            optimizer.step()
        return update
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    update = make_update(model, optimizer)
    for batch in [torch.randn(2, 2)] * 3:
        optimizer.zero_grad()
        update(batch)
    """)
    assert findings(src) == []


@pytest.mark.parametrize("settings", ["[0.1, 0.01]", "(1e-3, 1e-4, 1e-5)", "['cpu', 'cpu']", "[0, 1, 2]"])
def test_a_loop_over_literal_settings_is_a_sweep(settings):
    src = textwrap.dedent(f"""\
    import torch
    for setting in {settings}:
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(2):
            for x in [torch.randn(2, 2)] * 3:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
    """)
    assert findings(src, {"LL107"}) == []


@pytest.mark.parametrize("exc", ["FloatingPointError", "OverflowError", "(FloatingPointError, RuntimeError)"])
def test_a_step_skipped_on_overflow_then_cleared_is_not_lost_accumulation(exc):
    src = textwrap.dedent(f"""\
    import torch
    def train(model, loader):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            model(x).sum().backward()
            try:
                opt.step()
            except {exc}:
                print("skipped")
            opt.zero_grad()
    """)
    assert findings(src, {"LL108"}) == []


STEPPERS = {  # (definitions, the call that steps ``opt``) a ``try`` may hold instead of ``opt.step()``
    "function": ("def apply_update(o):\n    o.step()\n", "apply_update(opt)"),
    "nested call": ("def apply_update(o):\n    inner(o)\n\ndef inner(o):\n    o.step()\n", "apply_update(opt)"),
    "object": ("class Stepper:\n    def run(self, o):\n        o.step()\n\nSTEPPER = Stepper()\n", "STEPPER.run(opt)"),
    "scaler in a helper": ("def apply_update(o, s):\n    s.step(o)\n    s.update()\n", "apply_update(opt, scaler)"),
}


@pytest.mark.parametrize("stepper", sorted(STEPPERS))
@pytest.mark.parametrize("zero_first", [True, False])
def test_a_helper_step_skipped_by_an_exception_is_not_lost_accumulation(stepper, zero_first):
    definitions, call = STEPPERS[stepper]
    zero = "        opt.zero_grad()\n"
    scaled = "scaler" in stepper
    src = ("import torch\n" + definitions + "\n"
           "def train(model, loader):\n"
           "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
           + ("    scaler = torch.amp.GradScaler()\n" if scaled else "")
           + "    for x in loader:\n" + (zero if zero_first else "")
           + ("        scaler.scale(model(x).sum()).backward()\n" if scaled else "        model(x).sum().backward()\n"))
    src += f"        try:\n            {call}\n        except RuntimeError as err:\n            print(err)\n"
    src += "" if zero_first else zero
    assert findings(src) == []
    # a clip before the step: the update skipped on purpose makes no micro-batch (LL403) either
    clipped = src.replace("        try:\n", "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n        try:\n")
    assert findings(clipped if not scaled else src) == []
    # without the exception handler the same program is judged the same way: it was correct already
    assert findings(src.replace(f"        try:\n            {call}\n        except RuntimeError as err:\n"
                                f"            print(err)\n", f"        {call}\n")) == []


@pytest.mark.parametrize("stepper", sorted(k for k in STEPPERS if "scaler" not in k))
def test_a_clip_before_a_helper_step_skipped_by_an_exception_makes_no_micro_batch(stepper):
    definitions, call = STEPPERS[stepper]
    src = ("import torch\n" + definitions + "\n"
           "def train(model, loader):\n"
           "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
           "    opt.zero_grad()\n"
           "    for x in loader:\n"
           "        model(x).sum().backward()\n"
           "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
           f"        try:\n            {call}\n        except RuntimeError as err:\n            print(err)\n")
    # zeroed once, before the loop: every step re-applies old gradients (LL101), but the update an
    # exception skips is skipped on purpose, so the clip runs on no micro-batch of a window (no LL403)
    assert [code for code, _line in findings(src)] == ["LL101"]


@pytest.mark.parametrize("call", ["scaler.step(opt)\n            scaler.update()", "apply_update(opt, scaler)",
                                  "STEPPER.run(opt, scaler)"])
def test_a_scaler_step_in_a_try_leaves_the_scaler_unknown_to_the_handler(call):
    # direct, through a function, through an object's method: an exception may leave the unscale pending,
    # what the handler starts from is unknown (no LL406 for the next iteration's unscale_)
    src = textwrap.dedent("""\
    import torch


    def apply_update(o, s):
        s.step(o)
        s.update()


    class Stepper:
        def run(self, o, s):
            apply_update(o, s)


    STEPPER = Stepper()


    def train(model, loader):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler()
        for x in loader:
            opt.zero_grad()
            scaler.scale(model(x).sum()).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            try:
                CALL
            except RuntimeError as err:
                print(err)
    """).replace("CALL", call)
    assert findings(src) == []


@pytest.mark.parametrize("acc", ["acc", "4", "self_acc"])
def test_phase_counters_are_understood_like_modulo_tests(acc):
    src = textwrap.dedent(f"""\
    import itertools
    import torch
    def train(model, loader, acc=4, self_acc=2):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, k in zip(loader, itertools.cycle(range(1, {acc} + 1))):
            if k == 1:
                opt.zero_grad()
            model(x).sum().backward()
            if k == {acc}:
                opt.step()
        step = 0
        for x in loader:
            k = step % {acc}
            if k == 0:
                opt.zero_grad()
            model(x).sum().backward()
            if k == {acc} - 1:
                opt.step()
            step += 1
    """)
    assert findings(src) == []


# -- linear path cost -----------------------------------------------------------------------------------------


def test_a_long_elif_chain_is_analysed_without_recursion():
    arms = "".join(f"            elif mode == {i}:\n                scale = {i}\n" for i in range(1, 400))
    src = ("import torch\n"
           "def train(model, loader, mode):\n"
           "    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
           "    for x in loader:\n"
           "            if mode == 0:\n                scale = 0\n" + arms +
           "            loss = model(x).sum() * scale\n"
           "            loss.backward()\n"
           "            opt.step()\n")
    assert findings(src) == [("LL101", line_of(src, "opt.step()"))]
    assert not over_budget(src)


@pytest.mark.parametrize("depth", [5, 12, 16])
def test_deeply_nested_loops_stay_within_budget(depth):
    body, indent = [], "    "
    for i in range(depth):
        body.append(f"{indent}for i{i} in range(2):")
        indent += "    "
    body += [f"{indent}opt.zero_grad()", f"{indent}model(x).sum().backward()", f"{indent}opt.step()"]
    src = ("import torch\ndef train(model, x):\n    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
           + "\n".join(body) + "\n")
    assert not over_budget(src)
    assert findings(src) == []


def test_many_helpers_in_one_file_stay_within_budget():
    helpers = "".join(
        f"def step_{i}(model, opt, x):\n    opt.zero_grad()\n    model(x).sum().backward()\n    opt.step()\n"
        for i in range(150))
    calls = "".join(f"        step_{i}(model, opt, x)\n" for i in range(150))
    src = ("import torch\n" + helpers +
           "def train(model, loader):\n    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
           "    for x in loader:\n" + calls)
    assert not over_budget(src)
    assert findings(src) == []



def sweep_program(backprop="run_model", depth=4, clear=""):
    """Comparison helpers that backpropagate into two networks and never step, called from a sweep over
    settings (the gradients' history differs on every call: issue 8's accelerate test_sync.py), then a
    training helper in the same root."""
    sweep = "".join(f"{'    ' * (i + 2)}for s{i} in [True, False]:\n" for i in range(depth))
    inner = "    " * (depth + 2)
    return textwrap.dedent(f"""\
    import torch


    def {backprop}(net, x, plain=True):
        loss = net(x).pow(2).sum()
        if not plain:
            loss = loss / 2
            loss.backward()
        else:
            loss.mean().backward()


    def build():
        return torch.nn.Linear(4, 1), torch.nn.Linear(4, 1), [torch.randn(2, 4) for _ in range(4)]


    def compare_once(tag):
        a, b, data = build()
        for it in range(3):
            {backprop}(a, data[0])
            if it % 2 == 0:
                {backprop}(b, data[0])
            else:
                {backprop}(b, data[0], False)


    def compare_windows(flag=False):
        a, b, data = build()
        for it, x in enumerate(data):
            {backprop}(a, x, False)
            {backprop}(b, x)
            if ((it + 1) % 2 == 0) or flag:
                print(it)


    def fit(net, data):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for x in data:
            {clear}{backprop}(net, x)
            opt.step()


    def main(kind):
        if kind == 0:
            compare_once("a")
        if kind > 0:
    """) + sweep + f"{inner}compare_windows(s0)\n{inner}compare_once('b')\n    a, b, data = build()\n    fit(a, data)\n"


@pytest.mark.parametrize("backprop,depth", [("run_model", 4), ("backprop_pair", 6), ("forward_backward", 3)])
def test_helpers_called_after_ever_different_gradient_histories_stay_within_budget(backprop, depth):
    src = sweep_program(backprop, depth)
    assert not over_budget(src)
    assert findings(src) == [("LL101", line_of(src, "opt.step()"))]
    clean = sweep_program(backprop, depth, clear="opt.zero_grad()\n            ")
    assert not over_budget(clean)
    assert findings(clean) == []


# -- compound statements written on one line ------------------------------------------------------------------


@pytest.mark.parametrize("clear", [
    "for p in model.parameters(): p.grad = None",
    "for p in model.parameters():\n            p.grad = None",
    "if True: optimizer.zero_grad()",
    "optimizer.zero_grad(); pass",
    "with torch.no_grad(): optimizer.zero_grad()",
])
def test_one_line_bodies_are_statements_like_any_other(clear):
    src = textwrap.dedent("""\
    import torch
    def train(loader):
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for x in loader:
            {clear}
            model(x).sum().backward()
            optimizer.step()
    """).replace("{clear}", clear)
    assert findings(src) == []


def test_an_assignment_in_a_one_line_branch_reaches_its_uses():
    src = textwrap.dedent("""\
    import torch
    def train(model, loader, fast):
        epochs = 10
        if fast: epochs = 20
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3)
        for epoch in range(epochs):
            for x in loader:
                opt.zero_grad(); model(x).sum().backward(); opt.step()
                sched.step()
    """)
    assert findings(src) == [("LL201", line_of(src, "sched.step()"))]


@pytest.mark.parametrize("accumulate", [False, True])
def test_a_loop_that_only_traces_the_schedule_is_not_training(accumulate):
    pad = " " * (16 if accumulate else 12)
    inner = ("            with accelerator.accumulate(model):\n" if accumulate else "") + \
        f"{pad}optimizer.step()\n{pad}scheduler.step()\n"
    src = (
        "import torch\n"
        "from accelerate import Accelerator\n"
        "def trace(steps):\n"
        "    accelerator = Accelerator()\n"
        "    model = torch.nn.Linear(2, 4)\n"
        "    optimizer = torch.optim.AdamW(model.parameters(), lr=10.0)\n"
        "    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, total_iters=steps)\n"
        "    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)\n"
        "    lrs = []\n"
        "    for num_steps in [1, 2, 4]:\n"
        "        for i in range(10 * num_steps):\n"
        + inner +
        "            lrs.append(scheduler.get_last_lr()[0])\n"
        "    return lrs\n"
    )
    assert findings(src) == []
    # (with a forward through the model and no backward it is LL104: fixtures/ll104/bad_*)


# -- parameter sets: a module covers its submodules -------------------------------------------------------

@pytest.mark.parametrize("held", ["net.head", "net.head.proj", "net.backbone"])
@pytest.mark.parametrize("zero", ["net.zero_grad()", "model.zero_grad(set_to_none=True)"])
def test_zeroing_a_model_zeroes_an_optimizer_over_its_submodule(held, zero):
    # fine-tuning: the optimizer holds one part of an instance of a local class, the loop zeroes the model
    src = f"""
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 1)

        def forward(self, x):
            return self.proj(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(4, 4)
            self.head = Head()

        def forward(self, x):
            return self.head(self.backbone(x))

    def update(model, opt, loss):
        loss.backward()
        opt.step()
        {zero.replace("net.", "model.")}

    def main():
        net = Net()
        opt = torch.optim.SGD({held}.parameters(), lr=0.1)
        for x, y in torch.utils.data.DataLoader([]):
            update(net, opt, nn.functional.mse_loss(net(x), y))
    """
    assert findings(src, {"LL101", "LL102"}) == []
    # the same loop without the zeroing is a missing zero_grad
    other = src.replace(zero.replace("net.", "model."), "pass")
    assert [c for c, _ in findings(other, {"LL101"})] == ["LL101"]


# -- a flag handed down: the test of a parameter is the caller's test of the name it receives ---------------

FLAG_HELPERS = {
    # how the helper that steps receives the flag
    "keyword": ("def step_if(loss, opt, {f}):", "step_if(loss, optimizer, {f}={v})"),
    "positional, renamed": ("def step_if(loss, opt, go):", "step_if(loss, optimizer, {v})"),
    "default": ("def step_if(loss, opt, {f}=True):", "step_if(loss, optimizer, {f}={v})"),
    "method": ("def step_if(self, loss, opt, {f}):", "helper.step_if(loss, optimizer, {f}={v})"),
}


def _flag_program(how: str, flag: str, zero_when: str) -> str:
    sig, call = FLAG_HELPERS[how]
    param = "go" if "renamed" in how else flag
    helper = f"""
    {sig.format(f=flag)}
        loss.backward()
        if {param}:
            opt.step()
    """
    if how == "method":
        helper = "class Helper:\n" + textwrap.indent(textwrap.dedent(helper), "    ") + "\nhelper = Helper()\n"
    else:
        helper = textwrap.dedent(helper)
    return "import torch\n\n" + helper + textwrap.dedent(f"""

    def train(model, loader, optimizer, accum):
        optimizer.zero_grad()
        for i, (x, y) in enumerate(loader):
            {flag} = (i + 1) % accum == 0
            loss = torch.nn.functional.mse_loss(model(x), y) / accum
            {call.format(f=flag, v=flag)}
            if {zero_when}{flag}:
                continue
            optimizer.zero_grad()
    """)


@pytest.mark.parametrize("how", sorted(FLAG_HELPERS))
@pytest.mark.parametrize("flag", ["need_update", "do_step"])
def test_a_flag_handed_to_the_helper_that_steps_is_the_callers_flag(how, flag):
    # the zeroing is skipped exactly when the helper does not step: correct accumulation
    assert codes(_flag_program(how, flag, "not ")) == []


@pytest.mark.parametrize("how", ["keyword", "positional, renamed"])
def test_a_flag_handed_down_finds_what_the_inlined_step_finds(how):
    # zeroing exactly when the helper did not step: each window's step is never zeroed after (LL101 when
    # a window is one batch) -- the same finding as with the step written in the loop
    src = _flag_program(how, "need_update", "")
    inline = src.split("def train")[0].split("import torch")[0] + "import torch\n\n\ndef train" + src.split("def train")[1]
    call = next(row for row in inline.splitlines() if "step_if(" in row)
    inline = inline.replace(call, "        loss.backward()\n        if need_update:\n            optimizer.step()")
    assert codes(inline) == ["LL101"]
    assert codes(src) == codes(inline)


def test_correlated_flag_survives_many_unrelated_settings():
    # more paths than the interpreter keeps: the settings tested once are forgotten before the flag that
    # gates both the step and the zeroing
    settings = "\n".join(f"        if cfg.opt{k}:\n            log(x)" for k in range(9))
    src = f"""
import torch


def train(model, loader, optimizer, cfg, accum, log):
    optimizer.zero_grad()
    for i, (x, y) in enumerate(loader):
        need_update = i == len(loader) - 1 or (i + 1) % accum == 0
{settings}
        loss = torch.nn.functional.mse_loss(model(x), y) / accum
        loss.backward()
        if need_update:
            optimizer.step()
{settings}
        if not need_update:
            continue
        optimizer.zero_grad()
"""
    assert codes(src) == []
    assert "LL101" in codes(src.replace("        if not need_update:\n            continue\n        optimizer.zero_grad()\n", ""))


# -- LL105: a module known by two names (an attribute of a local object, its owner's attribute) -------------
HELD_MODULE = """\
import torch
from torch import nn


class {State}:
    def __init__(self):
        self.{attr} = nn.Linear(4, 1)
        self.head = nn.Linear(1, 1)


def clear(m):
    m.zero_grad()


def train(loader):
    {state} = {State}()
    opt = torch.optim.SGD({params}, lr=0.1)
    for x in loader:
        {zero}
        loss = {state}.{attr}(x).sum()
        loss.backward()
"""


@pytest.mark.parametrize("names", [("State", "state", "model"), ("Holder", "h", "net")])
@pytest.mark.parametrize("zero", ["{state}.{attr}.zero_grad()", "clear({state}.{attr})"])
def test_a_module_zeroed_under_another_name_of_the_only_module_an_optimizer_holds(names, zero):
    State, state, attr = names
    fill = dict(State=State, state=state, attr=attr)
    src = HELD_MODULE.format(zero=zero.format(**fill), params="{state}.{attr}.parameters()".format(**fill), **fill)
    assert findings(src, {"LL105"}) == [("LL105", line_of(src, "loss.backward()"))]
    assert findings(src + "        opt.step()\n", {"LL105"}) == []
    # built over two modules: zeroing one of them leaves the other's gradients, nothing is said
    two = src.replace(f"{state}.{attr}.parameters()",
                      f"list({state}.{attr}.parameters()) + list({state}.head.parameters())")
    assert findings(two, {"LL105"}) == []


# -- a periodic test handed to a helper as an argument -------------------------------------------------------
# ``apply_update(opt, update_grad=(i + 1) % k == 0)`` and ``if update_grad:`` in the helper is the caller's
# test: judged as the same program with the test written where the call is.
HANDED_TEST = """\
import torch


def apply_update(opt, {param}):
    if {test}:
        opt.step()


def train(model, loader, accum_iter=4):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    for i, x in enumerate(loader):
        loss = model(x).sum() / accum_iter
        loss.backward()
        {call}
{zero}"""
HANDED_STEPS = {  # parameter, the helper's test, the argument
    "equals": ("update_grad", "update_grad", "(i + 1) % accum_iter == 0"),
    "negated": ("skip", "not skip", "(i + 1) % accum_iter != 0"),
    "phase zero": ("sync", "sync", "i % accum_iter == 0"),
}
HANDED_ZEROS = {
    "same test": "        if (i + 1) % accum_iter == 0:\n            opt.zero_grad()\n",
    "none": "",
    "phase zero": "        if i % accum_iter == 0:\n            opt.zero_grad()\n",
}


@pytest.mark.parametrize("step", sorted(HANDED_STEPS))
@pytest.mark.parametrize("zero", sorted(HANDED_ZEROS))
@pytest.mark.parametrize("keyword", [True, False])
def test_a_periodic_test_handed_to_a_helper_is_the_callers_test(step, zero, keyword):
    param, test, expr = HANDED_STEPS[step]
    call = f"apply_update(opt, {param + '=' if keyword else ''}{expr})"
    helper = HANDED_TEST.format(param=param, test=test, call=call, zero=HANDED_ZEROS[zero])
    inline = helper.replace(call, f"if {expr if test == param else f'not ({expr})'}:\n            opt.step()")
    assert [c for c, _ in findings(helper)] == [c for c, _ in findings(inline)]
    if zero == "same test":
        assert findings(helper) == []  # the accumulation window steps and clears together
