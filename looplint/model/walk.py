"""Read-only walks over LibCST trees that do not rebuild them.

``node.visit(CSTVisitor)`` reconstructs every node it passes (``_visit_and_replace_children`` builds and
validates a copy), and ``node.children`` runs such a visit: several times the cost of reading the fields.
The model only reads, so it walks the dataclass fields directly, skipping whitespace and punctuation.

``Walker`` keeps the ``CSTVisitor`` protocol the model's visitors are written in: ``visit_<Node>(node)``
(return ``False`` to skip the node's children) and ``leave_<Node>(node)``; ``walker.walk(node)`` walks a tree
in source order. ``children(node)`` and ``descendants(node)`` are the plain versions.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import libcst as cst

# Nodes that carry only layout: never reached by the model's visitors.
_LAYOUT = (cst.BaseParenthesizableWhitespace, cst.TrailingWhitespace, cst.EmptyLine, cst.Newline, cst.Comment,
           cst.LeftParen, cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace,
           cst.RightCurlyBrace, cst.Comma, cst.Semicolon, cst.Colon, cst.AssignEqual, cst.Dot,
           cst.ParenthesizedWhitespace, cst.SimpleWhitespace)
_SKIP_FIELDS = {"lpar", "rpar", "leading_lines", "lines_after_decorators", "header", "footer", "comma",
                "semicolon", "trailing_whitespace", "equal", "colon", "dot", "lbracket", "rbracket", "lbrace",
                "rbrace", "first_line"}
# Source order where it differs from the order of the dataclass fields.
_ORDER = {
    cst.FunctionDef: ("decorators", "name", "type_parameters", "params", "returns", "body"),
    cst.ClassDef: ("decorators", "name", "type_parameters", "bases", "keywords", "body"),
    cst.IfExp: ("body", "test", "orelse"),
}
_FIELDS: Dict[type, Tuple[str, ...]] = {}


def _fields(t: type) -> Tuple[str, ...]:
    got = _FIELDS.get(t)
    if got is None:
        names = [f.name for f in dataclasses.fields(t)]
        order = _ORDER.get(t)
        if order is not None:
            names = [n for n in order if n in names] + [n for n in names if n not in order]
        got = _FIELDS[t] = tuple(n for n in names if n not in _SKIP_FIELDS and not n.startswith("whitespace"))
    return got


_KIND: Dict[type, int] = {}  # per concrete type: 0 skip, 1 a node to walk, 2 a sequence
_NODE, _SEQ = 1, 2


def _kind(t: type) -> int:
    k = _KIND.get(t)
    if k is None:
        if issubclass(t, cst.CSTNode):
            k = 0 if issubclass(t, _LAYOUT) else _NODE
        elif issubclass(t, (list, tuple)):
            k = _SEQ
        else:
            k = 0
        _KIND[t] = k
    return k


# The children of the nodes walked lately, by node id (with the node, so that a reused id is no hit): the
# model's services walk the same subtrees many times (each node's children are asked for about six times),
# and syntax trees never change. ``forget()`` empties it (the engine does after each file); it is also
# emptied when it grows past ``MAX_REMEMBERED`` nodes, so that memory stays bounded in any use.
_REMEMBERED: Dict[int, Tuple[cst.CSTNode, List[cst.CSTNode]]] = {}
MAX_REMEMBERED = 300_000


def forget() -> None:
    """Drops the remembered children (and with them the trees they keep alive)."""
    _REMEMBERED.clear()


def children(node: cst.CSTNode) -> List[cst.CSTNode]:
    """The node's children in source order, without whitespace and punctuation (a list shared by every
    caller: never change it)."""
    hit = _REMEMBERED.get(id(node))
    if hit is not None and hit[0] is node:
        return hit[1]
    out: List[cst.CSTNode] = []
    kind = _KIND
    for name in _fields(type(node)):
        v = getattr(node, name)
        k = kind.get(type(v))
        if k is None:
            k = _kind(type(v))
        if k == _NODE:
            out.append(v)
        elif k == _SEQ:
            for x in v:
                kx = kind.get(type(x))
                if kx is None:
                    kx = _kind(type(x))
                if kx == _NODE:
                    out.append(x)
    if len(_REMEMBERED) >= MAX_REMEMBERED:
        _REMEMBERED.clear()
    _REMEMBERED[id(node)] = (node, out)
    return out


def descendants(node: cst.CSTNode, prune: Optional[Callable[[cst.CSTNode], bool]] = None) -> Iterator[cst.CSTNode]:
    """The node and everything below it (not below a node for which ``prune`` is true; that node is yielded)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if prune is not None and n is not node and prune(n):
            continue
        stack.extend(reversed(children(n)))


class Walker:
    """A read-only ``CSTVisitor``: ``visit_<Node>`` / ``leave_<Node>`` methods, ``walk(node)`` to run it."""

    # per class: node type -> the names of its visit and leave methods (None: it has none). Kept on the class
    # (each subclass gets its own table), not in a table of this module: the model defines walkers inside
    # functions, a new class per call whose methods close over that call's tree; a module-wide table
    # keyed by class kept every such class, and with it every tree, for the life of the process.
    _methods: Dict[type, Tuple[Optional[str], Optional[str]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._methods = {}

    def walk(self, node: cst.CSTNode) -> None:
        t = type(node)
        names = self._methods.get(t)
        if names is None:
            n = t.__name__
            names = self._methods[t] = (f"visit_{n}" if hasattr(self, f"visit_{n}") else None,
                                        f"leave_{n}" if hasattr(self, f"leave_{n}") else None)
        visit, leave = names
        if visit is None or getattr(self, visit)(node) is not False:
            for child in children(node):
                self.walk(child)
        if leave is not None:
            getattr(self, leave)(node)


__all__ = ["Walker", "children", "descendants", "forget"]
