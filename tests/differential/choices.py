"""The choice space of the differential corpus: dimensions, injected bugs, which combinations make sense, and
the seeded sampler that picks one combination per program.

A program is one value per dimension plus an injected bug (or ``none``). ``choose(seed, index)`` is a pure
function: it uses no global state and no hash of Python objects, so the same (seed, index) always gives the
same choices. Values are *stratified*: for each dimension, consecutive indices walk through a fresh shuffle of
its values, so every value occurs within a few rounds of the dimension's size (skipping values the bug or
earlier choices rule out).
"""
from __future__ import annotations

import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

NONE = "none"
NA = "-"  # the dimension does not apply to this program (no scheduler, no scaler, ...)

RULES: Tuple[str, ...] = (
    "LL101", "LL102", "LL103", "LL104", "LL105", "LL106", "LL107", "LL108", "LL109", "LL110", "LL111", "LL112",
    "LL201", "LL202", "LL203", "LL204", "LL205", "LL206",
    "LL301", "LL302", "LL303", "LL304",
    "LL401", "LL402", "LL403", "LL404", "LL405", "LL406", "LL407",
)
# One slot per rule plus correct programs: about a quarter of the corpus has no bug.
BUG_SLOTS: Tuple[str, ...] = RULES + (NONE,) * 8

SOURCES = ("here", "param", "default", "attr", "tuple", "dict", "list", "factory", "sibling")
EPOCH_SCHEDULERS = ("steplr", "multistep", "exponential", "cosine_epochs")
STEP_SCHEDULERS = ("onecycle", "linear_warmup", "cosine_steps", "lambda_warmup")
ACCUMULATION = ("modulo", "phase", "cycle_phase", "flag")
SPELLED_ZERO = ("optimizer", "set_to_none", "model", "grad_none")  # zero_grad spellings (at the top of the body)
FUNCTION_STRUCTURES = ("inline", "step_fn", "epoch_fn", "update_fn", "nested", "factory_fn", "partial", "lambda")
CLASS_STRUCTURES = ("method", "base_class")
MODULE_STRUCTURES = ("module", "main_guard")

DIMENSIONS: Dict[str, Tuple[str, ...]] = {
    "recipe": ("plain", "amp", "gan", "closure"),
    "structure": FUNCTION_STRUCTURES + CLASS_STRUCTURES + MODULE_STRUCTURES,
    "scheduler": (NONE,) + EPOCH_SCHEDULERS + STEP_SCHEDULERS + ("plateau",),
    "gating": (NONE,) + ACCUMULATION + ("micro_batches", "isfinite", "try_except"),
    "loop": ("for", "enumerate", "tqdm", "zip_count", "cycle", "iter_next", "while", "while_true", "range_len"),
    "epochs": ("literal", "default", "call_arg", "attr", "argparse", "config"),
    "optimizer": ("sgd", "sgd_momentum", "adam", "adamw", "rmsprop", "lbfgs"),
    "model_source": SOURCES,
    "loader_source": SOURCES,
    "opt_source": SOURCES,
    "sched_source": SOURCES,
    "scaler_source": SOURCES,
    "loss": ("functional", "criterion", "local_helper", "sibling_helper"),
    "zero": ("optimizer", "set_to_none", "model", "grad_none", "after_step", "before_loop"),
    "clip": (NONE, "norm", "value"),
    "eval": (NONE, "no_grad", "train_top", "helper_restores"),
    "extras": (NONE, "print", "logging", "writer", "timer", "nullcontext", "item_total", "sibling_log", "ema",
               "flags"),
    "imports": ("qualified", "from_import", "alias"),
    "closure_form": ("def", "lambda", "partial"),
    "amp_backward": ("one_statement", "two_statements"),
    "model_def": ("sequential", "local_class"),
}

