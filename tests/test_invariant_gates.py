"""LL203 and a setting around the scheduler step: ``if args.use_lr_decay: scheduler.step()`` at the top of
each epoch takes the same arm on every epoch (``FileModel.varies_in``), so when it steps it steps before
the optimizer, as without the ``if``. A test that may change from one epoch to the next (``if epoch >
0:``, a flag the loop rebinds, a call) may skip the first epoch: not reported."""
import pytest

from looplint.engine import lint_source

PROGRAM = """\
import torch
from torch import nn, optim


def {fit}(net, loader, epochs, cfg{param}):
    opt = optim.SGD(net.parameters(), lr=0.1)
    {sched} = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)
    for epoch in range(epochs):
        {before}
        if {test}:
            {sched}.step()
        for x, y in loader:
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(x), y)
            loss.backward()
            opt.step()
"""

SETTINGS = {  # (parameter, statement before the test, test)
    "argument": ("", "pass", "cfg.use_lr_decay"),
    "subscript": ("", "pass", "cfg['decay']"),
    "parameter": (", decay=True", "pass", "decay"),
    "negated": ("", "pass", "not cfg.constant_lr"),
}
VARYING = {
    "epoch": ("", "pass", "epoch > 0"),
    "rebound": ("", "warm = epoch >= cfg.warmup", "warm"),
    "call": ("", "pass", "cfg.should_decay()"),
}
NAMES = [("fit", "scheduler"), ("train_model", "decay")]


def codes(parts, fit, sched):
    param, before, test = parts
    source = PROGRAM.format(fit=fit, sched=sched, param=param, before=before, test=test)
    return sorted(d.code for d in lint_source(source, "t.py"))


@pytest.mark.parametrize("kind", sorted(SETTINGS))
@pytest.mark.parametrize("fit, sched", NAMES)
def test_a_setting_takes_the_same_arm_every_epoch(kind, fit, sched):
    assert codes(SETTINGS[kind], fit, sched) == ["LL203"]


@pytest.mark.parametrize("kind", sorted(VARYING))
@pytest.mark.parametrize("fit, sched", NAMES)
def test_a_test_that_may_change_may_skip_the_first_epoch(kind, fit, sched):
    assert codes(VARYING[kind], fit, sched) == []
