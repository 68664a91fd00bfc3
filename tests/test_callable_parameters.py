"""A function handed in and called is followed to what the call sites hand it.

``def minimize(closure, params): ... closure() ... optimizer.step()`` (botorch, gpytorch and most generic
fitting loops) runs whatever its callers pass as ``closure``. When every call site of the module (and the
default) hands the same callable (a ``def``, a lambda, ``functools.partial``, a bound method, an instance of
a class of the module that defines ``__call__``), calling the parameter runs it, as calling it by name does:
a closure that zeroes and backpropagates leaves fresh gradients for the step, one that only backpropagates
leaves them to add up (LL101, which ``looplint confirm`` confirms on these programs). Callers that hand
different callables leave the call unknown."""
import textwrap

import pytest

from looplint.engine import lint_source

ZEROES = "model.zero_grad()"
CLOSURE_BODY = """loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss"""

DRIVER = """
def minimize(closure, params, steps=100):
    optimizer = torch.optim.Adam(params, lr=0.1)
    for _ in range(steps):
        value = closure()
        optimizer.step()
    return value
"""

# how the caller makes the callable it hands over: (definitions, the argument)
CALLABLES = {
    "def": ("def fit_closure():\n    {zero}\n    " + CLOSURE_BODY + "\n", "fit_closure"),
    "partial": ("def fit_closure(model, x, y):\n    {zero}\n    " + CLOSURE_BODY + "\n",
                "functools.partial(fit_closure, model, x, y)"),
    "class": ("class FitClosure:\n    def __init__(self, model, x, y):\n        self.model, self.x, self.y = model, x, y\n\n"
              "    def __call__(self):\n        model, x, y = self.model, self.x, self.y\n        {zero}\n        "
              + CLOSURE_BODY.replace("\n    ", "\n        ") + "\n", "FitClosure(model, x, y)"),
    "bound_method": ("class Fitter:\n    def __init__(self, model, x, y):\n        self.model, self.x, self.y = model, x, y\n\n"
                     "    def closure(self):\n        model, x, y = self.model, self.x, self.y\n        {zero}\n        "
                     + CLOSURE_BODY.replace("\n    ", "\n        ") + "\n", "Fitter(model, x, y).closure"),
}
CALLS = {
    "positional": "minimize({arg}, list(model.parameters()))",
    "keyword": "minimize(closure={arg}, params=list(model.parameters()))",
}


def program(kind: str, call: str, zero: bool) -> str:
    definitions, arg = CALLABLES[kind]
    return (
        "import functools\nimport torch\n\n"
        + definitions.format(zero=ZEROES if zero else "pass") + DRIVER
        + "\nmodel = torch.nn.Linear(3, 1)\nx, y = torch.randn(8, 3), torch.randn(8, 1)\n"
        + CALLS[call].format(arg=arg) + "\n"
    )


def ll101(src: str):
    return [d.line for d in lint_source(src, "t.py") if d.code == "LL101"]


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("kind", sorted(CALLABLES))
def test_a_closure_handed_in_that_zeroes_leaves_fresh_gradients_for_the_step(kind, call):
    assert ll101(program(kind, call, zero=True)) == []


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("kind", sorted(CALLABLES))
def test_a_closure_handed_in_that_only_backpropagates_leaves_the_gradients_to_add_up(kind, call):
    src = program(kind, call, zero=False)
    step = next(i for i, line in enumerate(src.splitlines(), 1) if "optimizer.step()" in line)
    assert ll101(src) == [step]


def test_callers_that_hand_different_callables_leave_the_call_unknown():
    src = program("def", "positional", zero=False) + textwrap.dedent("""\
        def other():
            return torch.zeros(())
        minimize(other, list(model.parameters()))
        """)
    assert ll101(src) == []


def test_a_driver_nobody_in_the_module_calls_runs_an_unknown_callable():
    src = "import torch\n" + DRIVER
    assert ll101(src) == []
