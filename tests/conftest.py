"""Shared helpers for the CLI-facing tests: sample programs, a runner for ``cli.main``, and a skip marker
for tests that need a rule which may not have landed yet."""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Dict, NamedTuple

import pytest

from looplint import cli
from looplint.cache import NO_CACHE_ENV

# Tests lint without the results cache (a hit would hide what a test changes in the engine); the cache's
# own tests enable it.
os.environ[NO_CACHE_ENV] = "1"
from looplint.rule import rule_by_code

# A training loop without zero_grad: LL101 at the step on line 7, column 5.
BAD_PROGRAM = """\
import torch
model = torch.nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x in torch.randn(4, 3, 2):
    loss = model(x).sum()
    loss.backward()
    opt.step()
"""
BAD_ROW, BAD_COLUMN = 7, 5

# Mentions a training call (so the engine's pre-filter does not skip it) and does not parse: LL000.
BROKEN_PROGRAM = "import torch\nloss.backward(\n"


def _syntax_error_column(source: str) -> int:
    """Where this Python's own parser places the error (3.9 and 3.10+ differ by one)."""
    try:
        ast.parse(source)
    except SyntaxError as e:
        return e.offset
    raise AssertionError("the program parses")


BROKEN_COLUMN = _syntax_error_column(BROKEN_PROGRAM)  # on row 2

CLEAN_PROGRAM = "import torch\nx = torch.zeros(3)\n"

requires_ll101 = pytest.mark.skipif(rule_by_code("LL101") is None, reason="rule LL101 has not landed yet")


class Result(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys):
    """``run(*args)`` calls ``looplint.cli.main`` in-process and returns (exit code, stdout, stderr)."""

    def _run(*args: str) -> Result:
        code = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A temporary working directory; ``project({"a.py": "..."})`` writes files (creating folders)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPLINT_OUTPUT_FORMAT", raising=False)
    monkeypatch.delenv("LOOPLINT_DEBUG", raising=False)

    def _write(files: Dict[str, str]) -> Path:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return tmp_path

    return _write


def relative(path: str) -> str:
    return path.replace("/", os.sep)


def fixed_body(header: str, body: str, codes) -> str:
    """``body`` (dedented, after ``header``) with the fixes of the rules ``codes`` applied, unsafe ones
    included; the header must come out unchanged and is left off."""
    import textwrap

    from looplint.fix import fix_source

    src = header + textwrap.dedent(body)
    out = fix_source(src, "t.py", [rule_by_code(c) for c in codes], unsafe=True).source
    assert out.startswith(header)
    return out[len(header):]
