"""Fixing files on disk: read, fix (``looplint.fix``), show as a unified diff or write back.

A file is written back only when a fix changed it, atomically (a temporary file in the same folder, then
``os.replace``), with its encoding (the PEP 263 cookie's), its byte-order mark, its line endings (LibCST
keeps them) and its file mode. A notebook is fixed in its cells: the code cells are joined as for linting,
fixed, and every changed row goes back to the cell it came from (a fix that would change rows of two cells
at once, or a masked IPython row, is not applied); the other cells, outputs and metadata are left alone.

``add_noqa_source`` adds ``# noqa: LLxxx`` to every row with a finding, merging with a ``# noqa: ...``
already there (a bare ``# noqa`` already covers everything); running it twice adds nothing.
"""
from __future__ import annotations

import difflib
import io
import json
import os
import re
import tempfile
import tokenize
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from looplint.diagnostics import Diagnostic
from looplint.files import MAX_NOTEBOOK_BYTES, MAX_SOURCE_BYTES, read_regular


@dataclass
class FileFix:
    path: str
    before: str = ""  # the text as read (a notebook: its JSON)
    after: str = ""  # the text with the fixes (equal to ``before`` when nothing changed)
    fixed: List[Diagnostic] = field(default_factory=list)
    remaining: List[Diagnostic] = field(default_factory=list)
    diff: str = ""  # unified diff, when something changed

    @property
    def changed(self) -> bool:
        return self.after != self.before


class Encoded:
    """A Python file's text with what is needed to write it back as it was encoded."""

    def __init__(self, data: bytes):
        self.encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(self.encoding)
        self.bom = text.startswith("\ufeff")
        self.text = text[1:] if self.bom else text

    def encode(self, text: str) -> bytes:
        if self.encoding == "utf-8-sig":  # the codec writes the mark itself
            return text.encode(self.encoding)
        return (("\ufeff" if self.bom else "") + text).encode(self.encoding)


def write_atomic(path: str, data: bytes) -> None:
    """Replaces ``path``'s content with ``data`` in one step, keeping its permission bits."""
    mode = os.stat(path).st_mode & 0o7777
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".looplint-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def unified_diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True), name, name)
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n" for line in lines)


# -- Python sources ----------------------------------------------------------------------------------------

def fix_python_text(text: str, path: str, rules: Sequence[type], unsafe: bool) -> FileFix:
    from looplint.fix import fix_source

    result = fix_source(text, path, rules, unsafe=unsafe)
    out = FileFix(path, text, result.source, result.fixed, result.remaining)
    if out.changed:
        out.diff = unified_diff(text, result.source, path)
    return out


def fix_file(path: str, rules: Sequence[type], unsafe: bool = False, write: bool = True) -> Optional[FileFix]:
    """Fixes one file (``write``: and writes it back). None when the file cannot be read or decoded: it is
    linted the usual way, which reports why."""
    from looplint.notebook import is_notebook

    try:
        data = read_regular(path, MAX_NOTEBOOK_BYTES if is_notebook(path) else MAX_SOURCE_BYTES)
    except OSError:
        return None
    except Exception:  # noqa: BLE001 - too large, not a regular file: the lint reports it
        return None
    if is_notebook(path):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
        result = fix_notebook_text(text, path, rules, unsafe)
        encoded = (("\ufeff" if data.startswith(b"\xef\xbb\xbf") else "") + result.after).encode("utf-8")
    else:
        try:
            source = Encoded(data)
        except (UnicodeDecodeError, SyntaxError, LookupError):
            return None
        result = fix_python_text(source.text, path, rules, unsafe)
        try:
            encoded = source.encode(result.after)
        except UnicodeEncodeError:
            return None
    if write and result.changed:
        write_atomic(path, encoded)
    return result


# -- notebooks ---------------------------------------------------------------------------------------------

_NEWLINE = re.compile(r"\r\n|\r|\n")


def fix_notebook_text(text: str, path: str, rules: Sequence[type], unsafe: bool) -> FileFix:
    from looplint.fix import fix_source
    from looplint.notebook import NotebookError, lint_notebook_text, map_to_cells, parse_notebook, python_text

    out = FileFix(path, text, text)
    try:
        notebook = parse_notebook(text)
        data = json.loads(text)
    except (NotebookError, ValueError, RecursionError):
        out.remaining = lint_notebook_text(text, path, rules)
        return out
    if not notebook.is_python:
        return out
    joined, rows, _broken = python_text(notebook, path)  # a cell that does not parse stays as it is
    result = fix_source(joined, path, rules, unsafe=unsafe)
    if not (result.fixed and _into_cells(out, data, joined, result.source, rows, notebook)):
        out.remaining = lint_notebook_text(text, path, rules)
        return out
    out.fixed = map_to_cells(result.fixed, rows)
    out.remaining = lint_notebook_text(out.after, path, rules)
    return out


