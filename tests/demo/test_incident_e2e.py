"""An incident on the demo, end to end, on the demo's own config: a bad release of fraud-detector
fails half its requests (``opsctl demo fault fraud-detector errors``), health degrades, the daemon's
``ModelSlaDegraded`` fires, the on-call rolls back, the alert resolves. Then ``opsctl incident timeline``
must tell that story in order with the stores' own timestamps, ``--postmortem`` must fill in detection
time and time to rollback, and ``opsctl checklist`` must have followed the state along the way.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from opsctl.core.checklist import ITEMS
from opsctl.demo.fleet import DEMO_MODELS
from tests.demo.test_canary_retrain_e2e import _start, ok, routing
from tests.demo.test_demo_e2e import Demo
from tests.fixtures.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo-canary-retrain"),
              pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus binary")]

MODEL = "fraud-detector"
RULE = "ModelSlaDegraded"
REASON = "e2e: 1.1.0 fails half its requests"
# The demo's health job runs every 5 s and the degraded rule holds for 4 health cycles.
DEGRADED_FOR_SECONDS = 20.0


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path / "demo-state")
    running.start_args = []  # type: ignore[attr-defined]
    try:
        _start(running)
        yield running
    finally:
        running.kill_everything()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def checklist(demo: Demo) -> dict[tuple[str, str | None], dict[str, Any]]:
    result = demo.opsctl("checklist", "-o", "json")
    assert result.returncode in (0, 1, 2, 3), result.stderr
    return {(i["id"], i["model"]): i for i in json.loads(result.stdout)["items"]}


def sla_alert(demo: Demo, state: str) -> dict[str, Any] | None:
    document = ok(demo, "alerts", "--all", "-o", "json")
    found = [a for a in (document if isinstance(document, list) else document["alerts"])
             if a["rule"] == RULE and a["labels"].get("model") == MODEL and a["labels"].get("model_version") == "1.1.0"]
    return found[0] if found and found[0]["state"] == state else None


def test_the_timeline_and_postmortem_of_a_bad_release_and_its_rollback(demo: Demo, tmp_path: Path) -> None:
    began = time.monotonic()
    wait_for(lambda: routing(demo, MODEL) == {"1.0.0": 100.0}, 30, 0.5, what="traffic on 1.0.0", context=demo.tail)
    demo.wait_for_health(dict.fromkeys(DEMO_MODELS, "healthy"))

    # The chapter's table on the demo: every row (the model rows once per model), each with a status
    # and evidence; before the incident the error-rate SLA holds and there is no rollback to write up.
    before = checklist(demo)
    expected = [(i, m) for i, *_, per_model in ITEMS for m in (sorted(DEMO_MODELS) if per_model else [None])]
    assert sorted(before, key=str) == sorted(expected, key=str)
    assert all(i["status"] in ("pass", "fail", "unknown") and i["evidence"] for i in before.values())
    assert before[("sla_error_rate", MODEL)]["status"] == "pass", before[("sla_error_rate", MODEL)]
    assert before[("postmortems", MODEL)]["status"] == "pass", before[("postmortems", MODEL)]

    ok(demo, "promote", MODEL, "1.1.0", "--yes", "--reason", "e2e: new release")
    ok(demo, "demo", "fault", MODEL, "errors", "--version", "1.1.0")
    faulted = time.time()
    try:
        demo.wait_for_health({**dict.fromkeys(DEMO_MODELS, "healthy"), MODEL: "degraded"})
        during = wait_for(lambda: (c := checklist(demo))[("sla_error_rate", MODEL)]["status"] == "fail" and c, 20,
                          1.0, what="the checklist's error-rate item to fail", context=demo.tail)
        assert during[("sla_error_rate", MODEL)]["evidence"].startswith("error_rate ")
        fired = wait_for(lambda: sla_alert(demo, "firing"), DEGRADED_FOR_SECONDS + 30, 1.0,
                         what=f"{RULE} firing", context=demo.tail)
        rolled = ok(demo, "rollback", MODEL, "--yes", "--reason", REASON, "-o", "json")
        assert rolled["reached_traffic"] is True, rolled
        resolved = wait_for(lambda: sla_alert(demo, "resolved"), 30, 1.0, what=f"{RULE} resolved",
                            context=demo.tail)
    finally:
        ok(demo, "demo", "clear", MODEL)

    postmortem = tmp_path / "postmortem.md"
    result = demo.opsctl("incident", "timeline", "--since", "10m", "-o", "json", "--postmortem", str(postmortem))
    assert result.returncode == 0, result.stderr
    timeline = json.loads(result.stdout)
    entries = [e for e in timeline["entries"] if e["model"] == MODEL]
    print(f"\nincident story after {time.monotonic() - began:.0f} s:")
    for e in entries:
        print(f"  {e['at']} {e['source']:8} {e['kind']:9} {e['version'] or '':6} {e['who']:20} {e['what'][:70]}")

    def first(source: str, kind: str, **where: Any) -> tuple[int, dict[str, Any]]:
        found = [(n, e) for n, e in enumerate(entries) if e["source"] == source and e["kind"] == kind
                 and all(e[k] == v for k, v in where.items())]
        assert found, (source, kind, where, entries)
        return found[0]

    n_degraded, degraded = first("health", "degraded", version="1.1.0")
    n_firing, firing = first("alert", "firing", version="1.1.0")
    n_rollback, rollback = first("audit", "rollback")
    n_resolved, resolved_entry = first("alert", "resolved", version="1.1.0")
    assert n_degraded < n_firing < n_rollback < n_resolved, entries
    assert at(degraded["at"]) <= at(firing["at"]) <= at(rollback["at"]) <= at(resolved_entry["at"])

    # Timestamps and attributions are the sources' own: the health result after the fault, the alert's
    # fired/resolved times, the audit entry of the rollback with its actor and reason.
    assert at(degraded["at"]).timestamp() >= faulted - 1.0
    assert "error_rate" in degraded["numbers"], degraded
    assert firing["at"] == fired["fired_at"] and RULE in firing["what"]
    assert resolved_entry["at"] == resolved["resolved_at"]
    (audit,) = [e for e in ok(demo, "history", MODEL, "-n", "100", "-o", "json")
                if e["action"] == "rollback" and e["reason"] == REASON]
    assert rollback["at"] == audit["at"] and rollback["why"] == REASON
    assert rollback["who"] == f"{audit['actor']} via {audit['via']}" and audit["actor"], rollback
    assert "1.1.0 -> 1.0.0" in rollback["what"]

    summary = timeline["summary"]
    assert summary["first_degraded"] == degraded["at"] and summary["first_alert_firing"] == firing["at"]
    assert summary["first_rollback"] == rollback["at"] and summary["rollback_reason"] == REASON
    detection = (at(firing["at"]) - at(degraded["at"])).total_seconds()
    to_rollback = (at(rollback["at"]) - at(degraded["at"])).total_seconds()
    assert summary["detection_seconds"] == pytest.approx(detection)
    assert summary["time_to_rollback_seconds"] == pytest.approx(to_rollback)
    assert detection >= DEGRADED_FOR_SECONDS  # the rule's hold, measured between the two stores' clocks

    draft = postmortem.read_text()
    print(draft.split("## Impact")[0])
    assert f"- First degraded health result: {degraded['at']}" in draft
    assert f"- First alert firing: {firing['at']}" in draft
    # The draft says "25 s", or "1 min 5 s (65 s)" past a minute.
    assert seconds_in(line(draft, "- Detection time (degraded to alert firing): ")) == round(detection)
    assert f"- Rollback: {rollback['at']} by {rollback['who']} ({REASON})" in draft
    assert seconds_in(line(draft, "- Time to rollback (impact start to rollback): ")) == round(to_rollback)
    assert "unknown (not in the timeline)" not in draft.split("## Impact")[0]

    # After the rollback the checklist wants its postmortem and the error rate is met again.
    after = wait_for(lambda: (c := checklist(demo))[("sla_error_rate", MODEL)]["status"] == "pass" and c, 30, 1.0,
                     what="the error-rate item to pass again", context=demo.tail)
    assert after[("postmortems", MODEL)]["status"] == "unknown", after[("postmortems", MODEL)]
    assert after[("postmortems", MODEL)]["evidence"].startswith("1 rollback(s) in 30 days")
    assert after[("postmortems", "churn-predictor")]["status"] == "pass"


def line(text: str, prefix: str) -> str:
    """The one line of ``text`` starting with ``prefix``."""
    (found,) = [x for x in text.splitlines() if x.startswith(prefix)]
    return found


def seconds_in(text: str) -> int:
    """The seconds a postmortem line ends with: ``: 25 s`` or ``... (65 s)``."""
    found = re.search(r"[:(] ?(\d+) s\)?$", text)
    assert found, text
    return int(found.group(1))
