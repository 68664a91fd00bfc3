"""The training-loop model of one file, built once and queried by every rule.

    scopes  -> imports, functions, classes, assignments           (scopes.py)
    roles   -> what each name is: optimizer, scheduler, module...  (roles.py)
    events  -> per function, the calls that matter, with control  (events.py)
    loops   -> batch / epoch / step / micro-step loops            (loops.py)
    flow    -> gradient state per optimizer over all paths        (flow.py)
"""
from __future__ import annotations

import re
from functools import cached_property
from typing import Dict, FrozenSet, Iterator, List, Optional, Set, Tuple

import libcst as cst

from looplint.model.walk import Walker, descendants

from looplint.model import events as ev
from looplint.model.events import Branch, Event, EventBuilder, Jump, Loop, code
from looplint.model.effects import Effects
from looplint.model.flow import FRESH, NONE, STALE, UNKNOWN, USED, Facts, GradientFlow, OptState, OverBudget, merge_facts
from looplint.model.loops import BATCH, EPOCH, IMPLICIT, MICRO, OTHER, STEP, WALK_DEPTH, classify_all, runs_on_last_iteration, runs_on_few_iterations, walk
from looplint.model.interp import ALL_OF, handed_names, items_below, none_of_keys
from looplint.model.roles import OPTIMIZER, SCHEDULER, Frame, Role, Roles
from looplint.model.scopes import Assignment, Function, Scopes, arg, dotted, has_call, last_name, names_in
from looplint.model.graphs import FACTORIES
from looplint.model.values import PARAM, SAME_OBJECT, Def, Values, partial_args

__all__ = [
    "FileModel", "build_model", "Event", "Loop", "Role", "OptState", "Function",
    "NONE", "FRESH", "USED", "STALE", "UNKNOWN", "BATCH", "EPOCH", "STEP", "MICRO", "OTHER", "IMPLICIT",
]

GRADIENT_KINDS = (ev.STEP, ev.ZERO, ev.BACKWARD, ev.GRAD_CLEAR)
# torch functions that make a new tensor (from literal arguments, ``_fresh_tensors``), and ``nn.Parameter``
_TENSOR_MAKERS = FACTORIES | {"eye", "Parameter"}


def _fresh_tensors(expr: Optional[cst.BaseExpression]) -> bool:
    """``[torch.zeros(3, 64)]``, ``[{'params': [nn.Parameter(torch.randn(2))], 'lr': 1e-3}]``: parameters made
    in place from literals, which no other code holds (the test of an LR schedule's values, not training)."""
    if expr is None:
        return False
    if isinstance(expr, (cst.List, cst.Tuple)):
        return bool(expr.elements) and all(isinstance(el, cst.Element) and _fresh_tensors(el.value) for el in expr.elements)
    if isinstance(expr, cst.Dict):  # a parameter group: its ``params`` entry
        entries = [el for el in expr.elements if isinstance(el, cst.DictElement)
                   and isinstance(el.key, cst.SimpleString) and el.key.evaluated_value == "params"]
        return len(entries) == 1 and _fresh_tensors(entries[0].value) and all(
            isinstance(el, cst.DictElement) and isinstance(el.key, cst.SimpleString) for el in expr.elements)
    if isinstance(expr, cst.Call) and last_name(expr.func) in _TENSOR_MAKERS:
        d = dotted(expr.func) or ""
        return (d.startswith(("torch.", "nn.")) or d == "Parameter") and all(
            _literal_argument(a.value) for a in expr.args)
    return False


def _literal_argument(e: cst.BaseExpression) -> bool:
    if isinstance(e, (cst.Integer, cst.Float, cst.SimpleString)) or (isinstance(e, cst.Name) and e.value in ("True", "False", "None")):
        return True
    if isinstance(e, cst.UnaryOperation):
        return _literal_argument(e.expression)
    if isinstance(e, (cst.List, cst.Tuple)):
        return all(isinstance(el, cst.Element) and _literal_argument(el.value) for el in e.elements)
    if isinstance(e, cst.Attribute):  # ``torch.float32``
        return (dotted(e) or "").startswith("torch.")
    return _fresh_tensors(e)  # ``nn.Parameter(torch.zeros(3))``


# tensor methods that return the same values (``gradient_tensors``), and functions that join tensors
_SAME_TENSOR = SAME_OBJECT | {"clone", "detach", "view", "reshape", "flatten", "numpy", "tolist"}
_JOINED = frozenset({"cat", "stack", "concat", "hstack", "vstack", "parameters_to_vector", "_flatten_dense_tensors"})


# registering one of these makes a backward pass run code of the file's (see registers_gradient_hooks)
GRADIENT_HOOKS = frozenset({"register_full_backward_hook", "register_backward_hook", "register_hook",
                            "register_post_accumulate_grad_hook", "register_full_backward_pre_hook"})


_EQUALS_LITERAL = re.compile(r"([\w.]+) == \d+")  # a test key ``c == 0`` (``runs_at_counter_start``)


def _gates(br: Branch) -> bool:
    """Whether an arm of ``br`` itself runs a gradient event or a jump (which decides what runs after the
    ``if``): the tests that tie gradient events together (``if need_update: opt.step()`` and
    ``if not need_update: continue`` before the zeroing)."""
    return any((isinstance(i, Event) and i.kind in GRADIENT_KINDS) or isinstance(i, Jump)
               for arm in br.arms for i in items_below(arm))


