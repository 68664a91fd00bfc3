"""Schedulers: the unit read from constructor arguments (looplint.model.schedulers), the order facts the flow
interpreter records, and the scheduler rules LL201-LL205 on the shapes real code takes. Each test states a
program and the codes/lines looplint must (or must not) report."""
import textwrap

import libcst as cst
import pytest

from looplint.engine import lint_source
from looplint.model import build_model
from looplint.model.roles import Frame
from looplint.model.schedulers import (
    PER_EPOCH, PER_STEP, PLATEAU, SIZED, UNKNOWN, epoch_count, optimizer_of, presence_test, scheduler_kind,
)
from looplint.rule import rule_by_code

SCHEDULER_CODES = ("LL201", "LL202", "LL203", "LL204", "LL205")


def model_of(src: str):
    return build_model(cst.parse_module(textwrap.dedent(src)))


def kind_of(src: str, name: str = "s"):
    m = model_of(src)
    role = m.roles.resolve(cst.Name(name), Frame(m.scopes.module))
    return scheduler_kind(role, m.roles)


def findings(src: str, codes=SCHEDULER_CODES):
    """(code, line) of every diagnostic of the given rules."""
    rules = [rule_by_code(c) for c in codes]
    return sorted((d.code, d.line) for d in lint_source(textwrap.dedent(src), "t.py", rules=rules))


def line_of(src: str, text: str, last: bool = False) -> int:
    lines = textwrap.dedent(src).splitlines()
    found = [i for i, line in enumerate(lines, 1) if line.strip() == text]
    return found[-1] if last else found[0]


HEADER = """\
import torch
from torch.optim.lr_scheduler import (StepLR, MultiStepLR, CosineAnnealingLR, OneCycleLR, CyclicLR, LambdaLR,
    ExponentialLR, ReduceLROnPlateau, SequentialLR, ChainedScheduler, LinearLR, ConstantLR)
model = torch.nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
"""


# -- the unit, from the constructor's arguments ---------------------------------------------------------------


@pytest.mark.parametrize("ctor, unit", [
    ("CosineAnnealingLR(opt, num_epochs)", PER_EPOCH),
    ("CosineAnnealingLR(opt, T_max=args.epochs)", PER_EPOCH),
    ("StepLR(opt, step_size=args.epochs // 3)", PER_EPOCH),
    ("MultiStepLR(opt, [int(r * epochs) for r in (0.5, 0.75)])", PER_EPOCH),
    ("CosineAnnealingLR(opt, config['num_epochs'])", PER_EPOCH),
    ("CosineAnnealingLR(opt, T_max=epochs * len(loader))", PER_STEP),
    ("StepLR(opt, step_size=2 * len(train_loader))", PER_STEP),
    ("MultiStepLR(opt, milestones=[max_steps // 2, max_steps * 3 // 4])", PER_STEP),
    ("CosineAnnealingLR(opt, cfg.SOLVER.MAX_ITER)", PER_STEP),
    ("CosineAnnealingLR(opt, args.epochs * args.iters_per_epoch)", PER_STEP),
    ("OneCycleLR(opt, max_lr=0.1, epochs=args.epochs, steps_per_epoch=args.steps)", PER_STEP),
    ("CyclicLR(opt, 0.01, 0.1)", PER_STEP),
    ("LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup_steps))", PER_STEP),
    ("LambdaLR(opt, lambda epoch: 0.95 ** epoch)", PER_EPOCH),
    ("ExponentialLR(opt, gamma=0.9)", PER_EPOCH),
    ("ReduceLROnPlateau(opt, patience=3)", PLATEAU),
    ("StepLR(opt, 30)", SIZED),
    # nothing to read: unknown, never a finding
    ("StepLR(opt, step_size=args.lr_step)", UNKNOWN),
    ("MultiStepLR(opt, config.step_schedule)", UNKNOWN),
    ("CosineAnnealingLR(opt, args.epochs * k)", UNKNOWN),
    ("ExponentialLR(opt, gamma=0.9999)", UNKNOWN),
    ("OneCycleLR(opt, 0.1, total_steps=args.epochs)", UNKNOWN),
    ("LambdaLR(opt, lambda x: 0.5 ** x)", UNKNOWN),
    ("LambdaLR(opt, lr_lambda=schedule.lr)", UNKNOWN),
])
def test_unit_comes_from_the_constructor_arguments(ctor, unit):
    kind = kind_of(HEADER + f"s = {ctor}\n")
    assert kind.unit == unit
    assert kind.known


