"""One oracle per rule: the dynamic signature that proves the rule's bug happened in a recorded run.

An oracle is a function of a ``Trace`` returning a list of ``Evidence`` (empty when the bug was not
observed): the code, the line(s) of the program where the rule reports it, and a sentence with numbers.
Oracles judge what the optimizers actually consumed, per optimizer, so correct programs stay clean:
gradient accumulation with a gated step consumes several fresh backward passes (not LL101); a GAN's
discriminator gradients from the generator's backward are cleared before the discriminator's own step.

``ORACLES`` maps each code to its oracle; ``EXPLAINS_CRASH`` lists the codes whose bug is a crash.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from looplint.runtime.trace import Trace


@dataclass(frozen=True)
class Evidence:
    code: str
    line: Optional[int]
    text: str
    lines: Tuple[int, ...] = field(default=())  # further lines where a rule may report the same bug
    explains_crash: bool = False

    @property
    def all_lines(self) -> Tuple[int, ...]:
        return tuple(dict.fromkeys(([self.line] if self.line is not None else []) + list(self.lines)))


Oracle = Callable[[Trace], List[Evidence]]
ORACLES: Dict[str, Oracle] = {}
EXPLAINS_CRASH = {"LL112", "LL204", "LL301", "LL304", "LL406", "LL407"}


def oracle(code: str) -> Callable[[Oracle], Oracle]:
    def register(fn: Oracle) -> Oracle:
        fn.code = code  # type: ignore[attr-defined]
        ORACLES[code] = fn
        return fn

    return register


def evaluate(trace: Trace, codes: Optional[Sequence[str]] = None) -> List[Evidence]:
    """All evidence the oracles of ``codes`` (default: every oracle) find in the trace."""
    out: List[Evidence] = []
    for code in sorted(ORACLES):
        if codes is None or code in codes:
            out.extend(ORACLES[code](trace))
    return out


# ---------------------------------------------------------------------------------------------- helpers

def _fmt(x: Optional[float]) -> str:
    if x is None:
        return "None"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def _lr(values: Optional[List[Optional[float]]]) -> str:
    vals = [v for v in (values or []) if v is not None]
    if not vals:
        return "?"
    return _fmt(vals[0]) if len(set(vals)) == 1 else "[" + ", ".join(_fmt(v) for v in vals) + "]"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _group(items: List[Tuple[Tuple, dict]]) -> Dict[Tuple, List[dict]]:
    groups: Dict[Tuple, List[dict]] = {}
    for key, e in items:
        groups.setdefault(key, []).append(e)
    return groups


def _plain_steps(trace: Trace, opt: Optional[int] = None) -> List[dict]:
    """Steps that took their gradients from the loop, not from a closure of their own."""
    return [s for s in trace.steps(opt) if not s.get("closure")]


def _empty(step: dict) -> bool:
    """The step found no gradient at all: none from a backward pass, and none set by hand (``p.grad = g``)."""
    return not step.get("backwards") and not step.get("norm_before")


def _after_steps_by_opt(trace: Trace) -> Dict[int, List[dict]]:
    out: Dict[int, List[dict]] = {}
    for s in trace.steps():
        out.setdefault(s["opt"], []).append(s)
    return out


def _previous_step(steps: List[dict], event: dict) -> Optional[dict]:
    prev = None
    for s in steps:
        if s["seq"] < event["seq"]:
            prev = s
        else:
            break
    return prev


def _next_step(steps: List[dict], event: dict) -> Optional[dict]:
    for s in steps:
        if s["seq"] > event["seq"]:
            return s
    return None


def _consumed(trace: Trace) -> set:
    """Backward passes whose gradients some optimizer step applied (a closure's are read by its step)."""
    out = {b["id"] for b in trace.of("backward") if b.get("closure") is not None}
    for s in trace.steps():
        out.update(s.get("backwards") or [])
    return out


# ---------------------------------------------------------------------------------------------- LL1xx

@oracle("LL101")
def missing_zero_grad(trace: Trace) -> List[Evidence]:
    """A step applies gradients that an earlier step of the same optimizer already applied."""
    hits = []
    for s in trace.steps():
        if s.get("closure") and s.get("calls", 0) > 1:
            continue  # a re-evaluating optimizer: summed closure gradients are LL302's evidence
        if s.get("stale"):
            hits.append(((s["opt"], s["line"]), s))
    out = []
    for (opt, line), group in _group(hits).items():
        s = group[0]
        total = len(trace.steps(opt))
        n = len(s["backwards"])
        out.append(Evidence("LL101", line, (
            f"at step {s['n']} `{s['cls']}.step()` applied gradients summed over {n} backward passes, "
            f"{len(s['stale'])} of them already applied by an earlier step (no zero_grad in between): gradient "
            f"norm {_fmt(s.get('norm_before'))}; {len(group)} of {total} steps re-applied old gradients"
        )))
    return out


def _discards(trace: Trace, opt: int) -> List[Tuple[dict, dict]]:
    """(zero_grad event, its record for ``opt``) for every zero_grad that cleared gradients of ``opt``."""
    out = []
    for z in trace.of("zero_grad"):
        if z.get("closure") is not None:
            continue  # inside a closure: the step re-evaluating it has read the gradients already
        rec = (z.get("opts") or {}).get(str(opt))
        if rec and rec.get("discarded"):
            out.append((z, rec))
    return out


@oracle("LL102")
def zero_grad_before_step(trace: Trace) -> List[Evidence]:
    """zero_grad cleared this iteration's gradients between the backward and the step."""
    backwards = trace.backwards()
    hits = []
    for opt in trace.optimizers():
        steps = trace.steps(opt)
        zeros = _discards(trace, opt)
        for s in _plain_steps(trace, opt):
            if not _empty(s):
                continue
            prev = _previous_step(steps, s)
            for z, rec in zeros:
                if not (prev is None or z["seq"] > prev["seq"]) or z["seq"] > s["seq"]:
                    continue
                applied = set(rec.get("applied") or [])
                lost = [backwards[b] for b in rec["discarded"] if b not in applied and b in backwards]
                lost = [b for b in lost if Trace.same_iteration(b, s) and Trace.same_iteration(z, s)]
                if lost:
                    hits.append(((opt, z["line"]), (z, lost[-1], s)))
                    break
    out = []
    for (opt, zline), group in _group(hits).items():
        z, b, s = group[0]
        total = len(trace.steps(opt))
        out.append(Evidence("LL102", zline, (
            f"zero_grad (line {zline}) cleared the gradients of the backward at line {b['line']} before "
            f"`{s['cls']}.step()` (line {s['line']}): the step found no gradient and moved the parameters by "
            f"{_fmt(s.get('delta'))}; {len(group)} of {total} steps applied nothing"
        ), lines=(s["line"],)))
    return out


@oracle("LL103")
def step_before_backward(trace: Trace) -> List[Evidence]:
    """A step found no gradients, and this iteration's backward ran after it (when a backward reaching the
    optimizer ran before the step in the same iteration, its gradients were cleared: LL102's bug)."""
    hits = []
    backward_events = trace.of("backward")
    for opt in trace.optimizers():
        steps = trace.steps(opt)
        for s in _plain_steps(trace, opt):
            if not _empty(s):
                continue
            if any(b["seq"] < s["seq"] and Trace.same_iteration(b, s) and trace.reaches(b, opt) for b in backward_events):
                continue
            nxt = _next_step(steps, s)
            for b in backward_events:
                if b["seq"] < s["seq"] or not trace.reaches(b, opt):
                    continue
                if nxt is not None and b["seq"] > nxt["seq"]:
                    break
                if Trace.same_iteration(b, s) and (Trace.path(s) or not Trace.path(b)):
                    # (a step outside every loop, before the loop that runs the backward, has no iteration)
                    hits.append(((opt, s["line"]), (s, b)))
                break
    out = []
    for (opt, line), group in _group(hits).items():
        s, b = group[0]
        steps = trace.steps(opt)
        first = "the first step had no gradients" if steps and steps[0]["seq"] == s["seq"] else \
            f"step {s['n']} had no gradients"
        late = sum(1 for x in steps if x["seq"] > s["seq"] and x.get("backwards"))
        tail = f"; {late} later steps applied the previous iteration's gradients" if late else \
            f"; {len(group)} of {len(steps)} steps had none"
        out.append(Evidence("LL103", line, (
            f"`{s['cls']}.step()` (line {line}) ran before this iteration's backward (line {b['line']}): "
            f"{first}{tail}"
        )))
    return out


@oracle("LL104")
def step_without_backward(trace: Trace) -> List[Evidence]:
    """An optimizer stepped and no backward pass ever reached its parameters, in a program that computes
    something to train on (a module's forward with autograd on): a loop that only steps an optimizer to
    trace its learning-rate schedule trains nothing and is not this bug."""
    out = []
    backwards = trace.of("backward")
    if not any(f.get("grad") for f in trace.of("forward")):
        return out
    for opt, o in trace.optimizers().items():
        steps = _plain_steps(trace, opt)
        if not steps or any(trace.reaches(b, opt) for b in backwards) or not all(_empty(s) for s in steps):
            continue
        if any(_graphless(b) or _no_history_error(b) for b in backwards):
            continue  # backward passes ran (or raised), on losses without history: LL112's bug
        if all(s.get("trainable") == 0 for s in steps):
            continue  # every parameter it holds was frozen: LL110's bug
        s = steps[0]
        out.append(Evidence("LL104", s["line"], (
            f"`{o['cls']}.step()` (line {s['line']}) ran {len(steps)} times and 0 backward passes reached its "
            f"{o['params']} parameters ({len(backwards)} backward calls in the run): every step had no gradient"
        )))
    return out


@oracle("LL105")
def backward_without_step(trace: Trace) -> List[Evidence]:
    """Backward passes reached an optimizer's parameters and it never stepped."""
    if trace.end is None or trace.status in ("truncated", "timeout", "failed"):
        return []  # the program was stopped (or left without the recorder's end): a later phase might have stepped it
    out = []
    pending = (trace.end or {}).get("pending_step") or {}
    tried = {e["opt"] for e in trace.of("step_error")} | {pending.get("opt")}
    tried |= {e.get("opt") for e in trace.of("scaler") if e.get("op") in ("step", "unscale_")}  # refused: LL406/LL407
    for opt, o in trace.optimizers().items():
        if trace.steps(opt) or opt in tried:
            continue  # it stepped, or tried to and raised
        hit = [b for b in trace.of("backward") if trace.reaches(b, opt)]
        if not hit:
            continue
        lines = _group([((b["line"],), b) for b in hit])
        line = max(lines, key=lambda k: len(lines[k]))[0]
        out.append(Evidence("LL105", line, (
            f"{len(hit)} backward passes (line {line}) reached the parameters of `{o['cls']}` and it stepped 0 "
            f"times: the gradients were computed and never applied"
        ), lines=tuple(k[0] for k in lines if k[0] != line)))
    return out


@oracle("LL106")
def step_outside_batch_loop(trace: Trace) -> List[Evidence]:
    """One step per epoch, after the data loop ended, on gradients summed over its batches."""
    backwards = trace.backwards()
    hits = []
    for opt in trace.optimizers():
        steps = trace.steps(opt)
        for s in _plain_steps(trace, opt):
            if trace.data_entry(s) is not None:
                continue  # stepped inside a data loop: per batch (micro-batches summed into it are fine)
            fresh = [backwards[b] for b in s.get("backwards") or [] if b not in set(s.get("stale") or [])
                     and b in backwards]
            if len(fresh) < 2:
                continue
            entries = {}
            for b in fresh:
                d = trace.data_entry(b)
                if d is not None:
                    entries.setdefault(tuple(d[1][:3]), set()).add(d[1][3])
            for inst, iters in entries.items():
                if len(iters) < 2 or Trace.inside(s, inst):
                    continue
                if any(Trace.inside(x, inst) for x in steps):
                    continue  # the optimizer also steps inside that loop: a flush of leftover accumulation
                hits.append(((opt, s["line"]), (s, len(iters), trace.iterations(inst))))
                break
    out = []
    for (opt, line), group in _group(hits).items():
        s, k, n = group[0]
        out.append(Evidence("LL106", line, (
            f"`{s['cls']}.step()` (line {line}) ran after the data loop ended, once per {k} batches "
            f"(the loop drew {n}): {len(group)} steps in the run, each on gradients summed over all batches"
        )))
    return out


def _whole_run(trace: Trace, opt: int) -> bool:
    """Whether the optimizer's steps spanned several passes over a data loader (a complete multi-epoch
    run): replacing it afterwards, to refit on new data, loses no state the run needed."""
    steps = trace.steps(opt)
    if not steps:
        return False
    lo, hi = steps[0]["seq"], steps[-1]["seq"]
    return any(lo < e["seq"] < hi for e in trace.of("loader_iter"))


@oracle("LL107")
def optimizer_created_in_loop(trace: Trace) -> List[Evidence]:
    """The same call site built optimizers over the same parameters again after one had stepped."""
    out = []
    groups = _group([((o["line"], o["key"], o["cls"]), o) for o in trace.of("optimizer")])
    for (line, key, cls), group in groups.items():
        if len(group) < 2:
            continue
        resets = []
        for o in group[1:]:
            earlier = [x for x in o.get("same_params") or [] if x.get("steps")]
            if earlier and not _whole_run(trace, earlier[-1]["opt"]):
                resets.append(earlier[-1])
        if not resets:
            continue
        state = max((r.get("state") or 0) for r in resets)
        steps = max(r["steps"] for r in resets)
        out.append(Evidence("LL107", line, (
            f"`{cls}` was constructed {len(group)} times at line {line} over the same {group[0]['params']} "
            f"parameters: {len(resets)} times a new one replaced an optimizer that had stepped (up to "
            f"{_plural(steps, 'step')}, state held for {state} parameters), so its state started over"
        )))
    return out


@oracle("LL108")
def zero_grad_discards_accumulation(trace: Trace) -> List[Evidence]:
    """zero_grad threw away gradients no step consumed, and the loop went on accumulating for a later step."""
    consumed = _consumed(trace)
    backwards = trace.backwards()
    hits = []
    for opt in trace.optimizers():
        steps = trace.steps(opt)
        if not steps:
            continue
        reaching = [b for b in trace.of("backward") if trace.reaches(b, opt)]
        for z, rec in _discards(trace, opt):
            lost = [backwards[b] for b in rec["discarded"] if b not in consumed and b in backwards]
            if not lost:
                continue
            nxt_step = _next_step(steps, z)
            if nxt_step is None:
                continue
            nxt_bw = next((b for b in reaching if b["seq"] > z["seq"]), None)
            if nxt_bw is None or nxt_bw["seq"] > nxt_step["seq"]:
                continue  # a step follows first: that is LL102/LL103's business
            if not any(_same_batch_loop(trace, z, b) for b in lost):
                continue  # cleared at an epoch boundary, not inside the loop that accumulates
            hits.append(((opt, z["line"]), (z, len(lost), nxt_step)))
    out = []
    for (opt, line), group in _group(hits).items():
        total = sum(n for _, n, _ in group)
        z, n, s = group[0]
        out.append(Evidence("LL108", line, (
            f"zero_grad (line {line}) discarded the gradients of {total} backward passes that no step "
            f"consumed ({len(group)} times), while `{s['cls']}.step()` (line {s['line']}) waited for an "
            f"accumulation that never built up"
        )))
    return out


def _same_batch_loop(trace: Trace, a: dict, b: dict) -> bool:
    """Both events ran inside one data loop instance, or (no data loop) in one instance of a's innermost loop."""
    da, db = trace.data_entry(a), trace.data_entry(b)
    if da is not None and db is not None:
        return tuple(da[1][:3]) == tuple(db[1][:3])
    if da is not None or db is not None:
        return False
    pa = Trace.path(a)
    return bool(pa) and Trace.inside(b, tuple(pa[-1][:3]))


@oracle("LL109")
def training_after_data_loop(trace: Trace) -> List[Evidence]:
    """The backward ran after the data loop on its last batch only: either the forward ran in the loop and
    only the last batch's loss was backpropagated, or the forward itself ran after the loop on the batch the
    loop left behind."""
    forwards = {e["seq"]: e for e in trace.of("forward")}
    backward_events = trace.of("backward")
    ends = {(e["loader"], e["epoch"]): e for e in trace.of("loader_end")}
    hits = []
    for b in backward_events:
        feeding = [forwards[f] for f in b.get("forwards") or [] if f in forwards]
        found = None
        for f in feeding:  # the forward used the batch the finished loop left behind
            src = f.get("inputs_from")
            end = ends.get((src[0], src[1])) if src else None
            if end is not None and end["seq"] < f["seq"] and end["batches"] >= 2 and src[2] == end["batches"]:
                found = (b, end["batches"], src[2])
                break
        if found is None:
            found = _loss_of_last_batch(trace, b, feeding, forwards, backward_events)
        if found is not None:
            hits.append(((b["line"],), found))
    out = []
    for (line,), group in _group(hits).items():
        b, n, k = group[0]
        out.append(Evidence("LL109", line, (
            f"backward (line {line}) ran after the data loop, {len(group)} times in the run: each time the loop "
            f"drew {n} batches and the loss came from batch {k} alone, so {n - 1} batches per pass never trained"
        )))
    return out


def _loss_of_last_batch(trace: Trace, b: dict, feeding: List[dict], forwards: Dict[int, dict],
                        backward_events: List[dict]) -> Optional[tuple]:
    """The forward ran inside a data loop that ended before the backward, in one iteration only, while
    every iteration ran a grad-enabled forward and none ran a backward."""
    insts: Dict[tuple, set] = {}
    for f in feeding:
        d = trace.data_entry(f)
        if d is not None:
            insts.setdefault(tuple(d[1][:3]), set()).add(d[1][3])
    for inst, iters in insts.items():
        if Trace.inside(b, inst) or len(iters) != 1:
            continue
        n = trace.iterations(inst)
        grad_iters = set()
        for f in forwards.values():
            d = trace.data_entry(f)
            if f.get("grad") and d is not None and tuple(d[1][:3]) == inst:
                grad_iters.add(d[1][3])
        if n < 2 or len(grad_iters) < 2 or any(Trace.inside(x, inst) for x in backward_events):
            continue
        return (b, n, max(iters) + 1)
    return None


# ---------------------------------------------------------------------------------------------- LL2xx

EPOCH_SCHEDULERS = {
    "StepLR": "step_size", "MultiStepLR": "milestones", "ExponentialLR": None, "MultiplicativeLR": None,
    "CosineAnnealingLR": "T_max", "LinearLR": "total_iters", "ConstantLR": "total_iters",
    "PolynomialLR": "total_iters", "CosineAnnealingWarmRestarts": "T_0",
}
STEP_SCHEDULERS = {"OneCycleLR": "total_steps", "CyclicLR": "total_size"}


def _horizon(sched: dict) -> Tuple[Optional[str], Optional[float]]:
    args = sched.get("args") or {}
    name = EPOCH_SCHEDULERS.get(sched["cls"]) or STEP_SCHEDULERS.get(sched["cls"])
    value = args.get(name) if name else None
    if isinstance(value, list):
        value = max(value) if value else None
    return name, value


def _sched_steps(trace: Trace, sched: int) -> List[dict]:
    return [e for e in trace.of("sched_step") if e["sched"] == sched and not e.get("error")]


def _lr_changes(events: List[dict]) -> int:
    return sum(1 for e in events if e.get("lr_before") != e.get("lr_after"))


def _epochs(trace: Trace, opt: Optional[int]) -> List[Tuple[tuple, List[tuple]]]:
    """The data loop instances in which ``opt`` stepped, each with its enclosing loop path (the epoch)."""
    seen: Dict[tuple, List[tuple]] = {}
    for s in trace.steps(opt):
        d = trace.data_entry(s)
        if d is None:
            continue
        i, entry = d
        seen.setdefault(tuple(entry[:3]), Trace.path(s)[:i])
    return list(seen.items())


@oracle("LL201")
def epoch_scheduler_stepped_per_batch(trace: Trace) -> List[Evidence]:
    """An epoch-sized schedule stepped in every batch: its whole horizon passes within an epoch."""
    out = []
    for sid, sc in trace.schedulers().items():
        if sc["cls"] not in EPOCH_SCHEDULERS:
            continue
        events = [e for e in _sched_steps(trace, sid) if not e.get("args")]  # step(epoch) sets the unit itself
        name, horizon = _horizon(sc)
        for inst, _prefix in _epochs(trace, sc.get("opt")):
            inside = [e for e in events if Trace.inside(e, inst)]
            iters = trace.iterations(inst)
            per_iter = {trace.data_entry(e)[1][3] for e in inside if trace.data_entry(e)}
            if iters < 2 or len(per_iter) < iters:
                continue  # not stepped in every batch (gated by an update condition, or not in the loop)
            batches = trace.loader_len(inst) or iters
            if horizon is not None and horizon >= batches:
                continue  # sized in steps, or too long to tell from one epoch
            changes = _lr_changes(inside)
            if not changes:
                continue
            unit = f"{name}={horizon:g}, " if horizon is not None else ""
            out.append(Evidence("LL201", inside[0]["line"], (
                f"`{sc['cls']}` ({unit}sized in epochs) stepped in every batch: the learning rate changed "
                f"{changes} times within one epoch of {batches} batches ({_lr(inside[0]['lr_before'])} -> "
                f"{_lr(inside[-1]['lr_after'])})"
            )))
            break
    return out


def _sized_in_steps(sc: dict, batches: int) -> bool:
    """The schedule's horizon counts optimizer steps, judged by the run's own numbers: a per-step scheduler
    (OneCycleLR, CyclicLR), or a horizon (``T_max``, ``total_iters``, the last milestone, ...) that is a whole
    number of epochs of ``batches`` (``T_max=epochs * len(loader)``), never by the words of the source."""
    if sc["cls"] in STEP_SCHEDULERS:
        return True
    _name, horizon = _horizon(sc)
    if not isinstance(horizon, (int, float)) or isinstance(horizon, bool) or horizon <= 0 or batches < 2:
        return False
    return float(horizon).is_integer() and int(horizon) % batches == 0


@oracle("LL202")
def batch_scheduler_stepped_per_epoch(trace: Trace) -> List[Evidence]:
    """A schedule sized in steps stepped once per epoch: it advances len(loader) times too slowly."""
    out = []
    for sid, sc in trace.schedulers().items():
        events = _sched_steps(trace, sid)
        name, horizon = _horizon(sc)
        per_epoch = []
        for inst, prefix in _epochs(trace, sc.get("opt")):
            iters = trace.iterations(inst)
            if iters < 2:
                continue
            outside = [e for e in events if not Trace.inside(e, inst) and Trace.within(e, prefix)
                       and e["seq"] > min(x["seq"] for x in trace.steps(sc.get("opt")) if Trace.inside(x, inst))]
            inside = [e for e in events if Trace.inside(e, inst)]
            if len(outside) == 1 and not inside and _sized_in_steps(sc, trace.loader_len(inst) or iters):
                per_epoch.append((outside[0], trace.loader_len(inst) or iters))
        if per_epoch:
            e, batches = per_epoch[0]
            h = f"{name}={horizon:g}" if horizon is not None else "sized in steps"
            out.append(Evidence("LL202", e["line"], (
                f"`{sc['cls']}` ({h}) stepped once per epoch of {batches} batches: after {len(per_epoch)} "
                f"epochs it had advanced {len(per_epoch)} of its steps instead of {len(per_epoch) * batches} "
                f"(lr {_lr(e['lr_after'])})"
            )))
    return out


@oracle("LL203")
def scheduler_step_before_optimizer_step(trace: Trace) -> List[Evidence]:
    """scheduler.step ran before the optimizer's first step of the same loop iteration (or of the run)."""
    hits = []
    for sid, sc in trace.schedulers().items():
        opt = sc.get("opt")
        steps = trace.steps(opt)
        if not steps:
            continue
        for e in _sched_steps(trace, sid):
            path = Trace.path(e)
            for depth in range(len(path), -1, -1):
                prefix = path[:depth]
                mine = [s for s in steps if Trace.within(s, prefix)]
                if mine:
                    if e["seq"] < mine[0]["seq"]:
                        hits.append(((sid, e["line"]), (e, mine[0], depth)))
                    break
    out = []
    for (sid, line), group in _group(hits).items():
        e, s, depth = group[0]
        sc = trace.schedulers()[sid]
        where = "of the run" if depth == 0 else "of its loop iteration"
        out.append(Evidence("LL203", line, (
            f"`{sc['cls']}.step()` (line {line}) ran before the first `{s['cls']}.step()` {where} (line "
            f"{s['line']}), {len(group)} times: the learning rate moved from {_lr(e['lr_before'])} to "
            f"{_lr(e['lr_after'])} before the optimizer used it"
        )))
    return out


@oracle("LL204")
def plateau_step_without_metric(trace: Trace) -> List[Evidence]:
    out = []
    for e in trace.of("sched_step"):
        err = e.get("error") or {}
        if e["cls"] == "ReduceLROnPlateau" and err.get("type") == "TypeError" and "metrics" in err.get("message", ""):
            out.append(Evidence("LL204", e["line"], (
                f"`ReduceLROnPlateau.step()` (line {e['line']}) raised TypeError: {err['message']}"
            ), explains_crash=True))
            break
    return out


@oracle("LL205")
def scheduler_stepped_twice(trace: Trace) -> List[Evidence]:
    """One scheduler stepped both inside the data loop and once more per epoch (or twice per update)."""
    out = []
    for sid, sc in trace.schedulers().items():
        events = _sched_steps(trace, sid)
        found = None
        for inst, prefix in _epochs(trace, sc.get("opt")):
            inside = [e for e in events if Trace.inside(e, inst)]
            outside = [e for e in events if not Trace.inside(e, inst) and Trace.within(e, prefix)]
            if inside and outside and {e["line"] for e in inside}.isdisjoint({e["line"] for e in outside}):
                found = (outside[0], inside[0], len(inside), len(outside))
                break
        if found is None:
            steps = trace.steps(sc.get("opt"))
            for a, b in zip(events, events[1:]):
                if a["line"] != b["line"] and not any(a["seq"] < s["seq"] < b["seq"] for s in steps) \
                        and Trace.same_iteration(a, b) and steps and a["seq"] > steps[0]["seq"]:
                    found = (b, a, 1, 1)
                    break
            if found is not None:
                e, other, _, _ = found
                out.append(Evidence("LL205", e["line"], (
                    f"`{sc['cls']}.step()` ran at line {other['line']} and again at line {e['line']} with no "
                    f"optimizer step between them: the schedule advances twice per update"
                ), lines=(other["line"],)))
                continue
        if found is not None:
            e, other, n_in, n_out = found
            out.append(Evidence("LL205", e["line"], (
                f"`{sc['cls']}.step()` ran {n_in} times in the batch loop (line {other['line']}) and {n_out} more "
                f"per epoch (line {e['line']}): the schedule advances {n_in + n_out} times per epoch"
            ), lines=(other["line"],)))
    return out


# ---------------------------------------------------------------------------------------------- LL3xx

def _closure_groups(trace: Trace) -> Dict[Tuple, List[dict]]:
    return _group([((c["opt"], c.get("def_line")), c) for c in trace.of("closure_call")])


def _closure_line(trace: Trace, calls: List[dict]) -> Optional[int]:
    return calls[0].get("def_line") or calls[0]["line"]


@oracle("LL301")
def closure_missing_return(trace: Trace) -> List[Evidence]:
    """The closure returned None (and a step that converts the loss raised TypeError on it)."""
    out = []
    errors = [e for e in trace.of("step_error") if (e.get("error") or {}).get("type") == "TypeError"]
    for (opt, _), calls in _closure_groups(trace).items():
        none = [c for c in calls if c.get("returned") == "NoneType"]
        if not none:
            continue
        line = _closure_line(trace, calls)
        cls = trace.opt_name(opt)
        raised = next((e for e in errors if e["opt"] == opt and e["seq"] > none[0]["seq"]), None)
        if raised is not None:
            text = (f"the closure (line {line}) returned None and `{cls}.step()` (line {raised['line']}) raised "
                    f"TypeError converting it: {raised['error']['message']}")
        else:
            text = f"the closure (line {line}) returned None on {len(none)} of {len(calls)} calls by `{cls}.step()`"
        out.append(Evidence("LL301", line, text, explains_crash=raised is not None))
    return out


@oracle("LL302")
def closure_missing_zero_grad(trace: Trace) -> List[Evidence]:
    out = []
    for (opt, _), calls in _closure_groups(trace).items():
        summed = [c for c in calls if c.get("summed") and not c.get("zero_grads")]
        if not summed:
            continue
        per_step = _group([((c["step"],), c) for c in calls])
        k = max(len(v) for v in per_step.values())
        line = _closure_line(trace, calls)
        c = summed[-1]
        out.append(Evidence("LL302", line, (
            f"`{trace.opt_name(opt)}` re-evaluated the closure (line {line}) up to {k} times per step with no "
            f"zero_grad: {len(summed)} evaluations added their gradients to the previous ones (gradient norm "
            f"{_fmt(c.get('norm'))} at step {c['step']}, evaluation {c['call']})"
        )))
    return out


@oracle("LL303")
def closure_missing_backward(trace: Trace) -> List[Evidence]:
    out = []
    for (opt, _), calls in _closure_groups(trace).items():
        if any(c.get("backwards") for c in calls):
            continue
        line = _closure_line(trace, calls)
        out.append(Evidence("LL303", line, (
            f"`{trace.opt_name(opt)}.step()` called the closure (line {line}) {len(calls)} times and it ran 0 "
            f"backward passes: the optimizer never saw a fresh gradient"
        )))
    return out


@oracle("LL304")
def lbfgs_step_without_closure(trace: Trace) -> List[Evidence]:
    """``LBFGS.step()`` without a closure raised TypeError (caught by the program or not)."""
    out = []
    for e in trace.of("step_error"):
        err = e.get("error") or {}
        if e["cls"] == "LBFGS" and not e.get("closure") and err.get("type") == "TypeError":
            out.append(Evidence("LL304", e["line"], (
                f"`LBFGS.step()` (line {e['line']}) was called without a closure and raised TypeError: "
                f"{err.get('message')}"
            ), explains_crash=True))
            break
    return out


# ---------------------------------------------------------------------------------- mixed precision

def _last_scale_before(trace: Trace, event: dict) -> Optional[dict]:
    """The latest ``GradScaler.scale`` (factor > 1) before ``event``."""
    found = None
    for e in trace.of("scale"):
        if e["seq"] < event["seq"] and e.get("factor", 1.0) > 1.0:
            found = e
    return found


def _scaled_backward(trace: Trace, backward: dict) -> bool:
    """The backward pass ran right after a ``GradScaler.scale`` (factor > 1): it is the scaled loss's."""
    last = None
    for e in trace.events:
        if e["seq"] >= backward["seq"]:
            break
        if e["kind"] in ("scale", "backward"):
            last = e
    return last is not None and last["kind"] == "scale" and last.get("factor", 1.0) > 1.0


@oracle("LL404")
def scaled_loss_unscaled_step(trace: Trace) -> List[Evidence]:
    """An optimizer step applied gradients of a scaled loss: no ``scaler.step``/``unscale_`` for that
    optimizer since the scaled backward that reached it."""
    hits = []
    by_opt = _after_steps_by_opt(trace)
    for opt, steps in by_opt.items():
        for s in steps:
            if s.get("closure"):
                continue
            prev = _previous_step(steps, s)
            scale = _last_scale_before(trace, s)
            if scale is None or (prev is not None and scale["seq"] < prev["seq"]):
                continue
            between = trace.between(scale, s, ("scaler", "backward"))
            if any(e["kind"] == "scaler" and e.get("opt") == opt and e.get("op") in ("step", "unscale_") for e in between):
                continue
            fed = [b for b in trace.between(prev, s, ("backward",)) if trace.reaches(b, opt)]
            if not fed or not all(_scaled_backward(trace, b) for b in fed):
                continue
            hits.append(((opt, s["line"]), (s, scale)))
    out = []
    for (opt, line), group in _group(hits).items():
        s, scale = group[0]
        out.append(Evidence("LL404", line, (
            f"at step {s['n']} `{s['cls']}.step()` applied gradients of a loss scaled by {_fmt(scale['factor'])} "
            f"(gradient norm {_fmt(s.get('norm_before'))}) with no `scaler.step`/`unscale_`: "
            f"{len(group)} of {len(by_opt[opt])} steps used scaled gradients"
        )))
    return out


@oracle("LL405")
def clip_before_unscale(trace: Trace) -> List[Evidence]:
    """A clip measured gradients of a scaled loss (no ``unscale_`` since the scale), and a ``scaler.step``
    then consumed them."""
    hits = []
    scaler_events = trace.of("scaler")
    for c in trace.of("clip"):
        scale = _last_scale_before(trace, c)
        if scale is None:
            continue
        between = trace.between(scale, c, ("scaler", "backward", "step"))
        if any(e["kind"] == "step" or (e["kind"] == "scaler" and e.get("op") in ("unscale_", "step")) for e in between):
            continue
        if not any(e["kind"] == "backward" for e in between):
            continue
        nxt = next((e for e in scaler_events if e["seq"] > c["seq"] and e.get("op") in ("step", "unscale_")), None)
        if nxt is None or nxt.get("op") != "step":
            continue
        if any(e["seq"] < nxt["seq"] for e in trace.of("scale") if e["seq"] > c["seq"]):
            continue
        hits.append((c["line"], (c, scale)))
    out = []
    for (line,), group in _group([((ln,), v) for ln, v in hits]).items():
        c, scale = group[0]
        norms = [v for v in (c.get("before") or {}).values() if v is not None]
        norm = max(norms) if norms else None
        true = norm / scale["factor"] if norm is not None else None
        out.append(Evidence("LL405", line, (
            f"`{c['op']}` measured gradients still scaled by {_fmt(scale['factor'])}: norm {_fmt(norm)} "
            f"(unscaled {_fmt(true)}); the threshold was effectively divided by the scale "
            f"({len(group)} clips before `scaler.unscale_`)"
        )))
    return out


# ---------------------------------------------------------------------------------- running totals

def _augassign_lines(program: str, func: str, first_line: int, name: str) -> List[int]:
    """Lines of ``name += ...`` in the function of the program that starts at ``first_line``."""
    try:
        with open(program, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    scope: Optional[ast.AST] = tree if func == "<module>" else None
    if scope is None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func and first_line in (
                    [node.lineno] + [d.lineno for d in node.decorator_list]):
                scope = node
                break
    if scope is None:
        return []
    return sorted(node.lineno for node in _own_nodes(scope) if isinstance(node, ast.AugAssign)
                  and isinstance(node.op, ast.Add) and isinstance(node.target, ast.Name) and node.target.id == name)


def _own_nodes(scope: ast.AST):
    """The nodes of a function (or module) body, not those of the functions and classes it defines."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


@oracle("LL401")
def loss_accumulates_graph(trace: Trace) -> List[Evidence]:
    """A local running total (``total += ...``) holds an autograd history that grows from one optimizer
    step to the next: every iteration's graph is kept alive."""
    series: Dict[Tuple[str, int, str], List[int]] = {}
    for e in trace.of("graphs"):
        for func, first, name, size in e.get("locals") or []:
            series.setdefault((func, first, name), []).append(size)
    out = []
    for (func, first, name), sizes in sorted(series.items()):
        growth = sum(1 for a, b in zip(sizes, sizes[1:]) if b > a)
        if growth < 2 or max(sizes) < 2 * min(sizes):
            continue
        lines = _augassign_lines(trace.program, func, first, name)
        if not lines:
            continue  # a history that grows some other way (a recurrent state never detached)
        out.append(Evidence("LL401", lines[0], (
            f"`{name}` held an autograd history of {min(sizes)} nodes after one step and {max(sizes)} later "
            f"({growth} of {len(sizes) - 1} steps made it grow): the graphs of every iteration stay alive"
        ), lines=tuple(lines[1:])))
    return out


# ---------------------------------------------------------------------------------- train/eval mode

@oracle("LL402")
def eval_mode_leak(trace: Trace) -> List[Evidence]:
    """An optimizer that stepped a module in train mode later steps it in eval mode, after an ``eval()``
    (or ``train(False)``) call that nothing undid."""
    hits = []
    modes = trace.of("mode")
    for opt, steps in _after_steps_by_opt(trace).items():
        trained = False
        for s in steps:
            if s.get("training") is True:
                trained = True
                continue
            if s.get("training") is not False:
                continue
            last = None
            for m in modes:
                if m["seq"] > s["seq"]:
                    break
                last = m
            if last is None or last.get("training") is not False or last.get("line") is None:
                continue
            if not trained and not any(m["seq"] < last["seq"] and m.get("training") and m.get("module") == last.get("module")
                                       for m in modes):
                continue  # never meant to train in train mode
            hits.append(((opt, last["line"]), s))
    out = []
    for (opt, line), group in _group(hits).items():
        s = group[0]
        out.append(Evidence("LL402", line, (
            f"`{s['cls']}.step()` ran {len(group)} times on a module in eval mode (first at step {s['n']}) after "
            f"the `eval()` at line {line}, although the program trains it in train mode"
        )))
    return out


# ---------------------------------------------------------------------------------- clipping placement

@oracle("LL403")
def clip_outside_backward_step(trace: Trace) -> List[Evidence]:
    """A clip whose gradients no step ever applied: every time it ran, the next step of every optimizer
    that stepped after it consumed only backward passes that ran after the clip."""
    backwards = trace.backwards()
    by_opt = {opt: _plain_steps(trace, opt) for opt in trace.optimizers()}
    hits, useful = [], set()
    for c in trace.of("clip"):
        nexts = [s for s in (_next_step(steps, c) for steps in by_opt.values()) if s is not None]
        if not nexts:
            continue
        if any(any(backwards.get(b, {}).get("seq", c["seq"]) < c["seq"] for b in s.get("backwards") or []) for s in nexts):
            useful.add(c["line"])
            continue
        if any(s.get("closure") for s in nexts):
            continue
        hits.append((c["line"], (c, nexts)))
    out = []
    for (line,), group in _group([((ln,), v) for ln, v in hits if ln not in useful]).items():
        c, nexts = group[0]
        out.append(Evidence("LL403", line, (
            f"`{c['op']}` ran {len(group)} times on gradients no step applied: the next "
            f"`{nexts[0]['cls']}.step()` (step {nexts[0]['n']}) used only backward passes that ran after the clip"
        )))
    out.extend(_clips_of_partial_sums(trace, by_opt))
    out.extend(_clips_of_no_gradient(trace))
    return out


def _clips_of_no_gradient(trace: Trace) -> List[Evidence]:
    """A clip that raised while no parameter an optimizer holds had a gradient (cleared after the step, no
    backward since): there was nothing for any step to apply, and this torch refuses to clip nothing."""
    hits = [((c["line"],), c) for c in trace.of("clip")
            if c.get("raised") and c.get("before") and all(v is None for v in c["before"].values())]
    out = []
    for (line,), group in _group(hits).items():
        c = group[0]
        out.append(Evidence("LL403", line, (
            f"`{c['op']}` (line {line}) ran when no parameter had a gradient (cleared since the last backward) "
            f"and raised {c['raised']}"
        ), explains_crash=True))
    return out


def _clips_of_partial_sums(trace: Trace, by_opt: Dict[int, List[dict]]) -> List[Evidence]:
    """A clip between backward passes whose gradients one step then applied together: the step applied the
    clipped partial sum plus unclipped gradients (gradient accumulation clipped per micro-batch)."""
    backwards = trace.of("backward")
    hits = []
    for c in trace.of("clip"):
        for opt, steps in by_opt.items():
            s = _next_step(steps, c)
            if s is None:
                continue
            used = set(s.get("backwards") or [])
            later = [b for b in backwards if c["seq"] < b["seq"] < s["seq"] and b["id"] in used]
            clipped = [b for b in backwards if b["seq"] < c["seq"] and b["id"] in used]
            if later and clipped:
                hits.append(((c["line"],), (c, s, later)))
                break
    out = []
    for (line,), group in _group(hits).items():
        c, s, later = group[0]
        runs = len([x for x in trace.of("clip") if x["line"] == line])
        out.append(Evidence("LL403", line, (
            f"`{c['op']}` (line {line}) clipped a partial sum {_plural(len(group), 'time')} of {runs}: "
            f"{len(later)} backward pass{'es' if len(later) > 1 else ''} (line {later[0]['line']}) added unclipped gradients before "
            f"`{s['cls']}.step()` (step {s['n']}) applied them"
        )))
    return out


# ---------------------------------------------------------------------------------- autograd graphs

def _forcing_lines(program: str, lines: Sequence[int]) -> List[int]:
    """Lines that force ``requires_grad`` (``x.requires_grad = True``, ``x.requires_grad_()``,
    ``torch.tensor(..., requires_grad=True)``) in the innermost function of the program around each of
    ``lines`` (the backward's line and the program's lines on the stack that called it: a helper's caller
    may compute and force the loss it hands over)."""
    try:
        with open(program, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for line in dict.fromkeys(lines):
        found += _forcing_lines_around(tree, line)
    return sorted(set(found))


def _forcing_lines_around(tree: ast.AST, line: int) -> List[int]:
    scope: ast.AST = tree
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= (node.end_lineno or 0) \
                and node.lineno > getattr(scope, "lineno", 0):
            scope = node
    found = []
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "requires_grad" for t in node.targets):
            found.append(node.lineno)
        elif isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "requires_grad_")
                or any(k.arg == "requires_grad" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in node.keywords)):
            found.append(node.lineno)
    return sorted(set(found))


