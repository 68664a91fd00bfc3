"""Gradient state (typestate) per optimizer, iterated around every loop to a fixpoint over all paths.

States (DESIGN.md, "Gradient state"): NONE (nothing since zero) -> backward -> FRESH -> step -> USED;
backward on USED -> STALE; zero_grad -> NONE. UNKNOWN after a call that receives the optimizer (or a loss
it cannot see backward of) and cannot be resolved: no finding is drawn from it.

The analysis is path-sensitive in one cheap way: every ``if`` records the value of its test on the path,
and a later ``if`` with the same test on the same path takes the same arm. Assumptions about tests whose
names change inside a loop are forgotten when the path goes around that loop.

Calls to functions and methods of the same module are interpreted in place, with their parameters bound
to the caller's roles, so a helper that zeroes, steps or runs backward counts where it is called.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Set, Tuple

import libcst as cst

from looplint.model import events as ev
from looplint.model.events import Block, Branch, Event, Jump, Loop, Try
from looplint.model.loops import walk
from looplint.model.roles import ENGINE, OPTIMIZER, SCALER, SCHEDULER, Frame, Role, Roles, covers
from looplint.model.schedulers import optimizer_of
from looplint.model.scopes import Function, dotted, positional_args

NONE, FRESH, USED, STALE, UNKNOWN = "NONE", "FRESH", "USED", "STALE", "UNKNOWN"
MAX_PATHS = 64
MAX_DEPTH = 4


class OptState(NamedTuple):
    gs: str
    zeroed_by: Optional[Event] = None  # NONE: the zero_grad that discarded FRESH gradients
    carried: FrozenSet[Loop] = frozenset()  # FRESH: loops whose back edge these gradients crossed
    noop: Optional[Event] = None  # NONE: a step that ran with no gradients in this iteration
    doubt: bool = False  # reached through a module zero_grad that may not cover this optimizer
    sources: FrozenSet[tuple] = frozenset()  # FRESH: the (backward call, frame) pairs these gradients come from


class Path(NamedTuple):
    states: Tuple[OptState, ...]
    assume: FrozenSet[Tuple[str, bool]]
    # Scheduler order (LL203/LL205), kept with ``_replace``: ("pending", sched_step, opt_index, loop) a
    # scheduler step waiting for its optimizer's step in this iteration of ``loop``; ("since", sched_step,
    # opt_index, scheduler) a scheduler step since that optimizer last stepped; ("stepped", opt_index).
    marks: FrozenSet[tuple] = frozenset()


@dataclass
class Outcome:
    normal: Set[Path] = field(default_factory=set)
    brk: Set[Path] = field(default_factory=set)
    cont: Set[Path] = field(default_factory=set)
    ret: Set[Path] = field(default_factory=set)


@dataclass(frozen=True)
class Ctx:
    frame: Frame
    loops: Tuple[Loop, ...] = ()
    stack: Tuple[Function, ...] = ()
    # enclosing ``if`` arms, outermost first: (test key, arm value, number of enclosing loops at the ``if``)
    conds: Tuple[Tuple[Optional[str], bool, int], ...] = ()


@dataclass
class Facts:
    """What the analysis saw, aggregated over every path and calling context."""

    # (event, optimizer) -> states the optimizer was in when the event ran
    incoming: Dict[Tuple[Event, Role], Set[OptState]] = field(default_factory=lambda: defaultdict(set))
    # event -> the optimizer(s) it acted on (step / zero_grad) or the scheduler stepped
    acted_on: Dict[Event, Set[Role]] = field(default_factory=lambda: defaultdict(set))
    # event -> loop stacks (outermost first) it ran under
    loops: Dict[Event, Set[Tuple[Loop, ...]]] = field(default_factory=lambda: defaultdict(set))
    # event -> test keys assumed true/false on the paths that reached it
    guards: Dict[Event, Set[FrozenSet[Tuple[str, bool]]]] = field(default_factory=lambda: defaultdict(set))
    # step events that ran with no gradients and were followed by a backward in the same iteration
    noop_then_backward: Set[Event] = field(default_factory=set)
    # optimizer -> backward calls whose gradients some step of it consumed
    fed: Dict[Role, Set[Event]] = field(default_factory=lambda: defaultdict(set))
    # optimizers whose state became unknown somewhere
    tainted: Set[Role] = field(default_factory=set)
    # all optimizers seen, per root
    optimizers: Set[Role] = field(default_factory=set)
    # roots whose body was treated as one iteration of an unseen loop
    implicit_roots: Set[Function] = field(default_factory=set)
    # event -> frames it ran in (for resolving its operands in context)
    frames: Dict[Event, Set[Frame]] = field(default_factory=lambda: defaultdict(set))
    # every root function analysed
    roots: List[Function] = field(default_factory=list)
    # event -> (loop stack, enclosing ``if`` arms) of each context it ran in (control dependence)
    contexts: Dict[Event, Set[Tuple[Tuple[Loop, ...], tuple]]] = field(default_factory=lambda: defaultdict(set))
    # scheduler step -> optimizer steps of its optimizer that came after it in the same loop iteration
    sched_before_step: Dict[Event, Set[Event]] = field(default_factory=lambda: defaultdict(set))
    # scheduler step -> earlier steps of the same scheduler with no optimizer step in between
    sched_twice: Dict[Event, Set[Event]] = field(default_factory=lambda: defaultdict(set))


def _disjoint(a: Role, b: Role) -> bool:
    """Whether two optimizers surely hold different parameters (distinct modules built in this file)."""
    if a.modules is None or b.modules is None or not (a.modules_built and b.modules_built):
        return False
    return not any(covers(a, m) for m in b.modules)


def _frame_key(br: Branch, frame: Frame) -> str:
    """The test's text, qualified by what its names are bound to in this call: ``len(buffer) < n`` in
    two calls of one helper with different buffers are two different tests."""
    bound = [(n, id(r)) for n, r in frame.bindings if n in br.names]
    return br.key if not bound else br.key + "@" + ",".join(f"{n}={i}" for n, i in sorted(bound))


def _child_frame(callee: Function, caller: Frame, bindings) -> Frame:
    """The frame of a called function. A function defined inside the caller sees the caller's names, so
    it inherits the caller's bindings (those its own parameters and assignments do not shadow)."""
    bindings = list(bindings)
    if callee.parent is caller.fn:
        own = set(callee.params) | set(callee.assigns) | {k for k, _ in bindings}
        bindings.extend((k, v) for k, v in caller.bindings if k not in own)
    return Frame(callee, tuple(bindings))


