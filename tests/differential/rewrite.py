"""Rewrites of generated programs: one gradient event moved into a helper, so that the linter must follow it.

The generator writes each event where the loop is (``opt.step()``); real code often hands it to a helper: a
function of the module, a method of an object the module builds, or the same in another module of the
project (the program's sibling module). A rewrite replaces the one line that runs the event with a call of
such a helper and adds the helper; everything else, the injected bug included, stays. The runtime judges the
rewritten program like any other (``judge.run``), so every rewrite is a test of the linter that nobody tuned.

Events: ``step`` (an optimizer's), ``zero`` (``zero_grad`` of an optimizer or module), ``backward`` (of the
loss), ``schedule`` (a scheduler's step), ``step_clear`` (a step and then ``zero_grad``, in one helper).
Homes: ``function`` / ``object`` in the program, ``sibling_function`` / ``sibling_object`` in its sibling
module (``<name>_lib.py``, created when the program has none).
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
HOMES = ("function", "object", "sibling_function", "sibling_object")
KINDS = tuple((event, home) for event in EVENTS for home in HOMES)


def _helper(name: str, body: List[str], home: str) -> Tuple[List[str], str, List[str]]:
    """(its definition, the call's callee, what the program adds after its imports to reach it)."""
    if home.endswith("function"):
        return [f"def {name}(x):"] + ["    " + b for b in body], name, []
    cls = "".join(part.title() for part in name.split("_")) + "Helper"
    definition = [f"class {cls}:", "    def __init__(self):", "        self.calls = 0", "",
                  f"    def {name}(self, x):"] + ["        " + b for b in body] + ["        self.calls += 1"]
    instance = name.upper() + "_HELPER"
    return definition, f"{instance}.{name}", [f"{instance} = {cls}()"]


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
