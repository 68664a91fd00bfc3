"""``looplint.positions`` gives the ranges libcst's ``PositionProvider`` gives, for the nodes asked."""
from __future__ import annotations

import ast
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from looplint.model.walk import descendants
from looplint.positions import positions, statement_starts
from looplint.relevance import blank_cold

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


def _check(module: cst.Module, groups, starts=None) -> None:
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    for nodes in groups:
        assert positions(module, nodes) == {n: expected[n] for n in nodes}
        if starts is not None:
            assert positions(module, nodes, starts) == {n: expected[n] for n in nodes}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_statement_alone_and_all_together(name):
    module = cst.parse_module(SOURCES[name])
    per_statement = [list(descendants(stmt)) for stmt in module.body]
    starts = statement_starts(ast.parse(SOURCES[name]))
    assert len(starts) == len(module.body)
    _check(module, per_statement + [[n for group in per_statement for n in group]], starts)


def test_the_fixtures_first_middle_and_last_statements():
    files = sorted(FIXTURES.glob("*/*.py"))
    assert len(files) > 50
    for path in files[::len(files) // 25]:  # 25 of them, across the rules
        module = cst.parse_module(path.read_text(encoding="utf-8"))
        if not module.body:
            continue
        body = module.body
        picked = {0, len(body) // 2, len(body) - 1}
        starts = statement_starts(ast.parse(module.code))
        _check(module, [list(descendants(body[i])) for i in sorted(picked)] + [[body[-1]]], starts)


def test_starts_of_code_with_definitions_left_out():
    text = (FIXTURES.parent / "tests" / "test_positions.py").read_text(encoding="utf-8")  # anything long
    tree = ast.parse(text)
    defs = [d for d in tree.body if isinstance(d, (ast.FunctionDef, ast.ClassDef))]
    cold = [(min([d.lineno] + [x.lineno for x in d.decorator_list]), d.end_lineno) for d in defs[::2]]
    code = blank_cold(text, cold)
    module = cst.parse_module(code)
    starts = statement_starts(tree, cold)
    assert len(starts) == len(module.body) < len(tree.body)
    _check(module, [list(descendants(stmt)) for stmt in module.body], starts)


def test_starts_that_do_not_fit_the_module_are_not_used():
    module = cst.parse_module(SOURCES["header comments, decorators, semicolons"])
    nodes = list(descendants(module.body[-1]))
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    wrong_rows = [(row + 1, kind) for row, kind in statement_starts(ast.parse(module.code))]
    assert positions(module, nodes, wrong_rows) != {n: expected[n] for n in nodes}  # rows are trusted ...
    too_few = statement_starts(ast.parse(module.code))[:-1]
    assert positions(module, nodes, too_few) == {n: expected[n] for n in nodes}  # ... a misfit is not
    wrong_kind = [(row, "If") for row, _kind in statement_starts(ast.parse(module.code))]
    assert positions(module, nodes, wrong_kind) == {n: expected[n] for n in nodes}


def test_nodes_outside_the_module_are_left_out():
    module, other = cst.parse_module("a = 1\n"), cst.parse_module("b = 2\n")
    assert positions(module, [other.body[0]]) == {}
    comma_module = cst.parse_module("f(a, b)\n")
    comma = comma_module.body[0].body[0].value.args[0].comma  # a layout node: reached only by libcst's walk
    expected = MetadataWrapper(comma_module, unsafe_skip_copy=True).resolve(PositionProvider)
    assert positions(comma_module, [comma]) == {comma: expected[comma]}
