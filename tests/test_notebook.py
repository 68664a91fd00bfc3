"""Notebooks: cells joined, IPython syntax masked line for line, non-Python cell magics skipped, findings
mapped back to (cell counting all cells, row in the cell); malformed notebooks are LL000."""
from __future__ import annotations

import json

import pytest

from looplint import notebook
from looplint.notebook import Cell, is_python_cell, lint_notebook_text, mask_cell, mask_line, to_python

from conftest import BAD_PROGRAM, BROKEN_COLUMN, relative, requires_ll101


def make_notebook(*cells, language="python"):
    """cells: (kind, source) pairs; source is a str (split into a list of lines the way Jupyter stores it)."""
    raw = []
    for kind, source in cells:
        cell = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        raw.append(cell)
    meta = {"language_info": {"name": language}} if language else {}
    return json.dumps({"cells": raw, "metadata": meta, "nbformat": 4, "nbformat_minor": 5})


# ---------------------------------------------------------------------------------------------- masking


@pytest.mark.parametrize("line, masked", [
    ("%matplotlib inline", "pass"),
    ("!pip install torch", "pass"),
    ("    !ls -la", "    pass"),
    ("%time train()", "train()"),  # code magics keep their code
    ("    %timeit -n 10 -r 3 opt.step()", "    opt.step()"),
    ("%prun -l 5 train(model)", "train(model)"),
    ("%timeit", "pass"),
    ("% timeit f()", "f()"),
    ("% matplotlib inline", "pass"),
    ("%%time", "pass"),
    ("files = !ls", "files = None"),
    ("out, err = %sx ls", "out, err = None"),
    ("self.x = %timeit -o f()", "self.x = None"),
    ("torch.nn.Linear?", "pass"),
    ("torch.optim.SGD??", "pass"),
    ("?torch.optim", "pass"),
    ("np.*load*?", "pass"),
    # magics IPython runs without ``%`` (automagic), where the line is no Python
    ("cd torchtune/", "pass"),
    ("pip install -q torch torchvision", "pass"),
    ("    mkdir -p checkpoints/run1", "    pass"),
    ("load_ext tensorboard", "pass"),
    ("run train.py --epochs 3", "pass"),
    ("cd ..", "pass"),
    # ... and not where it is Python
    ("ls -l", "ls -l"),
    ("cd = os.getcwd()", "cd = os.getcwd()"),
    ("run(train, 3)", "run(train, 3)"),
    ("env", "env"),
    ("train model.py", "train model.py"),  # no magic: a syntax error stays one
    # plain Python is left alone
    ("x = a % b", "x = a % b"),
    ("if a != b:", "if a != b:"),
    ("print('really?')", "print('really?')"),
    ("x = 1  # why?", "x = 1  # why?"),
    ("# %matplotlib inline", "# %matplotlib inline"),
])
def test_mask_line(line, masked):
    assert mask_line(line) == masked


def test_mask_cell_keeps_row_count_continuations_and_strings():
    lines = [
        "!pip install \\",
        "    torch",
        'doc = """',
        "%this is text in a string",
        '"""',
        "%time f()",
        "x = (a",
        "     % b)",  # a modulo continuing an expression, not a magic
        "y = a \\",
        "    % b",
        "% timeit f()",
    ]
    assert mask_cell(lines) == [
        "pass", "", 'doc = """', "%this is text in a string", '"""', "f()", "x = (a", "     % b)", "y = a \\", "    % b",
        "f()",
    ]


def test_cell_magics_decide_whether_a_cell_is_python():
    def code(src):
        return Cell(1, "code", tuple(src.splitlines()))

    assert is_python_cell(code("x = 1"))
    assert is_python_cell(code("%%time\nx = 1"))
    assert is_python_cell(code("%%capture out\nx = 1"))
    assert not is_python_cell(code("%%bash\necho hi"))
    assert not is_python_cell(code("\n%%html\n<b>x</b>"))
    assert not is_python_cell(code("%%writefile a.py\nx = (\n"))
    assert not is_python_cell(Cell(1, "markdown", ("x = 1",)))