def _into_cells(out: FileFix, data, joined: str, new_joined: str, rows, notebook) -> bool:
    """Puts the changes of the notebook's joined Python text back into its cells: sets ``out.after`` (the
    notebook's JSON, indented as it was) and ``out.diff`` (per cell). False when a change cannot be put back."""

    def old_text(number: int) -> str:
        old = data["cells"][number - 1].get("source", "")
        return "".join(old) if isinstance(old, list) else old

    cells = changed_cells(joined, new_joined, rows, notebook, old_text)
    if not cells:
        return False
    diffs = []
    for number, new_text in sorted(cells.items()):
        raw = data["cells"][number - 1]
        diffs.append(unified_diff(old_text(number), new_text, f"{out.path}:cell {number}"))  # before it changes
        raw["source"] = new_text.splitlines(True) if isinstance(raw.get("source", ""), list) else new_text
    out.after = _dump_like(data, out.before)
    out.diff = "".join(diffs)
    return True


def changed_cells(joined: str, new_joined: str, rows, notebook, old_text) -> Optional[Dict[int, str]]:
    """The new text of every cell (by number) that a change of the notebook's joined Python text touches,
    written with the cell's own line endings (``old_text(number)``: the cell's text); None when a change
    cannot be put back."""
    cells = _back_to_cells(joined, new_joined, rows, notebook)
    if not cells:
        return None
    out = {}
    for number, lines in cells.items():
        old = old_text(number)
        m = _NEWLINE.search(old)
        newline = m.group() if m else "\n"
        out[number] = newline.join(lines) + (newline if old.endswith(("\n", "\r")) else "")
    return out


def _back_to_cells(before: str, after: str, rows, notebook) -> Optional[Dict[int, List[str]]]:
    """The new lines of every cell the fixed joined text changes, or None when a change cannot be put
    back (it spans two cells, or touches a masked IPython row)."""
    old = before.split("\n")[:-1]
    new = after.split("\n")[:-1] if after.endswith("\n") else after.split("\n")
    cells: Dict[int, List[str]] = {}
    touched = set()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            for i in range(i1, i2):
                cells.setdefault(rows[i].cell, []).append(notebook.cell(rows[i].cell).lines[rows[i].line - 1])
            continue
        owners = {rows[i].cell for i in range(i1, i2)}
        if not owners:  # a pure insertion: into the cell of the row before it (or the first cell)
            owners = {rows[i1 - 1].cell if i1 > 0 else rows[0].cell}
        if len(owners) != 1:
            return None
        cell = owners.pop()
        for i in range(i1, i2):
            if notebook.cell(rows[i].cell).lines[rows[i].line - 1] != old[i]:
                return None  # a masked IPython row
        cells.setdefault(cell, []).extend(new[j1:j2])
        touched.add(cell)
    return {c: lines for c, lines in cells.items() if c in touched}


def _dump_like(data, text: str) -> str:
    """JSON text of ``data`` indented as ``text`` was (nbformat writes one space)."""
    m = re.search(r"\n( +)\"", text)
    indent = len(m.group(1)) if m else None
    dumped = json.dumps(data, indent=indent, ensure_ascii=False)
    return dumped + ("\n" if text.endswith("\n") else "")


# -- a fix as text edits (ruff's JSON ``fix.edits``) -------------------------------------------------------

class TextEdit(NamedTuple):
    """Replace the text from (row, column) to (end_row, end_column), 1-based and end-exclusive, with
    ``content`` (in a notebook: rows of the diagnostic's cell)."""

    row: int
    column: int
    end_row: int
    end_column: int
    content: str


def fix_edits(text: str, path: str, diagnostic: Diagnostic) -> List[TextEdit]:
    """The edit the fix of ``diagnostic`` makes to ``text`` (the file's text; a notebook's JSON): one
    replacement between what the fixed text shares with the original at both ends. Empty when the fix no
    longer applies or (in a notebook) would change more than the diagnostic's cell."""
    from looplint.fix import fixed_text
    from looplint.notebook import NotebookError, is_notebook, parse_notebook, python_text
    from looplint.rule import rule_by_code

    rule = rule_by_code(diagnostic.code)
    if rule is None:
        return []
    rows = None
    line, column = diagnostic.line, diagnostic.column
    if is_notebook(path):
        try:
            notebook = parse_notebook(text)
        except (NotebookError, ValueError, RecursionError):
            return []
        text, rows, _broken = python_text(notebook, path)
        at = next((i for i, r in enumerate(rows) if (r.cell, r.line) == (diagnostic.cell, diagnostic.line)), None)
        if at is None:
            return []
        line, column = at + 1, diagnostic.column - rows[at].shift
    new = fixed_text(text, path, [rule], unsafe=True, finding=(diagnostic.code, line, column))
    if new == text:
        return []
    start, end = common_ends(text, new)
    (row, col), (end_row, end_col) = row_column(text, start), row_column(text, len(text) - end)
    if rows is not None:  # back to the cell's rows (an edit may end at the start of the row after the cell)
        first, last = rows[row - 1], rows[min(end_row, len(rows)) - 1]
        if first.cell != last.cell or first.shift or last.shift:
            return []
        row, end_row = first.line, last.line + max(0, end_row - len(rows))
    return [TextEdit(row, col, end_row, end_col, new[start:len(new) - end])]


