"""Fixes: what a rule proposes to change, and the engine that applies fixes to a source until none applies.

A rule may attach a ``Fix`` to its ``Finding``: a title (ruff's ``help:`` line), an applicability decided
by the rule, and ``Edit``s on statements of the module the model was built from (insert statements before or
after one, remove one, replace a node). The edits are applied as one LibCST transformation, so everything
the fix does not touch — comments, blank lines, formatting, line endings — comes out as it went in.

Applicability, as ruff uses it:

* ``safe``: the change keeps the program's behaviour except for the bug (``--fix`` applies it);
* ``unsafe``: the change is right in the usual case but needs a human look (``--unsafe-fixes``).

A finding the rule cannot fix with confidence carries no fix at all.

``fix_source`` lints, applies every applicable fix whose statements no other fix of the round touches (the
others are deferred), re-lints the result and repeats, at most ``MAX_ROUNDS`` times. ``# noqa``-suppressed
findings are never fixed.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from looplint.diagnostics import INSERT_AFTER, INSERT_BEFORE, REMOVE, REPLACE, SAFE, UNSAFE, Edit, Fix  # noqa: F401

MAX_ROUNDS = 10


# -- what rules use to build fixes ------------------------------------------------------------------------

class Tree:
    """Parents of every node of one module, so that a rule can find the statement around a node."""

    def __init__(self, module: cst.Module):
        self.parents: Dict[int, cst.CSTNode] = {}
        self.order: Dict[int, int] = {}  # source order (pre-order number) of every node
        stack: List[cst.CSTNode] = [module]
        while stack:
            node = stack.pop()
            self.order[id(node)] = len(self.order)
            children = _children(node)
            for child in children:
                self.parents[id(child)] = node
            stack.extend(reversed(children))

    def parent(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        return self.parents.get(id(node))

    def statement(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        """The statement of a block (a module's or an indented block's body) that holds ``node``."""
        while node is not None:
            parent = self.parent(node)
            if isinstance(parent, (cst.IndentedBlock, cst.Module)) and isinstance(node, cst.BaseStatement):
                return node
            node = parent
        return None

    def block_of(self, statement: cst.CSTNode) -> Optional[cst.CSTNode]:
        parent = self.parent(statement)
        return parent if isinstance(parent, (cst.IndentedBlock, cst.Module)) else None

    def siblings(self, statement: cst.CSTNode) -> Sequence[cst.CSTNode]:
        block = self.block_of(statement)
        return block.body if block is not None else ()

    def ancestors(self, node: cst.CSTNode) -> Iterable[cst.CSTNode]:
        node = self.parent(node)
        while node is not None:
            yield node
            node = self.parent(node)

    def precedes(self, a: cst.CSTNode, b: cst.CSTNode) -> bool:
        return self.order.get(id(a), -1) < self.order.get(id(b), -1)

    def enclosing(self, node: cst.CSTNode, kinds) -> Optional[cst.CSTNode]:
        """The innermost ancestor of one of ``kinds``, not looking past a function or class."""
        for a in self.ancestors(node):
            if isinstance(a, kinds):
                return a
            if isinstance(a, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return None
        return None

    def sole_call_statement(self, call: cst.CSTNode) -> Optional[cst.SimpleStatementLine]:
        """The line ``call`` makes up on its own (``x.step()`` as the only statement of its line)."""
        expr = self.parent(call)
        line = self.parent(expr) if isinstance(expr, cst.Expr) else None
        if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1 and isinstance(self.block_of(line), (cst.IndentedBlock, cst.Module)):
            return line
        return None


# Fields read before others in the source, where the order of a node's dataclass fields differs.
_FIRST = {
    cst.Module: ("header",), cst.FunctionDef: ("leading_lines", "decorators", "lines_after_decorators", "asynchronous"),
    cst.ClassDef: ("leading_lines", "decorators", "lines_after_decorators"), cst.IfExp: ("body",),
    cst.ExceptHandler: ("leading_lines", "type", "name"), cst.ExceptStarHandler: ("leading_lines", "type", "name"),
    cst.Arg: ("star", "keyword", "equal"), cst.For: ("leading_lines", "asynchronous"),
    cst.With: ("leading_lines", "asynchronous"), cst.CompFor: ("asynchronous",),
}
_LAST = {cst.FunctionDef: ("body",), cst.ClassDef: ("body",)}  # fields read after all others
_CHILD_FIELDS: Dict[type, tuple] = {}


def _children(node: cst.CSTNode) -> List[cst.CSTNode]:
    """``node.children`` (every child node, whitespace too, in source order) read from the fields, without
    the copy of the tree libcst's visit makes."""
    names = _CHILD_FIELDS.get(type(node))
    if names is None:
        import dataclasses

        fields = [f.name for f in dataclasses.fields(node)]
        first = [n for n in _FIRST.get(type(node), ()) if n in fields]
        last = [n for n in _LAST.get(type(node), ()) if n in fields]
        names = _CHILD_FIELDS[type(node)] = tuple(first + [n for n in fields if n not in first and n not in last] + last)
    out: List[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        kind = _KINDS.get(type(value))
        if kind is None:
            kind = _KINDS[type(value)] = _kind(type(value))
        if kind == 1:
            out.append(value)
        elif kind == 2:
            for v in value:
                k = _KINDS.get(type(v))
                if k is None:
                    k = _KINDS[type(v)] = _kind(type(v))
                if k == 1:
                    out.append(v)
    return out


_KINDS: Dict[type, int] = {}  # per type: 1 a node, 2 a sequence, 0 neither


def _kind(t: type) -> int:
    return 1 if issubclass(t, cst.CSTNode) else 2 if issubclass(t, (list, tuple)) else 0


_TREES: "weakref.WeakKeyDictionary[object, Tree]" = weakref.WeakKeyDictionary()


def tree_of(model) -> Tree:
    """The ``Tree`` of a file model's module (built once per model)."""
    tree = _TREES.get(model)
    if tree is None:
        tree = _TREES[model] = Tree(model.module)
    return tree


def function_events(model, fn, kinds) -> List:
    """The events of ``kinds`` written in ``fn``'s own body, in source order."""
    from looplint.model.interp import items_below
    from looplint.model.events import Event

    if fn is None:
        return []
    tree = tree_of(model)
    found = [i for i in items_below(model.builder.body(fn)) if isinstance(i, Event) and i.kind in kinds]
    return sorted(found, key=lambda e: tree.order.get(id(e.node), -1))


def optimizer_expression(model, step) -> Optional[cst.BaseExpression]:
    """The optimizer a step event steps, as written where it runs: ``opt`` in ``opt.step()`` and in
    ``scaler.step(opt)``."""
    from looplint.model.roles import Frame

    fn = model.function_of(step)
    if fn is None or step.target is None:
        return None
    role = model.roles.resolve(step.target, Frame(fn))
    if role is not None and role.kind == "scaler":
        args = [a for a in step.call.args if a.keyword is None and not a.star] if step.call is not None else []
        return args[0].value if args else None
    return step.target


def contains(tree: Tree, statement: cst.CSTNode, node: cst.CSTNode) -> bool:
    return node is statement or any(a is statement for a in tree.ancestors(node))


def move_past_next(model, event, kinds, title: str, risky=()) -> Optional[Fix]:
    """Moves the statement of ``event`` (alone on its line) after the first later statement of its block
    that holds an event of ``kinds``. Safe unless a statement it moves past holds an event of ``risky``
    (or, with ``risky`` None, unless it moves past anything at all)."""
    tree = tree_of(model)
    stmt = tree.sole_call_statement(event.call) if event.call is not None else None
    if stmt is None:
        return None
    fn = model.function_of(event)
    nodes = [e.node for e in function_events(model, fn, kinds)]
    siblings = list(tree.siblings(stmt))
    later = siblings[siblings.index(stmt) + 1:]
    for i, anchor in enumerate(later):
        if any(contains(tree, anchor, n) for n in nodes):
            between = later[:i]
            if risky is None:
                unsafe = bool(between)
            else:
                others = [e.node for e in function_events(model, fn, risky)]
                unsafe = any(contains(tree, st, n) for st in between for n in others)
            return Fix(title, UNSAFE if unsafe else SAFE, move_after(stmt, anchor))
    return None


def forward_pass_start(model, step) -> Optional[Tuple[cst.CSTNode, bool]]:
    """Where the forward pass whose gradients ``step`` consumes starts, in the function that runs the step:
    (the statement, whether it is in the step's block). The backward passes that count are those after the
    last step of another optimizer before this one in the innermost loop (or function) around it, so a
    GAN's generator pass starts after the discriminator's update; their first one's forward pass starts at
    the first of the assignments right before it that compute what it backpropagates. None when no such
    backward runs there."""
    from looplint.model.events import BACKWARD, CALL, GRAD_CLEAR, STEP, ZERO
    from looplint.model.interp import items_below

    tree = tree_of(model)
    opt = optimizer_expression(model, step)
    step_stmt = tree.statement(step.node)
    container = tree.enclosing(step.node, (cst.For, cst.While, cst.FunctionDef))
    if opt is None or step_stmt is None or container is None:
        return None

    def runs_backward(call) -> bool:
        return call.callee is not None and any(
            getattr(i, "kind", None) == BACKWARD for i in items_below(model.builder.body(call.callee)))

    events = [e for e in function_events(model, model.function_of(step), (STEP, ZERO, GRAD_CLEAR, BACKWARD, CALL))
              if any(a is container for a in tree.ancestors(e.node)) and tree.precedes(e.node, step.node)
              and (e.kind != CALL or runs_backward(e))]
    start = 0
    for i, e in enumerate(events):
        other = optimizer_expression(model, e) if e.kind == STEP else None
        if other is not None and code_of(other) != code_of(opt):
            start = i + 1
    backwards = [e for e in events[start:] if e.kind in (BACKWARD, CALL)]
    anchor = tree.statement(backwards[0].node) if backwards else None
    if anchor is None:
        return None
    anchor = forward_start(tree, anchor, {id(e.node) for e in events})
    return anchor, tree.block_of(anchor) is tree.block_of(step_stmt)


def forward_start(tree: Tree, backward_stmt: cst.CSTNode, event_nodes) -> cst.CSTNode:
    """Where the forward pass of a backward starts: the first of the assignments right before
    ``backward_stmt`` in its block that compute what it backpropagates (``out = model(x)``,
    ``loss = criterion(out, y)``), stopping at a statement that holds an event (``event_nodes``: ids of
    the calls that zero, step or backpropagate)."""
    from looplint.model.scopes import names_in

    siblings = list(tree.siblings(backward_stmt))
    needed = names_in(backward_stmt)
    first = backward_stmt
    for st in reversed(siblings[: siblings.index(backward_stmt)]):
        if not isinstance(st, cst.SimpleStatementLine) or not all(isinstance(s, (cst.Assign, cst.AnnAssign)) for s in st.body):
            break
        if any(id(n) in event_nodes for n in _calls(st)):
            break
        targets = set()
        for s in st.body:
            for t in ([t.target for t in s.targets] if isinstance(s, cst.Assign) else [s.target]):
                targets |= names_in(t)
        if not targets & needed:
            break
        for s in st.body:
            if s.value is not None:
                needed |= names_in(s.value)
        first = st
    return first


def _calls(node: cst.CSTNode) -> List[cst.Call]:
    from looplint.model.walk import descendants

    return [n for n in descendants(node) if type(n) is cst.Call]


def reads(node: cst.CSTNode) -> Set[str]:
    """The whole dotted names ``node`` reads: ``self.loader`` and ``len`` in ``len(self.loader)``, not
    ``self`` on its own."""
    from looplint.model.scopes import dotted
    from looplint.model.walk import descendants

    found: Set[str] = set()
    for n in descendants(node, prune=lambda n: isinstance(n, (cst.Name, cst.Attribute)) and dotted(n) is not None):
        if isinstance(n, (cst.Name, cst.Attribute)):
            d = dotted(n)
            if d is not None:
                found.add(d)
    return found


def writes(statements: Iterable[cst.CSTNode]) -> Set[str]:
    """The dotted names ``statements`` assign (``=``, ``+=``, annotated, ``for`` and ``with ... as``
    targets, ``:=``); an item or slice assigned counts as its container (``cfg`` for ``cfg["lr"] = x``)."""
    from looplint.model.scopes import dotted
    from looplint.model.walk import descendants

    found: Set[str] = set()

    def target(t) -> None:
        if isinstance(t, (cst.Tuple, cst.List)):
            for el in t.elements:
                target(el.value)
        elif isinstance(t, cst.StarredElement):
            target(t.value)
        elif isinstance(t, cst.Subscript):
            target(t.value)
        elif dotted(t) is not None:
            found.add(dotted(t))

    for st in statements:
        for n in descendants(st, prune=lambda n: isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda))):
            if isinstance(n, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr)):
                target(n.target)
            elif isinstance(n, cst.AsName) and isinstance(n.name, (cst.Name, cst.Attribute, cst.Tuple, cst.List)):
                target(n.name)
    return found


