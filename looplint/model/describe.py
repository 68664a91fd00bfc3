"""How messages name code: short source snippets of calls and roles."""
from __future__ import annotations

import libcst as cst

from looplint.model.events import Event, code


def call_text(event: Event, limit: int = 48) -> str:
    """``optimizer.step()``, ``scaler.step(optimizer)``; long calls are shortened to ``f(...)``."""
    node = event.call if event.call is not None else event.node
    text = " ".join(code(node).split())
    if len(text) <= limit:
        return text
    if isinstance(node, cst.Call):
        return " ".join(code(node.func).split()) + "(...)"
    return text[: limit - 3] + "..."


def target_text(event: Event, label: str) -> str:
    """The object a call acts on as the call spells it (``parts["sched"]`` of ``parts["sched"].step()``,
    ``D.optim`` where the class says ``self.optim``); ``label`` (the role's own name) for a call without a
    receiver."""
    return " ".join(code(event.target).split()) if event.target is not None else label