class FileModel:
    def __init__(self, module: cst.Module, path: Optional[str] = None, source: Optional[str] = None):
        """``path``: where the file lives (its imports of other modules of the project are read from
        there, see project.py); None for a module on its own. ``source``: the text ``module`` was parsed
        from, when known."""
        from looplint.model.project import Project

        self.module = module
        self.scopes = Scopes(module, Project(path) if path is not None else None, source=source)
        self.values = Values(self.scopes)
        self.roles = Roles(self.scopes, self.values)
        self.builder = EventBuilder(self.scopes, self.roles.ctor_kind, self.values)
        # the loops of an imported module's function are classified alike, once its body is built
        self.builder.on_imported = lambda fn: classify_all(self.builder, self.roles, [fn])
        for fn in self.scopes.functions:
            self.builder.body(fn)
        classify_all(self.builder, self.roles, self.scopes.functions)
        self.branch_info: Dict[str, Tuple[frozenset, bool]] = {}
        self._branches: List[Branch] = []  # every keyed ``if`` (for ``gating_tests``, asked only when paths are capped)
        self._tests: Dict[str, int] = {}  # how many ``if``s test each key (per counter for periodic tests)
        self._called: Set[Function] = set()
        self._last: Dict[tuple, bool] = {}  # (id(branch), id(loop)) -> ``last_iteration``
        self._tested_alone: Dict[Function, FrozenSet[str]] = {}  # per callee: the names it tests alone
        # a name a call hands to a callee that tests the parameter alone -> those parameters (``test_keys``)
        self._aliases: Dict[str, Set[str]] = {}
        self._test_facts: Dict[str, tuple] = {}  # per assumption key (``_test_fact``)
        self._periodic_keys: Optional[Dict[str, Tuple[str, bool]]] = None  # test key -> ``periodic_test``
        self._hands_out: Dict[Function, bool] = {}  # ``hands_out_gradients``
        self._free_at: Dict[int, tuple] = {}  # ``free_at``, by call event
        # the tests of the file's functions, and of the imported modules' functions they call (transitively):
        # how many ``if``s test a key, what it reads, whether it gates an event, for their code as for ours
        todo = list(self.scopes.functions)
        registered = set(todo)
        for fn in todo:  # grows while it is read
            # each function's own items once (a depth at the walk's limit enters no callee)
            for item in walk(self.builder.body(fn), self.builder, depth=99):
                if isinstance(item, Branch) and item.key is not None:
                    k = f"mod:{item.mod[0]}:{item.mod[1]}" if item.mod is not None else item.key
                    self._tests[k] = self._tests.get(k, 0) + 1
                    self.branch_info[item.key] = (item.names, item.volatile)
                    for key, names, _polarity, volatile in item.conjuncts:  # ``if a and b:`` tests ``a`` too
                        self._tests[key] = self._tests.get(key, 0) + 1
                        self.branch_info.setdefault(key, (names, volatile))
                    self._branches.append(item)
                    if item.mod is not None:
                        self.branch_info[f"mod:{item.mod[0]}:{item.mod[1]}:{item.mod[2]}"] = (item.names, item.volatile)
                elif isinstance(item, Event):
                    if item.kind == ev.CALL and item.callee is not fn:
                        self._called.add(item.callee)
                        self._count_handed_tests(item, fn)
                        callee = item.callee
                        if callee not in registered and callee.home is not None and callee.home is not self.scopes:
                            registered.add(callee)
                            todo.append(callee)
                    if isinstance(item.closure, Function):
                        self._called.add(item.closure)
        for block in self.builder.expected_to_raise:  # what runs only where it must raise is not judged alone
            for item in items_below(block):
                if isinstance(item, Event) and item.kind == ev.CALL:
                    self._called.add(item.callee)
        self._facts: Optional[Facts] = None
        self._kinds: Dict[Tuple[Function, int], FrozenSet[str]] = {}
        self._roots: Optional[List[Function]] = None
        self._steps: Optional[Dict[Optional[Role], List[Event]]] = None
        self._handed: Dict[int, bool] = {}
        self._scanned = 0  # how many built function bodies ``function_of`` has indexed

    def _count_handed_tests(self, call: Event, fn: Function) -> None:
        """What a call hands to a callee that tests the parameter alone (``if update_grad:`` there). A
        periodic test (``update(opt, (i + 1) % k == 0)``) is one more ``if`` of that test
        (``Interp._handed_periodic``); a name (``train(opt, use_amp)``) is tested there under the caller's
        name (``Frame.tests``), so that name stands for the parameter's tests too (``test_keys``)."""
        if call.callee is None or call.call is None:
            return
        given = Values.parameters_bound(call.callee, call.call, call.bound_args)
        if not any(not isinstance(v, cst.Name) or v.value not in ev.LITERAL_NAMES for v in given.values()):
            return
        alone = self.tested_alone(call.callee)
        for name, caller_name in handed_names(call.callee, given):
            if name in alone:
                self._aliases.setdefault(caller_name, set()).add(name)
        for name, v in given.items():
            if name in alone and not isinstance(v, cst.Name) and ev.literal_truth(v) is None:
                mod = self.builder.periodic(v, fn)
                if mod is not None:
                    k = f"mod:{mod[0]}:{mod[1]}"
                    self._tests[k] = self._tests.get(k, 0) + 1
                    self.branch_info[f"{k}:{mod[2]}"] = (frozenset(names_in(v)), has_call(v))

    def tested_alone(self, fn: Function) -> FrozenSet[str]:
        """The names ``fn`` tests alone (``if update_grad:``), not periodically: the parameters whose argument
        a call may hand it as a test (``Interp.bind``)."""
        got = self._tested_alone.get(fn)
        if got is None:
            got = self._tested_alone[fn] = frozenset(
                key for i in walk(self.builder.body(fn), self.builder, depth=99)
                if isinstance(i, Branch) and i.key is not None and i.mod is None
                for key, names in ((i.key, i.names), *((c[0], c[1]) for c in i.conjuncts)) if names == {key})
        return got

    @cached_property
    def gating_tests(self) -> FrozenSet[str]:
        """Tests with an arm that runs a gradient event or a jump (``_gates``): what the interpreter forgets
        last when it must forget (computed on first use: only files whose paths get capped ask)."""
        return frozenset(key for br in self._branches if _gates(br) for key in br.tested)

    @cached_property
    def mode_tests(self) -> FrozenSet[str]:
        """Tests with an arm that sets a module's train/eval mode (``if cfg.aux: aux.eval()``): they tie the
        mode analysis's arms together as ``gating_tests`` tie gradient events."""
        return frozenset(key for br in self._branches
                         if any(isinstance(i, Event) and i.kind == ev.MODE for arm in br.arms for i in items_below(arm))
                         for key in br.tested)

    def gates_mode(self, key: str) -> bool:
        """Whether a test an assumption stands for (``test_keys``) has an arm that sets a module's mode."""
        return not self.test_keys(key).isdisjoint(self.mode_tests)

    def built_in(self, key: str, loop: Loop) -> bool:
        """Whether the module of ``key`` is one a call inside ``loop`` makes (``new@`` keys,
        ``Roles.fresh_module_key``: ``local_train(copy.deepcopy(global_model).to(dev))``, ``fit(Net())``):
        each pass of the loop makes another."""
        if not key.startswith("new@"):
            return False
        made = int(key[4:])
        return any(id(n) == made for n in descendants(loop.node))

    def last_iteration(self, br: Branch, loop: Loop) -> bool:
        """Whether the then arm of ``br`` runs only on the last iteration of ``loop``, the innermost loop
        around it in its function (``loops.runs_on_last_iteration``): nothing of the loop follows it."""
        key = (id(br), id(loop))
        got = self._last.get(key)
        if got is None:
            got = self._last[key] = (
                isinstance(br.node, cst.If) and loop.fn is not None and br.polarity
                and runs_on_last_iteration(br.node.test, loop, self.values, loop.fn)
                and _innermost_loop(br.node, loop.node))
        return got

    def runs_on_few_iterations(self, event: Event, loop: Loop) -> bool:
        """Whether ``event`` runs on a few iterations of ``loop`` only, the same ones on every run: it is in
        the then arm of an ``if`` inside the loop, in the loop's own function, whose test picks iterations
        by the loop's index (``loops.runs_on_few_iterations``: ``if epoch == 0:``, ``elif epoch in (30,
        60):``)."""
        fn = self.function_of(event)
        if fn is None or loop.fn is not fn:
            return False
        for br in self.walk(fn):
            if isinstance(br, Branch) and isinstance(br.node, cst.If) and len(br.arms) == 2 \
                    and runs_on_few_iterations(br.node.test, loop, self.values, fn) \
                    and any(i is event for i in items_below(br.arms[0] if br.polarity else br.arms[1])) \
                    and any(n is br.node for n in descendants(loop.node)):
                return True
        return False

    def runs_at_counter_start(self, event: Event) -> bool:
        """Whether ``event`` runs only under a test ``c == <n>`` of its function, where ``c`` is a counter
        some ``if`` of the file tests modulo something (``c % k == 0`` around the step of an accumulation
        window): it runs once when the counter starts a run (``if i == 0: opt.zero_grad()``), like code
        before the loop, not on every iteration."""
        fn = self.function_of(event)
        if fn is None:
            return False
        for br in self.walk(fn):
            if isinstance(br, Branch) and br.key is not None and len(br.arms) == 2 and self._counter_start_test(br.key):
                if any(i is event for i in items_below(br.arms[0] if br.polarity else br.arms[1])):
                    return True
        return False

    def _counter_start_test(self, key: str) -> bool:
        m = _EQUALS_LITERAL.fullmatch(key)
        if m is None:
            return False
        periodic = re.compile(r"\(?\s*" + re.escape(m.group(1)) + r"\s*(?:[+-]\s*\d+\s*)?\)?\s*%")
        return any(periodic.search(k) for k in self.branch_info)

    @cached_property
    def periodic_counters(self) -> FrozenSet[str]:
        """Counters some ``if`` tests periodically (``(i + 1) % k``): only their phases are worth tracking."""
        return frozenset(k.split(":")[1] for k in self._tests if k.startswith("mod:"))

    def test_keys(self, key: str) -> FrozenSet[str]:
        """The tests a path's assumption stands for: its own, and when a call handed the name to a callee
        that tests the parameter alone (``train(opt, use_amp)`` and ``if use_amp:`` there, recorded under the
        caller's name: ``Frame.tests``), that parameter's tests, through any number of calls."""
        return self._test_fact(key)[0]

    def test_reads(self, key: str) -> Optional[Tuple[frozenset, bool]]:
        """What an assumption's test reads: (its names, whether it calls something), over every test it
        stands for (``test_keys``); None when no ``if`` of this file makes it (a test of an imported module's
        code) and it is no plain name (a plain name reads itself)."""
        return self._test_fact(key)[1]

    def varies_in(self, key: Optional[str], loop: Loop) -> bool:
        """Whether the test of an assumption key may take another value in another iteration of ``loop``:
        it calls something, reads a name the loop assigns or iterates, or is unknown. A test of a setting
        (``if args.use_lr_decay:``) takes the same arm on every iteration."""
        info = self.test_reads(key) if key is not None else None
        if info is None:
            return True
        names, volatile = info
        return volatile or bool(names & (loop.assigned | loop.target_names))

    def gates(self, key: str) -> bool:
        """Whether a test an assumption stands for (``test_keys``) has an arm that runs a gradient event or
        a jump (``gating_tests``)."""
        return self._test_fact(key)[2]

    def periodic_test(self, key: Optional[str]) -> Optional[Tuple[str, bool]]:
        """For a test key that tests a counter periodically (``(i + 1) % k == 0``, also the interpreter's
        ``mod:`` phase keys): (the counter, the key's value on the iterations where the counter is at the
        tested phase, once per window); else None. ``(i + 1) % k != 0`` is true on the other iterations."""
        if key is None:
            return None
        if key.startswith("mod:"):
            return key.split(":", 2)[1], True
        if self._periodic_keys is None:
            # the interpreter's arms carry the key's value, on the arm where the phase matches: the test's
            # polarity (``Interp._periodic_split``)
            self._periodic_keys = {b.key: (b.mod[0], b.polarity) for b in self._branches if b.mod is not None}
        return self._periodic_keys.get(key)

    def tested_again(self, key: str) -> bool:
        """Whether more than one ``if`` of the file tests ``key`` (or what it stands for: ``test_keys``):
        only then is its value worth remembering."""
        if key.startswith("mod:"):
            return self._tests.get(key, 0) > 1
        return self._test_fact(key)[3]

    def _test_fact(self, key: str) -> tuple:
        """(test_keys, test_reads, gates, tested_again) of an assumption's key, computed once (the
        interpreter asks at every loop edge, for every assumption of every path)."""
        got = self._test_facts.get(key)
        if got is not None:
            return got
        if key.startswith(ALL_OF):  # operands of a conjunction known not all true (``Interp``)
            keys = frozenset().union(*(self.test_keys(k) for k in none_of_keys(key)))
        else:
            seen, todo = {key.split("@", 1)[0]}, [key.split("@", 1)[0]]
            while todo:
                for name in self._aliases.get(todo.pop(), ()):
                    if name not in seen:
                        seen.add(name)
                        todo.append(name)
            keys = frozenset(seen)
        infos = [self.branch_info[k] for k in keys if k in self.branch_info]
        infos.extend((frozenset((k,)), False) for k in keys if k.isidentifier() and k not in self.branch_info)
        reads = (frozenset().union(*(i[0] for i in infos)), any(i[1] for i in infos)) if infos else None
        got = self._test_facts[key] = (keys, reads, not keys.isdisjoint(self.gating_tests),
                                       sum(self._tests.get(k, 0) for k in keys) > 1)
        return got

    # -- the gradient flow, computed on first use ----------------------------------------------------------
    @property
    def facts(self) -> Facts:
        if self._facts is None:
            facts = Facts()
            for fn in self.roots():
                part = Facts()
                try:
                    GradientFlow(self, part).run_root(fn, cyclic=self.is_per_step(fn))
                except OverBudget:
                    facts.over_budget.append(fn)
                    continue
                part.roots.append(fn)
                merge_facts(facts, part)
            self._facts = facts
        return self._facts

    @cached_property
    def effects(self) -> Effects:
        """Effect summaries of the calls looplint cannot see into (see effects.py)."""
        return Effects(self)

    @cached_property
    def builds_schedulers(self) -> bool:
        """Whether this module constructs a scheduler (only then are optimizer steps worth marking)."""
        return any(isinstance(i, Event) and i.kind == ev.CONSTRUCT and i.call is not None
                   and self.roles.ctor_kind(i.call)[0] == SCHEDULER
                   for fn in self.scopes.functions for i in items_below(self.builder.body(fn)))

    @cached_property
    def precision(self):
        """Mixed-precision facts (scaled backward vs. raw step / clip), computed on first use."""
        from looplint.model.precision import analyse

        return analyse(self)

    @cached_property
    def useless_clips(self):
        """Clips that run when no optimizer holds gradients a step will apply (see clipping.py)."""
        from looplint.model.clipping import analyse

        return analyse(self)

    @cached_property
    def eval_leaks(self):
        """Backward passes that run with a trained module left in eval mode (see modes.py)."""
        from looplint.model.modes import analyse

        return analyse(self)

    @cached_property
    def graph_accumulations(self):
        """``total += loss`` of a backpropagated loss across loop iterations (see accumulators.py)."""
        from looplint.model.accumulators import find

        return find(self)

    @cached_property
    def _event_functions(self) -> Dict[int, Function]:
        table: Dict[int, Function] = {}
        for fn in self.scopes.functions:
            for item in items_below(self.builder.body(fn)):
                if isinstance(item, Event):
                    table[id(item)] = fn
        return table

    def constructions(self, call: cst.Call) -> List[Event]:
        """The construct events of a constructor call, in whichever function holds it: one of this file, or
        one of an imported module of the project that the analysis entered (``opt = make_optimizer(net)``
        with the factory in ``helpers.py``: project.py). Empty when no function the model built holds it."""
        functions = list(self.scopes.functions) + [f for f in list(self.builder.built()) if f.home is not self.scopes]
        return [i for f in functions for i in items_below(self.builder.body(f))
                if isinstance(i, Event) and i.kind == ev.CONSTRUCT and i.call is call]

    def function_of(self, e: Event) -> Optional[Function]:
        """The function whose body holds an event (also a function of an imported module the analysis
        entered: project.py)."""
        table = self._event_functions
        got = table.get(id(e))
        if got is None and len(self.builder.built()) != self._scanned:
            self._scanned = len(self.builder.built())
            for fn in list(self.builder.built()):
                if fn.home is not self.scopes:
                    for item in items_below(self.builder.body(fn)):
                        if isinstance(item, Event):
                            table.setdefault(id(item), fn)
            got = table.get(id(e))
        return got

    def site_in_file(self, node: cst.CSTNode) -> Tuple[Optional[cst.CSTNode], Optional[Scopes]]:
        """(the call of this file that runs, directly or through the functions it calls, the function of an
        imported module whose code holds ``node``; that module): where a finding in the project's other
        modules is reported (the engine reports nothing outside the linted file). None when ``node`` is in no
        function of an imported module the analysis entered, or when several calls of this file run it: the
        facts at ``node`` are joined over all of them, so which call the finding belongs to is unknown."""
        built = list(self.builder.built())
        holder = next((f for f in built if f.home is not self.scopes and any(
            isinstance(i, Event) and i.node is node for i in items_below(self.builder.body(f)))), None)
        if holder is None:
            return None, None
        calls = {f: [i for i in items_below(self.builder.body(f))
                     if isinstance(i, Event) and i.kind == ev.CALL and i.callee is not None] for f in built}
        reaches = {holder}
        changed = True
        while changed:
            changed = False
            for f, made in calls.items():
                if f not in reaches and any(c.callee in reaches for c in made):
                    reaches.add(f)
                    changed = True
        sites = {id(c.node): c.node for f in built if f.home is self.scopes for c in calls[f]
                 if c.callee in reaches and c.callee.home is not self.scopes}
        return (next(iter(sites.values())) if len(sites) == 1 else None), holder.home

    def scaler_handed_over(self, expr: cst.BaseExpression, fn: Function) -> bool:
        """Whether a GradScaler is handed to code we cannot see that keeps it (an argument of a call whose
        result is kept, like a precision plugin built around it): that object may own it from then on. A
        statement call (``save(model, scaler)``) keeps nothing."""
        role = self.roles.resolve(expr, Frame(fn))
        if role is None or role.kind != "scaler":
            return False
        got = self._handed.get(id(role))
        if got is None:
            got = False
            for f in self.scopes.functions:
                for item in items_below(self.builder.body(f)):
                    if isinstance(item, Event) and item.kind == ev.OPAQUE and item.usage != "stmt" and item.call is not None:
                        for a in item.call.args:
                            if dotted(a.value) and self.roles.resolve(a.value, Frame(f)) is role:
                                got = True
            self._handed[id(role)] = got
        return got

    def roots(self) -> List[Function]:
        """Functions nobody in this module calls (plus the module body) that touch gradients."""
        if self._roots is None:
            self._roots = [fn for fn in self.scopes.functions
                           if (fn.is_module or fn not in self._called)
                           and not (fn.cls is not None and _optimizer_like(fn.cls))  # an optimizer's implementation
                           and not self.reached_kinds(fn).isdisjoint(GRADIENT_KINDS)]
        return list(self._roots)

    def reached_kinds(self, fn: Function, depth: int = 0) -> FrozenSet[str]:
        """The kinds of the events ``walk(fn)`` reaches: its own and those of the functions it calls, to
        the walk's depth; computed once per function and depth."""
        key = (fn, depth)
        got = self._kinds.get(key)
        if got is None:
            kinds: Set[str] = set()
            for i in items_below(self.builder.body(fn)):
                if isinstance(i, Event):
                    kinds.add(i.kind)
                    if i.kind == ev.CALL and i.callee is not None and depth < WALK_DEPTH:
                        kinds |= self.reached_kinds(i.callee, depth + 1)
            got = self._kinds[key] = frozenset(kinds)
        return got

    def is_per_step(self, fn: Function) -> bool:
        """A loop-less function that computes a loss, backpropagates it and steps, and that nothing in the
        module calls or references: something outside (a framework, another module) calls it once per
        iteration, so its body is one iteration of a loop we cannot see. A function called, stored,
        passed or returned here is analysed where it is called (or not at all)."""
        if fn.is_module or fn in self._called or self.values.referenced(fn):
            return False
        items = list(self.walk(fn))
        if any(isinstance(i, Loop) for i in items) or not any(isinstance(i, Event) and i.kind == ev.STEP for i in items):
            return False
        return self._computes_loss(fn)

    def _computes_loss(self, fn: Function, depth: int = 0) -> bool:
        """Whether some backward pass ``fn`` runs (itself or through a helper it calls) is of a loss it
        computes, not one it was handed (``def f(loss, opt): loss.backward(); opt.step()``: the caller did
        the forward pass, and may have zeroed too)."""
        for item in items_below(self.builder.body(fn)):
            if not isinstance(item, Event):
                continue
            if item.kind == ev.BACKWARD:
                root = loss_root(item)
                if root is None or not self._handed_loss(root, fn):
                    return True
            elif item.kind == ev.CALL and depth < 3 and item.callee is not fn:
                handed = self.values.parameters_bound(item.callee, item.call, item.bound_args)
                for b in items_below(self.builder.body(item.callee)):
                    if isinstance(b, Event) and b.kind == ev.BACKWARD:
                        root = loss_root(b)
                        if root is None or not self._handed_loss(root, item.callee):
                            return True
                        arg = handed.get(root.value)
                        if arg is None or not (isinstance(arg, cst.Name) and self._handed_loss(arg, fn)):
                            return True
                if self._computes_loss_deeper(item.callee, depth):
                    return True
        return False

    def _computes_loss_deeper(self, callee: Function, depth: int) -> bool:
        return any(isinstance(i, Event) and i.kind == ev.CALL and i.callee is not callee
                   for i in items_below(self.builder.body(callee))) and self._computes_loss(callee, depth + 1)

    def _handed_loss(self, name: cst.Name, fn: Function, depth: int = 3) -> bool:
        """Whether the loss ``name`` is one ``fn`` was handed: a parameter, or a value made from one
        (``loss = loss / k``, ``scaler.scale(loss)``, ``with amp.scale_loss(loss, opt) as scaled:``)."""
        if depth <= 0:
            return self.values.handed(name, fn)
        _scope, binds = self.values.bindings(name.value, fn, name)
        if not binds:
            return False
        for b in binds:
            if isinstance(b, Def) and b.kind == PARAM:
                continue
            if isinstance(b, Assignment) and b.index is None:
                value = b.value
            elif isinstance(b, Def) and isinstance(b.node, cst.With):
                value = next((i.item for i in b.node.items if i.asname is not None
                              and isinstance(i.asname.name, cst.Name) and i.asname.name.value == name.value), None)
            else:
                return False
            if not self._made_from_handed(value, fn, depth - 1):
                return False
        return True

    def _made_from_handed(self, value, fn: Function, depth: int) -> bool:
        """``value`` rescales or wraps a loss ``fn`` was handed: arithmetic on it, a method of it, or a call
        whose first argument it is."""
        if isinstance(value, cst.BinaryOperation):
            return self._made_from_handed(value.left, fn, depth)
        if isinstance(value, cst.Name):
            return self._handed_loss(value, fn, depth)
        if isinstance(value, cst.Call):
            own = value.func.value if isinstance(value.func, cst.Attribute) else value.func
            if fn.cls is not None and isinstance(own, cst.Name) and fn.params[:1] == [own.value]:
                return False  # ``self.net(xb)``, ``self.crit(out, y)``, ``self(x)``: what the object computes
            if isinstance(value.func, cst.Attribute) and isinstance(value.func.value, cst.Name) \
                    and self._handed_loss(value.func.value, fn, depth):
                return True  # ``loss.mean()``
            first = value.args[0] if value.args and value.args[0].keyword is None and not value.args[0].star else None
            return first is not None and isinstance(first.value, cst.Name) and self._handed_loss(first.value, fn, depth)
        return False

    # -- queries for rules --------------------------------------------------------------------------------------
    def walk(self, fn_or_block) -> Iterator[object]:
        block = self.builder.body(fn_or_block) if isinstance(fn_or_block, Function) else fn_or_block
        return walk(block, self.builder)

    def optimizer_events(self, kind: str) -> Iterator[Tuple[Event, Role, Set[OptState]]]:
        """(event, optimizer, states on arrival) for every event of ``kind`` that acted on an optimizer."""
        for (event, role), states in self.facts.incoming.items():
            if event.kind == kind or (kind == ev.ZERO and event.kind == ev.GRAD_CLEAR):
                yield event, role, states

    def reads_gradients(self, expr: cst.BaseExpression, fn: Function, depth: int = 3) -> bool:
        """Whether a value is computed from gradients: a clip's result (the total norm), ``.grad``, followed
        through the names it reads a few assignments deep (``ok = torch.isfinite(norm)``)."""
        for node in descendants(expr, prune=lambda n: isinstance(n, cst.Lambda)):
            if isinstance(node, cst.Call) and last_name(node.func) in ev.CLIP_FUNCS:
                return True
            if isinstance(node, cst.Attribute) and node.attr.value == "grad":
                return True
            if isinstance(node, cst.Name) and depth > 0:
                for value, where in self.values.assigned_values(node, fn) or ():
                    if self.reads_gradients(value, where, depth - 1):
                        return True
        return False

    def gradient_tensors(self, expr: cst.BaseExpression, fn: Function, depth: int = 2) -> bool:
        """Whether a value is (or holds) gradient tensors themselves, not a number computed from them:
        ``p.grad``, ``p.grad.clone()``, ``[p.grad.data.cpu() for p in ...]``, ``torch.cat(grads)``, also
        through names bound to such values a few assignments deep. ``p.grad.norm()`` or ``p.grad is None``
        is no gradient tensor."""
        t = type(expr)
        if t is cst.Attribute:
            return expr.attr.value == "grad" or (expr.attr.value == "data" and self.gradient_tensors(expr.value, fn, depth))
        if t is cst.Call:
            func = expr.func
            if isinstance(func, cst.Attribute) and func.attr.value in _SAME_TENSOR:
                return self.gradient_tensors(func.value, fn, depth)
            if last_name(func) in _JOINED:
                return any(self.gradient_tensors(a.value, fn, depth) for a in expr.args if a.keyword is None)
            return False
        if t in (cst.List, cst.Tuple):
            return any(isinstance(el, (cst.Element, cst.StarredElement)) and self.gradient_tensors(el.value, fn, depth)
                       for el in expr.elements)
        if t in (cst.ListComp, cst.GeneratorExp):
            return self.gradient_tensors(expr.elt, fn, depth)
        if t is cst.Name and depth > 0:
            return any(self.gradient_tensors(value, where, depth - 1)
                       for value, where in self.values.assigned_values(expr, fn) or ())
        return False

    def hands_out_gradients(self, fn: Function) -> bool:
        """Whether code run from ``fn`` hands gradient tensors to a call it cannot see (``queue.put(grads)``,
        ``send(p.grad)``): they may be applied there (to a shared model, in another process)."""
        got = self._hands_out.get(fn)
        if got is None:
            got = self._hands_out[fn] = any(
                isinstance(i, Event) and i.kind == ev.OPAQUE and i.call is not None
                and any(self.gradient_tensors(a.value, self.function_of(i) or fn) for a in i.call.args)
                for i in self.walk(fn))
        return got

    def reads_gradients_of(self, fn: Function, tensors: FrozenSet[str]) -> bool:
        """Whether the code of ``fn`` reads the gradient of one of ``tensors`` (dotted names) for a value:
        ``x.grad.sign()``, ``eta = step * x.grad`` (a hand-made update that rebinds ``x``), not ``x.grad =
        None`` or ``x.grad.zero_()``, which clear it."""
        written: Set[int] = set()
        read = []
        for n in descendants(fn.node):
            if isinstance(n, cst.Assign):
                written.update(id(t.target) for t in n.targets)
            elif isinstance(n, (cst.AugAssign, cst.AnnAssign)):
                written.add(id(n.target))
            elif isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value in _GRAD_RESETS:
                written.add(id(n.func.value))
            elif isinstance(n, cst.Attribute) and n.attr.value == "grad" and dotted(n.value) in tensors:
                read.append(n)
        return any(id(n) not in written for n in read)

    @cached_property
    def registers_gradient_hooks(self) -> bool:
        """Whether the file's code registers a hook a backward pass runs (``module.register_full_backward_hook``,
        ``tensor.register_hook``, ``param.register_post_accumulate_grad_hook``): backward passes then feed
        code that reads the gradients (per-sample statistics, Fisher information), whether or not a step
        applies them."""
        return any(isinstance(i, Event) and i.call is not None and isinstance(i.call.func, cst.Attribute)
                   and i.call.func.attr.value in GRADIENT_HOOKS
                   for fn in self.scopes.functions for i in items_below(self.builder.body(fn)))

    def free_at(self, e: Event, fn: Function) -> tuple:
        """``Frame.free`` entries of a call ``fn`` makes of a function defined inside it: each name ``fn``
        binds more than once that the callee does not bind, as (name, role of the bindings reaching the
        call, ``fn``). The same for every path and analysis: computed once per call."""
        got = self._free_at.get(id(e))
        if got is None or got[0] is not e:
            callee = e.callee
            own = set(callee.params) | set(callee.assigns) | callee.globals_
            out = []
            for name, assigns in fn.assigns.items():
                if len(assigns) < 2 or name in own:
                    continue
                binds = self.values.reaching_call(e.call, fn, name)
                if binds and len(binds) < len(assigns) and all(isinstance(b, Assignment) for b in binds):
                    out.append((name, self.roles.assigned(fn, name, binds), fn))
            got = self._free_at[id(e)] = (e, tuple(out))
        return got[1]

    def loop_stacks(self, event: Event, over_parameters: bool = True) -> Set[Tuple[Loop, ...]]:
        """The stacks of loops (outermost first) ``event`` runs in, one per way of reaching it; without the
        loops over a module's parameters (``for p in M.parameters(): p.grad = None``) when asked."""
        stacks = self.facts.loops.get(event, set())
        if over_parameters:
            return stacks
        return {tuple(l for l in s if l.over_parameters is None) for s in stacks}

    def in_real_loop(self, event: Event) -> bool:
        return any(any(l.kind != IMPLICIT for l in stack) for stack in self.loop_stacks(event))

    def loop_items(self, loop: Loop) -> Iterator[object]:
        return walk(loop.body, self.builder)

    def statements_after(self, loop: Loop) -> list:
        """The statements that follow ``loop`` in its block."""
        return self.builder.after.get(loop.node, [])

    def backward_on_leaked_names(self, loop: Loop) -> List[cst.Call]:
        """``backward()`` calls after ``loop`` (in its block, or in a function of this module called there)
        whose loss derives, through plain assignments and arguments, from the loop's leaked variables: its
        targets and the names its body rebinds. A name the body only adds to (``losses[i] = ...``, ``total
        += ...``, ``.append``) collects every iteration and is no leak, nor is one bound before the loop that
        the body rebinds from its own value (``stacked = torch.cat([stacked, out])``: a fold over every
        batch)."""
        fn = loop.fn or self.scopes.module
        folded = {n for n in _folded(loop.node.body) - set(loop.target_names)
                  if self.values.bound_before_loop(loop.node, n, fn)}
        leaked = set(loop.target_names) | (_rebound(loop.node.body) - folded)
        return list(dict.fromkeys(self._leaked_backwards(self.statements_after(loop), leaked, fn, 0)))

    def _leaked_backwards(self, statements, tainted, fn: Function, depth: int):
        tainted = set(tainted)
        for st in statements:
            lines = [st] if isinstance(st, cst.SimpleStatementLine) else []
            if isinstance(st, (cst.With, cst.If, cst.Try)):
                body = st.body.body if isinstance(st.body, cst.IndentedBlock) else []
                lines = [b for b in body if isinstance(b, cst.SimpleStatementLine)]
            for line in lines:
                for small in line.body:
                    value = small.value if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Expr, cst.Return)) else None
                    if value is None:
                        continue
                    for call in _calls(value):
                        if _is_backward(call):
                            if names_in(call.func) & tainted:
                                yield call
                        elif depth < 3:
                            yield from self._leaked_into_call(call, tainted, fn, depth)
                    if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and names_in(value) & tainted:
                        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                        for t in targets:
                            tainted |= names_in(t)

    def _leaked_into_call(self, call: cst.Call, tainted, fn: Function, depth: int):
        """Backward passes a same-module function runs on losses derived from the leaked values it receives."""
        target = self.values.callable_of(call.func, fn)
        if target is None or not isinstance(target.target, Function) or target.target.is_module:
            return
        callee = target.target
        made = target.forwarded(call) if target.forward is not None else call.with_changes(args=partial_args(target.bound_args, call.args))
        hit = {name for name, value in self.values.parameters_bound(callee, made).items() if names_in(value) & tainted}
        if hit and isinstance(callee.node, cst.FunctionDef):
            yield from self._leaked_backwards(callee.node.body.body, hit, callee, depth + 1)

    def _fresh_parameters(self, ctor: cst.Call, fn: Optional[Function]) -> bool:
        """The optimizer built by ``ctor`` (in ``fn``) holds only tensors made in place from literals
        (``_fresh_tensors``), given directly or through a local name read nowhere else."""
        params = arg(ctor, 0, "params")
        if isinstance(params, cst.Name):
            values = self.values.assigned_values(params, fn) if fn is not None else None
            if not values or len(values) != 1 or not _fresh_tensors(values[0][0]):
                return False
            # the binding and this argument: no other code reads the name
            return sum(1 for n in descendants(fn.node) if type(n) is cst.Name and n.value == params.value) == 2
        return _fresh_tensors(params)

    def forward_around(self, step: Event, role: Role) -> bool:
        """Some loop around ``step`` calls a module (the optimizer's, or any when its parameters cannot be
        read): a forward pass, whose loss could have been backpropagated. A loop that only steps and reads
        the learning rate (an LR-schedule trace) trains nothing."""
        from looplint.model.loops import walk
        from looplint.model.roles import MODULE

        if role.ctor is not None and self._fresh_parameters(role.ctor, role.scope):
            return False  # built over tensors made in place, which nothing else can read: no loss reaches them
        for stack in self.loop_stacks(step):
            for loop in stack:
                for item in walk(loop.body, self.builder):
                    call = getattr(item, "call", None)
                    if not isinstance(call, cst.Call) or not isinstance(call.func, (cst.Name, cst.Attribute, cst.Subscript)):
                        continue
                    frame = Frame(self.function_of(item) or self.scopes.module)
                    target = self.roles.resolve(call.func, frame)
                    if target is not None and target.kind == MODULE:
                        return True
                    key = self.roles.module_key(call.func, frame)
                    if key is not None and (role.modules is None or key in role.modules):
                        return True
        return False

    def steps_of(self, role: Optional[Role]) -> List[Event]:
        """The step events of an optimizer (of every optimizer when ``role`` is None), in event order."""
        index = self._steps
        if index is None:
            index = self._steps = {}
            for e, roles in self.facts.acted_on.items():
                if e.kind != ev.STEP:
                    continue
                opts = [r for r in roles if r.kind == OPTIMIZER]
                if opts:
                    index.setdefault(None, []).append(e)
                for r in set(roles):
                    index.setdefault(r, []).append(e)
        return list(index.get(role, ()))

    def source(self, node: cst.CSTNode) -> str:
        return " ".join(code(node).split())


