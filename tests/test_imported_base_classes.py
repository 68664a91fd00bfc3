"""A class of the linted file that derives from a class of another module of the project inherits its
methods and attributes (looplint.model.values.Values.base_classes): ``loss = self.plain_loss(x, y)`` runs
the base's ``plain_loss`` (which may clear the gradients), and ``self.opt`` is the optimizer the base's
``__init__`` builds."""

import pytest
from shapes import write

from looplint.engine import lint_file


BASE = """\
    import torch


    class {base}:
        def __init__(self, net, lr):
            self.net = net
            self.{opt} = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)

        def {loss}(self, x, y):
            {clear}
            return ((self.net(x) - y) ** 2).mean()
"""

CHILD = """\
    import torch
    {imports}


    class Child({spelled}):
        def fit_epoch(self, loader):
            self.net.train()
            for x, y in loader:
                loss = self.{loss}(x, y)
                loss.backward()
                self.{opt}.step()
"""

# (files besides the base module's, where the base module is, import, how the class statement spells it)
LAYOUTS = [
    ({"core/__init__.py": ""}, "core/base.py", "core/child.py", "from .base import {base}", "{base}"),
    ({"core/__init__.py": "from .base import {base}\n"}, "core/base.py", "core/child.py", "from core import {base}", "{base}"),
    ({}, "base.py", "child.py", "import base as b", "b.{base}"),
    ({}, "base.py", "child.py", "from base import {base} as Parent", "Parent"),
    ({"pkg/__init__.py": "", "pkg/common/__init__.py": "", "pkg/train/__init__.py": ""}, "pkg/common/trainers.py",
     "pkg/train/child.py", "from ..common.trainers import {base}", "{base}"),
]


def lint(tmp_path, layout, base_path, child_path, imports, spelled, base, opt, loss, clear):
    files = {k: v.format(base=base) for k, v in layout.items()}
    files[base_path] = BASE.format(base=base, opt=opt, loss=loss, clear=clear)
    files[child_path] = CHILD.format(imports=imports.format(base=base), spelled=spelled.format(base=base),
                                     loss=loss, opt=opt)
    write(tmp_path, files)
    return sorted(d.code for d in lint_file(str(tmp_path / child_path)))


@pytest.mark.parametrize("layout, base_path, child_path, imports, spelled", LAYOUTS)
@pytest.mark.parametrize("base, opt, loss", [("BaseTrainer", "opt", "plain_loss"), ("Learner", "optimizer", "criterion_step")])
def test_an_inherited_method_that_clears_the_gradients_is_read(tmp_path, layout, base_path, child_path, imports,
                                                               spelled, base, opt, loss):
    clear = f"self.{opt}.zero_grad()"
    assert lint(tmp_path, layout, base_path, child_path, imports, spelled, base, opt, loss, clear) == []


@pytest.mark.parametrize("layout, base_path, child_path, imports, spelled", LAYOUTS)
@pytest.mark.parametrize("base, opt, loss", [("BaseTrainer", "opt", "plain_loss"), ("Learner", "optimizer", "criterion_step")])
def test_an_inherited_method_that_clears_nothing_leaves_the_gradients(tmp_path, layout, base_path, child_path,
                                                                      imports, spelled, base, opt, loss):
    # the optimizer the base builds is the one stepped; nothing clears it
    assert lint(tmp_path, layout, base_path, child_path, imports, spelled, base, opt, loss, "pass") == ["LL101"]