def _graphless(backward: dict) -> bool:
    """A backward pass that ran on a tensor with no module in its graph and reached no parameter."""
    return not (backward.get("error") or backward.get("reached") or backward.get("opts") or backward.get("forwards")
                or backward.get("closure"))


def _no_history_error(backward: dict) -> Optional[str]:
    """The message of the RuntimeError a backward pass raised because its tensor has no autograd history."""
    err = backward.get("error") or {}
    message = err.get("message") or ""
    if err.get("type") == "RuntimeError" and "does not require grad" in message:
        return message.split("\n")[0]
    return None


@oracle("LL112")
def loss_without_graph(trace: Trace) -> List[Evidence]:
    """A backward pass of a tensor without autograd history (no module's forward in its graph) reached no
    parameter at all while optimizers were training: no optimizer's ``.grad`` changed; or it raised the
    RuntimeError of a tensor without history (*element 0 of tensors does not require grad*)."""
    out = []
    params = sum(o["params"] for o in trace.optimizers().values())
    raised = [b for b in trace.of("backward") if _no_history_error(b)
              and any(o["seq"] < b["seq"] for o in trace.of("optimizer"))]
    for (line,), group in _group([((b["line"],), b) for b in raised]).items():
        out.append(Evidence("LL112", line, (
            f"the backward at line {line} raised RuntimeError ({_no_history_error(group[0])}): its loss had no "
            f"autograd history, so none of the {params} parameters the optimizers hold got a gradient"
        ), explains_crash=True))
    hits = []
    for b in trace.of("backward"):
        if not _graphless(b):
            continue
        opts = [o for o in trace.of("optimizer") if o["seq"] < b["seq"]]
        if not opts:
            continue
        hits.append((b["line"], b))
    for (line,), group in _group([((ln,), v) for ln, v in hits]).items():
        steps = [s for s in trace.steps() if s["seq"] > group[0]["seq"]]
        moved = max((s.get("delta") or 0.0 for s in steps), default=None)
        forcing = _forcing_lines(trace.program, [line, *reversed(group[0].get("stack") or [])])
        out.append(Evidence("LL112", line, (
            f"the backward at line {line} ran {_plural(len(group), 'time')} and reached 0 of the {params} "
            f"parameters the optimizers hold (its loss had no module in its graph): the {_plural(len(steps), 'step')} "
            f"after it moved the parameters by at most {_fmt(moved)}"
        ), lines=tuple(forcing)))
    return out


