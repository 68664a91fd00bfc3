"""A module built anew is in train mode. A helper that builds a model and its optimizer, trains it and
returns it is called once per repetition; the caller puts the returned model in eval mode to evaluate it.
The next call builds another model, in train mode, and its optimizer holds only that one: the eval mode
of the previous repetition's model trains nothing. A helper that trains a model handed in (built once,
outside the loop, with its optimizer) and never calls ``train()`` does train it in eval mode (LL402).

Checked on variants: the model built from a local class, ``nn.Sequential`` or a factory's class handed in,
moved with ``.to(device)`` or not, and two sets of names."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

BUILDS = {
    "local_class": "Net(width)",
    "sequential": "torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Dropout(0.1), torch.nn.Linear(width, 1))",
}
NAMES = ({"fit": "fit_model", "m": "model", "o": "optimizer", "reps": "nb_reps"},
         {"fit": "train_one", "m": "net", "o": "opt", "reps": "repeats"})


def program(build: str, moved: bool, names: dict, fresh: bool) -> str:
    n = names
    make = BUILDS[build] + (".to(device)" if moved else "")
    made = f"    {n['m']} = {make}\n    {n['o']} = torch.optim.Adam({n['m']}.parameters())\n" if fresh else ""
    param = "" if fresh else f", {n['m']}, {n['o']}"
    outer = "" if fresh else f"{n['m']} = {make}\n{n['o']} = torch.optim.Adam({n['m']}.parameters())\n"
    return f"""import torch


class Net(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Dropout(0.1), torch.nn.Linear(width, 1))

    def forward(self, x):
        return self.body(x)


def {n['fit']}(epochs, x, y, width, device{param}):
{made}    for epoch in range(epochs):
        for i in range(0, len(x), 32):
            loss = ((({n['m']}(x[i:i + 32]) - y[i:i + 32]) ** 2)).mean()
            {n['o']}.zero_grad()
            loss.backward()
            {n['o']}.step()
    return {n['m']}


width, device = 16, "cpu"
x, y = torch.randn(256, 4), torch.randn(256, 1)
results = []
{outer}for rep in range({n['reps']}):
    {n['m']} = {n['fit']}(10, x, y, width, device{param})
    {n['m']}.eval()
    with torch.no_grad():
        results.append((({n['m']}(x) - y) ** 2).mean().item())
"""


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("moved", [False, True])
@pytest.mark.parametrize("names", range(len(NAMES)))
def test_a_model_built_anew_in_each_repetition_trains_in_train_mode(build, moved, names):
    src = program(build, moved, NAMES[names], fresh=True)
    assert [d.code for d in lint_source(src, "t.py") if d.code == "LL402"] == [], src


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("names", range(len(NAMES)))
def test_a_model_built_once_and_handed_in_is_trained_in_eval_mode(build, names):
    src = program(build, False, NAMES[names], fresh=False)
    n = NAMES[names]
    found = [(d.code, d.line) for d in lint_source(src, "t.py") if d.code == "LL402"]
    assert found == [("LL402", src.splitlines().index(f"    {n['m']}.eval()") + 1)], src
