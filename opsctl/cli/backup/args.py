"""``opsctl backup DEST`` and ``opsctl restore SRC --state-dir DIR``."""

from __future__ import annotations

import argparse
from typing import Any

from opsctl.cli.args import command

BACKUP_HELP = """\
Copies the registry (every table: models, versions, deployments, the audit chain, canaries, alerts,
drift and retraining results, ingestion offsets) with SQLite's online backup API, one consistent
snapshot taken beside the running daemon, and every model artifact and reference sample it refers
to, each verified by sha256 as it is copied; then writes DEST/manifest.json with a sha256 per file
(no manifest: an unfinished backup). Reads the state dir's files directly, so it works whether the
daemon runs or not, and needs read access to them (the opsctl group). Not included: the config and
token files, the prediction logs in [ingest] log_dirs, retraining scratch dirs."""

RESTORE_HELP = """\
Restores a backup made by `opsctl backup` into a new or empty state dir (a non-empty one is refused:
stop the daemon and move the old state dir aside first). Every file is checked against the
manifest's sha256 as it is copied; an older schema is migrated; the audit chain must verify and end
where the manifest says. On any failure nothing is left behind. Then start the daemon on it."""


def add_commands(sub: Any) -> None:
    p = command(sub, "backup", "opsctl.cli.backup.handlers:backup",
                "back up the state dir (registry snapshot + artifacts + manifest) while the daemon runs",
                epilog=BACKUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dest", metavar="DEST", help="a new or empty directory")
    p.add_argument("--state-dir", metavar="DIR", help="the state dir to back up (default: the config's)")

    p = command(sub, "restore", "opsctl.cli.backup.handlers:restore",
                "restore a backup into a new or empty state dir, verifying every file",
                epilog=RESTORE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SRC", help="a directory written by `opsctl backup`")
    p.add_argument("--state-dir", metavar="DIR", help="where to restore (default: the config's state_dir)")
