"""LL110 / LL111 and their model (looplint/model/params.py): which parameters an optimizer holds, which
are frozen when it trains, and which submodules are replaced after it took its parameters."""
import textwrap

import pytest

from conftest import fixed_body
from looplint.engine import lint_source
from looplint.rule import rule_by_code

HEADER = """\
import torch
from torch import nn
from torch.optim import Adam


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Linear(4, 1)


def train(model, opt):
    for step in range(3):
        opt.zero_grad()
        model.head(model.backbone(torch.randn(2, 4))).sum().backward()
        opt.step()
"""


def findings(body: str):
    src = HEADER + textwrap.dedent(body)
    lines = src.splitlines()
    rules = [rule_by_code("LL110"), rule_by_code("LL111")]
    return sorted((d.code, lines[d.line - 1].strip()) for d in lint_source(src, "t.py", rules=rules))


@pytest.mark.parametrize("body, found", [
    # frozen after the optimizer was built (another spelling, named_parameters, a module method)
    ("""
    model = Net()
    opt = Adam(model.head.parameters())
    for name, w in model.named_parameters():
        w.requires_grad_(False)
    for w in model.backbone.parameters():
        w.requires_grad = True
    train(model, opt)
    """, [("LL110", "w.requires_grad_(False)")]),
    ("""
    def main():
        net = Net()
        optimizer = torch.optim.SGD([{"params": net.head.parameters()}], lr=0.1)
        net.requires_grad_(False)
        train(net, optimizer)
    """, [("LL110", "net.requires_grad_(False)")]),
    # frozen before, and the optimizer built over the frozen part only
    ("""
    model = Net()
    for p in model.backbone.parameters():
        p.requires_grad = False
    opt = Adam(list(model.backbone.parameters()), lr=1e-3)
    train(model, opt)
    """, [("LL110", "opt = Adam(list(model.backbone.parameters()), lr=1e-3)")]),
    # replaced / added after the optimizer took model.parameters()
    ("""
    model = Net()
    opt = Adam(model.parameters())
    model.head = nn.Linear(4, 1)
    train(model, opt)
    """, [("LL111", "model.head = nn.Linear(4, 1)")]),
    ("""
    if __name__ == "__main__":
        model = Net()
        opt = Adam(model.parameters())
        model.backbone.add_module("extra", nn.Linear(4, 4))
        train(model, opt)
    """, [("LL111", 'model.backbone.add_module("extra", nn.Linear(4, 4))')]),
    # an entry of a container submodule replaced after the optimizer took the parameters
    ("""
    model = Net()
    model.blocks = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    opt = Adam(model.parameters())
    model.blocks[0] = nn.Linear(4, 4)
    train(model, opt)
    """, [("LL111", "model.blocks[0] = nn.Linear(4, 4)")]),
    # the new head comes before the freeze that covers it, or after the optimizer: it does not rescue it
    ("""
    model = Net()
    model.head = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    for p in model.parameters():
        p.requires_grad = False
    opt = Adam(model.parameters())
    train(model, opt)
    """, [("LL110", "opt = Adam(model.parameters())")]),
    ("""
    def main():
        net = Net()
        for p in net.parameters():
            p.requires_grad = False
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        net.head = nn.Linear(4, 1)
        train(net, optimizer)
    """, [("LL110", "optimizer = torch.optim.SGD(net.parameters(), lr=0.1)"), ("LL111", "net.head = nn.Linear(4, 1)")]),
    # trained through a partial or a function a factory returns, bound to a name
    ("""
    import functools
    model = Net()
    opt = Adam(model.parameters())
    model.head = nn.Linear(4, 1)
    run = functools.partial(train, model, opt)
    run()
    """, [("LL111", "model.head = nn.Linear(4, 1)")]),
    ("""
    def make_trainer(model, opt):
        def fit():
            train(model, opt)
        return fit

    def main():
        net = Net()
        optimizer = Adam(net.head.parameters())
        net.requires_grad_(False)
        go = make_trainer(net, optimizer)
        go()
    """, [("LL110", "net.requires_grad_(False)")]),
])
def test_frozen_or_missed_parameters_are_reported(body, found):
    assert findings(body) == found


