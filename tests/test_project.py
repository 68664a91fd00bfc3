"""The project service (looplint/model/project.py): names imported from other modules of the same project
are read like definitions of the linted file, found the way Python finds them."""
import os
import textwrap

import libcst as cst
import pytest

from looplint.engine import lint_file, lint_source
from shapes import HELPER_CLASS, write


def codes(path):
    return sorted((d.code, d.line) for d in lint_file(str(path)))


# A factory in another module builds an LBFGS: its step needs a closure (LL304). Unknown: silent.
LBFGS_HELPER = """\
    import torch


    def build_solver(net, lr=0.1):
        return torch.optim.LBFGS(net.parameters(), lr=lr)
"""

FIT = """\
    import torch
    from torch import nn
    {imports}


    def fit(loader):
        net = nn.Linear(4, 1)
        solver = {call}(net)
        for x, y in loader:
            solver.zero_grad()
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            solver.step()
"""


@pytest.mark.parametrize("layout, main, imports, call", [
    ({"helpers.py": LBFGS_HELPER}, "train.py", "from helpers import build_solver", "build_solver"),
    ({"helpers.py": LBFGS_HELPER}, "train.py", "import helpers as h", "h.build_solver"),
    ({"helpers.py": LBFGS_HELPER}, "train.py", "from helpers import build_solver as make", "make"),
    ({"pkg/__init__.py": "", "pkg/optim_utils.py": LBFGS_HELPER}, "pkg/train.py",
     "from .optim_utils import build_solver", "build_solver"),
    ({"pkg/__init__.py": "", "pkg/common/__init__.py": "", "pkg/common/opt.py": LBFGS_HELPER},
     "pkg/scripts/train.py", "from ..common.opt import build_solver", "build_solver"),
    ({"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/factories.py": LBFGS_HELPER}, "pkg/sub/train.py",
     "from pkg.factories import build_solver", "build_solver"),  # absolute, from the top package's folder
    ({"lib/__init__.py": "from .impl import build_solver\n", "lib/impl.py": LBFGS_HELPER}, "train.py",
     "from lib import build_solver", "build_solver"),  # one re-export
    ({"lib/__init__.py": "", "lib/impl.py": LBFGS_HELPER}, "train.py",
     "from lib import impl", "impl.build_solver"),  # a submodule imported by name
])
def test_a_factory_of_another_module_is_read_like_a_local_one(tmp_path, layout, main, imports, call):
    write(tmp_path, dict(layout, **{main: FIT.format(imports=imports, call=call)}))
    assert codes(tmp_path / main) == [("LL304", 13)]


@pytest.mark.parametrize("layout", [
    {},  # no such module
    {"helpers.py": "def build_solver(net:\n    pass\n"},  # a syntax error in it
    {"helpers.py": "from other import build_solver\n", "other.py": "from third import build_solver\n",
     "third.py": LBFGS_HELPER},  # two re-exports: beyond what is followed
    {"helpers.py": "from train import build_solver\n"},  # a cycle back to the linted file
])
def test_what_cannot_be_read_stays_unknown(tmp_path, layout):
    write(tmp_path, dict(layout, **{"train.py": FIT.format(imports="from helpers import build_solver", call="build_solver")}))
    assert codes(tmp_path / "train.py") == []


@pytest.mark.parametrize("layout, main, imports", [
    ({"accelerate/__init__.py": "", "accelerate/optim.py": LBFGS_HELPER}, "train.py",
     "from accelerate.optim import build_solver"),  # absolute, from the framework's own repository
    ({"src/lightning/__init__.py": "", "src/lightning/opt.py": LBFGS_HELPER, "src/lightning/demo/__init__.py": ""},
     "src/lightning/demo/train.py", "from ..opt import build_solver"),  # relative, inside the package
    ({"deepspeed/__init__.py": "from .impl import build_solver\n", "deepspeed/impl.py": LBFGS_HELPER}, "train.py",
     "from deepspeed import build_solver"),  # a re-export of the package
])
def test_a_frameworks_own_source_is_not_read(tmp_path, layout, main, imports):
    """The framework table says what a framework's names do (frameworks.py), also in the framework's own
    repository, where its package is a module of the project: a factory of it is unknown, as it is to a
    user who installed the framework. The same module in a package of another name is read (above)."""
    def renamed(text: str) -> str:
        for framework in ("accelerate", "lightning", "deepspeed"):
            text = text.replace(framework, "mylib")
        return text

    write(tmp_path, dict(layout, **{main: FIT.format(imports=imports, call="build_solver")}))
    assert codes(tmp_path / main) == []
    other = tmp_path / "other"
    write(other, {**{renamed(k): v for k, v in layout.items()},
                  renamed(main): FIT.format(imports=renamed(imports), call="build_solver")})
    assert codes(other / renamed(main)) == [("LL304", 13)]