# Variants of a bug (how it is injected); chosen like a dimension and recorded in the metadata.
BUG_VARIANTS: Dict[str, Tuple[str, ...]] = {
    "LL101": ("no_zero", "zero_once"),
    "LL102": ("between",),
    "LL103": ("step_first",),
    "LL104": ("no_backward",),
    "LL105": ("no_step",),
    "LL106": ("step_after_loop",),
    "LL107": ("in_epoch_loop",),
    "LL108": ("zero_every_micro_batch", "step_after_loop"),
    "LL109": ("train_after_loop",),
    "LL110": ("refreeze_after_optimizer",),
    "LL111": ("head_replaced",),
    "LL112": ("no_grad_forward", "detached_output"),
    "LL201": ("per_batch",),
    "LL202": ("per_epoch",),
    "LL203": ("before_step_in_batch", "top_of_epoch"),
    "LL204": ("no_metric",),
    "LL205": ("batch_and_epoch",),
    "LL206": ("in_epoch_loop",),
    "LL301": ("no_return", "return_on_one_path"),
    "LL302": ("no_zero_grad",),
    "LL303": ("no_backward",),
    "LL304": ("no_closure",),
    "LL401": ("total_plus_loss",),
    "LL402": ("eval_at_epoch_end", "eval_helper"),
    "LL403": ("after_step", "before_backward"),
    "LL404": ("raw_step",),
    "LL405": ("clip_scaled",),
    "LL406": ("unscale_every_micro_batch",),
    "LL407": ("no_update",),
    NONE: ("clean",),
}

Choice = Dict[str, str]
Allowed = Callable[[Choice], Sequence[str]]


def _is_class(c: Choice) -> bool:
    return c["structure"] in CLASS_STRUCTURES


def _is_module(c: Choice) -> bool:
    return c["structure"] in MODULE_STRUCTURES


# ---------------------------------------------------------------------------------------------- constraints

def _recipe(c: Choice) -> Sequence[str]:
    bug = c["bug"]
    if bug in ("LL301", "LL302", "LL303", "LL304"):
        return ("closure",)
    if bug in ("LL404", "LL405", "LL406", "LL407"):
        return ("amp",)
    if bug in ("LL102",):
        return ("plain", "gan")
    if bug in ("LL103", "LL104", "LL105", "LL106", "LL109", "LL110", "LL111", "LL112") \
            or (bug, c["bug_variant"]) == ("LL108", "step_after_loop"):
        return ("plain",)  # (LL110: a scaler refuses to step an optimizer whose parameters got no gradient)
    if bug == "LL401" or (bug == "LL101" and c["bug_variant"] == "no_zero"):
        return ("plain", "amp", "gan")
    if bug == "LL402":
        return ("plain", "amp", "closure")
    if bug == NONE:
        return DIMENSIONS["recipe"]
    return ("plain", "amp")


def _variant(c: Choice) -> Sequence[str]:
    return BUG_VARIANTS[c["bug"]]


def _scheduler(c: Choice) -> Sequence[str]:
    bug, v = c["bug"], c["bug_variant"]
    if c["recipe"] in ("gan", "closure") or bug in ("LL406", "LL407"):
        return (NONE,)  # (LL406/LL407 programs stop at the scaler's RuntimeError)
    if bug == "LL201":
        return EPOCH_SCHEDULERS
    if bug == "LL202":
        return ("onecycle", "linear_warmup", "cosine_steps")
    if bug == "LL203":
        return ("linear_warmup", "cosine_steps", "lambda_warmup") if v == "before_step_in_batch" else EPOCH_SCHEDULERS
    if bug == "LL204":
        return ("plateau",)
    if bug == "LL205":
        return ("linear_warmup", "cosine_steps", "lambda_warmup")
    if bug == "LL206":
        # restarted, the schedule never gets where it should: StepLR stepped once per epoch with a step_size
        # of 2, a cosine over the epochs, a per-step schedule sized for several epochs (a lambda warmup
        # shorter than an epoch, milestones every epoch, or a decay that chains from the current rate
        # are other stories)
        return ("steplr", "cosine_epochs", "onecycle", "cosine_steps", "linear_warmup")
    if bug in ("LL105", "LL107", "LL109", "LL103", "LL104"):
        return (NONE,)
    if bug == "LL106" or (bug == "LL108" and v == "step_after_loop"):
        return (NONE,) + EPOCH_SCHEDULERS + ("plateau",)
    return DIMENSIONS["scheduler"]


