"""Gradients that leave through other doors than ``backward()`` and ``step()``: a process that receives
gradients from workers writes them into ``.grad`` (or its backing field ``._grad``) before stepping, and a
worker that hands its gradients to a queue has them applied by that other process. Neither is a step
without gradients (LL104) or gradients never applied (LL105); a worker that hands on only a number
computed from its gradients (a norm to a logger) still never applies them."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source


def codes(src: str):
    return sorted({d.code for d in lint_source(src, "t.py")} & {"LL104", "LL105"})


# -- the stepping process: gradients written by hand -------------------------------------------------------

def stepping(attr: str, names: dict) -> str:
    return f"""import torch

def serve(model, stream):
    {names['opt']} = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, {names['g']} in stream:
        {names['opt']}.zero_grad()
        prediction = model(x)
        for p, g in zip(model.parameters(), {names['g']}):
            p.{attr} = g
        {names['opt']}.step()
"""


STEP_NAMES = ({"opt": "optimizer", "g": "grads"}, {"opt": "shared_opt", "g": "received"})


@pytest.mark.parametrize("attr", ["grad", "_grad"])
@pytest.mark.parametrize("names", range(len(STEP_NAMES)))
def test_gradients_written_by_hand_reach_the_step(attr, names):
    src = stepping(attr, STEP_NAMES[names])
    assert codes(src) == [], src
    # the same loop writing nothing into the gradients steps without any
    bare = src.replace(f"            p.{attr} = g\n", "            pass\n")
    assert bare != src and codes(bare) == ["LL104"], bare


# -- the worker: gradients handed to another process ------------------------------------------------------

EXPORTS = {
    "clones": ("grads = [p.grad.clone() for p in model.parameters()]", "grads"),
    "data_cpu": ("grads = [p.grad.data.cpu() for p in model.parameters()]", "grads"),
    "joined": ("grads = torch.cat([p.grad.view(-1) for p in model.parameters()])", "grads"),
    "inline": ("pass", "[p.grad for p in model.parameters()]"),
}
SINKS = ("queue.put({v})", "self.pipe.send({v})", "channel.push(step, {v})")


def worker(export: str, sink: str) -> str:
    prepare, value = EXPORTS[export]
    return f"""import torch

class Worker:
    def __init__(self, model, pipe):
        self.model = model
        self.pipe = pipe
        self.local_optimizer = torch.optim.Adam(model.parameters())

    def run(self, batches, queue, channel):
        model = self.model
        for step, x in enumerate(batches):
            self.local_optimizer.zero_grad()
            loss = model(x).mean()
            loss.backward()
            {prepare}
            {sink.format(v=value)}
"""


@pytest.mark.parametrize("export", sorted(EXPORTS))
@pytest.mark.parametrize("sink", SINKS)
def test_gradients_handed_to_another_process_may_be_applied_there(export, sink):
    src = worker(export, sink)
    assert codes(src) == [], src


@pytest.mark.parametrize("sink", SINKS)
def test_a_number_computed_from_the_gradients_applies_nothing(sink):
    src = worker("clones", sink).replace("grads = [p.grad.clone() for p in model.parameters()]",
                                          "grads = sum(p.grad.norm() for p in model.parameters())")
    assert codes(src) == ["LL105"], src
