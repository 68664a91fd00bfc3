"""``torch.nn.Module`` calls that set a module up (``requires_grad_``, ``to``, ``half``, ``register_*``,
``load_state_dict``) never run it: made as a statement they are no hidden backward, so a loop whose only
"backward" they were is a loop that never calls ``backward()`` (LL104). A method looplint cannot read
(``model.custom_update(x)``) may still run anything."""
import pytest

from looplint.engine import lint_source

LOOP = """import torch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x in loader:
    opt.zero_grad()
    out = model(x)
    model.{call}
    opt.step()
"""


def _codes(call: str):
    return {d.code for d in lint_source(LOOP.format(call=call), "t.py")}


@pytest.mark.parametrize("call", ["requires_grad_(True)", "requires_grad_(False)", "to('cpu')", "half()",
                                  "load_state_dict(state)", "register_forward_hook(hook)", "cuda()"])
def test_a_setup_call_runs_nothing(call):
    assert "LL104" in _codes(call)


@pytest.mark.parametrize("call", ["custom_update(x)", "train_on(x)"])
def test_another_method_may_backpropagate(call):
    assert "LL104" not in _codes(call)
