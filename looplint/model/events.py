"""Events with their control flow: the skeleton of a function that matters to training.

Each function body becomes a tree of ``Block``s holding ``Event``s (calls that may touch gradients,
optimizers or schedulers, in evaluation order) and the control structures around them (``Branch``,
``Loop``, ``Try``, ``Jump``). Events are syntactic here: whether ``x.step()`` steps an optimizer is decided
when the flow analysis resolves ``x`` in its calling context (see ``roles.Frame``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple, Union

import libcst as cst

from looplint.model.walk import Walker, children, descendants

from looplint.model.frameworks import WRAPPER_NAMES
from looplint.model.values import class_of
from looplint.model.roles import name_kind, unwrap_module
from looplint.model.scopes import Assignment, Function, Scopes, dotted, has_call, last_name, names_in, positional_args

# Event kinds
ZERO = "zero_grad"  # X.zero_grad()
GRAD_CLEAR = "grad_clear"  # p.grad = None / p.grad.zero_()
BIND = "bind"  # a name that may hold an optimizer is (re)assigned: a new optimizer from here on
GRAD_WRITE = "grad_write"  # p.grad = tensor / p.grad.fill_(...): gradients set by hand
BACKWARD = "backward"
STEP = "step"  # X.step(...)
UNSCALE = "unscale"
SCALER_UPDATE = "scaler_update"
CLIP = "clip"
MODE = "mode"  # X.train() / X.eval()
CONSTRUCT = "construct"  # an optimizer / scheduler / module constructor call
MANUAL_UPDATE = "manual_update"  # w -= lr * w.grad, p.data.add_(p.grad, ...)
CALL = "call"  # a call to a function or method of this module
OPAQUE = "opaque"  # any other call that receives names (may touch what it receives)

CLIP_FUNCS = frozenset({"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_gradients", "clip_grad"})
HARMLESS_FUNCS = frozenset(
    """print len float int str bool repr format isinstance issubclass hasattr getattr setattr range enumerate
    zip sorted reversed min max sum abs round list tuple dict set frozenset iter next type id hash any all
    map filter super vars open tqdm trange log info debug warning warn error exception critical add_scalar
    add_scalars add_image add_histogram append extend insert write set_description set_postfix update_meters
    item detach cpu numpy tolist to cuda size dim view reshape mean sum float half contiguous clone
    save load state_dict load_state_dict parameters named_parameters children modules named_modules
    register_buffer apply flush close barrier synchronize set_epoch no_grad enable_grad inference_mode
    autocast record_function scale scale_loss master_params toggle_optimizer untoggle_optimizer log_dict
    prepare setup setup_optimizers setup_module prepare_model prepare_optimizer""".split()
)


@dataclass(eq=False)
class Event:
    kind: str
    node: cst.CSTNode  # where a finding about this event is reported
    target: Optional[cst.BaseExpression] = None  # receiver (optimizer, module, scaler, loss ...)
    call: Optional[cst.Call] = None
    callee: Optional[Function] = None  # CALL: the resolved function
    bound_self: bool = False  # CALL through ``self.``
    closure: Optional[Union[Function, "Block"]] = None  # STEP(closure): what the closure runs
    closure_unknown: bool = False
    param_loop_module: Optional[cst.BaseExpression] = None  # GRAD_CLEAR inside ``for p in M.parameters()``
    assigned: Optional[cst.BaseExpression] = None  # CONSTRUCT: the target it is assigned to
    scaled: bool = False  # BACKWARD of ``scaler.scale(loss)``
    wrapper: bool = False  # BACKWARD through accelerator/fabric/engine/manual_backward(loss)
    dist: bool = False  # dist_autograd.backward
    each_iteration: bool = False  # BIND of a loop target: a different object on every iteration
    bound_args: tuple = ()  # CALL / closure: arguments ``functools.partial`` bound in front of the call's own
    usage: str = "value"  # how the call's result is used: "stmt" (a bare statement), "with", "value"
    closure_site: Optional[cst.CSTNode] = None  # a lambda that forwards to the closure function
    # CALL of a function a same-module factory returned: (factory call, its caller, the factory function)
    factory: Optional[tuple] = None

    def __repr__(self) -> str:  # pragma: no cover
        return f"<Event {self.kind} {cst.Module([]).code_for_node(self.node)[:40]!r}>"


@dataclass(eq=False)
class Block:
    items: List["Item"] = field(default_factory=list)


@dataclass(eq=False)
class Branch:
    """if/elif/else (``key`` is the normalised test; None for try-handlers and match cases)."""

    node: cst.CSTNode
    key: Optional[str]
    names: frozenset
    volatile: bool  # the test calls something: never assume it has the same value twice
    arms: List[Block]  # [then, else] for an if; else always present (maybe empty)
    polarity: bool = True  # False when the source test was ``not key``
    # A periodic test on a counter, ``(i + c) % K == d``: (counter, K, phase d - c, then-arm runs when the
    # phase matches). Lets the flow know that the iteration after the last of a window is the first.
    mod: Optional[tuple] = None
    const: Optional[bool] = None  # the test's value when it cannot vary (a literal flag)
    # ``elif``: the else arm is the next test's events followed by this Branch (walked without recursion)
    elif_next: Optional["Branch"] = None
    # ``if a and not b:``: each operand of the ``and`` as (key, names, polarity, volatile), so that a path
    # through the then arm knows ``a`` and ``not b`` (``Interp._conjunction_split``)
    conjuncts: tuple = ()

    @property
    def tested(self) -> Tuple[str, ...]:
        """The keys of the tests this ``if`` makes: its own and its conjuncts'."""
        return (self.key, *(c[0] for c in self.conjuncts)) if self.key is not None else ()


@dataclass(eq=False)
class Loop:
    node: cst.CSTNode
    body: Block
    orelse: Block
    infinite: bool  # while True
    iter_expr: Optional[cst.BaseExpression]
    target_names: frozenset
    assigned: frozenset = frozenset()  # names assigned anywhere in the body (loop-variant)
    kind: str = "other"  # set by loops.classify: batch | epoch | step | micro | other | implicit
    counters: frozenset = frozenset()  # names that advance by one per iteration (targets, ``n += 1``)
    starts: tuple = ()  # (counter, first value) for ``enumerate(x)`` / ``range(n)`` targets
    target_counters: frozenset = frozenset()  # the counters (see counters) the loop's targets are
    fn: Optional[Function] = None  # the function whose body holds the loop (set by loops.classify_all)
    over_parameters: Optional[cst.BaseExpression] = None  # ``M`` of ``for p in M.parameters()``: no iteration of training
    # ``while True:`` that draws its item first and ends when the iterator runs out: it leaves at its head
    # after a whole iteration, like ``for`` (see _draws_until_exhausted)
    leaves_at_head: bool = False
    # an epoch loop only by what it runs: a loop whose header says nothing of its own (``for task in
    # tasks:``) around a data loop that trains or a loop over a run's optimizer steps (loops.classify_all)
    epoch_by_content: bool = False


