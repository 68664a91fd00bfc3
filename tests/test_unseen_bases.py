"""A method a class inherits from code the model cannot read may clear or step what ``self`` holds, however
its result is used (looplint.model.values.Values.unseen_ancestry, read by effects.py): ``loss =
self.standard_loss(x, y)`` of a base in a module the linted file imports but the model cannot find is such
a call, so the missing ``zero_grad()`` before ``self.opt.step()`` is in doubt, not reported. A base whose
methods the model reads or knows (a class of the file, of torch, of the standard library, a builtin)
leaves the call a value that touches nothing, and the finding stands."""

import pytest
from shapes import write

from looplint.engine import lint_file

CHILD = """\
    import torch
    {imports}


    {middle}class Child({spelled}):
        def fit_epoch(self, loader):
            self.net.train()
            for x, y in loader:
                {use}
                loss.backward()
                self.{opt}.step()
"""

# (the import, how the class statement spells the base, classes between): bases no module here defines
UNSEEN = {
    "relative": ("from .base import {base}", "{base}", ""),
    "absolute": ("from core.utils import {base}", "{base}", ""),
    "module attribute": ("import core.utils as cu", "cu.{base}", ""),
    "another package": ("from transformers import {base}", "{base}", ""),
    "through a class of the file": ("from .base import {base}", "Middle", "class Middle({base}):\n    pass\n\n\n"),
}
# ... and bases whose methods the model reads or knows
SEEN = {
    "torch module": ("import torch.nn as nn", "nn.Module", ""),
    "object": ("", "object", ""),
    "standard library": ("import abc", "abc.ABC", ""),
    "a class of the file": ("", "Middle", "class Middle:\n    def {loss}(self, x, y):\n        return x.sum()\n\n\n"),
}
# how the inherited method's result is used
USES = {
    "assigned": "loss = self.{loss}(x, y)",
    "unpacked": "out, loss = self.{loss}(x, y)",
    "reduced": "loss = self.{loss}(x, y).mean()",
    "summed": "loss = 0.5 * self.{loss}(x, y) + 1.0",
}
NAMES = [("BaseTrainer", "opt", "standard_loss"), ("Learner", "optimizer", "criterion")]


def lint(tmp_path, imports, spelled, middle, use, base, opt, loss):
    text = CHILD.format(imports=imports.format(base=base), spelled=spelled.format(base=base),
                        middle=middle.format(base=base, loss=loss).replace("\n", "\n    "),
                        use=use.format(loss=loss), opt=opt)
    write(tmp_path, {"pkg/__init__.py": "", "pkg/child.py": text})
    return sorted(d.code for d in lint_file(str(tmp_path / "pkg" / "child.py")))


@pytest.mark.parametrize("imports, spelled, middle", UNSEEN.values(), ids=list(UNSEEN))
@pytest.mark.parametrize("use", USES.values(), ids=list(USES))
@pytest.mark.parametrize("base, opt, loss", NAMES)
def test_a_method_inherited_from_code_the_model_cannot_read_may_clear_the_gradients(
        tmp_path, imports, spelled, middle, use, base, opt, loss):
    assert lint(tmp_path, imports, spelled, middle, use, base, opt, loss) == []


@pytest.mark.parametrize("imports, spelled, middle", SEEN.values(), ids=list(SEEN))
@pytest.mark.parametrize("use", USES.values(), ids=list(USES))
@pytest.mark.parametrize("base, opt, loss", NAMES)
def test_a_method_of_a_base_the_model_reads_or_knows_leaves_the_finding(
        tmp_path, imports, spelled, middle, use, base, opt, loss):
    assert lint(tmp_path, imports, spelled, middle, use, base, opt, loss) == ["LL101"]
