"""The path interpreter every analysis of the model runs on.

An analysis (a *domain*: gradient state, mixed precision, train/eval modes, clipping) says what each event
does to its state; this module walks the event tree of a root function over all paths and owns everything
else, once for all of them:

* **Branches** remember the value of tests that matter again (a test repeated later, or one nothing in the
  enclosing loops can change), so ``if use_amp:`` twice is two paths, not four; periodic tests
  ``(i + c) % K == d`` (also through a phase variable, ``k = i % K``, or a loop target drawn from
  ``cycle(range(...))``) carry the counter's phase around the loop; a test on a flag only ever assigned
  one literal takes one arm, and so does a test of a helper's parameter that the call binds to a literal
  (``Frame.literals``); what a call assumed about its own local names ends with the call; an ``elif``
  chain is walked without recursion.
* **Loops** run to a fixpoint; the back edge advances counters and forgets what the next iteration may
  change, and what the iteration assumed about tests that gate no gradient event and no jump (``if
  rank == 0: log(...)``, ``if use_guidance: sample(...)``): the next iteration may take either arm of
  those. Only a test that gates the gradients (``if cfg.accum > 1:``) keeps its arm on every iteration;
  carrying the others multiplied the paths entering the loop by two per flag (six logging and sampling
  flags in one training loop: a thousand entries per analysis). ``break``/``continue``/``return`` leave
  the right way; ``try`` handlers are entered from before and after their body.
* **Calls** of functions and methods of the module are interpreted in place with their parameters bound
  to the caller's roles (``Frame``); closures run where the optimizer runs them, with ``partial``-bound
  arguments bound.
* **Cost.** Calls, loops and loop bodies are memoised per (callee or loop, context, entry path) and
  shared by every path that reaches them, so nested loops and helpers cost what the code has, not the
  product of their paths. The entry path is first projected on what the code can observe (``project``:
  its ``Footprint``): assumptions about tests it never makes, and what the domain says it cannot read,
  are set aside and given back to its exits (``restore``), so entries that differ only there share a
  run. A call or loop that keeps being entered with different paths in one context (a helper called
  after ever more different gradient histories) is entered, after ``MAX_ENTRIES`` of them, with what
  the domain calls history forgotten (``forget_history``): its runs stay bounded. A path-step budget
  remains only as a guard.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Set, Tuple

import libcst as cst

from looplint.model import events as ev
from looplint.model.events import Block, Branch, Event, Jump, Loop, Try
from looplint.model.roles import MODULE, OPTIMIZER, SCALER, Frame, Role
from looplint.model.scopes import Function, positional_args
from looplint.model.values import Values, class_of

MAX_PATHS = 64
MAX_ENTRIES = 64  # distinct entry paths per call or loop and context before their histories are forgotten
MAX_DEPTH = 5
BUDGET = 400_000  # path-steps per root; real training code needs a few thousand


class Footprint(NamedTuple):
    """What a function or loop, with every function and closure it may run, can look at or change."""

    tested: FrozenSet[str]  # the keys of its tests
    loop_names: FrozenSet[str]  # names its loops assign or iterate
    loops: FrozenSet[Loop]
    kinds: FrozenSet[str]  # kinds of its events
    backwards: FrozenSet[Event]  # its backward passes
    functions: FrozenSet[Function]  # the functions and closures it may run (a function: itself too)


class OverBudget(Exception):
    """A root whose paths multiply beyond reason: left unanalysed."""


@dataclass
class Outcome:
    normal: Set = field(default_factory=set)
    brk: Set = field(default_factory=set)
    cont: Set = field(default_factory=set)
    ret: Set = field(default_factory=set)


@dataclass(frozen=True)
class Ctx:
    frame: Frame
    loops: Tuple[Loop, ...] = ()
    stack: Tuple[Function, ...] = ()
    # enclosing ``if`` arms, outermost first: (test key, arm value, number of enclosing loops at the ``if``)
    conds: Tuple[Tuple[Optional[str], bool, int], ...] = ()


def child_frame(callee: Function, caller: Frame, bindings, keys=(), tests=(), literals=(), exprs=(),
                free=()) -> Frame:
    """The frame of a called function. A function defined inside the caller sees the caller's names, so
    it inherits the caller's bindings (those its own parameters and assignments do not shadow); a name of
    an enclosing scope bound at the call (``Frame.free``) stays bound in every function that reads it."""
    own = set(callee.params) | set(callee.assigns) | callee.globals_
    free = list(free) + [(k, v, scope) for k, v, scope in caller.free if k not in own
                         and not any(k == x for x, _v, _s in free) and _encloses(scope, callee)]
    bindings = list(bindings)
    keys = list(keys)
    tests = list(tests)
    literals = list(literals)
    if callee.parent is caller.fn or (caller.fn is not None and callee.parent is not None
                                     and callee.parent in _ancestors(caller.fn)):
        own = set(callee.params) | set(callee.assigns) | {k for k, _ in bindings}
        bindings.extend((k, v) for k, v in caller.bindings if k not in own)
        keys.extend((k, v) for k, v in caller.keys if k not in own)
        tests.extend((k, v) for k, v in caller.tests if k not in own)
        literals.extend((k, v) for k, v in caller.literals if k not in own)
    elif callee.cls is not None and caller.fn is not None and callee.cls is class_of(caller.fn):
        keys.extend((k, v) for k, v in caller.keys if k == "self" and not any(x == "self" for x, _ in keys))
    return Frame(callee, tuple(bindings), tuple(keys), tuple(tests), tuple(literals), tuple(exprs), tuple(free))


def _encloses(scope: Function, fn: Function) -> bool:
    """Whether ``fn`` is defined inside ``scope`` (at any depth), in the same module."""
    return fn.home is scope.home and any(a is scope for a in _ancestors(fn))


def _ancestors(fn: Function):
    f = fn.parent
    while f is not None:
        yield f
        f = f.parent


class Interp:
    """Walks event trees over sets of paths. A path is a hashable named tuple with an ``assume`` field
    (frozenset of (test key, value)); everything else in it belongs to the domain (a subclass)."""

    #: event kinds the domain acts on (others are skipped without cost); None: every kind
    KINDS: Optional[FrozenSet[str]] = None
    #: event kinds whose enclosing ``if`` arms (``Ctx.conds``) the domain records: a run of code without
    #: them is shared by every context that differs only in those arms
    CONTEXT_KINDS: FrozenSet[str] = frozenset()
    #: whether ``on_unseen_call`` gives the paths back unchanged: only then may a call that is inert but for
    #: calls the interpreter would not enter (recursion, depth) be skipped (``inert``)
    UNSEEN_IS_NOTHING = False

    def __init__(self, model):
        self.m = model
        self.roles = model.roles
        self.budget = BUDGET
        self._effect: Dict[int, bool] = {}
        self._memo: Dict[tuple, Outcome] = {}
        self._nested: Dict[Loop, frozenset] = {}
        self._entries: Dict[tuple, Set] = {}
        self._footprints: Dict[object, Footprint] = {}
        self._inert: Dict[tuple, bool] = {}
        self._call_tests: Dict[tuple, FrozenSet[str]] = {}
        # what an assumption set keeps through a filter, by (filter, set): paths share few distinct sets,
        # and the filters ask the model about every assumption of every path at every loop edge
        self._kept: Dict[tuple, FrozenSet] = {}
        self._arms: Dict[tuple, bool] = {}  # per (if, frame, call stack): ``_arms_inert``

    # -- domain hooks -----------------------------------------------------------------------------------
    def event(self, e: Event, paths: Set, ctx: Ctx) -> Set:  # pragma: no cover - abstract
        """The paths after a (non-CALL) event."""
        raise NotImplementedError

    def on_enter(self, p, loop: Loop):
        """A path entering a new run of ``loop``."""
        return p

    def on_back_edge(self, p, loop: Loop):
        """A path going round ``loop`` again (after the interpreter advanced its counters)."""
        return p

    def on_exit(self, p, loop: Loop):
        """A path leaving an iteration of ``loop`` (by its end, ``break`` or the back edge)."""
        return p

    def on_leave(self, p, loop: Loop):
        """A path leaving ``loop`` itself (at its head, by ``break`` or by ``return``)."""
        return p

    def on_handler(self, paths: Set, t: Try, ctx: Ctx) -> Set:
        """Paths entering an ``except`` handler of ``t``."""
        return paths

    def inert_event(self, e: Event, frame: Frame) -> bool:
        """Whether ``e`` (an event of a kind the domain acts on, not a CALL) changes no path and records
        nothing any rule reads when it runs in ``frame``."""
        return False

    def on_arm(self, br: Branch, index: int, paths: Set, ctx: Ctx) -> Set:
        """Paths entering arm ``index`` of a keyed ``if`` (after the split)."""
        return paths

    def keeps_paths(self, e: Event, frame: Frame) -> bool:
        """Whether ``e`` (not a CALL) gives back every path as it was when it runs in ``frame``, whatever it
        records: weaker than ``inert_event``, enough for ``_arms_inert``."""
        return self.inert_event(e, frame)

    def on_unseen_call(self, e: Event, paths: Set, ctx: Ctx) -> Set:
        """A call of a same-module function the interpreter will not enter (recursion, depth)."""
        return paths

    def forget_history(self, p):
        """``p`` without what only tells it apart from the paths met before: its assumptions (but those
        that tie gradient events together, ``ties``), and what the domain may forget (no finding may rely on
        what is forgotten)."""
        return p._replace(assume=frozenset(a for a in p.assume if self.ties(a)))

    def repeated(self, a) -> bool:
        """An assumption about a test that more than one ``if`` makes (not a counter's phase)."""
        return not a[0].startswith("mod:") and self.m.tested_again(a[0])

    def gates(self, a) -> bool:
        """An assumption about a test with an arm that runs a gradient event or a jump (``if cfg.accum >
        1:`` around the zeroing and the step): its arm holds on every iteration of the loops around it."""
        return not a[0].startswith("mod:") and self.m.gates(a[0])

    def ties(self, a) -> bool:
        """An assumption that ties gradient events together: a repeated test with an arm that runs a
        gradient event or a jump (``if need_update: opt.step()`` ... ``if not need_update: continue``)."""
        return self.repeated(a) and self.gates(a)

    def cap(self, paths: Set) -> Set:
        """Keeps the path count bounded by forgetting assumptions, the least useful first: (1) phases of
        periodic counters far from a window's ends; (2) values of tests that no other ``if`` repeats and
        that gate no gradient event or jump (a logging flag); (3) repeated tests that gate none; (4) tests
        that gate gradient events but no other ``if`` repeats (kept because the enclosing loops cannot
        change them: a setting tested once per iteration, ``if cfg.accum > 1:``); (5) all phases; (6)
        everything. What survives to the end (``ties``) is a flag that several ``if``s test and that gates
        gradient events (``need_update`` gating both the step and the zeroing): it ties those arms
        together."""
        if len(paths) <= MAX_PATHS:
            return paths
        repeated, ties, gates = self.repeated, self.ties, self.gates
        for level, keep in enumerate((
                _near_window_ends,
                lambda a: _near_window_ends(a) and (a[0].startswith("mod:") or repeated(a) or gates(a)),
                lambda a: _near_window_ends(a) and (a[0].startswith("mod:") or gates(a)),
                lambda a: _near_window_ends(a) and (a[0].startswith("mod:") or ties(a)), ties, lambda a: False)):
            paths = {p._replace(assume=self._keep(("cap", level), p.assume, keep)) for p in paths}
            if len(paths) <= MAX_PATHS:
                break
        return paths

    def _keep(self, key: tuple, assume: FrozenSet, keep) -> FrozenSet:
        """The assumptions of ``assume`` that ``keep`` keeps (``key`` names the filter), computed once per
        filter and set."""
        got = self._kept.get((key, assume))
        if got is None:
            got = frozenset(a for a in assume if keep(a))
            if got == assume:
                got = assume
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()
            self._kept[(key, assume)] = got
        return got

    # -- entry -------------------------------------------------------------------------------------------
    def run(self, fn: Function, start, cyclic: bool = False) -> Outcome:
        body = self.m.builder.body(fn)
        ctx = Ctx(Frame(fn), (), (fn,))
        if cyclic:
            # one call per iteration of a loop we cannot see: counters it tests periodically
            # (``engine.state.iteration % k``) advance by one per call
            counters = frozenset(i.mod[0] for i in self.m.walk(body) if isinstance(i, Branch) and i.mod)
            loop = Loop(fn.node, body, Block(), True, None, frozenset(), frozenset({"self"}) | counters,
                        kind="implicit", counters=counters, fn=fn)
            return self.loop(loop, {start}, ctx, implicit=True)
        return self.block(body, {start}, ctx)

    # -- control flow ------------------------------------------------------------------------------------
    def block(self, block: Block, paths: Set, ctx: Ctx) -> Outcome:
        out = Outcome()
        current = paths
        for item in block.items:
            if not current:
                break
            if isinstance(item, Event):
                current = self._event(item, current, ctx)
                continue
            o = self.item(item, current, ctx)
            out.brk |= o.brk
            out.cont |= o.cont
            out.ret |= o.ret
            current = self.cap(o.normal)
        out.normal = current
        return out

    def item(self, item, paths: Set, ctx: Ctx) -> Outcome:
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

    def _event(self, e: Event, paths: Set, ctx: Ctx) -> Set:
        self.budget -= len(paths)
        if self.budget < 0:
            raise OverBudget()
        if e.kind == ev.CALL:
            return self.call(e, paths, ctx)
        if self.KINDS is not None and e.kind not in self.KINDS:
            return paths
        return self.event(e, paths, ctx)

    def branch(self, br: Branch, paths: Set, ctx: Ctx) -> Outcome:
        """An ``if`` (and the ``elif`` chain hanging off its else arm, walked iteratively)."""
        out = Outcome()
        while True:
            if not self.has_effect(br):
                out.normal |= paths
                return out
            if br.key is None:  # a ``match`` or a handler-like split: every arm, no correlation
                for i, arm in enumerate(br.arms):
                    _merge(out, self.block(arm, paths, _within(ctx, None, bool(i))))
                return out
            then_paths, else_paths, then_ctx, else_ctx = self._split(br, paths, ctx)
            if then_paths and ctx.loops and self.m.last_iteration(br, ctx.loops[-1]):
                # ``if i == len(loader) - 1:``: the loop ends after this iteration (``_loop1`` takes no back
                # edge from a path marked so; the mark is forgotten when the path leaves the loop)
                mark = (_last_mark(ctx.loops[-1]), True)
                then_paths = {p._replace(assume=p.assume | {mark}) for p in then_paths}
            if then_paths:
                _merge(out, self.block(br.arms[0], self.on_arm(br, 0, self.cap(then_paths), then_ctx), then_ctx))
            nxt = br.elif_next
            if nxt is None or not else_paths:
                if else_paths:
                    _merge(out, self.block(br.arms[1], self.on_arm(br, 1, self.cap(else_paths), else_ctx), else_ctx))
                return out
            # the else arm is ``<test events>; if ...``: run the test's events, then loop on the next ``if``
            pre = Block(br.arms[1].items[:-1])
            o = self.block(pre, self.on_arm(br, 1, self.cap(else_paths), else_ctx), else_ctx)
            _merge_jumps(out, o)
            paths, ctx, br = o.normal, else_ctx, nxt
            if not paths:
                return out

    def _split(self, br: Branch, paths: Set, ctx: Ctx):
        """(paths into the then arm, paths into the else arm, the contexts of both)."""
        if br.const is not None:  # only one arm can ever run
            then = br.const == br.polarity
            return (set(paths) if then else set()), (set() if then else set(paths)), \
                _within(ctx, br.key, br.polarity), _within(ctx, br.key, not br.polarity)
        if br.mod is not None:
            return self._periodic_split(br, paths, ctx)
        handed = self._handed_periodic(br, ctx.frame)
        if handed is not None:
            return self._periodic_split(handed, paths, ctx)
        literal = _literal(br, ctx.frame)
        if literal is not None:  # a parameter the call bound to a literal: one arm
            then = literal == br.polarity
            return (set(paths) if then else set()), (set() if then else set(paths)), \
                _within(ctx, br.key, br.polarity), _within(ctx, br.key, not br.polarity)
        if br.conjuncts:
            return self._conjunction_split(br, paths, ctx)
        then_value = br.polarity
        key = _frame_key(br, ctx.frame)
        record = self._worth_recording(br, br.key, key, br.names, br.volatile, ctx)
        arms = []
        for value in (then_value, not then_value):
            selected = set()
            for p in paths:
                known = _assumed(p, key)  # what another test of it (maybe in a callee) recorded
                if known is None:
                    selected.add(p._replace(assume=p.assume | {(key, value)}) if record else p)
                elif known == value:
                    selected.add(p)
            arms.append(selected)
        return arms[0], arms[1], _within(ctx, br.key, then_value), _within(ctx, br.key, not then_value)

    def _worth_recording(self, br: Branch, test: str, key: str, names: frozenset, volatile: bool, ctx: Ctx) -> bool:
        """Whether a path remembers the value of a test of ``br`` (``test`` as written, ``key`` in this
        frame): when its arms can leave different states (``_arms_inert``), and another test repeats it or
        nothing in the enclosing loops can change it (``if config.ACCUM > 1:`` takes the same arm on every
        iteration). Remembering any other test only multiplies paths: arms that give back what they are
        given leave the same states whichever a path took, so a later test of the same value reaches the
        same states whether the path remembers it or not."""
        if self._arms_inert(br, ctx):
            return False
        handed_down = key.split("@")[0] != test  # a parameter bound to a caller's flag that it tests too
        return self.m.tested_again(test) or (handed_down and key.split("@")[0] in self.m.branch_info) or (
            bool(ctx.loops) and not volatile and not any(names & l.assigned for l in ctx.loops))

    def _arms_inert(self, br: Branch, ctx: Ctx) -> bool:
        """Whether every arm of ``br`` gives back each path it is given, as ``inert`` says of a function: no
        jump, no endless loop, every event inert in this frame, every call skipped as inert (or, where the
        interpreter would not enter it, of no effect in this domain), every other event keeping the paths
        (``keeps_paths``). Its nested tests may still split paths, into arms that differ in nothing else."""
        key = (id(br), ctx.frame, ctx.stack)
        got = self._arms.get(key)
        if got is None:
            got = self._arms[key] = all(self._inert_item(i, ctx) for arm in br.arms for i in items_below(arm))
        return got

    def _inert_item(self, item, ctx: Ctx) -> bool:
        if isinstance(item, Jump):
            return False
        if isinstance(item, Loop):
            return not item.infinite
        if not isinstance(item, Event):
            return True
        if item.kind == ev.CALL:
            callee = item.callee
            if callee in ctx.stack or len(ctx.stack) >= MAX_DEPTH:
                return self.UNSEEN_IS_NOTHING
            return not self.has_effect_fn(callee) or self.inert(callee, self.bind(item, ctx.frame))
        if isinstance(item.closure, (Block, Function)):
            return False
        return (self.KINDS is not None and item.kind not in self.KINDS) or self.keeps_paths(item, ctx.frame)

    def _conjunction_split(self, br: Branch, paths: Set, ctx: Ctx):
        """``if a and not b:``: the arm where the conjunction holds knows each operand's value (a later
        ``if a:`` takes its then arm), the other arm knows an operand is false when every other one is known
        true; a path that knows an operand false, or all of them true, takes one arm. An operand is read
        like a test of its own: a parameter bound to a literal, a caller's flag (``Frame.tests``)."""
        frame = ctx.frame
        key = _frame_key(br, frame)
        whole = self._worth_recording(br, br.key, key, br.names, br.volatile, ctx)
        parts = []  # (key in this frame or None, polarity, literal truth or None, worth recording)
        for test, names, polarity, volatile in br.conjuncts:
            literal = _literal_of(test, names, frame)
            k = None if volatile else _test_key(test, names, frame)
            parts.append((k, polarity, literal, k is not None and self._worth_recording(br, test, k, names, False, ctx)))
        holds, fails = set(), set()  # paths on which the conjunction holds / does not
        for p in paths:
            known = _assumed(p, key)
            values = []  # each operand's truth on this path (None: unknown)
            for k, polarity, literal, _r in parts:
                v = literal if literal is not None else (_assumed(p, k) if k is not None else None)
                values.append(None if v is None else v == polarity)
            unknown = [part for part, v in zip(parts, values) if v is None]
            if known is False or False in values or _refuted(p, unknown):
                fails.add(p)
                continue
            if known is True or not unknown:
                holds.add(p)
                continue
            learnt = {(k, polarity) for k, polarity, _l, r in unknown if r}
            holds.add(p._replace(assume=p.assume | learnt | ({(key, True)} if whole else set())))
            if all(r for _k, _p, _l, r in unknown):  # one of them is false: which, when it is the only one
                learnt = {(unknown[0][0], not unknown[0][1])} if len(unknown) == 1 else {(_none_of(unknown), False)}
            else:
                learnt = set()
            fails.add(p._replace(assume=p.assume | learnt | ({(key, False)} if whole else set())))
        then_paths, else_paths = (holds, fails) if br.polarity else (fails, holds)
        return then_paths, else_paths, _within(ctx, br.key, br.polarity), _within(ctx, br.key, not br.polarity)

    def _handed_periodic(self, br: Branch, frame: Frame) -> Optional[Branch]:
        """``if update_grad:`` on a parameter the call bound to a periodic test (``update_grad=(i + 1) % k ==
        0``): that test, as a Branch of the callee (the same arms)."""
        if not frame.exprs or br.names != {br.key}:
            return None
        for name, arg, where in frame.exprs:
            if name == br.key:
                mod = self.m.builder.periodic(arg, where, br.polarity)
                if mod is None:
                    return None
                handed = copy.copy(br)
                handed.mod, handed.polarity = mod, True
                return handed
        return None

    def _periodic_split(self, br: Branch, paths: Set, ctx: Ctx):
        """``if (i + c) % K == d``: the path remembers which phase of the window it is in."""
        counter, k, phase, then_on_match = br.mod
        base = f"mod:{counter}:{k}:"
        key = f"{base}{phase}"
        if not self.m.tested_again(f"mod:{counter}:{k}"):
            v = then_on_match if br.polarity else not then_on_match
            return set(paths), set(paths), _within(ctx, br.key, v), _within(ctx, br.key, not v)
        arms = []
        for want in (then_on_match, not then_on_match):  # does this arm need "phase matches"?
            selected = set()
            for p in paths:
                known = _phase_matches(p, base, phase)
                if known is None:  # what the loop's start says about its first iterations
                    known = _phase_matches(p, f"mod:{counter}:*:", phase)
                if known is None:
                    # a new phase fact replaces the older one: "the last of a window" says the next
                    # iteration is the first, whatever else was known
                    older = frozenset(a for a in p.assume if a[1] and want and a[0].startswith(base))
                    selected.add(p._replace(assume=_normal((p.assume - older) | {(key, want)})))
                elif known == want:
                    selected.add(p)
            arms.append(selected)
        return arms[0], arms[1], _within(ctx, key, then_on_match), _within(ctx, key, not then_on_match)

    def loop(self, loop: Loop, paths: Set, ctx: Ctx, implicit: bool = False) -> Outcome:
        out = Outcome()
        for p in paths:
            p, kept = self.project(loop, self._entry(loop, ctx, p), ctx.frame)
            o = self._memoised(("loop", loop, self._context_key(loop, ctx), p, implicit),
                               lambda p=p: self._loop1(loop, p, ctx, implicit))
            if kept is not None:
                o = Outcome(*({self.restore(q, kept) for q in exits} for exits in (o.normal, o.brk, o.cont, o.ret)))
            _merge(out, o)
        return out

    def _loop1(self, loop: Loop, entry, ctx: Ctx, implicit: bool) -> Outcome:
        inner = Ctx(ctx.frame, ctx.loops + (loop,), ctx.stack, ctx.conds)
        start = self._enter(entry, loop)
        seen: Set = set()
        todo = {start}
        exits: Set = set()
        out = Outcome()
        rounds = 0
        while todo:
            rounds += 1
            seen |= todo
            ends: Set = set()
            for p in todo:
                o = self._memoised(("body", loop, self._context_key(loop, inner), p),
                                   lambda p=p: self.block(loop.body, {p}, inner))
                ends |= o.normal | o.cont
                if implicit:
                    ends |= o.ret
                else:
                    out.ret |= {self.on_leave(q, loop) for q in o.ret}
                out.normal |= {self.on_leave(self._forget(q, loop), loop) for q in o.brk}
            exits |= ends
            self.budget -= len(ends)
            if self.budget < 0:
                raise OverBudget()
            last = (_last_mark(loop), True)
            back = {self._back_edge(q, loop) for q in ends if last not in q.assume}
            todo = self.cap(back) - seen
            if rounds > 50:  # the state space is finite; this only guards against surprises
                break
        if loop.infinite and not loop.leaves_at_head and not implicit:
            normal_exits: Set = set()
        else:
            normal_exits = {self.on_leave(self._exit(q, loop), loop) for q in exits}
        if loop.orelse.items and normal_exits:
            o = self.block(loop.orelse, normal_exits, ctx)
            _merge_jumps(out, o)
            normal_exits = o.normal
        out.normal |= normal_exits
        return out

    def try_(self, t: Try, paths: Set, ctx: Ctx) -> Outcome:
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
            entry = self.on_handler(set(paths) | body.normal, t, ctx)
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

    # -- calls -------------------------------------------------------------------------------------------
    def call(self, e: Event, paths: Set, ctx: Ctx) -> Set:
        callee = e.callee
        if callee in ctx.stack or len(ctx.stack) >= MAX_DEPTH:
            return self.on_unseen_call(e, paths, ctx)
        if not self.has_effect_fn(callee):
            return paths
        frame = self.bind(e, ctx.frame)
        if self.inert(callee, frame):
            return paths
        inner = Ctx(frame, ctx.loops, ctx.stack + (callee,), ctx.conds)
        body = self.m.builder.body(callee)
        out: Set = set()
        for p in paths:
            p, kept = self.project(callee, self._entry(callee, inner, p), inner.frame)
            o = self._memoised(("call", callee, self._context_key(callee, inner), p),
                               lambda p=p: self.block(body, {p}, inner))
            if kept is not None:
                out |= {self.restore(q, kept) for q in o.normal | o.ret}
            else:
                out |= o.normal | o.ret
        ended = self._call_tests_of(callee, frame)
        if ended:
            out = {q._replace(assume=frozenset(x for x in q.assume if x[0] not in ended))
                   if any(x[0] in ended for x in q.assume) else q for q in out}
        return out

    def _call_tests_of(self, callee: Function, frame: Frame) -> FrozenSet[str]:
        """The test keys of ``callee``'s own tests of its own plain local names (its parameters and what it
        assigns: ``if not do_backward:``) in ``frame``: their values belong to the call, so what its paths
        assumed about them ends with it (the next call may bind ``do_backward`` to something else). A
        parameter bound to a caller's name is that name's test (``Frame.tests``): it stays."""
        key = (callee, frame)
        got = self._call_tests.get(key)
        if got is None:
            local = (set(callee.params) | set(callee.assigns)) - callee.globals_
            handed = {k for _n, k in frame.tests}
            keys = set()
            for br in items_below(self.m.builder.body(callee)):
                if (isinstance(br, Branch) and br.key is not None and br.mod is None and br.names
                        and br.names <= local and "." not in br.key and "[" not in br.key):
                    k = _frame_key(br, frame)
                    if k not in handed:
                        keys.add(k)
            got = self._call_tests[key] = frozenset(keys)
        return got

    # -- summaries keyed on what the code observes ---------------------------------------------------------
    def project(self, code, p, frame: Frame):
        """(the path a run of ``code`` (a called function or a loop) is keyed and run on, what ``restore``
        gives back to its exits; None: nothing). A run's summary is shared by every entry path that differs
        only in what the code can neither read nor change: here, assumptions about tests it never makes
        on names none of its loops assigns. A domain projects its own state too (and restores it)."""
        unseen = self._unobserved(code, p.assume, frame)
        if not unseen:
            return p, None
        return p._replace(assume=p.assume - unseen), unseen

    def restore(self, q, kept):
        """An exit ``q`` of a projected run, with what the projection kept aside given back."""
        return q._replace(assume=q.assume | kept)

    def _unobserved(self, code, assume: FrozenSet, frame: Frame) -> FrozenSet:
        """The assumptions of a path that a call (``code`` a Function) or a loop can neither read nor
        change: tests it (and what it calls) never makes, on names none of its loops assigns or iterates."""
        if not assume:
            return frozenset()
        fp = self.footprint(code)
        tested, loop_names, has_loops = fp.tested, fp.loop_names, bool(fp.loops)
        # a parameter tested alone is the caller's test of the name it is bound to (``Frame.tests``)
        handed = {k.split("@", 1)[0] for _n, k in frame.tests}
        out = []
        for a in assume:
            key = a[0]
            if key.startswith("mod:"):
                continue
            base = key.split("@", 1)[0]
            if base in tested or base in handed:
                continue
            if has_loops:
                info = self.m.branch_info.get(base)
                if info is None or info[1] or info[0] & loop_names:
                    continue
            out.append(a)
        return frozenset(out)

    def footprint(self, code) -> Footprint:
        """The footprint of a function or loop (see ``Footprint``), computed once."""
        got = self._footprints.get(code)
        if got is not None:
            return got
        tested: Set[str] = set()
        names: Set[str] = set()
        loops: Set[Loop] = set()
        kinds: Set[str] = set()
        backwards: Set[Event] = set()
        seen = {code}
        todo = [code]
        while todo:
            fn = todo.pop()
            for item in items_below(fn if isinstance(fn, Loop) else self.m.builder.body(fn)):
                if isinstance(item, Branch):
                    tested.update(item.tested)
                elif isinstance(item, Loop):
                    loops.add(item)
                    names |= item.assigned | item.target_names
                elif isinstance(item, Event):
                    kinds.add(item.kind)
                    if item.kind == ev.BACKWARD:
                        backwards.add(item)
                    elif item.kind == ev.CALL:  # a name handed to a callee that tests it is tested here
                        for a in (*item.bound_args, *getattr(item.call, "args", ())):
                            if isinstance(a.value, cst.Name):
                                tested.add(a.value.value)
                    for f in (item.callee, item.closure, item.factory[2] if item.factory is not None else None):
                        if isinstance(f, Function) and f not in seen:
                            seen.add(f)
                            todo.append(f)
        functions = frozenset(f for f in seen if isinstance(f, Function))
        got = self._footprints[code] = Footprint(frozenset(tested), frozenset(names), frozenset(loops),
                                                 frozenset(kinds), frozenset(backwards), functions)
        return got

    def kinds_below(self, block: Block) -> FrozenSet[str]:
        """The kinds of the events ``block`` runs, itself or in the functions and closures it calls (a
        ``try`` around a helper that steps steps)."""
        kinds: Set[str] = set()
        for item in items_below(block):
            if isinstance(item, Event):
                kinds.add(item.kind)
                for f in (item.callee, item.closure, item.factory[2] if item.factory is not None else None):
                    if isinstance(f, Function):
                        kinds |= self.footprint(f).kinds
        return frozenset(kinds)

    def run_callable(self, target, paths: Set, ctx: Ctx, bound=()) -> Set:
        """Runs a closure (a Function with ``partial``-bound arguments, or a lambda's Block) in place."""
        if isinstance(target, Block):
            o = self.block(target, paths, ctx)
            return o.normal | o.ret
        if target in ctx.stack or len(ctx.stack) >= MAX_DEPTH:
            return paths
        frame = child_frame(target, ctx.frame, *bound) if bound else child_frame(target, ctx.frame, ())
        inner = Ctx(frame, ctx.loops, ctx.stack + (target,), ctx.conds)
        o = self.block(self.m.builder.body(target), paths, inner)
        return o.normal | o.ret

    def bind(self, e: Event, caller: Frame) -> Frame:
        """The callee's frame: its parameters bound to the roles (and module identities) of the call's
        arguments (after any that ``functools.partial`` bound in front), ``self`` to the receiver."""
        roles, keys = bind_arguments(self.roles, e.callee, e.call, caller, e.bound_self, e.bound_args)
        given = Values.parameters_bound(e.callee, e.call, e.bound_args)
        tests = bound_tests(e.callee, given, caller)
        literals = bound_literals(e.callee, given, any(a.star for a in (*e.bound_args, *getattr(e.call, "args", ()))))
        alone = self.m.tested_alone(e.callee) if caller.fn is not None else frozenset()
        exprs = [(name, v, caller.fn) for name, v in given.items()
                 if name in alone and not isinstance(v, cst.Name) and ev.literal_truth(v) is None]
        if e.factory is not None:
            # a function a same-module factory returned sees the factory's names: its parameters bound to
            # the arguments of the factory call (read where that call is written)
            call, where, factory = e.factory
            at = caller if caller.fn is where else Frame(where)
            outer = child_frame(factory, at, *bind_arguments(self.roles, factory, call, at, False))
            return child_frame(e.callee, outer, roles, keys, tests, literals, exprs)
        return child_frame(e.callee, caller, roles, keys, tests, literals, exprs, self._free_at(e, caller))

    def _free_at(self, e: Event, caller: Frame) -> tuple:
        """``Frame.free`` entries a call adds (``FileModel.free_at``), but for names the caller's frame binds."""
        fn = caller.fn
        if fn is None or e.call is None or not _encloses(fn, e.callee):
            return ()
        got = self.m.free_at(e, fn)
        if got and caller.bindings:
            got = tuple(x for x in got if not any(x[0] == k for k, _v in caller.bindings))
        return got

    def closure_bindings(self, e: Event, frame: Frame):
        """The bindings of a step's closure function: its ``partial``-bound arguments, ``self``."""
        if not isinstance(e.closure, Function):
            return (), ()
        return bind_arguments(self.roles, e.closure, None, frame, e.bound_self, e.bound_args)

    def reachable_optimizers(self, fn: Function, kinds=(ev.STEP, ev.ZERO, ev.UNSCALE), built: bool = True) -> List[Role]:
        """The optimizers a root reaches, each as its frame resolves it: stepped, zeroed, unscaled (``kinds``)
        or ``built`` in the root or in the functions and closures it calls (their parameters bound to the
        arguments)."""
        return self.optimizers_below(self.m.builder.body(fn), Frame(fn), (fn,), kinds, built)

    def optimizers_below(self, block: Block, frame: Frame, stack: Tuple[Function, ...],
                         kinds=(ev.STEP, ev.ZERO, ev.UNSCALE), built: bool = True) -> List[Role]:
        """``reachable_optimizers`` of a block run in ``frame`` by the functions of ``stack``."""
        found: List[Role] = []
        seen: Set[int] = set()

        def add(role: Optional[Role]) -> None:
            if role is not None and role.kind == OPTIMIZER and id(role) not in seen:
                seen.add(id(role))
                found.append(role)

        def visit(block: Block, frame: Frame, stack: Tuple[Function, ...]) -> None:
            for item in items_below(block):
                if not isinstance(item, Event):
                    continue
                if item.kind in kinds and item.target is not None:
                    role = self.roles.resolve(item.target, frame)
                    add(role)
                    if role is not None and role.kind == SCALER and item.call is not None:
                        pos = positional_args(item.call)
                        if pos:
                            add(self.roles.resolve(pos[0], frame))
                    if isinstance(item.closure, Function) and item.closure not in stack and len(stack) < MAX_DEPTH:
                        closure_frame = child_frame(item.closure, frame, *self.closure_bindings(item, frame))
                        visit(self.m.builder.body(item.closure), closure_frame, stack + (item.closure,))
                elif item.kind == ev.CALL and item.callee not in stack and len(stack) < MAX_DEPTH:
                    visit(self.m.builder.body(item.callee), self.bind(item, frame), stack + (item.callee,))
                elif item.kind == ev.CONSTRUCT and built:
                    add(self.roles.resolve(item.assigned if item.assigned is not None else item.call, frame))

        visit(block, frame, stack)
        return found

    def _entry(self, code, ctx: Ctx, p):
        """The path a call or loop runs with: ``p``, or once it has been entered with ``MAX_ENTRIES``
        distinct paths in this context, ``p`` with its history forgotten, so that the runs stay few."""
        seen = self._entries.get((code, ctx))
        if seen is None:
            seen = self._entries[(code, ctx)] = set()
        if p not in seen:
            if len(seen) >= MAX_ENTRIES:
                p = self.forget_history(p)
            seen.add(p)
        return p

    def _context_key(self, code, ctx: Ctx) -> tuple:
        """What a run of ``code`` (a called function or a loop) in ``ctx`` depends on: the frame and the
        enclosing loops; of the call stack, only the functions it may call again (a call of one is not
        entered) and, when it calls anything, the depth (calls beyond ``MAX_DEPTH`` are not entered); the
        enclosing ``if`` arms only when it holds events whose context the domain records
        (``CONTEXT_KINDS``). Runs in contexts that differ in nothing else are one run."""
        fp = self.footprint(code)
        calls = len(fp.functions) > (1 if isinstance(code, Function) else 0)
        return (ctx.frame, ctx.loops, ctx.stack and fp.functions.intersection(ctx.stack),
                len(ctx.stack) if calls else 0, ctx.conds if fp.kinds & self.CONTEXT_KINDS else None)

    def _memoised(self, key, compute) -> Outcome:
        got = self._memo.get(key)
        if got is None:
            got = compute()
            self._memo[key] = got
        return got

    # -- assumptions around loops ------------------------------------------------------------------------
    def _enter(self, p, loop: Loop):
        """A new run of ``loop``: its targets restart."""
        p = self.on_enter(p, loop)
        assume = p.assume
        restart = loop.target_counters | {c for c, _v in loop.starts}  # counters that start afresh
        if assume and (loop.target_names or restart):
            assume = frozenset(a for a in assume if not (
                (a[0].startswith("mod:") and a[0].split(":", 2)[1] in restart)
                or (not a[0].startswith("mod:") and ((self.m.test_reads(a[0]) or (frozenset(),))[0] & loop.target_names))))
        for counter, start in loop.starts:  # ``enumerate(loader)``: the counter starts at phase 0
            if start in (0, -1) and counter in self.m.periodic_counters:  # -1: the last phase of any window
                assume = assume | {(f"mod:{counter}:*:{start}", True)}
        return p._replace(assume=assume) if assume != p.assume else p

    def _forget(self, p, loop: Loop, keep_mod=frozenset()):
        """Drops what the path assumed about tests whose value may change in the next iteration (but
        keeps the phase of counters that ``_back_edge`` has just advanced)."""
        p = self.on_exit(p, loop)
        if not p.assume:
            return p
        variant = loop.assigned
        mine = _last_mark(loop)
        keep = self._keep(("forget", loop, keep_mod), p.assume, lambda a: (
            (a[0].startswith("mod:") and self._mod_kept(a[0].split(":", 2)[1], loop, keep_mod))
            or (a[0].startswith("last:") and a[0] != mine)  # an outer loop's last iteration goes on
            or (not a[0].startswith(("mod:", "last:")) and not self._is_variant(a[0], variant))))
        return p._replace(assume=keep) if keep is not p.assume else p

    @staticmethod
    def _mod_kept(counter: str, loop: Loop, keep_mod) -> bool:
        """A counter's phase survives the loop's edges unless the loop changes the counter (a loop over the
        parameters inside an accumulation step leaves the step's phase as it was)."""
        if counter in keep_mod:
            return True
        name = counter.rsplit("@", 1)[-1].split(".")[0]
        return counter not in loop.counters and name not in loop.assigned

    def _is_variant(self, key: str, variant) -> bool:
        info = self.m.test_reads(key)
        if info is None:
            return True
        names, volatile = info
        return volatile or bool(names & variant)

    def _back_edge(self, p, loop: Loop):
        p = self.on_back_edge(p, loop)
        p = self._forget(self._advance(p, loop), loop, keep_mod=loop.counters | self._nested_counters(loop))
        # what the iteration assumed about tests that gate no gradient event and no jump stays in it
        if p.assume:
            keep = self._keep(("gates",), p.assume, lambda a: a[0].startswith(("mod:", "last:")) or self.gates(a))
            if keep is not p.assume:
                p = p._replace(assume=keep)
        return p

    def _nested_counters(self, loop: Loop) -> frozenset:
        """Counters incremented by loops inside ``loop``: their phase is kept exact by those loops' own back
        edges and exits, so it stays known around this loop (a global step counter across epochs)."""
        got = self._nested.get(loop)
        if got is None:
            got = frozenset().union(*(i.counters - i.target_counters for i in items_below(loop.body)
                                      if isinstance(i, Loop)))
            self._nested[loop] = got
        return got

    def _exit(self, p, loop: Loop):
        """Leaving ``loop`` at its head: a counter the body increments (``step += 1``) keeps its advanced
        phase after the loop (a later run of the loop, or of another, continues from it); the rest of what
        the iterations assumed is forgotten."""
        if not any(a[0].startswith("mod:") for a in p.assume):
            return self._forget(p, loop)
        carried = (loop.counters - loop.target_counters) | self._nested_counters(loop)
        return self._forget(self._advance(p, loop), loop, keep_mod=carried)

    def _advance(self, p, loop: Loop):
        """One iteration later: each counter of the loop is one phase further."""
        assume = set()
        for k, v in p.assume:
            if k.startswith("mod:"):
                rest, phase = k.rsplit(":", 1)
                counter = rest.split(":", 2)[1]
                if counter not in loop.counters:
                    assume.add((k, v))  # another loop's counter: this loop's iterations do not move it
                    continue
                if rest.endswith(":*"):
                    # the first iteration (counter == 0) is followed by one that is not at phase 0
                    if counter in loop.counters and phase == "0" and v:
                        assume.add((k, False))
                    elif counter in loop.counters and phase == "-1" and v:
                        assume.add((f"{rest}:0", True))  # after the last of a window, the first
                    continue
                if counter in loop.counters:
                    # one iteration later the counter is one phase further; after the last (-1) of a
                    # window comes the first (0) of the next
                    q = int(phase)
                    nxt = 0 if q == -1 else q + 1
                    window = rest.rsplit(":", 1)[-1]
                    if window.isdigit() and nxt == int(window) - 1:
                        nxt = -1  # a window of known length: its last phase is -1
                    if -3 <= nxt <= 3:
                        assume.add((f"{rest}:{nxt}", v))
                    continue
            assume.add((k, v))
        return p._replace(assume=_normal(frozenset(assume)))

    # -- which items can change anything -------------------------------------------------------------------
    def has_effect(self, item) -> bool:
        k = id(item)
        got = self._effect.get(k)
        if got is None:
            got = any((isinstance(i, Event) and (self.KINDS is None or i.kind in self.KINDS or i.kind == ev.CALL))
                      or isinstance(i, Jump) for i in items_below(item))
            self._effect[k] = got
        return got

    def has_effect_fn(self, fn: Function) -> bool:
        return self.has_effect(self.m.builder.body(fn))

    def inert(self, fn: Function, frame: Frame, depth: int = 1) -> bool:
        """Whether a run of ``fn`` in ``frame`` gives back every path it is entered with, unchanged: every
        event it (and what it calls) runs is inert in its frame (``inert_event``), and nothing ends a path
        (no ``raise``, no loop without an exit). Its tests may split paths, but into arms that differ in
        nothing else, so the call is skipped as it is. A recursive call, or one deeper than the
        interpreter enters, counts as not inert (the answer holds wherever the call is made); so does any
        call when the domain acts on calls it does not enter (``UNSEEN_IS_NOTHING``)."""
        key = (fn, frame)
        got = self._inert.get(key)
        if got is not None:
            return got
        self._inert[key] = False  # while in progress: a recursive call is not inert
        ok = True
        for item in items_below(self.m.builder.body(fn)):
            if isinstance(item, Jump):
                ok = item.kind != "raise"
            elif isinstance(item, Loop):
                ok = not item.infinite
            elif isinstance(item, Event):
                if item.kind == ev.CALL:
                    ok = self.UNSEEN_IS_NOTHING and depth < MAX_DEPTH \
                        and self.inert(item.callee, self.bind(item, frame), depth + 1)
                elif self.KINDS is None or item.kind in self.KINDS:
                    ok = self.inert_event(item, frame)
            if not ok:
                break
        self._inert[key] = ok
        return ok


MAX_KEPT = 200_000  # assumption sets ``Interp._keep`` remembers before it starts afresh


def bind_arguments(roles, callee: Function, call: Optional[cst.Call], caller: Frame, bound_self: bool,
                   bound_args=()):
    """([(parameter, role)], [(parameter, module key)]) for a call (``Values.parameters_bound``)."""
    bindings: List[Tuple[str, Optional[Role]]] = []
    keys: List[Tuple[str, Optional[str]]] = []
    for name, v in Values.parameters_bound(callee, call, bound_args).items():
        bindings.append((name, roles.in_frame(roles.argument(v, caller), caller, v)))
        keys.append((name, roles.module_key(v, caller) or roles.fresh_module_key(v)))
    receiver = _module_receiver(roles, callee, call, bound_self)
    if receiver is not None:
        key = roles.module_key(receiver, caller)
        if key is not None:
            keys.append(("self", key))
    return bindings, keys


def _module_receiver(roles, callee: Function, call: Optional[cst.Call], bound_self: bool):
    """The object a method of a module class is called on (``net`` of ``net.sample(8)``): ``self`` is that
    module in the method (its ``self.eval()`` sets the caller's ``net``). None for a call through ``self``
    (the frame keeps the caller's ``self``) or of another kind of class."""
    if not bound_self or call is None or not isinstance(call.func, cst.Attribute) or callee.cls is None:
        return None
    if callee.params[:1] != ["self"] or roles.class_kind(callee.cls)[0] != MODULE:
        return None
    receiver = call.func.value
    return None if isinstance(receiver, cst.Name) and receiver.value == "self" else receiver


def handed_names(callee: Function, given: Dict[str, cst.BaseExpression]) -> List[Tuple[str, str]]:
    """[(parameter, the caller's name)] for the parameters a call binds to a name (not a literal) and
    ``callee`` never rebinds (``given``: ``Values.parameters_bound``)."""
    return [(name, v.value) for name, v in given.items()
            if isinstance(v, cst.Name) and v.value not in ev.LITERAL_NAMES and name not in callee.assigns]


def bound_tests(callee: Function, given: Dict[str, cst.BaseExpression], caller: Frame):
    """[(parameter, the caller's test key of its argument)] for the parameters a call hands a name
    (``handed_names``): a test of the parameter alone in the callee is the caller's test of that name (one
    flag, one value on a path)."""
    return [(name, _test_key(v, frozenset((v,)), caller)) for name, v in handed_names(callee, given)]


def bound_literals(callee: Function, given: Dict[str, cst.BaseExpression], spread: bool) -> List[Tuple[str, bool]]:
    """[(parameter, truth value)] for the parameters of ``callee`` a call binds to a literal (``True``,
    ``False``, ``None``, a number; ``given``: ``Values.parameters_bound``) or leaves at a literal default, and
    that ``callee`` never rebinds. A call that ``spread``s ``*args`` or ``**kwargs`` may bind any parameter:
    only what it binds before them counts."""
    node = callee.node
    if not isinstance(node, cst.FunctionDef):
        return []
    out: List[Tuple[str, bool]] = []
    for param in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params):
        name = param.name.value
        if name in callee.assigns or name in callee.globals_:
            continue
        value = given.get(name)
        if value is None and not spread:
            value = param.default
        truth = ev.literal_truth(value) if value is not None else None
        if truth is not None:
            out.append((name, truth))
    return out


