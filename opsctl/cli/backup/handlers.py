"""``opsctl backup`` / ``opsctl restore``: run the backup service on the state dir's files and report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.cli.context import CliContext

if TYPE_CHECKING:
    from opsctl.services.backup import Progress


def _progress(ctx: CliContext) -> Callable[[Progress], None]:
    """A one-line progress display on a terminal's stderr; nothing when stderr is not a terminal."""
    stream = ctx.out.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return lambda _: None
    shown: list[str] = []

    def show(progress: Progress) -> None:
        if progress.unit == "bytes":
            text = f"{progress.phase}: {progress.done / 1e6:.1f} of {progress.total / 1e6:.1f} MB"
        else:
            text = f"{progress.phase}: {progress.done}/{progress.total}"
        if shown and shown[-1] == text:
            return
        end = "\n" if progress.done >= progress.total else ""
        stream.write(f"\r\x1b[K{text}{end}")
        stream.flush()
        shown.append(text)

    return show


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def backup(ctx: CliContext) -> int:
    from opsctl.services.backup import backup as run_backup
    from opsctl.services.backup import require_sqlite

    require_sqlite(ctx.settings.registry, "backup")

    state_dir = Path(ctx.args.state_dir or ctx.settings.daemon.state_dir).expanduser()
    dest = Path(ctx.args.dest).expanduser().absolute()
    manifest = run_backup(state_dir, dest, progress=_progress(ctx))
    audit = manifest.facts.audit
    if ctx.out.json:
        ctx.out.emit_json({"dest": str(dest), "manifest": str(dest / "manifest.json"), **manifest.to_json()})
    else:
        chain = (f"audit chain intact ({audit.rows} rows)" if audit.ok
                 else f"audit chain BROKEN at row {audit.first_broken_id}: {audit.problem}")
        ctx.out.line(f"backed up {state_dir} to {dest}: {manifest.facts.models} models,"
                     f" {manifest.facts.versions} versions, {chain}, {len(manifest.artifacts)} artifacts"
                     f" ({_mb(manifest.artifact_bytes)}), verified; manifest {dest / 'manifest.json'}")
    if not audit.ok:
        ctx.out.message(f"opsctl: the backed-up audit chain is broken at row {audit.first_broken_id}"
                        " (copied as found); run `opsctl audit verify`")
    return 0


def restore(ctx: CliContext) -> int:
    from opsctl.services.backup import require_sqlite
    from opsctl.services.backup import restore as run_restore

    require_sqlite(ctx.settings.registry, "restore")

    state_dir = Path(ctx.args.state_dir or ctx.settings.daemon.state_dir).expanduser().absolute()
    source = Path(ctx.args.source).expanduser().absolute()
    report = run_restore(source, state_dir, progress=_progress(ctx))
    if ctx.out.json:
        ctx.out.emit_json(report.to_json())
        return 0
    migrated = (f"; migrated the schema from {report.migrated_from} to {report.facts.schema_version}"
                if report.migrated_from is not None else "")
    ctx.out.line(f"restored {source} (taken {report.manifest.created_at}) into {state_dir}:"
                 f" {report.facts.models} models, {report.facts.versions} versions, audit chain verified"
                 f" ({report.facts.audit.rows} rows), {len(report.manifest.artifacts)} artifacts"
                 f" ({_mb(report.manifest.artifact_bytes)}) verified{migrated}")
    if Path(ctx.settings.daemon.state_dir).expanduser().absolute() != state_dir:
        ctx.out.message(f"opsctl: the config's state_dir is {ctx.settings.daemon.state_dir}: point [daemon]"
                        f" state_dir at {state_dir} before starting the daemon")
    return 0
