"""Where the runbook of an alert lives: ``<base><AlertName>.md``.

Every alert opsctl ships (the Prometheus rules in ``config/prometheus/alerts.yml`` and the daemon's own
rules) has a page ``docs/runbooks/<AlertName>.md``. Teams that host the pages elsewhere set
``[alertmanager] runbook_base_url``; by default the link is a ``file://`` URL to the pages shipped
with the installed package (the wheel's package data, or a source checkout's ``docs/runbooks``).

>>> runbook_url("ModelSlaDegraded", "https://wiki.example.org/opsctl/runbooks")
'https://wiki.example.org/opsctl/runbooks/ModelSlaDegraded.md'
"""

from __future__ import annotations

import re

from opsctl.shipped_files import shipped_path

# The pages shipped with opsctl: docs/runbooks in the wheel's package data or the source checkout.
SHIPPED_RUNBOOKS = shipped_path("docs", "runbooks")
DEFAULT_RUNBOOK_BASE_URL = SHIPPED_RUNBOOKS.as_uri() + "/"
_ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BASE = re.compile(r"^(https?://[^\s/]+|file://)\S*$")


def check_runbook_base_url(base: str) -> str:
    """The base URL as given, or ValueError when it is not an http(s):// or file:// URL."""
    if base and not _BASE.match(base):
        raise ValueError(f"runbook_base_url must be an http://, https:// or file:// URL, got {base!r}")
    return base


def runbook_url(alertname: str, base: str = "") -> str:
    """The runbook link of one alert (``base`` empty: the shipped pages)."""
    if not _ALERT_NAME.match(alertname):
        raise ValueError(f"not an alert name: {alertname!r}")
    base = check_runbook_base_url(base) or DEFAULT_RUNBOOK_BASE_URL
    return f"{base.rstrip('/')}/{alertname}.md"

# The alerts the daemon raises itself (rule names in opsctl.core.alerts, opsctl.services.drift and
# opsctl.services.canary; tests/test_runbooks.py keeps this list equal to them). Listed here so a
# one-shot command can check their runbooks without importing the services.
DAEMON_ALERTS = ("ModelSlaDegraded", "ModelHealthUnknown", "ModelDataDrift", "ModelPerformanceDegraded",
                 "CanaryPaused", "CanaryAwaitingApproval", "CanaryRolledBack", "CanaryFailed", "CanaryActuatorFailed")
SHIPPED_RULES_FILE = shipped_path("config", "prometheus", "alerts.yml")