# An assumption that operands of a conjunction are not all true (``_none_of``): this prefix, then each
# operand as ``key=polarity``, joined by the separator (which no test's text holds).
ALL_OF, _SEP = "and:", "\x1f"


def _none_of(operands) -> str:
    """The key of "not all of these operands hold" ((key, polarity, ...) each)."""
    return ALL_OF + _SEP.join(sorted(f"{k}={polarity}" for k, polarity, *_ in operands))


def none_of_keys(key: str) -> List[str]:
    """The operands' test keys of a ``_none_of`` key."""
    return [part.rsplit("=", 1)[0] for part in key[len(ALL_OF):].split(_SEP)]


def _refuted(p, unknown) -> bool:
    """Whether the path knows that some of these operands (those whose value it does not know) are false:
    a conjunction of some of them failed earlier (``if a and b: zero`` ... ``if a and b and c: step``)."""
    if not unknown:
        return False
    mine = {f"{k}={polarity}" for k, polarity, *_ in unknown}
    for k, v in p.assume:
        if not v and k.startswith(ALL_OF) and set(k[len(ALL_OF):].split(_SEP)) <= mine:
            return True
    return False


def _literal(br: Branch, frame: Frame) -> Optional[bool]:
    """The truth value of ``br``'s test when it is a parameter alone that the frame bound to a literal."""
    return _literal_of(br.key, br.names, frame)


