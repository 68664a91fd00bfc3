"""Effects of calls looplint cannot see into, decided by def-use — never by the spelling of argument names.

A call of code outside the module (an imported helper, an inherited method, a method of an object built
elsewhere) may do anything to what it *receives*: its receiver, its arguments (also inside literal
lists, tuples and dicts), the objects those hold (``Trainer(model, opt)`` holds ``opt``), and for an
argument ``self`` everything ``self`` holds. Its summary says:

* ``optimizers`` — the optimizers it receives: it may zero, step or replace them (their state becomes
  unknown; doubt silences only what the call could have changed);
* ``may_backward`` — it may run a backward pass: it is a bare statement (its result is unused) that
  receives a module an optimizer trains, an object built from one (``loss = Loss(G=G, D=D)``, also through
  ``**modules``), ``self``, or a tensor the function backpropagates. Analyses
  model it as a join of "no backward" and "backward", so it never hides gradients left from a previous
  step; only conclusions that need "no gradients yet" become doubtful. Handed a tensor that carries the
  function's graph (``handed_graph``), the backward it may run is of that loss; otherwise it would be of
  its own making, and a step over gradients that only such calls may have made is no evidence that any
  were applied (``flow.py``: ``unseen``);
* ``modules`` — the module expressions it receives (its train/eval mode may change);
* ``scalers`` — GradScalers it receives.

A call whose result is used as a value (the loss it computes, a context manager, an argument of another
call) has no gradient effect beyond the optimizers it receives; but a function the code was handed and
calls with nothing (``loss = closure()``, ``step_fn()``), when no call site says what it is, may run a
forward and backward of its own (``may_backward``, as a statement or not). An inherited ``self.method()`` used as a
value or context manager has none at all; as a bare statement, a name that says it zeroes, steps or
resets (``self.clear_grads()``) keeps the doubt about the optimizers ``self`` holds — the one place a name
counts, and only towards silence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

import libcst as cst

from looplint.model.walk import descendants

from looplint.model import events as ev
from looplint.model.events import Event
from looplint.model.frameworks import KEEPS, OPTIMIZER_METHODS
from looplint.model.roles import ENGINE, MODULE, OPTIMIZER, SCALER, Frame, Role, overlaps
from looplint.model.scopes import Function, dotted, last_name
from looplint.model.values import class_of

_SAYS_GRADIENTS = re.compile(r"zero|clear|reset|step|update|backward|optimi[sz]e|apply_grad", re.I)
# Methods of ``torch.nn.Module`` that set a module up and never run it (no forward, so no backward; no
# optimizer, no train/eval switch): called on a module, they hand it to nothing.
_MODULE_SETUP = frozenset({
    "requires_grad_", "to", "cuda", "cpu", "half", "float", "double", "bfloat16", "type", "share_memory",
    "load_state_dict", "register_buffer", "register_parameter", "register_module", "add_module",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook"})


# Methods of ``torch.nn.Module`` that hand over its parts or settings and run no forward pass.
_NO_FORWARD = _MODULE_SETUP | frozenset({
    "parameters", "named_parameters", "buffers", "named_buffers", "children", "named_children", "modules",
    "named_modules", "state_dict", "train", "eval", "zero_grad", "get_submodule", "get_parameter"})
# methods whose result holds no autograd graph, whatever their receiver held
_DROPS_GRAPH = frozenset({"detach", "item", "tolist", "numpy"})


def _graphless(node: cst.CSTNode) -> bool:
    """Code under ``node`` cannot give a value its graph: a lambda, ``x.detach()``, ``x.item()``."""
    return isinstance(node, cst.Lambda) or (
        isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in _DROPS_GRAPH)


@dataclass(frozen=True)
class Effect:
    optimizers: FrozenSet[Role] = frozenset()
    may_backward: bool = False
    modules: Tuple[cst.BaseExpression, ...] = ()
    scalers: FrozenSet[Role] = frozenset()
    receives_self: bool = False
    # it is handed a tensor that carries the function's graph (a loss it computes and never backpropagates
    # itself): the backward it may run is that one; otherwise any backward would be of its own making
    handed_graph: bool = False


NOTHING = Effect()


def refs(e: Optional[cst.BaseExpression]) -> List[cst.BaseExpression]:
    """Names and attribute chains an argument hands over (also inside literal containers)."""
    if e is None:
        return []
    if isinstance(e, (cst.Name, cst.Attribute)) and dotted(e) is not None:
        if isinstance(e, cst.Name) and e.value in ("None", "True", "False"):
            return []
        return [e]
    if isinstance(e, (cst.List, cst.Tuple, cst.Set)):
        return [r for el in e.elements for r in refs(el.value)]
    if isinstance(e, cst.Dict):
        return [r for el in e.elements if isinstance(el, cst.DictElement) for r in refs(el.value)]
    if isinstance(e, cst.Call) and isinstance(e.func, cst.Attribute) and e.func.attr.value in (
            "to", "cuda", "cpu", "module", "parameters", "named_parameters"):
        return refs(e.func.value)
    if isinstance(e, cst.Call) and last_name(e.func) == "partial":  # what it binds is handed over with it
        return [r for a in e.args for r in refs(a.value)]
    return []


class Effects:
    """Effect summaries of unresolved calls, per (call event, frame)."""

    def __init__(self, model):
        self.m = model
        self.roles = model.roles
        self._memo: Dict[tuple, Effect] = {}
        self._backprop: Dict[Function, Set[str]] = {}

    def of(self, e: Event, frame: Frame, tracked: Sequence[Role] = ()) -> Effect:
        key = (id(e), frame, tuple(id(r) for r in tracked))
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = self._compute(e, frame, tracked)
        return got

    def _compute(self, e: Event, frame: Frame, tracked: Sequence[Role]) -> Effect:
        call = e.call
        if call is None:
            return NOTHING
        statement = e.usage == "stmt"
        method = call.func.attr.value if isinstance(call.func, cst.Attribute) else None
        opts: Set[Role] = set()
        scalers: Set[Role] = set()
        modules: List[cst.BaseExpression] = []
        receives_self = False
        backprop = False
        graph = handed = False
        received: List[Tuple[cst.BaseExpression, bool]] = []  # (expression, is the receiver)
        if e.target is not None:
            received.extend((r, True) for r in refs(e.target) or [e.target])
        for a in call.args:
            received.extend((r, False) for r in refs(a.value))
        if isinstance(call.func, cst.Name):
            opts.update(self._held(call.func, frame, tracked))  # ``step()`` of ``step = partial(update, opt)``
        backwarded = self.backpropagated(frame.fn)
        for expr, is_receiver in received:
            if is_receiver and method is not None and OPTIMIZER_METHODS.get(method) == KEEPS:
                continue  # ``optimizer.virtual_step()``: gradients kept for a later step (frameworks.py)
            if is_receiver and method in _MODULE_SETUP and not (isinstance(expr, cst.Name) and expr.value == "self") \
                    and self._is_module(expr, self.roles.resolve(expr, frame), frame, tracked):
                continue  # ``D.requires_grad_(False)``: a module's own setup
            if isinstance(expr, cst.Name) and expr.value == "self":
                held = [o for o in tracked if ".self." in (o.key or "")]
                if is_receiver:
                    # an inherited method: used as a value it touches nothing; as a statement it may run
                    # backward, and may clear or step when its name says so. Inherited from code the model
                    # cannot read (``loss = self.standard_loss(x, y)`` of a base of a module it cannot find),
                    # it may clear or step what ``self`` holds however it is used.
                    if statement and method and _SAYS_GRADIENTS.search(method):
                        opts.update(held)
                    elif method and self.m.values.unseen_ancestry(class_of(frame.fn)):
                        opts.update(held)
                    receives_self = statement
                else:
                    opts.update(held)  # ``helper(self)`` may do anything with what ``self`` holds
                    receives_self = True
                continue
            role = self.roles.resolve(expr, frame)
            if role is not None and role.kind in (OPTIMIZER, ENGINE):
                opts.update(o for o in tracked if o is role or role.kind == ENGINE)
                continue
            if role is not None and role.kind == SCALER:
                scalers.add(role)
                continue
            opts.update(self._held(expr, frame, tracked))
            d = dotted(expr) or ""
            if d in backwarded or (statement and self.carries_graph(expr, frame, tracked)):
                graph = True
                handed = handed or d in backwarded or self.carries_graph(expr, frame, tracked, seen_forward=True)
            if self._is_module(expr, role, frame, tracked):
                modules.append(expr)
            elif statement and self._holds_module(expr, frame, tracked):
                backprop = True  # ``loss_fn.accumulate(...)`` on an object built from the networks may run them
        may_backward = statement and (bool(modules) or receives_self or backprop or graph)
        if not call.args and isinstance(call.func, cst.Name) and self._received_callable(call.func, frame):
            may_backward = True  # ``closure()`` it was handed: a forward and backward of its own, maybe
        if not (opts or may_backward or modules or scalers):
            return NOTHING
        return Effect(frozenset(opts), may_backward, tuple(modules), frozenset(scalers), receives_self,
                      statement and handed)

    def _is_module(self, expr, role: Optional[Role], frame: Frame, tracked: Sequence[Role]) -> bool:
        if role is not None and role.kind == MODULE:
            return True
        key = self.roles.module_key(expr, frame)
        return key is not None and any(o.modules is not None and any(
            overlaps(m, key) for m in o.modules) for o in tracked)

    def _holds_module(self, expr: cst.BaseExpression, frame: Frame, tracked: Sequence[Role]) -> bool:
        """Whether an object was built from a module an optimizer trains (``Loss(G=G, D=D)``, also through
        ``**modules`` for a dict filled with ``modules[name] = m``): a method of it may run that module."""
        found = self.m.values.assigned_values(expr, frame.fn) if isinstance(expr, (cst.Name, cst.Attribute)) else None
        for value, where in found or ():
            if not isinstance(value, cst.Call):
                continue
            at = frame if where is frame.fn else Frame(where)
            for a in value.args:
                held = list(refs(a.value))
                if a.star == "**":
                    held.extend(v for v, _w in self.m.values.stored_anywhere(a.value, where))
                for r in held:
                    if isinstance(r, (cst.Name, cst.Attribute)) and self._is_module(r, self.roles.resolve(r, at), at, tracked):
                        return True
        return False

    def _held(self, expr: cst.BaseExpression, frame: Frame, tracked: Sequence[Role]) -> Set[Role]:
        """Optimizers an object holds because it was built from them (``Trainer(model, opt)``)."""
        found = self.m.values.assigned_values(expr, frame.fn) if isinstance(expr, (cst.Name, cst.Attribute)) else None
        out: Set[Role] = set()
        for value, where in found or ():
            if not isinstance(value, cst.Call):
                continue
            for a in value.args:
                for r in refs(a.value):
                    role = self.roles.resolve(r, Frame(where))
                    if role is not None and role.kind in (OPTIMIZER, ENGINE):
                        out.update(o for o in tracked if o is role or role.kind == ENGINE)
        return out

    def carries_graph(self, expr: cst.BaseExpression, frame: Frame, tracked: Sequence[Role], depth: int = 3,
                      seen_forward: bool = False) -> bool:
        """The value holds an autograd graph through a module an optimizer trains: it was computed by calling
        such a module (``loss = model(x).sum()``, ``out = net(x); loss = crit(out, y)``), followed through
        reaching assignments a few steps deep; not through ``.detach()`` or ``.item()``. Also, when the
        optimizer's parameters cannot be read, a call of an object the function received: it may be the
        trained module's forward; called with nothing, it may as well be a closure that ran the backward
        itself, which ``seen_forward`` (the graph is one the code computes in view) does not count."""
        if depth <= 0 or not isinstance(expr, cst.Name):
            return False
        found = self.m.values.assigned_values(expr, frame.fn)
        for value, where in found or ():
            sub = Frame(where) if where is not frame.fn else frame
            for node in descendants(value, prune=_graphless):
                if isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
                    if isinstance(node.func, cst.Attribute) and node.func.attr.value in _NO_FORWARD:
                        continue  # ``model.parameters()``: the module hands something over, it does not run
                    role = self.roles.resolve(node.func, sub)
                    if self._is_module(node.func, role, sub, tracked) or (
                            (node.args or not seen_forward)
                            and (role is None or role.kind not in (OPTIMIZER, SCALER, ENGINE))
                            and self._received_callable(node.func, sub)
                            and any(o.modules is None for o in tracked)):
                        return True
                elif isinstance(node, cst.Name) and node is not expr and \
                        self.carries_graph(node, sub, tracked, depth - 1, seen_forward):
                    return True
        return False

    def _received_callable(self, func: cst.BaseExpression, frame: Frame) -> bool:
        """``func`` is an object the function received (a parameter, or ``self.x``) and calls: with an
        optimizer whose parameters cannot be read, such a call may be the forward of the trained module."""
        if isinstance(func, cst.Attribute):
            return isinstance(func.value, cst.Name) and func.value.value == "self"
        return self.m.values.handed(func, frame.fn)

    def backpropagated(self, fn: Function) -> Set[str]:
        """Names the function passes to backward (``loss.backward()``, ``accelerator.backward(loss)``), also
        through a function of this module it hands them to (``update(opt, loss)`` that runs ``loss.backward()``)."""
        got = self._backprop.get(fn)
        if got is None:
            from looplint.model import loss_root
            from looplint.model.interp import items_below

            got = self._backprop[fn] = set()  # a recursive call sees what is known so far
            for item in items_below(self.m.builder.body(fn)):
                if isinstance(item, Event) and item.kind == ev.BACKWARD:
                    for r in refs(item.target) + [x for a in (item.call.args if item.call is not None else ())
                                                  for x in refs(a.value)]:
                        d = dotted(r)
                        if d:
                            got.add(d)
                    root = loss_root(item)  # ``scaler.scale(loss).backward()``, ``(loss / k).backward()``
                    if root is not None:
                        got.add(root.value)
                elif isinstance(item, Event) and item.kind == ev.CALL and item.callee is not None:
                    got |= self.handed_to_backward(item)
        return got

    def handed_to_backward(self, call: Event) -> Set[str]:
        """The caller's names a call of a function of this module passes to backward: the arguments bound
        to parameters the callee backpropagates (itself or through its own helpers)."""
        backed = self.backpropagated(call.callee)
        bound = self.m.values.parameters_bound(call.callee, call.call, call.bound_args)
        return {dotted(a) for p, a in bound.items() if p in backed and dotted(a)}

    def returns_backpropagated(self, fn: Function, depth: int = 0) -> bool:
        """Whether the function may return a tensor it backpropagated (``g_loss.backward()`` ...
        ``loss = g_loss; return loss``), also the result of a helper that does (``return self.step(x)``)."""
        backed = self.backpropagated(fn)
        return any(self._backpropagated_value(r, fn, backed, depth) for r in self.m.values.returned(fn))

    def _backpropagated_value(self, expr: cst.BaseExpression, fn: Function, backed: Set[str], depth: int) -> bool:
        if depth > 4:
            return False
        if isinstance(expr, cst.Name):
            if expr.value in backed:
                return True
            found = self.m.values.assigned_values(expr, fn) or []
            return any(where is fn and self._backpropagated_value(v, fn, backed, depth + 1) for v, where in found)
        if isinstance(expr, cst.Call):
            target = self.m.values.callable_of(expr.func, fn)
            return (target is not None and isinstance(target.target, Function) and target.target is not fn
                    and self.returns_backpropagated(target.target, depth + 1))
        return False


__all__ = ["Effect", "Effects", "NOTHING", "refs"]