def _gating(c: Choice) -> Sequence[str]:
    out = [g for g in _gating_for_bug(c) if g != "micro_batches" or c["bug"] in (NONE, "LL101", "LL108")]
    return out


def _gating_for_bug(c: Choice) -> Sequence[str]:
    bug, v = c["bug"], c["bug_variant"]
    if c["recipe"] in ("gan", "closure"):
        return (NONE, "try_except")
    if bug == "LL108":
        return ACCUMULATION + ("micro_batches",) if v == "zero_every_micro_batch" else (NONE,)
    if bug in ("LL105", "LL106", "LL109", "LL205", "LL103"):
        return (NONE,)
    if bug in ("LL201", "LL104") or (bug == "LL203" and v == "before_step_in_batch"):
        return (NONE, "isfinite", "try_except")
    if bug == "LL406":
        return ACCUMULATION  # unscale_ on micro-batches whose step is gated
    if bug in ("LL404", "LL405", "LL403", "LL407"):
        return (NONE,) + ACCUMULATION if bug != "LL403" else (NONE, "isfinite")
    if c["recipe"] == "amp" or c["scheduler"] == "onecycle":
        return (NONE,) + ACCUMULATION + ("micro_batches", "isfinite")
    return DIMENSIONS["gating"]


def _loop(c: Choice) -> Sequence[str]:
    if c["gating"] == "cycle_phase":
        return ("for",)
    if c["bug"] == "LL109":
        return ("for", "enumerate", "tqdm", "zip_count")
    return DIMENSIONS["loop"]


def _structure(c: Choice) -> Sequence[str]:
    out = list(DIMENSIONS["structure"])
    if c["recipe"] in ("gan", "closure") or c["gating"] in ("phase", "micro_batches"):
        out.remove("update_fn")  # (the phase is computed before the loss, the update test needs it after)
    if c["bug"] == "LL107":
        out = [s for s in out if s not in ("partial", "lambda", "factory_fn", "nested", "update_fn")]
    if c["bug"] == "LL206":  # (a step function bound before the epoch loop cannot take its scheduler)
        out = [s for s in out if s not in ("partial", "factory_fn")]
    if c["bug"] == "LL109":
        out = [s for s in out if s not in ("update_fn",)]
    return out


def _epochs(c: Choice) -> Sequence[str]:
    if _is_module(c):
        return ("literal", "attr", "argparse", "config")
    return DIMENSIONS["epochs"]


def _optimizer(c: Choice) -> Sequence[str]:
    bug = c["bug"]
    if c["recipe"] == "closure":
        # LL301's rule reports a closure that never returns only for LBFGS (harmless elsewhere, by design)
        lbfgs_only = bug in ("LL302", "LL304") or (bug == "LL301" and c["bug_variant"] == "no_return")
        return ("lbfgs",) if lbfgs_only else ("lbfgs", "sgd", "adam")
    out = ["sgd", "sgd_momentum", "adam", "adamw", "rmsprop"]
    if bug == "LL107":
        out.remove("sgd")  # a stateless SGD loses nothing when rebuilt: the linter stays silent on purpose
    return out


def _stage(c: Choice, source: str) -> int:
    """When a source makes its object: 0 in the caller, 1 in an __init__, 2 in the training function."""
    if source == "param":
        return 0
    if source == "attr" or (source == "tuple" and _is_class(c)):
        return 1
    return 2


def _dependents(c: Choice, kind: str) -> Tuple[str, ...]:
    """The objects built from ``kind`` (an optimizer from the model, a scheduler from the optimizer and,
    for one sized in steps, from the loader)."""
    if kind == "model":
        return ("opt",)
    if kind == "opt":
        return ("sched",)
    if kind == "loader":
        return ("sched",) if c["scheduler"] in STEP_SCHEDULERS else ()
    return ()


def _prerequisites(c: Choice, kind: str) -> Tuple[str, ...]:
    """The objects ``kind`` is built from (the inverse of ``_dependents``)."""
    return tuple(p for p in ("model", "opt", "loader") if kind in _dependents(c, p))


