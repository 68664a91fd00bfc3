"""Loop kinds: batch loops iterate data, epoch loops enclose batch loops, step loops count updates
(``while True``, ``range(max_steps)``), micro-step loops split one update into several backward passes.
"""
from __future__ import annotations

import re
from itertools import chain
from typing import Iterator, Optional, Set

import libcst as cst

from looplint.model.walk import Walker, descendants

from looplint.model.events import BACKWARD, CALL, OPAQUE, STEP as STEP_EVENT, Block, Branch, Event, Loop, Try, code
from looplint.model.roles import LOADER, Frame, Roles, name_kind
from looplint.model.scopes import Function, last_name

BATCH, EPOCH, STEP, MICRO, OTHER, IMPLICIT = "batch", "epoch", "step", "micro", "other", "implicit"
SWEEP = "sweep"  # a loop over a literal list of settings (learning rates, seeds, devices): never an epoch loop

_EPOCH = re.compile(r"epoch", re.I)
_MICRO = re.compile(r"accum|micro|grad_acc|iter_size|sub_?iter|gradient_accumulation|n_critic|critic_iter", re.I)
_STEP = re.compile(r"step|iter|update|num_it|max_it|total", re.I)
_BATCH = re.compile(r"batches|num_batch|n_batch|nbatch|len\(\s*[\w.]*(loader|data)|per_epoch", re.I)
_PIECES = ("chunk", "split", "tensor_split")  # tensor methods (and torch functions) that cut a batch in pieces
_DATA_NAMES = re.compile(r"^(train_)?(dl|data|dataset|batches|train_data|data_iter|trainloader|train_dl|loader)$|loader|batches$", re.I)


WALK_DEPTH = 3  # calls ``walk`` enters, nested


def walk(block: Block, builder, depth: int = 0, seen: Optional[Set[Function]] = None) -> Iterator[object]:
    """Every item below ``block``, entering called functions of this module (bounded depth). Depth first, in
    source order; without recursion (a stack of the item sequences being walked: nested generators would
    pass every item up through each level)."""
    seen = set() if seen is None else seen
    # (items left to walk, call depth, the callee whose body they are: left ``seen`` when done)
    stack: list = [(iter(block.items), depth, None)]
    push, pop, end = stack.append, stack.pop, _END
    while stack:
        items, d, entered = stack[-1]
        item = next(items, end)
        if item is end:
            pop()
            if entered is not None:
                seen.discard(entered)
            continue
        yield item
        t = type(item)
        if t is Block:
            push((iter(item.items), d, None))
        elif t is Branch:
            push((chain.from_iterable(arm.items for arm in item.arms), d, None))
        elif t is Loop:
            push((chain(item.body.items, item.orelse.items), d, None))
        elif t is Try:
            push((chain.from_iterable(b.items for b in (item.body, *item.handlers, item.orelse, item.final)), d, None))
        elif t is Event:
            if item.kind == CALL and item.callee is not None and d < WALK_DEPTH and item.callee not in seen:
                seen.add(item.callee)
                push((iter(builder.body(item.callee).items), d + 1, item.callee))
            elif isinstance(item.closure, Block):
                push((iter(item.closure.items), d, None))


_END = object()


def iter_kind(expr: Optional[cst.BaseExpression], target_names, fn: Function, roles: Roles) -> str:
    """The kind of a ``for`` loop from what it iterates, after the values service has looked through
    iteration wrappers and the names bound to them (``bar = tqdm(enumerate(loader))``)."""
    if expr is None:
        return OTHER
    items = roles.v.iterated(expr, fn)
    if len(items) > 1 or (items and items[0][2]):  # zip(...): the kind of its most telling argument
        kinds = [_source_kind(e, (), f, roles) for e, f, _z in items]
        for k in (BATCH, STEP, EPOCH, MICRO):
            if k in kinds:
                return k
        return OTHER
    if not items:
        return OTHER
    e, where, _z = items[0]
    return _source_kind(e, target_names, where, roles)


