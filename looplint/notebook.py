"""Jupyter notebooks, linted the way ruff lints them.

The code cells are joined into one Python text, one cell after another (the cells run in one namespace, so a
training loop may span cells). A cell's rows are split where Python splits them (``\\n``, ``\\r\\n``, ``\\r``;
never at a form feed or ``\\u2028`` as ``str.splitlines`` does), as the language server splits documents.
IPython syntax at the start of a statement is masked line for line so that row numbers survive: line magics
(``%matplotlib inline``, also written ``% matplotlib``) become ``pass``, except the ones that run their
argument as Python (``%time loss.backward()``, ``%timeit -n 3 f()``, ``%prun f()``), which keep it (findings
on such a row get their columns back); shell escapes (``!pip list``), captured shell/magic output
(``x = !ls`` becomes ``x = None``), help (``obj?``, ``??obj``) and magics written without ``%`` where the line
is no Python (``cd data/``, ``pip install x``: IPython's automagic) are masked too. Lines inside a string or
inside brackets (``% b`` continuing an expression) are left alone. A cell whose first line is a cell magic
that runs something other than Python (``%%bash``, ``%%html``, ``%%writefile``, ...) is left out;
``%%time``, ``%%timeit``, ``%%capture``, ``%%prun``, ``%%debug`` and friends keep their cell. A cell whose
first line is indented loses that indentation on every line that starts with it, as IPython runs it.

A cell Python cannot parse on its own is one ``LL000`` (Jupyter runs each cell alone: it fails, the others
run), and the other cells are linted without it. Every diagnostic is then mapped back to its cell: ``cell``
counts *all* cells from 1 (markdown included) and ``line``/``end_line``/``noqa_row`` become relative to that
cell. A notebook that is not valid JSON or not shaped like a notebook is one ``LL000`` diagnostic.
Notebooks whose kernel language is not Python are skipped.

``lint_any(path, rules)`` is the one entry point the command line uses for any file.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import re
import warnings
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

from looplint.diagnostics import Diagnostic
from looplint.engine import lint_file, lint_source, too_large
from looplint.files import MAX_NOTEBOOK_BYTES, NotRegularFile, TooLarge, is_notebook, read_regular
from looplint.rule import PARSE_ERROR, PARSE_ERROR_NAME

# Cell magics whose body is still Python (ruff's list).
PYTHON_CELL_MAGICS = frozenset({"capture", "debug", "prun", "pypy", "python", "python3", "time", "timeit"})

# At the start of a statement: ``%name``, ``% name``, ``%%name``, ``!cmd``, ``?obj``.
_ESCAPE_START = re.compile(r"^\s*(?:%|[!?])")
_LINE_MAGIC = re.compile(r"^(?P<indent>\s*)%\s*(?P<name>[A-Za-z_]\w*)(?P<rest>.*)$")
_ASSIGN_ESCAPE = re.compile(r"^(?P<indent>\s*)(?P<target>[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*[%!]")
_HELP_SUFFIX = re.compile(r"^\s*[A-Za-z_*][\w.*\[\]]*\s*\?{1,2}\s*$")

# IPython's line magics and default shell aliases that it runs without ``%`` (automagic) when the line is not
# Python; the ones a notebook writes that way.
AUTOMAGICS = frozenset({
    "alias", "autoreload", "bookmark", "cat", "cd", "clear", "conda", "cp", "dhist", "dirs", "env", "history",
    "less", "load", "load_ext", "ls", "lsmagic", "man", "matplotlib", "mkdir", "more", "mv", "pip", "popd",
    "pushd", "pwd", "pylab", "reload_ext", "reset", "rm", "rmdir", "run", "set_env", "store", "tensorboard",
    "unload_ext", "who", "whos"})
# the name, a space, then no assignment (IPython lets Python have ``ls = 'hi'``)
_AUTOMAGIC = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s+(?!=[^=])\S")

# Line magics that run the rest of their line as Python, with their options that take a value.
CODE_MAGICS = {"time": "", "timeit": "nrp", "prun": "lsDT"}

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> List[str]:
    """The rows of ``text`` without their line breaks, split where Python (and libcst) splits them."""
    return _LINE_BREAK.split(text)


def cell_lines(text: str) -> Tuple[str, ...]:
    """A cell's rows: like ``split_lines``, without the empty row after a final line break."""
    lines = split_lines(text)
    if lines[-1] == "":
        lines.pop()
    return tuple(lines)


class NotebookError(ValueError):
    """The file is not a notebook we can read (bad JSON, wrong shape)."""


@dataclass(frozen=True)
class Cell:
    number: int  # 1-based, counting every cell
    kind: str  # "code", "markdown", "raw"
    lines: Tuple[str, ...]  # the cell's source, line by line, without line endings