def test_a_readable_schedule_function_gives_its_unit():
    kind = kind_of(HEADER + """
def warmup(current_step):
    return min(1.0, current_step / 100)
s = LambdaLR(opt, lr_lambda=warmup)
""")
    assert (kind.unit, kind.known) == (PER_STEP, True)


def test_literal_horizons_are_epochs_only_next_to_a_long_enough_epoch_loop():
    kind = kind_of(HEADER + "s = MultiStepLR(opt, [30, 60])\n")
    assert kind.sizes == (30, 60)
    assert kind.unit_for(100) == PER_EPOCH
    assert kind.unit_for(40) == UNKNOWN
    assert kind.unit_for(None) == UNKNOWN


@pytest.mark.parametrize("ctor, unit", [
    ("SequentialLR(opt, [LinearLR(opt, total_iters=warmup_steps), CosineAnnealingLR(opt, T_max=max_steps)], "
     "milestones=[warmup_steps])", PER_STEP),
    ("SequentialLR(opt, schedulers=[warm, cos], milestones=[5])", PER_EPOCH),
    ("ChainedScheduler([ConstantLR(opt, factor=0.5, total_iters=4), ExponentialLR(opt, gamma=0.9)])", PER_EPOCH),
    ("SequentialLR(opt, [CosineAnnealingLR(opt, num_epochs), OneCycleLR(opt, 0.1, total_steps=n)], [3])", UNKNOWN),
])
def test_composite_schedulers_take_the_unit_of_their_parts(ctor, unit):
    src = HEADER + "warm = LinearLR(opt, total_iters=5)\ncos = CosineAnnealingLR(opt, T_max=num_epochs - 5)\n"
    assert kind_of(src + f"s = {ctor}\n").unit == unit


@pytest.mark.parametrize("src, unit", [
    ("from transformers import get_linear_schedule_with_warmup\n"
     "s = get_linear_schedule_with_warmup(opt, 100, num_training_steps)\n", PER_STEP),
    ("from transformers import get_scheduler\n"
     "s = get_scheduler('cosine', optimizer=opt, num_warmup_steps=0, num_training_steps=n)\n", PER_STEP),
    # sized plainly in epochs: the code means something else than a per-step schedule
    ("from transformers import get_cosine_schedule_with_warmup\n"
     "s = get_cosine_schedule_with_warmup(opt, 1, num_training_steps=args.epochs)\n", UNKNOWN),
])
def test_warmup_factories_are_per_step_by_definition(src, unit):
    assert kind_of(HEADER + src).unit == unit


@pytest.mark.parametrize("src", [
    "s = getattr(torch.optim.lr_scheduler, cfg.name)(opt, **cfg.kwargs)\n",
    "from detectron2.solver import build_lr_scheduler\ns = build_lr_scheduler(cfg, opt)\n",
    "from .utils import get_scheduler\ns = get_scheduler(cfg, opt)\n",
    "def get_lr_scheduler(o, cfg):\n    return build(cfg, o)\ns = get_lr_scheduler(opt, cfg)\n",
    "class StepLR:\n    def step(self):\n        pass\ns = StepLR()\n",
    "s = StepLR(opt, epochs) if flag else build(cfg)\n",
])
def test_schedulers_chosen_elsewhere_have_an_unknown_kind(src):
    kind = kind_of(HEADER + src)
    assert (kind.unit, kind.known) == (UNKNOWN, False)


@pytest.mark.parametrize("src", [
    "def get_lr_scheduler(o):\n    return StepLR(o, 3)\ns = get_lr_scheduler(opt)\n",
    "def make(o, n=3):\n    sched = StepLR(o, step_size=n)\n    return sched\ns = make(opt)\n",
])
def test_a_same_module_factory_is_read_and_its_optimizer_is_the_callers(src):
    m = model_of(HEADER + src)
    role = m.roles.resolve(cst.parse_expression("s"), Frame(m.scopes.module))
    kind = scheduler_kind(role, m.roles)
    assert (kind.unit, kind.known, kind.sizes) == (SIZED, True, (3,))
    assert optimizer_of(role, m.roles) is m.roles.resolve(cst.parse_expression("opt"), Frame(m.scopes.module))


