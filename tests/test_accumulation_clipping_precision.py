"""Running totals, clipping and mixed precision across helpers: what a function of this module does with the
loss it is handed or returns, where a clip runs relative to this iteration's backward, and which
``unscale_``/``update`` calls a gated step pairs with. Variants of each shape: other names, other ways of
reaching the helper (a name, a method, ``functools.partial``, a lambda), other nesting."""
from __future__ import annotations

import textwrap

import pytest

from looplint.engine import lint_source


def findings(src: str, codes=None):
    got = lint_source(textwrap.dedent(src), "t.py")
    return sorted((d.code, d.line) for d in got if codes is None or d.code in codes)


def line_of(src: str, text: str) -> int:
    return next(i for i, row in enumerate(textwrap.dedent(src).splitlines(), 1) if text in row)


# -- LL401: a running total of a loss that a helper backpropagates ------------------------------------------

HANDED = {
    "positional": ("def backprop_and_step(optim, objective):\n"
                   "    objective.backward()\n"
                   "    optim.step()\n", "backprop_and_step(opt, cost)"),
    "keyword, scaled": ("def update(optim, scaler, objective=None):\n"
                        "    scaler.scale(objective).backward()\n"
                        "    scaler.step(optim)\n"
                        "    scaler.update()\n", "update(opt, scaler, objective=cost)"),
    "through a second helper": ("def _bw(t):\n"
                                "    t.backward()\n"
                                "def update(optim, objective):\n"
                                "    _bw(objective)\n"
                                "    optim.step()\n", "update(opt, cost)"),
    "partial": ("def update(optim, objective):\n"
                "    objective.backward()\n"
                "    optim.step()\n", "apply(cost)"),
}
SETUP = {"partial": "    apply = functools.partial(update, opt)\n"}


@pytest.mark.parametrize("helper", sorted(HANDED))
def test_ll401_total_of_a_loss_a_helper_backpropagates(helper):
    defs, call = HANDED[helper]
    src = ("import functools\nimport torch\n" + defs
           + "def fit(net, batches):\n"
             "    opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
             "    scaler = torch.amp.GradScaler('cpu')\n"
           + SETUP.get(helper, "")
           + "    seen = 0\n"
             "    for a, b in batches:\n"
             "        opt.zero_grad()\n"
             "        cost = ((net(a) - b) ** 2).mean()\n"
             f"        {call}\n"
             "        seen += cost\n")
    assert findings(src, {"LL401"}) == [("LL401", line_of(src, "seen += cost"))]


def test_ll401_silent_when_the_helper_only_reads_the_loss():
    src = """\
    import torch
    def record(log, value):
        log.append(value)
    def fit(net, batches, log):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        seen = 0
        for a, b in batches:
            opt.zero_grad()
            cost = ((net(a) - b) ** 2).mean()
            record(log, cost)
            (cost * 2).mean().item()
            seen += cost
    """
    assert findings(src, {"LL401"}) == []


RETURNED = {
    "alias": ("def one_step(net, opt, a, b):\n"
              "    opt.zero_grad()\n"
              "    err = ((net(a) - b) ** 2).mean()\n"
              "    err.backward()\n"
              "    opt.step()\n"
              "    out = err\n"
              "    return out\n", "one_step(net, opt, a, b)"),
    "lambda": ("def one_step(net, opt, a, b):\n"
               "    opt.zero_grad()\n"
               "    err = ((net(a) - b) ** 2).mean()\n"
               "    err.backward()\n"
               "    opt.step()\n"
               "    return err\n", "fwd(a, b)"),
    "nested helper result": ("def inner(net, opt, a, b):\n"
                             "    opt.zero_grad()\n"
                             "    err = ((net(a) - b) ** 2).mean()\n"
                             "    err.backward()\n"
                             "    opt.step()\n"
                             "    return err\n"
                             "def one_step(net, opt, a, b):\n"
                             "    return inner(net, opt, a, b)\n", "one_step(net, opt, a, b)"),
}


@pytest.mark.parametrize("helper", sorted(RETURNED))
def test_ll401_total_of_the_loss_a_step_helper_returns(helper):
    defs, call = RETURNED[helper]
    src = ("import torch\n" + defs
           + "def fit(net, batches):\n"
             "    opt = torch.optim.SGD(net.parameters(), lr=0.1)\n"
             "    fwd = lambda u, v: one_step(net, opt, u, v)\n"
             "    hist = 0.0\n"
             "    for a, b in batches:\n"
             f"        got = {call}\n"
             "        hist += got\n")
    assert findings(src, {"LL401"}) == [("LL401", line_of(src, "hist += got"))]