# ---------------------------------------------------------------------------------- GradScaler bookkeeping

def _scaler_repeats(trace: Trace) -> List[Tuple[dict, dict]]:
    """(earlier, later) ``GradScaler`` calls on one optimizer with no ``update()`` of that scaler between
    them, where the later one is refused: ``unscale_`` after ``unscale_``, ``unscale_``/``step`` after ``step``."""
    last: Dict[Tuple[object, object], dict] = {}
    out = []
    for e in trace.of("scaler"):
        if e.get("op") == "update":
            last = {k: v for k, v in last.items() if k[0] != e.get("scaler")}
            continue
        if e.get("opt") is None:
            continue
        key = (e.get("scaler"), e["opt"])
        prev = last.get(key)
        if prev is not None and (prev["op"] == "step" or e["op"] == "unscale_"):
            out.append((prev, e))
        last[key] = e
    return out


def _scaler_calls(trace: Trace, op: str) -> int:
    return sum(1 for e in trace.of("scaler") if e.get("op") == op)


def _scaler_error(trace: Trace, text: str) -> bool:
    err = trace.error or {}
    return err.get("type") == "RuntimeError" and text in (err.get("message") or "")


@oracle("LL406")
def unscale_per_micro_batch(trace: Trace) -> List[Evidence]:
    """``scaler.unscale_(opt)`` ran twice with neither ``scaler.step(opt)`` nor ``update()`` in between."""
    hits = [((b["line"],), (a, b)) for a, b in _scaler_repeats(trace) if a["op"] == b["op"] == "unscale_"]
    out = []
    for (line,), group in _group(hits).items():
        a, b = group[0]
        unscales, updates = _scaler_calls(trace, "unscale_"), _scaler_calls(trace, "update")
        out.append(Evidence("LL406", line, (
            f"`scaler.unscale_` (line {line}) ran again on `{trace.opt_name(b['opt'])}` after the one at line "
            f"{a['line']} with no `update()` in between ({_plural(len(group), 'time')}; {unscales} unscale_ and "
            f"{updates} update calls in the run): the second raises RuntimeError"
        ), lines=(a["line"],), explains_crash=_scaler_error(trace, "unscale_() has already been called")))
    return out


