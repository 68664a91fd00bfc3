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
