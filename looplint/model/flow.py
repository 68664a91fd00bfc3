"""Gradient state (typestate) per optimizer, over every path of every root (the shared path interpreter,
``interp.py``, does the walking; this module says what each event does to the gradients).

States (DESIGN.md, "Gradient state"): NONE (nothing since zero) -> backward -> FRESH -> step -> USED;
backward on USED -> STALE; zero_grad -> NONE. UNKNOWN after a call that may zero, step or replace the
optimizer (it receives it) and cannot be seen into: no finding is drawn from it.

A call that cannot be seen into but may run backward (``effects.py``) is a join: the state as it was,
marked ``maybe`` (a hidden backward may have run: no finding may rely on "no gradients yet"), and the
state after a backward of unknown origin. It can never hide gradients left from an earlier step.

Default facts for objects the file does not build: distinct bindings hold disjoint parameters unless
aliasing is visible (one is a submodule path of the other, a call site binds both to one object, one is
assigned from the other, or an optimizer's parameter list cannot be read).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, NamedTuple, Optional, Set, Tuple


from looplint.model import events as ev
from looplint.model.effects import Effects
from looplint.model.events import Event, Loop, Try
from looplint.model.interp import Ctx, Interp, OverBudget
from looplint.model.roles import ENGINE, OPTIMIZER, SCALER, SCHEDULER, Frame, Role, covers
from looplint.model.schedulers import optimizer_of
from looplint.model.scopes import Function, dotted, positional_args

NONE, FRESH, USED, STALE, UNKNOWN = "NONE", "FRESH", "USED", "STALE", "UNKNOWN"
HIDDEN = "hidden"
# the source of gradients that calls we cannot see may have produced: one for all of them (which call it was
# is nothing a finding reads, and naming each one told paths apart in every combination of them)
HIDDEN_SOURCE = (HIDDEN, None)
# ... of a loss the function computed and handed to such a call (``effects.Effect.handed_graph``): that
# backward is what the call is for, and counts as gradients the code makes
HANDED_SOURCE = (HIDDEN, "handed")
_ENTRY = ("entry", None)  # stands, in a summary's run, for the history its code cannot see (``project``)
_ENTRY_FRAME = "entry"  # the calling context of an entry's gradients from the code's own backward passes
# events that read or record an optimizer's whole gradient state (not only its kind and flags)
_READS_HISTORY = frozenset({ev.STEP, ev.ZERO, ev.GRAD_CLEAR, ev.BIND, ev.CONSTRUCT, ev.UNSCALE})


class OptState(NamedTuple):
    gs: str
    zeroed_by: Optional[Event] = None  # NONE: the zero_grad that discarded FRESH gradients
    carried: FrozenSet[Loop] = frozenset()  # FRESH: loops whose back edge these gradients crossed
    noop: Optional[Event] = None  # NONE: a step that ran with no gradients in this iteration
    doubt: bool = False  # reached through a clearing or update we cannot be sure of: no finding
    # FRESH: the (backward call, frame) pairs these gradients come from (none when doubtful: no finding reads them)
    sources: FrozenSet[tuple] = frozenset()
    maybe: bool = False  # NONE/USED: a call we cannot see may have run backward since
    skipped: bool = False  # FRESH: an exception may have skipped the step meant for these gradients
    after_noop: bool = False  # FRESH: computed after a step that found nothing (``step; backward``)
    # USED/STALE: the gradients a step applied came only from calls we cannot see that were handed no loss
    # (``HIDDEN_SOURCE``): they may have run no backward at all, or cleared what they made; no finding says
    # those gradients are applied again. FRESH (doubtful): so did the gradients a new optimizer finds.
    unseen: bool = False
    unseen_new: bool = False  # STALE: so did every gradient added since that step


class Path(NamedTuple):
    states: Tuple[OptState, ...]
    assume: FrozenSet[Tuple[str, bool]]
    # Scheduler order (LL203/LL205), kept with ``_replace``: ("pending", sched_step, opt_index, loop) a
    # scheduler step waiting for its optimizer's step in this iteration of ``loop``; ("since", sched_step,
    # opt_index, scheduler, the loop it steps once per window of, or None) a scheduler step since that
    # optimizer last stepped; ("stepped", opt_index).
    marks: FrozenSet[tuple] = frozenset()


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
    # event -> (loop stack, enclosing ``if`` arms) of each context it ran in (control dependence), for the
    # events of ``GradientFlow.CONTEXT_KINDS``
    contexts: Dict[Event, Set[Tuple[Tuple[Loop, ...], tuple]]] = field(default_factory=lambda: defaultdict(set))
    # scheduler step -> optimizer steps of its optimizer that came after it in the same loop iteration
    sched_before_step: Dict[Event, Set[Event]] = field(default_factory=lambda: defaultdict(set))
    # scheduler step -> earlier steps of the same scheduler with no optimizer step in between
    sched_twice: Dict[Event, Set[Event]] = field(default_factory=lambda: defaultdict(set))
    # scheduler step after a loop -> steps of the same scheduler made once per window of that loop's counter
    # (``if (i + 1) % k == 0:``): no optimizer step between them only when the loop's length is a multiple
    # of ``k``, but the schedule advances in both places
    sched_after_window: Dict[Event, Set[Event]] = field(default_factory=lambda: defaultdict(set))
    # roots whose analysis was abandoned (over budget)
    over_budget: List[Function] = field(default_factory=list)


def disjoint(a: Role, b: Role) -> bool:
    """Whether two optimizers surely hold different parameters: both parameter lists are readable and no
    module of one is the other's or a submodule of it (distinct bindings are distinct objects)."""
    if a.modules is None or b.modules is None:
        return False
    return not any(covers(a, m) for m in b.modules)


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


