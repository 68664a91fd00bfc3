"""Where a few nodes of a module are, without generating the positions of all the others.

libcst's ``PositionProvider`` regenerates the whole module with position tracking (a context manager and a
regular expression per token, a range per node): on a 1,000-line training file with one finding that is
half of the lint. ``positions(module, nodes)`` tracks positions only through the top-level statements
that hold one of ``nodes``; the code of the others is generated plainly and only its lines and columns
are counted. Same ranges as ``PositionProvider`` (the same codegen state runs through those statements,
from the same line and column).
"""
from __future__ import annotations

from typing import Dict, Iterable

import libcst as cst
from libcst._position import CodeRange
from libcst.metadata.position_provider import PositionProvidingCodegenState

from looplint.model.walk import _LAYOUT, descendants


class _Computed:
    """What ``PositionProvidingCodegenState`` expects of its provider: the ranges it computed."""

    def __init__(self) -> None:
        self._computed: Dict[cst.CSTNode, CodeRange] = {}


def positions(module: cst.Module, nodes: Iterable[cst.CSTNode]) -> Dict[cst.CSTNode, CodeRange]:
    """The ``PositionProvider`` range of each of ``nodes`` that is in ``module`` (others are left out)."""
    wanted = {id(n): n for n in nodes}
    if any(isinstance(n, _LAYOUT) for n in wanted.values()):  # not reached by the walk below: all of them
        from libcst.metadata import MetadataWrapper, PositionProvider

        found = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        return {n: found[n] for n in wanted.values() if n in found}
    computed = _Computed()
    state = PositionProvidingCodegenState(module.default_indent, module.default_newline, computed)
    for line in module.header:
        state._update_position(module.code_for_node(line))
    out: Dict[cst.CSTNode, CodeRange] = {}
    for stmt in module.body:
        if not wanted:
            break
        held = [wanted.pop(id(n)) for n in descendants(stmt) if id(n) in wanted]
        if held:
            stmt._codegen(state)
            for n in held:
                out[n] = computed._computed[n]
        else:
            state._update_position(module.code_for_node(stmt))
    return out


__all__ = ["positions"]