def test_ll401_silent_when_the_step_helper_returns_a_number():
    src = """\
    import torch
    def one_step(net, opt, a, b):
        opt.zero_grad()
        err = ((net(a) - b) ** 2).mean()
        err.backward()
        opt.step()
        out = err.item()
        return out
    def fit(net, batches):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        hist = 0.0
        for a, b in batches:
            got = one_step(net, opt, a, b)
            hist += got
    """
    assert findings(src, {"LL401"}) == []


# A loss rebound, before it is added, to what is read from a detached tensor: the total holds no graph
DETACHED_READS = ["{loss}.data[0]", "{loss}.data.cpu()[0]", "{loss}.data.cpu().numpy()[0]", "{loss}.detach().cpu()",
                  "{loss}.detach()[0]", "{loss}.item()", "float({loss})"]
# ... and what is read from the tensor itself: the graph comes along
GRAPH_READS = ["{loss}[0]", "{loss}.mean()", "{loss}.view(1)[0]", "{loss} * 2"]


def _rebound(value: str, loss: str, total: str) -> str:
    return f"""\
    import torch
    def fit(net, opt, batches):
        {total} = 0
        for a, b in batches:
            opt.zero_grad()
            {loss} = ((net(a) - b) ** 2).mean().view(1)
            {loss}.backward()
            opt.step()
            {loss} = {value.format(loss=loss)}
            {total} += {loss}
    """


@pytest.mark.parametrize("value", DETACHED_READS)
@pytest.mark.parametrize("loss, total", [("loss", "running"), ("cls_loss", "epoch_total")])
def test_ll401_silent_when_the_loss_is_rebound_to_a_read_of_a_detached_tensor(value, loss, total):
    assert findings(_rebound(value, loss, total), {"LL401"}) == []


@pytest.mark.parametrize("value", GRAPH_READS)
@pytest.mark.parametrize("loss, total", [("loss", "running"), ("cls_loss", "epoch_total")])
def test_ll401_when_the_loss_is_rebound_to_a_read_of_the_tensor_with_its_graph(value, loss, total):
    src = _rebound(value, loss, total)
    assert findings(src, {"LL401"}) == [("LL401", line_of(src, f"{total} += {loss}"))]


# -- LL403: a clip between this iteration's zeroing and its backward ---------------------------------------

ZEROINGS = {
    "module zero_grad": "net.zero_grad()",
    "grads set to None": "for w in net.parameters():\n            w.grad = None",
    "optimizer in a container": "state['optim'].zero_grad()",
}


@pytest.mark.parametrize("zeroing", sorted(ZEROINGS))
@pytest.mark.parametrize("helper", [False, True])
def test_ll403_clip_after_the_zeroing_and_before_backward(zeroing, helper):
    # the optimizer lives in a dict and the backward and step run in a helper handed the entry: one optimizer
    update = "        apply(state['optim'], cost)\n" if helper else "        cost.backward()\n        state['optim'].step()\n"
    src = ("import torch\n"
           "def apply(o, cost):\n"
           "    cost.backward()\n"
           "    o.step()\n"
           "def fit(net, batches):\n"
           "    state = {'optim': torch.optim.Adam(net.parameters())}\n"
           "    for a, b in batches:\n"
           f"        {ZEROINGS[zeroing]}\n"
           "        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)\n"
           "        cost = ((net(a) - b) ** 2).mean()\n" + update)
    assert findings(src, {"LL403"}) == [("LL403", line_of(src, "clip_grad_norm_"))]


def test_ll403_silent_when_one_of_two_optimizers_still_holds_gradients():
    # the module zero_grad clears the generator's optimizer only: the discriminator's still has gradients
    src = """\
    import torch
    def fit(gen, disc, batches):
        og = torch.optim.Adam(gen.parameters())
        od = torch.optim.Adam(disc.parameters())
        for a in batches:
            od.zero_grad()
            disc(gen(a).detach()).mean().backward()
            gen.zero_grad()
            torch.nn.utils.clip_grad_norm_(disc.parameters(), 1.0)
            od.step()
    """
    assert findings(src, {"LL403"}) == []
    # once the discriminator stepped too, nothing is left for the clip to act on
    late = src.replace("            torch.nn.utils.clip_grad_norm_(disc.parameters(), 1.0)\n            od.step()\n",
                       "            od.step()\n            torch.nn.utils.clip_grad_norm_(disc.parameters(), 1.0)\n")
    assert findings(late, {"LL403"}) == [("LL403", line_of(late, "clip_grad_norm_"))]


