"""What a finding is, once it leaves the rules: a code, a message and a place in a file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

REPOSITORY_URL = "https://github.com/looplint/looplint"
# Each rule's page, generated from its docstring by ``looplint.ruledocs`` (a test checks that it exists).
DOCS_PATH = "docs/rules/{code}.md"
DOCS_URL = f"{REPOSITORY_URL}/blob/main/{DOCS_PATH}"


def docs_url(code: str) -> str:
    return DOCS_URL.format(code=code.upper())


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One finding. Rows and columns are 1-based; ``end_*`` point one past the node's last character."""

    path: str
    line: int
    column: int
    code: str
    message: str
    name: str = ""
    end_line: int = 0
    end_column: int = 0
    # Notebook cell (1-based, all cells counted) when the file is a notebook; rows are then cell-relative.
    cell: Optional[int] = field(default=None, compare=False)
    # The physical row whose ``# noqa`` comment suppresses this diagnostic.
    noqa_row: Optional[int] = field(default=None, compare=False)
    # The rule's fix (``looplint.fix.Fix``), when it has one.
    fix: Optional[object] = field(default=None, compare=False)

    @property
    def url(self) -> Optional[str]:
        return docs_url(self.code)
