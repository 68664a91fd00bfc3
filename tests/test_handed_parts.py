"""A module holds what it was handed when built (looplint.model.roles.Roles.handed_parts, read by the mode
analysis): ``pair = Pair(teacher, student)`` whose ``__init__`` keeps ``self.student = student`` sets
``student``'s mode with its own, as ``nn.Module.train()``/``eval()`` set every child's. So ``pair.train()``
(at the loop, or in a helper handed ``pair``) undoes ``student.eval()``, and ``pair.eval()`` leaves the
student the optimizer trains in eval mode (LL402). A module the class builds itself, a copy of what it was
handed, or a module it was not handed is not the outside one."""

import textwrap

import pytest

from looplint.engine import lint_source
from looplint.rule import all_rules

PROGRAM = """\
import copy

import torch
import torch.nn as nn
import torch.optim as optim


class {Pair}(nn.Module):
    def __init__(self, {first}, {second}):
        super().__init__()
        self.{a} = {first}
        self.{b} = {keep}

    def forward(self, x):
        return self.{b}(x), self.{a}(x)


def fit({w}, loader):
    {restore}
    for x, y in loader:
        opt.zero_grad()
        out, _ = {w}(x)
        nn.functional.cross_entropy(out, y).backward()
        opt.step()


{t} = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
{s} = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
pair = {Pair}({made})
data = [(torch.randn(8, 4), torch.randint(0, 4, (8,))) for _ in range(3)]
opt = optim.SGD({s}.parameters(), lr=0.1)
for epoch in range(3):
    {top}
    fit(pair, data)
    {leave}
"""

NAMES = [
    dict(Pair="Pair", first="teacher", second="student", a="teacher", b="student", t="teacher", s="student", w="wrapper"),
    dict(Pair="Distiller", first="t_net", second="s_net", a="t", b="inner", t="big", s="small", w="model"),
]
# how the pair is built: positional, keywords
MADE = ["{t}, {s}", "{first}={t}, {second}={s}"]


def codes(names, made, keep="{second}", restore="pass", top="pass", leave="{s}.eval()"):
    values = dict(names, made=made.format(**names), keep=keep.format(**names))
    values.update(restore=restore.format(**values), top=top.format(**values), leave=leave.format(**values))
    source = PROGRAM.format(**values)
    return sorted(d.code for d in lint_source(source, "train.py", all_rules()) if d.code == "LL402")


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("made", MADE)
@pytest.mark.parametrize("where", ["helper", "loop"])
def test_training_the_container_trains_what_it_was_handed(names, made, where):
    restore = "{w}.train()" if where == "helper" else "pass"
    top = "pair.train()" if where == "loop" else "pass"
    assert codes(names, made, restore=restore, top=top) == []


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("made", MADE)
def test_evaluating_the_container_leaves_what_it_was_handed_in_eval_mode(names, made):
    assert codes(names, made, leave="pair.eval()") == ["LL402"]


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("keep", ["nn.Linear(4, 4)", "copy.deepcopy({second})", "{first}"],
                         ids=["built by the class", "a copy", "the other one"])
def test_a_container_that_does_not_hold_the_trained_module_does_not_train_it(names, keep):
    assert codes(names, MADE[0], keep=keep, restore="{w}.train()") == ["LL402"]
