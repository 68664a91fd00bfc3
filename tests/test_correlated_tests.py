"""Tests that say the same thing take the same arm: a flag handed to a helper that tests it twice, and the
operands of ``if a and b:`` that a later ``if a:`` repeats.

Each program is a helper whose zeroing and step sit under two tests over an optimizer and flags, called
with the flags at their defaults, set to a literal, or handed as the caller's unknown name; an operand may
be a module constant. What should be
found is decided here from the tests' truth tables, not by the linter: LL101 when some values of the
unknowns make the step run without the zeroing, LL108 when some make the zeroing run without the step.
The helper is a function or a method, under two sets of names."""
import itertools

import pytest

from looplint.engine import lint_source

# (test of the zeroing, test of the step, what each reads) as templates over {opt} {z} {s} {w}, and the truth
# of each test given values of the names
FORMS = {
    "and_name": ("{opt} and {z}", "{opt}", lambda v: v["opt"] and v["z"], lambda v: v["opt"]),
    "and_not_none": ("{z} and {opt} is not None", "{opt} is not None", lambda v: v["z"] and v["opt"], lambda v: v["opt"]),
    "not_and": ("not {s} and {opt}", "{opt}", lambda v: not v["s"] and v["opt"], lambda v: v["opt"]),
    "same_flag": ("{z}", "{z}", lambda v: v["z"], lambda v: v["z"]),
    "two_flags": ("{z} and {w}", "{z}", lambda v: v["z"] and v["w"], lambda v: v["z"]),
    # module constants (``ZERO_ON = True``, ``ZERO_OFF = False``) decide an operand
    "constant_on": ("{opt} and ZERO_ON", "{opt}", lambda v: v["opt"], lambda v: v["opt"]),
    "constant_off": ("ZERO_OFF and {opt}", "{opt}", lambda v: False, lambda v: v["opt"]),
    "three_and_two": ("{opt} and {z} and {w}", "{opt} and {z}", lambda v: v["opt"] and v["z"] and v["w"],
                      lambda v: v["opt"] and v["z"]),
}
DEFAULTS = {"z": True, "s": False, "w": True}
# how the caller sets the flag the form's zeroing depends on: its default, the literal that turns the
# zeroing off, or a name the linter cannot know
BINDINGS = ("default", "literal", "unknown")
NAMES = (
    {"opt": "optimizer", "z": "do_zero", "s": "skip_zero", "w": "also"},
    {"opt": "o", "z": "reset", "s": "keep_grads", "w": "enabled"},
)


def _flag(form: str) -> str:
    return "s" if form == "not_and" else "z"


def _expected(form: str, binding: str):
    _z, _s, zero_test, step_test = FORMS[form]
    flag = _flag(form)
    choices = {k: [v] for k, v in DEFAULTS.items()}
    choices["opt"] = [True, False]  # the linter does not know that an optimizer object is true
    if binding == "literal":
        choices[flag] = [not DEFAULTS[flag]]
    elif binding == "unknown":
        choices[flag] = [True, False]
    found = set()
    for values in itertools.product(*choices.values()):
        v = dict(zip(choices, values))
        zero, step = bool(zero_test(v)), bool(step_test(v))
        if step and not zero:
            found.add("LL101")
        if zero and not step:
            found.add("LL108")
    return found


def _program(form: str, binding: str, names: dict, method: bool) -> str:
    zero_t, step_t, _z, _s = FORMS[form]
    zero_t, step_t = zero_t.format(**names), step_t.format(**names)
    flag = names[_flag(form)]
    opt = names["opt"]
    params = f"model, loader, criterion, {opt}=None, {names['z']}=True, {names['s']}=False, {names['w']}=True"
    arg = {"default": "", "literal": f", {flag}={not DEFAULTS[_flag(form)]}", "unknown": f", {flag}=setting"}[binding]
    body = f"""
    for x, y in loader:
        if {zero_t}:
            {opt}.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        if {step_t}:
            {opt}.step()
"""
    if method:
        helper = "class Runner:\n    def run(self, " + params + "):" + body.replace("\n    ", "\n        ")
        call = f"Runner().run(model, loader, criterion, opt{arg})"
    else:
        helper = "def run(" + params + "):" + body
        call = f"run(model, loader, criterion, opt{arg})"
    return f"""import torch

ZERO_ON = True
ZERO_OFF = False


{helper}

def main(setting, loader):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = torch.nn.MSELoss()
    {call}
"""


