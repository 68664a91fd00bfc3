"""What a finding is, once it leaves the rules: a code, a message and a place in a file."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    import libcst as cst

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
    fix: Optional["Fix"] = field(default=None, compare=False)

    @property
    def url(self) -> Optional[str]:
        return docs_url(self.code)


# -- fixes (the engine that applies them is looplint.fix; these need no libcst to be read from a cache) ----

SAFE, UNSAFE = "safe", "unsafe"

# Set by a run whose report shows fixes as text edits (JSON): the engine makes each fix's text edits
# (``Fix.text_edits``) where its tree is, in the worker, instead of leaving them to the report, which would
# parse and model the file again per fix. Here, not in the engine: a run that lints nothing imports no engine.
MAKE_TEXT_EDITS = False
INSERT_BEFORE, INSERT_AFTER, REMOVE, REPLACE = "insert_before", "insert_after", "remove", "replace"


@dataclass(frozen=True)
class Edit:
    """One change to the module: ``node`` is the statement an insertion is anchored at, the statement
    removed, or the node replaced; ``new`` holds the statements inserted or the replacing node."""

    kind: str
    node: cst.CSTNode
    new: Tuple[cst.CSTNode, ...] = ()


@dataclass(frozen=True)
class Fix:
    title: str
    applicability: str = SAFE
    edits: Tuple[Edit, ...] = field(default=(), compare=False, repr=False)
    # The fix as text edits (``looplint.rewrite.TextEdit`` fields: row, column, end row, end column, content),
    # when the results cache holds them (the JSON report computed them in an earlier run).
    text_edits: Optional[Tuple[Tuple[int, int, int, int, str], ...]] = field(default=None, compare=False, repr=False)

    def __reduce__(self):
        # Crossing a process boundary (worker processes) keeps what a report shows; the edits name nodes of
        # a tree that lives in the process that built it.
        return (Fix, (self.title, self.applicability, (), self.text_edits))

    def portable(self) -> "Fix":
        """This fix as it crosses a process boundary: without the edits (and the tree they hold)."""
        make, args = self.__reduce__()
        return make(*args)

    def applies(self, unsafe: bool) -> bool:
        return bool(self.edits) and (self.applicability == SAFE or (unsafe and self.applicability == UNSAFE))
