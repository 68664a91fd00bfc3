"""Parsing and modelling only the code that can matter (looplint.relevance) finds what linting whole files
finds: over every fixture, and over programs built to tempt it into dropping code that matters."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from looplint import engine
from looplint.relevance import blank_cold, relevance

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

UNRELATED = '''

def unrelated_helper(values):
    """Mentions backward() and optimizer.step() in its docstring only."""
    total = 0
    for v in values:
        total += v  # loss.backward() in a comment
    return total


class Unrelated:
    def method(self):
        return [x * 2 for x in range(10)]
'''


def _both(source: str, monkeypatch, path: str = "t.py"):
    with_shortcut = engine.lint_source(source, path)
    monkeypatch.setattr(engine, "SKIP_COLD_CODE", False)
    whole = engine.lint_source(source, path)
    monkeypatch.setattr(engine, "SKIP_COLD_CODE", True)
    return with_shortcut, whole


def test_every_fixture_has_the_same_findings_with_and_without_the_shortcut(monkeypatch):
    files = sorted(FIXTURES.rglob("*.py"))
    assert len(files) > 50
    blanked = 0
    for i, path in enumerate(files):
        source = path.read_text(encoding="utf-8")
        text = source + UNRELATED if i % 2 else UNRELATED + source  # cold code after, or before
        shortcut, whole = _both(text, monkeypatch, str(path))
        assert shortcut == whole, path
        try:
            blanked += bool(relevance(ast.parse(text), text).cold)
        except SyntaxError:
            continue
    assert blanked > 50  # the shortcut did drop code in these files


def _cold_names(source: str):
    tree = ast.parse(source)
    rows = {r for first, last in relevance(tree, source).cold for r in range(first, last + 1)}
    return sorted(d.name for d in tree.body if getattr(d, "name", None) and d.lineno in rows)


PROGRAM = textwrap.dedent('''\
    import torch
    LR = 0.1

    def build(model):                    # a caller of train: its arguments tell what train's are
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return train(model, opt)

    def train(model, opt):
        for x in data():
            loss = model(x).sum()
            loss.backward()
            opt.step()

    def data():                          # a callee of the loop
        return [torch.randn(3)]

    def sizes():                         # a caller of a callee only: nothing it does reaches the loop
        return len(data())

    @registry.on("epoch")                # a framework may call it, but nothing it does reaches training code
    def handler(engine):
        model.eval()

    def uses_lr():                       # reads a module variable, nothing runs it
        return LR * 2

    def rebinds():
        global model
        model = None

    class Base:                          # the base of a class that trains
        def setup(self):
            self.ready = True

    class Trainer(Base):
        def fit(self):
            self.opt.zero_grad()

    def unrelated(a, b):
        return a + b

    class AlsoUnrelated:
        def __repr__(self):
            return "x"
    ''')


def test_only_definitions_unlinked_to_training_code_are_cold():
    assert _cold_names(PROGRAM) == ["AlsoUnrelated", "handler", "sizes", "unrelated", "uses_lr"]


def _cold_rows(source: str):
    return {r for first, last in relevance(ast.parse(source), source).cold for r in range(first, last + 1)}


CLASSES = textwrap.dedent('''\
    import torch


    class Config:                        # named by code that trains, none of its methods is
        @property
        def describe(self):
            return "config"


    class Trainer:
        def __init__(self, model):       # Python calls it for Trainer(...)
            self.model = model
            self.opt = None

        def configure(self):             # binds self.opt, which fit reads
            self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)

        def fit(self, loader):
            self.configure()
            for x in loader:
                self.model(x).sum().backward()
                self.opt.step()

        def summary(self):               # nothing that trains names it
            return repr(self.model)


    def data():
        return [torch.randn(3)]


    cfg = Config()
    Trainer(torch.nn.Linear(3, 1)).fit(data())
    ''')


def test_methods_that_nothing_training_names_are_cold_and_their_class_stays_a_class(monkeypatch):
    tree = ast.parse(CLASSES)
    found = relevance(tree, CLASSES)
    rows = _cold_rows(CLASSES)
    methods = {m.name: m for c in tree.body if isinstance(c, ast.ClassDef) for m in c.body}
    assert {name for name, m in methods.items() if m.lineno in rows} == {"describe", "summary"}
    assert not any(c.lineno in rows for c in tree.body)  # every class and function keeps its header
    code = blank_cold(CLASSES, found.cold, found.stubs)
    config = ast.parse(code).body[1]
    assert [type(s).__name__ for s in config.body] == ["Pass"] and config.body[0].lineno == 5
    assert code.splitlines()[4] == "    pass"
    shortcut, whole = _both(CLASSES, monkeypatch)
    assert [d.code for d in shortcut] == ["LL101"] and shortcut == whole


# The same program in other shapes: where the loop lives, where the optimizer comes from, other names, and
# code around it that only looks related. Each shape must lose some code and find what the whole file finds.
_WHERE = {
    "module": ("{body}", ""),
    "function": ("def {name}_loop(model, loader):\n{body}", "{name}_loop(model, loader)\n"),
    "method": ("class {Name}Runner:\n    def run(self, model, loader):\n{body}",
               "{Name}Runner().run(model, loader)\n"),
}
_OPTIMIZER = {
    "helper": ("def {name}_make(m):\n    return torch.optim.SGD(m.parameters(), lr=0.1)\n", "{name}_make(model)"),
    "class": ("class {Name}Factory:\n    def __init__(self, m):\n        self.built = torch.optim.Adam(m.parameters())\n",
              "{Name}Factory(model).built"),
    "inline": ("", "torch.optim.SGD(model.parameters(), lr=0.1)"),
}
_AROUND = textwrap.dedent('''\
    def {name}_count(loader):
        return sum(1 for _ in loader)


    def {name}_report(loader):
        return {name}_count(loader) * 2


    @{name}_registry.on("done")
    def {name}_done(engine):
        model.eval()


    class {Name}Unused:
        def __init__(self):
            self.n = 0

        def bump(self):
            self.n += 1
    ''')


@pytest.mark.parametrize("where", sorted(_WHERE))
@pytest.mark.parametrize("optimizer", sorted(_OPTIMIZER))
@pytest.mark.parametrize("name", ["alpha", "net_b"])
@pytest.mark.parametrize("clears", [False, True])
def test_generated_shapes_lose_cold_code_and_keep_their_findings(where, optimizer, name, clears, monkeypatch):
    Name = name.title().replace("_", "")
    definition, make = (t.format(name=name, Name=Name) for t in _OPTIMIZER[optimizer])
    loop, call = (t.format(name=name, Name=Name, body="{body}") for t in _WHERE[where])
    indent = {"module": "", "function": "    ", "method": "        "}[where]
    steps = ["opt = " + make, "for epoch in range(2):", "    for x in loader:"]
    steps += ["        opt.zero_grad()"] if clears else []
    steps += ["        loss = model(x).sum()", "        loss.backward()", "        opt.step()",
              "        {name}_count(loader)".format(name=name)]
    body = "".join(indent + s + "\n" for s in steps)
    source = "\n\n".join(part for part in [
        "import torch\nmodel = torch.nn.Linear(3, 1)\nloader = [torch.randn(3)]",
        definition, _AROUND.format(name=name, Name=Name), loop.replace("{body}", body), call] if part)
    rows = _cold_rows(source)
    lines = source.splitlines()
    cold = {lines[r - 1].strip() for r in rows}
    assert f"def {name}_report(loader):" in cold and f"def {name}_done(engine):" in cold
    assert f"class {Name}Unused:" in cold and f"def {name}_count(loader):" not in cold
    shortcut, whole = _both(source, monkeypatch)
    assert shortcut == whole
    assert [d.code for d in shortcut] == ([] if clears else ["LL101"])


def test_code_that_names_training_only_in_comments_and_strings_is_not_training():
    def trains(source):
        return relevance(ast.parse(source), source).training

    assert not trains('"""loss.backward() then optimizer.step()"""\n# zero_grad\nx = "a.grad"\n')
    assert trains("def f(o):\n    o.step()\n")
    assert trains("from torch.optim import lr_scheduler\n")
    assert trains("getattr(opt, 'zero_grad')()\n")


def test_a_file_that_names_training_only_in_comments_is_only_checked_for_syntax():
    assert engine.lint_source('"""Call loss.backward() and optimizer.step()."""\nx = 1\n') == []
    broken = engine.lint_source('"""Call loss.backward() and optimizer.step()."""\nx = (\n')
    assert [d.code for d in broken] == ["LL000"]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_blanking_keeps_every_row_and_column(newline):
    source = newline.join(["import torch", "def cold():", "    return '\u2028\x0c'", "x = 1", ""])
    out = blank_cold(source, [(2, 3)])
    assert out == newline.join(["import torch", "", "", "x = 1", ""])
    assert ast.parse(out).body[-1].lineno == 4


def test_noqa_comments_in_blanked_code_still_count(monkeypatch):
    found, _ = _both(PROGRAM, monkeypatch)
    assert "LL101" in {d.code for d in found}
    source = PROGRAM + "\ndef cold_with_file_noqa():\n# looplint: noqa\n    return 1\n"
    assert "cold_with_file_noqa" in _cold_names(source)
    shortcut, whole = _both(source, monkeypatch)
    assert shortcut == whole == []


# -- the language server's worker reuses the last result while the code that can matter is unchanged -------
REUSED = textwrap.dedent('''\
    import torch
    from helpers import scale


    def describe(x):
        return f"value {x}"


    def train(model, loader):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            loss = scale(model(x), y)
            loss.backward()
            opt.step()
    ''')


@pytest.fixture
def counted_parses(monkeypatch):
    parses = []
    real = engine.lint_parsed

    def counting(*args, **kwargs):
        parses.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "lint_parsed", counting)
    monkeypatch.setattr(engine, "_last", {})
    return parses


def _codes(found):
    return [(d.code, d.line, d.column) for d in found]


def test_a_change_in_a_cold_definition_reuses_the_last_result(tmp_path, counted_parses):
    (tmp_path / "helpers.py").write_text("def scale(a, b):\n    return (a - b).sum()\n")
    path = str(tmp_path / "train.py")
    first = engine.lint_source(REUSED, path, reuse=True)
    assert _codes(first) == [("LL101", 14, 9)] and len(counted_parses) == 1
    edited = REUSED.replace('f"value {x}"', 'f"the value is {x!r}"')
    again = engine.lint_source(edited, path, reuse=True)
    assert _codes(again) == _codes(first) and len(counted_parses) == 1  # not parsed again
    assert _codes(engine.lint_source(edited, path)) == _codes(first)  # what a fresh lint says
    assert len(counted_parses) == 2
    # a file-level `# noqa` written in the cold definition counts (row for row the same code is parsed)
    quiet = edited.replace('    return f"the', '    # looplint: noqa\n    return f"the').replace("\n\n\ndef train", "\n\ndef train")
    assert engine.lint_source(quiet, path, reuse=True) == [] and len(counted_parses) == 2


def test_a_change_in_training_code_or_in_an_imported_module_lints_again(tmp_path, counted_parses):
    helpers = tmp_path / "helpers.py"
    helpers.write_text("def scale(a, b):\n    return (a - b).sum()\n")
    path = str(tmp_path / "train.py")
    engine.lint_source(REUSED, path, reuse=True)
    fixed = REUSED.replace("        opt.step()", "        opt.step()\n        opt.zero_grad()")
    assert engine.lint_source(fixed, path, reuse=True) == [] and len(counted_parses) == 2
    engine.lint_source(REUSED, path, reuse=True)
    assert len(counted_parses) == 3
    # the helper module changes (another size): the same text is linted again
    helpers.write_text("def scale(a, b):\n    return ((a - b) ** 2).sum()\n")
    engine.lint_source(REUSED, path, reuse=True)
    assert len(counted_parses) == 4
    # other rules: linted again
    from looplint.rule import rule_by_code

    assert engine.lint_source(REUSED, path, [rule_by_code("LL402")], reuse=True) == []
    assert len(counted_parses) == 5
    # a row more in the cold definition moves the training code: linted again, findings one row lower
    longer = REUSED.replace('    return f"value {x}"', '    y = x\n    return f"value {y}"')
    assert _codes(engine.lint_source(longer, path, reuse=True)) == [("LL101", 15, 9)]
    assert len(counted_parses) == 6


def test_a_module_created_after_the_lint_is_seen_by_the_next_one(tmp_path, counted_parses):
    path = str(tmp_path / "train.py")
    engine.lint_source(REUSED, path, reuse=True)  # helpers.py does not exist: `scale` is unknown
    engine.lint_source(REUSED, path, reuse=True)
    assert len(counted_parses) == 1
    (tmp_path / "helpers.py").write_text("def scale(a, b):\n    return (a - b).sum()\n")
    engine.lint_source(REUSED, path, reuse=True)  # a path the lookups probed is a file now
    assert len(counted_parses) == 2


def test_without_reuse_every_lint_parses(tmp_path, counted_parses):
    path = str(tmp_path / "train.py")
    engine.lint_source(REUSED, path)
    engine.lint_source(REUSED, path)
    assert len(counted_parses) == 2 and engine._last == {}


@pytest.mark.parametrize("text", [
    "loss.backward()", "backward(loss)", "opt.zero_grad()", "opt.step()", "step(opt)", "p.grad = None",
    "closure = None", "from torch.optim import lr_scheduler", "class O(Optimizer): pass",
    "steps = 3", "gradient = 1", "x.grader", "optimizers = []", "print('no')", "",
])
def test_the_quick_text_test_says_what_the_pattern_says(text):
    from looplint.relevance import TRAINING_TOKENS, may_train

    assert may_train(text) == (TRAINING_TOKENS.search(text) is not None)


def test_the_quick_text_test_says_what_the_pattern_says_on_every_fixture():
    from looplint.relevance import TRAINING_TOKENS, may_train

    texts = [p.read_text(encoding="utf-8") for p in FIXTURES.rglob("*.py")]
    assert [may_train(t) for t in texts] == [TRAINING_TOKENS.search(t) is not None for t in texts]
    assert sum(may_train(t) for t in texts) > 50


# Every statement that binds ``self.opt`` in the method ``prepare`` (which nothing names), wherever it nests:
# fit reads self.opt, so prepare can set what fit steps and must be kept.
_BINDINGS = {
    "assign": "self.opt = make()",
    "annotated": "self.opt: object = make()",
    "augmented": "self.opt += make()",
    "unpacked": "self.n, self.opt = 1, make()",
    "starred": "[*self.opt] = [make()]",
    "for target": "for self.opt in [make()]:\n    pass",
    "with target": "with make() as self.opt:\n    pass",
    "deleted": "del self.opt",
    "in if and try": "if self.n:\n    try:\n        pass\n    except ValueError:\n        self.opt = make()",
    "in a nested def": "def later():\n    self.opt = make()\nlater()",
    "in a match case": "match self.n:\n    case 1:\n        self.opt = make()",
}
# ... and statements that bind something else: prepare stays cold.
_NOT_BINDINGS = {
    "another object's": "other = make()\nother.opt = make()",
    "read only": "print(self.opt)",
}


def _prepare_is_kept(statement: str) -> bool:
    source = textwrap.dedent('''\
        import torch


        def make():
            return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


        class Runner:
            def prepare(self):
        {body}

            def fit(self):
                self.opt.step()
        ''').format(body=textwrap.indent(statement, " " * 8))
    tree = ast.parse(source)
    prepare = tree.body[2].body[0]
    return not any(first <= prepare.lineno <= last for first, last in relevance(tree, source).cold)


@pytest.mark.parametrize("statement", _BINDINGS.values(), ids=list(_BINDINGS))
def test_a_method_that_binds_an_attribute_that_training_code_reads_is_kept(statement):
    assert _prepare_is_kept(statement)


@pytest.mark.parametrize("statement", _NOT_BINDINGS.values(), ids=list(_NOT_BINDINGS))
def test_a_method_that_binds_no_attribute_training_code_reads_is_cold(statement):
    assert not _prepare_is_kept(statement)