# A helper of another module that receives the loss: only one that runs backward is a backward.
STEP_LOOP = """\
    import torch
    from torch import nn
    from tools import {name}


    def fit(model, loader):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            {name}(loss)
            opt.step()
"""


@pytest.mark.parametrize("tools, name, expected", [
    ("def log_value(v):\n    print(float(v))\n", "log_value", [("LL104", 12)]),
    ("def scaled(v, k=2.0):\n    return v * k\n", "scaled", [("LL104", 12)]),  # computes, returns: no backward
    ("def backprop(v):\n    v.backward()\n", "backprop", []),
    ("def backprop(v):\n    helper(v)\n\ndef helper(v):\n    v.backward()\n", "backprop", []),
])
def test_what_a_helper_of_another_module_does_to_its_arguments(tmp_path, tools, name, expected):
    write(tmp_path, {"tools.py": tools, "train.py": STEP_LOOP.format(name=name)})
    assert codes(tmp_path / "train.py") == expected


def test_an_unknown_helper_that_receives_the_loss_still_silences(tmp_path):
    write(tmp_path, {"train.py": STEP_LOOP.format(name="log_value")})  # no tools.py
    assert codes(tmp_path / "train.py") == []


CLASSES = """\
    import torch
    from torch import nn


    class Base(nn.Module):
        pass


    class Net(Base):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 1)


    class Meter:
        def __init__(self):
            self.total = 0.0

        def add(self, value):
            self.total += float(value)
"""


def test_classes_of_another_module(tmp_path):
    from looplint.model import build_model
    from looplint.model.roles import MODULE, OTHER

    write(tmp_path, {"models.py": CLASSES})
    source = "import models\nfrom models import Meter\nnet = models.Net()\nmeter = Meter()\nother = Missing()\n"
    model = build_model(cst.parse_module(source), str(tmp_path / "train.py"))
    calls = [s.body[0].value for s in model.module.body[2:]]
    assert [model.roles.ctor_kind(c)[0] for c in calls] == [MODULE, OTHER, None]


def test_a_method_of_a_plain_class_of_another_module_has_no_gradient_effect(tmp_path):
    loop = STEP_LOOP.format(name="Meter").replace("Meter(loss)", "meter.add(loss)").replace(
        "        for x, y", "        meter = Meter()\n        for x, y")
    write(tmp_path, {"tools.py": CLASSES, "train.py": loop})
    assert codes(tmp_path / "train.py") == [("LL104", 13)]


def test_findings_never_point_into_the_other_module(tmp_path):
    helper = """\
        def train_epoch(model, opt, loader):
            for x, y in loader:
                loss = ((model(x) - y) ** 2).mean()
                loss.backward()
                opt.step()
    """
    main = """\
        import torch
        from loops import train_epoch


        def fit(model, loader):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for epoch in range(3):
                train_epoch(model, opt, loader)
    """
    write(tmp_path, {"loops.py": helper, "train.py": main})
    found = lint_file(str(tmp_path / "train.py"))
    assert all(d.path == str(tmp_path / "train.py") and d.line <= 8 for d in found)


# A helper module that runs the gradient events a training file drives: a finding in its code is reported at
# the one call of the training file that runs it.
STEPPER = HELPER_CLASS.replace("{Helper}", "{Cls}") + """

def {fn}(opt):
    opt.step()
"""

DRIVER = """\
    import torch
    {imports}


    class Loop:
        def __init__(self, model, data):
            self.model = model
            self.data = data
            self.{attr} = {ctor}(model)
            self.opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def run(self):
            for batch in self.data:
    {clears}            loss = self.model(batch).sum()
                self.{attr}.{back}(loss)
                {stepping}
"""