def _literal_of(test: str, names: frozenset, frame: Frame) -> Optional[bool]:
    """The truth value of a test (``test`` as written, the ``names`` it reads) when it is a parameter alone
    that the frame bound to a literal."""
    if not frame.literals or names != {test}:
        return None
    for name, truth in frame.literals:
        if name == test:
            return truth
    return None


def items_below(item):
    """Every item below a block or control structure within one function (no call expansion)."""
    stack = [item]
    while stack:
        it = stack.pop()
        if isinstance(it, Block):
            stack.extend(reversed(it.items))
            continue
        yield it
        if isinstance(it, Branch):
            stack.extend(reversed(it.arms))
        elif isinstance(it, Loop):
            stack.extend((it.orelse, it.body))
        elif isinstance(it, Try):
            stack.extend(reversed((it.body, *it.handlers, it.orelse, it.final)))
        elif isinstance(it, Event) and isinstance(it.closure, Block):
            stack.append(it.closure)


def _frame_key(br: Branch, frame: Frame) -> str:
    return _test_key(br.key, br.names, frame)


def _test_key(key: str, names: FrozenSet[str], frame: Frame) -> str:
    """A test's text, qualified by what its names are bound to in this call: ``len(buffer) < n`` in
    two calls of one helper with different buffers are two different tests; a parameter tested alone is
    the test of the caller's name it is bound to (``Frame.tests``)."""
    for n, caller_key in frame.tests:
        if n == key:
            return caller_key
    bound = [(n, id(r)) for n, r in frame.bindings if n in names]
    return key if not bound else key + "@" + ",".join(f"{n}={i}" for n, i in sorted(bound))


