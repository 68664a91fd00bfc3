"""``looplint.positions`` gives the ranges libcst's ``PositionProvider`` gives, for the nodes asked."""
from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from looplint.model.walk import descendants
from looplint.positions import positions

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

SOURCES = {
    "header comments, decorators, semicolons": (
        "#!/usr/bin/env python\n# a header comment\n\nimport torch  # trailing\n\n\n@decorate(1)\n@other\n"
        "def f(x, *, y=2):\n    '''doc'''\n    a = 1; b = 2\n    return x.backward()\n\n# between\nclass C:\n"
        "    def m(self):\n        for i in range(3):\n            self.opt.step()\n"),
    "CRLF newlines, no trailing newline": "import torch\r\n\r\ndef f(loss):\r\n    loss.backward()\r\n\r\nf(1)",
    "tabs, async, nested brackets": (
        "async def g(opt):\n\tasync for batch in stream(\n\t\t1,\n\t\t2,\n\t):\n\t\tawait opt.step(batch)\n"
        "x = [\n    1,\n    2,\n]\n"),
    "a file of comments only before code": "# one\n# two\n\n\n\nloss.backward()\n",
}


def _check(module: cst.Module, groups) -> None:
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    for nodes in groups:
        got = positions(module, nodes)
        assert got == {n: expected[n] for n in nodes}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_statement_alone_and_all_together(name):
    module = cst.parse_module(SOURCES[name])
    per_statement = [list(descendants(stmt)) for stmt in module.body]
    _check(module, per_statement + [[n for group in per_statement for n in group]])


def test_the_fixtures_first_middle_and_last_statements():
    files = sorted(FIXTURES.glob("*/*.py"))
    assert len(files) > 50
    for path in files[::len(files) // 25]:  # 25 of them, across the rules
        module = cst.parse_module(path.read_text(encoding="utf-8"))
        if not module.body:
            continue
        body = module.body
        picked = {0, len(body) // 2, len(body) - 1}
        _check(module, [list(descendants(body[i])) for i in sorted(picked)] + [[body[-1]]])


def test_nodes_outside_the_module_are_left_out():
    module, other = cst.parse_module("a = 1\n"), cst.parse_module("b = 2\n")
    assert positions(module, [other.body[0]]) == {}
    comma_module = cst.parse_module("f(a, b)\n")
    comma = comma_module.body[0].body[0].value.args[0].comma  # a layout node: reached only by libcst's walk
    expected = MetadataWrapper(comma_module, unsafe_skip_copy=True).resolve(PositionProvider)
    assert positions(comma_module, [comma]) == {comma: expected[comma]}