def test_a_name_assigned_two_schedulers_keeps_its_order_but_not_a_unit():
    kind = kind_of(HEADER + """
if flag:
    s = StepLR(opt, step_size=epochs // 2)
else:
    s = OneCycleLR(opt, 0.1, total_steps=epochs * len(loader))
""")
    assert (kind.unit, kind.known) == (UNKNOWN, True)


def test_optimizer_of_follows_the_constructor():
    m = model_of(HEADER + "s = StepLR(opt, 3)\nc = ChainedScheduler([ExponentialLR(opt, gamma=0.9)])\n")
    frame = Frame(m.scopes.module)
    opt = m.roles.resolve(cst.Name("opt"), frame)
    assert optimizer_of(m.roles.resolve(cst.Name("s"), frame), m.roles) is opt
    assert optimizer_of(m.roles.resolve(cst.Name("c"), frame), m.roles) is opt


@pytest.mark.parametrize("header, count", [
    ("for epoch in range(10):", 10),
    ("for epoch in range(1, n + 1):", 5),
    ("for epoch in range(start, start + 200):", 200),
    ("for epoch in tqdm(range(3)):", 3),
    ("for epoch in range(args.epochs):", None),
])
def test_epoch_count_of_literal_ranges(header, count):
    m = model_of(f"n = 5\nstart = int(x)\n{header}\n    pass\n")
    loop = m.builder.loops[0]
    assert epoch_count(loop, m.values) == count


@pytest.mark.parametrize("key, value, expected", [
    ("scheduler is not None", True, True),
    ("self.lr_scheduler is not None", True, True),
    ("scheduler is None", False, True),
    ("sched", True, True),
    ("scheduler is None", True, False),
    ("(i + 1) % accum == 0", True, False),
    ("args.step_per_batch", True, False),
    ("step_scheduler_batch", True, False),
    (None, True, False),
])
def test_presence_tests_are_not_gates(key, value, expected):
    assert presence_test(key, value) is expected


# -- LL201 ------------------------------------------------------------------------------------------------


EPOCH_LOOP = """\
import torch
from torch import nn
model = nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=2)
num_epochs = 3
scheduler = {ctor}
for epoch in range(num_epochs):
    for i, x in enumerate(loader):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
        {batch_step}
    {epoch_step}
"""


def epoch_loop(ctor, batch_step="pass", epoch_step="pass"):
    return EPOCH_LOOP.format(ctor=ctor, batch_step=batch_step, epoch_step=epoch_step)


def test_ll201_epoch_sized_scheduler_stepped_per_batch():
    src = epoch_loop("torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_epochs)", "scheduler.step()")
    assert findings(src) == [("LL201", line_of(src, "scheduler.step()"))]


@pytest.mark.parametrize("ctor, batch_step", [
    # sized in steps, per-step by definition, unknown
    ("torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_epochs * len(loader))", "scheduler.step()"),
    ("torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=num_epochs * len(loader))", "scheduler.step()"),
    ("build_scheduler(optimizer, num_epochs)", "scheduler.step()"),
    # the epoch passed explicitly, or a step gated by an update condition
    ("torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, num_epochs)", "scheduler.step(epoch + i / 4)"),
    ("torch.optim.lr_scheduler.StepLR(optimizer, num_epochs)", "if (i + 1) % 2 == 0: scheduler.step()"),
    ("torch.optim.lr_scheduler.StepLR(optimizer, num_epochs)",
     "accumulating = (i + 1) % 2 != 0\n        if not accumulating: scheduler.step()"),
])
def test_ll201_silent_when_the_unit_or_the_stepping_is_not_per_batch(ctor, batch_step):
    assert findings(epoch_loop(ctor, batch_step)) == []


def test_ll201_follows_the_scheduler_into_the_epoch_helper():
    src = """\
import torch
def train_one_epoch(model, loader, optimizer, scheduler):
    for x in loader:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
        scheduler.step()
def main(epochs):
    model = torch.nn.Linear(2, 1)
    loader = torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=2)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [epochs // 2])
    for epoch in range(epochs):
        train_one_epoch(model, loader, optimizer, scheduler)
"""
    assert findings(src) == [("LL201", 7)]


