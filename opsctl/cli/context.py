"""What every command handler receives: settings, output, backend, confirmation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, TextIO

from opsctl.cli.output import Output
from opsctl.errors import ConfirmationRequired, DaemonUnavailableError, UsageError

if TYPE_CHECKING:
    from opsctl.backends import Backend
    from opsctl.client import DaemonClient
    from opsctl.config import Settings


@dataclass
class CliContext:
    args: argparse.Namespace
    out: Output
    stdin: TextIO = field(default_factory=lambda: sys.stdin)

    @cached_property
    def settings(self) -> Settings:
        from opsctl.config import load_settings

        return load_settings(getattr(self.args, "config", None))

    @cached_property
    def backend(self) -> Backend:
        """The daemon when it answers; otherwise the registry directly, saying so on stderr."""
        from opsctl.backends import FallbackBackend

        return FallbackBackend(self.settings, notice=self.out.message)

    @contextmanager
    def daemon(self, *, needs: str = "", hint: str = "") -> Iterator[DaemonClient]:
        """The daemon's client for a command only the daemon can answer, closed on exit.

        A daemon that is down is one line (the client's: which socket, how to start it), led by ``needs``
        and followed by ``hint`` when given; exit 6."""
        from opsctl.client import DaemonClient

        try:
            with DaemonClient.from_settings(self.settings) as client:
                yield client
        except DaemonUnavailableError as error:
            if not (needs or hint):
                raise
            lead = f"{needs}, and " if needs else ""
            raise DaemonUnavailableError(f"{lead}{error}" + (f"; {hint}" if hint else "")) from error

    def confirm(self, question: str, *, expect: str | None = None) -> None:
        """Ask on a terminal; refuse (naming --yes) when nobody can answer."""
        if getattr(self.args, "yes", False):
            return
        if not (hasattr(self.stdin, "isatty") and self.stdin.isatty()):
            raise ConfirmationRequired(
                f"{question}: refusing to change production without confirmation because stdin is not a"
                " terminal; pass --yes to confirm non-interactively"
            )
        prompt = f"{question}\nType {expect!r} to confirm: " if expect else f"{question} [y/N] "
        self.out.stderr.write(prompt)
        self.out.stderr.flush()
        answer = self.stdin.readline().strip()
        accepted = answer == expect if expect else answer.lower() in {"y", "yes"}
        if not accepted:
            raise UsageError("not confirmed; nothing was changed")