def _source(kind: str) -> Allowed:
    """Sources are chosen from the most dependent object down (scheduler, optimizer, model, loader): an
    object must be built no later than the objects built from it."""
    def allowed(c: Choice) -> Sequence[str]:
        if kind == "sched" and c["scheduler"] == NONE:
            return (NA,)
        if kind == "scaler" and c["recipe"] != "amp":
            return (NA,)
        out = list(SOURCES)
        if _is_module(c):
            out = [s for s in out if s not in ("param", "default")]
        for dep in _dependents(c, kind):
            later = c.get(f"{dep}_source", NA)
            if later != NA:
                out = [s for s in out if _stage(c, s) <= _stage(c, later)]
        bug = c["bug"]
        if kind == "sched" and bug in ("LL201", "LL202", "LL203", "LL204", "LL205"):
            out = [s for s in out if s != "sibling"]  # the linter cannot see what an unseen module builds
        if kind == "sched" and bug == "LL206":
            out = [s for s in out if s == "here"]  # built in the epoch loop
        if bug in ("LL110", "LL111") and kind in ("model", "opt"):
            # the optimizer is built where its parameters are then frozen or its model's head replaced, in
            # the function that trains or in the caller that hands both to it; the model reached by name
            keep = ("here", "param") if kind == "opt" else [s for s in SOURCES if s not in ("dict", "list")]
            out = [s for s in out if s in keep]
        if kind == "opt":
            if bug == "LL107":
                out = [s for s in out if s in ("here", "factory", "default")]
            if bug in ("LL302", "LL304"):
                out = [s for s in out if s != "sibling"]
        if kind == "model" and c["recipe"] == "gan":
            out = [s for s in out if s != "default"]
        if kind == "model" and "tuple" in out and _tuple_cycle(c):
            out.remove("tuple")
        # the objects this one is built from must still have a source no later than it
        buildable = [s for s in out if all(_source(p)(dict(c, **{f"{kind}_source": s})) != [NA]
                                           for p in _prerequisites(c, kind))]
        return buildable or out or [NA]

    return allowed


def _tuple_cycle(c: Choice) -> bool:
    """The model and the scheduler in one tuple-building function while the optimizer between them is
    built elsewhere in the training function."""
    return (c["sched_source"] == "tuple" and c["opt_source"] != "tuple"
            and _stage(c, c["opt_source"]) == _stage(c, "tuple"))


def _loss(c: Choice) -> Sequence[str]:
    if c["recipe"] == "gan":
        return (NA,)
    if c["bug"] == "LL112":  # the linter cannot tell what a helper it does not see computes the loss from
        return tuple(v for v in DIMENSIONS["loss"] if v != "sibling_helper")
    return DIMENSIONS["loss"]


def _zero(c: Choice) -> Sequence[str]:
    out = _zero_for_bug(c)
    if c["bug"] in ("LL102", "LL108") or c["recipe"] == "closure":
        # their oracles (and LL302's, for re-evaluated closures) watch zero_grad calls; `p.grad = None` is none
        out = tuple(z for z in out if z != "grad_none")
    return out


def _zero_for_bug(c: Choice) -> Sequence[str]:
    bug = c["bug"]
    if c["recipe"] == "closure":
        return SPELLED_ZERO
    if c["recipe"] == "gan":
        return SPELLED_ZERO
    if bug in ("LL101",) and c["bug_variant"] == "no_zero":
        return (NA,)
    if bug in ("LL101", "LL102", "LL103", "LL105", "LL106", "LL107", "LL108") or (
            bug == "LL403" and c["bug_variant"] == "before_backward"):
        return SPELLED_ZERO
    if c["gating"] in ACCUMULATION:
        return SPELLED_ZERO
    return DIMENSIONS["zero"]


def _clip(c: Choice) -> Sequence[str]:
    if c["bug"] == "LL403" and c["bug_variant"] == "before_backward":
        return ("norm",)  # clip_grad_value_ raises on parameters without gradients
    if c["bug"] in ("LL403", "LL405", "LL406"):
        return ("norm", "value")
    if c["bug"] in ("LL110", "LL111", "LL112"):
        return (NONE,)  # (clip_grad_value_ raises on parameters that never get a gradient)
    if c["recipe"] in ("gan", "closure") or c["bug"] in ("LL104", "LL105", "LL106", "LL109", "LL103", "LL102",
                                                         "LL404"):
        return (NONE,)
    return DIMENSIONS["clip"]


