"""Output formats: one module per format, each with ``write(diagnostics, out, context)``.

``FORMATS`` maps the names accepted by ``--output-format`` to the writers. Writers receive the diagnostics
already sorted and filtered; they never decide exit codes or print summaries (the command line does).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, TextIO

from looplint.diagnostics import Diagnostic
from looplint.report import concise, full, github, gitlab, json, json_lines, junit, sarif
from looplint.terminal import Paint

if TYPE_CHECKING:  # pragma: no cover
    from looplint.rewrite import TextEdit

Writer = Callable[[Sequence[Diagnostic], TextIO, "ReportContext"], None]

FORMATS: Dict[str, Writer] = {
    "concise": concise.write,
    "full": full.write,
    "json": json.write,
    "json-lines": json_lines.write,
    "github": github.write,
    "sarif": sarif.write,
    "gitlab": gitlab.write,
    "junit": junit.write,
}

# Formats meant for people: the command line adds ruff's summary line ("Found 3 errors.") after them.
HUMAN_FORMATS = ("concise", "full")
EDIT_FORMATS = ("json", "json-lines")  # the formats that show a fix's text edits (``ReportContext.fix_edits``)


@dataclass
class ReportContext:
    """What writers may need beyond the diagnostics: where paths are relative to, and the source text."""

    cwd: str = field(default_factory=os.getcwd)
    # Text that is not on disk (stdin), by diagnostic path.
    texts: Dict[str, str] = field(default_factory=dict)
    color: bool = False  # ANSI colours in the human formats (decided by --color)
    _cache: Dict[str, Optional[List[str]]] = field(default_factory=dict)
    # Diagnostics whose fix's text edits ``fix_edits`` made in this run (``fix.text_edits`` set).
    made_edits: List[Diagnostic] = field(default_factory=list)

    @property
    def paint(self) -> Paint:
        return Paint(self.color)

    def display_path(self, path: str) -> str:
        """The path relative to the working directory when it lies below it, else absolute (like ruff)."""
        if path == "-":
            return path
        absolute = os.path.abspath(path)
        try:
            rel = os.path.relpath(absolute, self.cwd)
        except ValueError:  # another drive on Windows
            return absolute
        return absolute if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel

    def absolute_path(self, path: str) -> str:
        return path if path == "-" else os.path.abspath(path)

    def source_lines(self, diagnostic: Diagnostic) -> Optional[List[str]]:
        """The lines the diagnostic's rows refer to: the file's, or its notebook cell's; None if unknown."""
        key = f"{diagnostic.path}\0{diagnostic.cell}"
        if key not in self._cache:
            self._cache[key] = self._load(diagnostic.path, diagnostic.cell)
        return self._cache[key]

    def text(self, path: str) -> Optional[str]:
        """The whole text the diagnostics of ``path`` refer to (a notebook: its JSON); None if unreadable."""
        from looplint import notebook
        from looplint.engine import decode

        text = self.texts.get(path)
        if text is None:
            try:
                with open(path, "rb") as f:
                    data = f.read()
                text = data.decode("utf-8-sig") if notebook.is_notebook(path) else decode(data)
            except (OSError, UnicodeDecodeError, SyntaxError, LookupError):
                return None
            self.texts[path] = text
        return text

    def fix_edits(self, diagnostic: Diagnostic) -> List["TextEdit"]:
        """The text edits of the diagnostic's fix (ruff's ``fix.edits``): from the results cache, or made
        on demand (and then listed in ``made_edits``, for the cache)."""
        from looplint.rewrite import TextEdit, fix_edits

        fix = diagnostic.fix
        if fix is None:
            return []
        if fix.text_edits is not None:
            return [TextEdit(*e) for e in fix.text_edits]
        text = self.text(diagnostic.path)
        if text is None:
            return []
        edits = fix_edits(text, diagnostic.path, diagnostic)
        self.made_edits.append(replace(diagnostic, fix=replace(fix, text_edits=tuple(tuple(e) for e in edits))))
        return edits

    def _load(self, path: str, cell: Optional[int]) -> Optional[List[str]]:
        from looplint import notebook

        text = self.text(path)
        if text is None:
            return None
        if cell is None:
            return text.splitlines()
        try:
            found = notebook.parse_notebook(text).cell(cell)
        except notebook.NotebookError:
            return None
        return list(found.lines) if found is not None else None
