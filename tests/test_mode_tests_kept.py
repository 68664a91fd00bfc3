"""Tests that set a module's mode are kept however many paths meet. ``if cfg.two: aux.eval()`` and, after
an evaluation helper, ``if cfg.two: aux.train()`` test one setting: both arms run or neither does. Paths
that differ in what they assumed before (a restore helper's tests, a periodic evaluation, a scheduler
stepped for one optimizer kind) enter the helpers in more than ``MAX_ENTRIES`` ways, and the interpreter
then forgets what those paths assumed; it used to forget the setting too and report the impossible path
that puts ``aux`` in eval mode and never back (a false LL402 on research code never used here).

Checked on two sets of names; controls: the mode restored under another setting leaks (LL402)."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

NAMES = ({"aux": "aux", "cfg": "cfg", "flag": "two", "res": "res", "score": "score", "net": "net"},
         {"aux": "discr_src", "cfg": "args", "flag": "use_discr", "res": "evaluator", "score": "log_likelihood",
          "net": "classifier"})

TEMPLATE = """import torch


class Meter:
    def add(self, val, n=1):
        pass


def restore(names, ckpt):
    if ckpt:
        for name in names:
            if hasattr(model, "eval"):
                model.eval()


def {score}(frame, loader, k):
    meter = Meter()
    for x, y in loader:
        meter.add(frame.llh(x, k), n=len(x))


class Results:
    def evaluate(self, net, loader):
        if self.frame is not None and self.{cfg}.use_llh:
            {score}(self.frame, loader, self.{cfg}.k)


def main({cfg}, ckpt, {aux}, {net}, frame, train_loader, val_loader, test_loader, single):
    opt = torch.optim.SGD({aux}.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0)
    restore("opt", ckpt)
    {res} = Results(frame, {cfg})
    for epoch in range({cfg}.epochs):
        for i, batch in enumerate(train_loader):
            opt.zero_grad()
            {aux}(batch).sum().backward()
            opt.step()
            if {cfg}.optim == "SGD":
                sched.step()
        if epoch % {cfg}.every == 0:
            if {cfg}.{flag}:
                {aux}.eval()
            {res}.evaluate({aux}, val_loader)
            if single:
                pass
            else:
                {res}.evaluate({net}, test_loader)
            if {cfg}.{restore_flag}:
                {aux}.train()
"""


@pytest.mark.parametrize("names", NAMES)
def test_the_setting_that_sets_eval_mode_also_restores_it(names):
    src = TEMPLATE.format(**names, restore_flag=names["flag"])
    assert [d.code for d in lint_source(src, "t.py")] == []


@pytest.mark.parametrize("names", NAMES)
def test_train_mode_restored_under_another_setting_leaks(names):
    src = TEMPLATE.format(**names, restore_flag="other_" + names["flag"])
    assert [d.code for d in lint_source(src, "t.py")] == ["LL402"]
