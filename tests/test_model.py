"""The training-loop model's pieces: roles, loop kinds, and the gradient typestate across branches,
nested loops and calls. Each test states a program and what the model must conclude about it."""
import textwrap

import libcst as cst
import pytest

from looplint.model import BATCH, EPOCH, FRESH, MICRO, NONE, STALE, STEP, USED, build_model
from looplint.model.events import STEP as STEP_EVENT
from looplint.model.events import ZERO, Loop
from looplint.model.roles import LOADER, MODULE, OPTIMIZER, SCALER, SCHEDULER, UNKNOWN, Frame, name_kind


def model_of(src: str):
    return build_model(cst.parse_module(textwrap.dedent(src)))


def role_of(m, name: str, fn_name: str = "<module>"):
    fn = next(f for f in m.scopes.functions if f.name == fn_name)
    return m.roles.resolve(cst.parse_expression(name), Frame(fn))


def step_states(m, text: str):
    """The gradient states (by name) the optimizer is in when the step call ``text`` runs."""
    out = set()
    for event, role, states in m.optimizer_events(STEP_EVENT):
        if m.source(event.node) == text:
            out |= {s.gs for s in states}
    return out


def loop_kinds(m):
    """Loop kinds in source order."""
    return [l.kind for l in sorted(m.builder.loops, key=lambda l: m.module.code.index(m.source(l.node).split(":")[0]))]


# -- roles ----------------------------------------------------------------------------------------------


def test_roles_from_constructors_through_import_aliases():
    m = model_of("""
        import torch.optim as optim
        from torch.optim.lr_scheduler import StepLR
        from torch.utils.data import DataLoader
        from torch import nn
        net = nn.Linear(2, 1)
        sgd_thing = optim.SGD(net.parameters(), lr=0.1)
        sched = StepLR(sgd_thing, 10)
        scaler = torch.amp.GradScaler("cpu")
        data = DataLoader([])
    """)
    opt = role_of(m, "sgd_thing")
    assert (opt.kind, opt.cls_name, opt.evidence) == (OPTIMIZER, "SGD", "constructor")
    assert opt.modules == frozenset({"<module>:net"})
    assert role_of(m, "sched").kind == SCHEDULER
    assert role_of(m, "scaler").kind == SCALER
    assert role_of(m, "data").kind == LOADER
    assert role_of(m, "net").kind == MODULE


def test_self_attribute_role_comes_from_init():
    m = model_of("""
        import torch
        class Trainer:
            def __init__(self, model):
                self.model = model
                self.opt_thing = torch.optim.Adam(model.parameters())
            def step(self):
                self.opt_thing.step()
    """)
    r = role_of(m, "self.opt_thing", "step")
    assert r.kind == OPTIMIZER and r.cls_name == "Adam"


def test_a_local_class_shadows_a_torch_name():
    m = model_of("""
        class SGD:
            def step(self):
                pass
        opt = SGD()
    """)
    assert role_of(m, "opt").kind != OPTIMIZER


def test_prepare_passes_roles_through_in_order():
    m = model_of("""
        import torch
        model = torch.nn.Linear(2, 1)
        o = torch.optim.SGD(model.parameters(), lr=0.1)
        model, o2, loader = accelerator.prepare(model, o, loader)
    """)
    assert role_of(m, "o2") is role_of(m, "o")


@pytest.mark.parametrize("name,kind", [
    ("optimizer", OPTIMIZER), ("optimizerD", OPTIMIZER), ("g_optim", OPTIMIZER), ("opt_g", OPTIMIZER),
    ("optD", OPTIMIZER), ("lr_scheduler", SCHEDULER), ("train_loader", LOADER), ("options", None),
    ("opts", None), ("model", None), ("loss_scaler", None),
])
def test_names_are_weak_evidence(name, kind):
    assert name_kind(name) == kind


