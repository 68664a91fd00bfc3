"""A zeroing that stands for a step skipped on purpose is no lost accumulation (LL108).

At the end of an accumulation window, code that checks the gradients drops the window's update instead of
applying it (``if torch.isfinite(norm): opt.step() else: opt.zero_grad()``; found in torchrl's GRPO). The
zeroing runs where the step would have: it replaces the step, it does not cut the window short. What makes
it a skip is what the code states: the other arm of its ``if`` steps the same optimizer, and the test reads
the gradients (a clip's norm, ``.grad``). A zeroing on every micro-batch, or under a gradient test whose
other arm steps nothing, is still the accumulation bug."""
import pytest

from looplint.engine import lint_source

HEAD = """import torch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = torch.nn.MSELoss()
accum = 4
for i, (x, y) in enumerate(loader):
"""
BACKWARD = "    loss = criterion(model(x), y) / accum\n    loss.backward()\n"
WINDOW_END = "    if (i + 1) % accum == 0:\n"
SKIPS = {
    "isfinite_else": """        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if torch.isfinite(norm):
            opt.step()
            opt.zero_grad()
        else:
            opt.zero_grad()
""",
    "flag_from_the_norm": """        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        ok = torch.isfinite(norm)
        if not ok:
            opt.zero_grad()
        else:
            opt.step()
            opt.zero_grad()
""",
    "threshold": """        total = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if total > 100:
            opt.zero_grad()
        else:
            opt.step()
            opt.zero_grad()
""",
    "grads_read": """        if any(p.grad.isnan().any() for p in model.parameters()):
            opt.zero_grad()
        else:
            opt.step()
            opt.zero_grad()
""",
}
# zeroings that do lose accumulated gradients
BUGS = {
    "every_micro_batch": HEAD + "    opt.zero_grad()\n" + BACKWARD + WINDOW_END + "        opt.step()\n",
    "gradient_test_without_a_step": HEAD + """    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    if torch.isfinite(norm):
        opt.zero_grad()
""" + BACKWARD + WINDOW_END + "        opt.step()\n",
    "gradient_test_other_arm_idle": HEAD + """    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    if norm > 1e3:
        opt.zero_grad()
    else:
        pass
""" + BACKWARD + WINDOW_END + "        opt.step()\n",
}


def _codes(source: str):
    return {d.code for d in lint_source(source, "t.py")}


@pytest.mark.parametrize("skip", sorted(SKIPS))
def test_a_skipped_update_is_no_lost_accumulation(skip):
    assert "LL108" not in _codes(HEAD + BACKWARD + WINDOW_END + SKIPS[skip])


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_zeroing_inside_the_window_is_reported(bug):
    assert "LL108" in _codes(BUGS[bug])
