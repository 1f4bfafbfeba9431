"""AlertStore: alert states, history and silences persist exactly across registry reopenings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsctl.adapters.alert_store import AlertStore, silence_from_document, silence_to_document
from opsctl.adapters.registry import Registry
from opsctl.core.alerts import (
    AlertPhase,
    AlertPolicy,
    AlertRule,
    AlertSource,
    Condition,
    Severity,
    acknowledge,
    new_silence,
    step,
)
from opsctl.errors import ConflictError, NotFoundError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULE = AlertRule("ModelSlaDegraded", Severity.CRITICAL, for_seconds=60, annotations={"runbook": "r"})
DRIFT = AlertRule("ModelDrift", Severity.WARNING, source=AlertSource.DRIFT)
LABELS = {"model": "fraud", "model_version": "v1"}


def run(store: AlertStore, registry: Registry, conditions, now, **kwargs):
    with registry.write() as tx:
        before = store.load(tx)
        after, sent = step(before, conditions, now, silences=store.silences(tx, active_at=now), **kwargs)
        transitions = store.apply(tx, before, after, now)
    return after, sent, transitions


@pytest.fixture
def registry(make_registry) -> Registry:  # type: ignore[no-untyped-def]
    return make_registry()  # SQLite and PostgreSQL (tests/fixtures/postgres.py)


def test_pending_firing_resolved_persist_with_history_and_survive_reopening(registry: Registry,
                                                                              make_registry) -> None:  # type: ignore[no-untyped-def]
    store = AlertStore()
    active = [Condition(RULE, LABELS, True, value=3.0, summary="error rate 3%")]
    _, _, moves = run(store, registry, active, T0)
    assert [(m.previous, m.phase) for m in moves] == [(None, "pending")]
    _, sent, moves = run(store, registry, active, T0 + timedelta(seconds=60))
    assert [(m.previous, m.phase) for m in moves] == [("pending", "firing")] and [n.kind for n in sent] == ["firing"]
    registry.close()

    reopened = make_registry()
    (alert,) = store.load(reopened)
    assert alert.phase is AlertPhase.FIRING and alert.fired_at == T0 + timedelta(seconds=60)
    assert alert.last_sent_at == T0 + timedelta(seconds=60)  # not re-paged after a restart
    _, sent, _ = run(store, reopened, active, T0 + timedelta(seconds=61))
    assert sent == ()
    _, sent, moves = run(store, reopened, [Condition(RULE, LABELS, False)], T0 + timedelta(seconds=90))
    assert [(m.previous, m.phase) for m in moves] == [("firing", "resolved")]
    assert [n.kind for n in sent] == ["resolved"]
    (resolved,) = store.load(reopened)
    assert (resolved.starts_at, resolved.fired_at, resolved.resolved_at, resolved.resolved_sent) == (
        T0, T0 + timedelta(seconds=60), T0 + timedelta(seconds=90), True)
    assert [status for _, status, _ in store.history(reopened, fingerprint=alert.id)] == [
        "pending", "firing", "resolved"]


def test_a_pending_alert_that_goes_away_is_deleted_and_recorded_as_dropped(registry: Registry) -> None:
    store = AlertStore()
    run(store, registry, [Condition(RULE, LABELS, True)], T0)
    _, _, moves = run(store, registry, [Condition(RULE, LABELS, False)], T0 + timedelta(seconds=10))
    assert [(m.previous, m.phase) for m in moves] == [("pending", "dropped")]
    assert store.load(registry) == []
    assert [s for _, s, _ in store.history(registry)] == ["pending", "dropped"]


def test_ack_round_trips_and_alerts_of_other_sources_are_left_alone(registry: Registry) -> None:
    store = AlertStore()
    run(store, registry, [Condition(DRIFT, LABELS, True)], T0)
    run(store, registry, [Condition(RULE, LABELS, True)], T0, evaluated_sources=[AlertSource.HEALTH])
    with registry.write() as tx:
        alerts = store.load(tx)
        health = next(a for a in alerts if a.source is AlertSource.HEALTH)
        acked = acknowledge(alerts, health.id, by="alice", now=T0, for_seconds=600, comment="on it")
        store.apply(tx, alerts, acked, T0)
    back = {a.source: a for a in store.load(registry)}
    assert back[AlertSource.HEALTH].ack is not None
    assert (back[AlertSource.HEALTH].ack.by, back[AlertSource.HEALTH].ack.until) == (
        "alice", T0 + timedelta(seconds=600))
    # a health-only round with no conditions resolves nothing of drift's
    run(store, registry, [], T0 + timedelta(seconds=5), evaluated_sources=[AlertSource.HEALTH])
    assert [a.rule for a in store.load(registry)] == ["ModelDrift"]
    assert store.history(registry)[-1][1] == "dropped"


def test_silences_active_listing_expiry_and_round_trip(registry: Registry) -> None:
    store = AlertStore()
    tricky = new_silence(['model="fr\\"aud"', "model_version=~v1|v2"], author="bob", comment="deploy",
                         now=T0, duration_seconds=3600)
    assert silence_from_document(silence_to_document(tricky)) == tricky
    store.add_silence(registry, tricky)
    with pytest.raises(ConflictError):
        store.add_silence(registry, tricky)
    assert store.silences(registry, active_at=T0 + timedelta(minutes=30)) == [tricky]
    assert store.silences(registry, active_at=T0 + timedelta(hours=2)) == []
    expired = store.expire_silence(registry, tricky.id, T0 + timedelta(minutes=10))
    assert expired.ends_at == T0 + timedelta(minutes=10)
    assert store.silences(registry, active_at=T0 + timedelta(minutes=11)) == []
    assert store.silences(registry) == [expired]
    with pytest.raises(ConflictError):
        store.expire_silence(registry, tricky.id, T0 + timedelta(minutes=12))
    with pytest.raises(NotFoundError):
        store.get_silence(registry, "nope")
    assert store.prune_silences(registry, before=T0 + timedelta(days=1)) == 1
    assert store.silences(registry) == []


def test_a_silence_stored_in_the_registry_suppresses_notifications(registry: Registry) -> None:
    store = AlertStore()
    store.add_silence(registry, new_silence(["model=fraud"], author="bob", comment="maintenance", now=T0,
                                            duration_seconds=600))
    active = [Condition(RULE, LABELS, True), Condition(RULE, {**LABELS, "model": "churn"}, True)]
    policy = AlertPolicy()
    run(store, registry, active, T0, policy=policy)
    _, sent, _ = run(store, registry, active, T0 + timedelta(seconds=60), policy=policy)
    assert [n.labels["model"] for n in sent] == ["churn"]