@dataclass(eq=False)
class Try:
    node: cst.CSTNode
    body: Block
    handlers: List[Block]
    orelse: Block
    final: Block


@dataclass(eq=False)
class Jump:
    kind: str  # break | continue | return | raise
    node: cst.CSTNode


Item = Union[Event, Branch, Loop, Try, Jump, Block]

_EMPTY = cst.Module([])


# A negated comparison and the test it negates: ``x is not None`` is ``not x is None``.
_NEGATED = {cst.IsNot: " is ", cst.NotEqual: " == ", cst.NotIn: " in "}


def _without_not(test: cst.BaseExpression) -> Tuple[cst.BaseExpression, bool]:
    """(``test`` without its leading ``not``s, False when there was an odd number of them)."""
    polarity = True
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test, polarity = test.expression, not polarity
    return test, polarity


def _test_key(test: cst.BaseExpression) -> Tuple[str, bool]:
    """(the key of a test, True when the key spells its negation): ``x is not None`` and ``x is None``,
    ``a != b`` and ``a == b``, ``k not in d`` and ``k in d`` are one test of two polarities, so that a path
    that took one arm of the first takes the matching arm of the second."""
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and not test.lpar:
        target = test.comparisons[0]
        positive = _NEGATED.get(type(target.operator))
        if positive is not None:
            return " ".join((code(test.left) + positive + code(target.comparator)).split()), True
    return " ".join(code(test).split()), False


# Calls that read what they are given and change nothing: a test made of them says the same thing again
# while its names hold the same objects (``cfg.get("ema") is not None``, ``len(buffer) > 0``).
_PURE_FUNCTIONS = frozenset({"len", "isinstance", "issubclass", "hasattr", "getattr", "callable", "type", "bool",
                             "int", "float", "str", "abs", "min", "max", "round"})
_PURE_METHODS = frozenset({"get", "keys", "startswith", "endswith", "lower", "upper", "dim", "size", "numel",
                           "is_floating_point"})


def volatile_test(test: cst.BaseExpression) -> bool:
    """A test whose value may change between two readings of the same names: it calls something that may
    have effects or answer differently (``random.random()``, ``should_step()``), not only pure readers."""
    for n in descendants(test):
        if type(n) is not cst.Call:
            continue
        func = n.func
        if isinstance(func, cst.Name) and func.value in _PURE_FUNCTIONS:
            continue
        if isinstance(func, cst.Attribute) and func.attr.value in _PURE_METHODS and not has_call(func.value) and (
                func.attr.value != "get" or positional_args(n)):  # ``d.get(key)``, not ``queue.get()``
            continue
        return True
    return False


def _flip(truth: Optional[bool], flipped: bool) -> Optional[bool]:
    return truth if truth is None or not flipped else not truth


def code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


_NO_CALLS = frozenset({cst.Lambda, cst.FunctionDef, cst.SimpleString, cst.Integer, cst.Float, cst.Name})
_COMPREHENSIONS = frozenset({cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp})
_EVALUATED: Dict[type, bool] = {}  # per node type: a part of an expression whose calls ``expr`` collects


def _evaluated(t: type) -> bool:
    got = _EVALUATED[t] = issubclass(t, cst.BaseExpression) or issubclass(t, (
        cst.Arg, cst.Element, cst.DictElement, cst.StarredDictElement, cst.CompFor, cst.CompIf,
        cst.FormattedStringExpression, cst.Index, cst.SubscriptElement, cst.Slice))
    return got


LITERAL_NAMES = frozenset(("True", "False", "None"))


def literal_truth(expr: cst.BaseExpression) -> Optional[bool]:
    """The truth value of a literal ``True``, ``False``, ``None`` or number, else None."""
    if isinstance(expr, cst.Name) and expr.value in LITERAL_NAMES:
        return expr.value == "True"
    if isinstance(expr, (cst.Integer, cst.Float)):
        text = expr.value.replace("_", "")
        try:
            return (float(text) if isinstance(expr, cst.Float) else int(text, 0)) != 0
        except ValueError:
            return None
    return None


class EventBuilder:
    """Builds (and caches) the event tree of every function of a module."""

    def __init__(self, scopes: Scopes, ctor_kind, values=None):  # ctor_kind(call, fn) -> (kind, class)
        self.s = scopes
        self.ctor_kind = ctor_kind
        self.v = values
        self._cache: Dict[Function, Block] = {}
        self.loops: List[Loop] = []
        # the statements that follow a loop in its block (what runs after the loop ends)
        self.after: Dict[cst.CSTNode, list] = {}
        self._rebound: Dict[Function, frozenset] = {}
        self._periodic: Dict[tuple, tuple] = {}  # (id(test), fn, polarity) -> (test, its Branch.mod)
        # the bodies of ``with pytest.raises(...)`` blocks: built (their calls are calls), never run
        self.expected_to_raise: List[Block] = []
        # called with each function of an imported module of the project once its body is built (the model
        # classifies its loops as it does the module's own: ``FileModel``)
        self.on_imported: Optional[Callable[[Function], None]] = None

    def ctor_kind_of_class(self, cls) -> Optional[str]:
        """The role instances of a class of this module play (optimizer, scheduler, scaler), or None."""
        kind, _name = self.ctor_kind(cst.Call(cst.Name(cls.name)), cls=cls)
        return kind if kind in ("optimizer", "scheduler", "scaler") else None

    def rebound_elsewhere(self, fn: Function) -> frozenset:
        """Names ``fn`` may rebind outside plain assignments (computed once per function)."""
        got = self._rebound.get(fn)
        if got is None:
            got = self._rebound[fn] = _rebound_names(fn)
        return got

    def built(self):
        """The functions whose events have been built so far."""
        return self._cache.keys()

    def periodic(self, test: cst.BaseExpression, fn: Function, polarity: bool = True) -> Optional[tuple]:
        """``Branch.mod`` of ``test`` read in ``fn`` (a periodic test on a counter), or None."""
        key = (id(test), fn, polarity)
        if key not in self._periodic:
            self._periodic[key] = (test, _Build(self, fn).periodic(test, polarity))
        return self._periodic[key][1]

    def body(self, fn: Function) -> Block:
        b = self._cache.get(fn)
        if b is None:
            node = fn.node
            stmts = node.body if isinstance(node, cst.Module) else node.body.body
            b = _Build(self, fn).block(stmts)
            self._cache[fn] = b
            if self.on_imported is not None and fn.home is not None and fn.home is not self.s:
                self.on_imported(fn)
        return b


_UNITTEST_RAISES = frozenset({"assertRaises", "assertRaisesRegex", "assertRaisesRegexp"})


