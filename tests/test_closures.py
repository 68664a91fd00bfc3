"""Closures handed to ``optimizer.step(closure)`` (looplint.model.closures) and the rules LL301-LL304: return
paths, backward and zero_grad through same-module calls, which optimizers re-evaluate the closure, and the
step calls that need (or must not get) a closure."""
import textwrap

import libcst as cst
import pytest

from looplint.engine import lint_source
from looplint.model import build_model
from looplint.model.closures import closure_steps, returns
from looplint.rule import rule_by_code

CLOSURE_CODES = ("LL301", "LL302", "LL303", "LL304")


def model_of(src: str):
    return build_model(cst.parse_module(textwrap.dedent(src)))


def findings(src: str, codes=CLOSURE_CODES):
    rules = [rule_by_code(c) for c in codes]
    return sorted((d.code, d.line) for d in lint_source(textwrap.dedent(src), "t.py", rules=rules))


def program(closure: str, optimizer: str = "LBFGS", step: str = "optimizer.step(closure)", before: str = "") -> str:
    """A loop over a closure-driven optimizer; the closure's body is indented by the caller."""
    return (
        "import torch\n"
        "model = torch.nn.Linear(2, 1)\n"
        "x, y = torch.randn(8, 2), torch.randn(8, 1)\n"
        f"optimizer = torch.optim.{optimizer}(model.parameters(), lr=0.1)\n"
        "def closure():\n"
        f"{textwrap.indent(textwrap.dedent(closure), '    ')}"
        "for i in range(3):\n"
        f"{textwrap.indent(before, '    ')}"
        f"    {step}\n"
    )


GOOD = """\
optimizer.zero_grad()
loss = torch.nn.functional.mse_loss(model(x), y)
loss.backward()
return loss
"""

CLOSURE_LINE = 5  # ``def closure():`` in ``program``


def line_with(src: str, text: str) -> int:
    return next(i for i, line in enumerate(src.splitlines(), 1) if text in line)


# -- return paths --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, nothing, value", [
    (GOOD, False, True),
    ("loss = model(x).sum()\nloss.backward()\n", True, False),
    ("loss = model(x).sum()\nloss.backward()\nreturn\n", True, False),
    ("return None\n", True, False),
    ("loss = model(x).sum()\nreturn loss.backward()\n", True, False),
    ("loss = model(x).sum()\nif loss > 0:\n    return loss\n", True, True),
    ("loss = model(x).sum()\nif loss > 0:\n    return loss\nelse:\n    return -loss\n", False, True),
    ("loss = model(x).sum()\nif not torch.isfinite(loss):\n    raise ValueError\nreturn loss\n", False, True),
    ("try:\n    return model(x).sum()\nexcept RuntimeError:\n    raise\n", False, True),
    ("try:\n    loss = model(x).sum()\nexcept RuntimeError:\n    return None\nreturn loss\n", True, True),
    ("for b in range(2):\n    return model(x).sum()\n", True, True),
    ("while True:\n    loss = model(x).sum()\n    if loss < 1:\n        return loss\n", False, True),
    ("with torch.enable_grad():\n    loss = model(x).sum()\n    loss.backward()\n    return loss\n", False, True),
    ("match mode:\n    case 'a':\n        return model(x).sum()\n    case _:\n        return -model(x).sum()\n", False, True),
])
def test_return_paths_of_a_def_closure(body, nothing, value):
    m = model_of(program(body))
    [cs] = closure_steps(m)
    assert returns(m, cs.closure) == (nothing, value)


@pytest.mark.parametrize("lam, nothing", [
    ("lambda: loss", False),
    ("lambda: model(x).sum().backward()", True),
    ("lambda: None", True),
])
def test_return_of_a_lambda_closure(lam, nothing):
    m = model_of(program(GOOD, step=f"optimizer.step({lam})"))
    [cs] = closure_steps(m)
    assert returns(m, cs.closure) == (nothing, not nothing)
    assert isinstance(cs.node, cst.Lambda)


