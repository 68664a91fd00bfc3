"""The recorder: runs inside the program's process and writes what the optimizers really did.

It observes through torch's own hooks where torch has them — the global optimizer step pre/post hooks, a
gradient hook and a post-accumulate-grad hook on every parameter (attached through the module
parameter-registration hook and to the parameters of every optimizer), global module forward hooks — and
wraps, for the duration of the run, the class methods that have none: ``zero_grad``, ``backward``, the
LR schedulers' ``step``, ``GradScaler``, gradient clipping, ``train``/``eval``, optimizer construction,
``DataLoader`` iteration, and the closure handed to ``step``. Line events of the program's own frames give
each event its loop path (see ``loopmap``).

Per parameter it keeps the backward passes whose gradients its ``.grad`` holds (a pass starts a fresh
gradient when the accumulated gradient equals the incoming one, i.e. the old one was cleared, however it was
cleared) and which of those passes each optimizer's steps have already applied. Events are JSON lines in the
file named by ``LOOPLINT_TRACE``; the oracles (``looplint.runtime.oracles``) judge them.

Entry point for the runner's bootstrap: ``main([program, max_steps])``.
"""
from __future__ import annotations

import functools
import json
import math
import os
import random
import sys
import traceback
import weakref
from typing import Any, Dict, List, Optional, Tuple

from looplint.runtime.loopmap import FrameLoops, LoopMap

TRACE_ENV = "LOOPLINT_TRACE"
MAX_STEPS_ENV = "LOOPLINT_MAX_STEPS"
_GRAPH_LIMIT = 50000  # autograd nodes walked per backward to find the forward passes feeding it
_GEN_FLAGS = 0x20 | 0x80 | 0x200  # generator, coroutine, async generator


class StopProgram(BaseException):
    """Raised from the step pre-hook once the step budget is spent. A BaseException, so that the
    program's own ``except Exception`` does not swallow it."""


class _ParamState:
    __slots__ = ("serial", "ref", "owner", "contrib", "applied", "incoming", "was_clear", "zero_from_backward", "hooked",
                 "line", "late")

    def __init__(self, serial: int, param: Any) -> None:
        self.serial = serial
        self.ref = weakref.ref(param)
        self.owner: Optional[weakref.ref] = None  # the module that registered it
        self.contrib: List[int] = []  # backward passes whose gradients .grad holds, oldest first
        self.applied: Dict[int, int] = {}  # optimizer serial -> len(contrib) when it last stepped on them
        self.incoming: Any = None
        self.was_clear = False  # ``.grad`` was None when the incoming gradient arrived: it starts afresh
        self.zero_from_backward = False  # the last backward left ``.grad`` all zeros (a saturated loss)
        self.hooked = False
        self.line: tuple = ()  # the program's lines on the stack where it was created (registered)
        self.late = False  # created after an optimizer was built


class _OptInfo:
    __slots__ = ("serial", "ref", "cls", "line", "params", "key", "steps", "closure_calls")

    def __init__(self, serial: int, opt: Any, line: Optional[int]) -> None:
        self.serial = serial
        self.ref = weakref.ref(opt)
        self.cls = type(opt).__name__
        self.line = line
        self.params: List[int] = []
        self.key = ""
        self.steps = 0


def _round(x: Optional[float]) -> Optional[float]:
    if x is None:
        return None
    if math.isnan(x) or math.isinf(x):
        return x
    return float(f"{x:.6g}")


