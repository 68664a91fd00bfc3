"""The tests of an imported module's code are the file's tests too (``FileModel`` registers the functions
the file's code calls, transitively): ``if optimizer is not None:`` around both the ``zero_grad()`` and the
``step()`` of an imported ``train`` takes the same arm on every iteration, as it does when ``train`` is in
the linted file. Before, the test was forgotten at the loop's back edge in imported code only, and a path
that zeroed in one iteration and skipped the step in the previous one was reported (LL108)."""
import pytest

from looplint.engine import lint_file

LIB = """\
import torch


def {train}(args, model, sampler):
    {opt} = torch.optim.Adam(model.head.parameters(), 0.1) if args.tune else None
    for step in range(0, args.max_step):
        x, y = next(sampler)
        if {guard}:
            {opt}.zero_grad()
        loss, log = model.forward(x, y)
        loss.backward()
        model.update(0)
        if {step_guard}:
            {opt}.step()
"""

DRIVER = """\
{head}


def main(args, model, sampler):
    {train}(args, model, sampler)


if __name__ == "__main__":
    main(None, None, None)
"""

GUARDS = ["{opt} is not None", "args.tune"]
NAMES = [("train", "optimizer"), ("fit_kge", "dense_opt")]


def codes(tmp_path, train, opt, guard, step_guard):
    lib = LIB.format(train=train, opt=opt, guard=guard.format(opt=opt), step_guard=step_guard.format(opt=opt))
    (tmp_path / "lib.py").write_text(lib)
    (tmp_path / "main.py").write_text(DRIVER.format(head=f"from lib import {train}", train=train))
    (tmp_path / "single.py").write_text(DRIVER.format(head=lib, train=train))
    imported = sorted(d.code for d in lint_file(str(tmp_path / "main.py")))
    assert imported == sorted(d.code for d in lint_file(str(tmp_path / "single.py")))
    return imported


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize("train, opt", NAMES)
def test_one_guard_around_the_zeroing_and_the_step(tmp_path, guard, train, opt):
    assert codes(tmp_path, train, opt, guard, guard) == []