def _eval(c: Choice) -> Sequence[str]:
    if c["recipe"] == "gan":
        return (NONE,)
    if c["bug"] == "LL402":
        return (NONE,)  # the bug itself places the eval()
    if c["bug"] in ("LL301",):
        return (NONE, "train_top", "helper_restores")
    return DIMENSIONS["eval"]


def _extras(c: Choice) -> Sequence[str]:
    if c["bug"] == "LL301":
        return (NONE, "timer", "nullcontext")  # the closure may return None: nothing may use the loss
    if c["bug"] == "LL401":
        return tuple(e for e in DIMENSIONS["extras"] if e != "item_total")
    return DIMENSIONS["extras"]


def _closure_form(c: Choice) -> Sequence[str]:
    return DIMENSIONS["closure_form"] if c["recipe"] == "closure" else (NA,)


def _amp_backward(c: Choice) -> Sequence[str]:
    return DIMENSIONS["amp_backward"] if c["recipe"] == "amp" else (NA,)


def _model_def(c: Choice) -> Sequence[str]:
    if c["bug"] in ("LL110", "LL111"):
        return ("local_class",)  # a backbone and a head (see render.FINETUNE_NET)
    return (NA,) if c["recipe"] == "gan" else DIMENSIONS["model_def"]


def _all(dim: str) -> Allowed:
    return lambda c: DIMENSIONS[dim]


# Sampled in this order; each may look at the ones before it.
ORDER: List[Tuple[str, Allowed]] = [
    ("bug_variant", _variant),
    ("recipe", _recipe),
    ("scheduler", _scheduler),
    ("gating", _gating),
    ("loop", _loop),
    ("structure", _structure),
    ("epochs", _epochs),
    ("optimizer", _optimizer),
    ("sched_source", _source("sched")),
    ("opt_source", _source("opt")),
    ("model_source", _source("model")),
    ("loader_source", _source("loader")),
    ("scaler_source", _source("scaler")),
    ("loss", _loss),
    ("zero", _zero),
    ("clip", _clip),
    ("eval", _eval),
    ("extras", _extras),
    ("imports", _all("imports")),
    ("closure_form", _closure_form),
    ("amp_backward", _amp_backward),
    ("model_def", _model_def),
]


def _pick(seed: int, index: int, dim: str, values: Sequence[str], allowed: Sequence[str]) -> str:
    """The value at ``index`` in a stratified walk over ``values`` (a fresh shuffle per round), skipping
    values not allowed here."""
    n = len(values)
    block, pos = divmod(index, n)
    order = list(values)
    random.Random(f"{seed}/{dim}/{block}").shuffle(order)
    for k in range(n):
        v = order[(pos + k) % n]
        if v in allowed:
            return v
    return allowed[0]


def choose(seed: int, index: int) -> Choice:
    """The choices for program ``index`` of the corpus generated with ``seed``."""
    c: Choice = {"bug": _pick(seed, index, "bug", BUG_SLOTS, BUG_SLOTS)}
    for dim, allowed_fn in ORDER:
        allowed = list(allowed_fn(c))
        values = DIMENSIONS.get(dim) or BUG_VARIANTS[c["bug"]]
        if len(allowed) == 1:
            c[dim] = allowed[0]
        else:
            c[dim] = _pick(seed, index, dim, values, allowed)
    return c


def valid(choice: Choice) -> bool:
    """Whether every value is one the sampler could have chosen after the ones before it."""
    return all(choice[dim] in allowed_fn(choice) for dim, allowed_fn in ORDER)


def applies(choice: Choice, dim: str) -> bool:
    return choice.get(dim, NA) != NA


def rng(seed: int, index: int, purpose: str) -> random.Random:
    """A generator for the small details of one program (names, numbers): seeded by (seed, index, purpose)."""
    return random.Random(f"{seed}/{index}/{purpose}")


def describe(choice: Choice, dims: Optional[Sequence[str]] = None) -> str:
    return ", ".join(f"{k}={choice[k]}" for k in (dims or choice) if choice.get(k, NA) != NA)