class Recorder:
    def __init__(self, program: str, out: Any, max_steps: int) -> None:
        import torch

        self.torch = torch
        self.program = program
        self.out = out
        self.max_steps = max_steps
        self.pid = os.getpid()
        self.seq = 0
        try:
            import tokenize

            with tokenize.open(program) as f:  # honours a PEP 263 coding cookie
                source = f.read()
        except (OSError, UnicodeDecodeError, SyntaxError, LookupError):
            source = ""
        self.loopmap = LoopMap(source)
        self.frames: Dict[int, FrameLoops] = {}
        self.frame_serial = 0
        self.params: Dict[int, _ParamState] = {}
        self.opts: Dict[int, _OptInfo] = {}
        self.scheds: Dict[int, dict] = {}
        self.last_scheduler: Dict[int, Any] = {}  # id of an optimizer -> the scheduler built over it last
        self.loaders: Dict[int, dict] = {}
        self.steps = 0
        self.backward_serial = 0
        self.current_backward: Optional[dict] = None
        self.pending_steps: List[dict] = []
        self.closures: List[dict] = []
        self.depth: Dict[str, int] = {}
        self.forward_depth = 0
        self.patches: List[Tuple[Any, str, Any]] = []
        self.handles: List[Any] = []
        self.last_batch: Optional[list] = None
        # storage address -> [loader, epoch, index] of the latest batch of each loader (kept alive here, so
        # that an address cannot be reused while it is registered)
        self.batch_storage: Dict[int, list] = {}
        self.batch_refs: Dict[int, Tuple[list, List[int]]] = {}
        self.forward_inputs: Optional[list] = None
        self.errors = 0
        for name in ("track", "on_optimizer", "begin_backward", "end_backward", "zero_grad_begin", "zero_grad_end",
                     "step_pre", "step_post", "on_step_error", "on_scheduler", "on_loader_iter", "on_batch", "_forward_pre",
                     "_forward_post"):
            setattr(self, name, _safe(self, getattr(self, name)))

    # ------------------------------------------------------------------ output
    def emit(self, kind: str, **fields: Any) -> Optional[dict]:
        if os.getpid() != self.pid:
            return None
        self.seq += 1
        event = {"seq": self.seq, "kind": kind}
        event.update(self.context())
        event.update(fields)
        self.out.write(json.dumps(event, default=str) + "\n")
        return event

    def context(self) -> dict:
        frames = []
        f = sys._getframe(1)
        while f is not None:
            if f.f_code.co_filename == self.program:
                frames.append(f)
            f = f.f_back
        frames.reverse()
        loops: List[list] = []
        stack = []
        for fr in frames:
            stack.append(fr.f_lineno)
            state = self.frames.get(id(fr))
            if state is not None:
                loops.extend(state.path())
        return {"line": stack[-1] if stack else None, "stack": stack, "loops": loops, "batch": self.last_batch}

    # ------------------------------------------------------------------ line tracing
    def _global_trace(self, frame: Any, event: str, arg: Any) -> Any:
        if event != "call" or frame.f_code.co_filename != self.program:
            return None
        code = frame.f_code
        key = id(frame)
        if key not in self.frames or not code.co_flags & _GEN_FLAGS:
            self.frame_serial += 1
            self.frames[key] = FrameLoops(self.frame_serial, (code.co_name, code.co_firstlineno))
        return self._local_trace

    def _local_trace(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            state = self.frames.get(id(frame))
            line = frame.f_lineno
            if state is not None and line is not None:
                state.line(self.loopmap, line)
        elif event == "return" and not frame.f_code.co_flags & _GEN_FLAGS:
            self.frames.pop(id(frame), None)
        return self._local_trace

    # ------------------------------------------------------------------ parameters
    def track(self, p: Any, owner: Any = None) -> Optional[_ParamState]:
        torch = self.torch
        if not isinstance(p, torch.Tensor):
            return None
        serial = getattr(p, "_looplint_serial", None)
        st = self.params.get(serial) if serial is not None else None
        if st is None or st.ref() is not p:
            serial = len(self.params) + 1
            try:
                p._looplint_serial = serial
            except (AttributeError, RuntimeError):
                return None
            st = _ParamState(serial, p)
            st.line = tuple(self.context()["stack"])
            st.late = bool(self.opts)
            self.params[serial] = st
        if owner is not None and st.owner is None:
            try:
                st.owner = weakref.ref(owner)
            except TypeError:
                pass
        if not st.hooked and p.is_leaf and p.requires_grad:
            try:
                p.register_hook(self._make_grad_hook(serial))
                p.register_post_accumulate_grad_hook(self._make_accumulate_hook(serial))
                st.hooked = True
            except (RuntimeError, AttributeError):
                pass
        return st

    def _make_grad_hook(self, serial: int) -> Any:
        def hook(grad: Any) -> None:
            st = self.params.get(serial)
            if st is not None:
                st.incoming = grad
                p = st.ref()
                st.was_clear = p is not None and p.grad is None
            return None

        return _safe(self, hook)

    def _make_accumulate_hook(self, serial: int) -> Any:
        def hook(p: Any) -> None:
            st = self.params.get(serial)
            if st is None:
                return
            incoming, st.incoming = st.incoming, None
            g = p.grad
            # a gradient that arrived on a cleared ``.grad`` is fresh, whatever its values (a NaN gradient
            # equals nothing, not even itself)
            fresh, st.was_clear = st.was_clear, False
            if not fresh and g is not None and incoming is not None:
                try:
                    fresh = g is incoming or bool(self.torch.equal(g, incoming))
                except (RuntimeError, TypeError):
                    fresh = False
            bw = self.current_backward
            if bw is None:  # a backward we did not see start (e.g. from C++): give it an identity
                self.backward_serial += 1
                bw_id = self.backward_serial
            else:
                bw_id = bw["id"]
                bw["reached"].add(serial)
                if incoming is not None:
                    bw["incoming"][serial] = _sqnorm(self.torch, incoming)
            closure = self.closures[-1] if self.closures else None
            st.zero_from_backward = g is not None and self._grad_is_clear(p)
            if fresh:
                st.contrib = [bw_id]
                st.applied = {}
            else:
                if closure is not None and st.contrib and set(st.contrib) & closure["step_backwards"]:
                    closure["summed"] = True
                if not st.contrib or st.contrib[-1] != bw_id:
                    st.contrib.append(bw_id)

        return _safe(self, hook)

    def _grad_is_clear(self, p: Any) -> bool:
        g = p.grad
        if g is None:
            return True
        try:
            return not bool(g.detach().any())
        except RuntimeError:
            return False

    def sync(self, serials: Any) -> List[int]:
        """Forgets the gradients of parameters whose ``.grad`` is None or zero (not a zero gradient that a
        backward pass computed: that is a gradient, not a clearing); returns their serials."""
        cleared = []
        for s in serials:
            st = self.params.get(s)
            if st is None or not st.contrib:
                continue
            p = st.ref()
            if p is None or (self._grad_is_clear(p) and not (st.zero_from_backward and p.grad is not None)):
                cleared.append(s)
        return cleared

    def opt_params(self, info: _OptInfo) -> List[int]:
        opt = info.ref()
        if opt is None:
            return info.params
        serials = []
        for group in opt.param_groups:
            for p in group["params"]:
                st = self.track(p)
                if st is not None:
                    serials.append(st.serial)
        info.params = serials
        info.key = _param_key(serials)
        return serials

    def grad_norm(self, serials: List[int]) -> Optional[float]:
        total, any_grad = 0.0, False
        for s in serials:
            st = self.params.get(s)
            p = st.ref() if st is not None else None
            if p is None or p.grad is None:
                continue
            any_grad = True
            total += _sqnorm(self.torch, p.grad)
        return _round(math.sqrt(total)) if any_grad else None

    def lrs(self, opt: Any) -> List[Optional[float]]:
        out = []
        for g in getattr(opt, "param_groups", []):
            try:
                out.append(_round(float(g.get("lr"))))
            except (TypeError, ValueError):
                out.append(None)
        return out

    def trainable(self, serials: List[int]) -> int:
        """How many of these parameters require grad now."""
        n = 0
        for s in serials:
            p = self.params[s].ref()
            if p is not None and p.requires_grad:
                n += 1
        return n

    def training(self, serials: List[int]) -> Optional[bool]:
        flags = set()
        for s in serials:
            st = self.params.get(s)
            m = st.owner() if st is not None and st.owner is not None else None
            if m is not None:
                flags.add(bool(m.training))
        return None if not flags else (True in flags)

    # ------------------------------------------------------------------ events
    def _watch_step_errors(self, cls: type) -> None:
        """Wraps the ``step`` of an optimizer class (once) to record the exceptions it raises, even those
        the program catches (LBFGS without a closure, a closure returning None)."""
        owner = next((c for c in cls.__mro__ if "step" in c.__dict__), None)
        if owner is None or getattr(owner.__dict__["step"], "_looplint", False):
            return
        rec = self

        def make(orig: Any) -> Any:
            @functools.wraps(orig)  # keeps torch's ``hooked`` flag, so torch does not wrap it again
            def step(self_: Any, *a: Any, **k: Any) -> Any:
                try:
                    return orig(self_, *a, **k)
                except Exception as e:
                    rec.on_step_error(self_, a, k, e)
                    raise
            step._looplint = True  # type: ignore[attr-defined]
            return step

        self.patch(owner, "step", make)

    def on_step_error(self, opt: Any, a: tuple, k: dict, error: BaseException) -> None:
        serial = getattr(opt, "_looplint_serial", None)
        pending = None
        if self.pending_steps and self.pending_steps[-1]["opt"] == serial:
            pending = self.pending_steps.pop()
        closure = (a[0] if a else k.get("closure")) is not None
        self.emit("step_error", opt=serial, cls=type(opt).__name__, closure=closure,
                  calls=pending["calls"] if pending else 0, error=_describe_exception(error, self.program))

    def on_optimizer(self, opt: Any) -> None:
        self._watch_step_errors(type(opt))
        if getattr(opt, "_looplint_serial", None) is not None and opt._looplint_serial in self.opts:
            return
        serial = len(self.opts) + 1
        opt._looplint_serial = serial
        ctx_line = self.context()["line"]
        info = _OptInfo(serial, opt, ctx_line)
        self.opts[serial] = info
        serials = self.opt_params(info)
        earlier = []
        for other in self.opts.values():
            if other.serial != serial and other.key == info.key and other.params:
                o = other.ref()
                earlier.append({"opt": other.serial, "steps": other.steps,
                                "state": len(getattr(o, "state", {}) or {}) if o is not None else None})
        self.emit("optimizer", opt=serial, cls=info.cls, params=len(serials), key=info.key,
                  lr=self.lrs(opt), same_params=earlier)

    def begin_backward(self, roots: Any) -> dict:
        self.backward_serial += 1
        bw = {"id": self.backward_serial, "reached": set(), "incoming": {}, "forwards": self._forwards_of(roots),
              "before": {i.serial: self.grad_norm(i.params) for i in self.opts.values() if i.ref() is not None}}
        self.current_backward = bw
        if self.closures:
            self.closures[-1]["backwards"] += 1
            self.closures[-1]["step_backwards"].add(bw["id"])
        return bw

    def end_backward(self, bw: dict, error: Optional[BaseException] = None) -> None:
        self.current_backward = None
        per_opt = {}
        for info in self.opts.values():
            if info.ref() is None:
                continue
            hit = [s for s in info.params if s in bw["reached"]]
            if not hit:
                continue
            per_opt[str(info.serial)] = {
                "params": len(hit),
                "norm_before": bw["before"].get(info.serial),
                "norm": self.grad_norm(info.params),
                "contribution": _round(math.sqrt(sum(bw["incoming"].get(s, 0.0) for s in hit))),
            }
        fields = {"id": bw["id"], "opts": per_opt, "reached": len(bw["reached"]), "forwards": bw["forwards"],
                  "closure": self.closures[-1]["id"] if self.closures else None}
        held = {s for info in self.opts.values() if info.ref() is not None for s in info.params}
        orphans = [self.params[s] for s in bw["reached"] if s not in held and s in self.params and self.params[s].late]
        if orphans:  # parameters created after an optimizer was built, with gradients no optimizer holds
            fields["orphans"] = {"count": len(orphans), "stacks": sorted({o.line for o in orphans})}
        if error is not None:
            fields["error"] = _describe_exception(error)
        self.emit("backward", **fields)

    def _forwards_of(self, roots: Any) -> List[int]:
        torch = self.torch
        if isinstance(roots, torch.Tensor):
            roots = [roots]
        try:
            nodes = [t.grad_fn for t in roots if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        except TypeError:
            return []
        seen, found = set(), set()
        while nodes and len(seen) < _GRAPH_LIMIT:
            node = nodes.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            try:
                tag = node.metadata.get("looplint_forward")
                if tag is not None:
                    found.add(tag)
                nodes.extend(f for f, _ in node.next_functions)
            except (AttributeError, RuntimeError):
                continue
        return sorted(found)

    def zero_grad_begin(self) -> Dict[int, float]:
        norms = {}
        for s, st in self.params.items():
            if st.contrib:
                p = st.ref()
                if p is not None and p.grad is not None:
                    norms[s] = _sqnorm(self.torch, p.grad)
        return norms

    def zero_grad_end(self, target: str, target_id: Optional[int], before: Optional[Dict[int, float]],
                      how: str) -> None:
        before = before or {}
        if how != "manual":  # ``zero_grad()`` ran: a zero gradient left by a backward is cleared too
            for s in before:
                self.params[s].zero_from_backward = False
        cleared = set(self.sync(list(before)))
        per_opt = {}
        for info in self.opts.values():
            hit = [s for s in info.params if s in cleared]
            if not hit:
                continue
            discarded = sorted({b for s in hit for b in self.params[s].contrib})
            applied = sorted({b for s in hit for b in self.params[s].contrib[: self.params[s].applied.get(info.serial, 0)]})
            per_opt[str(info.serial)] = {"cleared": len(hit), "discarded": discarded, "applied": applied,
                                         "norm": _round(math.sqrt(sum(before.get(s, 0.0) for s in hit)))}
        for s in cleared:
            st = self.params[s]
            st.contrib = []
            st.applied = {}
        if self.closures:
            self.closures[-1]["zero_grads"] += 1
        self.emit("zero_grad", target=target, target_id=target_id, how=how, opts=per_opt,
                  closure=self.closures[-1]["id"] if self.closures else None)

    def step_pre(self, opt: Any, args: tuple, kwargs: dict) -> Optional[tuple]:
        if self.steps >= self.max_steps:
            raise StopProgram()
        self.on_optimizer(opt)
        info = self.opts[opt._looplint_serial]
        serials = self.opt_params(info)
        manual = self.sync(serials)
        if manual:  # cleared without zero_grad (``p.grad = None`` loops, ``grad.zero_()``)
            before = {s: 0.0 for s in manual}
            self.zero_grad_end("manual", None, before, "manual")
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        step = {"opt": info.serial, "n": info.steps + 1, "closure": closure is not None, "calls": 0,
                "lr": self.lrs(opt), "line": self.context()["line"]}
        with self.torch.no_grad():
            step["before"] = [self.params[s].ref().detach().clone() if self.params[s].ref() is not None else None
                              for s in serials]
        step["serials"] = serials
        if closure is None:
            step.update(self._consumption(info, serials))
        self.pending_steps.append(step)
        if closure is not None:
            wrapped = self._wrap_closure(closure, step)
            if len(args) > 1:
                return (args[0], wrapped) + tuple(args[2:]), kwargs
            kwargs = dict(kwargs)
            kwargs["closure"] = wrapped
            return args, kwargs
        return None

    def _consumption(self, info: _OptInfo, serials: List[int]) -> dict:
        backwards, stale = set(), set()
        for s in serials:
            st = self.params[s]
            p = st.ref()
            if p is None or p.grad is None or not st.contrib:
                continue
            backwards.update(st.contrib)
            n = st.applied.get(info.serial)
            if n:
                stale.update(st.contrib[:n])
        return {"backwards": sorted(backwards), "stale": sorted(stale), "norm_before": self.grad_norm(serials)}

    def step_post(self, opt: Any, args: tuple, kwargs: dict) -> None:
        info = self.opts.get(getattr(opt, "_looplint_serial", None))
        if info is None or not self.pending_steps:
            return
        step = self.pending_steps.pop()
        serials = step.pop("serials")
        before = step.pop("before")
        if step["closure"]:
            step.update(self._consumption(info, serials))
        delta = 0.0
        with self.torch.no_grad():
            for s, old in zip(serials, before):
                p = self.params[s].ref()
                if p is not None and old is not None and p.shape == old.shape:
                    delta += _sqnorm(self.torch, p.detach() - old)
        for s in serials:
            st = self.params[s]
            p = st.ref()
            if p is not None and p.grad is not None and st.contrib:
                st.applied[info.serial] = len(st.contrib)
        info.steps += 1
        self.steps += 1
        latest = self._latest_contribution(info)
        line = step.pop("line")
        self.emit("step", opt=info.serial, cls=info.cls, n=step["n"], closure=step["closure"],
                  calls=step["calls"], backwards=step["backwards"], stale=step["stale"],
                  norm_before=step["norm_before"], norm_after=self.grad_norm(serials), latest=latest,
                  delta=_round(math.sqrt(delta)), lr=step["lr"], training=self.training(serials), step_line=line,
                  trainable=self.trainable(serials))
        self._graph_locals()

    def _graph_locals(self) -> None:
        """After a step: the local variables of the program's frames that hold a tensor with autograd
        history, with the size of that history (nodes, capped): a ``graphs`` event, when there are any."""
        torch = self.torch
        found = []
        f = sys._getframe(1)
        while f is not None:
            if f.f_code.co_filename == self.program:
                for name, value in list(f.f_locals.items()):
                    if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                        found.append([f.f_code.co_name, f.f_code.co_firstlineno, name, _graph_size(value.grad_fn)])
            f = f.f_back
        if found:
            self.emit("graphs", locals=found)

    def _latest_contribution(self, info: _OptInfo) -> Optional[int]:
        latest = None
        for s in info.params:
            st = self.params.get(s)
            if st is not None and st.contrib:
                latest = max(latest or 0, st.contrib[-1])
        return latest

    def _wrap_closure(self, closure: Any, step: dict) -> Any:
        rec = self
        fn = getattr(closure, "func", closure)  # functools.partial
        fn = getattr(fn, "__func__", fn)  # bound method
        code = getattr(fn, "__code__", None)
        def_line = code.co_firstlineno if code is not None and code.co_filename == self.program else None
        step.setdefault("step_backwards", set())

        def looplint_closure(*a: Any, **k: Any) -> Any:
            step["calls"] += 1
            call = {"id": rec.seq + 1, "backwards": 0, "zero_grads": 0, "summed": False,
                    "step_backwards": step["step_backwards"]}
            rec.closures.append(call)
            try:
                result = closure(*a, **k)
            except BaseException as e:
                rec.closures.pop()
                rec.emit("closure_call", opt=step["opt"], step=step["n"], call=step["calls"], def_line=def_line,
                         backwards=call["backwards"], zero_grads=call["zero_grads"], summed=call["summed"],
                         returned=None, error=_describe_exception(e))
                raise
            rec.closures.pop()
            info = rec.opts.get(step["opt"])
            loss = None
            try:
                loss = _round(float(result)) if result is not None else None
            except (TypeError, ValueError, RuntimeError):
                pass
            rec.emit("closure_call", opt=step["opt"], step=step["n"], call=step["calls"], def_line=def_line,
                     backwards=call["backwards"], zero_grads=call["zero_grads"], summed=call["summed"],
                     returned=type(result).__name__, loss=loss,
                     norm=rec.grad_norm(info.params) if info is not None else None)
            return result

        return looplint_closure

    def on_scheduler(self, sched: Any, lr_before: Optional[List[Optional[float]]] = None) -> None:
        """A scheduler, recorded once. ``lr_before``: the optimizer's learning rates just before this
        scheduler was constructed (given when the construction was seen), to compare its course with the
        course of the scheduler it replaces (``_course``)."""
        if getattr(sched, "_looplint_serial", None) in self.scheds:
            return
        serial = len(self.scheds) + 1
        sched._looplint_serial = serial
        opt = getattr(sched, "optimizer", None)
        args = {}
        for name, value in vars(sched).items():
            if name.startswith("_") or name in ("optimizer",):
                continue
            v = _jsonable(value)
            if v is not None:
                args[name] = v
        lam = getattr(sched, "lr_lambdas", None)
        if lam:
            f = lam[0]
            args["lr_lambda"] = f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', type(f).__name__)}"
        self.scheds[serial] = {"cls": type(sched).__name__}
        course = None
        previous = self.last_scheduler.get(id(opt)) if opt is not None else None
        if previous is not None and type(previous) is type(sched) and lr_before is not None:
            course = self._course(previous, sched, lr_before)
        if opt is not None:
            self.last_scheduler[id(opt)] = sched
        self.emit("scheduler", sched=serial, cls=type(sched).__name__,
                  opt=getattr(opt, "_looplint_serial", None), args=args, lr=self.lrs(opt), course=course)

    def _course(self, previous: Any, new: Any, lr_before: List[Optional[float]]) -> Optional[dict]:
        """The learning rates the new scheduler will set over the coming steps, against those the scheduler
        it replaces would have set had it been kept (the one scheduler of a hoisted constructor): both
        stepped on copies, over a stand-in optimizer, from the learning rates each found. ``same``: the two
        courses agree at every step (rebuilding it changed nothing: ``ExponentialLR`` decays from the current
        rate either way); else the first step where they part, with both rates. None when a copy cannot be
        stepped apart from the program's objects (a scheduler holding others, an error)."""
        import copy
        import warnings

        sched_cls = self.torch.optim.lr_scheduler.LRScheduler
        for value in list(vars(previous).values()) + list(vars(new).values()):
            if isinstance(value, sched_cls) or (isinstance(value, (list, tuple)) and any(isinstance(v, sched_cls) for v in value)):
                return None  # SequentialLR, ChainedScheduler: their parts drive the program's optimizer
        # long enough to pass any count the scheduler holds (a horizon, milestones) past where it is now
        counts = [abs(int(v)) for s in (previous, new) for v in vars(s).values()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        counts += [abs(int(x)) for s in (previous, new) for v in vars(s).values() if isinstance(v, (list, tuple))
                   for x in v if isinstance(x, int) and not isinstance(x, bool)]
        n = 64 + min(max(counts, default=0), 2000)

        def run(sched: Any, lrs: List[Optional[float]]) -> List[float]:
            groups = []
            for g, lr in zip(sched.optimizer.param_groups, lrs):
                stand_in = {k: v for k, v in g.items() if k != "params"}
                stand_in["params"] = []
                for key in ("lr", "initial_lr"):
                    if key in stand_in:
                        stand_in[key] = float(stand_in[key])
                stand_in["lr"] = float(lr)
                groups.append(stand_in)

            def step() -> None:
                pass

            step._wrapped_by_lr_sched = True  # type: ignore[attr-defined]
            twin = copy.copy(sched)
            twin.optimizer = type("StandIn", (), {"param_groups": groups, "step": staticmethod(step),
                                                  "_opt_called": True})()
            out = [float(lrs[0])]
            for _ in range(n):
                try:
                    twin.step()
                except Exception:  # noqa: BLE001 - stepped past its end (OneCycleLR): the course so far
                    break
                out.append(float(groups[0]["lr"]))
            return out

        opt = new.optimizer
        if len(lr_before) != len(opt.param_groups):
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                single = run(previous, [float(v) for v in lr_before])
                rebuilt = run(new, [float(g["lr"]) for g in opt.param_groups])
        except Exception:  # noqa: BLE001 - a scheduler that cannot be stepped apart: not compared
            return None
        for i, (a, b) in enumerate(zip(single, rebuilt)):
            if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12):
                return {"same": False, "steps": min(len(single), len(rebuilt)) - 1, "at": i, "single": _round(a),
                        "rebuilt": _round(b)}
        steps = min(len(single), len(rebuilt)) - 1
        return {"same": True, "steps": steps} if steps > 0 else None

    def sched_step(self, sched: Any, orig: Any, a: tuple, k: dict) -> Any:
        self.on_scheduler(sched)
        opt = getattr(sched, "optimizer", None)
        before = self.lrs(opt)
        fields = {"sched": sched._looplint_serial, "cls": type(sched).__name__,
                  "opt": getattr(opt, "_looplint_serial", None), "args": len(a) + len(k), "lr_before": before}
        try:
            result = orig(sched, *a, **k)
        except BaseException as e:
            if not isinstance(e, StopProgram):
                fields["error"] = _describe_exception(e)
                self.emit("sched_step", **fields)
            raise
        fields["lr_after"] = self.lrs(opt)
        fields["last_epoch"] = getattr(sched, "last_epoch", None)
        self.emit("sched_step", **fields)
        return result

    def on_loader_iter(self, loader: Any, it: Any) -> None:
        serial = getattr(loader, "_looplint_serial", None)
        if serial not in self.loaders:
            serial = len(self.loaders) + 1
            try:
                loader._looplint_serial = serial
            except (AttributeError, ValueError):
                return
            self.loaders[serial] = {"epochs": 0}
        info = self.loaders[serial]
        info["epochs"] += 1
        try:
            it._looplint = [serial, info["epochs"], 0]
        except AttributeError:
            return
        try:
            n = len(loader)
        except TypeError:
            n = None
        self.emit("loader_iter", loader=serial, epoch=info["epochs"], len=n)

    def on_batch(self, it: Any, end: bool, item: Any = None) -> None:
        tag = getattr(it, "_looplint", None)
        if tag is None:
            return
        if end:
            self.emit("loader_end", loader=tag[0], epoch=tag[1], batches=tag[2])
            self.last_batch = None
            return
        tag[2] += 1
        self.last_batch = list(tag)
        old = self.batch_refs.pop(tag[0], None)
        if old is not None:
            for ptr in old[1]:
                self.batch_storage.pop(ptr, None)
        tensors = _tensors(self.torch, item)
        ptrs = [p for p in (_storage_ptr(t) for t in tensors) if p]
        self.batch_refs[tag[0]] = (tensors, ptrs)
        for ptr in ptrs:
            self.batch_storage[ptr] = list(tag)
        self.emit("batch", loader=tag[0], epoch=tag[1], index=tag[2])

    # ------------------------------------------------------------------ installation
    def patch(self, owner: Any, name: str, make: Any) -> None:
        orig = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if orig is None:
            return
        self.patches.append((owner, name, orig))
        setattr(owner, name, make(orig))

    def guarded(self, kind: str) -> "_Guard":
        return _Guard(self, kind)

    def install(self) -> None:
        torch = self.torch
        import torch.nn.modules.module as module_mod
        import torch.optim.lr_scheduler as lr_mod
        import torch.optim.optimizer as optim_mod
        import torch.utils.data.dataloader as dl_mod

        rec = self
        self.handles.append(optim_mod.register_optimizer_step_pre_hook(self.step_pre))
        self.handles.append(optim_mod.register_optimizer_step_post_hook(self.step_post))
        def on_register(module: Any, name: str, param: Any) -> None:
            self.track(param, module)  # returns None: a value returned here would replace the parameter

        self.handles.append(module_mod.register_module_parameter_registration_hook(_safe(self, on_register)))
        self.handles.append(module_mod.register_module_forward_pre_hook(self._forward_pre))
        self.handles.append(module_mod.register_module_forward_hook(self._forward_post, always_call=True))

        def opt_init(orig: Any) -> Any:
            def __init__(self_: Any, *a: Any, **k: Any) -> None:
                with rec.guarded("opt_init") as outer:
                    orig(self_, *a, **k)
                    if outer:
                        rec.on_optimizer(self_)
            return __init__

        self.patch(torch.optim.Optimizer, "__init__", opt_init)

        def zero(target: str) -> Any:
            def make(orig: Any) -> Any:
                def zero_grad(self_: Any, *a: Any, **k: Any) -> Any:
                    with rec.guarded("zero") as outer:
                        if not outer:
                            return orig(self_, *a, **k)
                        before = rec.zero_grad_begin()
                        result = orig(self_, *a, **k)
                        tid = getattr(self_, "_looplint_serial", None) if target == "optimizer" else None
                        rec.zero_grad_end(target if target == "optimizer" else type(self_).__name__, tid, before,
                                          "zero_grad")
                        return result
                return zero_grad
            return make

        self.patch(torch.optim.Optimizer, "zero_grad", zero("optimizer"))
        self.patch(torch.nn.Module, "zero_grad", zero("module"))

        def backward(orig: Any) -> Any:
            def wrapped(*a: Any, **k: Any) -> Any:
                with rec.guarded("backward") as outer:
                    if not outer:
                        return orig(*a, **k)
                    roots = a[0] if a else k.get("tensors", k.get("self"))
                    bw = rec.begin_backward(roots)
                    try:
                        result = orig(*a, **k)
                    except BaseException as e:
                        rec.end_backward(bw, e)
                        raise
                    rec.end_backward(bw)
                    return result
            return wrapped

        self.patch(torch.Tensor, "backward", backward)
        self.patch(torch.autograd, "backward", backward)

        def sched_init(orig: Any) -> Any:
            def __init__(self_: Any, *a: Any, **k: Any) -> None:
                with rec.guarded("sched_init") as outer:
                    opt = a[0] if a else k.get("optimizer")
                    before = [g.get("lr") for g in getattr(opt, "param_groups", [])] if outer else None
                    orig(self_, *a, **k)
                    if outer:
                        rec.on_scheduler(self_, before)
            return __init__

        def sched_step(orig: Any) -> Any:
            def step(self_: Any, *a: Any, **k: Any) -> Any:
                if rec.depth.get("sched_init") or rec.depth.get("sched_step"):
                    return orig(self_, *a, **k)
                with rec.guarded("sched_step"):
                    return rec.sched_step(self_, orig, a, k)
            return step

        for cls in list(vars(lr_mod).values()):
            if isinstance(cls, type) and issubclass(cls, lr_mod.LRScheduler):
                # every constructor is wrapped; only the outermost records, once the object is complete
                if "__init__" in cls.__dict__:
                    self.patch(cls, "__init__", sched_init)
                if "step" in cls.__dict__:
                    self.patch(cls, "step", sched_step)

        def scaler_init(orig: Any) -> Any:
            def __init__(self_: Any, device: str = "cuda", *a: Any, **k: Any) -> None:
                if str(device).startswith("cuda") and not torch.cuda.is_available():
                    device = "cpu"  # the cuda default silently disables itself on a CPU-only machine
                orig(self_, device, *a, **k)
            return __init__

        scaler_cls = getattr(getattr(torch, "amp", None), "GradScaler", None)
        if scaler_cls is not None:
            self.patch(scaler_cls, "__init__", scaler_init)
            for op in ("step", "update", "unscale_"):
                self.patch(scaler_cls, op, self._simple_event("scaler", op))
            self.patch(scaler_cls, "scale", self._scale_event())

        import torch.nn.utils as nn_utils
        import torch.nn.utils.clip_grad as clip_mod

        for name in ("clip_grad_norm_", "clip_grad_value_"):
            maker = self._clip_event(name)
            self.patch(clip_mod, name, maker)
            if getattr(nn_utils, name, None) is not None:
                self.patch(nn_utils, name, maker)

        def train(orig: Any) -> Any:
            def train_(self_: Any, mode: bool = True) -> Any:
                with rec.guarded("train") as outer:
                    result = orig(self_, mode)
                    if outer:
                        rec.emit("mode", module=type(self_).__name__, training=bool(mode))
                    return result
            return train_

        self.patch(torch.nn.Module, "train", train)

        def loader_iter(orig: Any) -> Any:
            def __iter__(self_: Any) -> Any:
                it = orig(self_)
                rec.on_loader_iter(self_, it)
                return it
            return __iter__

        def loader_next(orig: Any) -> Any:
            def __next__(self_: Any) -> Any:
                try:
                    item = orig(self_)
                except StopIteration:
                    rec.on_batch(self_, True)
                    raise
                rec.on_batch(self_, False, item)
                return item
            return __next__

        self.patch(dl_mod.DataLoader, "__iter__", loader_iter)
        self.patch(dl_mod._BaseDataLoaderIter, "__next__", loader_next)

    def _simple_event(self, kind: str, op: str) -> Any:
        rec = self

        def make(orig: Any) -> Any:
            def wrapped(self_: Any, *a: Any, **k: Any) -> Any:
                with rec.guarded(kind) as outer:
                    if not outer:
                        return orig(self_, *a, **k)
                    opt = a[0] if a else k.get("optimizer")
                    rec.emit(kind, op=op, opt=getattr(opt, "_looplint_serial", None), scaler=id(self_))
                    return orig(self_, *a, **k)
            return wrapped

        return make

    def _scale_event(self) -> Any:
        """``GradScaler.scale(outputs)``: a ``scale`` event with the factor the outputs were multiplied by."""
        rec = self

        def make(orig: Any) -> Any:
            def wrapped(self_: Any, *a: Any, **k: Any) -> Any:
                with rec.guarded("scale") as outer:
                    result = orig(self_, *a, **k)
                    if outer and self_.is_enabled():
                        rec.emit("scale", factor=float(self_.get_scale()))
                    return result
            return wrapped

        return make

    def _clip_event(self, name: str) -> Any:
        rec = self

        def make(orig: Any) -> Any:
            def wrapped(*a: Any, **k: Any) -> Any:
                with rec.guarded("clip") as outer:
                    if not outer:
                        return orig(*a, **k)
                    before = {str(i.serial): rec.grad_norm(i.params) for i in rec.opts.values()}
                    try:
                        result = orig(*a, **k)
                    except Exception as e:  # recorded (a clip of no gradient raises in some versions), re-raised
                        rec.emit("clip", op=name, before=before, after=before, raised=f"{type(e).__name__}: {e}")
                        raise
                    after = {str(i.serial): rec.grad_norm(i.params) for i in rec.opts.values()}
                    rec.emit("clip", op=name, before=before, after=after)
                    return result
            return wrapped

        return make

    def _forward_pre(self, module: Any, args: Any) -> None:
        if self.forward_depth == 0:
            self.forward_inputs = None
            if self.batch_storage:
                for t in _tensors(self.torch, args):
                    tag = self.batch_storage.get(_storage_ptr(t))
                    if tag is not None:
                        self.forward_inputs = tag
                        break
        self.forward_depth += 1

    def _forward_post(self, module: Any, args: Any, output: Any) -> None:
        self.forward_depth = max(0, self.forward_depth - 1)
        if self.forward_depth:
            return
        grad = self.torch.is_grad_enabled()
        event = self.emit("forward", module=type(module).__name__, grad=grad, training=bool(module.training),
                          inputs_from=self.forward_inputs)
        if event is not None and grad:
            t = _first_graph_tensor(self.torch, output)
            if t is not None:
                try:
                    t.grad_fn.metadata["looplint_forward"] = event["seq"]
                except (AttributeError, RuntimeError, TypeError):
                    pass

    def uninstall(self) -> None:
        sys.settrace(None)
        for h in self.handles:
            h.remove()
        for owner, name, orig in reversed(self.patches):
            setattr(owner, name, orig)
        self.patches.clear()
        self.handles.clear()


def _safe(rec: "Recorder", fn: Any) -> Any:
    """Runs a piece of the recorder so that its own failure never changes the program's behaviour: the
    failure becomes a ``recorder_error`` event (``StopProgram`` and other BaseExceptions pass through)."""

    def wrapped(*a: Any, **k: Any) -> Any:
        try:
            return fn(*a, **k)
        except Exception as e:  # noqa: BLE001 - the recorder must not break the program it observes
            rec.errors += 1
            if rec.errors <= 20:
                try:
                    rec.emit("recorder_error", where=getattr(fn, "__name__", "?"), error=_describe_exception(e),
                             traceback=traceback.format_exc()[-1500:])
                except Exception:  # noqa: BLE001
                    pass
            return None

    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    return wrapped


class _Guard:
    """Counts nesting of one kind of wrapped call; ``as outer`` is True for the outermost call only."""

    __slots__ = ("rec", "kind")

    def __init__(self, rec: Recorder, kind: str) -> None:
        self.rec, self.kind = rec, kind

    def __enter__(self) -> bool:
        n = self.rec.depth.get(self.kind, 0)
        self.rec.depth[self.kind] = n + 1
        return n == 0

    def __exit__(self, *exc: Any) -> None:
        self.rec.depth[self.kind] -= 1


def _sqnorm(torch: Any, t: Any) -> float:
    try:
        if t.is_sparse:
            t = t.coalesce().values()
        return float(t.detach().double().pow(2).sum())
    except (RuntimeError, TypeError, AttributeError):
        return 0.0


def _param_key(serials: List[int]) -> str:
    return ",".join(str(s) for s in sorted(serials))


def _graph_size(fn: Any, cap: int = 2000) -> int:
    """Autograd nodes reachable from ``fn`` (at most ``cap``)."""
    seen = {id(fn)}
    keep = [fn]  # holds the node objects so that their ids stay unique during the walk
    todo = [fn]
    while todo and len(seen) < cap:
        node = todo.pop()
        for nxt, _ in getattr(node, "next_functions", ()) or ():
            if nxt is not None and id(nxt) not in seen:
                seen.add(id(nxt))
                keep.append(nxt)
                todo.append(nxt)
    return len(seen)


def _first_graph_tensor(torch: Any, output: Any, depth: int = 0) -> Any:
    if isinstance(output, torch.Tensor):
        return output if output.grad_fn is not None else None
    if depth > 3:
        return None
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        for item in output:
            t = _first_graph_tensor(torch, item, depth + 1)
            if t is not None:
                return t
    return None


def _tensors(torch: Any, item: Any, depth: int = 0) -> list:
    """The tensors in a batch (nested tuples, lists and dicts), at most a few levels deep."""
    if isinstance(item, torch.Tensor):
        return [item]
    if depth > 3:
        return []
    if isinstance(item, dict):
        item = list(item.values())
    out: list = []
    if isinstance(item, (list, tuple)):
        for x in item[:64]:
            out.extend(_tensors(torch, x, depth + 1))
    return out


def _storage_ptr(t: Any) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, AttributeError, TypeError):
        return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, dict):  # Counter of milestones
        keys = [k for k in value if isinstance(k, (int, float))]
        return sorted(keys) if len(keys) == len(value) else None
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return list(value)
    return None