def test_ll201_a_test_that_cannot_change_within_the_batch_loop_is_no_gate():
    src = """\
import torch
def train_model(model, optimizer, scheduler, dataloaders, num_epochs, step_per_batch):
    for epoch in range(num_epochs):
        for phase in ["train", "val"]:
            for x in dataloaders[phase]:
                optimizer.zero_grad()
                loss = model(x).sum()
                if phase == "train":
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                if step_per_batch:
                    scheduler.step()
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=num_epochs // 3)
train_model(model, optimizer, scheduler, loaders, num_epochs, False)
"""
    # the phase test is fixed while the batch loop runs; a parameter of the helper may be a per-update flag
    assert [f for f in findings(src) if f[0] == "LL201"] == [("LL201", 11)]


def test_ll201_step_loops_have_no_epoch():
    src = """\
import torch
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=num_epochs)
step = 0
while True:
    optimizer.zero_grad()
    model(torch.randn(2, 2)).sum().backward()
    optimizer.step()
    scheduler.step()
    step += 1
    if step > 10:
        break
"""
    assert findings(src) == []


def test_step_counting_loops_around_a_data_loop_have_no_epoch_unit():
    src = """\
import torch
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_steps)
for step in range(max_steps):
    for xb in loader:
        optimizer.zero_grad()
        model(xb).sum().backward()
        optimizer.step()
    scheduler.step()
"""
    assert findings(src) == []
    assert findings(src.replace("for step in range(max_steps):", "for epoch in range(max_epochs):")) == [("LL202", 10)]


def test_ll201_ignores_a_diffusion_sampler_called_scheduler():
    src = """\
import torch
from diffusers import DDPMScheduler
scheduler = DDPMScheduler(num_train_timesteps=10)
model = torch.nn.Linear(2, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    for x in loader:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
        for t in scheduler.timesteps:
            x = scheduler.step(model(x), t, x).prev_sample
"""
    assert findings(src) == []


# -- LL202 ------------------------------------------------------------------------------------------------


def test_ll202_per_step_scheduler_stepped_per_epoch():
    src = epoch_loop("torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, epochs=num_epochs, steps_per_epoch=len(loader))",
                     epoch_step="scheduler.step()")
    assert findings(src) == [("LL202", line_of(src, "scheduler.step()", last=True))]


@pytest.mark.parametrize("ctor", [
    "torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)",
    "torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=num_epochs)",
    "make_scheduler(optimizer)",
])
def test_ll202_silent_for_epoch_and_unknown_schedulers_per_epoch(ctor):
    assert findings(epoch_loop(ctor, epoch_step="scheduler.step()")) == []


def test_ll202_lightning_interval_means_the_framework_steps():
    src = """\
import torch
import lightning as L
class Model(L.LightningModule):
    def training_step(self, batch, batch_idx):
        return self.net(batch).sum()
    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
"""
    assert findings(src) == []


def test_ll202_ignite_handlers_are_not_misplaced_steps():
    src = """\
import torch
from ignite.engine import Events, create_supervised_trainer
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=100)
trainer = create_supervised_trainer(model, optimizer, torch.nn.MSELoss())
trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: scheduler.step())
trainer.run(loader, max_epochs=3)
"""
    assert findings(src) == []


# -- LL203 ------------------------------------------------------------------------------------------------


def test_ll203_top_of_epoch_and_before_the_batch_step():
    top = epoch_loop("torch.optim.lr_scheduler.StepLR(optimizer, 2)").replace(
        "    for i, x in enumerate(loader):", "    scheduler.step()\n    for i, x in enumerate(loader):")
    assert findings(top) == [("LL203", line_of(top, "scheduler.step()"))]
    inside = epoch_loop("torch.optim.lr_scheduler.StepLR(optimizer, 2)").replace(
        "        optimizer.step()", "        scheduler.step()\n        optimizer.step()")
    assert ("LL203", line_of(inside, "scheduler.step()")) in findings(inside)


@pytest.mark.parametrize("prefix", [
    "    if epoch > 0:\n        scheduler.step()\n",  # the epoch's previous steps came first
    "    scheduler.step(epoch)\n",  # the epoch given explicitly
])
def test_ll203_silent_when_the_first_step_cannot_come_first(prefix):
    src = epoch_loop("torch.optim.lr_scheduler.StepLR(optimizer, 2)").replace(
        "    for i, x in enumerate(loader):", prefix + "    for i, x in enumerate(loader):")
    assert findings(src) == []