def _source_kind(e: cst.BaseExpression, target_names, fn: Function, roles: Roles) -> str:
    if isinstance(e, cst.Call) and last_name(e.func) in ("range", "trange", "xrange"):
        text = " ".join(code(a.value) for a in e.args)
        if _EPOCH.search(text) or any(_EPOCH.search(t) for t in target_names):
            return EPOCH
        if _MICRO.search(text):
            return MICRO
        if _BATCH.search(text):
            return BATCH
        if _STEP.search(text) or any(t in ("step", "it", "iteration", "global_step") for t in target_names):
            return STEP
        return OTHER
    if isinstance(e, cst.Call) and last_name(e.func) in _PIECES and (isinstance(e.func, cst.Attribute) or len(e.args) > 1):
        return MICRO  # ``x.chunk(k)``, ``torch.split(x, n)``: the pieces of one batch, one backward each
    if _settings(e, fn, roles):
        return SWEEP
    if any(_EPOCH.search(t) for t in target_names):
        return EPOCH
    if isinstance(e, cst.Subscript):
        role = roles.resolve(e, Frame(fn))
        if role is not None and role.kind == LOADER:
            return BATCH  # ``for x, y in loaders[0]``: an entry that holds a DataLoader
        if isinstance(e.value, (cst.Name, cst.Attribute)) and re.search(r"loaders$", last_name(e.value) or "", re.I):
            return BATCH  # ``for x, y in dataloaders[phase]``: one loader of a dict of loaders
    if isinstance(e, (cst.Name, cst.Attribute)):
        role = roles.resolve(e, Frame(fn))
        if role is not None and role.kind == LOADER:
            return BATCH
        name = last_name(e) or ""
        if roles.torch_evidence and (name_kind(name) == LOADER or _DATA_NAMES.search(name)):
            return BATCH
    if isinstance(e, cst.Call):
        role = roles.resolve(e, Frame(fn))
        if role is not None and role.kind == LOADER:
            return BATCH
        name = last_name(e.func) or ""
        if re.search(r"loader|batches|get_batch", name, re.I):
            return BATCH
    return OTHER


def _settings(e: cst.BaseExpression, fn: Function, roles: Roles) -> bool:
    """A literal list of settings (``[0.1, 0.01]``, ``("cpu", "cuda")``, ``[(1e-3, 0.9), ...]``), also
    through a name bound to one: a sweep, not a pass over data."""
    found = [(e, fn)] if isinstance(e, (cst.List, cst.Tuple, cst.Set)) else (
        roles.v.assigned_values(e, fn) if isinstance(e, cst.Name) else None)
    if not found:
        return False
    return all(isinstance(v, (cst.List, cst.Tuple, cst.Set)) and v.elements and all(
        _literal(el.value) for el in v.elements if isinstance(el, cst.Element)) for v, _w in found)


def _literal(e: cst.BaseExpression) -> bool:
    if isinstance(e, (cst.Integer, cst.Float, cst.SimpleString, cst.Imaginary)):
        return True
    if isinstance(e, cst.UnaryOperation):
        return _literal(e.expression)
    if isinstance(e, cst.Name):
        return e.value in ("True", "False", "None")
    if isinstance(e, (cst.Tuple, cst.List)):
        return all(_literal(el.value) for el in e.elements)
    if isinstance(e, cst.Dict):
        return all(isinstance(el, cst.DictElement) and _literal(el.key) and _literal(el.value) for el in e.elements)
    return False


