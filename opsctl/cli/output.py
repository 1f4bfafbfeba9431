"""Plain, fast output for one-shot commands: tables for people, JSON for scripts.

Deliberately free of rich: importing it costs several times a bare Python
start, and a rollback at 3 a.m. should not wait for a pretty table.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

_RESET = "\x1b[0m"
_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def colour_enabled(stream: TextIO, *, no_color_flag: bool = False) -> bool:
    if no_color_flag or os.environ.get("NO_COLOR", "") != "":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


@dataclass
class Output:
    """Where a command writes: data to stdout, messages to stderr."""

    format: str = "table"
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    colour: bool = False

    @property
    def json(self) -> bool:
        return self.format == "json"

    def style(self, text: str, *styles: str) -> str:
        if not self.colour or not styles:
            return text
        codes = ";".join(_STYLES[s] for s in styles)
        return f"\x1b[{codes}m{text}{_RESET}"

    def emit_json(self, document: Any) -> None:
        json.dump(document, self.stdout, indent=2, sort_keys=False, default=str)
        self.stdout.write("\n")

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def message(self, text: str) -> None:
        """A note for the person at the terminal (stderr, never mixed into data)."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str = "(none)") -> None:
        if not rows:
            self.message(empty)
            return
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [len(h) for h in headers]
        for row in cells:
            for i, value in enumerate(row):
                widths[i] = max(widths[i], len(value))
        header = "  ".join(h.upper().ljust(widths[i]) for i, h in enumerate(headers)).rstrip()
        self.line(self.style(header, "bold"))
        for row in cells:
            self.line("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ",".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    return str(value)