class _Build:
    def __init__(self, owner: EventBuilder, fn: Function):
        self.o = owner
        self.s = owner.s
        self.fn = fn
        self.param_loops: List[tuple] = []  # (target name, module expr) of enclosing ``for p in M.parameters()``

    # -- statements ---------------------------------------------------------------------------------------
    def block(self, stmts) -> Block:
        out = Block()
        stmts = list(stmts)
        for i, st in enumerate(stmts):
            if isinstance(st, (cst.For, cst.While)):
                self.o.after[st] = stmts[i + 1:]
            self.stmt(st, out.items)
        return out

    def suite(self, suite) -> Block:
        if suite is None:
            return Block()
        if isinstance(suite, (cst.IndentedBlock, cst.SimpleStatementSuite)):
            return self.block(suite.body)
        return self.suite(suite.body)

    def stmt(self, st, out: List) -> None:
        if isinstance(st, cst.SimpleStatementLine):
            for small in st.body:
                self.small(small, out)
        elif isinstance(st, cst.BaseSmallStatement):  # the body of ``if c: x()`` / ``for p in ps: p.grad = None``
            self.small(st, out)
        elif isinstance(st, cst.If):
            self.expr(st.test, out)
            cleared = _grad_present_test(st)
            if cleared is not None:
                then = self.suite(st.body)
                if _only_clears(then, cleared):
                    # ``if p.grad is not None: p.grad.zero_()``: with no gradient there is nothing to clear,
                    # so the parameter ends without gradient either way: the clear is unconditional
                    out.extend(then.items)
                    return
            out.append(self.branch(st))
        elif isinstance(st, cst.For):
            self.expr(st.iter, out)
            module = _parameters_receiver(st.iter)
            pushed = False
            if module is not None and isinstance(st.target, cst.Name):
                self.param_loops.append((st.target.value, module))
                pushed = True
            body = self.suite(st.body)
            if pushed:
                self.param_loops.pop()
            for name in sorted(names_in(st.target)):
                if "." not in name and name_kind(name) == "optimizer":
                    node = next((n for n in descendants(st.target) if isinstance(n, cst.Name) and n.value == name),
                                cst.Name(name))  # the target itself: roles resolve a name where it is bound
                    body.items.insert(0, Event(BIND, st, target=node, each_iteration=True))
            derived = _derived_counters(st)
            loop = Loop(st, body, self.suite(st.orelse), False, st.iter, frozenset(names_in(st.target)),
                        frozenset(_assigned_names(st.body) | names_in(st.target)),
                        counters=frozenset(self._counter(n) for n in names_in(st.target) | _incremented(st.body)
                                           | set(derived)),
                        starts=tuple((self._counter(n), v) for n, v in _counter_start(st, self.o.v, self.fn))
                        + self._incremented_starts(st) + tuple((self._counter(n), v) for n, v in derived.items()
                                                                if v is not None),
                        target_counters=frozenset(self._counter(n) for n in names_in(st.target) | set(derived)),
                        over_parameters=module)
            self.o.loops.append(loop)
            out.append(loop)
        elif isinstance(st, cst.While):
            infinite = isinstance(st.test, cst.Name) and st.test.value == "True" or (
                isinstance(st.test, cst.Integer) and st.test.value != "0")
            self.expr(st.test, out)
            body = self.suite(st.body)
            if not infinite:
                # the test is evaluated again before every further iteration
                self.expr(st.test, body.items)
            head = infinite and _draws_until_exhausted(st)
            if head:  # the ``try`` around ``next()`` is the loop's head: its body runs, its handler is the exit
                body.items[0:1] = body.items[0].body.items
            loop = Loop(st, body, self.suite(st.orelse), infinite, None, frozenset(), frozenset(_assigned_names(st.body)),
                        counters=frozenset(self._counter(n) for n in _incremented(st.body)),
                        starts=self._incremented_starts(st), leaves_at_head=head)
            self.o.loops.append(loop)
            out.append(loop)
        elif isinstance(st, (cst.Try, cst.TryStar)):
            out.append(Try(st, self.suite(st.body), [self.suite(h.body) for h in st.handlers],
                           self.suite(st.orelse), self.suite(st.finalbody)))
        elif isinstance(st, cst.With):
            for item in st.items:
                self.expr(item.item, out, usage="with")
            body = self.suite(st.body)
            if any(self._expects_raise(item.item) for item in st.items):
                self.o.expected_to_raise.append(body)
            else:
                out.append(body)
        elif isinstance(st, cst.Match):
            self.expr(st.subject, out)
            arms = [self.suite(c.body) for c in st.cases]
            arms.append(Block())
            out.append(Branch(st, None, frozenset(), True, arms))
        # FunctionDef / ClassDef: definitions only; their bodies run when called.

    def _expects_raise(self, manager: cst.BaseExpression) -> bool:
        """``pytest.raises(E)``, ``self.assertRaises(E)`` / ``assertRaisesRegex``: the code says its body
        raises. Where is unknown, so the body is not judged (a test that checks a library refuses a misuse
        runs the misuse on purpose) and does nothing the model follows."""
        if not isinstance(manager, cst.Call):
            return False
        if self.s.qualify(manager.func) == "pytest.raises":
            return True
        func = manager.func
        return isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self" \
            and func.attr.value in _UNITTEST_RAISES

    def branch(self, st: cst.If) -> Branch:
        """An ``if`` with its ``elif`` chain, built from the last test back to the first without recursion."""
        chain = [st]
        while isinstance(chain[-1].orelse, cst.If):
            chain.append(chain[-1].orelse)
        last = chain[-1]
        other = self.suite(last.orelse.body) if last.orelse is not None else Block()
        nxt: Optional[Branch] = None
        for node in reversed(chain):
            if nxt is not None:
                other = Block()
                self.expr(nxt.node.test, other.items)
                other.items.append(nxt)
            br = self._one_branch(node, other)
            br.elif_next = nxt
            nxt = br
        return nxt

    def _one_branch(self, st: cst.If, other: Block) -> Branch:
        test, polarity = _without_not(st.test)
        then = self.suite(st.body)
        mod = self.periodic(test, polarity)
        key, flipped = (" ".join(code(test).split()), False) if mod is not None else _test_key(test)
        br = Branch(st, key, frozenset(names_in(test)), volatile_test(test), [then, other], polarity != flipped)
        br.mod = mod
        br.const = _flip(self._constant(test), flipped)  # the truth of the test ``key`` spells
        operands = self._conjuncts(test) if br.mod is None and br.const is None else ()
        if operands:
            # ``a and b``: an operand that cannot vary (a literal flag) decides the test or drops out of it
            varying, value = [], True
            for key, names, wanted, volatile, node in operands:
                truth = None if volatile else _flip(self._constant(node), _test_key(node)[1])
                if truth is None:
                    varying.append((key, names, wanted, volatile))
                elif truth != wanted:
                    value = False
            if not value or not varying:
                br.const = value
            else:
                br.conjuncts = tuple(varying)
        return br

    def _conjuncts(self, test: cst.BaseExpression) -> tuple:
        """``Branch.conjuncts`` of ``a and not b and c`` (with each operand's node last); () for any other
        test. A periodic operand is volatile here (its phase is tracked only where it is tested alone)."""
        if not (isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And)):
            return ()
        operands, stack = [], [test]
        while stack:
            t = stack.pop()
            if isinstance(t, cst.BooleanOperation) and isinstance(t.operator, cst.And) and not t.lpar:
                stack.extend((t.right, t.left))
            else:
                operands.append(t)
        out = []
        for operand in operands:
            op, polarity = _without_not(operand)
            key, flipped = _test_key(op)
            volatile = volatile_test(op) or isinstance(op, cst.BooleanOperation) or self.periodic(op) is not None
            out.append((key, frozenset(names_in(op)), polarity != flipped, volatile, op))
        return tuple(out)

    def periodic(self, test: cst.BaseExpression, polarity: bool = True) -> Optional[tuple]:
        """``Branch.mod`` of a test read in this function: (counter, K, phase, then-arm on match), or None."""
        mod = _periodic(test, polarity) or self._phase_test(test, polarity)
        return (self._counter(mod[0]),) + self._window(mod[1], mod[2]) + (mod[3],) if mod is not None else None

    def _counter(self, v: str) -> str:
        """A counter's identity across functions: ``k`` in ``train``, also when a helper receives it as
        its parameter ``batch_idx`` (every call site passes ``k``); ``self.step`` per class."""
        head, _, rest = v.partition(".")
        if head == "self":
            cls = class_of(self.fn)
            return f"{cls.name}@{v}" if cls is not None else v
        return self.o.v.counter_key(head, self.fn) + ("." + rest if rest else "")

    def _window(self, window: str, phase: int) -> tuple:
        """(window, phase) with the window's value when the values service reads a single small integer
        (``ACCUM_STEPS = 2`` at module level, a default): phases are then residues, the last one -1."""
        if not window.isdigit():
            try:
                expr = cst.parse_expression(window)
            except cst.ParserSyntaxError:
                return window, phase
            got = self.o.v.ints(expr, self.fn)
            if not got or len(got) != 1:
                return window, phase
            w = next(iter(got))
            if not 1 < w <= 64:
                return window, phase
            window = str(w)
        w = int(window)
        if w <= 1:
            return window, phase
        phase %= w
        return window, (-1 if phase == w - 1 else phase)

    def _incremented_starts(self, st) -> tuple:
        """(counter, first value) for names the loop body increments (``step += 1``) that hold a small
        literal on every entry of the loop (``step = 0`` before it)."""
        names = set(_incremented(st.body))
        stack = [st.body]
        while stack:  # also counters that loops nested in this one increment (a global step across epochs)
            node = stack.pop()
            for child in children(node):
                if isinstance(child, (cst.For, cst.While)):
                    names |= _incremented(child.body)
                if not isinstance(child, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                    stack.append(child)
        out = []
        for n in sorted(names):
            if "." in n:
                continue
            v = self.o.v.start_value(st, n, self.fn)
            if v is None:
                continue
            if _incremented_first(st.body, n):
                v += 1  # ``i = -1`` ... ``i += 1`` first thing in the body: the iterations see 0, 1, ...
            if -3 <= v <= 3:
                out.append((self._counter(n), v))
        return tuple(out)

    def _phase_test(self, test, polarity: bool):
        """``if k == d`` on a phase variable: ``k = i % K`` (the test is periodic on ``i``), or ``k`` drawn
        from ``cycle(range(lo, hi))`` beside the data (periodic on ``k`` itself, window ``hi - lo``)."""
        if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and isinstance(test.left, cst.Name)):
            return None
        comp = test.comparisons[0]
        if not isinstance(comp.operator, (cst.Equal, cst.NotEqual)):
            return None
        eq = isinstance(comp.operator, cst.Equal)
        name, fn = self.o.v.through_parameters(test.left, self.fn)
        found = self.o.v.assigned_values(name, fn)
        if found and len(found) == 1:
            value, _where = found[0]
            if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Modulo):
                counter = dotted(value.left)
                window = " ".join(code(value.right).split())
                phase = _phase_of(comp.comparator, window, 0)
                if counter is not None and phase is not None:
                    return (counter, window, phase, eq if polarity else not eq)
            return None
        cyc = _cycle_range(self.o.v, name, fn)
        if cyc is None:
            return None
        lo, window = cyc
        phase = _phase_of(comp.comparator, window, lo)
        if phase is None:
            return None
        return (test.left.value, window, phase, eq if polarity else not eq)

    def _constant(self, test) -> Optional[bool]:
        """The truth of a test that cannot vary: a literal, a name only ever assigned one literal
        (``step_scheduler_batch = False`` ... ``if step_scheduler_batch:``), or ``f is None`` of a name bound to
        a known function (a parameter every call site hands the same one: ``Values.callable_of``)."""
        got = literal_truth(test)
        if got is None and isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
            comp = test.comparisons[0]
            if isinstance(comp.operator, (cst.Is, cst.IsNot)) and isinstance(comp.comparator, cst.Name) \
                    and comp.comparator.value == "None" and isinstance(test.left, cst.Name) \
                    and self.o.v.callable_of(test.left, self.fn) is not None:
                return isinstance(comp.operator, cst.IsNot)  # a function it is bound to is never None
        if got is not None or not isinstance(test, cst.Name):
            return got
        fn = self.fn
        while fn is not None and test.value not in fn.assigns and test.value not in fn.params:
            fn = fn.parent
        if fn is None or test.value in fn.params:
            return None
        values = {literal_truth(a.value) if a.index is None else None for a in fn.assigns[test.value]}
        if len(values) == 1 and None not in values and test.value not in self.o.rebound_elsewhere(fn):
            return values.pop()
        return None

    def small(self, small, out: List) -> None:
        if isinstance(small, cst.Expr):
            self.expr(small.value, out, usage="stmt")
        elif isinstance(small, (cst.Assign, cst.AnnAssign)):
            if small.value is None:
                return
            self.expr(small.value, out)
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for t in targets:
                self.assign_target(t, small.value, small, out)
                if isinstance(small.value, cst.Call) and out and out[-1].__class__ is Event and out[-1].kind == CONSTRUCT and (
                        out[-1].call is small.value or out[-1].call is unwrap_module(small.value)):
                    out[-1].assigned = t  # also ``model = Net().to(device)``: the module built is what is bound
                elif isinstance(small.value, cst.Call) and last_name(small.value.func) not in _SAME_OPTIMIZER:
                    for el in (t.elements if isinstance(t, (cst.Tuple, cst.List)) else [t]):
                        el = el.value if isinstance(el, (cst.Element, cst.StarredElement)) else el
                        if isinstance(el, (cst.Name, cst.Attribute)) and name_kind(last_name(el)) == "optimizer":
                            out.append(Event(BIND, small, target=el))
        elif isinstance(small, cst.AugAssign):
            self.expr(small.value, out)
            if _mentions_grad(small.value):
                out.append(Event(MANUAL_UPDATE, small, target=small.target))
        elif isinstance(small, cst.Return):
            if small.value is not None:
                self.expr(small.value, out)
            out.append(Jump("return", small))
        elif isinstance(small, cst.Raise):
            if small.exc is not None:
                self.expr(small.exc, out)
            out.append(Jump("raise", small))
        elif isinstance(small, cst.Assert) and _always_false(small.test):
            out.append(Jump("raise", small))  # ``assert False``: "cannot happen", it raises AssertionError
        elif isinstance(small, cst.Break):
            out.append(Jump("break", small))
        elif isinstance(small, cst.Continue):
            out.append(Jump("continue", small))
        elif isinstance(small, cst.Del):
            pass

    def assign_target(self, t, value, node, out: List) -> None:
        if isinstance(t, cst.Attribute) and t.attr.value in ("grad", "_grad"):  # ``_grad``: what ``.grad`` sets
            clears = (isinstance(value, cst.Name) and value.value == "None") or (
                isinstance(value, cst.Call) and last_name(value.func) in ("zeros_like", "zeros"))
            out.append(Event(GRAD_CLEAR if clears else GRAD_WRITE, node, target=t.value,
                             param_loop_module=self._param_module(t.value)))
        elif isinstance(t, cst.Subscript) and isinstance(t.value, cst.Attribute) and t.value.attr.value == "grad":
            out.append(Event(GRAD_WRITE, node, target=t.value.value))
        elif isinstance(t, cst.Attribute) and t.attr.value == "data" and _mentions_grad(value):
            out.append(Event(MANUAL_UPDATE, node, target=t.value))

    def _param_module(self, expr) -> Optional[cst.BaseExpression]:
        if isinstance(expr, cst.Name):
            for name, module in reversed(self.param_loops):
                if name == expr.value:
                    return module
        return None

    # -- expressions: calls in evaluation order -----------------------------------------------------------
    def expr(self, e: cst.CSTNode, out: List, usage: str = "value") -> None:
        t = type(e)  # exact types (libcst's node classes have no subclasses): cheaper than isinstance on ABCs
        if t in _NO_CALLS:
            return
        while t is cst.ConcatenatedString:  # right-nested: walk it without recursing
            self.expr(e.left, out)
            e = e.right
            t = type(e)
        if t is cst.Await:
            return self.expr(e.expression, out, usage)
        if t is cst.Call:
            self.expr(e.func, out)
            for a in e.args:
                self.expr(a.value, out)
            n = len(out)
            self.call(e, out)
            if len(out) > n and isinstance(out[-1], Event) and out[-1].node is e:
                out[-1].usage = usage
            return
        if t in _COMPREHENSIONS:
            # comprehensions run their element once per item: keep it simple, evaluate once
            for child in children(e):
                self.expr(child, out)
            return
        evaluated = _EVALUATED
        for child in children(e):
            ok = evaluated.get(type(child))
            if ok is None:
                ok = _evaluated(type(child))
            if ok:
                self.expr(child, out)

    def call(self, c: cst.Call, out: List) -> None:
        func = c.func
        method = func.attr.value if isinstance(func, cst.Attribute) else None
        recv = func.value if isinstance(func, cst.Attribute) else None
        q = self.s.qualify(func) or ""
        name = method or (func.value if isinstance(func, cst.Name) else None)

        if method is not None:
            # a method of a class of this module that is no optimizer, scheduler or scaler (a trainer, a
            # precision helper): run its body, whatever its name says
            callee, bound_self = self.o.v.resolve_callee(func, self.fn, classes=False)
            if callee is not None and callee.cls is not None and self.o.ctor_kind_of_class(callee.cls) is None:
                out.append(Event(CALL, c, call=c, callee=callee, bound_self=bound_self))
                return
        if method == "zero_grad":
            out.append(Event(ZERO, c, target=recv, call=c))
            return
        if method == "zero_" and isinstance(recv, cst.Attribute) and recv.attr.value in ("grad", "data"):
            inner = recv.value if recv.attr.value == "grad" else (recv.value.value if isinstance(recv.value, cst.Attribute) and recv.value.attr.value == "grad" else None)
            if inner is not None:
                out.append(Event(GRAD_CLEAR, c, target=inner, param_loop_module=self._param_module(inner)))
                return
        if method in ("fill_", "copy_", "normal_", "uniform_", "set_") and isinstance(recv, cst.Attribute) and recv.attr.value == "grad":
            out.append(Event(GRAD_WRITE, c, target=recv.value))
            return
        if method in ("backward", "manual_backward") or q in ("torch.autograd.backward",):
            dist = "dist_autograd" in (dotted(recv) or "") if recv is not None else False
            if q.startswith("torch.distributed.autograd"):
                dist = True
            # ``accelerator.backward(loss)``: a positional loss handed to an object's backward; not a tensor's
            # own ``out.backward(grad_out)`` (its argument is the gradient) nor ``loss.backward(retain_graph=True)``
            positional = bool(c.args) and c.args[0].keyword is None and not c.args[0].star
            wrapper = method == "manual_backward" or (recv is not None and positional and not dist and method == "backward"
                                                      and not isinstance(recv, cst.Call) and not self._module_output(recv))
            scaled = recv is not None and self.o.v.scaled_by(recv, self.fn) is not None
            out.append(Event(BACKWARD, c, target=recv, call=c, scaled=scaled, wrapper=wrapper, dist=dist))
            return
        if method == "step":
            ev = Event(STEP, c, target=recv, call=c)
            closure = _closure_arg(c)
            if closure is not None:
                self.closure(ev, closure)
            out.append(ev)
            return
        if method == "unscale_":
            out.append(Event(UNSCALE, c, target=recv, call=c))
            return
        if method == "update" and recv is not None and not c.args:
            out.append(Event(SCALER_UPDATE, c, target=recv, call=c))
            return
        if name in CLIP_FUNCS:
            out.append(Event(CLIP, c, target=recv, call=c))
            return
        if method in ("add_", "sub_", "copy_", "addcdiv_", "addcmul_") and any(_mentions_grad(a.value) for a in c.args):
            out.append(Event(MANUAL_UPDATE, c, target=recv, call=c))
            return
        kind, cls_name = self.o.ctor_kind(c, self.fn)
        if kind in ("optimizer", "scheduler", "module", "scaler") and cls_name is not None:
            out.append(Event(CONSTRUCT, c, call=c))
            return
        callee, bound_self, bound_args, factory = self.resolve_callee(c)
        if callee is not None:
            if isinstance(bound_args, cst.Call):  # through a forwarding lambda: the call it makes
                out.append(Event(CALL, c, call=bound_args, callee=callee, bound_self=bound_self, factory=factory))
            else:
                out.append(Event(CALL, c, call=c, callee=callee, bound_self=bound_self, bound_args=bound_args,
                                 factory=factory))
            return
        if method in ("train", "eval") and recv is not None:
            out.append(Event(MODE, c, target=recv, call=c))
            return
        bound = self.o.v.callable_of(c, self.fn) if self.o.v is not None else None
        if bound is not None and isinstance(bound.target, Function) and bound.factory is None:
            # ``functools.partial(step_fn, opt, net)`` binds arguments for a function of this module and runs
            # nothing: what the function does happens where the result is called (a closure, a call)
            return
        if isinstance(recv, cst.Name) and recv.value == "self" and method is not None:
            cls = class_of(self.fn)
            if cls is not None and method in cls.attrs:  # calling an object held by self (a module, a loss)
                if any(_is_ref(a.value) for a in c.args):
                    out.append(Event(OPAQUE, c, call=c))
                return
            if method not in HARMLESS_FUNCS:  # an inherited method we cannot see: it may touch anything
                out.append(Event(OPAQUE, c, target=recv, call=c))
            return
        if q == "functools.partial" or name == "partial":
            # binding arguments runs nothing: the partial acts where it is called (the flow follows a call of
            # a function of this module; a call of another one acts on what it binds, ``effects.py``), and
            # whoever receives it receives what it binds (``effects.refs``)
            return
        if isinstance(func, cst.Name) and self._built_from_refs(func):
            out.append(Event(OPAQUE, c, call=c))  # ``apply()`` of ``apply = partial(update, opt)``
            return
        if isinstance(func, cst.Name) and not c.args and self.o.v.handed(func, self.fn):
            out.append(Event(OPAQUE, c, call=c))  # ``closure()`` the caller handed over: it may train
            return
        if name in HARMLESS_FUNCS or q.startswith(("torch.", "F.", "np.", "numpy.", "math.", "logging.", "os.", "sys.", "time.", "wandb.", "json.")):
            return
        if (isinstance(recv, cst.Name) and recv.value == "self") or any(_is_ref(a.value) for a in c.args) or (
            recv is not None and _is_ref(recv) and method not in HARMLESS_FUNCS
        ):
            out.append(Event(OPAQUE, c, target=recv, call=c))

    def _module_output(self, expr: cst.BaseExpression) -> bool:
        """Whether ``expr`` is what this function computes by calling an object it holds (``out = net(x)``,
        ``loss = net(x).sum()``, arithmetic on such outputs): every binding of the name here says so."""
        if not isinstance(expr, cst.Name) or self.o.v is None:
            return False
        values = self.o.v.assigned_values(expr, self.fn)
        return bool(values) and all(where is self.fn and self._computed_by_module(v, where, 2) for v, where in values)

    def _computed_by_module(self, value: cst.BaseExpression, fn: Function, depth: int) -> bool:
        if isinstance(value, cst.BinaryOperation):
            return self._computed_by_module(value.left, fn, depth) or self._computed_by_module(value.right, fn, depth)
        if not isinstance(value, cst.Call) or depth <= 0:
            return isinstance(value, cst.Name) and depth > 0 and self._module_output_in(value, fn, depth - 1)
        func = value.func
        if isinstance(func, cst.Attribute) and not isinstance(func.value, cst.Name):
            return self._computed_by_module(func.value, fn, depth - 1)  # ``net(x).sum()``
        if not isinstance(func, cst.Name):
            return False
        # calling an object the code holds (``net(x)``, a module it built or was handed), not a class or a
        # function: its result is the object's output
        from looplint.model.values import PARAM, Def

        _scope, binds = self.o.v.bindings(func.value, fn, func)
        return bool(binds) and all(isinstance(b, Assignment) or (isinstance(b, Def) and b.kind == PARAM) for b in binds)

    def _module_output_in(self, name: cst.Name, fn: Function, depth: int) -> bool:
        values = self.o.v.assigned_values(name, fn)
        return bool(values) and all(self._computed_by_module(v, w, depth) for v, w in values)

    def _built_from_refs(self, func: cst.Name) -> bool:
        """A name bound to an object built from other objects (``step = functools.partial(update, opt)``):
        calling it may act on what it holds (``effects.py`` reads which)."""
        return any(isinstance(v, cst.Call) and any(_is_ref(a.value) for a in v.args)
                   for v, _where in self.o.v.assigned_values(func, self.fn) or ())

    def resolve_callee(self, c: cst.Call):
        """(function of this module, bound self, partial-bound arguments, the factory that returned it) a
        call runs, or (None, False, (), None)."""
        callee, bound_self = self.o.v.resolve_callee(c.func, self.fn, classes=False)
        if callee is not None:
            return callee, bound_self, (), None
        if isinstance(c.func, (cst.Name, cst.Attribute)):
            target = self.o.v.callable_of(c.func, self.fn)
            if target is not None and isinstance(target.target, Function) and not target.target.is_module:
                if target.forward is not None:
                    return target.target, target.bound_self, target.forwarded(c), target.factory
                return target.target, target.bound_self, target.bound_args, target.factory
        return None, False, (), None

    def closure(self, ev: Event, closure: cst.BaseExpression) -> None:
        """What ``step(closure)`` re-evaluates: a lambda's body, or a function of this module (through
        ``functools.partial``, a bound method, a name, a factory) with the arguments bound to it."""
        target = self.o.v.callable_of(closure, self.fn)
        if target is not None and isinstance(target.target, cst.Lambda):
            b = Block()
            self.expr(target.target.body, b.items)
            b.items.append(Jump("return", target.target))
            ev.closure = b
            return
        if target is not None and isinstance(target.target, Function) and not target.target.is_module:
            ev.closure = target.target
            ev.bound_args = tuple(target.forwarded(cst.Call(cst.Name("_"))).args) if target.forward is not None \
                else target.bound_args
            ev.closure_site = target.forward  # ``lambda: helper(...)``: findings go on the lambda
            ev.bound_self = target.bound_self
            return
        ev.closure_unknown = True


