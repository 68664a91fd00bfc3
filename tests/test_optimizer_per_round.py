"""One training run per round, each with its own optimizer, is no optimizer rebuilt per epoch (LL107). A
continual-learning script calls ``fit_task(net, data_of_task, n_iters)`` once per task; ``fit_task`` builds
Adam and runs ``for it in range(n_iters):`` itself, the whole run of that task (reported on a continual
learning tutorial never used here, three times). The loop over tasks is an epoch loop only by what it
runs. A loop that says it is one (``for epoch in range(...)``) around the same call, or around a function
that makes one pass over a loader, still rebuilds the optimizer every epoch.

Checked on variants: the rounds written over indices or items, the run's loop over ``n_iters`` or
``max_steps``, two sets of names."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

RUN = """import torch


def {fit}(net, data, {count}, lr):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for {it} in range({count}):
        if {it} % len(data) == 0:
            batches = iter(torch.utils.data.DataLoader(data, batch_size=32, shuffle=True))
        xb, yb = next(batches)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()


def estimate_importance(net, data):
    for xb, yb in torch.utils.data.DataLoader(data, batch_size=1):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(xb), yb).backward()


net = torch.nn.Linear(10, 4)
{sets} = [torch.utils.data.TensorDataset(torch.randn(64, 10), torch.randint(0, 4, (64,))) for _ in range(3)]
{outer}
    {fit}(net, {data}, {count}=500, lr=1e-3)
{after}"""
NAMES = ({"fit": "fit_task", "count": "n_iters", "it": "it", "sets": "task_sets"},
         {"fit": "train_on", "count": "max_steps", "it": "step", "sets": "experiences"})
ROUNDS = {"indices": ("for task_id in range(len({sets})):", "{sets}[task_id]"),
          "items": ("for dataset in {sets}:", "dataset")}


def codes(src):
    return [d.code for d in lint_source(src, "t.py")]


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("rounds", ROUNDS)
@pytest.mark.parametrize("estimate", [False, True])
def test_one_run_per_round_builds_its_own_optimizer(names, rounds, estimate):
    """Also when each round then estimates parameter importance with backward passes over the task's
    data (EWC's Fisher information): a data loop that runs backward, but no step of this optimizer."""
    outer, data = ROUNDS[rounds]
    after = f"    estimate_importance(net, {data.format(**names)})\n" if estimate else ""
    src = RUN.format(**names, outer=outer.format(**names), data=data.format(**names), after=after)
    assert codes(src) == []


@pytest.mark.parametrize("names", NAMES)
def test_an_epoch_loop_around_the_same_call_rebuilds_it_every_epoch(names):
    src = RUN.format(**names, outer="for epoch in range(10):", data=f"{names['sets']}[0]", after="")
    assert codes(src) == ["LL107"]


@pytest.mark.parametrize("names", NAMES)
def test_a_pass_over_a_loader_per_call_is_an_epoch(names):
    n = names
    src = f"""import torch


def {n['fit']}(net, loader):
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for xb, yb in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()


net = torch.nn.Linear(10, 4)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 10), torch.randint(0, 4, (64,))))
for task_id in range(3):
    {n['fit']}(net, loader)
"""
    assert codes(src) == ["LL107"]