def merge_facts(into: Facts, part: Facts) -> None:
    """Adds what one root's analysis found to the file's facts."""
    for name in into.__dataclass_fields__:
        mine, theirs = getattr(into, name), getattr(part, name)
        if isinstance(mine, dict):
            for k, v in theirs.items():
                mine[k] |= v
        elif isinstance(mine, set):
            mine |= theirs
        else:
            mine.extend(theirs)


class OverBudget(Exception):
    """A root whose paths multiply beyond reason: it is left unanalysed (doubt is silence)."""


# Path-steps one root may take; real training code needs a few thousand.
BUDGET = 60_000


class Interpreter:
    def __init__(self, model, facts: Facts):
        self.m = model
        self.roles: Roles = model.roles
        self.facts = facts
        self.opts: List[Role] = []
        self.index: Dict[Role, int] = {}
        self.budget = BUDGET
        self._loop_backwards: Dict[Loop, Set[Event]] = {}
        self._effect: Dict[int, bool] = {}
        self._backward_names: Dict[Function, Set[str]] = {}

    # -- entry -----------------------------------------------------------------------------------------
    def run_root(self, fn: Function, cyclic: bool) -> None:
        self.opts = self._collect_optimizers(fn)
        self.index = {r: i for i, r in enumerate(self.opts)}
        self.facts.optimizers.update(self.opts)
        body = self.m.builder.body(fn)
        start = Path(tuple(OptState(NONE) for _ in self.opts), frozenset())
        ctx = Ctx(Frame(fn), (), (fn,))
        if cyclic:
            # one call per iteration of a loop we cannot see: counters it tests periodically
            # (``engine.state.iteration % k``) advance by one per call
            counters = frozenset(i.mod[0] for i in walk(body, self.m.builder) if isinstance(i, Branch) and i.mod)
            loop = Loop(fn.node, body, Block(), True, None, frozenset(), frozenset({"self"}) | counters,
                        kind="implicit", counters=counters)
            self.facts.implicit_roots.add(fn)
            self.loop(loop, {start}, ctx, implicit=True)
        else:
            self.block(body, {start}, ctx)

    def _collect_optimizers(self, fn: Function) -> List[Role]:
        found: List[Role] = []
        seen: Set[int] = set()

        def add(role: Optional[Role]) -> None:
            if role is not None and role.kind == OPTIMIZER and id(role) not in seen:
                seen.add(id(role))
                found.append(role)

        def visit(block: Block, frame: Frame, stack: Tuple[Function, ...]) -> None:
            for item in _items(block):
                if not isinstance(item, Event):
                    continue
                if item.kind in (ev.STEP, ev.ZERO, ev.UNSCALE) and item.target is not None:
                    role = self.roles.resolve(item.target, frame)
                    add(role)
                    if role is not None and role.kind == SCALER and item.call is not None:
                        pos = positional_args(item.call)
                        if pos:
                            add(self.roles.resolve(pos[0], frame))
                    if isinstance(item.closure, Function) and item.closure not in stack and len(stack) < MAX_DEPTH:
                        visit(self.m.builder.body(item.closure), _child_frame(item.closure, frame, []), stack + (item.closure,))
                    elif isinstance(item.closure, Block):
                        visit(item.closure, frame, stack)
                elif item.kind == ev.CALL and item.callee not in stack and len(stack) < MAX_DEPTH:
                    visit(self.m.builder.body(item.callee), self._bind(item, frame), stack + (item.callee,))
                elif item.kind == ev.CONSTRUCT and item.assigned is not None:
                    add(self.roles.resolve(item.assigned, frame))

        visit(self.m.builder.body(fn), Frame(fn), (fn,))
        return found

    # -- control flow -------------------------------------------------------------------------------------
    def block(self, block: Block, paths: Set[Path], ctx: Ctx) -> Outcome:
        out = Outcome()
        current = paths
        for item in block.items:
            if not current:
                break
            if isinstance(item, Event):
                current = self.event(item, current, ctx, out)
                continue
            o = self.item(item, current, ctx)
            out.brk |= o.brk
            out.cont |= o.cont
            out.ret |= o.ret
            current = o.normal
        out.normal = current
        return out

    def item(self, item, paths: Set[Path], ctx: Ctx) -> Outcome:
        if isinstance(item, Block):
            return self.block(item, paths, ctx)
        if isinstance(item, Branch):
            return self.branch(item, paths, ctx)
        if isinstance(item, Loop):
            return self.loop(item, paths, ctx)
        if isinstance(item, Try):
            return self.try_(item, paths, ctx)
        if isinstance(item, Jump):
            o = Outcome()
            if item.kind == "break":
                o.brk = set(paths)
            elif item.kind == "continue":
                o.cont = set(paths)
            elif item.kind == "return":
                o.ret = set(paths)
            return o
        return Outcome(normal=set(paths))

    def branch(self, br: Branch, paths: Set[Path], ctx: Ctx) -> Outcome:
        if not self.has_effect(br):
            return Outcome(normal=set(paths))
        out = Outcome()
        if br.key is None:
            for i, arm in enumerate(br.arms):
                _merge(out, self.block(arm, paths, _within(ctx, None, bool(i))))
            return out
        if br.const is not None:  # only one arm can ever run
            arm = 0 if br.const == br.polarity else 1
            return self.block(br.arms[arm], paths, _within(ctx, br.key, br.polarity if arm == 0 else not br.polarity))
        if br.mod is not None:
            return self._periodic_branch(br, paths, ctx)
        then_value = br.polarity
        # Remember a test's value when another test repeats it, or when nothing in the enclosing loops can
        # change it (``if config.ACCUM > 1:`` takes the same arm on every iteration); remembering any other
        # test only multiplies paths.
        record = self.m.tested_again(br.key) or (
            bool(ctx.loops) and not br.volatile and not any(br.names & l.assigned for l in ctx.loops))
        key = _frame_key(br, ctx.frame)
        for i, arm in enumerate(br.arms):
            value = then_value if i == 0 else not then_value
            selected = set()
            for p in paths:
                known = _assumed(p, key) if record else None
                if known is None:
                    selected.add(p._replace(assume=p.assume | {(key, value)}) if record else p)
                elif known == value:
                    selected.add(p)
            if selected:
                _merge(out, self.block(arm, self._cap(selected), _within(ctx, br.key, value)))
        return out

    def _periodic_branch(self, br: Branch, paths: Set[Path], ctx: Ctx) -> Outcome:
        """``if (i + c) % K == d``: the path remembers which phase of the window it is in."""
        counter, k, phase, then_on_match = br.mod
        base = f"mod:{counter}:{k}:"
        key = f"{base}{phase}"
        out = Outcome()
        if not self.m.tested_again(f"mod:{counter}:{k}"):
            for i, arm in enumerate(br.arms):
                value = then_on_match if i == 0 else not then_on_match
                _merge(out, self.block(arm, paths, _within(ctx, br.key, value if br.polarity else not value)))
            return out
        for i, arm in enumerate(br.arms):
            want = then_on_match if i == 0 else not then_on_match  # does this arm need "phase matches"?
            selected = set()
            for p in paths:
                known = _phase_matches(p, base, phase)
                if known is None:  # what the loop's start says about its first iterations
                    known = _phase_matches(p, f"mod:{counter}:*:", phase)
                if known is None:
                    selected.add(p._replace(assume=p.assume | {(key, want)}))
                elif known == want:
                    selected.add(p)
            if selected:
                _merge(out, self.block(arm, self._cap(selected), _within(ctx, key, want)))
        return out

    def loop(self, loop: Loop, paths: Set[Path], ctx: Ctx, implicit: bool = False) -> Outcome:
        inner = Ctx(ctx.frame, ctx.loops + (loop,), ctx.stack, ctx.conds)
        seen: Set[Path] = set()
        todo = {self._enter(p, loop) for p in paths}
        exits: Set[Path] = set()
        out = Outcome()
        variant = self._variant_keys(loop)
        rounds = 0
        while todo:
            rounds += 1
            seen |= todo
            o = self.block(loop.body, todo, inner)
            ends = o.normal | o.cont
            if implicit:
                ends |= o.ret
            else:
                out.ret |= o.ret
            exits |= ends
            out.normal |= {self._forget(p, variant, loop) for p in o.brk}
            self.budget -= len(ends) * (1 + len(self.opts))
            if self.budget < 0:
                raise OverBudget()
            back = {self._back_edge(p, loop, variant) for p in ends}
            todo = self._cap(back) - seen
            if rounds > 50:  # the state space is finite; this only guards against surprises
                break
        if loop.infinite and not implicit:
            normal_exits: Set[Path] = set()
        else:
            normal_exits = {self._forget(p, variant, loop) for p in exits}
        if loop.orelse.items and normal_exits:
            o = self.block(loop.orelse, normal_exits, ctx)
            out.ret |= o.ret
            out.brk |= o.brk
            out.cont |= o.cont
            normal_exits = o.normal
        out.normal |= normal_exits
        return out

    def try_(self, t: Try, paths: Set[Path], ctx: Ctx) -> Outcome:
        body = self.block(t.body, paths, ctx)
        out = Outcome(brk=set(body.brk), cont=set(body.cont), ret=set(body.ret))
        normal = set()
        if t.orelse.items:
            o = self.block(t.orelse, body.normal, ctx)
            _merge_jumps(out, o)
            normal |= o.normal
        else:
            normal |= body.normal
        if t.handlers:
            entry = set(paths) | body.normal
            for h in t.handlers:
                o = self.block(h, entry, ctx)
                _merge_jumps(out, o)
                normal |= o.normal
        if t.final.items:
            o = self.block(t.final, normal, ctx)
            _merge_jumps(out, o)
            normal = o.normal
        out.normal = normal
        return out

    # -- events ---------------------------------------------------------------------------------------------
    def event(self, e: Event, paths: Set[Path], ctx: Ctx, out: Outcome) -> Set[Path]:
        self.budget -= len(paths)
        if self.budget < 0:
            raise OverBudget()
        f = self.facts
        f.loops[e].add(ctx.loops)
        f.frames[e].add(ctx.frame)
        f.contexts[e].add((ctx.loops, ctx.conds))
        for p in paths:
            f.guards[e].add(p.assume)
        kind = e.kind
        if kind == ev.CALL:
            return self.call(e, paths, ctx)
        if kind == ev.BACKWARD:
            if e.dist:
                return paths
            # a backward pass is identified with its calling context: the same helper called for two
            # models is two different backward passes
            src = (e, ctx.frame)
            return {self._apply_all(p, lambda s: _backward(s, src)) for p in paths}
        if kind == ev.STEP:
            return self.step(e, paths, ctx)
        if kind == ev.ZERO:
            role = self.roles.resolve(e.target, ctx.frame) if e.target is not None else None
            if role is not None and role.kind == OPTIMIZER:
                # another optimizer that may hold some of the same parameters may be cleared too
                shared = [o for o in self.opts if o is not role and not _disjoint(o, role)]
                return self._zero(e, paths, [role], shared)
            if role is not None and role.kind == ENGINE:
                return self._zero(e, paths, self.opts)
            if role is not None and role.kind in (SCHEDULER, SCALER):
                return paths
            key, built = self.roles.module_ref(e.target, ctx.frame) if e.target is not None else (None, False)
            return self._zero_module(e, paths, key, built)
        if kind == ev.GRAD_CLEAR:
            key, built = (self.roles.module_ref(e.param_loop_module, ctx.frame) if e.param_loop_module is not None
                          else (None, False))
            return self._zero_module(e, paths, key, built)
        if kind == ev.BIND:  # a new optimizer object from here on: it has consumed nothing yet
            role = self.roles.resolve(e.target, ctx.frame)
            if role is not None and role in self.index:
                if e.each_iteration:  # ``for opt in optimizers``: another object every time round
                    return {self._apply(p, [role], lambda s: OptState(UNKNOWN)) for p in paths}
                return {self._apply(p, [role], _new_optimizer) for p in paths}
            return paths
        if kind == ev.GRAD_WRITE:  # gradients written by hand: present, but of no backward we track
            return {self._apply(p, self.opts, lambda s: OptState(FRESH, doubt=True)) for p in paths}
        if kind == ev.MANUAL_UPDATE:
            return {self._apply(p, self.opts, _manual_update) for p in paths}
        if kind == ev.OPAQUE:
            hit = self._opaque_targets(e, ctx)
            if hit:
                f.tainted.update(hit)
                return {self._apply(p, hit, lambda s: OptState(UNKNOWN)) for p in paths}
            return paths
        if kind == ev.CONSTRUCT and e.assigned is not None:
            role = self.roles.resolve(e.assigned, ctx.frame)
            if role is not None and role in self.index:
                f.acted_on[e].add(role)
                return {self._apply(p, [role], _new_optimizer) for p in paths}
        if kind == ev.UNSCALE and e.call is not None:
            pos = positional_args(e.call)
            role = self.roles.resolve(pos[0], ctx.frame) if pos else None
            if role is not None:
                f.acted_on[e].add(role)
                for p in paths:
                    if role in self.index:
                        f.incoming[(e, role)].add(p.states[self.index[role]])
        return paths

    def step(self, e: Event, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        role = self.roles.resolve(e.target, ctx.frame) if e.target is not None else None
        if role is None:
            return paths
        if role.kind == SCHEDULER:
            self.facts.acted_on[e].add(role)
            return self._scheduler_step(e, role, paths, ctx)
        if role.kind == ENGINE:  # engine.step() applies and clears the gradients it manages itself
            return {self._apply(p, self.opts, lambda s: OptState(NONE)) for p in paths}
        via_scaler = False
        if role.kind == SCALER:
            pos = positional_args(e.call) if e.call is not None else []
            opt = self.roles.resolve(pos[0], ctx.frame) if pos else None
            if opt is None or opt.kind != OPTIMIZER:
                return paths
            role, via_scaler = opt, True  # scaler.step(optimizer): the argument is no closure
        elif role.kind != OPTIMIZER:
            # ``thing.step(optimizer)`` on something we cannot identify may step that optimizer
            for a in (positional_args(e.call) if e.call is not None else []):
                opt = self.roles.resolve(a, ctx.frame) if dotted(a) else None
                if opt is not None and opt in self.index:
                    self.facts.tainted.add(opt)
                    paths = {self._apply(p, [opt], lambda s: OptState(UNKNOWN)) for p in paths}
            return paths
        if role not in self.index:
            return paths
        self.facts.acted_on[e].add(role)
        if via_scaler:
            pass
        elif e.closure is not None:
            paths = self._run_closure(e, paths, ctx)
        elif e.closure_unknown:
            self.facts.tainted.add(role)
            paths = {self._apply(p, [role], lambda s: OptState(UNKNOWN)) for p in paths}
        i = self.index[role]
        out = set()
        for p in paths:
            s = p.states[i]
            self.facts.incoming[(e, role)].add(s)
            if s.gs == NONE:
                new = OptState(NONE, s.zeroed_by, frozenset(), e, s.doubt)
            else:
                # a step over gradients of unknown origin, or a second step, consumes we know not what
                new = OptState(USED, doubt=s.gs == UNKNOWN or (s.gs == USED and s.doubt))
                self.facts.fed[role].update(s.sources)
            p = p._replace(states=p.states[:i] + (new,) + p.states[i + 1:])
            out.add(self._optimizer_stepped(e, i, p))
        return out

    # -- scheduler order (LL203, LL205) -----------------------------------------------------------------------
    def _scheduler_step(self, e: Event, role: Role, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        """Before its optimizer ever stepped, a scheduler step waits for that optimizer's step in the
        current iteration of the innermost loop (LL203: the first learning rate is skipped); after, it
        notes an earlier step of the same scheduler since that optimizer last stepped (LL205)."""
        opt = optimizer_of(role, self.roles)
        if opt is None or opt not in self.index:
            if opt is not None or len(self.opts) != 1:
                return paths
            opt = self.opts[0]  # built over an optimizer we cannot name here; the only one stepped here
        i = self.index[opt]
        loop = ctx.loops[-1] if ctx.loops else None
        out = set()
        for p in paths:
            marks = set(p.marks)
            if ("stepped", i) in marks:
                for m in p.marks:
                    if m[0] == "since" and m[2] == i and m[3] is role and m[1] is not e:
                        self.facts.sched_twice[e].add(m[1])
                marks.add(("since", e, i, role))
            elif loop is not None:  # the optimizer has never stepped on this path: this step comes first
                marks.add(("pending", e, i, loop))
            out.add(p._replace(marks=frozenset(marks)))
        return out

    def _builds_schedulers(self) -> bool:
        """Whether this module constructs a scheduler (only then are optimizer steps worth marking)."""
        got = getattr(self, "_sched_built", None)
        if got is None:
            got = any(isinstance(i, Event) and i.kind == ev.CONSTRUCT and i.call is not None
                      and self.roles.ctor_kind(i.call)[0] == SCHEDULER
                      for fn in self.m.scopes.functions for i in _items(self.m.builder.body(fn)))
            self._sched_built = got
        return got

    def _optimizer_stepped(self, e: Event, i: int, p: Path) -> Path:
        if not p.marks:
            if not self._builds_schedulers():
                return p
            return p._replace(marks=frozenset({("stepped", i)}))
        keep = {("stepped", i)}
        for m in p.marks:
            if m[0] in ("pending", "since") and m[2] == i:
                if m[0] == "pending":
                    self.facts.sched_before_step[m[1]].add(e)
                continue
            keep.add(m)
        return p._replace(marks=frozenset(keep))

    def _run_closure(self, e: Event, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        c = e.closure
        if isinstance(c, Block):
            o = self.block(c, paths, ctx)
            return o.normal | o.ret
        if c in ctx.stack or len(ctx.stack) >= MAX_DEPTH:
            return paths
        frame = _child_frame(c, ctx.frame, [])
        o = self.block(self.m.builder.body(c), paths, Ctx(frame, ctx.loops, ctx.stack + (c,), ctx.conds))
        return o.normal | o.ret

    def call(self, e: Event, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        callee = e.callee
        if callee in ctx.stack or len(ctx.stack) >= MAX_DEPTH or not self.has_effect_fn(callee):
            return paths
        frame = self._bind(e, ctx.frame)
        o = self.block(self.m.builder.body(callee), paths, Ctx(frame, ctx.loops, ctx.stack + (callee,), ctx.conds))
        return o.normal | o.ret

    def _bind(self, e: Event, caller: Frame) -> Frame:
        callee = e.callee
        params = [p for p in callee.params]
        if e.bound_self and params and params[0] == "self":
            params = params[1:]
        elif callee.cls is not None and params and params[0] in ("self", "cls"):
            params = params[1:]
        bindings = []
        call = e.call
        if call is not None:
            i = 0
            for a in call.args:
                if a.star:
                    break
                if a.keyword is not None:
                    name = a.keyword.value
                elif i < len(params):
                    name = params[i]
                    i += 1
                else:
                    continue
                if name in callee.params:
                    bindings.append((name, self.roles.resolve(a.value, caller) if dotted(a.value) else None))
        return _child_frame(callee, caller, bindings)

    def _opaque_targets(self, e: Event, ctx: Ctx) -> List[Role]:
        call = e.call
        if call is None:
            return []
        hit: List[Role] = []
        refs = []
        if e.target is not None:
            if isinstance(e.target, cst.Name) and e.target.value == "self":
                return [o for o in self.opts if ".self." in (o.key or "")]
            refs.append(e.target)
        for a in call.args:
            refs.extend(_refs(a.value))
        loss_like = False
        backward_names = self._backward_receivers(ctx.frame.fn)
        for r in refs:
            role = self.roles.resolve(r, ctx.frame)
            if role is not None and role.kind == OPTIMIZER and role in self.index:
                hit.append(role)
            d = dotted(r) or ""
            if "loss" in d.lower().rsplit(".", 1)[-1] and d not in backward_names and r is not e.target:
                loss_like = True
        if loss_like:
            return list(self.opts)
        return hit

    def _backward_receivers(self, fn: Function) -> Set[str]:
        got = self._backward_names.get(fn)
        if got is None:
            got = set()
            for item in _items(self.m.builder.body(fn)):
                if isinstance(item, Event) and item.kind == ev.BACKWARD and item.target is not None:
                    d = dotted(item.target)
                    if d:
                        got.add(d)
                    if item.call is not None:
                        for a in item.call.args:
                            for r in _refs(a.value):
                                d = dotted(r)
                                if d:
                                    got.add(d)
            self._backward_names[fn] = got
        return got

    # -- transfer helpers -----------------------------------------------------------------------------------
    def _zero_module(self, e: Event, paths: Set[Path], key: Optional[str], built: bool = False) -> Set[Path]:
        """A module's zero_grad clears an optimizer for sure when the optimizer holds that module's
        parameters; it surely leaves it alone only when both are distinct objects built in this file
        (``netD`` vs ``netG``); anything else is a doubtful clearing."""
        certain = [o for o in self.opts if key is not None and o.modules is not None and covers(o, key)]
        disjoint = [o for o in self.opts if key is not None and built and o.modules_built and not covers(o, key)]
        doubtful = [o for o in self.opts if o not in certain and o not in disjoint]
        return self._zero(e, paths, certain, doubtful)

    def _zero(self, e: Event, paths: Set[Path], roles: Iterable[Role], doubtful: Iterable[Role] = ()) -> Set[Path]:
        """Clears the optimizers' gradients. For ``doubtful`` ones (a module zero_grad that may not hold
        their parameters) the clearing is assumed, but nothing after it may accuse."""
        roles = [r for r in roles if r in self.index]
        doubtful = [r for r in doubtful if r in self.index]
        self.facts.acted_on[e].update(roles)
        self.facts.acted_on[e].update(doubtful)
        out = set()
        for p in paths:
            states = list(p.states)
            for r in roles:
                i = self.index[r]
                s = states[i]
                self.facts.incoming[(e, r)].add(s)
                # a zeroing right after a step that found nothing keeps that step's mark (step; zero; backward)
                states[i] = OptState(NONE, e if s.gs == FRESH and not s.doubt else None, noop=s.noop if s.gs == NONE else None)
            for r in doubtful:
                i = self.index[r]
                s = states[i]
                self.facts.incoming[(e, r)].add(s._replace(doubt=True))
                states[i] = OptState(NONE, doubt=True)
            out.add(p._replace(states=tuple(states)))
        return out

    def _apply_all(self, p: Path, fn) -> Path:
        states = []
        for s in p.states:
            if s.gs == NONE and s.noop is not None and not s.doubt:
                self.facts.noop_then_backward.add(s.noop)
            states.append(fn(s))
        return p._replace(states=tuple(states))

    def _apply(self, p: Path, roles, fn) -> Path:
        states = list(p.states)
        for r in roles:
            if r in self.index:
                i = self.index[r]
                states[i] = fn(states[i])
        return p._replace(states=tuple(states))

    def _variant_keys(self, loop: Loop):
        return loop.assigned

    def _enter(self, p: Path, loop: Loop) -> Path:
        """A new run of ``loop``: its targets restart, and gradients carried around an earlier run of it
        belong to that run."""
        states = tuple(s._replace(carried=s.carried - {loop}) if loop in s.carried else s for s in p.states)
        assume = p.assume
        if assume and loop.target_names:
            assume = frozenset(a for a in assume if not (
                (a[0].startswith("mod:") and a[0].split(":", 2)[1] in loop.target_names)
                or (not a[0].startswith("mod:") and (self.m.branch_info.get(a[0].split("@")[0], (frozenset(),))[0] & loop.target_names))))
        for counter, start in loop.starts:  # ``enumerate(loader)``: the counter starts at phase 0
            if start == 0:
                assume = assume | {(f"mod:{counter}:*:0", True)}
        return p._replace(states=states, assume=assume)

    def _forget(self, p: Path, variant, loop: Loop, keep_mod=frozenset()) -> Path:
        """Drops what the path assumed about tests whose value may change in the next iteration (but
        keeps the phase of counters that ``_back_edge`` has just advanced). The iteration of ``loop`` is
        over: scheduler steps still waiting for an optimizer step in it stop waiting."""
        if p.marks:
            p = _end_iteration(p, loop)
        if not p.assume:
            return p
        keep = frozenset(a for a in p.assume
                         if (a[0].startswith("mod:") and a[0].split(":", 2)[1] in keep_mod)
                         or not self._is_variant(a[0], variant))
        return p._replace(assume=keep) if keep != p.assume else p

    def _is_variant(self, key: str, variant) -> bool:
        info = self.m.branch_info.get(key.split("@")[0])
        if info is None:
            return True
        names, volatile = info
        return volatile or bool(names & variant)

    def _backwards_in(self, loop: Loop) -> Set[Event]:
        got = self._loop_backwards.get(loop)
        if got is None:
            got = {i for i in walk(loop.body, self.m.builder) if isinstance(i, Event) and i.kind == ev.BACKWARD}
            self._loop_backwards[loop] = got
        return got

    def _back_edge(self, p: Path, loop: Loop, variant) -> Path:
        states = []
        for s in p.states:
            if s.gs == FRESH and any(src[0] in self._backwards_in(loop) for src in s.sources):
                # gradients this loop's own backward passes accumulate across its iterations
                states.append(OptState(FRESH, None, s.carried | {loop}, None, s.doubt, s.sources))
            elif s.noop is not None:
                states.append(OptState(s.gs, s.zeroed_by, s.carried, None, s.doubt))
            else:
                states.append(s)
        assume = set()
        for k, v in p.assume:
            if k.startswith("mod:"):
                rest, phase = k.rsplit(":", 1)
                counter = rest.split(":", 2)[1]
                if rest.endswith(":*"):
                    # the first iteration (counter == 0) is followed by one that is not at phase 0
                    if counter in loop.counters and phase == "0" and v:
                        assume.add((k, False))
                    continue
                if counter in loop.counters:
                    # one iteration later the counter is one phase further; after the last (-1) of a
                    # window comes the first (0) of the next
                    q = int(phase)
                    nxt = 0 if q == -1 else q + 1
                    if -3 <= nxt <= 3:
                        assume.add((f"{rest}:{nxt}", v))
                    continue
            assume.add((k, v))
        return self._forget(p._replace(states=tuple(states), assume=frozenset(assume)), variant, loop, keep_mod=loop.counters)

    def _cap(self, paths: Set[Path]) -> Set[Path]:
        """Keeps the path count bounded by forgetting assumptions, the least useful first: phases of
        periodic counters far from a window's ends, then all phases, then everything."""
        if len(paths) <= MAX_PATHS:
            return paths
        for keep in (_near_window_ends, _not_periodic, lambda a: False):
            paths = {p._replace(assume=frozenset(a for a in p.assume if keep(a))) for p in paths}
            if len(paths) <= MAX_PATHS:
                break
        return paths

    # -- which items can change anything --------------------------------------------------------------------
    def has_effect(self, item) -> bool:
        k = id(item)
        got = self._effect.get(k)
        if got is None:
            got = any(isinstance(i, (Event, Jump)) for i in _items_shallow(item))
            self._effect[k] = got
        return got

    def has_effect_fn(self, fn: Function) -> bool:
        return self.has_effect(self.m.builder.body(fn))


def _backward(s: OptState, e) -> OptState:
    if s.gs == NONE:
        return OptState(FRESH, doubt=s.doubt, sources=frozenset({e}))
    if s.gs == FRESH:
        return s if e in s.sources else s._replace(sources=s.sources | {e})
    if s.gs in (USED, STALE):
        return OptState(STALE, doubt=s.doubt)
    return s


def _new_optimizer(s: OptState) -> OptState:
    """A newly built optimizer has applied nothing, but the parameters may already hold gradients."""
    if s.gs == NONE:
        return OptState(NONE, doubt=s.doubt)
    if s.gs == UNKNOWN:
        return s
    return OptState(FRESH, doubt=True, sources=s.sources)


def _manual_update(s: OptState) -> OptState:
    """A hand-written update consumes gradients, of which parameters we cannot tell."""
    if s.gs in (FRESH, STALE):
        return OptState(USED, doubt=True)
    return s


def _near_window_ends(a) -> bool:
    return not a[0].startswith("mod:") or (":*:" not in a[0] and a[0].rsplit(":", 1)[1] in ("0", "-1"))


def _not_periodic(a) -> bool:
    return not a[0].startswith("mod:")


def _phase_matches(p: Path, base: str, phase: int) -> Optional[bool]:
    """Whether the counter is known to be (or not to be) at ``phase`` of its window on this path."""
    exact = _assumed(p, f"{base}{phase}")
    if exact is not None:
        return exact
    for k, v in p.assume:
        if k.startswith(base):
            other = int(k[len(base):])
            # known to be at a neighbouring phase: windows have at least two iterations, so neighbours
            # differ (phases further apart may coincide when the window is short)
            if v and abs(other - phase) == 1:
                return False
    return None


def _assumed(p: Path, key: str) -> Optional[bool]:
    for k, v in p.assume:
        if k == key:
            return v
    return None


def _end_iteration(p: Path, loop: Loop) -> Path:
    keep = frozenset(m for m in p.marks if not (m[0] == "pending" and m[3] is loop))
    return p._replace(marks=keep) if keep != p.marks else p


def _within(ctx: Ctx, key: Optional[str], value: bool) -> Ctx:
    """The context inside one arm of an ``if`` (key None: a ``match`` case)."""
    return Ctx(ctx.frame, ctx.loops, ctx.stack, ctx.conds + ((key, value, len(ctx.loops)),))


def _merge(out: Outcome, o: Outcome) -> None:
    out.normal |= o.normal
    _merge_jumps(out, o)


def _merge_jumps(out: Outcome, o: Outcome) -> None:
    out.brk |= o.brk
    out.cont |= o.cont
    out.ret |= o.ret


def _refs(e: cst.BaseExpression) -> List[cst.BaseExpression]:
    if isinstance(e, (cst.Name, cst.Attribute)) and dotted(e) is not None:
        return [e]
    if isinstance(e, (cst.List, cst.Tuple, cst.Set)):
        return [r for el in e.elements for r in _refs(el.value)]
    if isinstance(e, cst.Dict):
        return [r for el in e.elements if isinstance(el, cst.DictElement) for r in _refs(el.value)]
    return []


def _items(block: Block):
    """Every item below a block within one function (no call expansion)."""
    for item in block.items:
        yield item
        if isinstance(item, Block):
            yield from _items(item)
        elif isinstance(item, Branch):
            for arm in item.arms:
                yield from _items(arm)
        elif isinstance(item, Loop):
            yield from _items(item.body)
            yield from _items(item.orelse)
        elif isinstance(item, Try):
            for b in (item.body, *item.handlers, item.orelse, item.final):
                yield from _items(b)
        elif isinstance(item, Event) and isinstance(item.closure, Block):
            yield from _items(item.closure)


def _items_shallow(item):
    if isinstance(item, Block):
        yield from _items(item)
    elif isinstance(item, (Branch, Loop, Try)):
        yield from _items(Block([item]))
    else:
        yield item