def test_reassignment_with_conflicting_kinds_is_unknown():
    m = model_of("""
        import torch
        x = torch.optim.SGD([], lr=1)
        x = torch.utils.data.DataLoader([])
    """)
    assert role_of(m, "x").kind == UNKNOWN


# -- loops ----------------------------------------------------------------------------------------------


def test_loop_kinds():
    m = model_of("""
        def train(model, loader, optimizer, epochs, accum):
            for epoch in range(epochs):
                for i, (x, y) in enumerate(tqdm(loader)):
                    for micro in range(accum):
                        pass
            while True:
                pass
            for it in range(max_steps):
                pass
    """)
    assert loop_kinds(m) == [EPOCH, BATCH, MICRO, STEP, STEP]


def test_a_loop_that_calls_a_function_with_a_batch_loop_is_an_epoch_loop():
    m = model_of("""
        def train_one(model, loader, optimizer):
            for x in loader:
                model(x).sum().backward()
                optimizer.step()
        def main():
            for e in range(n):
                train_one(model, loader, optimizer)
    """)
    kinds = {m.source(l.node).split(":")[0]: l.kind for l in m.builder.loops}
    assert kinds["for e in range(n)"] == EPOCH
    assert kinds["for x in loader"] == BATCH


def test_a_loop_that_calls_an_evaluation_pass_is_not_an_epoch_loop():
    m = model_of("""
        def evaluate(model, loader):
            preds = []
            for x in loader:
                preds.append(model(x).argmax())
            return preds
        def main():
            for item in items:
                evaluate(model, loader)
    """)
    kinds = {m.source(l.node).split(":")[0]: l.kind for l in m.builder.loops}
    assert kinds["for item in items"] != EPOCH
    assert kinds["for x in loader"] == BATCH


def test_a_range_over_the_batch_size_is_not_a_batch_loop():
    m = model_of("""
        for task in range(meta_batch_size):
            pass
    """)
    assert loop_kinds(m) != [BATCH]


# -- gradient typestate ---------------------------------------------------------------------------------

PRELUDE = """
import torch
model = torch.nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
"""


def test_missing_zero_grad_makes_the_second_step_stale():
    m = model_of(PRELUDE + """
for x in loader:
    model(x).sum().backward()
    opt.step()
""")
    assert step_states(m, "opt.step()") == {FRESH, STALE}


def test_accumulation_with_zero_inside_the_gate_is_never_stale():
    m = model_of(PRELUDE + """
for i, x in enumerate(loader):
    model(x).sum().backward()
    if (i + 1) % 4 == 0:
        opt.step()
        opt.zero_grad()
""")
    assert step_states(m, "opt.step()") == {FRESH}


def test_correlated_branches_take_the_same_arm():
    m = model_of(PRELUDE + """
for x in loader:
    if use_amp:
        opt.zero_grad()
    else:
        model.zero_grad()
    model(x).sum().backward()
    if use_amp:
        opt.step()
    else:
        opt.step()
""")
    assert step_states(m, "opt.step()") == {FRESH}


def test_uncorrelated_branch_leaves_a_stale_path():
    m = model_of(PRELUDE + """
for x in loader:
    if flag:
        opt.zero_grad()
    model(x).sum().backward()
    opt.step()
""")
    assert STALE in step_states(m, "opt.step()")


def test_zero_on_first_micro_batch_and_step_on_last_is_understood():
    m = model_of(PRELUDE + """
for epoch in range(3):
    for i, x in enumerate(loader):
        if i % k == 0:
            opt.zero_grad()
        model(x).sum().backward()
        if (i + 1) % k == 0:
            opt.step()
""")
    assert step_states(m, "opt.step()") == {FRESH}


def test_helper_functions_are_followed_with_the_callers_optimizer():
    m = model_of(PRELUDE + """
def clear(o):
    o.zero_grad()

def train_one_epoch(net, loader, optimizer):
    for x in loader:
        clear(optimizer)
        net(x).sum().backward()
        optimizer.step()

for epoch in range(3):
    train_one_epoch(model, loader, opt)
""")
    assert step_states(m, "optimizer.step()") == {FRESH}