def common_ends(old: str, new: str) -> Tuple[int, int]:
    """The lengths of the longest common prefix of ``old`` and ``new`` and of their longest common suffix
    that does not overlap it."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    end = 0
    while end < limit - start and old[len(old) - 1 - end] == new[len(new) - 1 - end]:
        end += 1
    return start, end


def row_column(text: str, offset: int) -> Tuple[int, int]:
    """1-based (row, column) of a character offset."""
    before = text[:offset]
    row = before.count("\n") + 1
    return row, offset - (before.rfind("\n") + 1) + 1


# -- --add-noqa ---------------------------------------------------------------------------------------------

def add_noqa_source(source: str, diagnostics: Sequence[Diagnostic]) -> Tuple[str, int]:
    """``source`` with ``# noqa: CODES`` on every row that has a finding; (new source, directives added)."""
    from looplint.suppress import ALL, directives, comments

    wanted: Dict[int, set] = {}
    for d in diagnostics:
        if d.code != "LL000":
            wanted.setdefault(d.noqa_row or d.line, set()).add(d.code)
    if not wanted:
        return source, 0
    existing: Dict[int, Tuple[str, list]] = {}
    for row, _alone, text in comments(source):
        existing[row] = (text, list(directives(text)))
    lines = source.splitlines(True)
    added = 0
    for row, codes in sorted(wanted.items()):
        if row > len(lines):
            continue
        line = lines[row - 1]
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        comment, found = existing.get(row, (None, []))
        if any(d.codes is ALL for d in found):
            continue
        have = set().union(*(d.codes for d in found)) if found else set()
        missing = sorted(codes - have)
        if not missing:
            continue
        if found:  # extend the first directive's code list
            d = found[0]
            start = body.rindex(comment)
            at = start + d.end
            body = body[:at] + ", " + ", ".join(missing) + body[at:]
        else:
            body = body.rstrip() + "  # noqa: " + ", ".join(missing)
        lines[row - 1] = body + ending
        added += 1
    return "".join(lines), added


def add_noqa_file(path: str, rules: Sequence[type]) -> int:
    """Adds noqa directives to one Python file or notebook (written atomically); how many it added. Files
    that cannot be read or decoded are left alone (the lint reports why)."""
    from looplint.engine import lint_source
    from looplint.notebook import is_notebook

    if is_notebook(path):
        return _add_noqa_notebook(path, rules)
    try:
        source = Encoded(read_regular(path, MAX_SOURCE_BYTES))
    except Exception:  # noqa: BLE001 - unreadable or undecodable: the lint reports it
        return 0
    found = [d for d in lint_source(source.text, path, rules) if d.code != "LL000"]
    new, added = add_noqa_source(source.text, found)
    if added:
        write_atomic(path, source.encode(new))
    return added


def _add_noqa_notebook(path: str, rules: Sequence[type]) -> int:
    """``--add-noqa`` in a notebook's code cells: the directives go on the cell lines of the findings (a
    finding on a masked IPython line, or one that cannot be put back, is left alone)."""
    from looplint.engine import lint_source
    from looplint.notebook import parse_notebook, to_python

    try:
        data = read_regular(path, MAX_NOTEBOOK_BYTES)
        text = data.decode("utf-8-sig")
        notebook = parse_notebook(text)
        raw = json.loads(text)
    except Exception:  # noqa: BLE001 - unreadable, undecodable or not a notebook: the lint reports it
        return 0
    if not notebook.is_python:
        return 0
    joined, rows = to_python(notebook)
    lines = joined.split("\n")

    def as_written(row: int) -> bool:  # a row of a cell as the cell shows it (not a masked IPython line)
        return 1 <= row <= len(rows) and notebook.cell(rows[row - 1].cell).lines[rows[row - 1].line - 1] == lines[row - 1]

    found = [d for d in lint_source(joined, path, rules) if d.code != "LL000" and as_written(d.noqa_row or d.line)]
    new, added = add_noqa_source(joined, found)
    out = FileFix(path, text, text)
    if not added or not _into_cells(out, raw, joined, new, rows, notebook):
        return 0
    bom = "\ufeff" if data.startswith(b"\xef\xbb\xbf") else ""
    write_atomic(path, (bom + out.after).encode("utf-8"))
    return added