def test_ll203_guard_shared_with_the_optimizer_step_is_no_gate():
    src = """\
import torch
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 7)
for epoch in range(3):
    for phase in ["train", "val"]:
        if phase == "train":
            scheduler.step()
        for x in loaders[phase]:
            optimizer.zero_grad()
            loss = model(x).sum()
            if phase == "train":
                loss.backward()
                optimizer.step()
"""
    assert findings(src) == [("LL203", 8)]
    assert findings(src.replace('if phase == "train":\n            scheduler.step()',
                                'if epoch > 0:\n            scheduler.step()')) == []


def test_ll203_fast_forward_on_resume_is_not_reported():
    src = epoch_loop("torch.optim.lr_scheduler.StepLR(optimizer, 2)", epoch_step="scheduler.step()").replace(
        "for epoch in range(num_epochs):", "for _ in range(start_epoch):\n    scheduler.step()\nfor epoch in range(num_epochs):")
    assert findings(src) == []


def test_ll203_unknown_and_plateau_schedulers_are_not_judged():
    for ctor, step in [("build_scheduler(cfg, optimizer)", "scheduler.step()"),
                       ("torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)", "scheduler.step(val_loss)")]:
        src = epoch_loop(ctor).replace("    for i, x in enumerate(loader):", f"    {step}\n    for i, x in enumerate(loader):")
        assert findings(src) == [], ctor


def test_ll203_is_recorded_per_path_by_the_interpreter():
    src = epoch_loop("torch.optim.lr_scheduler.StepLR(optimizer, 2)").replace(
        "    for i, x in enumerate(loader):", "    scheduler.step()\n    for i, x in enumerate(loader):")
    m = model_of(src)
    [(sched_step, opt_steps)] = m.facts.sched_before_step.items()
    assert m.source(sched_step.node) == "scheduler.step()"
    assert {m.source(e.node) for e in opt_steps} == {"optimizer.step()"}


# -- LL204 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("step, expected", [
    ("scheduler.step()", ["LL204"]),
    ("scheduler.step(epoch=epoch)", ["LL204"]),
    ("scheduler.step(val_loss)", []),
    ("scheduler.step(metrics=val_loss)", []),
])
def test_ll204_plateau_needs_its_metric(step, expected):
    src = epoch_loop("torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)", epoch_step=step)
    assert [c for c, _ in findings(src)] == expected


def test_ll204_silent_when_the_name_may_hold_another_scheduler():
    src = epoch_loop("ReduceLROnPlateau(optimizer) if plateau else StepLR(optimizer, 1)", epoch_step="scheduler.step()")
    src = "from torch.optim.lr_scheduler import ReduceLROnPlateau, StepLR\n" + src
    assert findings(src) == []


# -- LL205 ------------------------------------------------------------------------------------------------


def test_ll205_stepped_per_batch_and_per_epoch():
    src = epoch_loop("torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=num_epochs * len(loader))",
                     batch_step="scheduler.step()", epoch_step="scheduler.step()")
    assert findings(src) == [("LL205", line_of(src, "scheduler.step()", last=True))]


def test_ll205_silent_for_two_schedulers_or_complementary_flags():
    two = epoch_loop("torch.optim.lr_scheduler.LinearLR(optimizer, total_iters=len(loader))",
                     batch_step="scheduler.step()", epoch_step="decay.step()")
    two = two.replace("num_epochs = 3", "num_epochs = 3\ndecay = torch.optim.lr_scheduler.StepLR(optimizer, 1)")
    assert findings(two) == []
    flags = epoch_loop("torch.optim.lr_scheduler.StepLR(optimizer, 1)",
                       batch_step="if per_batch: scheduler.step()", epoch_step="if not per_batch: scheduler.step()")
    assert [f for f in findings(flags) if f[0] == "LL205"] == []


def test_ll205_fast_forward_before_training_is_not_a_second_step():
    src = epoch_loop("torch.optim.lr_scheduler.StepLR(optimizer, 2)", epoch_step="scheduler.step()").replace(
        "for epoch in range(num_epochs):", "for _ in range(3):\n    scheduler.step()\nfor epoch in range(num_epochs):")
    assert findings(src) == []