# Calls that hand back an optimizer that already exists (a getter, a wrapper of the same object).
_SAME_OPTIMIZER = frozenset({"optimizers", "get", "getattr"}) | WRAPPER_NAMES


def _rebound_names(fn: Function) -> frozenset:
    """Names ``fn`` may rebind where assignments are not recorded (a ``global`` in a function, a loop
    target, an augmented assignment)."""
    found: Set[str] = set()

    class V(Walker):
        def visit_Global(self, n: cst.Global) -> None:
            found.update(x.name.value for x in n.names)

        def visit_For(self, n: cst.For) -> None:
            found.update(names_in(n.target))

        def visit_AugAssign(self, n: cst.AugAssign) -> None:
            if isinstance(n.target, cst.Name):
                found.add(n.target.value)

    V().walk(fn.node)
    return frozenset(found)


def _is_ref(e: cst.BaseExpression) -> bool:
    """A bare name or attribute chain (something a callee could mutate), possibly inside a literal."""
    if isinstance(e, (cst.Name, cst.Attribute)):
        return dotted(e) is not None and not (isinstance(e, cst.Name) and e.value in ("None", "True", "False"))
    if isinstance(e, (cst.List, cst.Tuple, cst.Set)):
        return any(_is_ref(el.value) for el in e.elements)
    if isinstance(e, cst.Dict):
        return any(isinstance(el, cst.DictElement) and _is_ref(el.value) for el in e.elements)
    return False