def test_ll403_a_step_skipped_by_an_exception_makes_no_micro_batch():
    # ``except RuntimeError`` around the step: the update skipped on purpose is no accumulation window
    src = """\
    import torch
    def fit(net, batches):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for a, b in batches:
            opt.zero_grad()
            ((net(a) - b) ** 2).mean().backward()
            torch.nn.utils.clip_grad_value_(net.parameters(), 0.5)
            try:
                opt.step()
            except RuntimeError:
                print("skipped")
    """
    assert findings(src, {"LL403"}) == []


# -- LL406 / LL407: the scaler's bookkeeping, wherever the optimizer, the scaler and the step live ---------

def _amp_program(gate: str, update: str, how: str) -> str:
    """An accumulation loop whose step function is reached ``how``; the optimizer is an entry of a list
    (handed to the factory or the partial as that entry)."""
    step = ("    def step(a, b, k):\n"
            "        (scaler.scale(((net(a) - b) ** 2).mean())).backward()\n"
            "        scaler.unscale_(opts[0])\n"
            "        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)\n"
            f"        if {gate}:\n"
            "            scaler.step(opts[0])\n"
            f"{update}"
            "            opts[0].zero_grad()\n")
    if how == "factory":
        return ("import torch\n"
                "def make(net, scaler, opt):\n" + step.replace("opts[0]", "opt") + "    return step\n"
                "def fit(net, batches):\n"
                "    opts = [torch.optim.SGD(net.parameters(), lr=0.1)]\n"
                "    scaler = torch.amp.GradScaler('cpu')\n"
                "    run = make(net, scaler, opts[0])\n"
                "    for k, (a, b) in enumerate(batches):\n"
                "        run(a, b, k)\n")
    if how == "partial":
        body = step.replace("    def step(a, b, k):", "def step(net, scaler, opt, a, b, k):").replace("opts[0]", "opt")
        body = "\n".join(line[4:] if i else line for i, line in enumerate(body.splitlines())) + "\n"
        return ("import functools\nimport torch\n" + body
                + "def fit(net, batches):\n"
                  "    opts = [torch.optim.SGD(net.parameters(), lr=0.1)]\n"
                  "    scaler = torch.amp.GradScaler('cpu')\n"
                  "    run = functools.partial(step, net, scaler, opts[0])\n"
                  "    for k, (a, b) in enumerate(batches):\n"
                  "        run(a, b, k)\n")
    return ("import torch\n"
            "def fit(net, batches):\n"
            "    opts = [torch.optim.SGD(net.parameters(), lr=0.1)]\n"
            "    scaler = torch.amp.GradScaler('cpu')\n" + step
            + "    for k, (a, b) in enumerate(batches):\n"
              "        step(a, b, k)\n")


@pytest.mark.parametrize("how", ["nested", "factory", "partial"])
def test_ll406_unscale_on_every_micro_batch(how):
    src = _amp_program("k % 4 == 3", "            scaler.update()\n", how)
    assert findings(src, {"LL406", "LL407"}) == [("LL406", line_of(src, "scaler.unscale_"))]


@pytest.mark.parametrize("how", ["nested", "factory", "partial"])
def test_ll407_scaler_update_missing(how):
    src = _amp_program("True", "", how)
    assert findings(src, {"LL406", "LL407"}) == [("LL407", line_of(src, "scaler.step"))]


def test_ll406_silent_when_the_step_and_update_may_raise():
    src = """\
    import torch
    def fit(net, batches):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler('cpu')
        for a, b in batches:
            opt.zero_grad()
            scaler.scale(((net(a) - b) ** 2).mean()).backward()
            scaler.unscale_(opt)
            try:
                scaler.step(opt)
                scaler.update()
            except RuntimeError:
                print("skipped")
    """
    assert findings(src, {"LL406", "LL407"}) == []