# A helper's flag parameter bound to a literal at the call, or left at its literal default, takes one arm:
# ``run(model, x, False)`` then ``run(model, x)`` is one backward pass, never none and never two.
_FLAG_HELPER = """
def run(net, x, {param}={default}):
    loss = net(x).sum()
    if {test}:
        loss.backward()
    return loss

for x in loader:
    opt.zero_grad()
    run(model, x, {first})
    run(model, x{second})
    opt.step()
"""


@pytest.mark.parametrize("param,default,negate", [("do_backward", "True", False), ("with_grad", "1", False),
                                                  ("skip_backward", "None", True), ("eval_only", "False", True)])
@pytest.mark.parametrize("keyword", [False, True])
def test_a_flag_bound_to_a_literal_takes_one_arm(param, default, negate, keyword):
    off = "True" if negate else "False"  # the first call skips its backward pass, the default runs it
    first = f"{param}={off}" if keyword else off
    test = f"not {param}" if negate else param
    m = model_of(PRELUDE + _FLAG_HELPER.format(param=param, default=default, test=test, first=first, second=""))
    assert step_states(m, "opt.step()") == {FRESH}


@pytest.mark.parametrize("how", ["rebound", "spread"])
def test_a_flag_that_may_differ_from_its_literal_takes_both_arms(how):
    """A parameter the helper rebinds, or one a ``**kwargs`` spread may bind, is no literal."""
    src = _FLAG_HELPER.format(param="do_backward", default="True", test="do_backward", first="False",
                              second=", **options" if how == "spread" else "")
    if how == "rebound":
        src = src.replace("    loss = net(x).sum()\n", "    loss = net(x).sum()\n    do_backward = do_backward and x.requires_grad\n")
    m = model_of(PRELUDE + "options = {}\n" + src)
    assert NONE in step_states(m, "opt.step()")


def test_what_a_call_assumed_about_its_own_parameters_ends_with_it():
    """A helper's test of its own parameter is a fact of that call: the caller's later events are not
    split by it (the next call may bind the parameter to something else)."""
    m = model_of(PRELUDE + """
def run(net, x, do_backward):
    loss = net(x).sum()
    if do_backward:
        loss.backward()
    if do_backward:
        net.weight.grad.mul_(2)

for i, x in enumerate(loader):
    opt.zero_grad()
    run(model, x, i > 0)
    opt.step()
""")
    steps = [e for e, _role, _states in m.optimizer_events(STEP_EVENT) if m.source(e.node) == "opt.step()"]
    assert steps
    assert all(not any(k.startswith("do_backward") for guard in m.facts.guards[e] for k, _v in guard) for e in steps)
    assert step_states(m, "opt.step()") == {NONE, FRESH}


def test_an_unresolvable_call_receiving_the_optimizer_makes_the_state_unknown():
    m = model_of(PRELUDE + """
from helpers import reset
for x in loader:
    reset(opt)
    model(x).sum().backward()
    opt.step()
""")
    assert STALE not in step_states(m, "opt.step()")
    assert role_of(m, "opt") in m.facts.tainted


def test_gan_discriminator_steps_are_clean_when_zeroed_before_their_own_backward():
    m = model_of("""
import torch
netD = torch.nn.Linear(2, 1)
netG = torch.nn.Linear(2, 2)
optD = torch.optim.Adam(netD.parameters())
optG = torch.optim.Adam(netG.parameters())
for x in loader:
    netD.zero_grad()
    netD(x).mean().backward()
    fake = netG(x)
    netD(fake.detach()).mean().backward()
    optD.step()
    netG.zero_grad()
    (-netD(fake).mean()).backward()
    optG.step()
""")
    assert step_states(m, "optD.step()") == {FRESH}
    assert step_states(m, "optG.step()") == {FRESH}


