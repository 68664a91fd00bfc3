"""Fuzzing looplint: programs made by mutating the fixtures (seeded) or generated from Python's grammar
(``hypothesmith``), and the properties every one of them must keep.

Properties of ``looplint`` on any input (``problems``):

* it never raises;
* it is deterministic: the same input gives the same diagnostics;
* it never reports outside the file: every row and column is one of the source's;
* a ``# noqa`` (or any other suppression comment) added to one row changes no finding on any other row.

``mutants(seed, n)`` is a reproducible stream of mutated fixtures; ``tests/test_fuzz.py`` checks a few
hundred in CI and ``bench/fuzz.py`` as many as asked.
"""
from __future__ import annotations

import io
import random
import tokenize
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from looplint.diagnostics import Diagnostic
from looplint.engine import lint_source
from looplint.notebook import split_lines

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = sorted((ROOT / "fixtures").rglob("*.py")) + sorted((ROOT / "tests" / "runtime_programs").glob("ll*.py"))

NOISE = ["(", ")", "[", "]", ":", "\\", "'", '"', '"""', "\t", "\f", "\r", "\x00", "\u2028", "\x85", "#", "%",
         "!", "?", ";", ",", " and ", ".step()", ".backward()", ".zero_grad()", "lambda: ", "await ", "*",
         "\ufeff", "\udcff"]
SWAPS = [("zero_grad", "step"), ("step", "backward"), ("backward", "zero_grad"), ("()", ""), ("for ", "while "),
         ("loader", "range(3)"), (".step(", ".step(closure"), ("optimizer", "opt"), ("model", "self.model")]
COMMENTS = ["  # noqa", "  # noqa: LL101", "  # noqa: LL1O1", "  # noqa: garbage", "  # type: ignore # noqa: LL102"]
HEADERS = ["if flag:", "for batch in loader:", "with torch.no_grad():", "try:", "while True:", "def helper():"]


def fixture_sources() -> List[str]:
    return [p.read_text(encoding="utf-8") for p in FIXTURES]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def mutate(source: str, rng: random.Random, donors: Sequence[str]) -> str:
    """One to three random edits of a program: lines deleted, moved, re-indented, wrapped in a block,
    training calls swapped, code from another program spliced in, noise inserted, the text cut short."""
    for _ in range(rng.randint(1, 3)):
        lines = source.split("\n")
        i = rng.randrange(len(lines))
        kind = rng.randrange(12)
        if kind == 0 and len(lines) > 1:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[i])
        elif kind == 2 and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif kind == 3:
            lines[i] = "    " + lines[i] if rng.random() < 0.5 else lines[i][4:] if lines[i].startswith("    ") else lines[i]
        elif kind == 4:
            old, new = rng.choice(SWAPS)
            if rng.random() < 0.5:
                old, new = new, old
            lines[i] = lines[i].replace(old, new, 1)
        elif kind == 5:
            donor = rng.choice(donors).split("\n")
            j = rng.randrange(len(donor))
            piece = donor[j: j + rng.randint(1, 4)]
            base = _indent(lines[i])
            lines[i:i] = [base + p.lstrip() if k == 0 else p for k, p in enumerate(piece)]
        elif kind == 6:
            text = "\n".join(lines)
            cut = rng.randrange(len(text) + 1)
            return text[:cut]
        elif kind == 7:
            pos = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + rng.choice(NOISE) + lines[i][pos:]
        elif kind == 8:
            base = _indent(lines[i])
            lines[i:i + 1] = [base + rng.choice(HEADERS), "    " + lines[i]]
        elif kind == 9:
            lines[i] = lines[i] + rng.choice(COMMENTS)
        elif kind == 10:
            return "\n".join(lines).replace("\n", rng.choice(["\r\n", "\r"]))
        else:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        source = "\n".join(lines)
    return source


def mutants(seed: int, n: int) -> Iterator[Tuple[str, str]]:
    """``n`` mutated fixtures, the same for the same seed: (a name saying how to make it again, source)."""
    donors = fixture_sources()
    for k in range(n):
        rng = random.Random(f"{seed}:{k}")
        base = rng.randrange(len(donors))
        yield f"seed {seed} #{k} from {FIXTURES[base].relative_to(ROOT)}", mutate(donors[base], rng, donors)