def _within(ctx: Ctx, key: Optional[str], value: bool) -> Ctx:
    """The context inside one arm of an ``if`` (key None: a ``match`` case)."""
    return Ctx(ctx.frame, ctx.loops, ctx.stack, ctx.conds + ((key, value, len(ctx.loops)),))


def _last_mark(loop: Loop) -> str:
    """The assumption a path carries through an arm that runs on the last iteration of ``loop`` only."""
    return f"last:{id(loop)}"


def _merge(out: Outcome, o: Outcome) -> None:
    out.normal |= o.normal
    _merge_jumps(out, o)


def _merge_jumps(out: Outcome, o: Outcome) -> None:
    out.brk |= o.brk
    out.cont |= o.cont
    out.ret |= o.ret


def _normal(assume: FrozenSet) -> FrozenSet:
    """What a path knows about each periodic counter, kept small: the phase it is at (when known), and
    whether it is not at a window's first (0) or last (-1) iteration (which still matters when the known
    phase runs past what is tracked: a window's first iteration only follows its last)."""
    known = {}
    for k, v in assume:
        if v and k.startswith("mod:") and ":*:" not in k:
            known[k.rsplit(":", 1)[0]] = k
    out = set()
    for k, v in assume:
        if not k.startswith("mod:") or ":*:" in k:
            out.add((k, v))
            continue
        base, phase = k.rsplit(":", 1)
        if v:
            if k == known.get(base):
                out.add((k, v))
        elif phase in ("0", "-1") and k != known.get(base):
            out.add((k, v))
    return frozenset(out) if len(out) != len(assume) else assume


