"""``opsctl incident timeline``: what happened, in order, from every store; a postmortem draft."""

from __future__ import annotations

from pathlib import Path

from opsctl.cli.context import CliContext


def timeline(ctx: CliContext) -> int:
    from opsctl.adapters.registry_reader import RegistryLocation
    from opsctl.client import DaemonClient
    from opsctl.clock import SystemClock
    from opsctl.core.durations import parse_duration
    from opsctl.errors import DaemonUnavailableError
    from opsctl.services.incidents import incident_timeline

    args = ctx.args
    since = parse_duration(args.since)
    try:
        with DaemonClient.from_settings(ctx.settings) as client:
            result = client.incidents.timeline(since_seconds=since, model=args.model)
    except DaemonUnavailableError:
        where = RegistryLocation.of(ctx.settings.registry, ctx.settings.daemon.registry_path)
        ctx.out.message(f"opsctl: the daemon does not answer; reading the registry {where} directly")
        result = incident_timeline(where, SystemClock(), since, args.model)
    if args.postmortem:
        path = Path(args.postmortem)
        path.write_text(result.postmortem())
        ctx.out.message(f"postmortem draft written to {path}")
    if args.output == "json":
        ctx.out.emit_json(result.to_json())
    elif args.output == "md":
        ctx.out.stdout.write(result.markdown())
    else:
        rows = [(e.to_json()["at"], e.source, " ".join(x for x in (e.model, e.version) if x), e.what, e.who,
                 e.why, ", ".join(f"{k}={v:g}" for k, v in e.numbers)) for e in result.entries]
        ctx.out.table(["TIME", "SOURCE", "MODEL", "WHAT", "WHO", "WHY", "NUMBERS"], rows,
                      empty=f"(nothing recorded since {result.to_json()['since']})")
    return 0