@oracle("LL407")
def scaler_update_missing(trace: Trace) -> List[Evidence]:
    """``scaler.step(opt)`` was followed by another ``step``/``unscale_`` of that optimizer with no
    ``update()`` of the scaler in between."""
    hits = [((a["line"],), (a, b)) for a, b in _scaler_repeats(trace) if a["op"] == "step"]
    out = []
    for (line,), group in _group(hits).items():
        a, b = group[0]
        steps, updates = _scaler_calls(trace, "step"), _scaler_calls(trace, "update")
        out.append(Evidence("LL407", line, (
            f"`scaler.step` (line {line}) on `{trace.opt_name(a['opt'])}` was followed by `scaler.{b['op']}` "
            f"(line {b['line']}) with no `update()` in between ({_plural(len(group), 'time')}; {steps} scaler "
            f"steps and {updates} updates in the run): the second call raises RuntimeError"
        ), lines=(b["line"],) if b["op"] == "unscale_" else (),
            explains_crash=_scaler_error(trace, "since the last update") or _scaler_error(trace, "after step()")))
    return out


# ---------------------------------------------------------------------------------- schedules restarted

_SCHEDULE_HORIZONS = ("step_size", "T_max", "total_steps", "total_iters", "T_0")


def _schedule_horizon(args: dict) -> Optional[float]:
    for name in _SCHEDULE_HORIZONS:
        if isinstance(args.get(name), (int, float)):
            return args[name]
    milestones = args.get("milestones")
    if isinstance(milestones, list) and milestones:
        return max(milestones)
    return None


