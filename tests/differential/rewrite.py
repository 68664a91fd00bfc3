"""Rewrites of generated programs: one gradient event moved into a helper, so that the linter must follow it.

The generator writes each event where the loop is (``opt.step()``); real code often hands it to a helper: a
function of the module, a method of an object the module builds, or the same in another module of the
project (the program's sibling module). A rewrite replaces the one line that runs the event with a call of
such a helper and adds the helper; everything else, the injected bug included, stays. The runtime judges the
rewritten program like any other (``judge.run``), so every rewrite is a test of the linter that nobody tuned.

Events: ``step`` (an optimizer's), ``zero`` (``zero_grad`` of an optimizer or module), ``backward`` (of the
loss), ``schedule`` (a scheduler's step), ``step_clear`` (a step and then ``zero_grad``, in one helper).
Homes: a ``function``, an ``object`` built at module level, or an object an ``attribute`` of the class whose
method runs the event holds (``self.x = Helper()`` in its ``__init__``; only for events in such a method),
defined in the program or in its sibling module (``sibling_*``: ``<name>_lib.py``, created when the program
has none).
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Dict, List, Optional, Tuple

from . import Program

# event -> (the line it rewrites, the helper's name and body over its parameter ``x``)
EVENTS: Dict[str, Tuple["re.Pattern[str]", str, List[str]]] = {
    "step": (re.compile(r"^(\s*)((?:\w+\.)*(?:opt|optimizer))\.step\(\)(\s*#.*)?$"),
             "apply_optimizer_step", ["x.step()"]),
    "zero": (re.compile(r"^(\s*)((?:\w+\.)*(?:opt|optimizer|model|net))\.zero_grad\(\)(\s*#.*)?$"),
             "clear_gradients_of", ["x.zero_grad()"]),
    "backward": (re.compile(r"^(\s*)(loss)\.backward\(\)(\s*#.*)?$"), "backpropagate", ["x.backward()"]),
    "schedule": (re.compile(r"^(\s*)((?:\w+\.)*(?:sched|scheduler|lr_scheduler)(?:\[0\])?)\.step\(\)(\s*#.*)?$"),
                 "advance_schedule", ["x.step()"]),
    "step_clear": (re.compile(r"^(\s*)((?:\w+\.)*(?:opt|optimizer))\.step\(\)(\s*#.*)?$"),
                   "step_and_clear", ["x.step()", "x.zero_grad()"]),
}
HOMES = ("function", "object", "attribute", "sibling_function", "sibling_object", "sibling_attribute")
KINDS = tuple((event, home) for event in EVENTS for home in HOMES)


def _helper(name: str, body: List[str], home: str) -> Tuple[List[str], str, List[str]]:
    """(its definition, the call's callee, what the program adds after its imports to reach it)."""
    if home.endswith("function"):
        return [f"def {name}(x):"] + ["    " + b for b in body], name, []
    cls = "".join(part.title() for part in name.split("_")) + "Helper"
    definition = [f"class {cls}:", "    def __init__(self):", "        self.calls = 0", "",
                  f"    def {name}(self, x):"] + ["        " + b for b in body] + ["        self.calls += 1"]
    if home.endswith("attribute"):
        return definition, f"self.{name}_helper.{name}", []
    instance = name.upper() + "_HELPER"
    return definition, f"{instance}.{name}", [f"{instance} = {cls}()"]


def _init_of_class_around(lines: List[str], row: int) -> Optional[int]:
    """The row of the ``def __init__(self...):`` line of the top-level class whose method holds ``row``."""
    start = next((i for i in range(row, -1, -1) if lines[i][:1].strip()), None)
    if start is None or not lines[start].startswith("class ") or not lines[row].startswith("        "):
        return None
    for i in range(start + 1, len(lines)):
        if lines[i][:1].strip():
            return None  # the class ended
        if lines[i].startswith("    def __init__(self") and lines[i].rstrip().endswith(":"):
            return i
    return None


def rewrite(program: Program, event: str, home: str) -> Optional[Program]:
    """``program`` with its one line running ``event`` moved into a helper living in ``home``, or None when
    the program has no such line or more than one."""
    pattern, name, body = EVENTS[event]
    lines = program.source.split("\n")
    hits = [i for i, line in enumerate(lines) if pattern.match(line)]
    if len(hits) != 1:
        return None
    indent, receiver, comment = pattern.match(lines[hits[0]]).groups()
    definition, callee, reach = _helper(name, body, home)
    if home.endswith("attribute"):
        init = _init_of_class_around(lines, hits[0])
        if init is None:
            return None
        lines.insert(init + 1, f"        self.{name}_helper = {definition[0][6:-1]}()")
        hits[0] += hits[0] > init
    lines[hits[0]] = f"{indent}{callee}({receiver}){comment or ''}"
    last_import = max(i for i, line in enumerate(lines) if line.startswith(("import ", "from ")))
    lib = program.lib_source
    if home.startswith("sibling"):
        imported = definition[0].split()[1].split("(")[0].rstrip(":")
        added = [f"from {program.name}_lib import {imported}"] + reach
        lib = (lib.rstrip("\n") + "\n\n\n" if lib else "") + "\n".join(definition) + "\n"
    else:
        added = ["", ""] + definition + ([""] + reach if reach else [])
    lines[last_import + 1:last_import + 1] = added
    return replace(program, source="\n".join(lines), lib_source=lib,
                   choice={**program.choice, "rewrite": f"{event}/{home}"}, intended=[])