def classify_all(builder, roles: Roles, functions) -> None:
    """Sets ``Loop.kind`` for every loop of every function: first from the loop header, then an
    unclassified or counting loop that encloses a batch loop (directly or through calls) is an epoch loop."""
    loops = []
    for fn in functions:
        for loop in _all_loops(builder.body(fn)):
            loop.fn = fn
            loop.kind = _kind_of(loop, fn, roles)
            loops.append(loop)
    parents = {}
    for fn in functions:
        for outer in _all_loops(builder.body(fn)):
            for inner in _direct_loops(outer.body):
                parents[inner] = outer
    for loop in loops:
        if loop.kind == OTHER and _draws_batches(loop, roles, fresh_in=parents.get(loop)):
            # inside another loop, only an iterator made afresh in each of its iterations: one made before
            # it would run out in the second, unless every run takes a few batches of it (a window)
            loop.kind = BATCH
        elif loop.kind == STEP and loop in parents and _draws_batches(loop, roles, fresh_in=parents[loop]):
            # ``batch_iter = iter(loader)`` in every epoch, then ``while True: next(batch_iter)`` (or
            # ``while i < len(loader)``): one pass over the data, not a stream of updates
            loop.kind = BATCH
        elif loop.kind == STEP and loop not in parents and not _at_module_level(loop) and _draws_batches(
                loop, roles, fresh_in=loop.fn):
            # the same in a function that runs one epoch: the iterator is made afresh in every call
            loop.kind = BATCH
    for loop in loops:
        if loop.kind in (OTHER, STEP) and not loop.infinite:
            inner = [i for i in walk(loop.body, builder) if isinstance(i, Loop)]
            # a pass over data that trains (an evaluation loop in a helper makes no epoch of its caller)
            if any(i.kind == BATCH and _trains(i, builder) for i in inner) or (
                    loop.kind == OTHER and any(i.kind == STEP for i in inner)):
                loop.epoch_by_content = loop.kind == OTHER
                loop.kind = EPOCH


def _trains(loop: Loop, builder) -> bool:
    """The loop runs a backward pass or an optimizer step (also through the functions of this module it
    calls), or hands its batch to a function it cannot see as a statement (``train_step(batch)``)."""
    for i in walk(loop.body, builder):
        if not isinstance(i, Event):
            continue
        if i.kind in (BACKWARD, STEP_EVENT):
            return True
        if i.kind == OPAQUE and i.usage == "stmt" and i.target is None and i.call is not None and any(
                isinstance(n, cst.Name) and n.value in loop.target_names for a in i.call.args for n in descendants(a.value)):
            return True
    return False


def _at_module_level(loop: Loop) -> bool:
    return loop.fn is None or loop.fn.is_module


def _draws_batches(loop: Loop, roles: Roles, fresh_in=None) -> bool:
    """``for i in range(n): x, y = next(it)`` with ``it = iter(loader)``: every iteration takes a batch (with
    ``fresh_in``: from an iterator made afresh in each iteration of that enclosing loop, or in each call of
    that function before the loop — one that never runs out, ``cycle(loader)``, is a stream)."""
    fn = getattr(loop, "fn", None)
    if fn is None:
        return False
    found = []

    class V(Walker):
        def visit_Call(self, n: cst.Call) -> None:
            if isinstance(n.func, cst.Name) and n.func.value == "next" and n.args:
                found.append(n.args[0].value)

        def visit_For(self, n) -> bool:
            return False

        def visit_While(self, n) -> bool:
            return False

        def visit_FunctionDef(self, n) -> bool:
            return False

    V().walk(loop.node.body)
    inside = None
    for it in found:
        if _stream(it, fn, roles):
            continue  # a loop that draws from a stream that never runs out is no pass over the data
        if fresh_in is not None:
            binds = roles.v.assigned_values(it, fn) if isinstance(it, cst.Name) else None
            if not binds:
                continue
            if inside is None:
                inside = {id(n) for n in descendants(fresh_in.node.body)}
                if isinstance(fresh_in, Function):  # made before the loop, not again inside it
                    inside -= {id(n) for n in descendants(loop.node)}
            _scope, defs = roles.v.bindings(it.value, fn, it)
            if not defs or not all(getattr(d, "node", None) is not None and id(d.node) in inside for d in defs):
                continue
            if isinstance(fresh_in, Function) and any(_endless(v, w, roles) for v, w in binds):
                continue
        for src, where, _z in roles.v.iterated(it, fn):
            if _source_kind(src, (), where, roles) == BATCH:
                return True
    return False


def _stream(it: cst.BaseExpression, fn: Function, roles: Roles) -> bool:
    """``next(it)`` draws from an iterator that never runs out: every value ``it`` (a name or a ``self``
    attribute) is assigned, besides a ``None`` placeholder, is an endless one."""
    binds = roles.v.assigned_values(it, fn) if isinstance(it, (cst.Name, cst.Attribute)) else None
    values = [(v, w) for v, w in binds or () if not (isinstance(v, cst.Name) and v.value == "None")]
    return bool(values) and all(_endless(v, w, roles) for v, w in values)