def _near_window_ends(a) -> bool:
    return not a[0].startswith("mod:") or (":*:" not in a[0] and a[0].rsplit(":", 1)[1] in ("0", "-1"))


def _not_periodic(a) -> bool:
    return not a[0].startswith("mod:")


def _phase_matches(p, base: str, phase: int) -> Optional[bool]:
    """Whether the counter is known to be (or not to be) at ``phase`` of its window on this path."""
    exact = _assumed(p, f"{base}{phase}")
    if exact is not None:
        return exact
    window = base.rstrip(":").rsplit(":", 1)[-1]
    if window == "2" and phase in (0, -1):  # a window of two: not at one end is at the other
        other = _assumed(p, f"{base}{-1 - phase}")
        if other is not None:
            return not other
    for k, v in p.assume:
        if k.startswith(base):
            other = int(k[len(base):])
            # known to be at a neighbouring phase: windows have at least two iterations, so neighbours
            # differ (phases further apart may coincide when the window is short)
            if v and abs(other - phase) == 1:
                return False
    return None


def _assumed(p, key: str) -> Optional[bool]:
    for k, v in p.assume:
        if k == key:
            return v
    return None


__all__ = ["Interp", "Ctx", "Footprint", "Outcome", "OverBudget", "child_frame", "bind_arguments", "items_below", "MAX_PATHS"]