@oracle("LL206")
def scheduler_created_in_loop(trace: Trace) -> List[Evidence]:
    """One call site built schedulers over the same optimizer again after the previous one had stepped,
    and no scheduler got through its horizon: the schedule restarted every time. Not when every new
    scheduler's course (the learning rates it sets over the coming steps) is the one the scheduler it
    replaced would have set had it been kept, as the recorder measured on copies (``ExponentialLR``
    decays from the current rate: rebuilding it restarts nothing)."""
    out = []
    sched_steps = trace.of("sched_step")
    groups = _group([((s["line"], s.get("opt"), s["cls"]), s) for s in trace.of("scheduler") if s.get("opt") is not None])
    for (line, opt, cls), group in groups.items():
        if len(group) < 2:
            continue
        counts = [sum(1 for e in sched_steps if e["sched"] == s["sched"] and not e.get("error")) for s in group]
        if not all(counts[:-1]):
            continue  # built again before the previous one had stepped: nothing was restarted
        courses = [s.get("course") for s in group[1:]]
        if all(c is not None and c.get("same") for c in courses):
            continue  # every new scheduler continued the course of the one it replaced
        horizon = _schedule_horizon(group[0].get("args") or {})
        if horizon is not None and max(counts) >= horizon:
            continue
        lrs = [v for e in sched_steps if e["sched"] in {s["sched"] for s in group} for v in (e.get("lr_after") or [])
               if v is not None]
        span = f"; the learning rate only took values in [{_fmt(min(lrs))}, {_fmt(max(lrs))}]" if lrs else ""
        parted = next((c for c in courses if c is not None and not c.get("same")), None)
        if parted is not None:
            span += (f"; {_plural(parted['at'], 'step')} after a rebuild, the scheduler kept would have set "
                     f"{_fmt(parted['single'])} and the new one sets {_fmt(parted['rebuilt'])}")
        of = f" of a {_fmt(horizon)}-step horizon" if horizon is not None else ""
        out.append(Evidence("LL206", line, (
            f"`{cls}` was constructed {len(group)} times at line {line} over the same `{trace.opt_name(opt)}`, "
            f"each stepped at most {_plural(max(counts), 'time')}{of} before the next replaced it{span}"
        )))
    return out