def _endless(value: cst.BaseExpression, fn: Function, roles: Roles) -> bool:
    """An iterator that never runs out: ``cycle(loader)``, ``iter(itertools.repeat(...))``, or a call of a
    generator of this module that yields inside a ``while True`` it never leaves."""
    for n in descendants(value):
        if not isinstance(n, cst.Call):
            continue
        callee, _bound = roles.v.resolve_callee(n.func, fn, classes=False)
        if callee is not None:
            if _endless_generator(callee.node):
                return True
        elif last_name(n.func) in ("cycle", "repeat"):
            return True
    return False


def _endless_generator(node: cst.CSTNode) -> bool:
    """A function whose body holds a ``while True:`` that yields and that no ``break`` or ``return`` leaves."""
    if not isinstance(node, cst.FunctionDef) or not isinstance(node.body, cst.IndentedBlock):
        return False
    for st in node.body.body:
        if isinstance(st, cst.While) and isinstance(st.test, cst.Name) and st.test.value == "True":
            kinds = {type(n) for n in descendants(st.body, prune=lambda n: isinstance(
                n, (cst.FunctionDef, cst.ClassDef, cst.Lambda)))}
            # a ``break`` of an inner loop also counts: doubt keeps the loop a pass over the data
            if (cst.Yield in kinds) and not kinds & {cst.Break, cst.Return}:
                return True
    return False


def _all_loops(block: Block) -> Iterator[Loop]:
    for loop in _direct_loops(block):
        yield loop
        yield from _all_loops(loop.body)
        yield from _all_loops(loop.orelse)


def _kind_of(loop: Loop, fn: Function, roles: Roles) -> str:
    if loop.infinite:
        return STEP
    if isinstance(loop.node, cst.While):
        text = code(loop.node.test)
        if _EPOCH.search(text):
            return EPOCH
        if _STEP.search(text) or _BATCH.search(text):
            return STEP
        return OTHER
    return iter_kind(loop.iter_expr, loop.target_names, fn, roles)


def _direct_loops(block: Block) -> Iterator[Loop]:
    for item in block.items:
        if isinstance(item, Loop):
            yield item
        elif isinstance(item, Block):
            yield from _direct_loops(item)
        elif isinstance(item, Branch):
            for arm in item.arms:
                yield from _direct_loops(arm)
        elif isinstance(item, Try):
            for b in (item.body, *item.handlers, item.orelse, item.final):
                yield from _direct_loops(b)


# Calls whose result has as many items as their first argument.
_SAME_LENGTH = frozenset({"list", "tuple", "tqdm", "iter", "enumerate"})


def runs_on_last_iteration(test: cst.BaseExpression, loop: Loop, values, fn: Function) -> bool:
    """Whether ``test`` holds only on the last iteration of ``loop``: the loop's index compared with the
    number of its iterations less one (``i == len(batches) - 1``, ``i + 1 == len(loader)``, ``step == n - 1``),
    the index being an ``enumerate`` count from 0 (``for i, (x, y) in enumerate(loader)``, also through
    ``list``/``tqdm`` and names bound once: ``steps = list(enumerate(loader))``, ``for i, b in tqdm(steps)``)
    or the target of ``range(n)``, and the number read from what the loop iterates (``len`` of it or of what
    it wraps, ``n`` of ``range(n)``)."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1 or not isinstance(
            test.comparisons[0].operator, cst.Equal) or not isinstance(loop.node, cst.For) or loop.iter_expr is None:
        return False
    counts: Set[str] = set()
    index = _loop_index(loop, values, fn, counts)
    if index is None:
        return False
    sides = [_flat(test.left), _flat(test.comparisons[0].comparator)]
    for a, b in (sides, sides[::-1]):
        if a == index and any(b == f"{c}-1" for c in counts):
            return True
        if a == f"{index}+1" and b in counts:
            return True
    return False


def runs_on_few_iterations(test: cst.BaseExpression, loop: Loop, values, fn: Function) -> bool:
    """Whether ``test`` holds on a few iterations of ``loop`` only, the same ones whatever the loop runs:
    the loop's index compared for equality with a value the loop does not change (``epoch == 0``,
    ``epoch is 0``, ``epoch == args.epochs // 2``) or tested for membership in such a collection (``epoch in (30, 60)``),
    the index being the target of ``range(...)`` or an ``enumerate`` count (as ``runs_on_last_iteration``
    reads them): each value of it comes once."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1 or not isinstance(loop.node, cst.For) \
            or loop.iter_expr is None:
        return False
    operator = test.comparisons[0].operator
    if not isinstance(operator, (cst.Equal, cst.Is, cst.In)):  # ``epoch is 0`` holds where ``==`` does (small ints)
        return False
    index = _loop_index(loop, values, fn, set(), any_range=True)
    if index is None:
        return False
    left, right = test.left, test.comparisons[0].comparator
    sides = [(left, right)] if isinstance(operator, cst.In) else [(left, right), (right, left)]
    return any(isinstance(a, cst.Name) and a.value == index and _fixed_in(b, loop) for a, b in sides)


