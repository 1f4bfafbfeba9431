"""Handlers of ``opsctl alerts ...``: list, acknowledge and silence the daemon's alerts (exit 6 when it is down).

Alert states live in the daemon: there is no registry fallback.
"""

from __future__ import annotations

from opsctl.cli.context import CliContext
from opsctl.core.durations import parse_duration


def alerts(ctx: CliContext) -> int:
    with ctx.daemon() as client:
        document = dict(client.alerts.list(include_resolved=ctx.args.all).json)
    for target, delivery in document.get("delivery", {}).items():
        if not delivery["ok"]:
            ctx.out.message(f"opsctl: {target} delivery failing since {delivery['at']}: {delivery['error']}"
                            f" ({delivery['queued']} notifications queued for retry)")
    if ctx.out.json:
        ctx.out.emit_json(document)
        return 0
    rows = []
    for a in document["alerts"]:
        ack = a.get("ack")
        acked = "-" if ack is None else f"{ack['by']}" + (f" until {ack['until']}" if ack["until"] else "")
        since = a["resolved_at"] if a["state"] == "resolved" else (a["fired_at"] or a["starts_at"])
        rows.append([a["id"], a["state"], a["severity"], a["rule"], a["labels"].get("model", "-"),
                     a["labels"].get("model_version", "-"), since, acked, a["summary"] or "-"])
    ctx.out.table(["id", "state", "severity", "rule", "model", "version", "since", "acked", "summary"], rows,
                  empty="no alerts" if ctx.args.all else "no pending or firing alerts")
    return 0


def ack(ctx: CliContext) -> int:
    seconds = parse_duration(ctx.args.duration) if ctx.args.duration else None
    with ctx.daemon() as client:
        alert = client.alerts.ack(ctx.args.id, for_seconds=seconds, comment=ctx.args.comment, reason=ctx.args.reason)
    if ctx.out.json:
        ctx.out.emit_json(alert)
        return 0
    until = alert["ack"]["until"] or "it resolves"
    ctx.out.line(f"acked {alert['id']} ({alert['rule']} {alert['labels'].get('model', '')} "
                 f"{alert['labels'].get('model_version', '')}, {alert['state']}) until {until}")
    return 0


def silence(ctx: CliContext) -> int:
    seconds = parse_duration(ctx.args.duration)
    from opsctl.core.alerts import Matcher

    for text in ctx.args.match:
        Matcher.parse(text)  # a clear usage error before any request
    with ctx.daemon() as client:
        created = dict(client.alerts.silence(ctx.args.match, for_seconds=seconds, comment=ctx.args.comment,
                                             reason=ctx.args.reason).json)
    if ctx.out.json:
        ctx.out.emit_json(created)
        return 0
    ctx.out.line(f"silence {created['id']} ({' '.join(created['matchers'])}) until {created['ends_at']}")
    return 0


def silences(ctx: CliContext) -> int:
    with ctx.daemon() as client:
        found = client.alerts.silences(include_expired=ctx.args.all)
    if ctx.out.json:
        ctx.out.emit_json({"silences": [s.json for s in found]})
        return 0
    ctx.out.table(["id", "matchers", "author", "starts", "ends", "comment"],
                  [[s.id, " ".join(s.matchers), s.author, s.starts_at, s.ends_at, s.comment] for s in found],
                  empty="no silences")
    return 0


def unsilence(ctx: CliContext) -> int:
    with ctx.daemon() as client:
        expired = dict(client.alerts.unsilence(ctx.args.id, reason=ctx.args.reason).json)
    if ctx.out.json:
        ctx.out.emit_json(expired)
        return 0
    ctx.out.line(f"silence {expired['id']} ended at {expired['ends_at']}")
    return 0
