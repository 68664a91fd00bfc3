"""The rule protocol and the registry of rules.

A rule is one class in one module of ``looplint.rules`` (the repository's ``rules/`` folder). It asks the
file's training-loop model questions and yields ``Finding``s; it never walks the syntax tree itself. Its
docstring, under ruff's headings, is its documentation: ``looplint rule CODE`` prints it, and
``python -m looplint.ruledocs docs/rules`` turns it into the page ``docs/rules/CODE.md`` that every finding's
help URL names (a test fails while a page is missing or stale, and while the README's rules table does not
link it). The registry discovers rule modules on first use, so adding a rule needs no edit of the engine.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Dict, Iterator, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    import libcst as cst

    from looplint.fix import Fix
    from looplint.model import FileModel

CODE_RE = re.compile(r"^LL\d{3}$")
MODULE_RE = re.compile(r"^ll(\d{3})_\w+$")  # a rule module is named for its code: ll101_missing_zero_grad


@dataclass(frozen=True)
class Finding:
    """A rule's verdict on one node: the engine turns it into a positioned ``Diagnostic``."""

    node: cst.CSTNode
    message: str
    fix: Optional["Fix"] = None  # how to repair it, when the rule knows (see looplint.fix)


class Rule:
    """Base class of every rule. Subclasses set ``code`` and ``name`` and implement ``check``."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""

    def check(self, model: "FileModel") -> Iterator[Finding]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def documentation(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """The first sentence under "What it does"."""
        doc = cls.documentation()
        m = re.search(r"## What it does\s*\n(.+?)(?:\n\s*\n|$)", doc, re.S)
        text = " ".join((m.group(1) if m else doc.split("\n\n")[0]).split())
        return text.split(". ")[0].rstrip(".") + "."


_REGISTRY: Dict[str, type] = {}


def all_rules() -> List[type]:
    """Every rule class, sorted by code. Imports ``looplint.rules`` on first call."""
    if not _REGISTRY:
        import looplint.rules as package

        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for obj in vars(module).values():
                if (
                    isinstance(obj, type)
                    and issubclass(obj, Rule)
                    and obj is not Rule
                    and obj.__module__ == module.__name__
                    and obj.code
                ):
                    if not CODE_RE.match(obj.code) or obj.code in _REGISTRY:
                        raise RuntimeError(f"rule {obj.__name__}: bad or duplicate code {obj.code!r}")
                    if _module_code(info.name) != obj.code:
                        raise RuntimeError(f"rule {obj.__name__} ({obj.code}) is in module {info.name}: "
                                           f"a rule module is named ll<number>_<name> after its code")
                    _REGISTRY[obj.code] = obj
    return [_REGISTRY[c] for c in sorted(_REGISTRY)]


def _module_code(name: str):
    m = MODULE_RE.match(name)
    return f"LL{m.group(1)}" if m else None


def rule_codes() -> List[str]:
    """Every rule's code, sorted, without importing the rules (and libcst, and the model) when their
    modules are named for their codes (``all_rules`` checks that they are): a run whose every file is in
    the results cache never needs them."""
    if _REGISTRY:
        return sorted(_REGISTRY)
    import looplint.rules as package

    names = [info.name for info in pkgutil.iter_modules(package.__path__)]
    codes = [_module_code(n) for n in names]
    if None in codes:
        return [r.code for r in all_rules()]
    return sorted(codes)


def rule_by_code(code: str):
    all_rules()
    return _REGISTRY.get(code.upper())


PARSE_ERROR = "LL000"
PARSE_ERROR_NAME = "unreadable-file"
