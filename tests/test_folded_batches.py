"""A value folded over every batch is no leftover of the last one (LL109). ``stacked = torch.cat([stacked,
out])`` in the data loop, with ``stacked`` bound before it, collects every batch; a backward after the loop
on it trains on all of them (it was reported on DomainBed, never used here). The loop's own variables and
names first bound inside the loop still leak.

Checked on variants: the fold written as ``torch.cat`` of a list or a tuple, a sum, a running mix; started
from ``None`` (first batch taken in an ``if``) or a value; two sets of names."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

FOLDS = {
    "cat_list": ("None", "{acc} = {out} if {acc} is None else torch.cat([{acc}, {out}], dim=0)"),
    "cat_tuple": ("torch.zeros(0, 1)", "{acc} = torch.cat(({acc}, {out}))"),
    "sum": ("0.0", "{acc} = {acc} + {out}.sum()"),
    "mix": ("0.0", "{acc} = 0.9 * {acc} + {out}.mean()"),
}
NAMES = ({"acc": "stacked", "out": "per_item", "x": "x", "y": "y", "loader": "minibatches"},
         {"acc": "all_preds", "out": "pred", "x": "inputs", "y": "targets", "loader": "batches"})


def program(fold: str, n: dict, loss: str = "{acc}.mean()") -> str:
    start, step = FOLDS[fold]
    return f"""import torch


def update(net, optimizer, {n['loader']}):
    {n['acc']} = {start}
    for {n['x']}, {n['y']} in {n['loader']}:
        {n['out']} = (net({n['x']}) - {n['y']}).pow(2)
        {step.format(**n)}
    loss = {loss.format(**n)}
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("fold", FOLDS)
def test_a_fold_over_every_batch_is_no_leak(fold, names):
    assert [d.code for d in lint_source(program(fold, names), "t.py")] == []


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("fold", FOLDS)
def test_the_last_batch_still_leaks(fold, names):
    """The backward reads the loop's target (``y``) or a name first bound in the loop (the last ``out``)."""
    for loss in ("({acc} - {y}.sum()).mean()", "{out}.mean()"):
        assert [d.code for d in lint_source(program(fold, names, loss), "t.py")] == ["LL109"], loss


@pytest.mark.parametrize("names", NAMES)
def test_a_name_transformed_in_place_each_iteration_leaks(names):
    """``h = h.float()`` reads itself, but ``h`` is first bound in the loop: the last batch's value."""
    n = names
    src = f"""import torch


def update(net, optimizer, {n['loader']}):
    for batch in {n['loader']}:
        {n['x']} = batch[0]
        {n['x']} = {n['x']}.float()
    loss = net({n['x']}).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""
    assert [d.code for d in lint_source(src, "t.py")] == ["LL109"]
