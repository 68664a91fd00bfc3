"""LL206 and its model (looplint/model/restarts.py): a scheduler rebuilt on every pass of a training
loop over an optimizer that persists, when its schedule is longer than one pass."""
import textwrap

import pytest

from conftest import fixed_body
from looplint.engine import lint_source
from looplint.rule import rule_by_code

HEADER = """\
import torch
from torch import nn
from torch.optim.lr_scheduler import StepLR, CosineAnnealingLR, ExponentialLR, OneCycleLR
from transformers import get_linear_schedule_with_warmup
model = nn.Linear(4, 1)
loader = torch.utils.data.DataLoader([])
num_epochs = 10
"""
TRAIN = """
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
"""


def findings(body: str):
    src = HEADER + textwrap.dedent(body)
    lines = src.splitlines()
    return [lines[d.line - 1].strip() for d in lint_source(src, "t.py", rules=[rule_by_code("LL206")])]


@pytest.mark.parametrize("body, ctor", [
    # built and stepped once per epoch (another name, a horizon in epochs)
    ("""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        sched = CosineAnnealingLR(optimizer, T_max=num_epochs)""" + TRAIN + """
        sched.step()
    """, "sched = CosineAnnealingLR(optimizer, T_max=num_epochs)"),
    ("""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        lr_decay = StepLR(optimizer, step_size=3, gamma=0.5)""" + TRAIN + """
        lr_decay.step()
    """, "lr_decay = StepLR(optimizer, step_size=3, gamma=0.5)"),
    # built per epoch, stepped per batch, sized for the whole run
    ("""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    total_steps = num_epochs * len(loader)
    for epoch in range(num_epochs):
        scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=100, num_training_steps=total_steps)
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    """, "scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=100, num_training_steps=total_steps)"),
    ("""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        scheduler = OneCycleLR(optimizer, max_lr=0.1, epochs=num_epochs, steps_per_epoch=len(loader))
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    """, "scheduler = OneCycleLR(optimizer, max_lr=0.1, epochs=num_epochs, steps_per_epoch=len(loader))"),
    # in a function, the optimizer a parameter built by the caller
    ("""
    def fit(model, optimizer, epochs):
        for epoch in range(epochs):
            scheduler = StepLR(optimizer, step_size=30)
            for x, y in loader:
                optimizer.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            scheduler.step()
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs)
    """, "scheduler = StepLR(optimizer, step_size=30)"),
])
def test_scheduler_rebuilt_every_pass_is_reported(body, ctor):
    assert findings(body) == [ctor]


def test_a_factor_that_reads_the_step_count_has_a_horizon():
    # MultiplicativeLR whose factor changes with the step: a new one starts counting again
    assert findings("""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        sched = torch.optim.lr_scheduler.MultiplicativeLR(optimizer, lambda epoch: 0.5 if epoch % 3 == 0 else 1.0)""" + TRAIN + """
        sched.step()
    """) == ["sched = torch.optim.lr_scheduler.MultiplicativeLR(optimizer, lambda epoch: 0.5 if epoch % 3 == 0 else 1.0)"]