def depends_on(node: cst.CSTNode, written: Set[str]) -> bool:
    """Whether a name ``node`` reads may hold another value after assignments to ``written``: the name itself,
    an object it is an attribute of, or an attribute of it is assigned."""
    return any(r == w or r.startswith(w + ".") or w.startswith(r + ".") for r in reads(node) for w in written)


def code_of(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def statement(text: str) -> cst.BaseStatement:
    """One statement parsed from source text (``"optimizer.zero_grad()"``)."""
    return cst.parse_statement(text + "\n")


def insert_before(anchor: cst.CSTNode, *texts: str) -> Edit:
    return Edit(INSERT_BEFORE, anchor, tuple(statement(t) for t in texts))


def insert_after(anchor: cst.CSTNode, *texts: str) -> Edit:
    return Edit(INSERT_AFTER, anchor, tuple(statement(t) for t in texts))


def _without_blank_lines(moved: cst.BaseStatement) -> cst.BaseStatement:
    if isinstance(moved, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        return moved.with_changes(leading_lines=[line for line in moved.leading_lines if line.comment is not None])
    return moved


def move_after(moved: cst.BaseStatement, anchor: cst.CSTNode) -> Tuple[Edit, Edit]:
    """Moves a statement (with the comments above it, without the blank lines) after ``anchor``."""
    return Edit(REMOVE, moved), Edit(INSERT_AFTER, anchor, (_without_blank_lines(moved),))


def move_before(moved: cst.BaseStatement, anchor: cst.CSTNode) -> Tuple[Edit, Edit]:
    """Moves a statement (with the comments above it, without the blank lines) before ``anchor``."""
    return Edit(REMOVE, moved), Edit(INSERT_BEFORE, anchor, (_without_blank_lines(moved),))


def replace(node: cst.CSTNode, new: cst.CSTNode) -> Edit:
    return Edit(REPLACE, node, (new,))


# -- applying edits ---------------------------------------------------------------------------------------

class _Apply(cst.CSTTransformer):
    def __init__(self, edits: Iterable[Edit]):
        super().__init__()
        self.before: Dict[int, List[cst.CSTNode]] = {}
        self.after: Dict[int, List[cst.CSTNode]] = {}
        self.removed = set()
        self.replaced: Dict[int, cst.CSTNode] = {}
        for e in edits:
            if e.kind == INSERT_BEFORE:
                self.before.setdefault(id(e.node), []).extend(e.new)
            elif e.kind == INSERT_AFTER:
                self.after.setdefault(id(e.node), []).extend(e.new)
            elif e.kind == REMOVE:
                self.removed.add(id(e.node))
            elif e.kind == REPLACE:
                self.replaced[id(e.node)] = e.new[0]

    def on_leave(self, original, updated):
        if id(original) in self.replaced:
            return self.replaced[id(original)]
        if isinstance(updated, (cst.IndentedBlock, cst.Module)):
            body = self._body(original.body, updated.body)
            if body is not None:
                if not body and isinstance(updated, cst.IndentedBlock):
                    body = [statement("pass")]
                return updated.with_changes(body=body)
        return updated

    def _body(self, originals, updated) -> Optional[list]:
        changed = False
        out: list = []
        for orig, new in zip(originals, updated):
            before = self.before.get(id(orig))
            if before:
                changed = True
                new, before = _split_leading(new, before)
                out.extend(before)
            if id(orig) in self.removed:
                changed = True
            else:
                out.append(new)
            after = self.after.get(id(orig))
            if after:
                changed = True
                out.extend(after)
        return out if changed else None


def _split_leading(anchor, inserted: List[cst.CSTNode]):
    """The blank lines above ``anchor`` go above the inserted statements; its comments stay with it."""
    if not isinstance(anchor, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        return anchor, inserted
    lines = list(anchor.leading_lines)
    blank = 0
    while blank < len(lines) and lines[blank].comment is None:
        blank += 1
    first = inserted[0]
    if blank and isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        inserted = [first.with_changes(leading_lines=lines[:blank]), *inserted[1:]]
        anchor = anchor.with_changes(leading_lines=lines[blank:])
    return anchor, inserted


def apply_edits(module: cst.Module, edits: Iterable[Edit]) -> cst.Module:
    return module.visit(_Apply(edits))


# -- the fix loop -----------------------------------------------------------------------------------------

@dataclass
class FixResult:
    source: str  # the fixed source (the input when nothing applied)
    fixed: List = field(default_factory=list)  # the diagnostics whose fixes were applied, in order
    remaining: List = field(default_factory=list)  # the diagnostics of the fixed source

    @property
    def changed(self) -> bool:
        return bool(self.fixed)


def _footprint(edit: Edit, positions, tree: Tree) -> Tuple[int, int]:
    node = edit.node
    if edit.kind == REPLACE:
        node = tree.statement(node) or node
    rng = positions[node]
    return rng.start.line, rng.end.line


def choose(module: cst.Module, diagnostics, unsafe: bool, only=None) -> List:
    """The diagnostics whose fixes apply this round: applicable, and touching no statement an earlier
    chosen fix touches (those are deferred to the next round, after re-linting)."""
    candidates = [d for d in diagnostics if d.fix is not None and d.fix.applies(unsafe) and (only is None or only(d))]
    if not candidates:
        return []
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    tree = Tree(module)
    taken: List[Tuple[int, int]] = []
    chosen = []
    for d in candidates:
        try:
            spans = [_footprint(e, positions, tree) for e in d.fix.edits]
        except KeyError:  # a node that is not in this module: a rule's mistake, never applied
            continue
        if any(a <= y and x <= b for a, b in spans for x, y in taken):
            continue
        taken.extend(spans)
        chosen.append(d)
    return chosen


def fix_source(source: str, path: str, rules: Sequence[type], unsafe: bool = False, only=None,
               max_rounds: int = MAX_ROUNDS, remaining: bool = True) -> FixResult:
    """Applies fixes to ``source`` until none applies (at most ``max_rounds`` rounds). ``only(diagnostic)``
    restricts which findings are fixed (the editor fixes one at a time). Without ``remaining``, a source
    fixed in the last round is not linted again (``FixResult.remaining`` is then the previous round's)."""
    from looplint.engine import lint_for_fixes

    result = FixResult(source)
    for _round in range(max_rounds):
        module, diagnostics = lint_for_fixes(result.source, path, rules)
        result.remaining = diagnostics
        if module is None:
            return result
        chosen = choose(module, diagnostics, unsafe, only)
        if not chosen:
            return result
        new = apply_edits(module, [e for d in chosen for e in d.fix.edits]).code
        if new == result.source:
            return result
        result.source = new
        result.fixed.extend(chosen)
    if remaining:
        _module, result.remaining = lint_for_fixes(result.source, path, rules)
    return result


def fixed_text(source: str, path: str, rules: Sequence[type], unsafe: bool = False, finding=None) -> str:
    """``source`` with the fix of one finding (``finding`` = (code, row, column)), or with every applicable
    fix when ``finding`` is None (the editor's code actions; runs in the lint worker)."""
    if finding is None:
        return fix_source(source, path, rules, unsafe=unsafe).source
    return fix_source(source, path, rules, unsafe=unsafe, only=lambda d: (d.code, d.line, d.column) == tuple(finding),
                      max_rounds=1, remaining=False).source
