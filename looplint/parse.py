"""libcst's parse, without re-validating what the parser built.

Every libcst node checks itself when it is made (``CSTNode.__post_init__`` runs ``_validate``): right for a
tree that code builds by hand, redundant for one the parser builds from source it has just accepted, and
about an eighth of the time ``libcst.parse_module`` takes (libcst's own comment on ``__post_init__`` says as
much). ``parse_module`` parses with that check off; nodes made at any other time, in any thread, are
checked as usual (the check is switched off only while the parser runs, and switched back in any case).
"""
from __future__ import annotations

import libcst as cst

CSTNode = cst.CSTNode
_CHECKED = CSTNode.__dict__.get("__post_init__")  # None if a libcst release stops checking nodes this way


def _unchecked(self) -> None:
    return None


def parse_module(source: str) -> cst.Module:
    """``libcst.parse_module(source)``, the same tree and the same errors, without the per-node check."""
    if _CHECKED is None:
        return cst.parse_module(source)
    CSTNode.__post_init__ = _unchecked
    try:
        return cst.parse_module(source)
    finally:
        # another thread may have switched it off meanwhile: it is switched back too, which only costs that
        # thread's parse the check
        CSTNode.__post_init__ = _CHECKED


__all__ = ["parse_module"]
