"""Alert state machine: for-durations, timestamps, resend, resolution, acks, silences, fingerprints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsctl.adapters.alert_store import alert_from_document, alert_to_document
from opsctl.clock import ManualClock
from opsctl.core.alerts import (
    HEALTH_UNKNOWN,
    SLA_DEGRADED,
    Ack,
    AlertPhase,
    AlertPolicy,
    AlertRule,
    AlertSource,
    AlertState,
    Condition,
    Matcher,
    Notification,
    Severity,
    Silence,
    acknowledge,
    alert_labels,
    find_alert,
    fingerprint,
    health_conditions,
    new_silence,
    step,
)
from opsctl.core.sla import SlaThresholds, VersionSample, evaluate_sla
from opsctl.errors import ConflictError, NotFoundError, UsageError

RULE = AlertRule("HighLatency", Severity.CRITICAL, for_seconds=60, labels={"team": "ml"})
FRAUD = {"model": "fraud", "model_version": "v3"}
POLICY = AlertPolicy(resend_interval_seconds=30)


def run(clock: ManualClock, alerts, active: bool, labels=FRAUD, **kwargs):
    return step(alerts, [Condition(RULE, labels, active)], clock.now(), policy=POLICY, **kwargs)


def test_pending_then_firing_then_resolved_with_timestamps() -> None:
    clock = ManualClock()
    t0 = clock.now()
    alerts, sent = run(clock, (), True)
    assert [a.phase for a in alerts] == [AlertPhase.PENDING] and sent == ()
    assert alerts[0].starts_at == t0 and alerts[0].fired_at is None

    clock.advance(59)
    alerts, sent = run(clock, alerts, True)
    assert alerts[0].phase is AlertPhase.PENDING and sent == ()

    clock.advance(1)
    alerts, sent = run(clock, alerts, True)
    assert alerts[0].phase is AlertPhase.FIRING
    assert alerts[0].fired_at == t0 + timedelta(seconds=60)
    assert [n.kind for n in sent] == ["firing"]
    assert sent[0].labels == {"alertname": "HighLatency", "severity": "critical", "team": "ml", **FRAUD}
    assert sent[0].ends_at == clock.now() + timedelta(seconds=4 * 30)

    clock.advance(15)
    alerts, sent = run(clock, alerts, True)
    assert sent == ()  # not yet due for a re-send
    clock.advance(15)
    alerts, sent = run(clock, alerts, True)
    assert [n.kind for n in sent] == ["firing"]  # re-sent on the resend interval

    clock.advance(10)
    alerts, sent = run(clock, alerts, False)
    assert alerts[0].phase is AlertPhase.RESOLVED
    assert alerts[0].resolved_at == clock.now()
    assert [(n.kind, n.ends_at) for n in sent] == [("resolved", clock.now())]

    clock.advance(10)
    alerts, sent = run(clock, alerts, False)
    assert sent == ()  # resolution is sent once
    assert alerts[0].phase is AlertPhase.RESOLVED


def test_pending_that_clears_never_fires_nor_notifies() -> None:
    clock = ManualClock()
    alerts, _ = run(clock, (), True)
    clock.advance(30)
    alerts, sent = run(clock, alerts, False)
    assert alerts == () and sent == ()


def test_zero_for_fires_on_first_evaluation() -> None:
    rule = AlertRule("JobFailing", for_seconds=0, source=AlertSource.JOB)
    alerts, sent = step((), [Condition(rule, {"job": "drift"}, True)], datetime(2026, 1, 1, tzinfo=UTC))
    assert alerts[0].phase is AlertPhase.FIRING and len(sent) == 1


def test_recurrence_after_resolution_starts_a_new_pending_alert_without_the_old_ack() -> None:
    clock = ManualClock()
    alerts, _ = run(clock, (), True)
    clock.advance(60)
    alerts, _ = run(clock, alerts, True)
    alerts = acknowledge(alerts, alerts[0].id, by="alice", now=clock.now())
    clock.advance(5)
    alerts, _ = run(clock, alerts, False)
    clock.advance(5)
    alerts, _ = run(clock, alerts, True)
    assert alerts[0].phase is AlertPhase.PENDING and alerts[0].starts_at == clock.now()
    assert alerts[0].ack is None


def test_ack_suppresses_firing_notifications_until_it_expires_and_alert_still_resolves() -> None:
    clock = ManualClock()
    alerts, _ = run(clock, (), True)
    clock.advance(60)
    alerts, sent = run(clock, alerts, True)
    assert len(sent) == 1
    alerts = acknowledge(alerts, alerts[0].id[:8], by="alice", now=clock.now(), for_seconds=120,
                         comment="looking")
    assert alerts[0].ack is not None and alerts[0].ack.by == "alice"
    for _ in range(3):
        clock.advance(30)
        alerts, sent = run(clock, alerts, True)
        assert sent == ()
    clock.advance(30)  # ack expired at +120 s
    alerts, sent = run(clock, alerts, True)
    assert [n.kind for n in sent] == ["firing"]
    alerts = acknowledge(alerts, alerts[0].id, by="bob", now=clock.now())  # until resolved
    clock.advance(30)
    alerts, sent = run(clock, alerts, False)
    assert alerts[0].phase is AlertPhase.RESOLVED
    assert [n.kind for n in sent] == ["resolved"]  # the receiver saw it fire, so it hears it resolve


def test_silence_suppresses_only_matching_alerts() -> None:
    clock = ManualClock()
    churn = {"model": "churn", "model_version": "v1"}
    conditions = [Condition(RULE, FRAUD, True), Condition(RULE, churn, True)]
    silence = new_silence(["model=fraud"], author="alice", comment="maintenance", now=clock.now(),
                          duration_seconds=3600)
    alerts, sent = step((), conditions, clock.now(), silences=[silence], policy=POLICY)
    clock.advance(60)
    alerts, sent = step(alerts, conditions, clock.now(), silences=[silence], policy=POLICY)
    assert {a.phase for a in alerts} == {AlertPhase.FIRING}
    assert [n.labels["model"] for n in sent] == ["churn"]
    clock.advance(3600)  # silence over
    alerts, sent = step(alerts, conditions, clock.now(), silences=[silence], policy=POLICY)
    assert sorted(n.labels["model"] for n in sent) == ["churn", "fraud"]


def test_alerts_of_sources_not_evaluated_are_left_alone() -> None:
    clock = ManualClock()
    drift_rule = AlertRule("DriftDetected", source=AlertSource.DRIFT)
    alerts, _ = step((), [Condition(drift_rule, FRAUD, True)], clock.now())
    clock.advance(15)
    alerts, _ = step(alerts, [Condition(RULE, FRAUD, False)], clock.now())
    assert [(a.rule, a.phase) for a in alerts] == [("DriftDetected", AlertPhase.FIRING)]
    clock.advance(15)
    alerts, _sent = step(alerts, [], clock.now(), evaluated_sources={AlertSource.DRIFT})
    assert alerts[0].phase is AlertPhase.RESOLVED


def test_resolved_alerts_are_forgotten_after_retention() -> None:
    clock = ManualClock()
    policy = AlertPolicy(resolved_retention_seconds=100)
    alerts, _ = step((), [Condition(AlertRule("X"), {}, True)], clock.now(), policy=policy)
    alerts, _ = step(alerts, [Condition(AlertRule("X"), {}, False)], clock.now(), policy=policy)
    clock.advance(100)
    alerts, _ = step(alerts, [], clock.now(), policy=policy, evaluated_sources={AlertSource.HEALTH})
    assert len(alerts) == 1
    clock.advance(1)
    alerts, _ = step(alerts, [], clock.now(), policy=policy, evaluated_sources={AlertSource.HEALTH})
    assert alerts == ()


def test_fingerprint_is_stable_and_label_order_free() -> None:
    a = fingerprint("R", {"a": "1", "b": "2"})
    assert a == fingerprint("R", {"b": "2", "a": "1"})
    assert a != fingerprint("R2", {"a": "1", "b": "2"})
    assert a != fingerprint("R", {"a": "1", "b": "3"})
    # no ambiguity from concatenation
    assert fingerprint("R", {"a": "1,b"}) != fingerprint("R", {"a": "1", "b": ""})


def test_fingerprint_matches_the_sha256_of_the_documented_encoding() -> None:
    import hashlib

    expected = hashlib.sha256(b'["R",[["a","1"],["b","2"]]]').hexdigest()
    assert fingerprint("R", {"b": "2", "a": "1"}) == expected


def test_ack_errors() -> None:
    clock = ManualClock()
    alerts, _ = run(clock, (), True)
    with pytest.raises(NotFoundError):
        acknowledge(alerts, "ffffffffffff", by="a", now=clock.now())
    with pytest.raises(UsageError):
        acknowledge(alerts, "ab", by="a", now=clock.now())
    clock.advance(60)
    alerts, _ = run(clock, alerts, True)
    clock.advance(1)
    alerts, _ = run(clock, alerts, False)
    with pytest.raises(ConflictError):
        acknowledge(alerts, alerts[0].id, by="a", now=clock.now())


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("model=fraud", {"model": "fraud"}, True),
        ("model!=fraud", {"model": "fraud"}, False),
        ("model=~fra.*", {"model": "fraud"}, True),
        ("model=~fra", {"model": "fraud"}, False),  # anchored like Alertmanager
        ("model!~churn|ads", {"model": "fraud"}, True),
        ('team="a b"', {"team": "a b"}, True),
        ("team=", {}, True),  # a missing label is the empty string
        ("team!=", {}, False),
    ],
)
def test_matchers(text: str, labels: dict, expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["", "model", "1x=a", "model=~(", "=a"])
def test_bad_matchers_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        Matcher.parse(text)


def test_silence_needs_a_comment_and_a_positive_duration() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(UsageError):
        new_silence(["a=b"], author="x", comment=" ", now=now, duration_seconds=60)
    with pytest.raises(UsageError):
        new_silence(["a=b"], author="x", comment="c", now=now, duration_seconds=0)


def test_health_results_become_conditions() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    slow = VersionSample("fraud", "v3", 10, 0.0, 2.0, 3.0, 1.0, 0.95, fresh=True)
    result = evaluate_sla(slow, SlaThresholds(), 0.95, now)
    conditions = health_conditions([result])
    active = [(c.rule.name, c.active) for c in conditions]
    assert active == [("ModelSlaDegraded", True), ("ModelHealthUnknown", False)]
    assert "latency_p95" in conditions[0].summary
    assert alert_labels(conditions[0].rule, conditions[0].labels)["model_version"] == "v3"


# --------------------------------------------------------------------------- properties

label_values = st.sampled_from(["fraud", "churn", "ads", ""])
label_sets = st.fixed_dictionaries({"model": label_values, "model_version": st.sampled_from(["v1", "v2"])})
matcher_strategy = st.builds(
    Matcher,
    st.sampled_from(["model", "model_version", "team"]),
    st.sampled_from(["=", "!=", "=~", "!~"]),
    st.sampled_from(["fraud", "v1", "", "fr.*", "v[12]"]),
)


@settings(max_examples=200, derandomize=True)  # the same examples on every run, in CI too
@given(
    st.lists(matcher_strategy, min_size=1, max_size=3),
    st.lists(st.tuples(label_sets, st.booleans(), st.integers(0, 90)), min_size=1, max_size=12),
)
def test_property_silence_never_hides_a_non_matching_alert(matchers, rounds) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    silence = new_silence(matchers, author="p", comment="prop", now=now, duration_seconds=10**6)
    rule = AlertRule("R", for_seconds=30)
    alerts: tuple[AlertState, ...] = ()
    for labels, active, advance in rounds:
        now += timedelta(seconds=advance)
        before = {a.fingerprint: a for a in alerts}
        alerts, sent = step(alerts, [Condition(rule, labels, active)], now, silences=[silence])
        sent_fps = {n.alert.fingerprint for n in sent}
        for alert in alerts:
            if alert.phase is not AlertPhase.FIRING:
                continue
            was = before.get(alert.fingerprint)
            due = was is None or was.last_sent_at is None or (now - was.last_sent_at).total_seconds() >= 60
            if not silence.matches(alert.labels) and due:
                assert alert.fingerprint in sent_fps  # not matching => never held back
            if silence.matches(alert.labels):
                assert alert.fingerprint not in sent_fps


@settings(max_examples=200, derandomize=True)  # the same examples on every run, in CI too
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 120), st.booleans()), min_size=1, max_size=20),
)
def test_property_acked_alert_still_resolves(rounds) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rule = AlertRule("R", for_seconds=30)
    alerts: tuple[AlertState, ...] = ()
    for active, advance, ack in rounds:
        now += timedelta(seconds=advance)
        if ack and alerts and alerts[0].phase is not AlertPhase.RESOLVED:
            alerts = acknowledge(alerts, alerts[0].id, by="p", now=now)
        was_firing = bool(alerts) and alerts[0].phase is AlertPhase.FIRING
        alerts, _ = step(alerts, [Condition(rule, FRAUD, active)], now)
        if was_firing and not active:
            assert alerts[0].phase is AlertPhase.RESOLVED and alerts[0].resolved_at == now
        if alerts and alerts[0].phase is AlertPhase.FIRING:
            assert alerts[0].fired_at is not None
            assert (alerts[0].fired_at - alerts[0].starts_at).total_seconds() >= rule.for_seconds


# --------------------------------------------------------------------------- exact documents and boundaries

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_fingerprint_encodes_non_ascii_labels_as_utf8_not_escapes() -> None:
    expected = hashlib.sha256('["R",[["team","équipe"]]]'.encode()).hexdigest()
    assert fingerprint("R", {"team": "équipe"}) == expected


def firing_alert() -> AlertState:
    alerts, _ = step((), [Condition(RULE, FRAUD, True, value=0.93, summary="p95 930 ms")], T0, policy=POLICY)
    alerts, _ = step(alerts, [Condition(RULE, FRAUD, True, value=0.95, summary="p95 950 ms")],
                     T0 + timedelta(seconds=60), policy=POLICY)
    return alerts[0]


def test_alert_state_to_json_is_exact_and_round_trips_through_the_store_document() -> None:
    alert = firing_alert()
    fp = fingerprint("HighLatency", {"alertname": "HighLatency", "severity": "critical", "team": "ml", **FRAUD})
    assert alert.fingerprint == fp and alert.id == fp[:12]
    assert alert.to_json() == {
        "id": fp[:12],
        "fingerprint": fp,
        "rule": "HighLatency",
        "severity": "critical",
        "source": "health",
        "state": "firing",
        "labels": {"alertname": "HighLatency", "severity": "critical", "team": "ml", **FRAUD},
        "annotations": {},
        "summary": "p95 950 ms",
        "value": 0.95,
        "starts_at": "2026-01-01T00:00:00Z",
        "fired_at": "2026-01-01T00:01:00Z",
        "resolved_at": None,
        "ack": None,
    }
    acked = acknowledge([alert], alert.id, by="alice", now=T0 + timedelta(seconds=70), for_seconds=600,
                        comment="looking")[0]
    resolved, _ = step([acked], [Condition(RULE, FRAUD, False)], T0 + timedelta(seconds=90), policy=POLICY)
    doc = resolved[0].to_json()
    assert (doc["state"], doc["resolved_at"]) == ("resolved", "2026-01-01T00:01:30Z")
    assert doc["ack"] == {"by": "alice", "at": "2026-01-01T00:01:10Z", "until": "2026-01-01T00:11:10Z",
                          "comment": "looking"}
    for state in (alert, acked, resolved[0]):
        assert alert_from_document(json.loads(json.dumps(alert_to_document(state)))) == state


def test_ack_to_json_without_an_end() -> None:
    ack = Ack(by="bob", at=T0, comment="")
    assert ack.to_json() == {"by": "bob", "at": "2026-01-01T00:00:00Z", "until": None, "comment": ""}
    assert ack.active(T0 + timedelta(days=365))
    timed = Ack(by="bob", at=T0, until=T0 + timedelta(seconds=10))
    assert timed.active(T0 + timedelta(seconds=9.999)) and not timed.active(T0 + timedelta(seconds=10))


def test_silence_to_json_is_exact_and_round_trips() -> None:
    silence = new_silence(["model=fraud", "model_version!~v[12]"], author="alice", comment="deploy window",
                          now=T0, duration_seconds=1800)
    payload = json.dumps([['model="fraud"', 'model_version!~"v[12]"'], "alice", "deploy window",
                          "2026-01-01T00:00:00Z", 1800])
    assert silence.id == hashlib.sha256(payload.encode()).hexdigest()[:12]
    doc = silence.to_json()
    assert doc == {
        "id": silence.id,
        "matchers": ['model="fraud"', 'model_version!~"v[12]"'],
        "author": "alice",
        "comment": "deploy window",
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-01-01T00:30:00Z",
    }
    rebuilt = Silence(doc["id"], tuple(Matcher.parse(m) for m in doc["matchers"]), doc["author"], doc["comment"],
                      datetime.fromisoformat(doc["starts_at"]), datetime.fromisoformat(doc["ends_at"]))
    assert rebuilt == silence


def test_silence_is_active_from_its_start_and_expires_exactly_at_its_end() -> None:
    silence = new_silence(["model=fraud"], author="a", comment="c", now=T0, duration_seconds=60)
    assert not silence.active(T0 - timedelta(microseconds=1))
    assert silence.active(T0)
    assert silence.active(T0 + timedelta(seconds=59.999999))
    assert not silence.active(T0 + timedelta(seconds=60))
    assert silence.silences({"model": "fraud"}, T0) and not silence.silences({"model": "fraud"}, silence.ends_at)


def test_a_firing_alert_is_notified_the_moment_its_silence_ends() -> None:
    silence = new_silence(["model=fraud"], author="a", comment="c", now=T0, duration_seconds=60)
    rule = AlertRule("Now", for_seconds=0)
    alerts, sent = step((), [Condition(rule, FRAUD, True)], T0, silences=[silence])
    assert alerts[0].phase is AlertPhase.FIRING and sent == ()
    _, sent = step(alerts, [Condition(rule, FRAUD, True)], T0 + timedelta(seconds=60), silences=[silence])
    assert [n.kind for n in sent] == ["firing"]


def test_silence_must_end_after_it_starts_and_durations_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        Silence("x", (Matcher("a", "=", "b"),), "a", "c", T0, T0)
    with pytest.raises(ValueError, match="at least one matcher"):
        Silence("x", (), "a", "c", T0, T0 + timedelta(seconds=1))
    with pytest.raises(UsageError, match=r"^silence duration must be positive, got 0s$"):
        new_silence(["a=b"], author="x", comment="c", now=T0, duration_seconds=0)
    short = new_silence(["a=b"], author="x", comment="c", now=T0, duration_seconds=0.5)
    assert short.ends_at == T0 + timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('team="a b"', "a b"),
        ('team=""', ""),  # quoted empty value
        ('team="', '"'),  # a lone quote is the value
        ('team="abc', '"abc'),  # unbalanced: kept as typed
        ('team=abc"', 'abc"'),
        ("team=abc", "abc"),
    ],
)
def test_matcher_quotes_are_stripped_only_when_they_enclose_the_value(text: str, value: str) -> None:
    assert Matcher.parse(text).value == value


def test_matcher_to_json_is_alertmanagers_shape() -> None:
    assert [Matcher("model", op, "fr.*").to_json() for op in ("=", "!=", "=~", "!~")] == [
        {"name": "model", "value": "fr.*", "isRegex": False, "isEqual": True},
        {"name": "model", "value": "fr.*", "isRegex": False, "isEqual": False},
        {"name": "model", "value": "fr.*", "isRegex": True, "isEqual": True},
        {"name": "model", "value": "fr.*", "isRegex": True, "isEqual": False},
    ]


def test_notification_annotations_add_the_summary_unless_the_rule_has_one() -> None:
    alert = firing_alert()
    with_summary = Notification("firing", alert, T0)
    assert with_summary.annotations == {"summary": "p95 950 ms"}
    ruled = replace_annotations(alert, {"summary": "from the rule", "runbook": "r"})
    assert Notification("firing", ruled, T0).annotations == {"summary": "from the rule", "runbook": "r"}
    quiet = replace_annotations(alert, {"runbook": "r"}, summary="")
    assert Notification("firing", quiet, T0).annotations == {"runbook": "r"}


def replace_annotations(alert: AlertState, annotations: dict, **changes: object) -> AlertState:
    return replace(alert, annotations=annotations, **changes)  # type: ignore[arg-type]


def test_alert_policy_defaults_and_boundaries() -> None:
    assert AlertPolicy() == AlertPolicy(resend_interval_seconds=60.0, resolved_retention_seconds=3600.0,
                                        ends_after_resends=4)
    assert AlertPolicy(resend_interval_seconds=0.5, resolved_retention_seconds=0, ends_after_resends=1)
    for kwargs in ({"resend_interval_seconds": 0}, {"resolved_retention_seconds": -0.5}, {"ends_after_resends": 0}):
        with pytest.raises(ValueError):
            AlertPolicy(**kwargs)  # type: ignore[arg-type]


def test_default_policy_resends_every_60_s_and_tells_the_receiver_4_intervals() -> None:
    rule = AlertRule("Now", for_seconds=0)
    alerts, sent = step((), [Condition(rule, FRAUD, True)], T0)
    assert sent[0].ends_at == T0 + timedelta(seconds=240)
    alerts, sent = step(alerts, [Condition(rule, FRAUD, True)], T0 + timedelta(seconds=59.9))
    assert sent == ()
    _, sent = step(alerts, [Condition(rule, FRAUD, True)], T0 + timedelta(seconds=60))
    assert [n.kind for n in sent] == ["firing"]


def test_default_policy_keeps_a_resolved_alert_for_an_hour() -> None:
    rule = AlertRule("Now", for_seconds=0)
    alerts, _ = step((), [Condition(rule, FRAUD, True)], T0)
    alerts, _ = step(alerts, [Condition(rule, FRAUD, False)], T0)
    kept, _ = step(alerts, [], T0 + timedelta(seconds=3600), evaluated_sources={AlertSource.HEALTH})
    assert len(kept) == 1
    gone, _ = step(alerts, [], T0 + timedelta(seconds=3600.5), evaluated_sources={AlertSource.HEALTH})
    assert gone == ()


def test_alert_ids_need_six_characters() -> None:
    alert = firing_alert()
    assert find_alert([alert], alert.fingerprint[:6].upper()) == alert
    with pytest.raises(UsageError, match="too short"):
        find_alert([alert], alert.fingerprint[:5])


def test_ack_durations_must_be_positive() -> None:
    alert = firing_alert()
    with pytest.raises(UsageError, match=r"^ack duration must be positive, got 0s$"):
        acknowledge([alert], alert.id, by="a", now=T0, for_seconds=0)
    [acked] = acknowledge([alert], alert.id, by="a", now=T0, for_seconds=0.5)
    assert acked.ack is not None and acked.ack.until == T0 + timedelta(seconds=0.5)


def test_health_rules_page_after_a_minute_degraded_and_five_minutes_unknown() -> None:
    assert (SLA_DEGRADED.name, SLA_DEGRADED.severity, SLA_DEGRADED.for_seconds) == (
        "ModelSlaDegraded", Severity.CRITICAL, 60.0)
    assert (HEALTH_UNKNOWN.name, HEALTH_UNKNOWN.severity, HEALTH_UNKNOWN.for_seconds) == (
        "ModelHealthUnknown", Severity.WARNING, 300.0)
    for rule, held in ((SLA_DEGRADED, 60), (HEALTH_UNKNOWN, 300)):
        alerts, _ = step((), [Condition(rule, FRAUD, True)], T0)
        alerts, _ = step(alerts, [Condition(rule, FRAUD, True)], T0 + timedelta(seconds=held - 0.001))
        assert alerts[0].phase is AlertPhase.PENDING
        alerts, _ = step(alerts, [Condition(rule, FRAUD, True)], T0 + timedelta(seconds=held))
        assert alerts[0].phase is AlertPhase.FIRING