def test_joined_rows_map_to_cells_counting_every_cell():
    nb = notebook.parse_notebook(make_notebook(
        ("markdown", "# Title\ntext"),
        ("code", "a = 1\nb = 2"),
        ("code", "%%bash\necho skipped"),
        ("raw", "raw text"),
        ("code", "%%time\nc = 3\n"),
    ))
    source, rows = to_python(nb)
    assert source == "a = 1\nb = 2\npass\nc = 3\n"
    assert rows == [(2, 1, 0), (2, 2, 0), (5, 1, 0), (5, 2, 0)]


# ---------------------------------------------------------------------------------------------- lint


def test_syntax_error_is_ll000_in_its_cell():
    text = make_notebook(
        ("markdown", "# Training"),
        ("code", "import torch\n!nvidia-smi"),
        ("code", "x = 1\nloss.backward(\n"),
    )
    [d] = lint_notebook_text(text, "nb.ipynb")
    assert (d.code, d.cell, d.line) == ("LL000", 3, 2)
    assert d.noqa_row == 2


@pytest.mark.parametrize("cells,where,said", [
    # Python names the row of a definition left without a body (Jupyter parses the cell alone: the error
    # is at its end, not in the next cell), and the row a string runs to
    ((("code", "a = 1\nb = 2\n"), ("code", "def reward(s):\n    # <YOUR CODE>\n"), ("code", "agent = 1\n")),
     (3, 2), "after function definition on line 1 of cell 3"),
    ((("code", "a = 1\nb = 2\n"), ("code", "x = 0\nentropy = <YOUR CODE: don't forget the sign!>\n")),
     (3, 2), "(detected at line 2 of cell 3)"),
])
def test_rows_a_syntax_error_names_are_rows_of_their_cells(cells, where, said):
    text = make_notebook(("markdown", "# Exercise"), *cells)
    [d] = lint_notebook_text(text, "nb.ipynb")
    assert (d.code, d.cell, d.line) == ("LL000", *where)
    assert said in d.message, d.message


def test_masked_magics_do_not_cause_parse_errors():
    text = make_notebook(
        ("code", "%load_ext autoreload\n%autoreload 2\nimport torch"),
        ("code", "for i in range(3):\n    !echo $i\n    res = !ls\n    loss.backward()\n"),
        ("code", "%%bash\nthis is ( not python"),
        ("code", "torch.optim.SGD?"),
        ("code", "cd data/\npip install -q torchmetrics\nimport torch"),
        ("code", "run = wandb.init(\n    project='p',\n)\nls, cd = 1, 2\nenv = {'A': 1}"),
    )
    assert lint_notebook_text(text, "nb.ipynb") == []