def _describe_exception(e: BaseException, program: Optional[str] = None) -> dict:
    line = None
    if program is not None:
        tb = e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == program:
                line = tb.tb_lineno
            tb = tb.tb_next
    return {"type": type(e).__name__, "message": str(e)[:500], "line": line}


def preload() -> None:
    """Imports what every training program imports, before line tracing starts (the first optimizer
    construction imports ``torch._dynamo``, a second or more; traced, several times that)."""
    import torch  # noqa: F401
    import torch.optim  # noqa: F401
    import torch.utils.data  # noqa: F401

    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # noqa: BLE001 - an optional speed-up only
        pass


def main(argv: List[str]) -> None:
    """The runner's bootstrap: ``main([program, max_steps])``; the trace goes to ``$LOOPLINT_TRACE``."""
    import runpy

    program = os.path.abspath(argv[0])
    max_steps = int(argv[1]) if len(argv) > 1 else int(os.environ.get(MAX_STEPS_ENV, "200"))
    out = open(os.environ[TRACE_ENV], "w", buffering=1, encoding="utf-8")
    random.seed(0)
    preload()
    import torch

    torch.manual_seed(0)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(0)
    rec = Recorder(program, out, max_steps)
    rec.emit("start", program=program, torch=torch.__version__, max_steps=max_steps,
             loop_map=rec.loopmap.describe(), python=sys.version.split()[0])
    rec.install()
    sys.argv = [program]
    sys.path.insert(0, os.path.dirname(program))
    status, error, code = "finished", None, None
    try:
        sys.settrace(rec._global_trace)
        runpy.run_path(program, run_name="__main__")
    except StopProgram:
        status = "truncated"
    except SystemExit as e:
        code = e.code
        if code not in (None, 0):
            status, error = "exited", {"type": "SystemExit", "message": str(code), "line": _describe_exception(e, program)["line"]}
            if not isinstance(code, int):  # sys.exit("message") prints it and exits with status 1
                code = 1
    except BaseException as e:  # the program's own crash is a finding, not our failure
        status = "crashed"
        error = _describe_exception(e, program)
        error["traceback"] = "".join(traceback.format_exception_only(type(e), e))[-1000:]
    finally:
        sys.settrace(None)
    pending = None
    if rec.pending_steps:
        p = rec.pending_steps[-1]
        pending = {"opt": p["opt"], "cls": rec.opts[p["opt"]].cls, "closure": p["closure"], "calls": p["calls"],
                   "line": p["line"]}
    rec.emit("end", status=status, error=error, exit_code=code if isinstance(code, int) else None,
             steps=rec.steps, pending_step=pending)
    rec.uninstall()
    out.flush()
    out.close()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)
