"""LL112 and its model (looplint/model/graphs.py): a backpropagated loss without autograd history that was
forced to require grad. Each test states a program and where the rule must (or must not) report."""
import textwrap

import pytest

from looplint.engine import lint_source
from looplint.rule import rule_by_code

HEADER = """\
import torch
from torch import nn
from torch.autograd import Variable
import torch.nn.functional as F
model = nn.Linear(4, 1)
criterion = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = torch.utils.data.DataLoader([])
"""


def findings(body: str, code: str = "LL112"):
    src = HEADER + textwrap.dedent(body)
    lines = src.splitlines()
    return [(d.line, lines[d.line - 1].strip()) for d in lint_source(src, "t.py", rules=[rule_by_code(code)])]


@pytest.mark.parametrize("body, forced", [
    # the forward pass under no_grad, the loss forced (other names, other spellings)
    ("""
    for x, y in loader:
        with torch.no_grad():
            out = model(x)
        cost = criterion(out, y)
        cost.requires_grad = True
        cost.backward()
        optimizer.step()
    """, "cost.requires_grad = True"),
    ("""
    for x, y in loader:
        with torch.inference_mode():
            pred = model(x)
        l = F.mse_loss(pred, y)
        l.requires_grad_(True)
        l.backward()
        optimizer.step()
    """, "l.requires_grad_(True)"),
    # detached outputs
    ("""
    for x, y in loader:
        out = model(x).detach()
        loss = criterion(out, y)
        if not loss.requires_grad:
            loss.requires_grad = True
        loss.backward()
        optimizer.step()
    """, "loss.requires_grad = True"),
    # a Python number made a tensor again
    ("""
    for x, y in loader:
        value = criterion(model(x), y).item()
        loss = torch.tensor(value, requires_grad=True)
        (loss / 4).backward()
        optimizer.step()
    """, "loss = torch.tensor(value, requires_grad=True)"),
    ("""
    for x, y in loader:
        with torch.no_grad():
            loss = criterion(model(x), y)
        loss = Variable(loss, requires_grad=True)
        loss.backward()
        optimizer.step()
    """, "loss = Variable(loss, requires_grad=True)"),
    # other nesting: a method of a trainer, the no_grad block around the whole step
    ("""
    class Trainer:
        def __init__(self):
            self.net = nn.Linear(3, 1)
            self.opt = torch.optim.Adam(self.net.parameters())
            self.crit = nn.SmoothL1Loss()

        def step(self, x, y):
            with torch.no_grad():
                out = self.net(x)
                loss = self.crit(out, y)
            loss.requires_grad_()
            loss.backward()
            self.opt.step()
    """, "loss.requires_grad_()"),
])
def test_forced_loss_without_history_is_reported_at_the_forcing(body, forced):
    assert [text for _, text in findings(body)] == [forced]


@pytest.mark.parametrize("body", [
    # the loss has a history: forcing is a no-op (or an error), not this bug
    """
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.requires_grad = True
        loss.backward()
        optimizer.step()
    """,
    # one term without history, one through the model
    """
    for x, y in loader:
        with torch.no_grad():
            teacher = model(x)
        loss = criterion(teacher, y)
        loss.requires_grad_()
        (loss + criterion(model(x), y)).backward()
        optimizer.step()
    """,
    # gradients re-enabled inside the no_grad block
    """
    with torch.no_grad():
        for x, y in loader:
            with torch.enable_grad():
                loss = criterion(model(x), y)
            loss.requires_grad_()
            loss.backward()
            optimizer.step()
    """,
    # a loss handed in by a caller, or built by a helper looplint cannot see
    """
    def update(loss):
        loss.requires_grad = True
        loss.backward()
        optimizer.step()
    """,
    """
    from helpers import compute_loss
    for x, y in loader:
        loss = compute_loss(model, x, y)
        loss.requires_grad_()
        loss.backward()
        optimizer.step()
    """,
    # the forced tensor is the input of a saliency map, not the loss
    """
    for x, y in loader:
        x = x.detach().requires_grad_()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    """,
    # a learned tensor the optimizer holds
    """
    w = torch.zeros(4, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    for x, y in loader:
        with torch.no_grad():
            target = model(x)
        loss = criterion(x @ w, target)
        loss.backward()
        opt.step()
    """,
])
def test_losses_with_history_or_unknown_provenance_are_silent(body):
    assert findings(body) == []


@pytest.mark.parametrize("body, backward", [
    # the whole step under no_grad (loss inside the block)
    ("""
    for x, y in loader:
        with torch.no_grad():
            loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    """, "loss.backward()"),
    # the forward under inference_mode, the loss outside, written target first
    ("""
    def train(net, batches, opt):
        for inputs, targets in batches:
            with torch.inference_mode():
                preds = net(inputs)
            err = (targets - preds).pow(2).mean()
            opt.zero_grad()
            err.backward()
            opt.step()
    train(model, loader, optimizer)
    """, "err.backward()"),
    # a helper decorated with no_grad, a scaled backward
    ("""
    scaler = torch.amp.GradScaler()
    @torch.no_grad()
    def predict(x):
        return model(x)
    for x, y in loader:
        loss = F.mse_loss(predict(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    """, "scaler.scale(loss).backward()"),
    # outputs taken through .detach() / .data, backpropagated by an accelerator
    ("""
    from accelerate import Accelerator
    accelerator = Accelerator()
    for x, y in loader:
        out = model(x).data
        loss = criterion(out, y)
        accelerator.backward(loss)
        optimizer.step()
    """, "accelerator.backward(loss)"),
])
def test_loss_cut_from_the_graph_is_reported_at_the_backward(body, backward):
    assert [text for _line, text in findings(body)] == [backward]