@pytest.mark.parametrize("separator", ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_cells_split_rows_where_python_does(separator):
    # str.splitlines() breaks at these characters, Python does not: rows would shift and the string break.
    cell = f"import torch\ns = 'a{separator}b'\nx = 1\nloss.backward()\nopt.step()  # row 5\n"
    found = lint_notebook_text(make_notebook(("code", cell)), "nb.ipynb")
    assert [d.code for d in found if d.code == "LL000"] == []
    assert notebook.parse_notebook(make_notebook(("code", cell))).cells[0].lines[4].startswith("opt.step()")


@requires_ll101
def test_a_code_magic_keeps_its_code_and_its_columns():
    cell = (
        "import torch\n"
        "model = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x in torch.randn(4, 3, 2):\n"
        "    opt.zero_grad()\n"
        "    %time model(x).sum().backward()\n"
        "    %timeit -n 1 -r 1 opt.step()\n"
    )
    found = lint_notebook_text(make_notebook(("code", cell)), "nb.ipynb")
    assert found == []  # the backward inside %time counts: no LL104 "step without backward"
    without_zero = cell.replace("    opt.zero_grad()\n", "")
    [d] = lint_notebook_text(make_notebook(("code", without_zero)), "nb.ipynb")
    assert (d.code, d.cell, d.line, d.column) == ("LL101", 1, 6, 5 + len("%timeit -n 1 -r 1 "))


@requires_ll101
@pytest.mark.parametrize("indent", [" ", "  ", "\t"])
def test_an_indented_cell_runs_dedented_as_ipython_runs_it(indent):
    # IPython takes the first line's indentation off every line that starts with it (``leading_indent``)
    body = (
        "import torch\n"
        "model = torch.nn.Linear(2, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x in torch.randn(4, 3, 2):\n"
        "    model(x).sum().backward()\n"
        "    opt.step()\n"
    )
    cell = "".join(indent + line for line in body.splitlines(keepends=True))
    [d] = lint_notebook_text(make_notebook(("code", "x = 1"), ("code", cell)), "nb.ipynb")
    assert (d.code, d.cell, d.line, d.column) == ("LL101", 2, 6, 5 + len(indent))
    # only the first line decides: a cell whose later lines are indented alone is still a syntax error
    broken = "import torch\n" + "".join(indent + line for line in body.splitlines(keepends=True)[1:])
    assert [d.code for d in lint_notebook_text(make_notebook(("code", broken)), "nb.ipynb")] == ["LL000"]


def test_a_magic_written_with_a_space_is_a_magic():
    text = make_notebook(("code", "import torch\n% timeit loss.backward()\n% matplotlib inline\n"))
    assert lint_notebook_text(text, "nb.ipynb") == []


@pytest.mark.parametrize("text, reason", [
    ("{", "not valid JSON"),
    ("[]", "cells"),
    ('{"cells": {}}', "cells"),
    ('{"cells": [3], "nbformat": 4}', "cell 1"),
    ('{"cells": [{"cell_type": "code", "source": 3}], "nbformat": 4}', "source"),
    ('{"cells": [], "nbformat": 3}', "nbformat"),
    ("[" * 100000, "nested too deeply"),
])
def test_malformed_notebook_is_one_ll000(text, reason):
    [d] = lint_notebook_text(text, "nb.ipynb")
    assert d.code == "LL000" and (d.line, d.column) == (1, 1)
    assert reason in d.message


def test_non_python_notebooks_are_skipped():
    text = make_notebook(("code", "loss.backward(\n"), language="R")
    assert lint_notebook_text(text, "nb.ipynb") == []
    assert notebook.parse_notebook(text).is_python is False


def test_string_source_and_bom_are_accepted(tmp_path):
    raw = {"cells": [{"cell_type": "code", "source": "x = 1\nloss.backward(\n", "metadata": {}, "outputs": []}],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(raw).encode())
    [d] = notebook.lint_any(str(path))
    assert (d.code, d.cell, d.line) == ("LL000", 1, 2)


def test_lint_any_reports_unreadable_and_undecodable(tmp_path):
    [missing] = notebook.lint_any(str(tmp_path / "nope.ipynb"))
    assert missing.code == "LL000" and "cannot read" in missing.message
    bad = tmp_path / "bad.ipynb"
    bad.write_bytes(b'{"cells": ["\xff"]}')
    [undecodable] = notebook.lint_any(str(bad))
    assert undecodable.code == "LL000" and "decode" in undecodable.message


# ---------------------------------------------------------------------------------------------- command line


def test_cli_reports_notebook_cells_in_concise_and_json(project, run):
    project({"nbs/train.ipynb": make_notebook(
        ("markdown", "# notes"),
        ("code", "import torch"),
        ("code", "x = 1\nloss.backward(\n"),
    )})
    result = run(".")
    assert result.code == 1
    assert result.out.splitlines()[0].startswith(relative("nbs/train.ipynb") + f":cell 3:2:{BROKEN_COLUMN}: LL000 ")
    [item] = json.loads(run("--output-format", "json", ".").out)
    assert (item["cell"], item["location"]["row"]) == (3, 2)


def test_cli_reads_a_notebook_from_stdin(project, run, monkeypatch):
    import io
    import sys

    project({})
    text = make_notebook(("code", "loss.backward(\n"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8"))
    result = run("-", "--stdin-filename", "nb.ipynb")
    assert result.out.startswith(f"nb.ipynb:cell 1:1:{BROKEN_COLUMN}: LL000")


def _split_bad_program():
    lines = BAD_PROGRAM.splitlines(keepends=True)
    # cell 1 markdown; cell 2 = setup with magics; cell 3 = the loop (its step on row 4 of the cell)
    setup = "%matplotlib inline\n!pip list\n" + "".join(lines[:3])
    loop = "".join(lines[3:])
    return make_notebook(("markdown", "# Train"), ("code", setup), ("code", loop))


@requires_ll101
def test_ll101_in_a_notebook_is_mapped_to_its_cell(project, run):
    project({"train.ipynb": _split_bad_program()})
    result = run("train.ipynb")
    assert result.code == 1
    assert result.out.splitlines()[0].startswith("train.ipynb:cell 3:4:5: LL101 ")


@requires_ll101
def test_noqa_in_a_notebook_cell(project, run):
    text = _split_bad_program().replace("opt.step()", "opt.step()  # noqa: LL101")
    project({"train.ipynb": text})
    assert run("train.ipynb").code == 0


# ---------------------------------------------------------------------------------------- cells that do not parse

LOOP_CELLS = (
    ("code", "import torch\nimport torch.nn as nn\nnet = nn.Linear(2, 1)\nopt = torch.optim.SGD(net.parameters(), lr=0.1)\n"),
    ("code", "for x in [torch.randn(4, 2)] * 3:\n    loss = net(x).sum()\n    loss.backward()\n    opt.step()\n"),
)
# exercises' blanks, as course notebooks leave them
BLANKS = ["elbo = # your code\n", "shape = (?, ?)\n", "word_to_idx[w] =\n", "def reward(s):\n    # <YOUR CODE>\n",
          "x = 0\nentropy = <YOUR CODE: don't forget the sign!>\n", "loss = (net(x) - y\n"]


@requires_ll101
@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_cell_that_does_not_parse_is_ll000_and_the_other_cells_are_linted(blank, where):
    # Jupyter runs each cell alone: the broken one fails, the others run (and train without zero_grad)
    cells = list(LOOP_CELLS)
    cells.insert(where, ("code", blank))
    found = lint_notebook_text(make_notebook(("markdown", "# Exercise"), *cells), "nb.ipynb")
    broken = where + 2  # the markdown cell is cell 1
    loop = 3 if where == 2 else 4
    assert [(d.code, d.cell) for d in found] == [("LL000", broken), ("LL101", loop)]
    assert found[1].line == 4  # the step, on its cell's row


@requires_ll101
def test_each_cell_that_does_not_parse_is_reported_and_a_clean_notebook_is_as_before():
    cells = [("code", BLANKS[0]), LOOP_CELLS[0], ("code", BLANKS[1]), LOOP_CELLS[1]]
    found = lint_notebook_text(make_notebook(*cells), "nb.ipynb")
    assert [(d.code, d.cell) for d in found] == [("LL000", 1), ("LL000", 3), ("LL101", 4)]
    assert [(d.code, d.cell) for d in lint_notebook_text(make_notebook(*LOOP_CELLS), "nb.ipynb")] == [("LL101", 2)]


@requires_ll101
def test_fix_and_diff_leave_a_cell_that_does_not_parse_as_it_is(project, run):
    text = make_notebook(LOOP_CELLS[0], ("code", BLANKS[0]), LOOP_CELLS[1])
    root = project({"train.ipynb": text})
    diff = run("--diff", "train.ipynb")
    assert "--- train.ipynb:cell 3" in diff.out and "+    opt.zero_grad()" in diff.out, diff.out + diff.err
    assert (root / "train.ipynb").read_text() == text
    run("--fix", "train.ipynb")
    cells = json.loads((root / "train.ipynb").read_text())["cells"]
    assert "".join(cells[1]["source"]) == BLANKS[0]
    assert "opt.zero_grad()" in "".join(cells[2]["source"])
