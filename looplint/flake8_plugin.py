"""looplint as a flake8 plugin: ``flake8 --select LL`` reports looplint's findings.

Registered through the ``flake8.extension`` entry point under the code prefix ``LL``. flake8 hands the plugin
the file's lines (already read and decoded by flake8), the plugin lints their text with every looplint rule and
yields each finding as ``(row, column, "LLxxx message", type)``. flake8's columns are 0-based, looplint's
1-based: the plugin reports ``column - 1``, so flake8 prints the same row and column as ``looplint``.

Selection, ignores, per-file-ignores and ``# noqa`` are flake8's business under flake8; ``LL000`` (a file
that cannot be parsed) is never reported here, because flake8 reports such a file as ``E999`` itself.
Importing this module imports neither flake8 nor torch.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple

import looplint
from looplint.rule import PARSE_ERROR

Flake8Result = Tuple[int, int, str, type]


class Plugin:
    """A flake8 AST plugin (flake8 recognises it by its ``run`` method and ``__init__`` parameters)."""

    name = "looplint"
    version = looplint.__version__

    def __init__(self, tree: object, lines: Sequence[str], filename: str = "stdin") -> None:
        # ``tree`` is requested only so that flake8 treats this as an AST plugin: flake8 then runs it
        # once per file, and not at all on a file it could not parse (reported as E999).
        self.lines = lines
        self.filename = filename

    def run(self) -> Iterator[Flake8Result]:
        from looplint.notebook import lint_text

        source = "".join(self.lines)
        for d in lint_text(source, _python_name(self.filename)):
            if d.code == PARSE_ERROR:
                continue
            yield d.line, max(d.column - 1, 0), f"{d.code} {d.message}", type(self)


def _python_name(filename: Optional[str]) -> str:
    """The name to lint the text under: flake8's lines are Python source even if the file is named
    otherwise (``lint_text`` would read a ``.ipynb`` name as notebook JSON)."""
    name = filename or "stdin"
    return name if not name.lower().endswith(".ipynb") else name + ".py"
