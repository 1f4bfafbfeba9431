"""Every alert opsctl ships links a runbook page that exists and says what to run, and the commands it
tells the on-call engineer to run are real opsctl commands (the CLI's own parser accepts them)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from opsctl.cli.main import build_parser, expand_shorthand
from opsctl.core.alerts import HEALTH_UNKNOWN, SLA_DEGRADED
from opsctl.core.runbooks import (
    DAEMON_ALERTS,
    DEFAULT_RUNBOOK_BASE_URL,
    SHIPPED_RULES_FILE,
    SHIPPED_RUNBOOKS,
    runbook_url,
)
from opsctl.services.canary import CANARY_ALERT_RULES
from opsctl.services.drift import DATA_DRIFT, PERFORMANCE_DEGRADED

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"
DAEMON_RULES = [SLA_DEGRADED.name, HEALTH_UNKNOWN.name, DATA_DRIFT.name, PERFORMANCE_DEGRADED.name,
                *(rule.name for rule in CANARY_ALERT_RULES.values())]


def prometheus_rules() -> dict[str, str]:
    """alert name -> its rule block's text, split on the `- alert:` items of the rules file."""
    blocks = re.split(r"^\s*- alert: ", ALERTS.read_text(), flags=re.M)[1:]
    return {block.split()[0]: block for block in blocks}


def test_the_rules_file_and_daemon_name_the_alerts_we_know() -> None:
    assert len(prometheus_rules()) == 9
    assert {"OpsctlNotificationsUndelivered", "OpsctlJobStale"} <= set(prometheus_rules())
    assert len(DAEMON_RULES) == 9
    assert tuple(DAEMON_RULES) == DAEMON_ALERTS and SHIPPED_RULES_FILE == ALERTS


@pytest.mark.parametrize("name", sorted(prometheus_rules()))
def test_every_prometheus_rule_links_an_existing_page(name: str) -> None:
    links = re.findall(r'runbook_url: "([^"]+)"', prometheus_rules()[name])
    assert links == [f"docs/runbooks/{name}.md"]
    assert (ROOT / links[0]).is_file()


@pytest.mark.parametrize("name", DAEMON_RULES)
def test_every_daemon_rule_links_an_existing_page_by_default(name: str) -> None:
    url = runbook_url(name)
    assert url == DEFAULT_RUNBOOK_BASE_URL + f"{name}.md"
    assert Path(url2pathname(urlparse(url).path)).is_file()
    assert SHIPPED_RUNBOOKS == RUNBOOKS


def test_a_configured_base_is_used_and_a_bad_one_refused() -> None:
    assert runbook_url("CanaryPaused", "https://wiki.example.org/rb/") == "https://wiki.example.org/rb/CanaryPaused.md"
    with pytest.raises(ValueError, match="runbook_base_url"):
        runbook_url("CanaryPaused", "wiki/rb")
    with pytest.raises(ValueError, match="not an alert name"):
        runbook_url("../etc/passwd")


def run_block(text: str) -> list[str]:
    section = text.split("## What to run", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("opsctl ")]


PAGES = sorted({*prometheus_rules(), *DAEMON_RULES})


@pytest.mark.parametrize("name", PAGES)
def test_each_page_says_what_it_means_what_to_look_at_and_runs_real_commands(name: str) -> None:
    text = (RUNBOOKS / f"{name}.md").read_text()
    assert text.startswith(f"# {name}\n")
    for heading in ("## What it means", "## What to look at", "## What to run"):
        assert heading in text
    commands = run_block(text)
    assert commands, f"{name}: no opsctl command to run"
    parser = build_parser()
    for command in commands:
        argv = shlex.split(command.replace("MODEL", "fraud-detector").replace("ALERT_ID", "3f9c2a1b7d4e"))[1:]
        # As `opsctl` does: `drift MODEL` is short for `drift check MODEL`; an unknown command or option raises.
        parser.parse_args(expand_shorthand(argv)[0])


def test_the_index_lists_every_page() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    pages = sorted(p.stem for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
    assert pages == PAGES
    for name in pages:
        assert f"({name}.md)" in index
