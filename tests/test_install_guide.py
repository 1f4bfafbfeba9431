"""The README's "Install on a server" guide: every opsctl command in it is one the CLI accepts, every file it
prints exists in the package, and the README still opens with `./dev demo` and `./dev test`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from opsctl.cli.main import build_parser, expand_shorthand

README = Path(__file__).resolve().parent.parent / "README.md"


def _guide() -> str:
    text = README.read_text()
    start = text.index("## Install on a server\n")
    return text[start:text.index("\n## ", start + 1)]


def _opsctl_commands(block: str) -> list[list[str]]:
    """Each `opsctl ...` invocation in the shell block, up to a pipe, redirection, `&&` or comment."""
    found = []
    for line in block.splitlines():
        for match in re.finditer(r"(?:^|[|;&]\s*|sudo\s+)(opsctl\s[^|>&#;]*)", line):
            found.append(shlex.split(match.group(1))[1:])
    return found


def test_the_readme_opens_with_the_two_dev_commands() -> None:
    lines = README.read_text().splitlines()
    assert lines[:5] == ["# opsctl", "", "```sh",
                         "./dev demo    # run the demo: a local fleet watched by the daemon, shown in the TUI",
                         "./dev test    # run ruff and the whole test suite (sets up everything it needs)"]
    assert lines[5] == "```"


def test_every_opsctl_command_in_the_install_guide_parses() -> None:
    block = _guide().split("```sh\n", 1)[1].split("```", 1)[0]
    commands = _opsctl_commands(block)
    assert ["config", "example", "--systemd"] in commands and ["status"] in commands
    assert len(commands) >= 7, commands
    parser = build_parser()
    for argv in commands:
        parser.parse_args(expand_shorthand(argv)[0])  # an unknown command or option exits (SystemExit)


def test_the_guide_covers_the_install_from_pip_to_systemctl() -> None:
    guide = _guide()
    for needed in ("python3-venv", "pip install opsctl", "usermod -aG opsctl", " scrape", "trusted-proxy",
                   "--prometheus-config", "[alertmanager] url", "opsctl backup", "opsctl restore",
                   "systemctl enable --now opsctl", "migrations run when the daemon starts", "Downgrade"):
        assert needed in guide, needed
