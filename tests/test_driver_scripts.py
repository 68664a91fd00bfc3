"""Driver scripts: a file that names no gradient call of its own (no ``backward``, ``step``, ``zero_grad``...)
but calls training code of its project (``from engine import train_one_epoch``) is linted like any training
file (looplint.engine.trained_imports, looplint.model.project.Project.trained_imports): the optimizer it
builds on every epoch, or the ``eval()`` it leaves on before the next imported epoch, are bugs of its own
code that only show through what the imported code does."""
import os
import textwrap

import pytest
from shapes import write

from looplint.engine import judges, lint_file, trained_imports


def codes(path):
    return sorted(d.code for d in lint_file(str(path)))


# The per-epoch function of the imported module, under the name the test gives it.
EPOCH = """\
    def {fn}(net, batches, opt):
        for xb, yb in batches:
            opt.zero_grad()
            loss = ((net(xb) - yb) ** 2).mean()
            loss.backward()
            opt.step()
"""

# The same, as a method of a class the driver constructs.
TRAINER = """\
    class {cls}:
        def __init__(self, net, opt):
            self.net, self.opt = net, opt

        def {fn}(self, batches):
            for xb, yb in batches:
                self.opt.zero_grad()
                loss = ((self.net(xb) - yb) ** 2).mean()
                loss.backward()
                self.opt.step()
"""

# Where the driver reaches the imported code: (files besides the driver, driver path, import, call of one epoch)
LAYOUTS = [
    ({"engine.py": EPOCH}, "main.py", "from engine import {fn}", "{fn}(net, batches, opt)"),
    ({"engine.py": EPOCH}, "main.py", "from engine import {fn} as run_epoch", "run_epoch(net, batches, opt)"),
    ({"engine.py": EPOCH}, "main.py", "import engine", "engine.{fn}(net, batches, opt)"),
    ({"engine.py": EPOCH}, "main.py", "import engine as eng", "eng.{fn}(net, batches, opt)"),
    ({"engine.py": EPOCH}, "main.py", "from engine import *", "{fn}(net, batches, opt)"),
    ({"lib/__init__.py": "", "lib/loops.py": EPOCH}, "main.py", "from lib import loops", "loops.{fn}(net, batches, opt)"),
    ({"lib/__init__.py": "", "lib/loops.py": EPOCH}, "main.py", "from lib.loops import {fn}", "{fn}(net, batches, opt)"),
    ({"lib/__init__.py": "from .loops import {fn}\n", "lib/loops.py": EPOCH}, "main.py", "from lib import {fn}",
     "{fn}(net, batches, opt)"),  # re-exported by the package
    ({"pkg/__init__.py": "", "pkg/core/__init__.py": "", "pkg/core/loops.py": EPOCH, "pkg/tools/__init__.py": ""},
     "pkg/tools/main.py",
     "from ..core.loops import {fn}", "{fn}(net, batches, opt)"),
    ({"engine.py": TRAINER}, "main.py", "from engine import {cls}", "{cls}(net, opt).{fn}(batches)"),
]

# The driver's epoch loop, at module level or in a function (called from the module, or by nobody here).
LL107_DRIVER = """\
    import torch
    {imports}

    {head}
    net = torch.nn.Linear(3, 1)
    batches = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(5)]
    for epoch in range(10):
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9){after}
        {call}
"""

LL402_DRIVER = """\
    import torch
    {imports}


    def evaluate(net, batches):
        net.eval()
        with torch.no_grad():
            return sum(float(((net(x) - y) ** 2).mean()) for x, y in batches)

    {head}
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(net.parameters())
    batches = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(5)]
    for epoch in range(10):{before}
        {call}
        print(evaluate(net, batches))
"""

HEADS = {
    "module": "",
    "main": "def main():",
    "uncalled": "def run_experiment():",
}


def driver(template, imports, call, head, **parts):
    text = textwrap.dedent(template).format(imports=imports, call=call, head=HEADS[head], **parts)
    if head == "module":
        return text
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line == HEADS[head]) + 1
    body = ["    " + line if line else line for line in lines[start:]]
    out = "\n".join(lines[:start] + body)
    if head == "main":
        out += '\n\nif __name__ == "__main__":\n    main()\n'
    return out


def project(tmp_path, layout, main, imports, call, fn, cls, template, head, **parts):
    files = {name: text.format(fn=fn, cls=cls) for name, text in layout.items()}
    write(tmp_path, files)
    text = driver(template, imports.format(fn=fn, cls=cls), call.format(fn=fn, cls=cls), head, **parts)
    path = tmp_path / main
    path.write_text(text)
    return path


