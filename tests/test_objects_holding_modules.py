"""A call we cannot see on an object built from the networks may run them, forward and backward.

StyleGAN2-ADA builds its loss object from a dict of networks (``loss = construct(**ddp_modules)``, the dict
filled by ``ddp_modules[name] = module`` in a loop) and runs ``loss.accumulate_gradients(...)`` as a bare
statement between the zeroing and the step: the backward happens in there. The model used to see no
backward at all (LL102 or LL104 on a correct loop). An object built from anything else (a meter, a logger)
still runs nothing."""
import pytest

from looplint.engine import lint_source
from looplint.model import NONE
from looplint.model.events import STEP

from tests.test_model import model_of

PRELUDE = """import torch

G = torch.nn.Linear(2, 2)
D = torch.nn.Linear(2, 1)
"""
# how the loss object is built from the networks
BUILT = {
    "keywords": "loss = make_loss(G=G, D=D)\n",
    "positional": "loss = make_loss(G, D, 0.5)\n",
    "dict_literal": "loss = make_loss(**{'G': G, 'D': D})\n",
    "dict_filled_in_a_loop": ("modules = dict()\nfor name, module in [('G', G), ('D', D)]:\n"
                              "    module = torch.nn.parallel.DistributedDataParallel(module)\n"
                              "    modules[name] = module\nloss = make_loss(device='cpu', **modules)\n"),
    "dict_filled_by_key": "modules = {}\nmodules['G'] = G\nmodules['D'] = D\nloss = make_loss(**modules)\n",
}
LOOPS = {
    # one optimizer, zeroed before and stepped after the call that backpropagates
    "one_optimizer": """opt = torch.optim.Adam(G.parameters())
for x in loader:
    opt.zero_grad(set_to_none=True)
    loss.accumulate_gradients(phase='G', real=x)
    opt.step()
""",
    # two networks, each with its optimizer, as a GAN runs them
    "two_optimizers": """opt_G = torch.optim.Adam(G.parameters())
opt_D = torch.optim.Adam(D.parameters())
for x in loader:
    opt_D.zero_grad(set_to_none=True)
    for rounds in range(4):
        loss.accumulate_gradients(phase='D', real=x)
    opt_D.step()
    opt_G.zero_grad(set_to_none=True)
    loss.accumulate_gradients(phase='G', real=x)
    opt_G.step()
""",
}


def _codes(source: str):
    return {d.code for d in lint_source(source, "t.py")}


def _step_states(source: str):
    """The gradient states the optimizer step(s) of the loop meet, and whether a call may have backpropagated."""
    m = model_of(source)
    return {(s.gs, s.maybe) for _e, _role, states in m.optimizer_events(STEP) for s in states}


# ``G.requires_grad_(True)`` before the loop: a bare call on a module the model cannot see into
SETUP = "G.requires_grad_(True)\n"


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("built", sorted(BUILT))
def test_an_object_built_from_the_networks_may_backpropagate(built, loop):
    source = PRELUDE + BUILT[built] + SETUP + LOOPS[loop]
    assert not _codes(source) & {"LL102", "LL104"}
    assert _step_states(source) - {(NONE, False)}  # gradients may reach the step


@pytest.mark.parametrize("built", ["loss = make_loss(name='meter', momentum=0.9)\n",
                                   "names = {}\nnames['a'] = 'G'\nloss = make_loss(**names)\n"])
def test_an_object_built_from_anything_else_runs_nothing(built):
    assert _step_states(PRELUDE + built + SETUP + LOOPS["one_optimizer"]) == {(NONE, False)}
