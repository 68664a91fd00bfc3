"""Indentation that mixes a tab and spaces the way Python accepts (a tab reaches the next multiple of 8:
``\\t`` + four spaces is 12 columns, deeper than the 4 of the line above) is linted, not reported as
unparsable: libcst's tokenizer refuses some of it, and the same program written with spaces is parsed
instead. Findings on such rows keep the columns of the file as written and carry no fix. Indentation
Python itself refuses (TabError) is still LL000, with Python's message."""
from __future__ import annotations

import pytest

from looplint.engine import lint_source

TRAIN = """import torch


def {fit}(model, loader, opt):
    for x, y in loader:
{i}loss = (model(x) - y).pow(2).mean()
{i}loss.backward()
{i}{opt_text}.step()
    return model
"""


@pytest.mark.parametrize("fit, opt_text", [("train", "opt"), ("fit_epoch", "opt")])
def test_tab_then_spaces_is_linted_at_the_columns_written(fit, opt_text):
    src = TRAIN.format(fit=fit, i="\t    ", opt_text=opt_text)
    found = lint_source(src, "t.py")
    assert [(d.code, d.line, d.column, d.end_column, d.fix) for d in found] == [("LL101", 8, 6, 16, None)]
    spaced = lint_source(TRAIN.format(fit=fit, i=" " * 12, opt_text=opt_text), "t.py")
    assert [(d.code, d.line, d.column) for d in spaced] == [("LL101", 8, 13)]


def test_a_helper_after_a_tabbed_loop_body_is_linted():
    """The shape libcst refused with 'no matching outer block for dedent': a tabbed row, then a dedent."""
    src = ("import torch\n\n\ndef smooth(values):\n    out = []\n    for t in range(len(values)):\n"
           "\t    out.append(sum(values[:t + 1]))\n    return out\n\n\n"
           "def train(model, loader, opt):\n    for x in loader:\n        model(x).sum().backward()\n"
           "        opt.step()\n")
    assert [d.code for d in lint_source(src, "t.py")] == ["LL101"]


def test_indentation_python_refuses_is_still_unparsable():
    src = TRAIN.format(fit="train", i="\t", opt_text="opt")
    found = lint_source(src, "t.py")
    assert [d.code for d in found] == ["LL000"] and "inconsistent use of tabs" in found[0].message