def _closure_arg(c: cst.Call) -> Optional[cst.BaseExpression]:
    for a in c.args:
        if a.keyword is not None and a.keyword.value == "closure":
            return a.value
    pos = [a.value for a in c.args if a.keyword is None and not a.star]
    if len(pos) == 1 and isinstance(pos[0], (cst.Lambda, cst.Name, cst.Call, cst.Attribute)):
        return pos[0]
    return None


def _mentions_grad(e: cst.CSTNode) -> bool:
    return any(type(n) is cst.Attribute and n.attr.value == "grad" for n in descendants(e))


def _grad_present_test(st: cst.If) -> Optional[str]:
    """``p`` for ``if p.grad is not None:`` with no ``else``."""
    t = st.test
    if st.orelse is not None or not isinstance(t, cst.Comparison) or len(t.comparisons) != 1:
        return None
    c = t.comparisons[0]
    if not (isinstance(c.operator, cst.IsNot) and isinstance(c.comparator, cst.Name) and c.comparator.value == "None"):
        return None
    left = t.left
    if isinstance(left, cst.Attribute) and left.attr.value == "grad" and isinstance(left.value, cst.Name):
        return left.value.value
    return None


def _only_clears(block: Block, name: str) -> bool:
    """The block clears ``name``'s gradient and does nothing else but work on that gradient in place
    (``p.grad.detach_()``)."""
    def on_grad(i) -> bool:
        return isinstance(i, Event) and (
            (i.kind == GRAD_CLEAR and isinstance(i.target, cst.Name) and i.target.value == name)
            or (i.kind == OPAQUE and i.target is not None and dotted(i.target) == name + ".grad"))

    return all(on_grad(i) for i in block.items) and any(i.kind == GRAD_CLEAR for i in block.items)


