"""Backward passes that feed hooks are no training (LL105). A statistics pass (Fisher information, K-FAC
factors, per-sample gradient norms) registers hooks a backward pass runs and clears the gradients with an
optimizer it never steps (``lr=0.0``): the gradients are read by the hooks, nothing is meant to change (it was
reported on mammoth's fisher_kfac.py, never used here). Without a hook, the same loop computes gradients
nobody applies (LL105).

Checked on variants: a module's full backward hook, its old backward hook, a tensor hook on every
parameter, a post-accumulate hook; the hook registered at module level or in a function; two sets of names."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

HOOKS = {
    "full": "{net}.register_full_backward_hook(lambda mod, gin, gout: {stats}.append(gout[0].pow(2).sum()))",
    "old": "{net}.register_backward_hook(lambda mod, gin, gout: {stats}.append(gout[0].pow(2).sum()))",
    "tensor": "[p.register_hook(lambda g: {stats}.append(g.pow(2).sum())) for p in {net}.parameters()]",
    "post": "[p.register_post_accumulate_grad_hook(lambda t: {stats}.append(t.grad.pow(2).sum())) for p in {net}.parameters()]",
}
NAMES = ({"net": "net", "stats": "stats", "zeroer": "zeroer"}, {"net": "model", "stats": "fisher", "zeroer": "clearer"})


def program(n, hook, where):
    reg = HOOKS[hook].format(**n) if hook else "pass"
    setup = f"{reg}\n" if where == "module" else f"def install():\n    {reg}\n\n\ninstall()\n"
    return f"""import torch

{n['net']} = torch.nn.Linear(6, 3)
{n['stats']} = []
{setup}{n['zeroer']} = torch.optim.SGD({n['net']}.parameters(), lr=0.0)
loader = torch.utils.data.DataLoader(torch.randn(32, 6), batch_size=8)

for xb in loader:
    {n['zeroer']}.zero_grad()
    {n['net']}(xb).pow(2).sum().backward()
{n['zeroer']}.zero_grad()
print(sum({n['stats']}))
"""


@pytest.mark.parametrize("names", NAMES)
@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("where", ["module", "function"])
def test_backward_passes_that_feed_hooks(names, hook, where):
    assert [d.code for d in lint_source(program(names, hook, where), "t.py")] == []


@pytest.mark.parametrize("names", NAMES)
def test_without_a_hook_the_gradients_are_never_applied(names):
    assert [d.code for d in lint_source(program(names, None, "module"), "t.py")] == ["LL105"]