def test_break_leaves_the_loop_and_continue_goes_around():
    m = model_of(PRELUDE + """
for x in loader:
    opt.zero_grad()
    loss = model(x).sum()
    if bad(loss):
        continue
    loss.backward()
    opt.step()
    if done:
        break
opt.step()
""")
    after = [s for e, r, s in m.optimizer_events(STEP_EVENT) if e.node.func.value.value == "opt" and m.source(e.node) == "opt.step()"]
    # the step after the loop sees the state a break or the last iteration left: used, or zeroed by a skip
    assert {s.gs for states in after for s in states} == {FRESH, USED, NONE}


def test_zero_grad_records_fresh_gradients_carried_around_the_batch_loop():
    m = model_of(PRELUDE + """
for i, x in enumerate(loader):
    opt.zero_grad()
    model(x).sum().backward()
    if (i + 1) % 4 == 0:
        opt.step()
""")
    zero_states = [s for e, r, states in m.optimizer_events(ZERO) for s in states]
    carried = [s for s in zero_states if s.gs == FRESH]
    assert carried and all(isinstance(l, Loop) and l.kind == BATCH for s in carried for l in s.carried)


def test_a_flag_assigned_one_literal_decides_its_branch():
    m = model_of(PRELUDE + """
def train(loader):
    per_batch = False
    for x in loader:
        opt.zero_grad()
        if per_batch:
            opt.step()
        model(x).sum().backward()
        opt.step()
""")
    # the step under the flag would meet cleared gradients, but it can never run
    assert step_states(m, "opt.step()") == {FRESH}


def test_a_deepspeed_engine_step_clears_what_it_manages():
    from looplint.engine import lint_source

    src = textwrap.dedent("""
        import deepspeed
        import torch
        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer)
        for x in loader:
            loss = model(x).sum()
            model.backward(loss)
            model.step()
    """)
    assert lint_source(src, "t.py") == []


def test_the_same_framework_getter_is_one_optimizer():
    m = model_of("""
        class M(LightningModule):
            def training_step(self, batch, i):
                loss = self(batch).sum()
                self.manual_backward(loss)
                self.optimizers().step()
                self.optimizers().zero_grad()
    """)
    assert step_states(m, "self.optimizers().step()") == {FRESH}


def test_a_loop_over_optimizers_steps_a_different_object_each_time():
    m = model_of("""
        def hook(param):
            for opt in param._in_backward_optimizers:
                opt.step()
            param.grad = None
    """)
    assert STALE not in step_states(m, "opt.step()") and USED not in step_states(m, "opt.step()")


def test_an_optimizer_built_after_backward_sees_the_gradients_already_there():
    m = model_of(PRELUDE + """
for i in range(n_iterations):
    model(x).sum().backward()
    fresh = torch.optim.SGD(model.parameters(), lr=0.01)
    fresh.step()
""")
    assert NONE not in step_states(m, "fresh.step()")


@pytest.mark.parametrize("expression", [
    " ".join(['"x"'] * 3000),  # implicit string concatenation, right-nested in the tree
    "(" * 150 + "1" + ")" * 150,
    " + ".join(["a"] * 3000),
])
def test_pathological_expressions_never_raise(expression):
    from looplint.engine import lint_source

    src = f"import torch\nloss.backward()\nx = {expression}\n"
    for d in lint_source(src, "deep.py"):
        assert d.code == "LL000"


# Accumulation or not, decided once by a setting tested once: mixing both modes across iterations is STALE.
ACCUM_OR_NOT = """
def train(loader, cfg, args):
    for i, x in enumerate(loader):
        if cfg.accum > 1:
            model(x).sum().backward()
            if (i + 1) % cfg.accum == 0:
                opt.step()
                opt.zero_grad()
        else:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
"""