def _draws_until_exhausted(st: cst.While) -> bool:
    """``while True: try: x = next(it) except StopIteration: break ...``: the first statement draws the next
    item and every handler of it is a ``break`` on ``StopIteration`` (no ``else``/``finally``, no ``else`` on
    the loop). Running out ends the loop before an iteration starts: ``for x in it``, written by hand."""
    first = st.body.body[0] if isinstance(st.body, cst.IndentedBlock) and st.body.body else None
    if not isinstance(first, cst.Try) or first.orelse is not None or first.finalbody is not None or st.orelse is not None:
        return False
    if not first.handlers or not any(isinstance(n, cst.Call) and isinstance(n.func, cst.Name) and n.func.value == "next"
                                     for n in descendants(first.body)):
        return False
    for h in first.handlers:
        caught = h.type.elements if isinstance(h.type, cst.Tuple) else [h.type] if h.type is not None else []
        body = h.body.body if isinstance(h.body, cst.IndentedBlock) else []
        if not any(last_name(c.value if isinstance(c, cst.Element) else c) == "StopIteration" for c in caught) or not (
                len(body) == 1 and isinstance(body[0], cst.SimpleStatementLine)
                and [type(x) for x in body[0].body] == [cst.Break]):
            return False
    return True


def _parameters_receiver(it: cst.BaseExpression) -> Optional[cst.BaseExpression]:
    """``M`` for ``M.parameters()`` (also inside ``list(...)``/``filter(...)``)."""
    if isinstance(it, cst.Call):
        if isinstance(it.func, cst.Attribute) and it.func.attr.value == "parameters":
            return it.func.value
        for a in it.args:
            r = _parameters_receiver(a.value)
            if r is not None:
                return r
    return None


