"""Handlers of ``opsctl drift`` and ``opsctl performance``.

``drift MODEL`` and ``performance MODEL`` read the daemon's stored checks (the window lives in the
daemon: there is no registry fallback, exit 6 when it is down). ``drift compare`` runs
:func:`opsctl.adapters.frames.compare_files` here, under the config's ``[drift]`` policy: the same
computation as the scheduled job. numpy and pandas load only in the handlers that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsctl.cli.context import CliContext
from opsctl.errors import NotFoundError, UsageError

_VERDICT_WORDS = {"drift": "DRIFT", "no_drift": "no drift", "insufficient_data": "not enough data",
                  "no_reference": "no reference sample", "error": "check failed"}


def _drift(ctx: CliContext, model: str, *, history: int | None = None) -> dict[str, Any]:
    with ctx.daemon() as client:
        return dict(client.drift.get(model, history=history).json)


def _num(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _feature_json(feature: dict[str, Any]) -> dict[str, Any]:
    return {key: feature.get(key) for key in ("name", "kind", "test", "statistic", "p_value", "p_value_adjusted",
                                              "effect_size", "effect_metric", "psi", "missing_rate_reference",
                                              "missing_rate_current", "unseen_share", "drifted", "reason")}


def _feature_rows(ctx: CliContext, features: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for f in features:
        verdict = {True: ctx.out.style("DRIFT", "red", "bold"), False: "ok", None: "?"}[f["drifted"]]
        rows.append([f["name"], f["kind"], f["test"], _num(f["statistic"]), _num(f["p_value_adjusted"], ".3g"),
                     f"{_num(f['effect_size'], '.3f')} {'W1' if f['kind'] == 'numerical' else 'JS'}",
                     _num(f.get("psi"), ".3f"), f"{verdict} ({f['reason']})"])
    return rows


_FEATURE_HEADERS = ["feature", "kind", "test", "statistic", "p adj", "effect", "psi", "verdict"]


# -- opsctl drift ---------------------------------------------------------------------------------


def drift(ctx: CliContext) -> int:
    """``opsctl drift [check] MODEL``."""
    a = ctx.args
    if a.history is not None:
        if a.history < 1:
            raise UsageError(f"--history must be at least 1, got {a.history}")
        return _history(ctx)
    document = _drift(ctx, a.model)
    if a.report:
        return _write_report(ctx, document, Path(a.report))
    if ctx.out.json:
        ctx.out.emit_json({"model": document["model"], "window": document["window"],
                           "versions": [_version_json(v) for v in document["versions"]]})
        return 0
    if not document["versions"]:
        ctx.out.message(f"{a.model} has no deployed version: nothing to check")
    for entry in document["versions"]:
        result = entry["result"]
        head = f"{a.model} {entry['version']} ({entry['role']})"
        if result is None:
            ctx.out.line(f"{head}: not checked yet (the drift job runs every {document['drift_seconds']:g}s)")
            continue
        verdict = _VERDICT_WORDS.get(result["verdict"], result["verdict"])
        if result["verdict"] == "drift":
            verdict = ctx.out.style(verdict, "red", "bold")
        report = result.get("report")
        detail = ""
        if report is not None:
            judged = sum(1 for f in report["features"] if f["drifted"] is not None)
            detail = (f" - {report['drifted_count']} of {judged} judged features drifted;"
                      f" {report['rows_current']:,} window rows vs {report['rows_reference']:,} reference rows")
        ctx.out.line(f"{head}: {verdict}{detail}; checked {result['at']}")
        if result.get("error"):
            ctx.out.line(f"  {result['error']}")
        if result.get("unlogged"):
            ctx.out.line(f"  not in the logged records (not checked): {', '.join(result['unlogged'])}")
        if report is not None:
            ctx.out.table(_FEATURE_HEADERS, _feature_rows(ctx, report["features"]))
        ctx.out.line()
    return 0


def _version_json(entry: dict[str, Any]) -> dict[str, Any]:
    result = entry["result"]
    if result is None:
        return {"version": entry["version"], "role": entry["role"], "verdict": None, "checked_at": None,
                "dataset_drift": None, "features": [], "error": None}
    report = result.get("report") or {}
    return {"version": entry["version"], "role": entry["role"], "verdict": result["verdict"],
            "checked_at": result["at"], "dataset_drift": report.get("dataset_drift"),
            "drifted_count": report.get("drifted_count"), "share_drifted": report.get("share_drifted"),
            "rows_current": report.get("rows_current"), "rows_reference": report.get("rows_reference"),
            "unlogged": result.get("unlogged", []), "error": result.get("error"),
            "features": [_feature_json(f) for f in report.get("features", [])]}


def _history(ctx: CliContext) -> int:
    a = ctx.args
    document = _drift(ctx, a.model, history=a.history)
    rows = document.get("history", [])
    if ctx.out.json:
        ctx.out.emit_json({"model": a.model, "history": rows})
        return 0
    ctx.out.table(["checked", "version", "verdict", "drifted", "share", "rows", "features / error"], [
        [r["at"], r["version"], _VERDICT_WORDS.get(r["verdict"], r["verdict"]), r["drifted_count"],
         _num(r["share_drifted"], ".2f"), r["rows"], ", ".join(r["drifted_features"]) or r["error"] or "-"]
        for r in rows], empty=f"no drift checks of {a.model} yet")
    return 0


def _write_report(ctx: CliContext, document: dict[str, Any], path: Path) -> int:
    from opsctl.adapters.drift_store import drift_report_from_json
    from opsctl.core.drift import render_markdown

    sections = []
    for entry in document["versions"]:
        result = entry["result"]
        if result is None or result.get("report") is None:
            continue
        report = drift_report_from_json(result["report"])
        title = f"Drift report: {document['model']} {entry['version']} ({entry['role']}), {result['at']}"
        text = render_markdown(report, title=title)
        if result.get("unlogged"):
            text += f"\nReference columns not in the logged records (not checked): {', '.join(result['unlogged'])}\n"
        sections.append(text)
    if not sections:
        raise NotFoundError("", "", message=f"no drift report for {document['model']} yet: no deployed version"
                            " has been checked with enough data")
    try:
        path.write_text("\n".join(sections), encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from error
    ctx.out.message(f"wrote {path} ({len(sections)} report{'s' if len(sections) > 1 else ''})")
    if ctx.out.json:
        ctx.out.emit_json({"model": document["model"], "report": str(path), "versions": len(sections)})
    return 0


def compare(ctx: CliContext) -> int:
    """``opsctl drift compare REFERENCE CURRENT``: the scheduled check's computation on two files."""
    a = ctx.args
    categorical = [c.strip() for c in a.categorical.split(",") if c.strip()]
    policy = ctx.settings.drift  # validated here: the same [drift] policy the daemon uses

    from opsctl.adapters.frames import compare_files

    reference, current = a.reference, a.current
    report = compare_files(reference, current, categorical, policy)
    if ctx.out.json:
        ctx.out.emit_json({"reference": reference, "current": current, **report.to_json()})
        return 0
    verdict = {True: ctx.out.style("DRIFT", "red", "bold"), False: "no drift",
               None: "unknown (not enough data)"}[report.dataset_drift]
    judged = sum(1 for f in report.features if f.drifted is not None)
    ctx.out.line(f"dataset: {verdict} - {report.drifted_count} of {judged} judged features drifted;"
                 f" {report.rows_current:,} current rows vs {report.rows_reference:,} reference rows")
    ctx.out.table(_FEATURE_HEADERS, _feature_rows(ctx, [f.to_json() for f in report.features]))
    return 0


