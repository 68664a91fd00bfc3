"""LL402 and a sub-module trained alone: ``net.eval()`` for a validation pass, then ``net.head.train()`` before
the next epoch, with an optimizer over the head's parameters only, trains every parameter it updates in
train mode (looplint.model.modes: ``_ModeRun._trains_inside``). The rest of ``net`` stays in eval mode on
purpose (a frozen backbone); also for a child at a literal index (``model.heads[-1]``, ``vgg.classifier[6]``,
``Roles.module_key``). An optimizer over more than the module set back to train mode still leaks."""
import pytest

from looplint.engine import lint_source

PROGRAM = """\
import torch
import torch.nn.functional as F


def {fn}({net}, loader, epochs):
    opt = torch.optim.SGD({params}, lr=0.1)
    for epoch in range(epochs):
        {train}
        for x, y in loader:
            loss = F.cross_entropy({net}(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            {net}.eval()
            for x, y in loader:
                print(F.cross_entropy({net}(x), y).item())
"""

NAMES = [("warm_up", "net", "head"), ("fit_classifier", "model", "classifier"), ("tune", "backbone_and_fc", "fc"),
         ("warm_up_head", "model", "heads[-1]"), ("fit_last", "vgg", "classifier[6]")]  # children at an index


def codes(fn, net, params, train):
    source = PROGRAM.format(fn=fn, net=net, params=params, train=train)
    return sorted(d.code for d in lint_source(source, "t.py"))


@pytest.mark.parametrize("fn, net, sub", NAMES)
@pytest.mark.parametrize("params", ["{net}.{sub}.parameters()", "list({net}.{sub}.parameters())"])
def test_the_trained_sub_module_set_back_to_train_mode(fn, net, sub, params):
    params = params.format(net=net, sub=sub)
    assert codes(fn, net, params, f"{net}.{sub}.train()") == []
    assert codes(fn, net, params, "pass") == ["LL402"]  # the head stays in eval mode after the first epoch


@pytest.mark.parametrize("fn, net, sub", NAMES)
def test_an_optimizer_over_more_than_the_sub_module_still_leaks(fn, net, sub):
    assert codes(fn, net, f"{net}.parameters()", f"{net}.{sub}.train()") == ["LL402"]
    assert codes(fn, net, f"{net}.parameters()", f"{net}.train()") == []


@pytest.mark.parametrize("fn, net, parent, child", [("fit_last", "vgg", "classifier", "classifier[6]"),
                                                    ("warm_up_head", "model", "heads", "heads[-1]")])
def test_the_container_of_the_trained_child_set_back_to_train_mode(fn, net, parent, child):
    """``vgg.classifier.train()`` puts ``vgg.classifier[6]`` in train mode too (``roles.part_of``)."""
    assert codes(fn, net, f"{net}.{child}.parameters()", f"{net}.{parent}.train()") == []
    assert codes(fn, net, f"{net}.{child}.parameters()", "pass") == ["LL402"]