def test_closure_steps_see_partial_and_bound_methods():
    src = """\
import functools, torch
class Fit:
    def __init__(self, model):
        self.model = model
        self.opt = torch.optim.LBFGS(model.parameters())
    def _closure(self, x):
        self.opt.zero_grad()
        loss = self.model(x).sum()
        loss.backward()
        return loss
    def run(self, x):
        for _ in range(3):
            self.opt.step(functools.partial(self._closure, x))
        for _ in range(3):
            self.opt.step(self._closure)
"""
    m = model_of(src)
    steps = closure_steps(m)
    assert {cs.name for cs in steps} == {"_closure"}
    assert all(cs.re_evaluated for cs in steps)
    assert findings(src) == []


# -- LL301 --------------------------------------------------------------------------------------------------


def test_ll301_lbfgs_closure_without_return():
    assert findings(program("loss = model(x).sum()\noptimizer.zero_grad()\nloss.backward()\n")) == [("LL301", CLOSURE_LINE)]


def test_ll301_only_some_paths_return_for_any_optimizer():
    body = "optimizer.zero_grad()\nloss = model(x).sum()\nloss.backward()\nif verbose:\n    return loss\n"
    assert findings(program(body, optimizer="SGD")) == [("LL301", CLOSURE_LINE)]


def test_ll301_silent_for_sgd_closure_that_never_returns():
    body = "optimizer.zero_grad()\nmodel(x).sum().backward()\n"
    assert findings(program(body, optimizer="SGD")) == []


def test_ll301_reports_a_lambda_that_returns_backward_at_the_lambda():
    src = program(GOOD, step="optimizer.step(lambda: closure().backward())")
    assert ("LL301", line_with(src, "lambda")) in findings(src)


# -- LL302 --------------------------------------------------------------------------------------------------


def test_ll302_lbfgs_closure_without_zero_grad():
    body = "loss = model(x).sum()\nloss.backward()\nreturn loss\n"
    assert findings(program(body, before="optimizer.zero_grad()\n")) == [("LL302", CLOSURE_LINE)]


@pytest.mark.parametrize("body, optimizer", [
    ("loss = model(x).sum()\nloss.backward()\nreturn loss\n", "SGD"),  # evaluated once
    ("if first:\n    optimizer.zero_grad()\nloss = model(x).sum()\nloss.backward()\nreturn loss\n", "LBFGS"),
    ("model.zero_grad()\nloss = model(x).sum()\nloss.backward()\nreturn loss\n", "LBFGS"),
    ("for p in model.parameters():\n    p.grad = None\nloss = model(x).sum()\nloss.backward()\nreturn loss\n", "LBFGS"),
    ("reset_grads(model)\nloss = model(x).sum()\nloss.backward()\nreturn loss\n", "LBFGS"),  # unseen helper
])
def test_ll302_silent_when_zeroed_or_evaluated_once(body, optimizer):
    assert findings(program(body, optimizer=optimizer, before="optimizer.zero_grad()\n")) == []


def test_ll302_follows_backward_into_a_helper():
    src = """\
import torch
model = torch.nn.Linear(2, 1)
x = torch.randn(4, 2)
optimizer = torch.optim.LBFGS(model.parameters())
def forward_backward():
    loss = model(x).sum()
    loss.backward()
    return loss
for _ in range(2):
    model.zero_grad()
    optimizer.step(lambda: forward_backward())
"""
    assert findings(src) == [("LL302", 11)]


# -- LL303 --------------------------------------------------------------------------------------------------


def test_ll303_lbfgs_closure_returning_a_precomputed_loss():
    src = program(GOOD, step="optimizer.step(lambda: loss)",
                  before="optimizer.zero_grad()\nloss = model(x).sum()\nloss.backward()\n")
    assert findings(src) == [("LL303", line_with(src, "lambda: loss"))]


def test_ll303_closure_without_backward_and_nothing_before_the_step():
    body = "optimizer.zero_grad()\nreturn torch.nn.functional.mse_loss(model(x), y)\n"
    assert findings(program(body, optimizer="Adam")) == [("LL303", CLOSURE_LINE)]


