"""looplint.parse: libcst's parse without the per-node check gives the same trees and the same errors, and
leaves the check on for every node made afterwards."""
import threading
from pathlib import Path

import libcst as cst
import pytest

from looplint.parse import parse_module

ROOT = Path(__file__).resolve().parent.parent


def _sources():
    for folder in ("looplint", "rules", "fixtures"):
        for path in sorted((ROOT / folder).rglob("*.py"))[:40]:
            yield path


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_same_tree_as_libcst(path):
    text = path.read_text(encoding="utf-8")
    ours, theirs = parse_module(text), cst.parse_module(text)
    assert ours.deep_equals(theirs)
    assert ours.code == text


def _invalid_node():
    # a Name that is not an identifier: the check refuses it
    return cst.Name("not a name")


def test_nodes_made_after_a_parse_are_checked():
    parse_module("x = 1\n")
    with pytest.raises(cst.CSTValidationError):
        _invalid_node()


def test_nodes_made_after_a_failed_parse_are_checked():
    with pytest.raises(cst.ParserSyntaxError):
        parse_module("def f(:\n")
    with pytest.raises(cst.CSTValidationError):
        _invalid_node()


def test_parses_in_threads_leave_the_check_on():
    errors = []

    def work():
        try:
            for _ in range(20):
                parse_module("for i in range(3):\n    loss.backward()\n")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with pytest.raises(cst.CSTValidationError):
        _invalid_node()
