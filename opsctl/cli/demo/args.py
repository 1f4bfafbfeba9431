"""``opsctl demo ...``: a local fleet to learn on (and to test against), with game-day faults."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import Parser, subcommand
from opsctl.demo.fault_kinds import CLEARABLE_FAULT_KINDS, FAULT_KINDS

DEFAULT_STATE_DIR = ".demo-state"


def add_commands(sub: Any) -> None:
    group = sub.add_parser(
        "demo",
        help="run a local demo fleet (Prometheus, model servers, traffic, daemon) and inject faults",
        description="Bring up, on 127.0.0.1: a real Prometheus, one model server per demo model, a traffic "
                    "generator with delayed labels and the daemon, all supervised; then the TUI (or, with "
                    "--no-tui, run headless until Ctrl-C or SIGTERM). Everything is torn down on exit.",
    )
    group.set_defaults(handler="opsctl.cli.demo.handlers:run")
    _state_dir(group)
    group.add_argument("--no-tui", action="store_true", help="run headless until Ctrl-C or SIGTERM")
    group.add_argument("--models", default="fraud-detector,churn-predictor", metavar="A,B",
                       help="demo models to serve (default: %(default)s)")
    group.add_argument("--rate", type=float, default=5.0, metavar="N",
                       help="requests per second per model (default: %(default)s)")
    group.add_argument("--label-delay", type=float, default=5.0, metavar="SECONDS",
                       help="ground-truth labels arrive this long after a prediction (default: %(default)s)")
    group.add_argument("--config-extra", default=None, metavar="FILE",
                       help="TOML laid over the demo's generated opsctl.toml, table by table and key by key "
                            "(e.g. a shorter [canary] or [jobs] drift_seconds)")
    group.add_argument("--restart-crashed", action="store_true",
                       help="restart a model server that crashes (off by default, so a `crash` fault stays visible)")
    group_sub = group.add_subparsers(dest="demo_command", metavar="SUBCOMMAND", parser_class=Parser)

    def sub_command(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        p = subcommand(group_sub, name, handler, help_text, config=False)
        _state_dir(p)
        return p

    p = sub_command("fault", "opsctl.cli.demo.handlers:fault",
                    "inject a game-day fault into a running demo's model server")
    p.add_argument("model")
    p.add_argument("kind", choices=FAULT_KINDS)
    p.add_argument("--version", dest="model_version", action="append", default=[], metavar="VERSION",
                   help="only this version (repeatable; default: every version of the model)")
    p.add_argument("--level", type=float, default=None, metavar="X",
                   help="latency: seconds added; errors: fraction failed; drift: shift in standard deviations; "
                        "accuracy: fraction of labels flipped (default: a level that trips the SLA)")
    p.add_argument("--feature", action="append", default=[], metavar="NAME",
                   help="drift only: the features to shift (default: the model's first two)")

    p = sub_command("clear", "opsctl.cli.demo.handlers:clear", "remove the faults injected into a model's server")
    p.add_argument("model")
    p.add_argument("kind", nargs="?", choices=CLEARABLE_FAULT_KINDS, help="only this kind (default: all)")

    sub_command("status", "opsctl.cli.demo.handlers:status", "the running demo: processes, ports and active faults")

    p = sub_command("restart", "opsctl.cli.demo.restart:restart",
                    "bring a killed daemon back (it stays down otherwise, for the break-glass drill)")
    p.add_argument("process", choices=("daemon",))


def _state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help=f"where the demo keeps its registry, config and logs (default: ./{DEFAULT_STATE_DIR})")
