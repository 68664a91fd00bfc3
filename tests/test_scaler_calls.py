"""LL406 / LL407 and their model (looplint/model/scaler_calls.py): the order of a GradScaler's
``unscale_``, ``step`` and ``update`` per optimizer, over all paths. Each test states a program and where
the rules must (or must not) report."""
import textwrap

import pytest

from looplint.engine import lint_source
from looplint.rule import rule_by_code

HEADER = """\
import torch
from torch import nn
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.amp.GradScaler("cpu")
loader = torch.utils.data.DataLoader([])
accum = 4
"""


def findings(body: str):
    src = HEADER + textwrap.dedent(body)
    lines = src.splitlines()
    rules = [rule_by_code("LL406"), rule_by_code("LL407")]
    return sorted((d.code, lines[d.line - 1].strip()) for d in lint_source(src, "t.py", rules=rules))


@pytest.mark.parametrize("body, found", [
    # unscale and clip per micro-batch, step gated by the accumulation window
    ("""
    for i, (x, y) in enumerate(loader):
        scaler.scale(nn.functional.mse_loss(model(x), y) / accum).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if (i + 1) % accum == 0:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
    """, [("LL406", "scaler.unscale_(optimizer)")]),
    # a micro-batch loop inside the batch, another scaler name, the scaler a parameter of a helper
    ("""
    def train_batch(x, y, amp_scaler, opt):
        for xm, ym in zip(x.chunk(2), y.chunk(2)):
            amp_scaler.scale(nn.functional.mse_loss(model(xm), ym)).backward()
            amp_scaler.unscale_(opt)
        amp_scaler.step(opt)
        amp_scaler.update()
        opt.zero_grad()
    for x, y in loader:
        train_batch(x, y, scaler, optimizer)
    """, [("LL406", "amp_scaler.unscale_(opt)")]),
    # never updated
    ("""
    for x, y in loader:
        optimizer.zero_grad()
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
        scaler.step(optimizer)
    """, [("LL407", "scaler.step(optimizer)")]),
    # updated on a logging interval only
    ("""
    for i, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
        scaler.step(optimizer)
        if i % 100 == 0:
            scaler.update()
    """, [("LL407", "scaler.step(optimizer)")]),
    # updated only when the gradients were finite, in a trainer method; the next unscale_ is refused
    ("""
    class Trainer:
        def __init__(self):
            self.opt = torch.optim.Adam(model.parameters())
            self.grad_scaler = torch.amp.GradScaler()

        def step(self, loss):
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.opt)
            norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            self.grad_scaler.step(self.opt)
            if torch.isfinite(norm):
                self.grad_scaler.update()
            self.opt.zero_grad()

        def fit(self):
            for x, y in loader:
                self.step(nn.functional.mse_loss(model(x), y))
    """, [("LL407", "self.grad_scaler.step(self.opt)")]),
])
def test_scaler_bookkeeping_errors_are_reported(body, found):
    assert findings(body) == found


@pytest.mark.parametrize("body", [
    # unscale, clip, step and update once per window
    """
    for i, (x, y) in enumerate(loader):
        scaler.scale(nn.functional.mse_loss(model(x), y) / accum).backward()
        if (i + 1) % accum == 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
    """,
    # the window flag computed once and tested twice: the same arm both times
    """
    for i, (x, y) in enumerate(loader):
        scaler.scale(nn.functional.mse_loss(model(x), y) / accum).backward()
        boundary = (i + 1) % accum == 0
        if boundary:
            scaler.unscale_(optimizer)
        if boundary:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
    """,
    # update after every step, skipped steps included
    """
    for x, y in loader:
        loss = nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if torch.isfinite(loss):
            scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    """,
    # optional AMP: the same flag selects both halves
    """
    use_amp = torch.cuda.is_available()
    for x, y in loader:
        loss = nn.functional.mse_loss(model(x), y)
        if use_amp:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if use_amp:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad()
    """,
    # two optimizers, one scaler, one update per iteration
    """
    opt_b = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
        scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.unscale_(opt_b)
        scaler.step(opt_b)
        scaler.update()
    """,
    # code looplint cannot see receives the scaler: it may update it
    """
    from helpers import log_scaler
    for x, y in loader:
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
        scaler.step(optimizer)
        log_scaler(scaler)
    """,
])
def test_correct_or_unreadable_bookkeeping_is_silent(body):
    assert findings(body) == []


def test_disabled_or_foreign_scalers_are_not_judged():
    disabled = HEADER.replace('GradScaler("cpu")', 'GradScaler("cpu", enabled=False)') + textwrap.dedent("""
        for x, y in loader:
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            scaler.step(optimizer)
    """)
    assert lint_source(disabled, "t.py", rules=[rule_by_code("LL407")]) == []
    handed = HEADER + textwrap.dedent("""
        plugin = make_precision_plugin(scaler)
        for x, y in loader:
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            scaler.step(optimizer)
    """)
    assert lint_source(handed, "t.py", rules=[rule_by_code("LL407")]) == []


SKIPPED_STEP = """
for i, (x, y) in enumerate(loader):
    {build}scaler.scale(nn.functional.mse_loss(model(x), y) / accum).backward()
    if (i + 1) % accum == 0:
        scaler.unscale_(optimizer)
        norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if torch.isfinite(norm):
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad()
"""


@pytest.mark.parametrize("build", ['scaler = torch.amp.GradScaler("cpu")\n    ',
                                   "scaler = torch.cuda.amp.GradScaler(enabled=True)\n    ",
                                   'if i % accum == 0:\n        scaler = torch.amp.GradScaler("cpu")\n    '])
def test_a_scaler_built_again_starts_afresh(build):
    """A skipped step leaves the scaler unscaled without an update: the next ``unscale_`` of that scaler
    raises. A scaler built again before it (every micro-batch, every window) is a new one: nothing to raise."""
    assert findings(SKIPPED_STEP.format(build="")) == [("LL406", "scaler.unscale_(optimizer)")]
    assert findings(SKIPPED_STEP.format(build=build)) == []


GUARDED = """\
import torch
from torch.amp.grad_scaler import OptState

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.amp.GradScaler("cpu")

def clip(scaler, opt):
    {guard}
        scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)

for step in range(3):
    opt.zero_grad()
    scaler.scale(model(torch.randn(8, 4)).pow(2).mean()).backward()
    scaler.unscale_(opt)
    clip(scaler, opt)
    scaler.step(opt)
    scaler.update()
"""


@pytest.mark.parametrize("guard", [
    'if scaler._per_optimizer_states[id(opt)]["stage"] is not OptState.UNSCALED:',
    'state = scaler._per_optimizer_states[id(opt)]\n    if state["stage"] is not OptState.UNSCALED:',
    "if not scaler._per_optimizer_states[id(opt)].get('unscaled'):",
])
def test_an_unscale_under_a_test_of_the_scalers_own_state_is_not_a_second_one(guard):
    # allennlp's clip_gradient: unscale only when the scaler says this optimizer is not unscaled yet
    src = GUARDED.format(guard=guard)
    assert [d.code for d in lint_source(src, "t.py") if d.code == "LL406"] == []


@pytest.mark.parametrize("guard", ["if True:", "if opt is not None:", "if step >= 0:"])
def test_an_unscale_under_any_other_test_is_still_a_second_one(guard):
    src = GUARDED.format(guard=guard)
    assert [d.code for d in lint_source(src, "t.py") if d.code == "LL406"] == ["LL406"]
