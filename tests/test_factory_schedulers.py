"""A scheduler a same-module factory builds over the optimizer it is handed is tied to the optimizer the
call hands it (looplint.model.roles.Roles.handed_argument, read by schedulers.optimizer_of), also when the
factory returns ``None`` on another path (a constant rate: ``Roles._factory_result`` reads the object the
other returns build). So ``self.gen_sched = make_sched(self.gen_opt, cfg)``, stepped at the top of the
iteration before ``self.gen_opt.step()``, is LL203 as the inline ``StepLR(self.gen_opt, ...)`` is."""

import textwrap

import pytest

from looplint.engine import lint_source
from looplint.rule import all_rules

PROGRAM = """\
import torch
import torch.nn as nn
from torch.optim import lr_scheduler


def {make}({param}, cfg{extra}):
    {none}return lr_scheduler.StepLR({param}, step_size=cfg["step"], gamma=0.1)


class Trainer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gen = nn.Linear(4, 4)
        self.dis = nn.Linear(4, 1)
        self.gen_opt = torch.optim.Adam(self.gen.parameters(), lr=1e-3)
        self.dis_opt = torch.optim.Adam(self.dis.parameters(), lr=1e-3)
        self.gen_sched = {make}({call_gen})
        self.dis_sched = {make}({call_dis})

    def update(self, x):
        self.dis_opt.zero_grad()
        self.dis(self.gen(x).detach()).mean().backward()
        self.dis_opt.step()
        self.gen_opt.zero_grad()
        (-self.dis(self.gen(x)).mean()).backward()
        self.gen_opt.step()

    def update_learning_rate(self):
        if self.gen_sched is not None:
            self.gen_sched.step()
        if self.dis_sched is not None:
            self.dis_sched.step()


trainer = Trainer({{"step": 2}})
for it, x in enumerate([torch.randn(8, 4)] * 4):
    {before}
    trainer.update(x)
    {after}
"""

CALLS = {
    "positional": ("self.gen_opt, cfg", "self.dis_opt, cfg"),
    "keywords": ("cfg=cfg, {param}=self.gen_opt", "{param}=self.dis_opt, cfg=cfg"),
}
FACTORIES = [("make_sched", "optimizer", "", ""), ("get_scheduler", "opt", ", last=-1", ""),
             ("build_lr", "optim", "", "if cfg.get(\"policy\") == \"constant\":\n        return None\n    ")]


def codes(factory, calls, before, after):
    make, param, extra, none = factory
    gen, dis = (c.format(param=param) for c in calls)
    source = PROGRAM.format(make=make, param=param, extra=extra, none=none, call_gen=gen, call_dis=dis,
                            before=before, after=after)
    return sorted(d.code for d in lint_source(source, "train.py", all_rules()) if d.code.startswith("LL2"))


@pytest.mark.parametrize("factory", FACTORIES, ids=[f[0] for f in FACTORIES])
@pytest.mark.parametrize("calls", CALLS.values(), ids=list(CALLS))
def test_a_scheduler_a_factory_builds_is_stepped_before_its_optimizer(factory, calls):
    assert codes(factory, calls, "trainer.update_learning_rate()", "pass") == ["LL203", "LL203"]


@pytest.mark.parametrize("factory", FACTORIES, ids=[f[0] for f in FACTORIES])
@pytest.mark.parametrize("calls", CALLS.values(), ids=list(CALLS))
def test_a_scheduler_a_factory_builds_stepped_after_its_optimizer_is_fine(factory, calls):
    assert codes(factory, calls, "pass", "trainer.update_learning_rate()") == []