CASES = [(f, b, i, m) for f in FORMS for b in BINDINGS for i in range(len(NAMES)) for m in (False, True)]


@pytest.mark.parametrize("form,binding,names,method", CASES,
                         ids=[f"{f}-{b}-names{i}-{'method' if m else 'function'}" for f, b, i, m in CASES])
def test_correlated_tests(form, binding, names, method):
    source = _program(form, binding, NAMES[names], method)
    found = {d.code for d in lint_source(source, "t.py")} & {"LL101", "LL108"}
    assert found == _expected(form, binding), source


# -- a test and its negation, spelled apart: ``x is not None`` / ``x is None``, ``a != b`` / ``a == b``,
# ``k not in d`` / ``k in d``, ``not f`` / ``f``. The zeroing runs under one spelling, the step in the ``else``
# arm of the other (a hand-written update in its ``then`` arm): both run in the same iterations.
NEGATIONS = {
    "is_none": ("{o} is not None", "{o} is None"),
    "not_is_none": ("not {o} is None", "{o} is None"),
    "equal": ("{m} != 0", "{m} == 0"),
    "membership": ("'optimizer' not in {c}", "'optimizer' in {c}"),
    "not_flag": ("not {f}", "{f}"),
}
SPELLINGS = ({"o": "optimizer", "m": "mode", "c": "config", "f": "manual"},
             {"o": "opt", "m": "kind", "c": "settings", "f": "by_hand"})


def _negated_program(form: str, names: dict, other: bool = False) -> str:
    """``other``: the step's test reads other names than the zeroing's, spelled alike."""
    zero_t, step_t = (t.format(**names) for t in NEGATIONS[form])
    if other:
        step_t = NEGATIONS[form][1].format(**{k: v + "_2" for k, v in names.items()})
    extra = ", ".join(v + "_2" for v in names.values())
    return f"""import torch

def sgd(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad.zero_()

def train(net, loader, loss, params, lr, {names['o']}, {names['m']}, {names['c']}, {names['f']}, {extra}):
    for X, y in loader:
        l = loss(net(X), y).sum()
        if {zero_t}:
            {names['o']}.zero_grad()
        l.backward()
        if {step_t}:
            sgd(params, lr)
        else:
            {names['o']}.step()
"""


@pytest.mark.parametrize("form", sorted(NEGATIONS))
@pytest.mark.parametrize("names", range(len(SPELLINGS)))
def test_a_test_and_its_negation_take_matching_arms(form, names):
    source = _negated_program(form, SPELLINGS[names])
    assert {d.code for d in lint_source(source, "t.py")} & {"LL101", "LL108"} == set(), source
    # a test of other values, spelled alike, may disagree: the step may run without the zeroing (the other
    # way round, ``sgd`` applies and clears what the zeroing would have cleared)
    changed = _negated_program(form, SPELLINGS[names], other=True)
    assert {d.code for d in lint_source(changed, "t.py")} & {"LL101", "LL108"} == {"LL101"}, changed



# -- a test made of calls that only read (``d.get(k)``, ``len(x)``, ``isinstance``) says the same thing again
# while its names hold the same objects; one that calls what may answer differently or change what it reads
# (``d.pop(k)``, an unknown function) is read anew each time. The zeroing is nested under a flag and the
# test, the step under the test and the flag joined by ``and`` (a GAN's auxiliary head, trained when the
# phase has one).
READERS = ("{c}.get('head', None) is not None", "len({c}) > 0", "isinstance({c}, dict)", "hasattr({c}, 'head')")
CHANGERS = ("{c}.pop('head', None) is not None", "has_head({c})")


def _head_program(test: str, names: dict) -> str:
    t = test.format(c=names["c"])
    return f"""import torch


def accumulate({names['c']}, {names['f']}, batches, model, head):
    for x in batches:
        loss = model(x).mean()
        if {names['f']}:
            if {t}:
                head.opt.zero_grad(set_to_none=True)
                loss = loss + head.module(x).mean()
        loss.backward()
        if {t} and {names['f']}:
            head.opt.step()
"""


@pytest.mark.parametrize("test", READERS + CHANGERS)
@pytest.mark.parametrize("names", range(len(SPELLINGS)))
def test_a_test_of_pure_reads_is_remembered_and_one_that_may_change_is_not(test, names):
    src = _head_program(test, SPELLINGS[names])
    want = {"LL101", "LL108"} if test in CHANGERS else set()
    assert {d.code for d in lint_source(src, "t.py")} & {"LL101", "LL108"} == want, src
