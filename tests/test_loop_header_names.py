"""A loop over a name is read through what the name is bound to. ``with trange(n_iters) as bar: for _ in
bar:`` counts ``n_iters``, as ``for _ in trange(n_iters):`` does: a scheduler sized in ``n_iters`` and
stepped once per pass of that loop steps as often as it was sized (it was reported as LL202 on mammoth,
never used here). A loop over ``n_epochs`` passes, bound the same way, around a per-step schedule still
steps it once per epoch (LL202).

Checked on variants: ``with ... as`` or a plain assignment, ``trange(n)`` or ``tqdm(range(n))``, two count
names."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

PROGRAM = """import torch
from tqdm import tqdm, trange


def fit(net, data, {count}, lr):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = {sched}
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
{header}
        for xb in loader:
            opt.zero_grad()
            net(xb).pow(2).mean().backward()
            opt.step()
        sched.step()
"""
WRAPS = {"trange": "trange({count})", "tqdm": "tqdm(range({count}))"}
BINDS = {"with": "    with {wrap} as bar:\n      for _ in bar:", "assign": "    bar = {wrap}\n    for _ in bar:"}
WARM_RESTARTS = "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0={count} // 10, T_mult=2)"


def program(count, wrap, bind, sched):
    header = BINDS[bind].format(wrap=WRAPS[wrap].format(count=count))
    return PROGRAM.format(count=count, sched=sched.format(count=count), header=header)


@pytest.mark.parametrize("count", ["n_iters", "max_steps"])
@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("bind", BINDS)
def test_a_loop_over_a_name_counts_what_the_name_counts(count, wrap, bind):
    assert [d.code for d in lint_source(program(count, wrap, bind, WARM_RESTARTS), "t.py")] == []


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("bind", BINDS)
def test_epochs_bound_the_same_way_still_step_a_per_step_schedule_once_per_epoch(wrap, bind):
    sched = "torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=1000)"
    assert [d.code for d in lint_source(program("n_epochs", wrap, bind, sched), "t.py")] == ["LL202"]