def test_a_loop_invariant_test_takes_the_same_arm_on_every_iteration():
    m = model_of(PRELUDE + ACCUM_OR_NOT + "        if i % cfg.log_every == 0:\n            print(i)\n")
    assert STALE not in step_states(m, "opt.step()")


def _body_entries(m, fn_name="train"):
    """How many distinct paths entered the body of ``fn_name``'s outermost loop in the gradient analysis."""
    from looplint.model.flow import Facts, GradientFlow

    fn = next(f for f in m.scopes.functions if f.name == fn_name)
    run = GradientFlow(m, Facts())
    run.run_root(fn, cyclic=False)
    return len({key[3] for key in run._memo if key[0] == "body" and key[1].fn is fn and len(key[2][1]) == 1})


def _logging_loop(flags: int):
    tests = "".join(f"        if args.flag{k}:\n            log{k}(model)\n        if args.flag{k}:\n            print({k})\n"
                    for k in range(flags))
    return model_of(PRELUDE + f"""
def train(loader, args):
    for i, x in enumerate(loader):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
{tests}""")


@pytest.mark.parametrize("flags", [2, 3, 5])
def test_flags_that_gate_no_gradient_event_do_not_multiply_a_loops_paths(flags):
    """Tests that only log, sample or evaluate are not carried from one iteration into the next: the
    loop's body is entered with as many paths with five such flags as with one (it was 2 ** (flags - 1)
    times as many: 64 against 4)."""
    m = _logging_loop(flags)
    assert step_states(m, "opt.step()") == {FRESH}
    assert _body_entries(m) == _body_entries(_logging_loop(1))


def test_a_flag_that_gates_gradients_still_holds_across_iterations_among_logging_flags():
    """The same loop with an accumulation flag tested once: its arm still holds on every iteration (no
    STALE from mixing both modes), however many logging flags come with it."""
    tests = "".join(f"        if args.flag{k}:\n            log{k}(model)\n" for k in range(6))
    m = model_of(PRELUDE + ACCUM_OR_NOT + tests)
    assert STALE not in step_states(m, "opt.step()")
    assert FRESH in step_states(m, "opt.step()")


@pytest.mark.parametrize("loop", [
    # takes one batch on purpose
    "for tx, ty in target_loader:\n        break\n    loss = model(tx).sum() + model(x).sum()",
    # collects every batch's loss, then one backward over all of them
    "for i, (tx, ty) in enumerate(minibatches):\n        losses[i] = model(tx).sum()\n    loss = losses.sum()",
])
def test_ll109_leaves_deliberate_uses_of_loop_variables_alone(loop):
    from looplint.engine import lint_source

    src = PRELUDE + f"\ndef step(x, target_loader, minibatches, losses):\n    {loop}\n    loss.backward()\n    opt.step()\n"
    assert [d.code for d in lint_source(src, "t.py") if d.code == "LL109"] == []


def test_walk_children_are_remembered_per_node_object():
    """walk.children remembers each node's children by id, with the node: an id that a collected node's
    successor reuses is no hit, and forget() drops everything."""
    import importlib

    w = importlib.import_module("looplint.model.walk")  # ``looplint.model.walk`` is also a function's name
    call = cst.parse_expression("f(a, b)")
    assert [type(c).__name__ for c in w.children(call)] == ["Name", "Arg", "Arg"]
    assert w.children(call) is w.children(call)
    other = cst.parse_expression("g(c)")
    w._REMEMBERED[id(other)] = (call, ["stale"])  # as if ``other`` reused the id of a node now gone
    assert [type(c).__name__ for c in w.children(other)] == ["Name", "Arg"]
    w.forget()
    assert not w._REMEMBERED