@pytest.mark.parametrize("imports, ctor, module_of", [
    ("from .stepping import {Cls}, {fn}", "{Cls}", ""),
    ("from pkg.stepping import {Cls}, {fn}", "{Cls}", ""),
    ("from .stepping import *", "{Cls}", ""),
    ("from pkg.stepping import *", "{Cls}", ""),
    ("from pkg.other import *\n    from pkg.stepping import *", "{Cls}", ""),
    ("from pkg import stepping", "stepping.{Cls}", "stepping."),
])
@pytest.mark.parametrize("names", [
    dict(Cls="Helper", clear="zero", back="backward", apply="optimize", fn="optimize_fn", attr="helper"),
    dict(Cls="MixedPrecision", clear="clear_grads", back="run_backward", apply="take", fn="apply_update", attr="mp"),
])
@pytest.mark.parametrize("through", ["method", "function"])
def test_a_finding_in_an_imported_helper_is_reported_at_the_call_that_runs_it(
        tmp_path, imports, ctor, module_of, names, through):
    stepping = ("self.{attr}.{apply}(self.opt)" if through == "method" else module_of + "{fn}(self.opt)").format(**names)

    def driver(clears):
        return DRIVER.format(imports=imports.format(**names), ctor=ctor.format(**names), stepping=stepping,
                             clears="            self.{attr}.{clear}()\n    ".format(**names) if clears else "", **names)

    # a module a star import reads before ``stepping``'s: ``stepping``, imported last, binds the names
    shadowed = "def {fn}(opt):\n    opt.zero_grad()\n    opt.step()\n".format(**names)
    write(tmp_path, {"pkg/__init__.py": "", "pkg/stepping.py": STEPPER.format(**names), "pkg/other.py": shadowed,
                     "pkg/train.py": driver(False), "pkg/good.py": driver(True)})
    found = lint_file(str(tmp_path / "pkg" / "train.py"))
    call_row = next(i for i, row in enumerate(textwrap.dedent(driver(False)).splitlines(), 1) if stepping in row)
    assert [(d.code, d.line) for d in found] == [("LL101", call_row)]
    assert found[0].message.endswith("(in `stepping.py`, run by this call)") and found[0].fix is None
    assert lint_file(str(tmp_path / "pkg" / "good.py")) == []


def test_a_finding_in_an_imported_helper_that_two_calls_run_is_not_reported(tmp_path):
    names = dict(Cls="Helper", clear="zero", back="backward", apply="optimize", fn="optimize_fn", attr="helper")
    text = textwrap.dedent(DRIVER.format(imports="from .stepping import Helper", ctor="Helper", clears="",
                                         stepping="self.helper.optimize(self.opt)", **names))
    # a second loop that runs the same step correctly: the facts at the helper's step are joined over both
    text += "\n    def again(self):\n        for batch in self.data:\n            self.opt.zero_grad()\n" \
            "            self.model(batch).sum().backward()\n            self.helper.optimize(self.opt)\n"
    write(tmp_path, {"pkg/__init__.py": "", "pkg/stepping.py": STEPPER.format(**names)})
    (tmp_path / "pkg" / "train.py").write_text(text, encoding="utf-8")
    assert lint_file(str(tmp_path / "pkg" / "train.py")) == []


@pytest.mark.parametrize("stepping, imports", [
    ("optimize_fn(opt)", "from stepping import optimize_fn"),
    ("stepping.optimize_fn(opt)", "import stepping"),
    ("Helper(model).optimize(opt)", "from stepping import Helper"),
])
def test_a_loss_without_history_is_found_when_only_a_helper_module_steps(tmp_path, stepping, imports):
    names = dict(Cls="Helper", clear="zero", back="backward", apply="optimize", fn="optimize_fn")
    main = f"""\
        import torch
        {imports}


        def fit(model, loader):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for x in loader:
                opt.zero_grad()
                loss = model(x).sum().detach()
                loss.requires_grad_()
                loss.backward()
                {stepping}
    """
    write(tmp_path, {"stepping.py": STEPPER.format(**names), "train.py": main})
    assert codes(tmp_path / "train.py") == [("LL112", 10)]


@pytest.mark.parametrize("helper, call", [
    ("def backprop(l):\n    l.backward()\n", "backprop(loss)"),
    ("def run_backward(model, objective=None):\n    objective.backward()\n", "run_backward(model, objective=loss)"),
])
def test_a_loss_without_history_is_found_when_a_helper_module_runs_its_backward(tmp_path, helper, call):
    main = f"""\
        import torch
        from tools import *


        def fit(model, loader):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for x in loader:
                opt.zero_grad()
                with torch.no_grad():
                    loss = model(x).sum()
                loss.requires_grad = True
                {call}
                opt.step()
    """
    write(tmp_path, {"tools.py": helper, "train.py": main.replace("from tools import *",
                                                                  "from tools import " + call.split("(")[0])})
    assert codes(tmp_path / "train.py") == [("LL112", 11)]