@pytest.mark.parametrize("body", [
    # distillation: only the teacher's output under no_grad
    """
    teacher = nn.Linear(4, 1)
    for x, y in loader:
        with torch.no_grad():
            soft = teacher(x)
        loss = criterion(model(x), soft) + criterion(model(x), y)
        loss.backward()
        optimizer.step()
    """,
    # EMA and metrics under no_grad, after the backward
    """
    ema = nn.Linear(4, 1)
    for x, y in loader:
        out = model(x)
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters()):
                pe.mul_(0.9).add_(p, alpha=0.1)
            metric = criterion(out, y)
    """,
    # a detached term next to a term that carries the graph
    """
    for x, y in loader:
        out = model(x)
        loss = criterion(out, y) - 0.1 * out.detach().mean()
        loss.backward()
        optimizer.step()
    """,
    # the loss computed inside enable_grad within a no_grad block
    """
    with torch.no_grad():
        for x, y in loader:
            with torch.enable_grad():
                loss = criterion(model(x), y)
                loss.backward()
            optimizer.step()
    """,
    # data and constants only: no model to cut away
    """
    for x, y in loader:
        loss = (y - y.mean()).pow(2).mean()
        loss.backward()
        optimizer.step()
    """,
])
def test_no_grad_blocks_that_leave_the_loss_its_graph_are_silent(body):
    assert findings(body) == []


def test_no_optimizer_means_no_training_to_spoil():
    src = textwrap.dedent("""
        import torch
        model = torch.nn.Linear(2, 1)
        with torch.no_grad():
            score = model(torch.randn(1, 2)).sum()
        score.requires_grad_()
        score.backward()
    """)
    assert lint_source(src, "t.py", rules=[rule_by_code("LL112")]) == []


@pytest.mark.parametrize("body, forced", [
    # the batch drawn through a counter zip, an iterator bound before the loop, a loader's dataset sliced
    ("""
    import itertools
    for step, (inputs, labels) in zip(itertools.count(), loader):
        with torch.no_grad():
            logits = model(inputs)
        cost = criterion(logits, labels)
        cost.requires_grad = True
        cost.backward()
        optimizer.step()
    """, "cost.requires_grad = True"),
    ("""
    it = iter(loader)
    for k in range(len(loader)):
        xb, yb = next(it)
        pred = model(xb).detach()
        loss = F.l1_loss(pred, yb)
        loss.requires_grad_()
        loss.backward()
        optimizer.step()
    """, "loss.requires_grad_()"),
    # a loss helper of this module, and the backward in a helper the loss is handed to
    ("""
    def smooth_l1(pred, target, beta=1.0):
        diff = (pred - target).abs()
        return torch.where(diff < beta, 0.5 * diff ** 2 / beta, diff - 0.5 * beta).mean()

    def update(opt, value):
        value.backward()
        opt.step()
        opt.zero_grad()

    for x, y in loader:
        with torch.no_grad():
            out = model(x)
        loss = smooth_l1(out, y)
        loss.requires_grad = True
        update(optimizer, loss)
    """, "loss.requires_grad = True"),
    # the batch and the loss module handed to a step function by its only caller
    ("""
    def train_step(net, loss_fn, opt, xb, yb):
        with torch.no_grad():
            out = net(xb)
        loss = loss_fn(out, yb)
        loss.requires_grad_()
        loss.backward()
        opt.step()

    mse = nn.MSELoss()
    for xb, yb in loader:
        train_step(model, mse, optimizer, xb, yb)
    """, "loss.requires_grad_()"),
])
def test_batches_helpers_and_callers_are_followed(body, forced):
    assert [text for _, text in findings(body)] == [forced]


@pytest.mark.parametrize("body", [
    # the helper returns what the model computes: the loss has a history
    """
    def compute(net, xb, yb):
        return F.mse_loss(net(xb), yb)

    for x, y in loader:
        loss = compute(model, x, y)
        loss.requires_grad_()
        loss.backward()
        optimizer.step()
    """,
    # a target that a caller computes with the model, handed to the step
    """
    def train_step(xb, target):
        with torch.no_grad():
            out = model(xb)
        loss = criterion(out, target)
        loss.requires_grad_()
        loss.backward()
        optimizer.step()

    for x, y in loader:
        train_step(x, model(x))
    """,
    # batches zipped with something that is not data
    """
    for (x, y), w in zip(loader, model.parameters()):
        with torch.no_grad():
            out = model(x)
        loss = criterion(out, y * w.sum())
        loss.requires_grad = True
        loss.backward()
        optimizer.step()
    """,
])
def test_helpers_and_callers_with_history_are_silent(body):
    assert findings(body) == []
