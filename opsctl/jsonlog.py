"""Structured logging: one JSON object per line, UTC timestamps, context fields.

Context such as ``model``, ``version``, ``prediction_id`` or ``latency_ms`` goes
in ``extra=`` and comes out as top-level keys, so journald and log shippers can
filter on it::

    log.info("promoted", extra={"model": "fraud-detector", "version": "1.1.0"})

Under systemd (``JOURNAL_STREAM`` names the stream the lines go to) each line starts with its
syslog priority, ``<3>`` for an error, so ``journalctl -p err`` finds failures; journald strips
the prefix and ``journalctl -o cat`` still shows the bare JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

# uvicorn adds an ANSI-coloured duplicate of the message; journald does not need it.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


LEVELS = ("debug", "info", "warning", "error")

# sd-daemon(3) priorities: journald reads a leading "<N>" as the line's syslog priority.
_SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (custom levels take the next standard one below them)."""
    for threshold in sorted(_SYSLOG_PRIORITY, reverse=True):
        if levelno >= threshold:
            return _SYSLOG_PRIORITY[threshold]
    return 7


class JournalFormatter(JsonFormatter):
    """JSON lines prefixed with their syslog priority, for a stream journald reads."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{super().format(record)}"


def is_journal_stream(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``$JOURNAL_STREAM`` (``DEVICE:INODE``, set by systemd) names ``stream``'s file.

    Checking the device and inode, as systemd.exec(5) advises, keeps the prefixes off a stream that was
    redirected elsewhere (a pipe into ``jq``, a file) by a child of the service.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def configure_logging(level: str = "info", stream: TextIO | None = None,
                      environ: Mapping[str, str] | None = None) -> None:
    """Send every opsctl log record at ``level`` or above to ``stream`` (stdout by default) as JSON lines,
    each prefixed with its syslog priority when the stream is systemd's journal stream."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    target = stream or sys.stdout
    handler = logging.StreamHandler(target)
    handler.setFormatter(JournalFormatter() if is_journal_stream(target, environ) else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
