"""LL403's micro-batch case (looplint/model/partial_clips.py): a clip after every micro-batch's backward
while the step is gated by gradient accumulation."""
import textwrap

import pytest

from looplint.engine import lint_source
from looplint.rule import rule_by_code

HEADER = """\
import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = torch.utils.data.DataLoader([])
accum = 4
"""


def findings(body: str):
    src = HEADER + textwrap.dedent(body)
    lines = src.splitlines()
    return [lines[d.line - 1].strip() for d in lint_source(src, "t.py", rules=[rule_by_code("LL403")])]


@pytest.mark.parametrize("body, clip", [
    ("""
    for i, (x, y) in enumerate(loader):
        (nn.functional.mse_loss(model(x), y) / accum).backward()
        clip_grad_norm_(model.parameters(), 1.0)
        if (i + 1) % accum == 0:
            optimizer.step()
            optimizer.zero_grad()
    """, "clip_grad_norm_(model.parameters(), 1.0)"),
    # a chunk loop inside the batch, clip by value, in a method
    ("""
    class Trainer:
        def __init__(self):
            self.net = nn.Linear(4, 1)
            self.opt = torch.optim.Adam(self.net.parameters())

        def train_batch(self, x, y):
            for xc, yc in zip(x.chunk(2), y.chunk(2)):
                loss = nn.functional.mse_loss(self.net(xc), yc)
                loss.backward()
                torch.nn.utils.clip_grad_value_(self.net.parameters(), 0.5)
            self.opt.step()
            self.opt.zero_grad()

        def fit(self):
            for x, y in loader:
                self.train_batch(x, y)
    """, "torch.nn.utils.clip_grad_value_(self.net.parameters(), 0.5)"),
])
def test_clip_on_micro_batches_that_do_not_step_is_reported(body, clip):
    assert findings(body) == [clip]


@pytest.mark.parametrize("body", [
    # once per window
    """
    for i, (x, y) in enumerate(loader):
        (nn.functional.mse_loss(model(x), y) / accum).backward()
        if (i + 1) % accum == 0:
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
    """,
    # a step every batch
    """
    for x, y in loader:
        nn.functional.mse_loss(model(x), y).backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    """,
    # a wrapper's clip: its optimizer step may be a no-op between windows
    """
    from accelerate import Accelerator
    accelerator = Accelerator(gradient_accumulation_steps=4)
    for x, y in loader:
        with accelerator.accumulate(model):
            accelerator.backward(nn.functional.mse_loss(model(x), y))
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
    """,
    # code looplint cannot see receives the optimizer between clip and the next backward
    """
    from helpers import maybe_step
    for i, (x, y) in enumerate(loader):
        nn.functional.mse_loss(model(x), y).backward()
        clip_grad_norm_(model.parameters(), 1.0)
        maybe_step(optimizer, i)
    """,
])
def test_clips_of_whole_windows_or_unknown_steps_are_silent(body):
    assert findings(body) == []