# events ``GradientFlow.event`` gives every path back from unchanged
_PATH_KEEPING = frozenset({ev.CLIP, ev.MODE, ev.SCALER_UPDATE, ev.UNSCALE})


class GradientFlow(Interp):
    """The gradient-state domain: one ``OptState`` per optimizer the root can reach."""

    # the rules read the enclosing ``if`` arms of steps (scheduler order and gating) and constructions
    # (a scheduler rebuilt on some passes only)
    CONTEXT_KINDS = frozenset({ev.STEP, ev.CONSTRUCT})
    UNSEEN_IS_NOTHING = True  # a call it does not enter leaves the gradient state as it was

    def __init__(self, model, facts: Facts):
        super().__init__(model)
        self.facts = facts
        self.opts: List[Role] = []
        self.index: Dict[Role, int] = {}
        self.effects: Effects = model.effects
        self._loop_backwards: Dict[Loop, Set[Event]] = {}
        self._try_steps: Dict[int, Set[Event]] = {}
        self._skips: Dict[tuple, Tuple[Role, ...]] = {}  # ``_skipped_in``, for the optimizers of this root

    # -- entry -----------------------------------------------------------------------------------------
    def run_root(self, fn: Function, cyclic: bool) -> None:
        self.opts = self.reachable_optimizers(fn)
        self.index = {r: i for i, r in enumerate(self.opts)}
        self._skips.clear()
        self.facts.optimizers.update(self.opts)
        if cyclic:
            self.facts.implicit_roots.add(fn)
        self.run(fn, Path(tuple(OptState(NONE) for _ in self.opts), frozenset()), cyclic)

    # -- loops -----------------------------------------------------------------------------------------
    def on_enter(self, p: Path, loop: Loop) -> Path:
        """Gradients carried around an earlier run of ``loop`` belong to that run. A loop over optimizers
        (``for opt in optimizers:``) keeps the states it was entered with: each iteration's optimizer is
        another one, which the iterations before did not touch (``_member``)."""
        if any(loop in s.carried for s in p.states):
            p = p._replace(states=tuple(s._replace(carried=s.carried - {loop}) if loop in s.carried else s
                                        for s in p.states))
        if _over_optimizers(loop):
            p = p._replace(marks=frozenset(m for m in p.marks if not (m[0] == "members" and m[1] is loop))
                           | {("members", loop, p.states)})
        return p

    def on_leave(self, p: Path, loop: Loop) -> Path:
        if not _over_optimizers(loop):
            return p
        return p._replace(marks=frozenset(m for m in p.marks if not (m[0] == "members" and m[1] is loop)))

    def _member(self, e: Event, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        """``for opt in optimizers:`` binds another optimizer of the collection on every iteration: it is in
        the state the collection was in when the loop began (zeroed together before, stepped together
        here), not in the state the previous iteration left its predecessor in."""
        role = self.roles.resolve(e.target, ctx.frame)
        loop = ctx.loops[-1] if ctx.loops else None
        i = next((j for j, o in enumerate(self.opts) if role is not None and (o is role or (o.key and o.key == role.key))),
                 None)
        if i is None or loop is None:
            return paths
        out = set()
        for p in paths:
            entry = next((m[2] for m in p.marks if m[0] == "members" and m[1] is loop), None)
            if entry is not None and entry[i] != p.states[i]:
                p = p._replace(states=p.states[:i] + (entry[i],) + p.states[i + 1:])
            out.add(p)
        return out

    def on_back_edge(self, p: Path, loop: Loop) -> Path:
        states = []
        for s in p.states:
            if s.gs == FRESH and any(src[0] in self._backwards_in(loop) for src in s.sources):
                # gradients this loop's own backward passes accumulate across its iterations
                states.append(s._replace(zeroed_by=None, carried=s.carried | {loop}, noop=None))
            elif s.noop is not None:
                states.append(s._replace(noop=None))
            else:
                states.append(s)
        return p._replace(states=tuple(states))

    def on_exit(self, p: Path, loop: Loop) -> Path:
        """The iteration of ``loop`` is over: scheduler steps still waiting for an optimizer step in it
        stop waiting."""
        if not p.marks:
            return p
        keep = frozenset(m for m in p.marks if not (m[0] == "pending" and m[3] is loop))
        return p._replace(marks=keep) if keep != p.marks else p

    def _window_loop(self, ctx: Ctx) -> Optional[Loop]:
        """The loop whose counter the innermost enclosing ``if`` arm tests periodically, on the arm where
        the counter is at the window's phase (once per window), or None."""
        for key, value, depth in reversed(ctx.conds):
            periodic = self.m.periodic_test(key)
            if periodic is not None and value == periodic[1] and 0 < depth <= len(ctx.loops) \
                    and periodic[0] in ctx.loops[depth - 1].counters:
                return ctx.loops[depth - 1]
        return None

    def _backwards_in(self, loop: Loop) -> Set[Event]:
        got = self._loop_backwards.get(loop)
        if got is None:
            got = {i for i in self.m.walk(loop.body) if isinstance(i, Event) and i.kind == ev.BACKWARD}
            self._loop_backwards[loop] = got
        return got

    def on_handler(self, paths: Set[Path], t: Try, ctx: Ctx) -> Set[Path]:
        """An exception out of a ``try`` that steps an optimizer (``except FloatingPointError`` around
        ``opt.step()``, or around a helper that steps it) skips that update on purpose: discarding its
        gradients afterwards is no loss of accumulation (LL108 does not count it); nothing else changes."""
        stepped = [r for r in self.optimizers_below(t.body, ctx.frame, ctx.stack, (ev.STEP,), built=False)
                   if r in self.index]
        if not stepped:
            return paths
        return {self._apply(p, stepped, lambda s: s._replace(skipped=True) if s.gs == FRESH else s) for p in paths}

    def on_arm(self, br, index: int, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        """An arm that drops an update on a gradient check (``if torch.isfinite(norm): opt.step() else:
        opt.zero_grad()``) skips, on purpose, the step its sibling arm makes, as an exception out of a
        stepping ``try`` does: discarding those gradients is no loss of accumulation."""
        skipped = self._skipped_in(br, index, ctx)
        if not skipped:
            return paths
        return {self._apply(p, skipped, lambda s: s._replace(skipped=True) if s.gs == FRESH else s) for p in paths}

    def _skipped_in(self, br, index: int, ctx: Ctx) -> Tuple[Role, ...]:
        """The optimizers another arm of ``br`` steps and arm ``index`` does not, when the test reads the
        gradients (a test of the schedule skips nothing: zeroing on the other iterations of a window is the
        accumulation bug)."""
        key = (id(br), index, ctx.frame, ctx.stack)
        got = self._skips.get(key)
        if got is None:
            got = ()
            test = getattr(br.node, "test", None)
            if test is not None and ctx.frame.fn is not None and self.m.reads_gradients(test, ctx.frame.fn):
                def stepped(block) -> Set[Role]:
                    return {r for r in self.optimizers_below(block, ctx.frame, ctx.stack, (ev.STEP,), built=False)
                            if r in self.index}
                others = set().union(*(stepped(a) for i, a in enumerate(br.arms) if i != index))
                got = tuple(others - stepped(br.arms[index]))
            self._skips[key] = got
        return got

    def forget_history(self, p: Path) -> Path:
        """Also where gradients came from and which loops carried them: gradients whose history is
        forgotten are doubtful, so no finding relies on them (until a step or zero_grad settles them)."""
        p = super().forget_history(p)
        return p._replace(states=tuple(s._replace(doubt=True, sources=frozenset(), carried=frozenset())
                                       if s.sources or s.carried else s for s in p.states))

    # -- summaries ------------------------------------------------------------------------------------------
    def project(self, code, p: Path, frame: Frame):
        """Code that never steps, clears, builds or unscales an optimizer (only backward passes, calls we
        cannot see, hand-written gradients) reads of a gradient state only its kind and flags, and of where
        its gradients came from only which of its own backward passes (in any calling context: a loop's
        back edge asks whether its backward passes fed them) and which of its own loops carried them. The
        rest (other backward passes, the calling contexts of its own, other loops, the zero_grad that last
        discarded them) it passes on untouched or drops. That rest is set aside behind placeholders, so
        that entries differing only there share one run, and given back to the exits that kept them."""
        q, kept = super().project(code, p, frame)
        fp = self.footprint(code)
        if fp.kinds & _READS_HISTORY:
            return q, (kept, None) if kept is not None else None
        states, aside = [], []
        for s in q.states:
            carried = s.carried - fp.loops
            if not s.sources and not carried and s.zeroed_by is None:
                states.append(s)
                aside.append(None)
                continue
            # the backward passes it can tell apart, each in a placeholder context
            own = frozenset((src[0], _ENTRY_FRAME) for src in s.sources if src[0] in fp.backwards)
            states.append(s._replace(sources=own | ({_ENTRY} if s.sources else frozenset()),
                                     carried=s.carried - carried | ({_ENTRY} if carried else frozenset()),
                                     zeroed_by=None if s.zeroed_by is None else _ENTRY))
            aside.append((s.sources, carried, s.zeroed_by))
        if not any(aside):
            return q, (kept, None) if kept is not None else None
        return q._replace(states=tuple(states)), (kept, tuple(aside))

    def restore(self, q: Path, kept) -> Path:
        assumed, aside = kept
        if assumed is not None:
            q = super().restore(q, assumed)
        if aside is None:
            return q
        states = []
        for s, put in zip(q.states, aside):
            if put is not None:
                sources, carried, zeroed_by = put
                if _ENTRY in s.sources:  # the entry's gradients are still there (none replaced them)
                    s = s._replace(sources=frozenset(src for src in s.sources
                                                     if src is not _ENTRY and src[1] is not _ENTRY_FRAME) | sources)
                if _ENTRY in s.carried:
                    s = s._replace(carried=s.carried - {_ENTRY} | carried)
                if s.zeroed_by is _ENTRY:
                    s = s._replace(zeroed_by=zeroed_by)
            states.append(s)
        return q._replace(states=tuple(states))

    # -- events ---------------------------------------------------------------------------------------------
    def call(self, e: Event, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        self._record(e, paths, ctx)
        return super().call(e, paths, ctx)

    def on_unseen_call(self, e: Event, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        return paths

    def keeps_paths(self, e: Event, frame: Frame) -> bool:
        """Clips, mode switches, a scaler's update or unscale leave the gradient states as they were (an
        unscale records what reaches it); so do an inert call and the ``step()`` of something that is no
        optimizer, scheduler, scaler or engine (an EMA)."""
        if e.kind == ev.STEP:  # as ``step`` reads it
            role = self.roles.resolve(e.target, frame) if e.target is not None else None
            if role is None:
                return True
            if role.kind in (SCHEDULER, ENGINE, SCALER, OPTIMIZER):
                return False
            return not any(dotted(a) and self.roles.resolve(a, frame) in self.index
                           for a in (positional_args(e.call) if e.call is not None else []))
        return e.kind in _PATH_KEEPING or self.inert_event(e, frame)

    def inert_event(self, e: Event, frame: Frame) -> bool:
        """A call we cannot see that receives no optimizer this root tracks and cannot run backward (the
        rules read no fact of such calls)."""
        if e.kind != ev.OPAQUE:
            return False
        eff = self.effects.of(e, frame, self.opts)
        return not eff.may_backward and not any(o in self.index for o in eff.optimizers)

    def _record(self, e: Event, paths: Set[Path], ctx: Ctx) -> None:
        f = self.facts
        f.loops[e].add(ctx.loops)
        f.frames[e].add(ctx.frame)
        if e.kind in self.CONTEXT_KINDS:
            f.contexts[e].add((ctx.loops, ctx.conds))
        for p in paths:
            f.guards[e].add(p.assume)

    def event(self, e: Event, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        self._record(e, paths, ctx)
        f = self.facts
        kind = e.kind
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
                shared = [o for o in self.opts if o is not role and not disjoint(o, role)]
                return self._zero(e, paths, [role], shared)
            if role is not None and role.kind == ENGINE:
                return self._zero(e, paths, self.opts)
            if role is not None and role.kind in (SCHEDULER, SCALER):
                return paths
            key = self.roles.module_key(e.target, ctx.frame) if e.target is not None else None
            return self._zero_module(e, paths, key)
        if kind == ev.GRAD_CLEAR:
            key = self.roles.module_key(e.param_loop_module, ctx.frame) if e.param_loop_module is not None else None
            return self._zero_module(e, paths, key)
        if kind == ev.BIND and e.each_iteration:
            return self._member(e, paths, ctx)
        if kind == ev.BIND:  # a new optimizer object from here on: it has consumed nothing yet
            role = self.roles.resolve(e.target, ctx.frame)
            if role is not None and role in self.index:
                return {self._apply(p, [role], _new_optimizer) for p in paths}
            return paths
        if kind == ev.GRAD_WRITE:  # gradients written by hand: present, but of no backward we track
            return {self._apply(p, self.opts, lambda s: OptState(FRESH, doubt=True)) for p in paths}
        if kind == ev.MANUAL_UPDATE:
            return {self._apply(p, self.opts, _manual_update) for p in paths}
        if kind == ev.OPAQUE:
            return self._unseen(e, paths, ctx)
        if kind == ev.CONSTRUCT:
            if e.assigned is not None:
                built = [self.roles.resolve(e.assigned, ctx.frame)]
                if built[0] is not None and built[0].kind == OPTIMIZER and built[0].ctor is not e.call:
                    # a name bound to two optimizers in one function: the target resolved to the other one
                    built = [o for o in self.opts if o.ctor is e.call and o.frame in (None, ctx.frame)] or built
            else:  # built and returned by a factory: each optimizer some call of it made
                built = [o for o in self.opts if o.ctor is e.call] or [self.roles.resolve(e.call, ctx.frame)]
            built = [r for r in built if r is not None and r in self.index]
            if built:
                f.acted_on[e].update(built)
                return {self._apply(p, built, _new_optimizer) for p in paths}
        if kind == ev.UNSCALE and e.call is not None:
            pos = positional_args(e.call)
            role = self.roles.resolve(pos[0], ctx.frame) if pos else None
            if role is not None:
                f.acted_on[e].add(role)
                for p in paths:
                    if role in self.index:
                        f.incoming[(e, role)].add(p.states[self.index[role]])
        return paths

    def _unseen(self, e: Event, paths: Set[Path], ctx: Ctx) -> Set[Path]:
        """A call we cannot see into, through its effect summary (``effects.py``)."""
        eff = self.effects.of(e, ctx.frame, self.opts)
        hit = [o for o in eff.optimizers if o in self.index]
        if hit:
            self.facts.tainted.update(hit)
            paths = {self._apply(p, hit, lambda s: OptState(UNKNOWN)) for p in paths}
        if eff.may_backward:
            out = set()
            for p in paths:
                out.add(self._apply_all(p, _maybe, record=False))
                source = HANDED_SOURCE if eff.handed_graph else HIDDEN_SOURCE
                out.add(self._apply_all(p, lambda s: _backward(s, source), record=False))
            paths = out
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
            paths = self.run_callable(e.closure, paths, ctx, self.closure_bindings(e, ctx.frame))
        elif e.closure_unknown:
            self.facts.tainted.add(role)
            paths = {self._apply(p, [role], lambda s: OptState(UNKNOWN)) for p in paths}
        i = self.index[role]
        out = set()
        for p in paths:
            s = p.states[i]
            self.facts.incoming[(e, role)].add(s)
            if s.gs == NONE:
                # a step that found nothing in an iteration; one outside every loop (``zero_grad(); step()``
                # before training, to quiet the scheduler's warning) belongs to no iteration
                noop = e if ctx.loops else None
                new = OptState(NONE, s.zeroed_by, frozenset(), noop, s.doubt, maybe=s.maybe)
            else:
                # a step over gradients of unknown origin, or a second step, consumes we know not what
                unseen = _applies_unseen(s)
                new = OptState(USED, doubt=s.gs == UNKNOWN or (s.gs == USED and s.doubt), unseen=unseen)
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
                        if m[4] is not None and m[4] not in ctx.loops:  # made once per window of a loop left
                            self.facts.sched_after_window[e].add(m[1])
                        else:
                            self.facts.sched_twice[e].add(m[1])
                marks.add(("since", e, i, role, self._window_loop(ctx)))
            elif loop is not None:  # the optimizer has never stepped on this path: this step comes first
                marks.add(("pending", e, i, loop))
            out.add(p._replace(marks=frozenset(marks)))
        return out

    def _optimizer_stepped(self, e: Event, i: int, p: Path) -> Path:
        if not p.marks:
            if not self.m.builds_schedulers:
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

    # -- transfer helpers -----------------------------------------------------------------------------------
    def _zero_module(self, e: Event, paths: Set[Path], key: Optional[str]) -> Set[Path]:
        """A module's zero_grad clears an optimizer for sure when the optimizer holds that module's
        parameters; it surely leaves it alone when the optimizer's parameters are readable and none
        belongs to the module (distinct bindings are distinct modules); anything else is a doubtful
        clearing."""
        certain = [o for o in self.opts if key is not None and o.modules is not None and covers(o, key)]
        disjoint_ = [o for o in self.opts if key is not None and o.modules is not None and not covers(o, key)]
        doubtful = [o for o in self.opts if o not in certain and o not in disjoint_]
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
                # it discards this iteration's gradients (not ones carried around the loop, ``zero; step;
                # backward``, nor ones computed after a step that found nothing, ``step; backward; zero``:
                # both are a step placed before its backward, LL103's business)
                states[i] = OptState(NONE, e if s.gs == FRESH and not s.doubt and not s.carried and not s.after_noop else None,
                                     noop=s.noop if s.gs == NONE else None)
            for r in doubtful:
                i = self.index[r]
                s = states[i]
                self.facts.incoming[(e, r)].add(s._replace(doubt=True))
                states[i] = OptState(NONE, doubt=True)
            out.add(p._replace(states=tuple(states)))
        return out

    def _apply_all(self, p: Path, fn, record: bool = True) -> Path:
        states = []
        for s in p.states:
            if record and s.gs == NONE and s.noop is not None and not s.doubt and not s.maybe:
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


def _over_optimizers(loop: Loop) -> bool:
    """Whether the loop's target is an optimizer (``for opt in optimizers:``): its body starts by binding it."""
    items = loop.body.items
    return bool(items) and isinstance(items[0], Event) and items[0].kind == ev.BIND and items[0].each_iteration


def _backward(s: OptState, e) -> OptState:
    if s.gs == NONE:
        return OptState(FRESH, doubt=s.doubt, sources=frozenset() if s.doubt else frozenset({e}),
                        after_noop=s.noop is not None)
    if s.gs == FRESH:
        if s.doubt:
            return s._replace(unseen=False) if s.unseen and e != HIDDEN_SOURCE else s
        return s if e in s.sources else s._replace(sources=s.sources | {e})
    if s.gs in (USED, STALE):
        new_unseen = e == HIDDEN_SOURCE and (s.gs == USED or s.unseen_new)
        return OptState(STALE, doubt=s.doubt, unseen=s.unseen, unseen_new=new_unseen)
    return s


def _applies_unseen(s: OptState) -> bool:
    """Whether every gradient a step in state ``s`` applies came from calls we cannot see that were handed no
    loss (or from nowhere we know: an optimizer a call may have stepped or replaced)."""
    if s.gs == FRESH:
        return (bool(s.sources) and s.sources <= {HIDDEN_SOURCE}) or (s.doubt and s.unseen)
    if s.gs == STALE:
        return s.unseen and s.unseen_new
    return s.gs == UNKNOWN or (s.gs == USED and s.unseen)


def _maybe(s: OptState) -> OptState:
    """The no-backward alternative of a call that may have run one: nothing may rely on its absence."""
    if s.gs in (NONE, USED) and not s.maybe:
        return s._replace(maybe=True)
    return s


def _new_optimizer(s: OptState) -> OptState:
    """A newly built optimizer has applied nothing, but the parameters may already hold gradients."""
    if s.gs == NONE:
        return OptState(NONE, doubt=s.doubt, maybe=s.maybe)
    if s.gs == UNKNOWN:
        return s
    return OptState(FRESH, doubt=True, unseen=_applies_unseen(s))


def _manual_update(s: OptState) -> OptState:
    """A hand-written update consumes gradients, of which parameters we cannot tell."""
    if s.gs in (FRESH, STALE):
        return OptState(USED, doubt=True)
    return s


__all__ = ["GradientFlow", "Facts", "OptState", "Path", "NONE", "FRESH", "USED", "STALE", "UNKNOWN",
           "OverBudget", "merge_facts", "disjoint"]
