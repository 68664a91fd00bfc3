"""An ``eval()`` under a test that holds only on the last iteration of the batch loop (``if i == len(loader)
- 1:``) has no next batch after it: the loop ends (``loops.runs_on_last_iteration``, ``FileModel.last_iteration``;
the interpreter takes no back edge from a path through that arm). With ``model.train()`` at the top of the
next epoch nothing trains in eval mode. A test that holds on other iterations too still leaks."""
import pytest

from looplint.engine import lint_source

PROGRAM = """\
import torch
from torch import nn
from tqdm import tqdm

{helper}

def {fit}({model}, opt, {loader}, epochs):
    for epoch in range(epochs):
        {model}.train()
        {setup}
        for {header}:
            x, y = {batch}
            loss = nn.functional.cross_entropy({model}(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if {test}:
                {evaluate}
"""

HELPER = """\
def check({model}, {loader}):
    {model}.eval()
    total = 0.0
    with torch.no_grad():
        for x, y in {loader}:
            total += nn.functional.cross_entropy({model}(x), y).item()
    return total
"""

# (setup, loop header, the batch, the last-iteration test)
LOOPS = {
    "enumerate": ("pass", "i, b in enumerate({loader})", "b", "i == len({loader}) - 1"),
    "enumerate_plus_one": ("pass", "i, b in enumerate({loader})", "b", "i + 1 == len({loader})"),
    "listed_tqdm": ("steps = list(enumerate({loader}))\n        bar = tqdm(steps)", "i, b in bar", "b",
                    "i == len(steps) - 1"),
    "range_len": ("pass", "k in range(len({loader}))", "{loader}[k]", "k == len({loader}) - 1"),
    "range_n": ("n = len({loader})", "k in range(n)", "{loader}[k]", "n - 1 == k"),
}
EVALUATE = {
    "inline": "{model}.eval()\n                print(sum(float({model}(x).sum()) for x, _ in {loader}))",
    "helper": "print(check({model}, {loader}))",
}
NAMES = [("fit", "model", "loader"), ("train_net", "net", "batches")]


def codes(kind, evaluate, names, test=None):
    fit, model, loader = names
    setup, header, batch, last = LOOPS[kind]
    f = dict(model=model, loader=loader)
    source = PROGRAM.format(helper=HELPER.format(**f), fit=fit, model=model, loader=loader,
                            setup=setup.format(**f), header=header.format(**f), batch=batch.format(**f),
                            test=(test or last).format(**f), evaluate=EVALUATE[evaluate].format(**f))
    return sorted(d.code for d in lint_source(source, "t.py"))


@pytest.mark.parametrize("kind", sorted(LOOPS))
@pytest.mark.parametrize("evaluate", sorted(EVALUATE))
@pytest.mark.parametrize("names", NAMES)
def test_an_eval_on_the_last_batch_only(kind, evaluate, names):
    assert codes(kind, evaluate, names) == []


@pytest.mark.parametrize("test", ["i % 10 == 0", "i == len({loader}) - 2", "epoch == len({loader}) - 1"])
@pytest.mark.parametrize("evaluate", sorted(EVALUATE))
@pytest.mark.parametrize("names", NAMES)
def test_an_eval_on_other_batches_still_leaks(test, evaluate, names):
    assert codes("enumerate", evaluate, names, test) == ["LL402"]
