"""The bounded per-model window: records, validation, label join, expiry, sampling."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from scipy import stats

from opsctl.core.window import (
    FeedbackRecord,
    PredictionRecord,
    RecordError,
    WindowPolicy,
    WindowSet,
    parse_batch,
    record_from_json,
)
from opsctl.errors import UsageError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pred(i: int, *, at: datetime | None = None, model: str = "m", version: str = "v1") -> PredictionRecord:
    return PredictionRecord(
        prediction_id=f"p{i}",
        timestamp=at or T0,
        model=model,
        version=version,
        features={"x": float(i), "c": "a"},
        prediction=i % 2,
        score=0.5,
        latency_ms=3.0,
    )


def fb(i: int, label: int = 1, *, at: datetime | None = None) -> FeedbackRecord:
    return FeedbackRecord(prediction_id=f"p{i}", label=label, timestamp=at or T0)


def good_prediction_json(**over: object) -> dict[str, object]:
    obj: dict[str, object] = {
        "prediction_id": "abc",
        "timestamp": "2026-01-01T10:00:00.123Z",
        "model": "fraud-detector",
        "version": "v3",
        "features": {"amount": 12.5, "country": "FR", "is_new": True, "missing": None},
        "prediction": 1,
        "score": 0.83,
        "latency_ms": 4.2,
    }
    obj.update(over)
    return obj


# --------------------------------------------------------------------------- records


def test_a_valid_prediction_line_becomes_a_record_in_utc() -> None:
    rec = record_from_json(good_prediction_json(timestamp="2026-01-01T11:00:00+01:00"))
    assert isinstance(rec, PredictionRecord)
    assert rec.timestamp == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert rec.features["country"] == "FR" and rec.score == 0.83
    assert record_from_json(rec.to_json()) == rec


def test_feedback_is_recognised_without_a_type_field() -> None:
    rec = record_from_json({"prediction_id": "abc", "label": 0, "timestamp": "2026-01-01T10:00:00Z"})
    assert rec == FeedbackRecord("abc", 0, datetime(2026, 1, 1, 10, tzinfo=UTC))


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"prediction_id": None}, "prediction_id", "must be a string"),
        ({"timestamp": "2026-01-01T10:00:00"}, "timestamp", "timezone"),
        ({"timestamp": "yesterday"}, "timestamp", "ISO-8601"),
        ({"latency_ms": True}, "latency_ms", "must be a number"),
        ({"latency_ms": -1}, "latency_ms", "negative"),
        ({"score": "high"}, "score", "must be a number"),
        ({"features": [1, 2]}, "features", "must be an object"),
        ({"features": {"emb": [0.1]}}, "features.emb", "an array"),
        ({"prediction": None}, "prediction", "null"),
        ({"type": "metric"}, "type", "prediction' or 'feedback"),
    ],
)
def test_invalid_fields_are_named(change: dict[str, object], field: str, problem: str) -> None:
    with pytest.raises(RecordError) as info:
        record_from_json(good_prediction_json(**change))
    assert info.value.field == field
    assert problem in info.value.problem


def test_a_missing_field_is_named() -> None:
    obj = good_prediction_json()
    del obj["version"]
    with pytest.raises(RecordError, match="version: missing"):
        record_from_json(obj)


def test_score_and_latency_may_be_null_as_the_sdk_writes_them() -> None:
    rec = record_from_json(good_prediction_json(score=None, latency_ms=None))
    assert isinstance(rec, PredictionRecord) and rec.score is None and rec.latency_ms is None


def test_parse_batch_accepts_both_kinds_and_names_the_index_and_field_of_an_error() -> None:
    feedback = {"prediction_id": "abc", "label": 1, "timestamp": "2026-01-01T10:00:00Z"}
    body = {"records": [good_prediction_json(), feedback]}
    records = parse_batch(body)
    assert [type(r) for r in records] == [PredictionRecord, FeedbackRecord]
    bad = {"records": [good_prediction_json(), good_prediction_json(latency_ms="4ms")]}
    with pytest.raises(UsageError, match=r"records\[1\]\.latency_ms: must be a number"):
        parse_batch(bad)
    with pytest.raises(UsageError, match=r"records\[0\]: must be an object"):
        parse_batch(b'{"records": [3]}')
    with pytest.raises(UsageError, match="not valid JSON"):
        parse_batch(b"{")
    with pytest.raises(UsageError, match="at most 2"):
        parse_batch({"records": [good_prediction_json()] * 3}, max_records=2)
    with pytest.raises(UsageError, match="records"):
        parse_batch([good_prediction_json()])


# --------------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "sliding"}, {"max_age_seconds": 0}, {"buckets": 0}, {"max_kept_records": 5, "buckets": 4},
     {"max_records_in_window": 0}, {"max_pending_labels": -1}],
)
def test_impossible_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WindowPolicy(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- window


def test_count_window_keeps_exactly_the_last_n_in_order_below_the_cap() -> None:
    windows = WindowSet(WindowPolicy(mode="count", max_records_in_window=100, buckets=4, max_kept_records=600),
                        rng=random.Random(1))
    for i in range(250):
        windows.add(pred(i), T0)
    snap = windows.snapshot("m", T0)
    assert snap.prediction_ids == tuple(f"p{i}" for i in range(150, 250))
    assert not snap.sampled and snap.seen == 100
    assert windows.kept("m") <= 600


def test_time_window_drops_what_is_older_than_max_age() -> None:
    windows = WindowSet(WindowPolicy(mode="time", max_age_seconds=600, buckets=6), rng=random.Random(1))
    for minute in range(20):
        windows.add(pred(minute, at=T0 + timedelta(minutes=minute)), T0 + timedelta(minutes=minute))
    now = T0 + timedelta(minutes=19)
    snap = windows.snapshot("m", now)
    # (now - 10 min, now]: minutes 10..19
    assert snap.prediction_ids == tuple(f"p{m}" for m in range(10, 20))
    assert windows.kept("m") <= 12  # expired buckets are freed, not just hidden
    later = windows.snapshot("m", now + timedelta(hours=1))
    assert later.rows == 0 and windows.kept("m") == 0


def test_time_window_refuses_late_and_far_future_records() -> None:
    windows = WindowSet(WindowPolicy(mode="time", max_age_seconds=600, buckets=6), rng=random.Random(1))
    windows.add(pred(1, at=T0 - timedelta(minutes=11)), T0)
    windows.add(pred(2, at=T0 + timedelta(hours=1)), T0)
    windows.add(pred(3, at=T0 + timedelta(seconds=30)), T0)  # small clock skew is fine
    assert windows.stats.late == 1 and windows.stats.future == 1
    assert windows.snapshot("m", T0 + timedelta(seconds=30)).prediction_ids == ("p3",)


def test_models_get_separate_windows_and_versions_can_be_filtered() -> None:
    windows = WindowSet(rng=random.Random(1))
    windows.add(pred(1, model="a"), T0)
    windows.add(pred(2, model="b", version="v1"), T0)
    windows.add(pred(3, model="b", version="v2"), T0)
    assert windows.models() == ["a", "b"]
    assert windows.snapshot("b", T0, version="v2").prediction_ids == ("p3",)
    assert windows.snapshot("unknown", T0).rows == 0


def test_labels_join_whether_they_arrive_before_or_after_the_prediction() -> None:
    windows = WindowSet(rng=random.Random(1))
    windows.add(pred(1), T0)
    windows.add(fb(1, label=0), T0)  # after
    windows.add(fb(2, label=1), T0)  # before
    assert windows.pending_labels() == 1
    windows.add(pred(2), T0)
    windows.add(pred(3), T0)  # never labelled
    snap = windows.snapshot("m", T0)
    assert snap.labels == (0, 1, None)
    assert snap.labelled_indices() == [0, 1]
    assert windows.pending_labels() == 0 and windows.stats.labels_joined == 2


def test_a_corrected_label_replaces_the_first_one() -> None:
    windows = WindowSet(rng=random.Random(1))
    windows.add(pred(1), T0)
    windows.add(fb(1, label=0), T0)
    windows.add(fb(1, label=1), T0)
    assert windows.snapshot("m", T0).labels == (1,)
    assert windows.stats.labels_joined == 1


def test_pending_labels_are_bounded_in_number_and_age() -> None:
    policy = WindowPolicy(max_pending_labels=3, pending_label_max_age_seconds=60)
    windows = WindowSet(policy, rng=random.Random(1))
    for i in range(5):
        windows.add(fb(i), T0)
    assert windows.pending_labels() == 3 and windows.stats.labels_evicted == 2
    windows.add(pred(0), T0)  # its label was evicted (oldest first)
    windows.add(pred(4), T0)
    assert windows.snapshot("m", T0).labels == (None, 1)
    windows.expire(T0 + timedelta(seconds=61))
    assert windows.pending_labels() == 0


def test_a_prediction_seen_again_is_not_counted_twice() -> None:
    windows = WindowSet(rng=random.Random(1))
    for _ in range(3):
        windows.add(pred(1), T0)
    assert windows.snapshot("m", T0).rows == 1
    assert windows.stats.duplicates == 2


def test_memory_stays_bounded_under_heavy_traffic() -> None:
    policy = WindowPolicy(mode="time", max_age_seconds=3600, buckets=12, max_kept_records=1400)
    windows = WindowSet(policy, rng=random.Random(3))
    largest = 0
    for i in range(60_000):  # 1000 predictions a minute for an hour
        now = T0 + timedelta(seconds=i * 0.06)
        windows.add(pred(i, at=now), now)
        if i % 997 == 0:
            largest = max(largest, windows.kept("m"))
    assert largest <= 1400
    snap = windows.snapshot("m", now)
    assert snap.sampled and 0 < snap.rows <= 1400
    assert snap.seen == pytest.approx(60_000, rel=0.02)
    # the sample spreads over the whole hour, not just its end
    assert min(snap.timestamps) < T0 + timedelta(minutes=5)
    assert max(snap.timestamps) > T0 + timedelta(minutes=55)


def test_count_window_memory_is_bounded_too() -> None:
    policy = WindowPolicy(mode="count", max_records_in_window=50_000, buckets=8, max_kept_records=1000)
    windows = WindowSet(policy, rng=random.Random(4))
    for i in range(80_000):
        windows.add(pred(i), T0)
    assert windows.kept("m") <= 1000
    snap = windows.snapshot("m", T0)
    ids = [int(p[1:]) for p in snap.prediction_ids]
    assert min(ids) >= 30_000  # nothing older than the last 50,000
    assert snap.seen == pytest.approx(50_000, rel=0.02)


def test_sampling_gives_every_prediction_the_same_chance() -> None:
    """Chi-squared on inclusion counts: uneven traffic across buckets must not bias the sample."""
    policy = WindowPolicy(mode="time", max_age_seconds=400, buckets=4, max_kept_records=60)  # 10 per bucket
    per_bucket = [10, 20, 30, 40]  # light buckets are kept whole, heavy ones sampled
    times = [T0 + timedelta(seconds=100 * b + 1 + k) for b, n in enumerate(per_bucket) for k in range(n)]
    ids = list(enumerate(times))
    now = T0 + timedelta(seconds=399)
    rng = random.Random(20260101)
    counts: Counter[str] = Counter()
    trials = 1000
    for _ in range(trials):
        windows = WindowSet(policy, rng=rng)
        for i, at in ids:
            windows.add(pred(i, at=at), now)
        counts.update(windows.snapshot("m", now).prediction_ids)
    observed = [counts[f"p{i}"] for i, _ in ids]
    # every prediction is included with probability 10/40 (the heaviest bucket's rate)
    assert sum(observed) / (trials * len(ids)) == pytest.approx(0.25, rel=0.02)
    light = sum(observed[:10]) / (trials * 10)
    heavy = sum(observed[60:]) / (trials * 40)
    assert light == pytest.approx(0.25, abs=0.02) and heavy == pytest.approx(0.25, abs=0.02)
    result = stats.chisquare(observed)
    assert result.pvalue > 0.01, result


def test_snapshot_is_deterministic_for_a_seed() -> None:
    def run() -> tuple[str, ...]:
        windows = WindowSet(WindowPolicy(max_kept_records=140, buckets=12), rng=random.Random(9))
        for i in range(2000):
            windows.add(pred(i, at=T0 + timedelta(seconds=i)), T0 + timedelta(seconds=i))
        return windows.snapshot("m", T0 + timedelta(seconds=1999)).prediction_ids

    assert run() == run()


def test_snapshots_pickle_for_worker_processes() -> None:
    import pickle

    windows = WindowSet(rng=random.Random(0))
    windows.add(record_from_json(good_prediction_json(timestamp="2026-01-01T00:00:00Z")), T0)
    snap = windows.snapshot("fraud-detector", T0)
    assert pickle.loads(pickle.dumps(snap)) == snap