@dataclass(frozen=True)
class Notebook:
    cells: Tuple[Cell, ...]
    is_python: bool = True

    def cell(self, number: int) -> Optional[Cell]:
        return self.cells[number - 1] if 0 < number <= len(self.cells) else None


def parse_notebook(text: str) -> Notebook:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise NotebookError(f"not valid JSON: {e}") from None
    except RecursionError:
        raise NotebookError("not valid JSON: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError("not a Jupyter notebook: no `cells` list")
    major = data.get("nbformat", 4)
    if not isinstance(major, int) or major < 4:
        raise NotebookError(f"unsupported nbformat {major!r} (looplint reads nbformat 4)")
    cells = []
    for i, raw in enumerate(data["cells"], start=1):
        if not isinstance(raw, dict):
            raise NotebookError(f"cell {i} is not a JSON object")
        source = raw.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise NotebookError(f"cell {i} has a `source` that is neither a string nor a list of strings")
        kind = raw.get("cell_type", "code")
        cells.append(Cell(i, kind if isinstance(kind, str) else "code", cell_lines(source)))
    metadata = data.get("metadata")
    language = None
    if isinstance(metadata, dict):
        info = metadata.get("language_info")
        if isinstance(info, dict) and isinstance(info.get("name"), str):
            language = info["name"].lower()
        else:
            spec = metadata.get("kernelspec")
            if isinstance(spec, dict) and isinstance(spec.get("language"), str):
                language = spec["language"].lower()
    return Notebook(tuple(cells), language in (None, "python"))


def _cell_magic(cell: Cell) -> Optional[str]:
    for line in cell.lines:
        if line.strip():
            stripped = line.strip()
            if stripped.startswith("%%"):
                return stripped[2:].split(None, 1)[0] if len(stripped) > 2 else ""
            return None
    return None


def is_python_cell(cell: Cell) -> bool:
    if cell.kind != "code":
        return False
    magic = _cell_magic(cell)
    return magic is None or magic in PYTHON_CELL_MAGICS


class Row(NamedTuple):
    """Where a row of the joined text comes from: its cell, its row there, and how many columns its code
    moved left when a code magic's prefix was taken off (``%time loss.backward()``)."""

    cell: int
    line: int
    shift: int = 0


def mask_line(line: str) -> str:
    """One line that starts a statement, with its IPython syntax replaced by Python of the same meaning for
    us."""
    return _mask(line)[0]


def _mask(line: str) -> Tuple[str, int]:
    m = _ASSIGN_ESCAPE.match(line)
    if m:
        return f"{m.group('indent')}{m.group('target')} = None", 0
    m = _LINE_MAGIC.match(line)
    if m and m.group("name") in CODE_MAGICS:
        start = _magic_code_start(line, m)
        if start is not None:
            indent = m.group("indent")
            return indent + line[start:], start - len(indent)
    if _ESCAPE_START.match(line) or _HELP_SUFFIX.match(line) or _automagic(line):
        indent = line[: len(line) - len(line.lstrip())]
        return f"{indent}pass", 0
    return line, 0


def _automagic(line: str) -> bool:
    """A line magic or shell alias written without its ``%`` (``cd data/``, ``pip install torch``), which IPython
    runs as one (automagic is on by default): its first word names one, and the line is no Python statement."""
    m = _AUTOMAGIC.match(line)
    if m is None or m.group("name") not in AUTOMAGICS or _scan(line, None, 0) != (None, 0, False):
        return False  # a statement that goes on below (``run = wandb.init(``) is Python's
    try:
        compile(line.strip(), "<cell>", "exec", dont_inherit=True)
    except SyntaxError:
        return True
    except (ValueError, OverflowError):
        return False
    return False


def _magic_code_start(line: str, m: "re.Match[str]") -> Optional[int]:
    """Where the Python code of a code magic's line starts (after the magic's options), if it has code."""
    takes_value = CODE_MAGICS[m.group("name")]
    pos = m.start("rest")
    while True:
        token = re.compile(r"\s*(\S+)").match(line, pos)
        if token is None:
            return None
        word = token.group(1)
        if not word.startswith("-") or len(word) < 2:
            return token.start(1)
        pos = token.end()
        if word[1] in takes_value and len(word) == 2:  # ``-n 10``: the value is the next word
            value = re.compile(r"\s*\S+").match(line, pos)
            if value is None:
                return None
            pos = value.end()


def _scan(line: str, quote: Optional[str], depth: int) -> Tuple[Optional[str], int, bool]:
    """The state after ``line``: the string still open (its quote), the brackets still open, whether a
    backslash continues the line. A cheap scan, enough to tell where statements start."""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote is not None:
            if c == "\\":
                i += 2
            elif line.startswith(quote, i):
                i += len(quote)
                quote = None
            else:
                i += 1
            continue
        if c == "#":
            return None, depth, False
        if c in "\"'":
            quote = c * 3 if line.startswith(c * 3, i) else c
            i += len(quote)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(depth - 1, 0)
        i += 1
    continued = line.endswith("\\")
    if quote is not None and len(quote) == 1 and not continued:
        quote = None  # an unterminated one-line string: a syntax error the parser will report
    return quote, depth, continued and quote is None


def mask_cell(lines: Sequence[str]) -> List[str]:
    return [line for line, _ in _mask_cell(lines)]


def _mask_cell(lines: Sequence[str]) -> List[Tuple[str, int]]:
    out = []
    quote: Optional[str] = None  # a string literal still open
    depth = 0  # brackets still open
    continued = False  # the previous line ended with a backslash
    escape_continues = False  # ... and it was a masked escape (``!cmd \``): its continuation goes too
    for line in lines:
        if escape_continues:
            out.append(("", 0))
            escape_continues = line.rstrip().endswith("\\")
            continue
        if quote is None and depth == 0 and not continued:  # a statement starts here
            masked, shift = _mask(line)
            if masked != line:
                out.append((masked, shift))
                if shift == 0:
                    escape_continues = line.rstrip().endswith("\\")
                    continue
                line = masked
            else:
                out.append((line, 0))
        else:
            out.append((line, 0))
        quote, depth, continued = _scan(line, quote, depth)
    return out


def to_python(notebook: Notebook, left_out: FrozenSet[int] = frozenset()) -> Tuple[str, List[Row]]:
    """The joined Python text and, for each of its rows (index row - 1), where it comes from. The cells
    numbered in ``left_out`` keep their rows, empty."""
    parts: List[str] = []
    rows: List[Row] = []
    for cell in notebook.cells:
        if not is_python_cell(cell):
            continue
        lines, cell_rows = _python_lines(cell)
        parts.extend("" if cell.number in left_out else line for line in lines)
        rows.extend(cell_rows)
    return "".join(p + "\n" for p in parts), rows


def python_text(notebook: Notebook, path: str) -> Tuple[str, List[Row], List[Diagnostic]]:
    """``to_python`` of the notebook, and the ``LL000`` of each code cell Python cannot parse on its own.
    Jupyter runs each cell alone: such a cell (an exercise's blank, ``elbo = # your code``) fails, and the
    others run. So when the joined text does not parse, those cells' rows are left empty in it and the
    other cells are linted (and fixed) without them."""
    source, rows = to_python(notebook)
    return (source, rows, []) if _parses(source) else _without_broken_cells(notebook, path, source, rows)


def _without_broken_cells(notebook: Notebook, path: str, source: str, rows: List[Row]) -> Tuple[str, List[Row], List[Diagnostic]]:
    """``python_text`` of a notebook whose joined text (``source``, ``rows``) does not parse."""
    broken = _unparsable_cells(notebook, path)
    if not broken:
        return source, rows, []  # it fails for another reason: the engine reports it
    source, rows = to_python(notebook, frozenset(broken))
    return source, rows, [d for number in sorted(broken) for d in broken[number]]


def _parses(source: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _python_lines(cell: Cell) -> Tuple[List[str], List[Row]]:
    """A code cell's rows as Python (dedented and masked), and where each comes from."""
    lines, moved = _dedent_cell(cell.lines)
    out: List[str] = []
    rows: List[Row] = []
    for n, ((line, shift), left) in enumerate(zip(_mask_cell(lines), moved), start=1):
        out.append(line)
        rows.append(Row(cell.number, n, shift + left))
    return out, rows


def _unparsable_cells(notebook: Notebook, path: str) -> Dict[int, List[Diagnostic]]:
    """The code cells Python cannot parse on their own, with the ``LL000`` of each (rows of the cell)."""
    found: Dict[int, List[Diagnostic]] = {}
    for cell in notebook.cells:
        if not is_python_cell(cell):
            continue
        lines, rows = _python_lines(cell)
        text = "".join(line + "\n" for line in lines)
        if not _parses(text):  # the engine's LL000 says why (the cells that parse are not linted here)
            found[cell.number] = map_to_cells([d for d in lint_source(text, path, ()) if d.code == PARSE_ERROR], rows)
    return found


def _dedent_cell(lines: Sequence[str]) -> Tuple[List[str], List[int]]:
    """The cell as IPython runs it: when its first line is indented, that indentation is taken off every line
    that starts with it (IPython's ``leading_indent``). Also how many columns each line moved left."""
    first = lines[0] if lines else ""
    indent = first[:len(first) - len(first.lstrip(" \t"))]
    if not indent or not first.strip():
        return list(lines), [0] * len(lines)
    n = len(indent)
    return ([line[n:] if line.startswith(indent) else line for line in lines],
            [n if line.startswith(indent) else 0 for line in lines])


def _map_row(row: int, rows: List[Row]) -> Row:
    if not rows:
        return Row(1, 1)
    if row < 1:
        return rows[0]
    if row > len(rows):
        last = rows[-1]
        return Row(last.cell, last.line + (row - len(rows)))
    return rows[row - 1]


_JOINED_POSITION = re.compile(r"\bat (\d+):(\d+)")


# Python's own messages name a row alone: "(detected at line 175)", "after 'if' statement on line 395"
_JOINED_LINE = re.compile(r"\b(at|on) line (\d+)")


def _cell_position(m: "re.Match[str]", rows: List[Row]) -> str:
    row = _map_row(int(m.group(1)), rows)
    return f"at cell {row.cell}:{row.line}:{int(m.group(2)) + 1 + row.shift}"


def _cell_line(m: "re.Match[str]", rows: List[Row]) -> str:
    row = _map_row(int(m.group(2)), rows)
    return f"{m.group(1)} line {row.line} of cell {row.cell}"


def map_to_cells(diagnostics: Sequence[Diagnostic], rows: List[Row]) -> List[Diagnostic]:
    """Diagnostics of the joined text moved to their cells (rows and columns as the cell shows them)."""
    out = []
    for d in diagnostics:
        start = _map_row(d.line, rows)
        offset = d.line - start.line
        end_line = max(start.line, d.end_line - offset) if d.end_line else d.end_line
        end_shift = _map_row(d.end_line, rows).shift if d.end_line else 0
        noqa_row = d.noqa_row - offset if d.noqa_row else start.line
        message = d.message
        if d.code == PARSE_ERROR:  # the parser names rows of the joined text: name the cell's instead
            message = _JOINED_POSITION.sub(lambda m: _cell_position(m, rows), message)
            message = _JOINED_LINE.sub(lambda m: _cell_line(m, rows), message)
        out.append(dataclasses.replace(
            d, line=start.line, column=d.column + start.shift, end_line=end_line,
            end_column=d.end_column + end_shift if d.end_column else d.end_column,
            cell=start.cell, noqa_row=noqa_row, message=message,
        ))
    return out


def _error(path: str, message: str) -> Diagnostic:
    return Diagnostic(path, 1, 1, PARSE_ERROR, message, PARSE_ERROR_NAME, 1, 1)


def lint_notebook_text(text: str, path: str, rules: Optional[Sequence[type]] = None) -> List[Diagnostic]:
    try:
        notebook = parse_notebook(text)
    except NotebookError as e:
        return [_error(path, f"cannot read notebook: {e}")]
    if not notebook.is_python:
        return []
    source, rows = to_python(notebook)
    found = lint_source(source, path, rules)
    if not any(d.code == PARSE_ERROR for d in found):
        return map_to_cells(found, rows)  # the common case: the joined text is parsed once, by the engine
    fixed, fixed_rows, broken = _without_broken_cells(notebook, path, source, rows)
    if not broken:
        return map_to_cells(found, rows)
    return broken + map_to_cells(lint_source(fixed, path, rules), fixed_rows)


def lint_notebook(path: str, rules: Optional[Sequence[type]] = None) -> List[Diagnostic]:
    try:
        data = read_regular(path, MAX_NOTEBOOK_BYTES)
    except TooLarge as e:
        return [too_large(path, e.size, MAX_NOTEBOOK_BYTES)]
    except NotRegularFile as e:
        return [_error(path, f"cannot read file: {e}")]
    except OSError as e:
        return [_error(path, f"cannot read file: {e.strerror or e}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return [_error(path, f"cannot decode notebook: {e}")]
    return lint_notebook_text(text, path, rules)


def lint_any(path: str, rules: Optional[Sequence[type]] = None) -> List[Diagnostic]:
    """Diagnostics of one file of any kind we lint: a notebook, or Python source (whatever its suffix).
    Unreadable, undecodable and unparsable files give ``LL000``; this never raises for bad input."""
    if is_notebook(path):
        return lint_notebook(path, rules)
    return lint_file(path, rules)


def lint_text(text: str, path: str, rules: Optional[Sequence[type]] = None) -> List[Diagnostic]:
    """Like ``lint_any`` for text already in memory (stdin, an editor buffer)."""
    if is_notebook(path):
        return lint_notebook_text(text, path, rules)
    return lint_source(text, path, rules)