def _loop_index(loop: Loop, values, fn: Function, counts: Set[str], any_range: bool = False) -> Optional[str]:
    """The name of a ``for`` loop's index: the target of ``range(n)`` (of any ``range(...)`` when
    ``any_range``), or the count of an ``enumerate`` from 0 (``_counted``, which adds the spellings of
    the number of iterations to ``counts``); None for another loop."""
    counted = _counted(loop.iter_expr, values, fn, counts, 0)
    target = loop.node.target
    if isinstance(target, cst.Name) and (counted == "range" or (any_range and _is_range(loop.iter_expr))):
        return target.value
    if isinstance(target, cst.Tuple) and counted == "enumerate" and target.elements and isinstance(
            target.elements[0].value, cst.Name):
        return target.elements[0].value.value
    return None


def _is_range(expr: cst.BaseExpression) -> bool:
    """``range(...)`` with any arguments (its values are distinct)."""
    return isinstance(expr, cst.Call) and last_name(expr.func) == "range" and not any(a.star for a in expr.args)


def _fixed_in(expr: cst.BaseExpression, loop: Loop) -> bool:
    """Whether ``expr`` takes the same value on every iteration of ``loop``: literals, and names and
    attributes the loop neither assigns nor iterates, combined by operators, subscripts, ``len()`` and
    ``int()``; no other call."""
    for n in descendants(expr):
        if isinstance(n, cst.Call) and last_name(n.func) not in ("len", "int"):
            return False
        if isinstance(n, cst.Name) and (n.value in loop.assigned or n.value in loop.target_names):
            return False
    return True


def _flat(node: cst.CSTNode) -> str:
    return "".join(code(node).split())


def _counted(expr: cst.BaseExpression, values, fn: Function, counts: Set[str], depth: int) -> Optional[str]:
    """Adds to ``counts`` the spellings of the number of items ``expr`` yields (``len(expr)``, and through
    calls that keep the number and names bound once); returns "enumerate" when its items are
    ``enumerate`` pairs counted from 0, "range" for ``range(n)``, else None."""
    counts.add(f"len({_flat(expr)})")
    if depth > 4:
        return None
    if isinstance(expr, cst.Name) and values is not None:
        bound = values.assigned_values(expr, fn)
        if bound is not None and len(bound) == 1 and bound[0][1] is fn:
            return _counted(bound[0][0], values, fn, counts, depth + 1)
        return None
    if not isinstance(expr, cst.Call) or not expr.args or expr.args[0].keyword is not None or expr.args[0].star:
        return None
    name = last_name(expr.func)
    first = expr.args[0].value
    if name == "range" and len(expr.args) == 1:
        counts.add(_flat(first))
        return "range"
    if name not in _SAME_LENGTH:
        return None
    if name == "enumerate":
        start = expr.args[1].value if len(expr.args) > 1 else None
        if start is not None and not (isinstance(start, cst.Integer) and start.value == "0"):
            return None
        _counted(first, values, fn, counts, depth + 1)
        return "enumerate"
    return _counted(first, values, fn, counts, depth + 1)