def test_stdin_resolves_against_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path, {"helpers.py": LBFGS_HELPER})
    source = textwrap.dedent(FIT.format(imports="from helpers import build_solver", call="build_solver"))
    monkeypatch.chdir(tmp_path)
    assert sorted(d.code for d in lint_source(source, "<stdin>")) == ["LL304"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert lint_source(source, "<stdin>") == []
    assert sorted(d.code for d in lint_source(source, str(tmp_path / "named.py"))) == ["LL304"]  # --stdin-filename


def test_editing_the_imported_module_relints_through_the_cache(tmp_path, monkeypatch, capsys):
    from looplint.cli import main

    write(tmp_path, {"tools.py": "def log_value(v):\n    print(float(v))\n", "train.py": STEP_LOOP.format(name="log_value")})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPLINT_NO_CACHE", raising=False)
    args = ["--isolated", "--cache-dir", str(tmp_path / "cache"), "train.py"]
    assert main(args) == 1 and "LL104" in capsys.readouterr().out
    write(tmp_path, {"tools.py": "def log_value(v):\n    v.backward()  # now it runs backward\n"})
    assert main(args) == 0  # a new key: the stored LL104 is not served
    assert main(args) == 0 and "LL104" not in capsys.readouterr().out
    os.remove(tmp_path / "tools.py")
    write(tmp_path, {"tools/__init__.py": "def log_value(v):\n    print(v)\n"})  # a module that appears
    assert main(args) == 1


def test_only_the_imported_modules_are_read(tmp_path):
    from looplint.model import build_model

    write(tmp_path, {"helpers.py": LBFGS_HELPER, "unrelated.py": LBFGS_HELPER, "other.py": "x = 1\n"})
    source = textwrap.dedent(FIT.format(imports="from helpers import build_solver; import other", call="build_solver"))
    model = build_model(cst.parse_module(source), str(tmp_path / "train.py"))
    list(model.facts.roots)
    assert [os.path.basename(p) for p in model.scopes.project.read] == ["helpers.py"]


def test_a_scheduler_built_in_another_module_is_sized_like_a_local_one(tmp_path):
    utils = """\
        from torch.optim.lr_scheduler import StepLR


        def build_sched(optimizer, every=30):
            return StepLR(optimizer, step_size=every)
    """
    main = """\
        import torch
        import sched_utils as su


        def train(model, loader, epochs=90):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            sched = su.build_sched(opt)
            for epoch in range(epochs):
                for x, y in loader:
                    opt.zero_grad()
                    ((model(x) - y) ** 2).mean().backward()
                    opt.step()
                    sched.step()
    """
    write(tmp_path, {"train.py": main})
    assert codes(tmp_path / "train.py") == []  # unknown scheduler: never reported
    write(tmp_path, {"sched_utils.py": utils})
    assert codes(tmp_path / "train.py") == [("LL201", 13)]


def test_a_module_that_defines_no_name_looked_up_is_not_parsed_with_libcst(tmp_path):
    """Project.module decides on Python's own tree whether a module can answer a lookup (project.names); an
    edit that adds the name (a new stamp) is seen, and names a module defines in nested blocks, classes at
    any depth and re-exports still resolve."""
    import time

    from looplint.model import project

    write(tmp_path, {"helpers.py": "def other(net):\n    return net\n"})
    main = FIT.format(imports="from helpers import build_solver", call="build_solver")
    write(tmp_path, {"train.py": main})
    before = set(project._parsed)
    assert codes(tmp_path / "train.py") == []
    assert not any(p.endswith("helpers.py") for p in set(project._parsed) - before)  # never parsed with libcst
    time.sleep(0.01)
    write(tmp_path, {"helpers.py": textwrap.dedent(LBFGS_HELPER) + "\n\ndef other(net):\n    return net\n"})  # the name appears
    assert codes(tmp_path / "train.py") == [("LL304", 13)]
    guarded = "import torch\ntry:\n    import fast\nexcept ImportError:\n    def build_solver(net):\n" \
              "        return torch.optim.LBFGS(net.parameters())\n"
    write(tmp_path, {"guarded.py": guarded, "reexport.py": "if True:\n    from helpers import build_solver as build_solver\n"})
    for module in ("guarded", "reexport"):
        write(tmp_path, {"train.py": FIT.format(imports=f"from {module} import build_solver", call="build_solver")})
        assert codes(tmp_path / "train.py") == [("LL304", 13)], module
