"""Tests whose arms change nothing an analysis tracks are not remembered on paths.

A training script tests many settings inside its loop (``if args.use_ema:``, ``if cfg.prediction_type ==
"epsilon":``), most of them more than once, in arms that compute tensors, call helpers that run no gradient
event, or log. Remembering which arm each path took doubles the paths per setting while every arm leaves
the same state (one diffusers script reached 5,000 paths per block), an EMA's ``step()`` included. Such a
test is now forgotten at once,
in every analysis; a test with an arm that steps, zeroes, clips or jumps is remembered as before. The
findings of a loop are those of the same loop without the settings."""
import pytest

from looplint.engine import lint_source
from looplint.model.events import STEP

from tests.test_model import model_of, PRELUDE

# (what the loop does, the finding it should give): each variant of the loop, with and without a bug
LOOPS = {
    "plain": ("""
for x, y in loader:
{pre}    opt.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
{mid}    opt.step()
""", set()),
    "no_zero": ("""
for x, y in loader:
{pre}    loss = criterion(model(x), y)
    loss.backward()
{mid}    opt.step()
""", {"LL101"}),
    "clip_before_backward": ("""
for x, y in loader:
{pre}    opt.zero_grad()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    loss = criterion(model(x), y)
    loss.backward()
{mid}    opt.step()
""", {"LL403"}),
}

HELPER = """
def weights_for(strategy, n):
    w = torch.ones(n)
    if strategy == "later":
        w = w * 2
    return w

"""


def _settings(count: int, where: str) -> str:
    """``count`` settings, each tested where a real script tests it, in arms that change nothing tracked."""
    out = []
    for k in range(count):
        arm = (f"        w{k} = weights_for(args.s{k}, 4)\n" if k % 4 == 0 else
               f"        print(args.s{k}, x.shape)\n" if k % 4 == 1 else
               f"        y = y * {k + 2}\n" if k % 4 == 2 else
               "        ema.step(model.parameters())\n")  # the step of no optimizer
        out.append(f"    if args.s{k}:\n{arm}    else:\n        y = y + 0\n" if where == "pre" else
                   f"    if args.s{k}:\n        print('setting', {k})\n")
    return "".join(out)


def _program(loop: str, count: int) -> str:
    body, _found = LOOPS[loop]
    return PRELUDE + "args = parse()\n" + HELPER + body.format(pre=_settings(count, "pre"), mid=_settings(count, "mid"))


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("count", [1, 4, 9])
def test_the_settings_change_no_finding(loop, count):
    plain = {d.code for d in lint_source(_program(loop, 0), "t.py")}
    assert plain >= LOOPS[loop][1]
    assert {d.code for d in lint_source(_program(loop, count), "t.py")} == plain


@pytest.mark.parametrize("count", [1, 4, 9])
def test_paths_do_not_remember_settings_that_change_nothing(count):
    m = model_of(_program("plain", count))
    steps = [e for e, _role, _states in m.optimizer_events(STEP) if m.source(e.node) == "opt.step()"]
    assert steps
    remembered = {k for e in steps for guard in m.facts.guards[e] for k, _v in guard}
    assert not any(k.startswith("args.s") for k in remembered), remembered
    assert not m.facts.over_budget


def test_a_setting_that_gates_a_jump_is_remembered():
    source = PRELUDE + "args = parse()\n" + """
for x, y in loader:
    if args.skip:
        y = y * 2
    opt.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    if args.skip:
        continue
    opt.step()
"""
    m = model_of(source)
    steps = [e for e, _role, _states in m.optimizer_events(STEP) if m.source(e.node) == "opt.step()"]
    remembered = {k for e in steps for guard in m.facts.guards[e] for k, _v in guard}
    assert any(k.startswith("args.skip") for k in remembered), remembered
