"""The loops of a function of an imported module are classified as the linted file's own are
(``loops.classify_all``, run on each imported function when the analysis builds it): a helper whose own
epoch loop makes each call a whole training run reads the same in another module as in the same file."""
import pytest

from looplint.engine import lint_file

RUNNER = """\
class {cls}:
    def __init__(self, net, opt):
        self.net, self.opt = net, opt

    def {fn}(self, batches, epochs):
        for {ep} in range(epochs):
            for xb, yb in batches:
                self.opt.zero_grad()
                loss = ((self.net(xb) - yb) ** 2).mean()
                loss.backward()
                self.opt.step()
"""

FUNCTION = """\
def {fn}(net, opt, batches, epochs):
    for {ep} in range(epochs):
        for xb, yb in batches:
            opt.zero_grad()
            loss = ((net(xb) - yb) ** 2).mean()
            loss.backward()
            opt.step()
"""

DRIVER = """\
import torch
{head}

net = torch.nn.Linear(3, 1)
batches = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(5)]
for {outer} in range(10):
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    {call}
"""

SHAPES = {
    "method": (RUNNER, "{cls}", "{cls}(net, opt).{fn}(batches, 3)"),
    "function": (FUNCTION, "{fn}", "{fn}(net, opt, batches, 3)"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("cls, fn, ep", [("Runner", "fit", "ep"), ("Trainer", "run", "i")])
@pytest.mark.parametrize("outer", ["epoch", "stage", "task"])
def test_a_helper_in_another_module_reads_as_in_the_same_file(tmp_path, shape, cls, fn, ep, outer):
    helper, name, call = SHAPES[shape]
    helper, name, call = helper.format(cls=cls, fn=fn, ep=ep), name.format(cls=cls, fn=fn), call.format(cls=cls, fn=fn)
    (tmp_path / "engine.py").write_text(helper)
    (tmp_path / "main.py").write_text(DRIVER.format(head=f"from engine import {name}", outer=outer, call=call))
    (tmp_path / "single.py").write_text(DRIVER.format(head="\n\n" + helper, outer=outer, call=call))
    imported = sorted(d.code for d in lint_file(str(tmp_path / "main.py")))
    assert imported == sorted(d.code for d in lint_file(str(tmp_path / "single.py")))
    assert imported == []  # each call is a whole run, with an optimizer of its own
