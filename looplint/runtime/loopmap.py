"""The loops of the program file, and which loop iteration each executed line belongs to.

The recorder traces line events in the program's own frames (``sys.settrace``) and feeds them to a
``FrameLoops`` per frame. A loop's iteration starts when its header runs again after its body (CPython 3.10+
reports the header line of ``for`` and ``while`` loops on every iteration); a loop instance ends when a line
outside it runs in the same frame. Every recorded event then carries its *loop path*: for each program frame
on the stack, outermost first, the active loops as ``[frame, header line, instance, iteration]``.
"""
from __future__ import annotations

import ast
import sys
from typing import Dict, List, Optional, Tuple

# Python 3.10+ (PEP 626) reports the header line of every loop on every iteration; 3.9 skips the header of
# ``while True:``, whose next iteration then shows as a jump back to the first line of the body.
_HEADER_EVERY_ITERATION = sys.version_info >= (3, 10)

# Iterables that count rather than draw data: ``range(n)``, ``range(a, b)``, ``trange(n)``, ``count()``.
_COUNTING_CALLS = {"range", "trange", "count", "repeat"}
_WRAPPERS = {"enumerate", "tqdm", "iter", "list", "islice"}


class Loop:
    """One ``for`` / ``while`` statement of the program."""

    __slots__ = ("line", "header_end", "body_start", "body_end", "end", "kind", "data", "source", "forever")

    def __init__(self, node: ast.AST, source: str) -> None:
        self.line = node.lineno
        self.body_start = node.body[0].lineno
        self.header_end = max(self.line, self.body_start - 1)
        self.body_end = max(getattr(s, "end_lineno", s.lineno) or s.lineno for s in node.body)
        self.end = getattr(node, "end_lineno", None) or self.body_end
        self.kind = "while" if isinstance(node, ast.While) else "for"
        test = getattr(node, "test", None)
        self.forever = isinstance(test, ast.Constant) and bool(test.value)
        # A ``for`` over something other than a counter may draw batches; the oracles call it a data loop
        # only when batches or grad-enabled forward passes are seen inside it.
        self.data = self.kind == "for" and not _is_counting(node.iter)
        seg = ast.get_source_segment(source, node.iter) if self.kind == "for" else ast.get_source_segment(source, node.test)
        self.source = " ".join((seg or "").split())[:80]

    def contains(self, line: int) -> bool:
        """The header or the body (not an ``else:`` clause)."""
        return self.line <= line <= self.body_end

    def in_header(self, line: int) -> bool:
        return self.line <= line <= self.header_end

    def in_body(self, line: int) -> bool:
        return self.body_start <= line <= self.body_end

    def describe(self) -> dict:
        return {"kind": self.kind, "data": self.data, "source": self.source, "end": self.end}


def _call_name(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Call):
        f = node.func
        if isinstance(f, ast.Name):
            return f.id
        if isinstance(f, ast.Attribute):
            return f.attr
    return None


def _is_counting(it: ast.AST) -> bool:
    name = _call_name(it)
    while name in _WRAPPERS and isinstance(it, ast.Call) and it.args:
        it = it.args[0]
        name = _call_name(it)
    if name == "range":
        return len(it.args) < 3  # ``range(0, n, batch_size)`` steps through data
    return name in _COUNTING_CALLS


class LoopMap:
    """Loops per code object (function, lambda, class body or module), keyed like the code object."""

    def __init__(self, source: str) -> None:
        self.scopes: Dict[Tuple[str, int], List[Loop]] = {}
        self.loops: Dict[int, Loop] = {}
        self._chains: Dict[Tuple[Tuple[str, int], int], Tuple[Loop, ...]] = {}
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return
        self._walk(tree, ("<module>", 1), source)

    def _walk(self, node: ast.AST, scope: Tuple[str, int], source: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            inner = (node.name, first)
            for child in ast.iter_child_nodes(node):
                in_body = isinstance(child, ast.stmt)  # decorators, bases and defaults run in the enclosing scope
                self._walk(child, inner if in_body else scope, source)
            return
        if isinstance(node, ast.Lambda):
            self._walk(node.args, scope, source)
            self._walk(node.body, ("<lambda>", node.lineno), source)
            return
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)) and node.body:
            loop = Loop(node, source)
            self.scopes.setdefault(scope, []).append(loop)
            self.loops[loop.line] = loop
        for child in ast.iter_child_nodes(node):
            self._walk(child, scope, source)

    def chain(self, scope: Tuple[str, int], line: int) -> Tuple[Loop, ...]:
        """The loops of ``scope`` that contain ``line``, outermost first."""
        key = (scope, line)
        found = self._chains.get(key)
        if found is None:
            found = tuple(
                sorted((lp for lp in self.scopes.get(scope, ()) if lp.contains(line)), key=lambda lp: (lp.line, -lp.end))
            )
            self._chains[key] = found
        return found

    def describe(self) -> Dict[str, dict]:
        return {str(line): loop.describe() for line, loop in sorted(self.loops.items())}


class FrameLoops:
    """The loop state of one executing program frame."""

    __slots__ = ("serial", "scope", "active", "last", "instances")

    def __init__(self, serial: int, scope: Tuple[str, int]) -> None:
        self.serial = serial
        self.scope = scope
        self.active: List[list] = []  # [loop, instance, iteration], outermost first
        self.last = 0
        self.instances: Dict[int, int] = {}

    def line(self, loopmap: LoopMap, line: int) -> None:
        chain = loopmap.chain(self.scope, line)
        active = self.active
        keep = 0
        while keep < len(active) and keep < len(chain) and active[keep][0] is chain[keep]:
            keep += 1
        del active[keep:]
        if active:
            inner = active[-1]
            loop = inner[0]
            if loop.in_header(line) and loop.in_body(self.last):
                inner[2] += 1  # the header ran again after the body: the next iteration (or the exit test)
            elif (not _HEADER_EVERY_ITERATION and loop.forever and line == loop.body_start
                  and loop.in_body(self.last) and self.last >= line):
                inner[2] += 1
        for loop in chain[keep:]:
            n = self.instances.get(loop.line, 0) + 1
            self.instances[loop.line] = n
            active.append([loop, n, 0])
        self.last = line

    def path(self) -> List[list]:
        return [[self.serial, loop.line, inst, it] for loop, inst, it in self.active]
