"""Writes the program text for one set of choices (see ``choices``).

A program is assembled from parts: the objects it trains with (model, optimizer, loader, scheduler, scaler,
criterion) and where each comes from; the training function (a function, a method, module-level code) that
holds the epoch loop; the per-batch body (inline, or in a helper, a method, a nested function, a partial, a
lambda, a function returned by a factory); epoch-level events; unrelated calls.

Code that mentions an object is written against placeholders (``⟨opt⟩``) and bound afterwards to the
expression that reaches the object where the code lands (``optimizer``, ``self.opt``, ``parts["opt"]``, a
helper's parameter), so one body can be placed anywhere. A line carrying the injected bug ends with a marker
(``#@LL101``) while the text is built; ``strip_marks`` removes the markers and returns their line numbers.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .choices import (ACCUMULATION, CLASS_STRUCTURES, MODULE_STRUCTURES, NONE, SPELLED_ZERO, STEP_SCHEDULERS, Choice,
                      rng)

Lines = List[str]
_PH = re.compile("⟨([a-z_]+)⟩")
_MARK = re.compile(r"\s*#@(LL\d{3})")

BATCH = 8  # 64 samples: 8 batches per epoch
OPT_CLASS = {"sgd": "SGD", "sgd_momentum": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop",
             "lbfgs": "LBFGS"}
OPT_ARGS = {"sgd": "lr=0.05", "sgd_momentum": "lr=0.05, momentum=0.9", "adam": "lr=1e-2", "adamw": "lr=1e-2",
            "rmsprop": "lr=1e-3", "lbfgs": "lr=0.1, max_iter=4"}
SCHED_CLASS = {"steplr": "StepLR", "multistep": "MultiStepLR", "exponential": "ExponentialLR",
               "cosine_epochs": "CosineAnnealingLR", "onecycle": "OneCycleLR", "linear_warmup": "LinearLR",
               "cosine_steps": "CosineAnnealingLR", "lambda_warmup": "LambdaLR", "plateau": "ReduceLROnPlateau"}
SCHED_ARGS = {
    "steplr": "{opt}, step_size={step_size}, gamma=0.5",
    "multistep": "{opt}, milestones=[1, 2], gamma=0.5",
    "exponential": "{opt}, gamma=0.8",
    "cosine_epochs": "{opt}, T_max={epochs}",
    "onecycle": "{opt}, max_lr=0.1, total_steps={epochs} * len({loader})",
    "linear_warmup": "{opt}, start_factor=0.1, total_iters=2 * len({loader})",
    "cosine_steps": "{opt}, T_max={epochs} * len({loader})",
    "lambda_warmup": "{opt}, lambda step: min(1.0, (step + 1) / 4)",
    "plateau": '{opt}, mode="min", factor=0.5, patience=0',
}
FACTORY = {"gen": "make_generator", "disc": "make_discriminator", "model": "make_model", "opt": "make_optimizer",
           "loader": "make_loader", "sched": "make_scheduler", "scaler": "make_scaler", "crit": "make_criterion"}
NET_CLASS = [
    "class Net(nn.Module):",
    "    def __init__(self, width=16):",
    "        super().__init__()",
    "        self.body = nn.Sequential(nn.Linear(8, width), nn.Tanh(), nn.Linear(width, 1))",
    "",
    "    def forward(self, x):",
    "        return self.body(x)",
]
# A model to fine-tune: a backbone and a head (LL110 freezes the wrong part, LL111 replaces the head).
FINETUNE_NET = [
    "class Net(nn.Module):",
    "    def __init__(self, width=16):",
    "        super().__init__()",
    "        self.backbone = nn.Sequential(nn.Linear(8, width), nn.Tanh())",
    "        self.head = nn.Linear(width, 1)",
    "",
    "    def forward(self, x):",
    "        return self.head(self.backbone(x))",
]


def ind(lines: Sequence[str], n: int = 1) -> Lines:
    """The lines indented by n levels (a line may hold several, separated by newlines)."""
    pad = "    " * n
    return [pad + ln if ln else ln for text in lines for ln in text.split("\n")]


def block(header: str, body: Sequence[str]) -> Lines:
    return [header] + ind(list(body) or ["pass"])


def ph(key: str) -> str:
    return f"⟨{key}⟩"


def used(lines: Sequence[str]) -> List[str]:
    """Placeholder keys the lines mention, in order of first use."""
    out: List[str] = []
    for ln in lines:
        for k in _PH.findall(ln):
            if k not in out:
                out.append(k)
    return out


def bind(lines: Sequence[str], refs: Dict[str, str]) -> Lines:
    """Replaces the placeholders ``refs`` names; leaves the others for an enclosing scope."""
    return [_PH.sub(lambda m: refs.get(m.group(1), m.group(0)), ln) for ln in lines]


def strip_marks(text: str) -> Tuple[str, List[Tuple[str, int]]]:
    """The text without bug markers, and (code, line) for each marker."""
    out: Lines = []
    marks: List[Tuple[str, int]] = []
    for n, ln in enumerate(text.split("\n"), 1):
        codes = _MARK.findall(ln)
        if codes:
            ln = _MARK.sub("", ln).rstrip()
            marks += [(code, n) for code in codes]
        out.append(ln)
    return "\n".join(out), marks


@dataclass
class Obj:
    key: str  # placeholder key: model, gen, disc, opt, opt_g, opt_d, loader, sched, scaler, crit
    kind: str  # model, opt, loader, sched, scaler, crit
    name: str  # its variable name where it is a plain name (also a helper's parameter name)
    source: str
    deps: Tuple[str, ...]


@dataclass
class Plan:
    """Where the gradient events of the plain/amp body go, after the injected bug is applied."""
    zero: str  # top | window | after_step | between | none | epoch_start
    zero_before_loop: bool
    step: str  # batch | after_loop | none
    step_first: bool
    backward: bool


@dataclass
class Rendered:
    main: str
    lib: Optional[str]
    details: Dict[str, str]
    epochs: int


class Renderer:
    def __init__(self, seed: int, index: int, choice: Choice, name: str) -> None:
        self.c = choice
        self.r = rng(seed, index, "render")
        self.name = name
        self.lib_name = f"{name}_lib"
        self.details: Dict[str, str] = {}
        self.imports: List[str] = []
        self.lib_imports: List[str] = []
        self.lib_defs: Dict[str, Lines] = {}
        self.defs: Dict[str, Lines] = {}  # module-level definitions, in order of creation
        self.constants: Lines = []
        self.module_objects: Lines = []  # logger, writer
        self.in_lib = False
        self.epochs = self.r.choice((2, 3))
        self.accum = self.r.choice((2, 4))
        self.cls = choice["structure"] in CLASS_STRUCTURES
        self.module = choice["structure"] in MODULE_STRUCTURES
        self.bug, self.variant = choice["bug"], choice["bug_variant"]
        self.epochs_expr = str(self.epochs)
        self.objects = self._objects()

    # ------------------------------------------------------------------ small helpers
    def detail(self, key: str, options: Sequence[str]) -> str:
        if key not in self.details:
            self.details[key] = self.r.choice(list(options))
        return self.details[key]

    def imp(self, line: str) -> None:
        target = self.lib_imports if self.in_lib else self.imports
        if line not in target:
            target.append(line)

    @contextlib.contextmanager
    def lib_scope(self) -> Iterator[None]:
        """Code written meanwhile goes to the sibling module: classes spelled in full, imports there."""
        was, self.in_lib = self.in_lib, True
        try:
            yield
        finally:
            self.in_lib = was

    def lib(self, name: str, lines: Lines, imports: Sequence[str] = ()) -> str:
        """Puts a definition in the sibling module (the program imports it from there)."""
        for i in imports:
            if i not in self.lib_imports:
                self.lib_imports.append(i)
        self.lib_defs.setdefault(name, lines)
        return name

    def define(self, name: str, lines: Lines) -> str:
        self.defs.setdefault(name, lines)
        return name

    def constant(self, line: str) -> None:
        if line not in self.constants:
            self.constants.append(line)

    def _spelled(self, family: str, cls: str) -> str:
        style = "qualified" if self.in_lib else self.c["imports"]
        full = {"optim": "torch.optim", "sched": "torch.optim.lr_scheduler", "amp": "torch.amp"}[family]
        if style == "from_import":
            self.imp(f"from {full} import {cls}")
            return cls
        if style == "alias":
            module, _, last = full.rpartition(".")
            self.imp(f"from {module} import {last}")
            return f"{last}.{cls}"
        return f"{full}.{cls}"

    # ------------------------------------------------------------------ objects
    def _objects(self) -> Dict[str, Obj]:
        c = self.c
        loader = Obj("loader", "loader", self.detail("loader_name", ("loader", "train_loader")), c["loader_source"], ())
        if c["recipe"] == "gan":
            objs = [Obj("gen", "model", "generator", c["model_source"], ()),
                    Obj("disc", "model", "discriminator", c["model_source"], ()), loader,
                    Obj("opt_g", "opt", "opt_g", c["opt_source"], ("gen",)),
                    Obj("opt_d", "opt", "opt_d", c["opt_source"], ("disc",))]
        else:
            objs = [Obj("model", "model", self.detail("model_name", ("model", "net")), c["model_source"], ()), loader,
                    Obj("opt", "opt", self.detail("opt_name", ("optimizer", "opt")), c["opt_source"], ("model",))]
            if c["scheduler"] != NONE:
                deps = ("opt", "loader") if c["scheduler"] in STEP_SCHEDULERS else ("opt",)
                # (a scheduler named lr_scheduler would shadow `from torch.optim import lr_scheduler`)
                names = ("scheduler", "sched") if c["imports"] == "alias" else ("scheduler", "lr_scheduler", "sched")
                objs.append(Obj("sched", "sched", self.detail("sched_name", names), c["sched_source"], deps))
            if c["recipe"] == "amp":
                objs.append(Obj("scaler", "scaler", "scaler", c["scaler_source"], ()))
            if c["loss"] == "criterion":
                objs.append(Obj("crit", "crit", "criterion", "here", ()))
        return {o.key: o for o in objs}

    def param_name(self, key: str) -> str:
        return self.objects[key].name

    def ctor(self, o: Obj, refs: Dict[str, str], scope: str) -> str:
        """The expression that builds ``o``, given how its dependencies are reached (``refs``)."""
        c = self.c
        if o.kind == "model":
            if o.key == "gen":
                return "nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8))"
            if o.key == "disc":
                return "nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))"
            if c["model_def"] == "local_class" and not self.in_lib:
                self.define("Net", self.net_class())
                return "Net()"
            return "nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))"
        if o.kind == "opt":
            held = f"{refs[o.deps[0]]}.head" if self.bug == "LL110" else refs[o.deps[0]]
            return f"{self._spelled('optim', OPT_CLASS[c['optimizer']])}({held}.parameters(), " \
                   f"{OPT_ARGS[c['optimizer']]})"
        if o.kind == "loader":
            self.imp("from torch.utils.data import DataLoader, TensorDataset")
            shuffle = ", shuffle=True" if self.detail("shuffle", ("yes", "no")) == "yes" else ""
            return f"DataLoader(TensorDataset(X, Y), batch_size={BATCH}{shuffle})"
        if o.kind == "scaler":
            if self.detail("scaler_flag", ("yes", "no")) == "yes" and not self.in_lib:
                self.constant("USE_AMP = True")
                return f'{self._spelled("amp", "GradScaler")}("cpu", enabled=USE_AMP)'
            return f'{self._spelled("amp", "GradScaler")}("cpu")'
        if o.kind == "crit":
            return "nn.MSELoss()"
        kind = c["scheduler"]
        values = {"opt": refs["opt"], "epochs": self.epochs_in(scope), "loader": refs.get("loader"),
                  "step_size": self.detail("step_size", ("2",) if self.bug == "LL206" else ("1", "2"))
                  if kind == "steplr" else None}
        return f"{self._spelled('sched', SCHED_CLASS[kind])}({SCHED_ARGS[kind].format(**values)})"

    def net_class(self) -> Lines:
        return FINETUNE_NET if self.bug in ("LL110", "LL111") else NET_CLASS

    def after_optimizer(self, model: str) -> Lines:
        """What a fine-tuning script does to the model right after building the optimizer: LL110 freezes
        everything and re-enables the backbone (the optimizer holds the head), LL111 gives the model a new
        head for its task."""
        if self.bug == "LL110":
            return (block(f"for p in {model}.parameters():", ["p.requires_grad = False  #@LL110"])
                    + block(f"for p in {model}.backbone.parameters():", ["p.requires_grad = True"]))
        if self.bug == "LL111":
            return [f"{model}.head = nn.Linear({model}.head.in_features, 1)  #@LL111"]
        return []

    def epochs_in(self, scope: str) -> str:
        """The epoch count as an expression readable in ``scope`` (the literal where the setting is not)."""
        if scope == "loop":
            return self.epochs_expr
        if scope == "init" and self.c["epochs"] == "attr" and self.cls:
            return "self.epochs"
        return str(self.epochs)

    def stage(self, o: Obj) -> int:
        """0: built by the caller; 1: in an __init__; 2: in the training function."""
        if o.source == "param":
            return 0
        if o.source == "attr" or (o.source == "tuple" and self.cls):
            return 1
        return 2

    # ------------------------------------------------------------------ acquisition
    def factory_call(self, o: Obj, refs: Dict[str, str], sibling: bool) -> str:
        """Defines a function building ``o`` (here or in the sibling module); returns a call to it."""
        if sibling and o.key == "model":
            self.lib("Net", self.net_class(), ("import torch", "from torch import nn"))
            return "Net()"
        name = FACTORY.get(o.key) or FACTORY[o.kind]
        # one optimizer factory serves both networks of a GAN: its parameter is named for neither
        params = ["module" if self.objects[d].kind == "model" and self.c["recipe"] == "gan" else self.param_name(d)
                  for d in o.deps]
        with self.lib_scope() if sibling else contextlib.nullcontext():
            body = self.ctor(o, dict(zip(o.deps, params)), "factory")
        args = [refs[d] for d in o.deps]
        if o.kind == "loader":
            params, args = ["inputs", "targets"], ["X", "Y"]
            body = body.replace("TensorDataset(X, Y)", "TensorDataset(inputs, targets)")
        lines = block(f"def {name}({', '.join(params)}):", [f"return {body}"])
        if sibling:
            self.lib(name, lines, ("import torch", "from torch import nn"))
        else:
            self.define(name, lines)
        return f"{name}({', '.join(args)})"

    def acquire(self, order: Sequence[Obj], refs: Dict[str, str], scope: str, target: str) -> Lines:
        """Statements that build ``order`` where ``refs`` reach what was built before (updated in place).
        ``target`` says how a built object is bound: "local" (a name) or "self" (an attribute)."""
        out: Lines = []
        todo = list(order)
        while todo:
            ready = [o for o in todo if all(d in refs for d in self._needs(o, todo))]
            if not ready:
                raise AssertionError(f"cyclic construction order in {self.name}: {[o.key for o in todo]}")
            o = ready[0]
            if o.source == "tuple":
                group = [g for g in todo if g.source == "tuple"]
                out.append(self.build_parts(group, refs, target))
                todo = [g for g in todo if g not in group]
                continue
            todo.remove(o)
            out += self._acquire_one(o, refs, scope, target, out)
        return out

    def _needs(self, o: Obj, todo: Sequence[Obj]) -> List[str]:
        """What must be reachable before ``o`` is built (for a tuple, what its whole group needs)."""
        if o.source != "tuple":
            return list(o.deps)
        group = {g.key for g in todo if g.source == "tuple"}
        return [d for g in todo if g.source == "tuple" for d in g.deps if d not in group]

    def _acquire_one(self, o: Obj, refs: Dict[str, str], scope: str, target: str, before: Lines) -> Lines:
        out: Lines = []
        bound = f"self.{o.name}" if target == "self" else o.name
        s = o.source
        if s in ("here", "attr", "param"):
            out.append(f"{bound} = {self.ctor(o, refs, scope)}")
            if o.kind == "opt":
                out += self.after_optimizer(refs[o.deps[0]])
        elif s == "default":
            if o.kind == "opt":
                out.append(f"{bound} = {o.name}_cls({refs[o.deps[0]]}.parameters(), {OPT_ARGS[self.c['optimizer']]})")
            else:
                out += block(f"if {o.name} is None:", [f"{o.name} = {self.ctor(o, refs, scope)}"])
        elif s in ("factory", "sibling"):
            out.append(f"{bound} = {self.factory_call(o, refs, sibling=s == 'sibling')}")
        elif s == "dict":
            if "parts = {}" not in before:
                out.append("parts = {}")
            out.append(f'parts["{o.key}"] = {self.ctor(o, refs, scope)}')
            bound = f'parts["{o.key}"]'
        elif s == "list":
            out.append(f"{o.name}_list = [{self.ctor(o, refs, scope)}]")
            bound = f"{o.name}_list[0]"
        refs[o.key] = bound
        return out

    def default_params(self, objs: Sequence[Obj]) -> List[str]:
        out = []
        for o in objs:
            if o.source != "default":
                continue
            if o.kind == "opt":
                out.append(f"{o.name}_cls={self._spelled('optim', OPT_CLASS[self.c['optimizer']])}")
            else:
                out.append(f"{o.name}=None")
        return out

    def build_parts(self, group: Sequence[Obj], refs: Dict[str, str], target: str) -> str:
        keys = {g.key for g in group}
        ext = list(dict.fromkeys(d for g in group for d in g.deps if d not in keys))
        inner = {d: self.param_name(d) for d in ext}
        body: Lines = []
        for g in group:
            body.append(f"{g.name} = {self.ctor(g, inner, 'factory')}")
            inner[g.key] = g.name
        body.append("return " + ", ".join(g.name for g in group))
        self.define("build_parts", block(f"def build_parts({', '.join(self.param_name(d) for d in ext)}):", body))
        names = [f"self.{g.name}" if target == "self" else g.name for g in group]
        for g, n in zip(group, names):
            refs[g.key] = n
        return f"{', '.join(names)} = build_parts({', '.join(refs[d] for d in ext)})"

    def ordered(self, *stages: int) -> List[Obj]:
        return [o for o in self.objects.values() if self.stage(o) in stages]

    # ------------------------------------------------------------------ epochs
    def epochs_setup(self) -> Tuple[Lines, List[str], List[str], List[str]]:
        """(lines at the start of the training function, its positional parameters, its parameters with a
        default, the caller's arguments) for the epoch count."""
        src, e = self.c["epochs"], self.epochs
        if src == "literal":
            return [], [], [], []
        if src == "default":
            self.epochs_expr = "epochs"
            return [], [], [f"epochs={e}"], []
        if src == "call_arg":
            self.epochs_expr = "epochs"
            return [], ["epochs"], [], [f"epochs={e}"]
        if src == "attr":
            if self.cls:
                self.epochs_expr = "self.epochs"
                return [], [], [], []
            self.define("TrainConfig", block("class TrainConfig:", block("def __init__(self):", [
                f"self.epochs = {e}", "self.lr = 0.05", "self.log_every = 4"])))
            self.epochs_expr = "config.epochs"
            return ["config = TrainConfig()"], [], [], []
        if src == "argparse":
            self.imp("import argparse")
            parse = ["parser = argparse.ArgumentParser()",
                     f'parser.add_argument("--epochs", type=int, default={e})',
                     'parser.add_argument("--lr", type=float, default=0.05)']
            self.epochs_expr = "args.epochs"
            if self.detail("argparse_form", ("inline", "function")) == "function":
                self.define("parse_args", block("def parse_args(argv=None):",
                                                parse + ["return parser.parse_args(argv)"]))
                return ["args = parse_args([])"], [], [], []
            return parse + ["args = parser.parse_args([])"], [], [], []
        if self.detail("config_form", ("module", "local")) == "module":
            self.constant(f'CONFIG = {{"epochs": {e}, "lr": 0.05, "log_every": 4}}')
            self.epochs_expr = 'CONFIG["epochs"]'
            return [], [], [], []
        self.epochs_expr = 'cfg["epochs"]'
        return [f'cfg = {{"epochs": {e}, "batch_size": {BATCH}}}'], [], [], []

    # ------------------------------------------------------------------ the per-batch body
    def zero_call(self, key: str = "opt", model_key: str = "model") -> str:
        z = self.c["zero"]
        if z == "set_to_none":
            return f"{ph(key)}.zero_grad(set_to_none=True)"
        if z == "model":
            return f"{ph(model_key)}.zero_grad()"
        if z == "grad_none":
            header = f"for p in {ph(model_key)}.parameters():"
            if self.detail("grad_none_form", ("one_line", "two_lines")) == "one_line":
                return f"{header} p.grad = None"
            return f"{header}\n    p.grad = None"
        return f"{ph(key)}.zero_grad()"

    def loss_expr(self, out: str, target: str) -> str:
        kind = self.c["loss"]
        if kind == "criterion":
            return f"{ph('crit')}({out}, {target})"
        if kind == "local_helper":
            self.define("compute_loss", block('def compute_loss(out, target, kind="mse"):', [
                'if kind == "mse":', "    return F.mse_loss(out, target)", "return F.l1_loss(out, target)"]))
            return f"compute_loss({out}, {target})"
        if kind == "sibling_helper":
            self.lib("compute", block("def compute(kind, out, target):", [
                'if kind == "mse":', "    return F.mse_loss(out, target)", "return F.l1_loss(out, target)"]),
                ("import torch.nn.functional as F",))
            self.constant('LOSS_KIND = "mse"')
            return f"compute(LOSS_KIND, {out}, {target})"
        return f"F.mse_loss({out}, {target})"

    def clip_call(self, model_key: str = "model") -> str:
        if self.c["clip"] == "value":
            return f"torch.nn.utils.clip_grad_value_({ph(model_key)}.parameters(), 0.5)"
        return f"torch.nn.utils.clip_grad_norm_({ph(model_key)}.parameters(), max_norm=1.0)"

    def plan(self) -> Plan:
        c, bug, v = self.c, self.bug, self.variant
        accum = c["gating"] in ACCUMULATION
        p = Plan(zero="top", zero_before_loop=False, step="batch", step_first=False, backward=True)
        if bug == "LL101":
            p.zero, p.zero_before_loop = "none", v == "zero_once"
        elif bug == "LL102":
            p.zero = "between"
        elif bug == "LL106":
            p.zero, p.step = "epoch_start", "after_loop"
        elif bug == "LL108":
            p.step = "after_loop" if v == "step_after_loop" else "batch"
        elif bug == "LL105":
            p.step = "none"
        elif accum:
            p.zero = "window" if c["gating"] in ("phase", "cycle_phase") else "after_step"
        elif c["zero"] not in SPELLED_ZERO:
            p.zero, p.zero_before_loop = "after_step", c["zero"] == "before_loop"
        p.step_first = bug == "LL103"
        p.backward = bug != "LL104"
        return p

    def gate(self) -> Tuple[Lines, Optional[str], Optional[str]]:
        """(lines computing the gate before the loss, the window-start test, the update test or the flag's
        assignment) of accumulation gating."""
        g, n = self.c["gating"], ph("counter")
        if g in ACCUMULATION:
            self.constant(f"ACCUM_STEPS = {self.accum}")
        if g == "modulo":
            return [], None, f"if ({n} + 1) % ACCUM_STEPS == 0:"
        if g == "phase":
            return [f"phase = {n} % ACCUM_STEPS"], "if phase == 0:", "if phase == ACCUM_STEPS - 1:"
        if g == "cycle_phase":
            return [], f"if {n} == 1:", f"if {n} == ACCUM_STEPS:"
        if g == "flag":  # computed where the update happens (the update may live in a helper)
            return [], None, f"update = ({n} + 1) % ACCUM_STEPS == 0 or {n} + 1 == len({ph('loader')})"
        return [], None, None

    def body(self) -> Tuple[Lines, Lines]:
        """The per-batch body as (up to the loss, the rest), against placeholders; x and y hold the batch and
        ⟨counter⟩ the batch index (or the accumulation phase)."""
        recipe = self.c["recipe"]
        if recipe == "gan":
            return self.gan_body()
        if recipe == "closure":
            return self.closure_body()
        return self.plain_body()

    def step_lines(self, mark: str = "") -> Lines:
        amp = self.c["recipe"] == "amp"
        if amp and self.bug != "LL404":
            lines = [f"⟨scaler⟩.step(⟨opt⟩){mark}", "⟨scaler⟩.update()"]
            if self.bug == "LL407":
                lines = lines[:1]  # the update is missing
        else:
            lines = [f"⟨opt⟩.step(){mark}"]
        if self.c["gating"] == "try_except":
            lines = block("try:", lines) + block("except RuntimeError as err:", ['print(f"step skipped: {err}")'])
        return lines

    def plain_body(self) -> Tuple[Lines, Lines]:
        c, bug, v = self.c, self.bug, self.variant
        amp = c["recipe"] == "amp"
        p = self.plan()
        gate_pre, window, update = self.gate()
        zero = self.zero_call()
        micro = c["gating"] == "micro_batches"
        pre: Lines = list(gate_pre)
        zero_line = zero + ("  #@LL108" if bug == "LL108" else "")
        if p.zero == "top" and not (micro and bug == "LL108"):
            pre.append(zero_line)
        elif p.zero == "window":
            pre += block(window or "", [zero])
        if bug == "LL403" and v == "before_backward":
            pre.append(self.clip_call() + "  #@LL403")
        xs, ys = ("xb", "yb") if micro else ("x", "y")
        divisor = " / ACCUM_STEPS" if c["gating"] in ACCUMULATION else " / MICRO_BATCHES" if micro else ""
        forward = [f"out = ⟨model⟩({xs})", f"loss = {self.loss_expr('out', ys)}{divisor}"]
        if bug == "LL112":  # the forward pass without autograd, and the loss forced to require grad
            if v == "no_grad_forward":
                forward = block("with torch.no_grad():", forward[:1]) + forward[1:] + ["loss.requires_grad = True  #@LL112"]
            else:
                forward = [f"out = ⟨model⟩({xs}).detach()", forward[1], "loss.requires_grad_()  #@LL112"]
        if c["extras"] == "nullcontext":
            self.imp("import contextlib")
            forward = block("with contextlib.nullcontext():", forward)

        backward: Lines = []
        if p.backward:
            if amp and bug != "LL404" and c["amp_backward"] == "two_statements":
                backward += ["loss = ⟨scaler⟩.scale(loss)", "loss.backward()"]
            elif amp:
                backward.append("⟨scaler⟩.scale(loss).backward()")
            else:
                backward.append("loss.backward()" + {"LL105": "  #@LL105", "LL109": "  #@LL109"}.get(bug, ""))
        if micro:  # accumulation over the micro-batches of each batch, one step per batch
            self.constant("MICRO_BATCHES = 2")
            first = [zero_line] if bug == "LL108" else []
            pre += block("for xb, yb in zip(x.chunk(MICRO_BATCHES), y.chunk(MICRO_BATCHES)):",
                         first + forward + backward)
            post: Lines = []
        else:
            pre += forward
            post = backward
        upd: Lines = []
        if p.zero == "between":
            upd.append(zero + "  #@LL102")
        if bug == "LL406":  # unscale and clip every micro-batch, before the gated update
            post += ["⟨scaler⟩.unscale_(⟨opt⟩)  #@LL406", self.clip_call()]
        elif c["clip"] != NONE and bug != "LL403":
            if amp and bug != "LL405":
                upd.append("⟨scaler⟩.unscale_(⟨opt⟩)")
            upd.append(self.clip_call() + ("  #@LL405" if bug == "LL405" else ""))
        if bug == "LL203" and v == "before_step_in_batch":
            upd.append("⟨sched⟩.step()  #@LL203")
        if p.step == "batch":
            mark = {"LL101": "  #@LL101", "LL103": "  #@LL103", "LL104": "  #@LL104", "LL404": "  #@LL404",
                    "LL407": "  #@LL407"}.get(bug, "")
            upd += self.step_lines(mark)
        if bug == "LL403" and v == "after_step":
            upd.append(self.clip_call() + "  #@LL403")
        if c["scheduler"] in STEP_SCHEDULERS and bug not in ("LL202", "LL203"):
            upd.append("⟨sched⟩.step()")
        if p.zero == "after_step":
            upd.append(zero)
        if p.step_first:
            post = upd + post
        elif update and update.startswith("update = "):
            post += [update] + block("if update:", upd)
        elif update:
            post += block(update, upd)
        else:
            post += upd
        if c["gating"] == "isfinite":
            post = block("if torch.isfinite(loss):", post)
        if bug == "LL201":
            post.append("⟨sched⟩.step()  #@LL201")
        return pre, post

    def gan_body(self) -> Tuple[Lines, Lines]:
        bug = self.bug
        dropped = self.detail("gan_dropped_zero", ("g", "d")) if bug == "LL101" else ""
        zero_d = self.zero_call("opt_d", "disc")
        zero_g = self.zero_call("opt_g", "gen")
        ones, zeros = "torch.ones(x.shape[0], 1)", "torch.zeros(x.shape[0], 1)"
        bce = "F.binary_cross_entropy_with_logits"
        pre = ["noise = torch.randn(x.shape[0], 4)", "fake = ⟨gen⟩(noise)"]
        post: Lines = []
        if bug != "LL102" and dropped != "d":
            post.append(zero_d)
        post += [f"d_loss = {bce}(⟨disc⟩(x), {ones}) + {bce}(⟨disc⟩(fake.detach()), {zeros})", "d_loss.backward()"]
        if bug == "LL102":
            post.append(zero_d + "  #@LL102")
        post.append("⟨opt_d⟩.step()" + ("  #@LL101" if dropped == "d" else ""))
        if dropped != "g":
            post.append(zero_g)
        post += [f"g_loss = {bce}(⟨disc⟩(fake), {ones})", "g_loss.backward()",
                 "⟨opt_g⟩.step()" + ("  #@LL101" if dropped == "g" else "")]
        if self.c["gating"] == "try_except":
            post = block("try:", post) + block("except RuntimeError as err:", ['print(f"step skipped: {err}")'])
        post.append("loss = g_loss")
        return pre, post

    def closure_body(self) -> Tuple[Lines, Lines]:
        bug, v, form = self.bug, self.variant, self.c["closure_form"]
        zero = self.zero_call()
        inner: Lines = [] if bug == "LL302" else [zero]
        inner += ["out = ⟨model⟩(x)", f"loss = {self.loss_expr('out', 'y')}"]
        if bug != "LL303":
            inner.append("loss.backward()")
        if bug == "LL301" and v == "return_on_one_path":
            self.constant("VERBOSE = False")
            inner += block("if VERBOSE:", ['print(f"loss {loss.item():.4f}")', "return loss"])
        elif bug != "LL301":
            inner.append("return loss")
        mark = f"  #@{bug}" if bug in ("LL301", "LL302", "LL303") else ""
        post: Lines = []
        if bug == "LL304":
            post += [zero, "out = ⟨model⟩(x)", f"loss = {self.loss_expr('out', 'y')}", "loss.backward()",
                     "⟨opt⟩.step()  #@LL304"]
        else:
            if bug == "LL302":
                post.append(zero)
            if form == "def":
                post += block("def closure():" + mark, inner)
                post.append("loss = ⟨opt⟩.step(closure)")
            else:
                keys = used(inner)
                params = [self.param_name(k) for k in keys] + ["x", "y"]
                header = f"def closure_fn({', '.join(params)}):" + (mark if form == "partial" else "")
                self.define("closure_fn", block(header, bind(inner, {k: self.param_name(k) for k in keys})))
                args = ", ".join([ph(k) for k in keys] + ["x", "y"])
                if form == "lambda":
                    post.append(f"loss = ⟨opt⟩.step(lambda: closure_fn({args})){mark}")
                else:
                    self.imp("import functools")
                    post.append(f"loss = ⟨opt⟩.step(functools.partial(closure_fn, {args}))")
        if self.c["gating"] == "try_except":
            post = block("try:", post) + block("except RuntimeError as err:", ['print(f"step skipped: {err}")'])
        return [], post

    def tail(self) -> Tuple[Lines, Lines]:
        """(lines before the batch loop, lines after the body inside it): running totals and logging."""
        c = self.c
        before: Lines = []
        after: Lines = []
        if self.bug == "LL401":
            before.append("running_loss = 0.0")
            after.append("running_loss += loss  #@LL401")
        elif c["extras"] == "item_total":
            before.append("running_loss = 0.0")
            after.append("running_loss += loss.item()")
        if c["extras"] == "ema":  # a `.step()` that is no optimizer's
            model = ph("gen" if c["recipe"] == "gan" else "model")
            self.define("EMA", block("class EMA:", [
                "def __init__(self, model, decay=0.9):", "    self.decay = decay",
                "    self.shadow = [p.detach().clone() for p in model.parameters()]", "",
                "def step(self, model):", "    with torch.no_grad():",
                "        for s, p in zip(self.shadow, model.parameters()):",
                "            s.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)"]))
            before.append(f"ema = EMA({model})")
            after.append(f"ema.step({model})")
        if c["extras"] == "logging":
            self.imp("import logging")
            self.module_objects.append("logger = logging.getLogger(__name__)")
            after.append('logger.info("batch loss %.4f", loss.item())')
        elif c["extras"] == "writer":
            self.lib("SummaryWriter", block("class SummaryWriter:", [
                "def __init__(self, log_dir=None):", "    self.rows = []", "",
                "def add_scalar(self, tag, value, step=None):", "    self.rows.append((tag, float(value), step))", "",
                "def close(self):", "    self.rows.clear()"]))
            self.module_objects.append("writer = SummaryWriter()")
            after.append('writer.add_scalar("train/loss", loss.item())')
        elif c["extras"] == "sibling_log":
            self.lib("log_metrics", ["HISTORY = []", "", ""] + block("def log_metrics(name, value):", [
                "HISTORY.append((name, float(value)))"]))
            after.append('log_metrics("loss", loss.item())')
        elif c["extras"] == "flags":  # settings read once and tested on every batch: they gate no gradient
            self.imp("import os")
            self.module_objects += ['SHOW_LOSS = os.environ.get("SHOW_LOSS") == "1"',
                                    'RANK = int(os.environ.get("RANK", "0"))', "LOSSES = []"]
            after += block("if SHOW_LOSS:", ['print(f"loss {loss.item():.4f}")'])
            after += block("if RANK == 0:", ["LOSSES.append(loss.item())"])
            after += block("if SHOW_LOSS and RANK == 0:", ['print("logged", len(LOSSES))'])
        return before, after

    # ------------------------------------------------------------------ loops
    def batch_loop(self, need_counter: bool) -> Tuple[Lines, str, Lines, Lines, str]:
        """(lines before, header, first body lines, last body lines, counter) of the batch loop."""
        style, loader = self.c["loop"], ph("loader")
        if self.c["gating"] == "cycle_phase":
            self.imp("import itertools")
            return [], f"for (x, y), k in zip({loader}, itertools.cycle(range(1, ACCUM_STEPS + 1))):", [], [], "k"
        if style == "for":
            if need_counter:
                return ["step = 0"], f"for x, y in {loader}:", [], ["step += 1"], "step"
            return [], f"for x, y in {loader}:", [], [], "i"
        if style == "enumerate":
            return [], f"for i, (x, y) in enumerate({loader}):", [], [], "i"
        if style == "tqdm":
            self.define("tqdm", ["try:", "    from tqdm import tqdm",
                                 "except ImportError:  # progress bars are optional",
                                 "    def tqdm(iterable, **kwargs):",
                                 "        return iterable"])
            if self.detail("tqdm_form", ("enumerate_inside", "enumerate_outside")) == "enumerate_inside":
                return ([f'bar = tqdm(enumerate({loader}), total=len({loader}), desc="train")'],
                        "for i, (x, y) in bar:", [], [], "i")
            return [f'bar = tqdm({loader}, desc="train")'], "for i, (x, y) in enumerate(bar):", [], [], "i"
        if style == "zip_count":
            self.imp("import itertools")
            return [], f"for i, (x, y) in zip(itertools.count(), {loader}):", [], [], "i"
        if style == "cycle":
            self.imp("import itertools")
            return ([f"batches = itertools.cycle({loader})"], f"for i, (x, y) in zip(range(len({loader})), batches):",
                    [], [], "i")
        if style == "iter_next":
            return ([f"batch_iter = iter({loader})"], f"for i in range(len({loader})):", ["x, y = next(batch_iter)"],
                    [], "i")
        if style == "while_true":
            return ([f"batch_iter = iter({loader})", "i = -1"], "while True:",
                    block("try:", ["x, y = next(batch_iter)"]) + block("except StopIteration:", ["break"]) + ["i += 1"],
                    [], "i")
        if style == "while":
            return ([f"batch_iter = iter({loader})", "i = 0"], f"while i < len({loader}):", ["x, y = next(batch_iter)"],
                    ["i += 1"], "i")
        # index the dataset in slices (a list drawn from the loader beforehand makes the runtime place every
        # batch in the enclosing loop, see the report)
        self.constant(f"BATCH_SIZE = {BATCH}")
        counter = ["i = start // BATCH_SIZE"] if need_counter else []
        return ([f"dataset = {loader}.dataset"], "for start in range(0, len(dataset), BATCH_SIZE):",
                ["x, y = dataset[start:start + BATCH_SIZE]"] + counter, [], "i")

    # ------------------------------------------------------------------ placing the body
    def helper(self, lines: Lines, self_refs: Dict[str, str]) -> Tuple[Lines, List[str], List[str]]:
        """For a function (or a method) running ``lines``: its body, the objects passed to it (those reached
        through ``self`` are not) and whether it takes the batch counter (as ``batch_idx``)."""
        keys = [k for k in used(lines) if k != "counter" and k not in self_refs]
        counter = ["batch_idx"] if "counter" in used(lines) else []
        body = bind(lines, dict({k: self.param_name(k) for k in keys}, counter="batch_idx", **self_refs))
        return body, keys, counter

    def place_body(self, pre: Lines, post: Lines, loop_refs: Dict[str, str]) -> Tuple[Lines, Lines]:
        """(setup lines in the training function, lines that run the body once) for the structure."""
        s = self.c["structure"]
        lines = pre + post
        if s in ("inline", "epoch_fn", "module", "main_guard"):
            return [], lines
        if s == "update_fn":
            body, keys, counter = self.helper(post, {})
            params = [self.param_name(k) for k in keys] + ["loss"] + counter
            self.define("apply_update", block(f"def apply_update({', '.join(params)}):", body))
            args = [ph(k) for k in keys] + ["loss"] + [ph("counter")] * len(counter)
            return [], pre + [f"apply_update({', '.join(args)})"]
        if s == "nested":
            counter = ["batch_idx"] if "counter" in used(lines) else []
            body = bind(lines, {"counter": "batch_idx"}) + ["return loss"]
            call = ["x", "y"] + [ph("counter")] * len(counter)
            setup = block(f"def train_step({', '.join(['x', 'y'] + counter)}):", body)
            return setup, [f"loss = train_step({', '.join(call)})"]
        self_refs = {k: v for k, v in loop_refs.items() if v.startswith("self.")} if self.cls else {}
        body, keys, counter = self.helper(lines, self_refs)
        body = body + ["return loss"]
        objs = [self.param_name(k) for k in keys]
        rest = ["x", "y"] + counter
        obj_args = [ph(k) for k in keys]
        rest_args = ["x", "y"] + [ph("counter")] * len(counter)
        if self.cls:
            self.method = block(f"def train_step({', '.join(['self'] + objs + rest)}):", body)
            return [], [f"loss = self.train_step({', '.join(obj_args + rest_args)})"]
        if s == "step_fn":
            self.define("train_step", block(f"def train_step({', '.join(objs + rest)}):", body))
            return [], [f"loss = train_step({', '.join(obj_args + rest_args)})"]
        if s == "factory_fn":
            self.define("make_train_step", block(f"def make_train_step({', '.join(objs)}):",
                                                 block(f"def train_step({', '.join(rest)}):", body)
                                                 + ["", "return train_step"]))
            return ([f"train_step = make_train_step({', '.join(obj_args)})"],
                    [f"loss = train_step({', '.join(rest_args)})"])
        self.define("train_step", block(f"def train_step({', '.join(objs + rest)}):", body))
        if s == "partial":
            self.imp("import functools")
            setup = f"step_fn = functools.partial(train_step, {', '.join(obj_args)})"
        else:
            setup = f"step_fn = lambda {', '.join(rest)}: train_step({', '.join(obj_args + rest)})"
        return [setup], [f"loss = step_fn({', '.join(rest_args)})"]

    # ------------------------------------------------------------------ epoch-level events
    def eval_lines(self) -> Tuple[Lines, Lines, Optional[str]]:
        """(lines at the top of each epoch, lines after its training, the validation value's name)."""
        c, bug, v = self.c, self.bug, self.variant
        validate = block("with torch.no_grad():", ["val_loss = F.mse_loss(⟨model⟩(X_VAL), Y_VAL).item()"])
        mode = "leak_end" if bug == "LL402" and v == "eval_at_epoch_end" else \
            "leak_helper" if bug == "LL402" else c["eval"]
        if mode == NONE:
            return [], [], None
        if mode == "no_grad":
            return [], validate, "val_loss"
        if mode == "train_top":
            return ["⟨model⟩.train()"], ["⟨model⟩.eval()"] + validate, "val_loss"
        if mode == "leak_end":
            return [], ["⟨model⟩.eval()  #@LL402"] + validate, "val_loss"
        restore = mode == "helper_restores"
        self.define("evaluate", block("def evaluate(model):", [
            "model.eval()" + ("" if restore else "  #@LL402"),
            "with torch.no_grad():",
            "    value = F.mse_loss(model(X_VAL), Y_VAL).item()"] + (["model.train()"] if restore else [])
            + ["return value"]))
        return [], ["val_loss = evaluate(⟨model⟩)"], "val_loss"

    def sched_epoch_lines(self, val: Optional[str]) -> Lines:
        kind, bug, v = self.c["scheduler"], self.bug, self.variant
        if kind == NONE:
            return []
        if kind == "plateau":
            return ["⟨sched⟩.step()  #@LL204"] if bug == "LL204" else [f"⟨sched⟩.step({val or 'loss.item()'})"]
        if bug == "LL202":
            return ["⟨sched⟩.step()  #@LL202"]
        if bug == "LL205":
            return ["⟨sched⟩.step()  #@LL205"]
        if kind in STEP_SCHEDULERS or bug == "LL201" or (bug == "LL203" and v == "top_of_epoch"):
            return []
        return ["⟨sched⟩.step()"]

    # ------------------------------------------------------------------ the whole program
    def render(self) -> Rendered:
        c, bug = self.c, self.bug
        s = c["structure"]
        self.method: Lines = []
        ep_lines, ep_pos, ep_kw, ep_args = self.epochs_setup()

        stage0 = self.ordered(0)
        caller_refs: Dict[str, str] = {}
        caller_lines = self.acquire(stage0, caller_refs, "caller", "local")
        loop_refs: Dict[str, str] = {}
        init_lines: Lines = []
        holder: Lines = []
        if self.cls:
            init_refs = {o.key: f"self.{o.name}" for o in stage0}
            if c["epochs"] == "attr":
                init_lines.append(f"self.epochs = {self.epochs}")
            if len(stage0) > 1 and self.detail("init_store", ("tuple", "separate")) == "tuple":
                targets = ", ".join(init_refs[o.key] for o in stage0)
                init_lines.append(f"{targets} = {', '.join(o.name for o in stage0)}")
            else:
                init_lines += [f"{init_refs[o.key]} = {o.name}" for o in stage0]
            init_lines += self.acquire(self.ordered(1), init_refs, "init", "self")
            loop_refs.update(init_refs)
        else:
            loop_refs.update({o.key: o.name for o in stage0})
            stage1 = self.ordered(1)
            if stage1:
                keys = {o.key for o in stage1}
                ext = list(dict.fromkeys(d for o in stage1 for d in o.deps if d not in keys))
                refs = {d: self.param_name(d) for d in ext}
                body = self.acquire(stage1, refs, "init", "self")
                self.define("TrainState", block("class TrainState:", block(
                    f"def __init__({', '.join(['self'] + [self.param_name(d) for d in ext])}):", body)))
                holder = [f"state = TrainState({', '.join(loop_refs[d] for d in ext)})"]
                loop_refs.update({o.key: f"state.{o.name}" for o in stage1})

        lazy = [o for o in self.ordered(2) if (bug, o.kind) in (("LL107", "opt"), ("LL206", "sched"))]
        acq = self.acquire([o for o in self.ordered(2) if o not in lazy], loop_refs, "loop", "local")
        defaults = self.default_params(self.ordered(2))

        plan = self.plan() if c["recipe"] in ("plain", "amp") else None
        pre, post = self.body()
        need_counter = "counter" in used(pre + post)
        loop_pre, header, first, last, counter = self.batch_loop(need_counter)
        setup, run = self.place_body(pre, post, loop_refs)
        if c["extras"] == "timer":
            self.imp("import time")
            self.define("Timer", block("class Timer:", [
                "def __init__(self, name):", "    self.name = name", "    self.elapsed = 0.0", "",
                "def __enter__(self):", "    self.start = time.perf_counter()", "    return self", "",
                "def __exit__(self, *exc):", "    self.elapsed += time.perf_counter() - self.start",
                "    return False"]))
            run = block('with Timer("step"):', run)
        tail_before, tail_after = self.tail()

        run_pre: Lines = []
        if bug == "LL402":
            run_pre.append("⟨model⟩.train()")
        if plan is not None and plan.zero_before_loop:
            run_pre.append(self.zero_call())

        inner: Lines = []
        if plan is not None and plan.zero == "epoch_start":
            inner.append(self.zero_call())
        inner += tail_before + loop_pre
        if bug == "LL109":
            inner += block(header, first + ["x, y = x.float(), y.float()"] + last)
            inner += run + tail_after
        else:
            inner += block(header, first + run + tail_after + last)
        if bug == "LL106":
            inner.append("⟨opt⟩.step()  #@LL106")
        elif bug == "LL108" and self.variant == "step_after_loop":
            inner.append("⟨opt⟩.step()")
        inner = bind(inner, {"counter": counter})

        eval_top, eval_end, val = self.eval_lines()
        outer_pre = list(eval_top)
        if lazy:
            refs = dict(loop_refs)
            built = self.acquire(lazy, refs, "loop", "local")
            built[-1] += f"  #@{bug}"
            outer_pre += built
            loop_refs.update(refs)
        if bug == "LL203" and self.variant == "top_of_epoch":
            outer_pre.append("⟨sched⟩.step()  #@LL203")
        outer_post = eval_end + self.sched_epoch_lines(val)
        if c["extras"] == "print":
            outer_post.append('print(f"epoch {epoch}: loss {loss.item():.4f}")')

        if s == "epoch_fn":
            keys = used(inner)
            params = [self.param_name(k) for k in keys]
            self.define("train_one_epoch", block(f"def train_one_epoch({', '.join(params)}):",
                                                 bind(inner, {k: self.param_name(k) for k in keys}) + ["return loss"]))
            inner = [f"loss = train_one_epoch({', '.join(ph(k) for k in keys)})"]
        body = ep_lines + holder + acq + setup + run_pre
        body += block(f"for epoch in range({self.epochs_expr}):", outer_pre + inner + outer_post)
        body = bind(body, loop_refs)
        self.method = bind(self.method, loop_refs)

        program: Lines = []
        entry: Lines = []
        if self.cls:
            fit = block(f"def fit({', '.join(['self'] + ep_pos + ep_kw + defaults)}):", body)
            init = block(f"def __init__({', '.join(['self'] + [o.name for o in stage0])}):", init_lines)
            if s == "method":
                program = block("class Trainer:", init + [""] + self.method + [""] + fit)
            else:
                program = block("class BaseTrainer:", fit) + ["", ""] + block(
                    "class Trainer(BaseTrainer):", init + [""] + self.method)
            entry = block("def main():", caller_lines + [
                f"trainer = Trainer({', '.join(o.name for o in stage0)})", f"trainer.fit({', '.join(ep_args)})"])
        elif self.module:
            program = body if s == "module" else block('if __name__ == "__main__":', body)
        else:
            program = block(f"def train({', '.join([o.name for o in stage0] + ep_pos + ep_kw + defaults)}):", body)
            entry = block("def main():", caller_lines + [f"train({', '.join([o.name for o in stage0] + ep_args)})"])
        if entry:
            entry += ["", ""] + block('if __name__ == "__main__":', ["main()"])
        return self.assemble(program, entry)

    def assemble(self, program: Lines, entry: Lines) -> Rendered:
        std = sorted(i for i in self.imports if not i.startswith(("from torch", "import torch")))
        torch_from = sorted(i for i in self.imports if i.startswith("from torch"))
        head = std + ([""] if std else []) + ["import torch", "import torch.nn.functional as F", "from torch import nn"]
        head += [i for i in torch_from if i != "from torch import nn"]
        exported = [n for n in self.lib_defs]
        if exported:
            head += ["", f"from {self.lib_name} import {', '.join(exported)}"]
        data = ["torch.manual_seed(0)", "X = torch.randn(64, 8)",
                "Y = X @ torch.randn(8, 1) + 0.1 * torch.randn(64, 1)", "X_VAL, Y_VAL = X[:16], Y[:16]"]
        data += self.module_objects
        parts: List[Lines] = [head, self.constants, data] + list(self.defs.values()) + [program, entry]
        out: Lines = []
        for p in parts:
            if not p:
                continue
            if out:
                top_level = p[0].startswith(("def ", "class ", "try:", "if __name__")) or out[-1].startswith(" ")
                out += ["", ""] if top_level else [""]
            out += p
        text = "\n".join(out) + "\n"
        left = _PH.findall(text)
        if left:
            raise AssertionError(f"unbound placeholders {sorted(set(left))} in {self.name}")
        lib = None
        if self.lib_defs:
            lib_parts = [f'"""Helpers for {self.name}.py (generated): a module the linter does not see."""',
                         *sorted(set(self.lib_imports))]
            lib_lines: Lines = lib_parts
            for lines in self.lib_defs.values():
                lib_lines += ["", ""] + lines
            lib = "\n".join(lib_lines) + "\n"
        return Rendered(text, lib, dict(self.details), self.epochs)
