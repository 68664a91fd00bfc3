"""Code a test expects to raise is not judged: ``with pytest.raises(E):`` and ``with self.assertRaises(E):``
say their body fails, and a test that checks a library refuses a misuse runs the misuse on purpose (found
on never-used code: a helper called with ``do_zero_grad=False`` under ``assertRaises``, a step handed
``lambda: None`` under ``pytest.raises``). The same bodies anywhere else are judged as usual, and so is a
helper that another test calls normally."""
import pytest

from looplint.engine import lint_source

# (body, the finding it gives when it runs): each runs the misuse the test expects to fail
BODIES = {
    "loop_without_zero": ("""for x in loader:
    model(x).sum().backward()
    opt.step()""", "LL101"),
    "helper_told_not_to_zero": ("run(model, opt, loader, zero=False)", "LL101"),
    "closure_returning_nothing": ("opt.step(lambda: None)", "LL303"),
}
HELPER = """
def run(model, opt, loader, zero=True):
    for x in loader:
        if zero:
            opt.zero_grad()
        model(x).sum().backward()
        opt.step()
"""
# (imports, the ``with`` header, whether the test is a unittest method)
CONTEXTS = {
    "pytest.raises": ("import pytest\n", "with pytest.raises(ValueError):", False),
    "raises": ("from pytest import raises\n", "with raises(ValueError, match='x'):", False),
    "pt.raises": ("import pytest as pt\n", "with pt.raises((ValueError, RuntimeError)):", False),
    "assertRaises": ("import unittest\n", "with self.assertRaises(ValueError):", True),
    "assertRaisesRegex": ("import unittest\n", "with self.assertRaisesRegex(ValueError, 'zero'):", True),
}
# contexts that do not say their body raises
OTHER = {
    "none": ("", None, False),
    "suppress": ("import contextlib\n", "with contextlib.suppress(ValueError):", False),
    "pytest.warns": ("import pytest\n", "with pytest.warns(UserWarning):", False),
}


def _indent(text: str, by: int) -> str:
    return "\n".join(" " * by + line for line in text.splitlines())


def _program(body: str, imports: str, header, unittest: bool) -> str:
    inner = body if header is None else header + "\n" + _indent(body, 4)
    setup = ("model = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
             "loader = [torch.randn(2)] * 3\n")
    if unittest:
        test = ("class TestMisuse(unittest.TestCase):\n    def test_misuse(self):\n"
                + _indent(setup + inner, 8) + "\n")
    else:
        test = "def test_misuse():\n" + _indent(setup + inner, 4) + "\n"
    return "import torch\n" + imports + (HELPER if "run(" in body else "") + "\n\n" + test


def _codes(source: str):
    return {d.code for d in lint_source(source, "test_misuse.py")}


@pytest.mark.parametrize("context", sorted(CONTEXTS))
@pytest.mark.parametrize("body", sorted(BODIES))
def test_a_body_expected_to_raise_is_not_judged(body, context):
    text, _code = BODIES[body]
    assert _codes(_program(text, *CONTEXTS[context])) == set()


@pytest.mark.parametrize("context", sorted(OTHER))
@pytest.mark.parametrize("body", sorted(BODIES))
def test_the_same_body_elsewhere_is_judged(body, context):
    text, code = BODIES[body]
    assert code in _codes(_program(text, *OTHER[context]))


def test_a_helper_also_called_normally_is_judged_there():
    misuse = _program("run(model, opt, loader, zero=False)", "import pytest\n", "with pytest.raises(ValueError):",
                      False)
    normal = """

def test_normal():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run(model, opt, [torch.randn(2)] * 3, zero=False)
"""
    assert "LL101" not in _codes(misuse)
    assert "LL101" in _codes(misuse + normal)