# -- LL402: a closure handed to step runs the forward of the module left in eval mode -----------------------

@pytest.mark.parametrize("closure", ["functools.partial(closure_fn, opt, net, a, b)",
                                     "lambda: closure_fn(opt, net, a, b)"])
def test_ll402_eval_at_epoch_end_with_a_bound_closure(closure):
    src = f"""\
    import functools
    import torch
    def closure_fn(o, m, a, b):
        o.zero_grad()
        cost = ((m(a) - b) ** 2).mean()
        cost.backward()
        return cost
    def fit(net, opt, batches, n):
        net.train()
        for epoch in range(n):
            for a, b in batches:
                opt.step({closure})
            net.eval()
    def main():
        net = torch.nn.Linear(2, 1)
        fit(net, torch.optim.SGD(net.parameters(), lr=0.1), [], 2)
    """
    assert findings(src, {"LL402"}) == [("LL402", line_of(src, "net.eval()"))]


# -- LL405: a loss scaled by the caller and backpropagated by a helper -----------------------------------------

BACKPROPS = {  # helper definitions, and how the scaled loss reaches it
    "positional": ("def backprop(l):\n    l.backward()\n", "backprop(scaled)"),
    "keyword, other names": ("def run_backward(model, objective=None):\n    objective.backward()\n",
                             "run_backward(model, objective=scaled)"),
    "scaled in the call": ("def backprop(l):\n    l.backward()\n", "backprop(scaler.scale(loss))"),
}


SCALED_LOOP = """\
import torch
{definitions}

def train(model, loader):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler()
    for x in loader:
        opt.zero_grad()
        loss = model(x).sum()
        scaled = scaler.scale(loss)
        {call}
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
"""


@pytest.mark.parametrize("shape", sorted(BACKPROPS))
def test_a_helper_backpropagating_a_scaled_loss_runs_a_scaled_backward(shape):
    definitions, call = BACKPROPS[shape]
    src = SCALED_LOOP.format(definitions=definitions, call=call)
    clip = line_of(src, "clip_grad_norm_")
    assert findings(src, {"LL405"}) == [("LL405", clip)]
    unscaled = src.replace("        torch.nn.utils.clip", "        scaler.unscale_(opt)\n        torch.nn.utils.clip")
    assert findings(unscaled, {"LL405"}) == []
    # a call that passes an unscaled loss too: the helper's backward is not always scaled, nothing is said
    plain = call.replace("scaled", "loss").replace("scaler.scale(loss)", "loss")
    twice = src.replace(f"        {call}\n", f"        {call}\n        {plain}\n")
    assert findings(twice, {"LL405"}) == []


# -- LL403: a clip of the optimizer's own parameters (apex's ``amp.master_params(optimizer)``) on every
# micro-batch is the same partial-sum clip as one of ``model.parameters()``; reading the optimizer's
# parameters does nothing to its gradients

APEX_ACCUMULATION = """\
import torch
from apex import amp


def train(model, optimizer, loader, accumulation):
    for step, batch in enumerate(loader):
        loss = model(batch).mean() / accumulation
{backward}
{clip_here}        if (step + 1) % accumulation == 0:
{clip_there}            optimizer.step()
            optimizer.zero_grad()
"""
BACKWARDS = {
    "apex": "        with amp.scale_loss(loss, optimizer) as scaled_loss:\n            scaled_loss.backward()",
    "plain": "        loss.backward()",
}
CLIPPED = ("amp.master_params(optimizer)", "model.parameters()")


@pytest.mark.parametrize("backward", sorted(BACKWARDS))
@pytest.mark.parametrize("params", CLIPPED)
def test_ll403_clip_of_the_optimizers_parameters_on_every_micro_batch(backward, params):
    clip = f"torch.nn.utils.clip_grad_norm_({params}, 1.0)"
    src = APEX_ACCUMULATION.format(backward=BACKWARDS[backward], clip_here=f"        {clip}\n", clip_there="")
    found = [(d.code, d.line) for d in lint_source(src, "t.py") if d.code == "LL403"]
    assert found == [("LL403", src.splitlines().index(f"        {clip}") + 1)], src
    good = APEX_ACCUMULATION.format(backward=BACKWARDS[backward], clip_here="", clip_there=f"            {clip}\n")
    assert [d.code for d in lint_source(good, "t.py") if d.code == "LL403"] == [], good
