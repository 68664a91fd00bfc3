"""Jupyter notebooks, linted the way ruff lints them.

The code cells are joined into one Python text, one cell after another (the cells run in one namespace, so a
training loop may span cells). IPython syntax is masked line for line so that row numbers survive:
line magics (``%time f()``), shell escapes (``!pip list``), captured shell/magic output (``x = !ls`` becomes
``x = None``) and help (``obj?``, ``??obj``); lines inside a triple-quoted string are left alone. A cell whose
first line is a cell magic that runs something other than Python (``%%bash``, ``%%html``, ``%%writefile``, ...)
is left out; ``%%time``, ``%%timeit``, ``%%capture``, ``%%prun``, ``%%debug`` and friends keep their cell.

Every diagnostic is then mapped back to its cell: ``cell`` counts *all* cells from 1 (markdown included) and
``line``/``end_line``/``noqa_row`` become relative to that cell. A notebook that is not valid JSON or not
shaped like a notebook is one ``LL000`` diagnostic. Notebooks whose kernel language is not Python are skipped.

``lint_any(path, rules)`` is the one entry point the command line uses for any file.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from looplint.diagnostics import Diagnostic
from looplint.engine import lint_file, lint_source, too_large
from looplint.files import MAX_NOTEBOOK_BYTES, NotRegularFile, TooLarge, read_regular
from looplint.rule import PARSE_ERROR, PARSE_ERROR_NAME

# Cell magics whose body is still Python (ruff's list).
PYTHON_CELL_MAGICS = frozenset({"capture", "debug", "prun", "pypy", "python", "python3", "time", "timeit"})

# ``%name``/``%%name`` (not ``% b``, a modulo continuing an expression), ``!cmd``, ``?obj``.
_ESCAPE_START = re.compile(r"^\s*(?:%%?[A-Za-z_]|[!?])")
_ASSIGN_ESCAPE = re.compile(r"^(?P<indent>\s*)(?P<target>[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*[%!]")
_HELP_SUFFIX = re.compile(r"^\s*[A-Za-z_*][\w.*\[\]]*\s*\?{1,2}\s*$")


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
        cells.append(Cell(i, kind if isinstance(kind, str) else "code", tuple(source.splitlines())))
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


def mask_line(line: str) -> str:
    """One line of a code cell with its IPython syntax replaced by Python of the same meaning for us."""
    m = _ASSIGN_ESCAPE.match(line)
    if m:
        return f"{m.group('indent')}{m.group('target')} = None"
    if _ESCAPE_START.match(line) or _HELP_SUFFIX.match(line):
        indent = line[: len(line) - len(line.lstrip())]
        return f"{indent}pass"
    return line


def _open_triple_quote(line: str, current: Optional[str]) -> Optional[str]:
    """The triple quote left open after ``line`` (a cheap scan: enough to not mask text inside a string)."""
    i = 0
    while i < len(line):
        if current is None:
            if line[i] == "#":
                return None
            for quote in ('"""', "'''"):
                if line.startswith(quote, i):
                    current = quote
                    i += 3
                    break
            else:
                i += 1
        elif line.startswith(current, i):
            current = None
            i += 3
        else:
            i += 2 if line[i] == "\\" else 1
    return current


def mask_cell(lines: Sequence[str]) -> List[str]:
    out = []
    continuing = False
    in_string: Optional[str] = None  # the triple quote of a string literal still open
    for line in lines:
        if in_string is not None:
            out.append(line)
            in_string = _open_triple_quote(line, in_string)
            continue
        if continuing:  # the continuation of a masked escape (``!cmd \`` newline ``args``)
            out.append("")
            continuing = line.rstrip().endswith("\\")
            continue
        masked = mask_line(line)
        if masked != line:
            continuing = line.rstrip().endswith("\\")
        else:
            in_string = _open_triple_quote(line, None)
        out.append(masked)
    return out


def to_python(notebook: Notebook) -> Tuple[str, List[Tuple[int, int]]]:
    """The joined Python text and, for each of its rows (index row - 1), its (cell number, row in cell)."""
    parts: List[str] = []
    rows: List[Tuple[int, int]] = []
    for cell in notebook.cells:
        if not is_python_cell(cell):
            continue
        for n, line in enumerate(mask_cell(cell.lines), start=1):
            parts.append(line)
            rows.append((cell.number, n))
    return "".join(p + "\n" for p in parts), rows


def _map_row(row: int, rows: List[Tuple[int, int]]) -> Tuple[int, int]:
    if not rows:
        return 1, 1
    if row < 1:
        return rows[0]
    if row > len(rows):
        cell, last = rows[-1]
        return cell, last + (row - len(rows))
    return rows[row - 1]


_JOINED_POSITION = re.compile(r"\bat (\d+):(\d+)")


def _cell_position(m: "re.Match[str]", rows: List[Tuple[int, int]]) -> str:
    cell, line = _map_row(int(m.group(1)), rows)
    return f"at cell {cell}:{line}:{int(m.group(2)) + 1}"


def map_to_cells(diagnostics: Sequence[Diagnostic], rows: List[Tuple[int, int]]) -> List[Diagnostic]:
    out = []
    for d in diagnostics:
        cell, line = _map_row(d.line, rows)
        offset = d.line - line
        end_line = max(line, d.end_line - offset) if d.end_line else d.end_line
        noqa_row = d.noqa_row - offset if d.noqa_row else line
        message = d.message
        if d.code == PARSE_ERROR:  # the parser names rows of the joined text: name the cell's instead
            message = _JOINED_POSITION.sub(lambda m: _cell_position(m, rows), message)
        out.append(
            dataclasses.replace(d, line=line, end_line=end_line, cell=cell, noqa_row=noqa_row, message=message)
        )
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
    return map_to_cells(lint_source(source, path, rules), rows)


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


def is_notebook(path: str) -> bool:
    return path.lower().endswith(".ipynb")


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

