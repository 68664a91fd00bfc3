"""Where a few nodes of a module are, without generating the positions of all the others.

libcst's ``PositionProvider`` regenerates the whole module with position tracking (a context manager and a
regular expression per token, a range per node): on a 1,000-line training file with one finding that is
half of the lint. ``positions(module, nodes)`` tracks positions only through the top-level statements
that hold one of ``nodes``; the code of the others is generated plainly and only its lines and columns
are counted; given where each top-level statement starts (``statement_starts``, from Python's own tree,
which the engine has), not even that. Same ranges as ``PositionProvider`` (the same codegen state runs
through those statements, from the same line and column).
"""
from __future__ import annotations

import ast
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import libcst as cst
from libcst._position import CodeRange
from libcst.metadata.position_provider import PositionProvidingCodegenState

from looplint.model.walk import _LAYOUT, descendants
from looplint.relevance import first_row


class _Computed:
    """What ``PositionProvidingCodegenState`` expects of its provider: the ranges it computed."""

    def __init__(self) -> None:
        self._computed: Dict[cst.CSTNode, CodeRange] = {}


# The libcst statement class of a top-level statement of Python's own tree (simple ones: SimpleStatementLine).
_KIND = {
    ast.FunctionDef: "FunctionDef", ast.AsyncFunctionDef: "FunctionDef", ast.ClassDef: "ClassDef", ast.If: "If",
    ast.For: "For", ast.AsyncFor: "For", ast.While: "While", ast.With: "With", ast.AsyncWith: "With",
    ast.Try: "Try",
}
for _name, _kind in (("TryStar", "TryStar"), ("Match", "Match")):
    if hasattr(ast, _name):
        _KIND[getattr(ast, _name)] = _kind

Starts = List[Tuple[int, str]]


def statement_starts(tree: ast.Module, left_out: Sequence[Tuple[int, int]] = ()) -> Starts:
    """For each top-level statement libcst will see, the row its own code starts on (a decorator's, for a
    decorated definition) and its libcst class name, read from Python's own tree of the same rows.
    Statements on one row (``a = 1; b = 2``) are one libcst statement; the top-level definitions whose rows
    are ``left_out`` (blanked, ``looplint.relevance``) are not there."""
    out: Starts = []
    last_row = 0
    for st in tree.body:
        first = first_row(st)
        if any(a <= first <= b for a, b in left_out):
            continue
        if first == last_row and out and out[-1][1] == "SimpleStatementLine":
            last_row = st.end_lineno or st.lineno
            continue  # after a ``;``
        out.append((first, _KIND.get(type(st), "SimpleStatementLine")))
        last_row = st.end_lineno or st.lineno
    return out


def positions(module: cst.Module, nodes: Iterable[cst.CSTNode], starts: Optional[Starts] = None) -> Dict[cst.CSTNode, CodeRange]:
    """The ``PositionProvider`` range of each of ``nodes`` that is in ``module`` (others are left out).

    With ``starts`` (``statement_starts`` of the same code), the code of the statements before one that
    holds a node is not even generated: a statement's codegen starts at column 0 of the row of its first
    leading line, which is its own first row less its leading lines. Starts that do not fit the module (a
    count or a kind that differs) are not used."""
    body = module.body
    if starts is not None and (len(starts) != len(body) or any(
            type(st).__name__ != kind for st, (_row, kind) in zip(body, starts))):
        starts = None
    wanted = {id(n): n for n in nodes}
    if any(isinstance(n, _LAYOUT) for n in wanted.values()):  # not reached by the walk below: all of them
        from libcst.metadata import MetadataWrapper, PositionProvider

        found = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        return {n: found[n] for n in wanted.values() if n in found}
    computed = _Computed()
    state = PositionProvidingCodegenState(module.default_indent, module.default_newline, computed)
    if starts is None:
        for line in module.header:
            state._update_position(module.code_for_node(line))
    out: Dict[cst.CSTNode, CodeRange] = {}
    for k, stmt in enumerate(body):
        if not wanted:
            break
        held = [wanted.pop(id(n)) for n in descendants(stmt) if id(n) in wanted]
        if held:
            if starts is not None:
                state.line, state.column = starts[k][0] - len(stmt.leading_lines), 0
            stmt._codegen(state)
            for n in held:
                out[n] = computed._computed[n]
        elif starts is None:
            state._update_position(module.code_for_node(stmt))
    return out


__all__ = ["positions", "statement_starts"]