def _always_false(test: cst.BaseExpression) -> bool:
    """A test that is false whatever runs: ``False``, ``None``, ``0``, ``""`` (``assert False`` always raises,
    unless Python runs with ``-O``, which training code does not count on)."""
    if isinstance(test, cst.Name):
        return test.value in ("False", "None")
    if isinstance(test, (cst.Integer, cst.Float)):
        try:
            return float(test.value.replace("_", "")) == 0
        except ValueError:
            return False
    if isinstance(test, cst.SimpleString):
        return test.evaluated_value in ("", b"")
    return False


def _assigned_names(suite) -> Set[str]:
    v = _Assigned()
    v.walk(suite)
    return v.found


class _Assigned(Walker):
    def __init__(self) -> None:
        self.found: Set[str] = set()

    def visit_AssignTarget(self, n: cst.AssignTarget) -> None:
        self.found.update(names_in(n.target))

    def visit_AugAssign(self, n: cst.AugAssign) -> None:
        self.found.update(names_in(n.target))

    def visit_AnnAssign(self, n: cst.AnnAssign) -> None:
        self.found.update(names_in(n.target))

    def visit_For(self, n: cst.For) -> None:
        self.found.update(names_in(n.target))

    def visit_NamedExpr(self, n: cst.NamedExpr) -> None:
        self.found.update(names_in(n.target))

    def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
        return False


# Wrappers that yield the items of their first argument unchanged (progress bars, prefetchers).
_BARS = frozenset({"tqdm", "tqdm_notebook", "track", "progress_bar", "ProgressBar", "prefetch", "DataPrefetcher",
                   "log_every", "alive_it", "rich_track", "tqdm_auto"})


def _phase_of(comparator, window: str, lo: int) -> Optional[int]:
    """The phase (0 = first of a window, -1 = last) a test ``k == comparator`` picks, for ``k`` counting
    from ``lo`` in windows of ``window``."""
    if isinstance(comparator, cst.Integer):
        d = int(comparator.value, 0) - lo
        if window.isdigit() and d == int(window) - 1:
            return -1  # a literal window: its last value is the last phase
        return d if -3 <= d <= 3 else None
    text = " ".join(code(comparator).split())
    if lo == 1 and text == window:
        return -1
    if lo == 0 and text in (f"{window} - 1", f"({window}) - 1"):
        return -1
    return None


def _cycle_range(values, name: cst.Name, fn: Function):
    """(first value, window text) when ``name`` is a loop target drawn from ``itertools.cycle(range(lo, hi))``
    (alone or as one argument of ``zip``)."""
    from looplint.model.values import LOOP, Def

    _scope, binds = values.bindings(name.value, fn, name)
    if len(binds) != 1 or not isinstance(binds[0], Def) or binds[0].kind != LOOP:
        return None
    d = binds[0]
    it = d.value
    if isinstance(it, cst.Call) and last_name(it.func) == "zip" and d.path:
        args = [a.value for a in it.args]
        if d.path[0] >= len(args):
            return None
        it = args[d.path[0]]
    elif d.path:
        return None
    if not (isinstance(it, cst.Call) and last_name(it.func) == "cycle" and it.args):
        return None
    r = it.args[0].value
    if not (isinstance(r, cst.Call) and last_name(r.func) == "range" and len(r.args) == 2):
        return None
    lo_e, hi_e = r.args[0].value, r.args[1].value
    if not isinstance(lo_e, cst.Integer):
        return None
    lo = int(lo_e.value, 0)
    if lo == 0:
        return 0, " ".join(code(hi_e).split())
    if isinstance(hi_e, cst.BinaryOperation) and isinstance(hi_e.operator, cst.Add) and \
            isinstance(hi_e.right, cst.Integer) and int(hi_e.right.value, 0) == lo:
        return lo, " ".join(code(hi_e.left).split())
    return None


