"""What the command line shows on a terminal and nowhere else: colour and a progress line.

Colour (``--color auto|always|never``): ``always`` and ``never`` decide; ``auto`` colours when
``FORCE_COLOR`` is set to something (it wins, as in ruff), not when ``NO_COLOR`` is (https://no-color.org),
and otherwise only when the report goes to a terminal whose ``TERM`` is not ``dumb``.

Progress: a line on stderr (``Linting 120/450 files``), rewritten in place, shown only when stderr is a
terminal, not in CI (``CI`` or another CI's variable set) and only once a run has lasted a moment; it is
erased before anything else is written, so neither pipes nor CI logs ever see it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Mapping, Optional, TextIO

COLOR_CHOICES = ("auto", "always", "never")
# Set by CI services (GitHub Actions, GitLab, Travis, CircleCI, Buildkite, Azure, Jenkins, TeamCity).
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "TRAVIS", "CIRCLECI", "BUILDKITE", "TF_BUILD", "JENKINS_URL", "TEAMCITY_VERSION")

_ANSI = {"bold": "1", "red": "31", "green": "32", "cyan": "36"}


def is_terminal(stream: Optional[TextIO]) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def use_color(choice: str, stream: Optional[TextIO], env: Mapping[str, str] = os.environ) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("NO_COLOR"):
        return False
    return is_terminal(stream) and env.get("TERM") != "dumb"


def in_ci(env: Mapping[str, str] = os.environ) -> bool:
    return any(env.get(name, "").lower() not in ("", "0", "false") for name in CI_VARIABLES)


@dataclass(frozen=True)
class Paint:
    """``paint(text, "bold", "red")``: the text in ANSI colours when enabled, unchanged otherwise."""

    enabled: bool = False

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not text or not styles:
            return text
        return f"\x1b[{';'.join(_ANSI[s] for s in styles)}m{text}\x1b[0m"


class Progress:
    """``Linting N/M files`` on stderr while a long run lasts. ``update`` is cheap: it writes at most every
    ``interval`` seconds, and nothing before ``delay`` seconds have passed."""

    def __init__(self, stream: Optional[TextIO], total: int, enabled: bool, delay: float = 1.0, interval: float = 0.1):
        self.stream, self.total, self.enabled = stream, total, enabled and stream is not None and total > 0
        self.delay, self.interval = delay, interval
        self.start = time.monotonic()
        self.done = 0
        self._last = 0.0
        self._shown = False

    def update(self, done: int = 1) -> None:
        self.done += done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay or (self._shown and now - self._last < self.interval and self.done < self.total):
            return
        self._last = now
        self._write(f"\r\x1b[2KLinting {self.done}/{self.total} files")
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._write("\r\x1b[2K")
            self._shown = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False