# ---------------------------------------------------------------------------------- parameter sets

def _freezing_lines(program: str) -> List[int]:
    """Lines of the program that set ``requires_grad`` to False (``p.requires_grad = False``,
    ``requires_grad_(False)``)."""
    try:
        with open(program, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "requires_grad"
                                                for t in node.targets) \
                and isinstance(node.value, ast.Constant) and node.value.value is False:
            found.add(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "requires_grad_" \
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value is False:
            found.add(node.lineno)
    return sorted(found)


@oracle("LL110")
def optimizer_over_frozen_parameters(trace: Trace) -> List[Evidence]:
    """An optimizer stepped, and at every step none of its parameters required grad and none changed."""
    out = []
    for opt, o in trace.optimizers().items():
        steps = _plain_steps(trace, opt)
        if not steps or any(s.get("trainable", 1) or s.get("delta") for s in steps) or not o.get("params"):
            continue
        out.append(Evidence("LL110", o.get("line"), (
            f"`{o['cls']}` (built at line {o.get('line')}) stepped {_plural(len(steps), 'time')}; at every step all "
            f"{o['params']} of its parameters had requires_grad=False and none changed (delta 0)"
        ), lines=tuple(_freezing_lines(trace.program))))
    return out


@oracle("LL111")
def optimizer_misses_replaced_module(trace: Trace) -> List[Evidence]:
    """Parameters created after an optimizer was built received gradients that no optimizer holds (so no
    step changed them) while optimizers stepped."""
    hits: Dict[Tuple, List[dict]] = {}
    for b in trace.of("backward"):
        orphans = b.get("orphans")
        if not orphans:
            continue
        for stack in orphans.get("stacks") or []:
            hits.setdefault(tuple(stack), []).append(b)
    out = []
    steps = trace.steps()
    for stack, group in sorted(hits.items()):
        if not stack:
            continue
        later = [s for s in steps if s["seq"] > group[0]["seq"]]
        if not later:
            continue
        n = max(b["orphans"]["count"] for b in group)
        out.append(Evidence("LL111", stack[-1], (
            f"{_plural(n, 'parameter')} created at line {stack[-1]} after the optimizer was built received "
            f"gradients in {len(group)} backward pass{'es' if len(group) > 1 else ''} and no optimizer holds them: "
            f"{_plural(len(later), 'step')} left them unchanged"
        ), lines=tuple(stack[:-1])))
    return out