def _counter_start(st: cst.For, values=None, fn=None) -> tuple:
    """(counter name, first value) for the loop targets that count from a known start: the index of
    ``enumerate`` (also under a progress bar or through a name bound to one), ``range`` targets, and
    ``cycle(range(...))`` zipped beside the data."""
    it, target = st.iter, st.target
    for _ in range(6):
        if isinstance(it, cst.Name) and values is not None:
            found = values.assigned_values(it, fn)
            if found and len(found) == 1 and isinstance(found[0][0], cst.Call):
                it = found[0][0]
                continue
        if isinstance(it, cst.Call) and positional_args(it) and last_name(it.func) not in ("enumerate", "zip") and (
                values.iteration_wrapper(it.func, fn) if values is not None else last_name(it.func) in _BARS):
            it = positional_args(it)[0]
            continue
        break
    name = None
    if isinstance(it, cst.Call) and last_name(it.func) == "zip" and isinstance(target, cst.Tuple):
        out = []
        for i, a in enumerate(it.args):
            v = a.value
            if i >= len(target.elements) or not isinstance(target.elements[i].value, cst.Name) or not isinstance(v, cst.Call):
                continue
            name = target.elements[i].value.value
            fn_name = last_name(v.func)
            args = positional_args(v)
            if fn_name == "cycle":
                out.append((name, 0))
            elif fn_name in ("range", "count"):
                first = args[0] if (fn_name == "count" or len(args) > 1) and args else cst.Integer("0")
                if isinstance(first, cst.Integer) and int(first.value, 0) <= 3:
                    out.append((name, int(first.value, 0)))
        return tuple(out)
    if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "enumerate":
        if isinstance(target, cst.Tuple) and target.elements and isinstance(target.elements[0].value, cst.Name):
            name = target.elements[0].value.value
        args = [a.value for a in it.args]
        start = args[1] if len(args) > 1 else cst.Integer("0")
    elif isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "range" and isinstance(target, cst.Name):
        name = target.value
        args = [a.value for a in it.args]
        start = args[0] if len(args) > 1 else cst.Integer("0")
    else:
        return ()
    if name is None or not isinstance(start, cst.Integer) or int(start.value, 0) > 3:
        return ()
    return ((name, int(start.value, 0)),)


def _incremented_first(suite, name: str) -> bool:
    """The body increments ``name`` before any other statement of it reads the name."""
    body = suite.body if isinstance(suite, cst.IndentedBlock) else []
    for line in body:
        if isinstance(line, cst.SimpleStatementLine):
            for small in line.body:
                if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name) and \
                        small.target.value == name:
                    return True
                if any(isinstance(n, cst.Name) and n.value == name for n in descendants(small)):
                    return False
        elif any(isinstance(n, cst.Name) and n.value == name for n in descendants(line)):
            return False
    return False


def _derived_counters(st: cst.For) -> Dict[str, Optional[int]]:
    """Names the body sets, first thing every iteration, to the iteration's index computed from the loop
    target (``for start in range(0, n, B): i = start // B``): they count iterations like a target does.
    Each with its first value when known."""
    it, target = st.iter, st.target
    if not (isinstance(target, cst.Name) and isinstance(it, cst.Call) and last_name(it.func) == "range"):
        return {}
    args = positional_args(it)
    if len(args) != 3:
        return {}
    start, step = args[0], " ".join(code(args[2]).split())
    out: Dict[str, Optional[int]] = {}
    body = st.body.body if isinstance(st.body, cst.IndentedBlock) else []
    for line in body:
        if not isinstance(line, cst.SimpleStatementLine):
            break  # only what runs unconditionally before any branch
        for small in line.body:
            if not (isinstance(small, cst.Assign) and len(small.targets) == 1
                    and isinstance(small.targets[0].target, cst.Name)):
                continue
            v = small.value
            if isinstance(v, cst.BinaryOperation) and isinstance(v.operator, cst.FloorDivide) and \
                    isinstance(v.left, cst.Name) and v.left.value == target.value and \
                    " ".join(code(v.right).split()) == step:
                out[small.targets[0].target.value] = 0 if isinstance(start, cst.Integer) and start.value == "0" else None
    return out


def _incremented(suite) -> frozenset:
    """Names incremented by one directly in a loop body (``step += 1``)."""
    out = set()
    body = suite.body if isinstance(suite, (cst.IndentedBlock, cst.SimpleStatementSuite)) else []
    for st in body:
        for small in (st.body if isinstance(st, cst.SimpleStatementLine) else []):
            if isinstance(small, cst.AugAssign) and isinstance(small.operator, cst.AddAssign) and \
                    isinstance(small.value, cst.Integer) and small.value.value == "1":
                d = dotted(small.target)
                if d:
                    out.add(d)
    return frozenset(out)


def _periodic(test, polarity: bool):
    """(counter, K, phase, then-arm runs when the phase matches) for ``(i + c) % K == d`` and its
    spellings (``(c + i)``, ``!=``, a bare ``(i + 1) % K`` as a truth value, ``not ...``); None otherwise."""
    eq, d, comparator = False, 0, None
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        comp = test.comparisons[0]
        if not isinstance(comp.operator, (cst.Equal, cst.NotEqual)):
            return None
        eq, comparator, mod = isinstance(comp.operator, cst.Equal), comp.comparator, test.left
    else:
        mod = test  # truthy: fires when the remainder is not 0
    if not (isinstance(mod, cst.BinaryOperation) and isinstance(mod.operator, cst.Modulo)):
        return None
    window = " ".join(code(mod.right).split())
    if comparator is not None:
        if isinstance(comparator, cst.Integer):
            d = int(comparator.value, 0)
        elif _phase_of(comparator, window, 0) == -1:  # ``i % K == K - 1``: the last of a window
            d = -1
        else:
            return None
    x, c = mod.left, 0
    if isinstance(x, cst.BinaryOperation) and isinstance(x.operator, (cst.Add, cst.Subtract)) and isinstance(x.right, cst.Integer):
        c = int(x.right.value, 0) * (1 if isinstance(x.operator, cst.Add) else -1)
        x = x.left
    elif isinstance(x, cst.BinaryOperation) and isinstance(x.operator, cst.Add) and isinstance(x.left, cst.Integer):
        c, x = int(x.left.value, 0), x.right  # ``(1 + i) % K``
    v = dotted(x)
    if v is None:
        return None
    phase = d - c
    if window.isdigit() and int(window) > 1:  # a literal window: phases are residues, its last is -1
        w = int(window)
        phase = phase % w
        phase = -1 if phase == w - 1 else phase
    return (v, window, phase, eq if polarity else not eq)