def loss_root(backward: Event) -> Optional[cst.Name]:
    """The name a backward pass's loss is read from (``loss`` in ``(loss / k).backward()``,
    ``scaler.scale(loss).backward()``, ``accelerator.backward(loss)``)."""
    target = backward.target
    if backward.wrapper and backward.call is not None and backward.call.args:
        target = backward.call.args[0].value
    while isinstance(target, (cst.Call, cst.BinaryOperation, cst.UnaryOperation)):
        if isinstance(target, cst.BinaryOperation):
            target = target.left
        elif isinstance(target, cst.UnaryOperation):
            target = target.expression
        elif isinstance(target.func, cst.Attribute) and target.func.attr.value == "scale" and target.args:
            target = target.args[0].value
        elif isinstance(target.func, cst.Attribute):
            target = target.func.value
        else:
            return None
    return target if isinstance(target, cst.Name) else None


def _optimizer_like(cls) -> bool:
    bases = " ".join(cls.bases)
    return ("step" in cls.methods and "zero_grad" in cls.methods) or "Optimizer" in bases or "LRScheduler" in bases


def build_model(module: cst.Module, path: Optional[str] = None, source: Optional[str] = None) -> FileModel:
    return FileModel(module, path, source)


def _is_backward(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "backward"


def _calls(expr):
    found = []

    class V(Walker):
        def visit_Call(self, n: cst.Call) -> None:
            found.append(n)

    if expr is not None:
        V().walk(expr)
    return found


# Calls on a tensor's ``.grad`` that clear or overwrite it (``FileModel.reads_gradients_of``)
_GRAD_RESETS = frozenset({"zero_", "fill_", "copy_", "detach_", "requires_grad_", "normal_", "uniform_"})


def _innermost_loop(node: cst.CSTNode, loop_node: cst.CSTNode) -> bool:
    """Whether ``node`` is in the body of ``loop_node`` and in no loop or definition nested in it."""
    nested = (cst.For, cst.While, cst.FunctionDef, cst.ClassDef, cst.Lambda)
    return any(n is node for n in descendants(loop_node, prune=lambda n: isinstance(n, nested)))


def _folded(suite) -> Set[str]:
    """Names a loop body rebinds from their own value (``acc = torch.cat([acc, out])``, ``total = total +
    loss``), outside nested functions."""
    found: Set[str] = set()

    class V(Walker):
        def visit_Assign(self, n: cst.Assign) -> None:
            read = names_in(n.value)
            for t in n.targets:
                if isinstance(t.target, cst.Name) and t.target.value in read:
                    found.add(t.target.value)

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            return False

        def visit_Lambda(self, n: cst.Lambda) -> bool:
            return False

    V().walk(suite)
    return found


def _rebound(suite) -> Set[str]:
    """Names a loop body binds afresh (``x = ...``, ``x, y = ...``), minus those it also accumulates into."""
    bound: Set[str] = set()
    grown: Set[str] = set()

    class V(Walker):
        def visit_AssignTarget(self, n: cst.AssignTarget) -> None:
            t = n.target
            for el in (t.elements if isinstance(t, (cst.Tuple, cst.List)) else [t]):
                el = el.value if isinstance(el, (cst.Element, cst.StarredElement)) else el
                if isinstance(el, cst.Name):
                    bound.add(el.value)
                elif isinstance(el, cst.Subscript) and isinstance(el.value, cst.Name):
                    grown.add(el.value.value)

        def visit_AugAssign(self, n: cst.AugAssign) -> None:
            if isinstance(n.target, cst.Name):
                grown.add(n.target.value)

        def visit_Call(self, n: cst.Call) -> None:
            f = n.func
            if isinstance(f, cst.Attribute) and f.attr.value in ("append", "extend", "add", "update") and isinstance(f.value, cst.Name):
                grown.add(f.value.value)

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            return False

    V().walk(suite)
    return bound - grown
