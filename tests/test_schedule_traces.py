"""An optimizer built over tensors made in place from literals (``[torch.zeros(3, 64)]``, parameter groups of
them, ``nn.Parameter(torch.randn(2))``) holds parameters no other code can read: no loss can reach them.
Stepping it in a loop with its scheduler is how the learning-rate values of a schedule are traced or
tested, not training: no LL104 (a step without backward). An optimizer over tensors some code reads (a
toy loss over ``w``) still steps without gradients when no ``backward()`` runs."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

PARAMS = {
    "list": "[torch.zeros(3, 64, 3, 3)]",
    "groups": "[{'params': [torch.zeros(3, 64)], 'lr': 4e-4}, {'params': [torch.zeros(8)], 'lr': 2e-4}]",
    "parameter": "[torch.nn.Parameter(torch.randn(2, 2))]",
    "dtype": "[torch.zeros(4, dtype=torch.float32)]",
    "requires_grad": "[torch.zeros(4, requires_grad=True), torch.ones(2, requires_grad=True)]",
}


def trace(params: str, through_name: bool, names: dict) -> str:
    build = (f"    {names['p']} = {params}\n    {names['o']} = torch.optim.Adam({names['p']}, lr=1e-3)\n"
             if through_name else f"    {names['o']} = torch.optim.Adam({params}, lr=1e-3)\n")
    return f"""import torch


def main(total):
{build}    {names['s']} = torch.optim.lr_scheduler.CosineAnnealingLR({names['o']}, T_max=100)
    values = []
    for i in range(total):
        {names['o']}.step()
        {names['s']}.step()
        values.append({names['o']}.param_groups[0]['lr'])
    return values
"""


NAMES = ({"o": "optimizer", "s": "scheduler", "p": "optim_params"}, {"o": "opt", "s": "sched", "p": "groups"})


@pytest.mark.parametrize("params", sorted(PARAMS))
@pytest.mark.parametrize("through_name", [False, True])
@pytest.mark.parametrize("names", range(len(NAMES)))
def test_a_schedule_trace_over_fresh_tensors_trains_nothing(params, through_name, names):
    src = trace(PARAMS[params], through_name, NAMES[names])
    assert {d.code for d in lint_source(src, "t.py")} & {"LL104"} == set(), src


@pytest.mark.parametrize("names", range(len(NAMES)))
def test_tensors_that_code_reads_are_trained_and_need_a_backward(names):
    n = NAMES[names]
    src = trace(PARAMS["list"], True, n).replace(
        f"        {n['o']}.step()\n", f"        loss = ({n['p']}[0] * i).sum()\n        {n['o']}.step()\n")
    assert f"{n['p']}[0] * i" in src
    found = [(d.code, d.line) for d in lint_source(src, "t.py") if d.code == "LL104"]
    assert found == [("LL104", src.splitlines().index(f"        {n['o']}.step()") + 1)], src