@pytest.mark.parametrize("layout, main, imports, call", LAYOUTS)
@pytest.mark.parametrize("fn, cls", [("train_one_epoch", "Trainer"), ("fit", "Runner")])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_an_optimizer_built_per_epoch_around_an_imported_epoch_is_found(tmp_path, layout, main, imports, call,
                                                                        fn, cls, head):
    path = project(tmp_path, layout, main, imports, call, fn, cls, LL107_DRIVER, head, after="")
    assert codes(path) == ["LL107"]
    # control: the optimizer built once, before the loop
    text = path.read_text()
    moved = text.replace("    opt = torch.optim.SGD", "    pass  # ").replace(
        "batches = [", "opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)\n" +
        (" " * (0 if head == "module" else 4)) + "batches = [", 1)
    path.write_text(moved)
    assert codes(path) == []


@pytest.mark.parametrize("layout, main, imports, call", LAYOUTS)
@pytest.mark.parametrize("head", sorted(HEADS))
def test_an_eval_left_on_before_an_imported_epoch_is_found(tmp_path, layout, main, imports, call, head):
    path = project(tmp_path, layout, main, imports, call, "train_epoch", "Loop", LL402_DRIVER, head, before="")
    assert codes(path) == ["LL402"]
    path.unlink()
    path = project(tmp_path, layout, main, imports, call, "train_epoch", "Loop", LL402_DRIVER, head,
                   before="\n    net.train()")
    assert codes(path) == []


def test_what_makes_a_driver(tmp_path):
    """Only names the file calls (or hands on) that are definitions of the project that train count: not
    a helper of the same module that trains nothing, not a name only imported or bound again."""
    write(tmp_path, {
        "engine.py": textwrap.dedent(EPOCH).format(fn="train_epoch") + "\n\ndef load(n):\n    return list(range(n))\n\n\n"
                     "class Meter:\n    def step(self, v):  # a method named step runs no optimizer\n"
                     "        self.v = v\n",
        "pkg/__init__.py": "from engine import train_epoch\n",
    })
    cases = {
        "from engine import train_epoch, load\nload(3)\ntrain_epoch(None, [], None)\n": {"train_epoch"},
        "from engine import train_epoch, load\nload(3)\n": set(),  # imported, never called
        "from engine import load, Meter\nload(3)\nmeter = Meter()\n": set(),
        "from engine import train_epoch\ntrain_epoch = train_epoch\n": set(),  # bound again only
        "from engine import train_epoch\nengine = Engine(train_epoch)\n": {"train_epoch"},  # handed on
        "import engine\nengine.load(3)\n": set(),
        "import engine\nengine.train_epoch(1, 2, 3)\n": {"train_epoch"},
        "import json\njson.dumps(1)\n": set(),
    }
    for text, expected in cases.items():
        path = str(tmp_path / "driver.py")
        import ast

        assert set(trained_imports(ast.parse(text), text, path)) == expected, text
        assert judges(text, path) == bool(expected), text


def test_a_module_that_starts_to_train_relints_its_driver_through_the_cache(tmp_path, monkeypatch, capsys):
    from looplint.cli import main

    quiet = "def train_one_epoch(net, batches, opt):\n    print(len(batches))\n"
    layout, main_py, imports, call = LAYOUTS[0]
    path = project(tmp_path, {"engine.py": quiet}, main_py, imports, call, "train_one_epoch", "T", LL107_DRIVER,
                   "module", after="")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPLINT_NO_CACHE", raising=False)
    args = ["--isolated", "--cache-dir", str(tmp_path / "cache"), path.name]
    assert main(args) == 0
    assert main(args) == 0  # served from the cache
    write(tmp_path, {"engine.py": EPOCH.format(fn="train_one_epoch")})
    assert main(args) == 1 and "LL107" in capsys.readouterr().out
    os.remove(tmp_path / "engine.py")
    assert main(args) == 0  # gone: nothing trains
    write(tmp_path, {"engine/__init__.py": EPOCH.format(fn="train_one_epoch")})  # a package that appears
    assert main(args) == 1


def test_confirm_runs_a_driver_found_in_a_folder(tmp_path):
    from looplint.runtime.confirm import collect

    write(tmp_path, {"engine.py": EPOCH.format(fn="fit"), "notes.py": "print('hello')\n"})
    path = project(tmp_path, {}, "main.py", "from engine import fit", "fit(net, batches, opt)", "fit", "T",
                   LL107_DRIVER, "main", after="")
    assert sorted(os.path.basename(p) for p in collect([str(tmp_path)])) == ["engine.py", os.path.basename(path)]
