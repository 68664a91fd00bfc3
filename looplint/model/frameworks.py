"""Library semantics as data: what each training framework's wrappers take over.

Each entry says, for one framework, which calls hand back the user's objects wrapped (and in which
order), which methods run a backward pass and whether they scale the loss themselves, what the wrapped
optimizer or engine does on ``step``/``zero_grad`` and on extra methods, and which clip methods unscale
first. The model asks this table instead of exempting "anything wrapped":

* a wrapper never owns a ``GradScaler`` the user built unless the scaler is handed to it, so a loss the
  user scaled and a raw ``optimizer.step()`` is LL404 also on an ``accelerator.prepare``-d optimizer;
* an Opacus optimizer's ``virtual_step()`` keeps the gradients for a later step (LL108 still applies when
  ``zero_grad`` discards them);
* a DeepSpeed engine's ``step()`` applies and clears the gradients it manages.

Adding a framework is one ``Framework(...)`` entry below.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Optional, Tuple

# Roles a framework object plays (mirrors roles.py, which imports this table).
ACCELERATOR, ENGINE, OPTIMIZER, OTHER = "accelerator", "engine", "optimizer", "other"
# Effects of a method of a wrapped optimizer.
KEEPS = "keeps"  # no gradient effect: the gradients stay for a later step (accumulation)


@dataclass(frozen=True)
class Wrap:
    """A call that returns the objects it is given, wrapped.

    ``positions``: for each returned position, the argument position (or keyword) it wraps; ``None``
    means "the same order as the positional arguments". ``roles``: a role per returned position when the
    result is not one of the arguments (``deepspeed.initialize`` returns an engine first).
    """

    positions: Optional[Tuple[object, ...]] = None
    roles: Tuple[Optional[str], ...] = ()


@dataclass(frozen=True)
class Framework:
    name: str
    packages: Tuple[str, ...]  # import prefixes that identify the framework
    objects: Dict[str, str] = field(default_factory=dict)  # class or factory (last name) -> role of its instances
    wrappers: Dict[str, Wrap] = field(default_factory=dict)  # function or method name -> what it returns
    backward: Dict[str, bool] = field(default_factory=dict)  # method -> it scales the loss itself
    optimizer_methods: Dict[str, str] = field(default_factory=dict)  # extra methods of wrapped optimizers
    step_functions: FrozenSet[str] = frozenset()  # module-level functions that step the optimizer they are given
    unscaling_clips: FrozenSet[str] = frozenset()  # clip methods that unscale (or never see scaled gradients)
    engine_step_clears: bool = False  # its engine's step() applies and then clears the gradients


_IN_ORDER = Wrap()

FRAMEWORKS: Tuple[Framework, ...] = (
    Framework(
        "accelerate", ("accelerate",),
        objects={"Accelerator": ACCELERATOR},
        wrappers={"prepare": _IN_ORDER, "prepare_model": _IN_ORDER, "prepare_optimizer": _IN_ORDER,
                  "prepare_scheduler": _IN_ORDER, "prepare_data_loader": _IN_ORDER},
        backward={"backward": True},
        unscaling_clips=frozenset({"clip_grad_norm_", "clip_grad_value_"}),
    ),
    Framework(
        "lightning-fabric", ("lightning", "lightning_fabric", "lightning.fabric"),
        objects={"Fabric": ACCELERATOR},
        wrappers={"setup": _IN_ORDER, "setup_module": _IN_ORDER, "setup_optimizers": _IN_ORDER,
                  "setup_dataloaders": _IN_ORDER},
        backward={"backward": True},
        unscaling_clips=frozenset({"clip_gradients"}),
    ),
    Framework(
        "lightning", ("pytorch_lightning", "lightning", "lightning.pytorch"),
        backward={"manual_backward": True},
        unscaling_clips=frozenset({"clip_gradients"}),
    ),
    Framework(
        "deepspeed", ("deepspeed",),
        wrappers={"initialize": Wrap(positions=("model", "optimizer", "training_data", "lr_scheduler"),
                                     roles=(ENGINE, OPTIMIZER, None, None))},
        backward={"backward": True},
        engine_step_clears=True,
    ),
    Framework(
        "apex-amp", ("apex", "apex.amp"),
        wrappers={"initialize": _IN_ORDER},
        unscaling_clips=frozenset(),
    ),
    Framework(
        "opacus", ("opacus",),
        objects={"PrivacyEngine": OTHER},
        wrappers={"make_private": Wrap(positions=("module", "optimizer", "data_loader")),
                  "make_private_with_epsilon": Wrap(positions=("module", "optimizer", "data_loader"))},
        optimizer_methods={"virtual_step": KEEPS, "pre_step": KEEPS, "signal_skip_step": KEEPS},
    ),
    Framework(
        "horovod", ("horovod", "horovod.torch"),
        wrappers={"DistributedOptimizer": Wrap(positions=(0,))},
        optimizer_methods={"synchronize": KEEPS, "skip_synchronize": KEEPS},
    ),
    Framework(
        "colossalai", ("colossalai",),
        wrappers={"boost": Wrap(positions=("model", "optimizer", "criterion", "dataloader", "lr_scheduler"))},
        backward={"backward": True},
    ),
    Framework(
        "low-precision", ("msamp", "transformer_engine", "torchao"),
        wrappers={"initialize": _IN_ORDER},
    ),
    Framework(
        "torch-xla", ("torch_xla",),
        step_functions=frozenset({"optimizer_step"}),
    ),
)

_BY_PACKAGE: Dict[str, Framework] = {}
for _f in FRAMEWORKS:
    for _p in _f.packages:
        _BY_PACKAGE.setdefault(_p, _f)


def framework_of(qualified: str) -> Optional[Framework]:
    """The framework a qualified name (``accelerate.Accelerator``, ``deepspeed.initialize``) belongs to."""
    parts = qualified.split(".")
    for n in range(len(parts), 0, -1):
        f = _BY_PACKAGE.get(".".join(parts[:n]))
        if f is not None:
            return f
    return None


def wrapper(name: Optional[str], qualified: str = "") -> Optional[Wrap]:
    """How a call named ``name`` (a method of a framework object, or a qualified function) wraps its
    arguments; the qualified name picks the framework when it is known."""
    if not name:
        return None
    f = framework_of(qualified) if qualified else None
    if f is not None and name in f.wrappers:
        return f.wrappers[name]
    for f in FRAMEWORKS:
        if name in f.wrappers and f.wrappers[name] is _IN_ORDER:
            return f.wrappers[name]
    return None


WRAPPER_NAMES: FrozenSet[str] = frozenset(n for f in FRAMEWORKS for n in f.wrappers)
OBJECTS: Dict[str, str] = {k: v for f in FRAMEWORKS for k, v in f.objects.items()}
OPTIMIZER_METHODS: Dict[str, str] = {k: v for f in FRAMEWORKS for k, v in f.optimizer_methods.items()}
UNSCALING_CLIPS: FrozenSet[str] = frozenset(n for f in FRAMEWORKS for n in f.unscaling_clips)
STEP_FUNCTIONS: FrozenSet[str] = frozenset(n for f in FRAMEWORKS for n in f.step_functions)

__all__ = ["Framework", "Wrap", "FRAMEWORKS", "framework_of", "wrapper", "WRAPPER_NAMES", "OBJECTS",
           "OPTIMIZER_METHODS", "UNSCALING_CLIPS", "STEP_FUNCTIONS", "KEEPS"]
