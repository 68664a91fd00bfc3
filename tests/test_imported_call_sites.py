"""A function of an imported module reads its parameters from the calls of its own module too
(``Values.call_sites``): a test that runs ``lib.main()``, whose ``main`` builds the model and calls
``train(args, data, model)``, where ``model.zero_grad()`` clears the optimizer built over
``model.parameters()``. The module's zeroing is the optimizer's, as it is when ``lib.py`` is linted alone."""
import pytest

from looplint.engine import lint_file

LIB = """\
import torch


def {train}(args, data, {model}):
    optimizer = torch.optim.AdamW({model}.parameters(), lr=0.1)
    {model}.zero_grad()
    for epoch in range(2):
        for step, (x, y) in enumerate(data):
            loss = (({model}(x) - y) ** 2).mean()
            loss.backward()
            optimizer.step()
            {clear}


def main():
    net = torch.nn.Linear(3, 1)
    data = [(torch.randn(4, 3), torch.randn(4, 1))]
    {call}
    return {{}}
"""

DRIVERS = {
    "module_level": "import lib\n\nresult = lib.main()\n",
    "unittest": "import unittest\n\nimport lib\n\n\nclass T(unittest.TestCase):\n    def test_run(self):\n"
                "        self.assertEqual(lib.main(), {})\n",
    "from_import": "from lib import main\n\nmain()\n",
}
NAMES = [("train", "model"), ("fit_glue", "net_in")]


def codes(tmp_path, driver, train, model, clear, keyword):
    call = f"{train}(None, data, {model}=net)" if keyword else f"{train}(None, data, net)"
    (tmp_path / "lib.py").write_text(LIB.format(train=train, model=model, clear=clear, call=call))
    (tmp_path / "test_lib.py").write_text(DRIVERS[driver])
    return sorted(d.code for d in lint_file(str(tmp_path / "test_lib.py")))


@pytest.mark.parametrize("driver", sorted(DRIVERS))
@pytest.mark.parametrize("train, model", NAMES)
@pytest.mark.parametrize("keyword", [False, True])
def test_the_modules_zero_grad_clears_the_optimizer(tmp_path, driver, train, model, keyword):
    assert codes(tmp_path, driver, train, model, f"{model}.zero_grad()", keyword) == []


@pytest.mark.parametrize("driver", sorted(DRIVERS))
@pytest.mark.parametrize("train, model", NAMES)
def test_nothing_clears_the_optimizer(tmp_path, driver, train, model):
    assert codes(tmp_path, driver, train, model, "pass", False) == ["LL101"]