@pytest.mark.parametrize("body", [
    # a fresh optimizer and scheduler per fold / per setting
    """
    for lr in (0.1, 0.01):
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        scheduler = StepLR(optimizer, step_size=3)
        for epoch in range(num_epochs):""" + textwrap.indent(TRAIN, "    ") + """
            scheduler.step()
    """,
    # one cosine cycle per epoch, sized by the epoch's batches: restarting is the design
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        scheduler = CosineAnnealingLR(optimizer, T_max=len(loader))
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    """,
    # rebuilt behind a test: warm restarts every few epochs
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        if epoch % 5 == 0:
            scheduler = StepLR(optimizer, step_size=2)""" + TRAIN + """
        scheduler.step()
    """,
    # resumed where the previous one was
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        scheduler = StepLR(optimizer, step_size=2, last_epoch=epoch - 1)""" + TRAIN + """
        scheduler.step()
    """,
    # built once before the loop
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = StepLR(optimizer, step_size=2)
    for epoch in range(num_epochs):""" + TRAIN + """
        scheduler.step()
    """,
    # no horizon: each new one multiplies the current rate by the same factor, the decay goes on
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        lr_decay = ExponentialLR(optimizer, gamma=0.9)""" + TRAIN + """
        lr_decay.step()
    """,
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    decay = 0.95
    for epoch in range(num_epochs):
        for x, y in loader:
            sched = torch.optim.lr_scheduler.MultiplicativeLR(optimizer, lr_lambda=lambda step: decay)
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            sched.step()
    """,
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        sched = torch.optim.lr_scheduler.ChainedScheduler([ExponentialLR(optimizer, gamma=0.9)])""" + TRAIN + """
        sched.step()
    """,
    # a scheduler of unknown unit
    """
    from schedules import make_schedule
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, make_schedule(epoch))""" + TRAIN + """
        scheduler.step()
    """,
])
def test_schedulers_built_with_their_optimizer_or_on_purpose_are_silent(body):
    assert findings(body) == []


def fixed(body: str) -> str:
    return fixed_body(HEADER, body, ["LL206"])


@pytest.mark.parametrize("body, after", [
    ("""
    def fit(model, optimizer, epochs):
        for epoch in range(epochs):
            scheduler = StepLR(optimizer, step_size=30)
            for x, y in loader:
                optimizer.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            scheduler.step()
    """, """
    def fit(model, optimizer, epochs):
        scheduler = StepLR(optimizer, step_size=30)
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            scheduler.step()
    """),
    # a while loop over epochs, an attribute target, a horizon read from attributes the loop does not assign
    ("""
    class Fit:
        def run(self):
            self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            epoch = 0
            while epoch < self.epochs:
                self.sched = OneCycleLR(self.optimizer, max_lr=0.1, epochs=self.epochs, steps_per_epoch=len(self.loader))
                for x, y in self.loader:
                    self.optimizer.zero_grad()
                    nn.functional.mse_loss(model(x), y).backward()
                    self.optimizer.step()
                    self.sched.step()
                epoch += 1
    """, """
    class Fit:
        def run(self):
            self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            epoch = 0
            self.sched = OneCycleLR(self.optimizer, max_lr=0.1, epochs=self.epochs, steps_per_epoch=len(self.loader))
            while epoch < self.epochs:
                for x, y in self.loader:
                    self.optimizer.zero_grad()
                    nn.functional.mse_loss(model(x), y).backward()
                    self.optimizer.step()
                    self.sched.step()
                epoch += 1
    """),
])
def test_ll206_fix_hoists_the_constructor(body, after):
    assert fixed(body) == textwrap.dedent(after)
    assert findings(after) == []


@pytest.mark.parametrize("body", [
    # the horizon reads what the loop assigns (a loader rebuilt per epoch, the epoch counter)
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        loader = torch.utils.data.DataLoader([], batch_size=2 ** epoch)
        scheduler = CosineAnnealingLR(optimizer, T_max=num_epochs * len(loader))
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    """,
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        sched = StepLR(optimizer, step_size=num_epochs - epoch)""" + TRAIN + """
        sched.step()
    """,
    # not a statement of the loop's own body (under a test, in a with block)
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        if model.training:
            sched = StepLR(optimizer, step_size=2)""" + TRAIN + """
        sched.step()
    """,
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        with torch.no_grad():
            sched = StepLR(optimizer, step_size=2)""" + TRAIN + """
        sched.step()
    """,
])
def test_ll206_no_fix_when_the_constructor_depends_on_the_loop_or_is_nested(body):
    assert len(findings(body)) == 1
    assert fixed(body) == textwrap.dedent(body)


@pytest.mark.parametrize("body, ctor", [
    # an optimizer built by code looplint cannot see, bound to a name the loop does not rebind
    ("""
    from mylib import build_optimizer
    opt = build_optimizer(model, lr=0.1)
    for epoch in range(num_epochs):
        sched = StepLR(opt, step_size=5)
        for x, y in loader:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        sched.step()
    """, "sched = StepLR(opt, step_size=5)"),
    # the optimizer taken from a list; a horizon of a literal number of passes over the data
    ("""
    optimizers = [torch.optim.Adam(model.parameters())]
    for epoch in range(4):
        scheduler = CosineAnnealingLR(optimizers[0], T_max=4 * len(loader))
        for x, y in loader:
            optimizers[0].zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizers[0].step()
            scheduler.step()
    """, "scheduler = CosineAnnealingLR(optimizers[0], T_max=4 * len(loader))"),
    ("""
    EPOCHS = 3
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(EPOCHS):
        scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=len(loader) * EPOCHS)
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    """, "scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=len(loader) * EPOCHS)"),
])
def test_restarts_over_unseen_or_listed_optimizers_and_counted_passes(body, ctor):
    assert findings(body) == [ctor]


@pytest.mark.parametrize("body", [
    # an optimizer we cannot see, rebuilt in the loop (a fresh one per fold)
    """
    from mylib import build_optimizer
    for fold in range(5):
        opt = build_optimizer(model)
        sched = StepLR(opt, step_size=5)
        for x, y in loader:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        sched.step()
    """,
    # one pass over the data per schedule (a cycle per epoch)
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(num_epochs):
        scheduler = CosineAnnealingLR(optimizer, T_max=1 * len(loader))
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    """,
])
def test_unseen_optimizers_rebuilt_or_one_pass_schedules_are_silent(body):
    assert findings(body) == []