# ---------------------------------------------------------------------------------------------- properties


def _key(d: Diagnostic):
    return (d.line, d.column, d.end_line, d.end_column, d.code, d.message, d.noqa_row)


def _outside(d: Diagnostic, rows: Sequence[str]) -> Optional[str]:
    if not 1 <= d.line <= len(rows):
        return f"row {d.line} of {len(rows)}"
    if not 1 <= d.column <= len(rows[d.line - 1]) + 1:
        return f"column {d.column} on row {d.line} of {len(rows[d.line - 1])} characters"
    if d.end_line and (d.end_line, d.end_column) < (d.line, d.column) or d.end_line > len(rows):
        return f"end {d.end_line}:{d.end_column} before its start {d.line}:{d.column} or past the end"
    if d.noqa_row is not None and not 1 <= d.noqa_row <= len(rows):
        return f"noqa row {d.noqa_row} of {len(rows)}"
    return None


def commentable_rows(source: str) -> List[int]:
    """Rows that end in code (not blank, not a comment, not inside a string, not continued by a backslash): a
    comment added there follows code (on a row of its own, ``# ruff: noqa`` is meant for the whole file)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source, newline=None).readline))
    except (tokenize.TokenError, SyntaxError):
        return []
    spans = [(t.start[0], t.end[0]) for t in tokens if t.start[0] != t.end[0] and t.type != tokenize.NL]
    ends = {t.start[0] for t in tokens if t.type in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT)}
    rows = split_lines(source)
    return sorted(r for r in ends if r <= len(rows) and not rows[r - 1].endswith("\\")
                  and rows[r - 1].strip() and not rows[r - 1].lstrip().startswith("#")  # a comment after code
                  and not any(a <= r < b for a, b in spans))


def problems(source: str, path: str = "fuzz.py") -> List[str]:
    """What is wrong with looplint's diagnostics of ``source``: an empty list when every property holds."""
    try:
        first = lint_source(source, path)
        second = lint_source(source, path)
    except Exception as e:  # noqa: BLE001 - the property under test
        return [f"raised {type(e).__name__}: {e}"]
    found = []
    if [_key(d) for d in first] != [_key(d) for d in second]:
        found.append("not deterministic")
    rows = split_lines(source)
    for d in first:
        where = _outside(d, rows)
        if where:
            found.append(f"{d.code} outside the file: {where}")
    findings = [d for d in first if d.code != "LL000"]
    if findings and len(findings) == len(first):
        reported = {d.noqa_row or d.line for d in findings}
        commentable = commentable_rows(source)
        separator = "\r\n" if "\r\n" in source else "\r" if "\r" in source and "\n" not in source else "\n"
        variant = ROW_COMMENTS[len(source) % len(ROW_COMMENTS)]
        # On a row with a finding, and on a row without one.
        edits = [(findings[0].noqa_row or findings[0].line, "# noqa"), (findings[0].noqa_row or findings[0].line, variant)]
        edits += [(row, variant) for row in commentable if row not in reported][:1]
        for target, comment in edits:
            if target not in commentable:
                continue
            before_rest = sorted(_key(d) for d in first if (d.noqa_row or d.line) != target)
            edited = rows[:]
            edited[target - 1] += "  " + comment
            try:
                after = lint_source(separator.join(edited), path)
            except Exception as e:  # noqa: BLE001
                return found + [f"raised {type(e).__name__} after `{comment}` on row {target}: {e}"]
            after_rest = sorted(_key(d) for d in after if (d.noqa_row or d.line) != target)
            if before_rest != after_rest:
                found.append(f"`{comment}` on row {target} changed findings on other rows")
    return found


# Comments a user may put at the end of one row; none of them may touch another row's findings.
ROW_COMMENTS = ["# noqa: LL101", "# noqa: garbage", "# looplint: noqa", "# ruff: noqa", "# noqa: LL1O1"]
