"""Messages name the object a call acts on as that call spells it. The role's own label is how its
definition names it: ``self.optim`` in the class, the constructor (``AdamW``) for an object built inside a
list, the container (``parts``) for an entry of a dict. A message about ``D.optim.step()`` that asks for
``self.optim.zero_grad()``, or about ``parts["sched"].step()`` that names ``parts``, points at code the
reader is not looking at."""
from __future__ import annotations

import re

import pytest

from looplint.engine import lint_source

HEAD = "import torch\nfrom torch import nn\n\n\n"

ATTRIBUTE = HEAD + '''class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.optim = torch.optim.Adam(self.parameters())

    def forward(self, x):
        return self.lin(x)


def train_critic({d}, batches):
    {d}.optim.zero_grad()
    for x in batches:
        {d}(x).mean().backward()
        {d}.optim.step()


train_critic(Critic(), [torch.randn(2, 4)] * 3)
'''

LISTED = HEAD + '''def train(model, loader):
    {opts} = [torch.optim.AdamW(model.parameters(), lr=1e-2)]
    for x in loader:
        model(x).mean().backward()
        {opts}[0].step()
'''

ENTRY = HEAD + '''def train(model, loader):
    {parts} = {{}}
    {parts}["opt"] = torch.optim.SGD(model.parameters(), lr=0.1)
    {parts}["sched"] = torch.optim.lr_scheduler.ReduceLROnPlateau({parts}["opt"])
    for x in loader:
        {parts}["opt"].zero_grad()
        model(x).mean().backward()
        {parts}["opt"].step()
        {parts}["sched"].step()
'''


def named(src: str, code: str) -> list:
    return [re.findall(r"`([^`]*)`", d.message)[1] for d in lint_source(src, "t.py") if d.code == code]


@pytest.mark.parametrize("d", ["D", "critic"])
def test_an_attribute_of_an_object_handed_in(d):
    assert named(ATTRIBUTE.format(d=d), "LL101") == [f"{d}.optim.zero_grad()"]


@pytest.mark.parametrize("opts", ["opt_list", "optimizers"])
def test_an_object_built_inside_a_list(opts):
    assert named(LISTED.format(opts=opts), "LL101") == [f"{opts}[0].zero_grad()"]


@pytest.mark.parametrize("parts", ["parts", "state"])
def test_an_entry_of_a_dict(parts):
    assert named(ENTRY.format(parts=parts), "LL204") == [f'{parts}["sched"]']