# The optimizer built in another module of the project (project.py): its construction is found where the
# analysis entered that module, and the loops it runs in are the call site's.
OPT_FACTORY = """\
    import torch


    def build_optimizer(net, lr=0.1):
        return torch.optim.SGD(net.parameters(), lr=lr)
"""
OPT_HOLDER = """\
    import torch


    class Solver:
        def __init__(self, net):
            self.net = net
            self.opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
"""
RUN = """\
    import torch
    from torch import nn
    from torch.optim.lr_scheduler import CosineAnnealingLR, StepLR
    {imports}


    def train(loader, epochs):
        net = nn.Linear(4, 1)
        {build}
        for epoch in range(epochs):
            {inner}sched = {sched}
            for x, y in loader:
                {opt}.zero_grad()
                ((net(x) - y) ** 2).mean().backward()
                {opt}.step()
                sched.step()
"""


def _project(tmp_path, layout, main, **fields):
    from test_project import write
    from looplint.engine import lint_file

    write(tmp_path, dict(layout, **{main: RUN.format(**fields)}))
    return [(d.code, d.line) for d in lint_file(str(tmp_path / main), rules=[rule_by_code("LL206")])]


@pytest.mark.parametrize("layout, main, imports, build, opt", [
    ({"helpers.py": OPT_FACTORY}, "train.py", "from helpers import build_optimizer",
     "optimizer = build_optimizer(net)", "optimizer"),
    ({"pkg/__init__.py": "", "pkg/optim.py": OPT_FACTORY}, "pkg/run.py", "from . import optim as o",
     "optimizer = o.build_optimizer(net, lr=0.5)", "optimizer"),
    ({"pkg/__init__.py": "", "pkg/solvers.py": OPT_HOLDER}, "pkg/run.py", "from .solvers import Solver",
     "solver = Solver(net)", "solver.opt"),
])
def test_restart_over_an_optimizer_built_in_another_module(tmp_path, layout, main, imports, build, opt):
    sched = f"CosineAnnealingLR({opt}, T_max=epochs * len(loader))"
    assert _project(tmp_path, layout, main, imports=imports, build=build, opt=opt, inner="", sched=sched) \
        == [("LL206", 11)]


@pytest.mark.parametrize("layout, imports, build, opt", [
    ({"helpers.py": OPT_FACTORY}, "from helpers import build_optimizer", "optimizer = build_optimizer(net)", "optimizer"),
    ({"helpers.py": OPT_HOLDER}, "from helpers import Solver", "solver = Solver(net)", "solver.opt"),
])
def test_an_optimizer_of_another_module_built_again_each_epoch_is_silent(tmp_path, layout, imports, build, opt):
    # the factory called in the loop: a fresh optimizer and scheduler per epoch
    inner = build + "\n            "
    sched = f"StepLR({opt}, step_size=30)"
    assert _project(tmp_path, layout, "train.py", imports=imports, build="pass", opt=opt, inner=inner,
                    sched=sched) == []
