"""Durations as people type them (``90s``, ``30m``, ``2h``, ``1d``, ``1w``, ``1h30m``), for every shell.

>>> parse_duration("1h30m")
5400.0
>>> format_duration(7260)
'2h01m'
"""

from __future__ import annotations

import re

from opsctl.errors import UsageError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h``, ``1d``, ``1w`` or a sum like ``1h30m``; UsageError otherwise."""
    cleaned = text.strip().lower()
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned):
        raise UsageError(f"bad duration {text!r}: give a number and a unit (s, m, h, d, w), e.g. 30m, 2h, 1d"
                         " or 1h30m")
    if total <= 0:
        raise UsageError(f"bad duration {text!r}: must be longer than zero")
    return total


def format_duration(seconds: float) -> str:
    """A span in the coarsest unit that still says enough: ``45s``, ``90m``, ``2h01m``, ``3d4h`` (truncated)."""
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{whole}s"
    if whole < 7200:
        return f"{whole // 60}m"
    if whole < 172800:
        return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"
    return f"{whole // 86400}d{(whole % 86400) // 3600}h"