# -- opsctl performance ---------------------------------------------------------------------------


def performance(ctx: CliContext) -> int:
    a = ctx.args
    with ctx.daemon() as client:
        document = dict(client.drift.performance(a.model).json)
    if ctx.out.json:
        ctx.out.emit_json(document)
        return 0
    if not document["versions"]:
        ctx.out.message(f"{a.model} has no deployed version: nothing to check")
    for entry in document["versions"]:
        result = entry["result"]
        head = f"{a.model} {entry['version']} ({entry['role']})"
        if result is None:
            ctx.out.line(f"{head}: not checked yet (every {document['performance_seconds']:g}s)")
            continue
        verdict = result["verdict"]
        shown = ctx.out.style(verdict, "red", "bold") if verdict == "degraded" else verdict
        ctx.out.line(f"{head}: {shown} - {result['labelled']} labelled predictions (at least {result['min_labels']}"
                     f" needed); a drop of more than {result['max_relative_drop']:.0%} from the baseline degrades;"
                     f" checked {result['at']}")
        level = f"{result['confidence']:.0%} CI"
        ctx.out.table(["metric", "value", level, "baseline", "floor", "drop", "n", "state"], [
            [m["name"], _num(m["value"], ".4f"),
             "-" if m["ci_low"] is None else f"{m['ci_low']:.3f}..{m['ci_high']:.3f}",
             _num(m["baseline"], ".4f"), _num(m["floor"], ".4f"), _num(m["relative_drop"], "+.1%"), m["n"],
             m["state"]] for m in result["metrics"]])
        ctx.out.line()
    return 0