@pytest.mark.parametrize("body, optimizer, before", [
    # a single-evaluation optimizer with the backward before the step
    ("return loss\n", "SGD", "optimizer.zero_grad()\nloss = model(x).sum()\nloss.backward()\n"),
    # backward hidden in calls looplint cannot see
    ("optimizer.zero_grad()\nreturn trainer.training_step(x)\n", "LBFGS", ""),
    ("optimizer.zero_grad()\nloss = model(x).sum()\nbackprop(loss)\nreturn loss\n", "LBFGS", ""),
    ("optimizer.zero_grad()\nloss = model(x).sum()\naccelerator.backward(loss)\nreturn loss\n", "LBFGS", ""),
])
def test_ll303_silent_when_gradients_may_come_from_elsewhere(body, optimizer, before):
    assert findings(program(body, optimizer=optimizer, before=before)) == []


# -- LL304 --------------------------------------------------------------------------------------------------


def test_ll303_optimizer_built_elsewhere_is_not_judged():
    src = """\
import torch
def check(model, make_optimizer):
    optim = make_optimizer(model)
    optim.step(lambda: None)
"""
    assert findings(src) == []


UNSEEN_OPTIMIZERS = {
    # name: (code before ``fit``, the signature, the statement that gets the optimizer)
    "imported factory": ("from helpers import make_optimizer\n", "def fit(net, loader):",
                         "opt = make_optimizer(net)"),
    "passed in": ("", "def fit(net, opt, loader):", ""),
    "registry method": ("from helpers import registry\n", "def fit(net, loader):",
                        "opt = registry.build('sgd', net.parameters())"),
}


@pytest.mark.parametrize("source", sorted(UNSEEN_OPTIMIZERS))
@pytest.mark.parametrize("clears, expected", [("opt.zero_grad()", True), ("opt.zero_grad(set_to_none=True)", True),
                                              ("pass", False)])
def test_ll303_optimizer_built_elsewhere_judged_when_the_closure_clears_gradients(source, clears, expected):
    # a closure that clears the gradients follows the gradient protocol whatever the optimizer is (a
    # gradient-free one would have none to clear): without a backward the step gets none
    before, signature, get = UNSEEN_OPTIMIZERS[source]
    src = (
        "import torch\nimport torch.nn.functional as F\n" + before + signature + "\n"
        + (f"    {get}\n" if get else "")
        + "    for x, y in loader:\n"
        "        def closure():\n"
        f"            {clears}\n"
        "            return F.mse_loss(net(x), y)\n"
        "        opt.step(closure)\n"
    )
    assert findings(src) == ([("LL303", line_with(src, "def closure"))] if expected else [])


def test_ll304_lbfgs_step_without_closure():
    src = program(GOOD, step="optimizer.step()", before="optimizer.zero_grad()\nmodel(x).sum().backward()\n")
    assert findings(src) == [("LL304", line_with(src, "optimizer.step()"))]


@pytest.mark.parametrize("optimizer, step", [
    ("LBFGS", "optimizer.step(closure)"),
    ("LBFGS", "optimizer.step(closure=closure)"),
    ("SGD", "optimizer.step()"),
])
def test_ll304_silent_with_a_closure_or_another_optimizer(optimizer, step):
    assert findings(program(GOOD, optimizer=optimizer, step=step)) == []


def test_ll304_unknown_optimizer_is_not_judged():
    src = """\
import torch
def fit(model, optimizer, x):
    for _ in range(3):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
"""
    assert findings(src) == []


@pytest.mark.parametrize("step", ["scaler.step(optimizer, closure=closure)", "scaler.step(optimizer, closure)"])
def test_ll304_closure_handed_to_grad_scaler(step):
    src = program(GOOD, optimizer="SGD", step=step).replace(
        "x, y =", "scaler = torch.amp.GradScaler('cpu')\nx, y =")
    assert findings(src) == [("LL304", line_with(src, "scaler.step("))]


def test_ll304_scaler_step_without_closure_is_fine():
    src = program(GOOD, optimizer="SGD", step="scaler.step(optimizer)").replace(
        "x, y =", "scaler = torch.amp.GradScaler('cpu')\nx, y =")
    assert findings(src) == []