def test_reaching_definitions_are_built_only_for_a_local_read():
    """values.reaching answers None for a name the function binds nowhere without building the function's
    reaching definitions; names bound by loops, ``with``, imports and walrus are local reads."""
    from looplint.model.values import LOOP, Values
    from looplint.model.scopes import Scopes

    module = cst.parse_module(textwrap.dedent("""\
        def f(loader, n):
            print(n)
            for batch in loader:
                import math
                with open(batch) as fh:
                    if (k := len(fh.read())) > 0:
                        print(batch, math.pi, fh, k)
    """))
    values = Values(Scopes(module))
    fn = next(f for f in values.s.functions if f.name == "f")
    reads = {}
    for node in _descendants(module):
        if isinstance(node, cst.Name):
            reads.setdefault(node.value, []).append(node)
    assert values.reaching(reads["print"][0], fn) is None and fn not in values._reaching
    got = values.reaching(reads["batch"][-1], fn)
    assert got and {d.kind for d in got} == {LOOP}
    for name in ("math", "fh", "k", "n"):
        assert values.reaching(reads[name][-1], fn), name


BINDING_FORMS = """\
def f(a, *rest):
    global g
    for i, (x, *ys) in enumerate(a):
        total += i
    try:
        import os.path
        import numpy as np
        from math import pi, tau as t
    except (ValueError, KeyError) as err:
        pass
    class Local:
        def method(self, inner):
            return inner
    def helper():
        nonlocal total
        total = 0
    with open(a) as fh:
        v = fh.read()
    g = 1
    return [k for k in a]
"""


@pytest.mark.parametrize("walrus", ["", "    if (w := len(a)) > 1:\n        pass\n"])
@pytest.mark.parametrize("source_known", [True, False])
def test_names_a_function_binds_other_than_by_assignment(walrus, source_known):
    """maybe_local: every name a function binds (loop, ``except`` and ``with`` targets, augmented
    assignments, imports, nested ``def``/``class``, walrus), whether the scope collector noted them (the
    module's text is known and holds no ``:=``) or a walk of the tree looks for walrus targets; ``nonlocal``
    names are the function's own declarations, not its nested functions'."""
    from looplint.model.scopes import Scopes
    from looplint.model.values import Values

    text = BINDING_FORMS.replace("    g = 1\n", "    g = 1\n" + walrus)
    scopes = Scopes(cst.parse_module(text), source=text if source_known else None)
    assert scopes.has_walrus == bool(walrus)
    fn = next(x for x in scopes.functions if x.name == "f")
    expected = {"a", "rest", "i", "x", "ys", "total", "os", "np", "pi", "t", "err", "Local", "helper", "fh",
                "v"} | ({"w"} if walrus else set())
    assert Values(scopes).maybe_local(fn) == expected
    assert fn.nonlocals == set()
    assert next(x for x in scopes.functions if x.name == "helper").nonlocals == {"total"}


def _descendants(node):
    from looplint.model.walk import descendants

    return descendants(node)


ALWAYS_RAISES_PROGRAM = '''
import torch
from torch import nn


def fail(message):
    {failure}


def train(model, loader, mode):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        if mode == "a":
            model.train()
        else:
            {other_arm}
        for x, y in loader:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        model.eval()
'''


@pytest.mark.parametrize("other_arm, failure, leaks", [
    ("assert False", "pass", False),
    ("assert 0, 'unknown mode'", "pass", False),
    ("assert None", "pass", False),
    ("assert ''", "pass", False),
    ("assert 0.0", "pass", False),
    ("raise ValueError(mode)", "pass", False),
    ("fail(mode)", "assert False, message", False),  # a helper that always fails
    ("fail(mode)", "raise ValueError(message)", False),
    ("assert mode", "pass", True),  # may hold: the path goes on in eval mode
    ("assert True", "pass", True),
    ("assert 1", "pass", True),
    ("fail(mode)", "print(message)", True),
])
def test_an_assert_of_a_false_constant_ends_the_path_like_raise(other_arm, failure, leaks):
    from looplint.engine import lint_source

    source = ALWAYS_RAISES_PROGRAM.format(other_arm=other_arm, failure=failure)
    assert ("LL402" in {d.code for d in lint_source(source, "t.py")}) is leaks