@pytest.mark.parametrize("body", [
    # the usual fine-tuning orders
    """
    model = Net()
    for p in model.backbone.parameters():
        p.requires_grad = False
    opt = Adam(model.head.parameters())
    train(model, opt)
    """,
    """
    model = Net()
    opt = Adam(model.parameters())
    for p in model.parameters():
        p.requires_grad = False
    for p in model.head.parameters():
        p.requires_grad = True
    train(model, opt)
    """,
    # transfer learning: everything frozen, then a new head (an attribute, a container entry, added by
    # name) built before the optimizer takes model.parameters(): the head's parameters require gradients
    """
    model = Net()
    for p in model.parameters():
        p.requires_grad = False
    model.head = nn.Linear(4, 1)
    opt = Adam(model.parameters())
    train(model, opt)
    """,
    """
    def main(n_classes):
        net = Net()
        net.head = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
        net.requires_grad_(False)
        net.head[1] = nn.Linear(8, n_classes)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        train(net, optimizer)
    """,
    """
    model = Net()
    for name, p in model.named_parameters():
        p.requires_grad_(False)
    model.backbone.add_module("adapter", nn.Linear(4, 4))
    opt = Adam(model.backbone.parameters())
    train(model, opt)
    """,
    # a freeze by name: not readable
    """
    model = Net()
    opt = Adam(model.head.parameters())
    for name, p in model.named_parameters():
        if "backbone" not in name:
            p.requires_grad = False
    train(model, opt)
    """,
    # frozen after training (for export)
    """
    model = Net()
    opt = Adam(model.head.parameters())
    train(model, opt)
    model.requires_grad_(False)
    """,
    # replaced before the optimizer, or a new optimizer after the replacement
    """
    model = Net()
    model.head = nn.Linear(4, 1)
    opt = Adam(model.parameters())
    train(model, opt)
    """,
    """
    model = Net()
    opt = Adam(model.parameters())
    model.head = nn.Linear(4, 1)
    opt = Adam(model.parameters())
    train(model, opt)
    """,
    # the optimizer holds only another part: the replaced module was never its business
    """
    model = Net()
    opt = Adam(model.backbone.parameters())
    model.head = nn.Linear(4, 1)
    train(model, opt)
    """,
    # not a module: a tensor or a moved copy
    """
    model = Net()
    opt = Adam(model.parameters())
    model.head = model.head.to("cpu")
    train(model, opt)
    """,
])
def test_correct_orders_and_unreadable_freezes_are_silent(body):
    assert findings(body) == []


def fixed(body: str) -> str:
    return fixed_body(HEADER, body, ["LL111"])


@pytest.mark.parametrize("body, after", [
    # the constructor moves after the last replacement (two heads, one fix)
    ("""
    model = Net()
    opt = Adam(model.parameters(), lr=1e-3)
    model.head = nn.Linear(4, 1)
    model.aux = nn.Linear(4, 2)
    train(model, opt)
    """, """
    model = Net()
    model.head = nn.Linear(4, 1)
    model.aux = nn.Linear(4, 2)
    opt = Adam(model.parameters(), lr=1e-3)
    train(model, opt)
    """),
    # in a function, add_module on an attribute path, a statement in between that the optimizer ignores
    ("""
    def main(width):
        net = Net()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        print("width", width)
        net.backbone.add_module("extra", nn.Linear(4, width))
        train(net, optimizer)
    """, """
    def main(width):
        net = Net()
        print("width", width)
        net.backbone.add_module("extra", nn.Linear(4, width))
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        train(net, optimizer)
    """),
])
def test_ll111_fix_builds_the_optimizer_after_the_replacement(body, after):
    assert fixed(body) == textwrap.dedent(after)
    assert findings(after) == []


@pytest.mark.parametrize("body", [
    # the optimizer is used before the replacement (a scheduler over it, its state loaded)
    """
    model = Net()
    opt = Adam(model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, 10)
    model.head = nn.Linear(4, 1)
    train(model, opt)
    """,
    """
    model = Net()
    opt = Adam(model.parameters())
    opt.load_state_dict(torch.load("opt.pt"))
    model.head = nn.Linear(4, 1)
    train(model, opt)
    """,
    # what the constructor reads is reassigned in between
    """
    model = Net()
    lr = 1e-3
    opt = Adam(model.parameters(), lr=lr)
    lr = 1e-2
    model.head = nn.Linear(4, 1)
    train(model, opt)
    """,
])
def test_ll111_no_fix_when_the_optimizer_or_its_arguments_change_in_between(body):
    assert [c for c, _ in findings(body)] == ["LL111"]
    assert fixed(body) == textwrap.dedent(body)
