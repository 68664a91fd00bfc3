"""An optimizer built on a few chosen iterations of the training loop only (``if epoch == 0:``, ``elif epoch
in milestones:``: a learning-rate schedule written as new optimizers) is not one built on every pass
(looplint.model.loops.runs_on_few_iterations, FileModel.runs_on_few_iterations, read by LL107). A test
that holds on every iteration, on a period, or on values the loop changes leaves the finding."""

import textwrap

import pytest

from looplint.engine import lint_source
from looplint.rule import all_rules

PROGRAM = """\
import torch
import torch.nn as nn
import torch.optim as optim

{net} = nn.Linear(4, 2)
data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(3)]
milestones = (3, 6)
n_epochs = 8
for {header}:
    {extra}if {test}:
        {opt} = optim.SGD({net}.parameters(), lr=0.1, momentum=0.9)
    for x, y in data:
        {opt}.zero_grad()
        loss = nn.functional.cross_entropy({net}(x), y)
        loss.backward()
        {opt}.step()
"""

# (the loop header, its index)
HEADERS = [("{i} in range(n_epochs)", "{i}"), ("{i} in range(1, n_epochs + 1)", "{i}"),
           ("{i}, _ in enumerate(range(n_epochs))", "{i}")]
FEW = ["{i} == 0", "0 == {i}", "{i} is 0", "{i} == n_epochs // 2", "{i} == len(data) - 1", "{i} in (3, 6)", "{i} in milestones"]
EVERY = ["{i} % 2 == 0", "n_epochs > 4", "{i} >= 0", "{i} == later"]
NAMES = [("epoch", "model", "optimizer"), ("ep", "net", "opt")]


def findings(header, test, names, extra=""):
    i, net, opt = names
    source = PROGRAM.format(header=header.format(i=i), test=test.format(i=i), net=net, opt=opt, extra=extra)
    return sorted(d.code for d in lint_source(source, "train.py", all_rules()) if d.code == "LL107")


@pytest.mark.parametrize("header, _index", HEADERS)
@pytest.mark.parametrize("test", FEW)
@pytest.mark.parametrize("names", NAMES)
def test_an_optimizer_built_on_chosen_iterations_is_not_built_on_every_pass(header, _index, test, names):
    assert findings(header, test, names) == []


@pytest.mark.parametrize("header, _index", HEADERS)
@pytest.mark.parametrize("test", EVERY)
@pytest.mark.parametrize("names", NAMES)
def test_an_optimizer_built_on_every_pass_or_a_period_is_reported(header, _index, test, names):
    extra = "later = {i} + 1\n    ".format(i=names[0])  # a value the loop changes: every iteration may match
    assert findings(header, test, names, extra) == ["LL107"]


def test_an_elif_picks_iterations_too():
    source = textwrap.dedent("""\
        import torch
        import torch.nn as nn
        import torch.optim as optim

        model = nn.Linear(4, 2)
        data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(3)]
        for epoch in range(8):
            if epoch == 0:
                opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            elif epoch == 4:
                opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            for x, y in data:
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        """)
    assert [d.code for d in lint_source(source, "train.py", all_rules()) if d.code == "LL107"] == []


LOOPS = {
    "a batch loop inside the chosen epoch": """\
        for epoch in range(8):
            for x, y in data:
                if epoch == 0:
                    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        """,
}


@pytest.mark.parametrize("loop", LOOPS.values(), ids=list(LOOPS))
def test_a_test_of_an_outer_loop_picks_no_iterations_of_the_inner_one(loop):
    source = textwrap.dedent("""\
        import torch
        import torch.nn as nn
        import torch.optim as optim

        model = nn.Linear(4, 2)
        data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(3)]
        """) + textwrap.dedent(loop)
    assert [d.code for d in lint_source(source, "train.py", all_rules()) if d.code == "LL107"] == ["LL107"]
