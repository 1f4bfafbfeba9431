"""``opsctl config check`` and ``opsctl config example``."""

from __future__ import annotations

from typing import Any

from opsctl.cli.args import group, subcommand


def add_commands(sub: Any) -> None:
    _, config_sub = group(sub, "config", "configuration commands", "config_command")
    p = subcommand(config_sub, "check", "opsctl.cli.config.handlers:check",
                   "validate a config file; non-zero exit on any problem")
    p.add_argument("file", nargs="?", help="file to check (default: the one opsctl would use)")
    p = subcommand(config_sub, "example", "opsctl.cli.config.handlers:example",
                   "print a file opsctl ships: the documented opsctl.toml (default), the systemd unit for this"
                   " installation, the Prometheus config and rules, the Grafana dashboard, an alert's runbook",
                   config=False)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--systemd", dest="example", action="store_const", const="systemd",
                       help="the systemd unit, ExecStart= running this opsctl")
    which.add_argument("--prometheus-config", dest="example", action="store_const", const="prometheus-config",
                       help="a sample prometheus.yml: the daemon's scrape job (scrape token) and model servers")
    which.add_argument("--prometheus-rules", dest="example", action="store_const", const="prometheus-rules",
                       help="the Prometheus alert rules, runbook_url pointing at the pages installed here")
    which.add_argument("--grafana", dest="example", action="store_const", const="grafana",
                       help="the Grafana dashboard (JSON)")
    which.add_argument("--runbook", metavar="ALERTNAME", help="the runbook page of one alert")
    p.set_defaults(example="config")
