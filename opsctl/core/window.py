"""Prediction and feedback records, their validation, and the bounded per-model window.

Records come from the SDK's JSON-lines logs (one object per line) or from the daemon's
``POST /v1/ingest`` batches; both go through :func:`record_from_json`, so a record accepted
from a file is accepted over HTTP and the other way round.

The window keeps, per model, the recent predictions (by age or by count, see
:class:`WindowPolicy`) and joins feedback labels to them by ``prediction_id``. Memory is bounded
by ``max_kept_records`` whatever the traffic: the window is cut into ``buckets`` slices (of time or
of arrival order) and each slice keeps a reservoir (Algorithm R, driven by an injected
``random.Random``) of at most ``max_kept_records // (buckets + 2)`` predictions. A snapshot thins
every slice to the same inclusion probability, so every prediction of the window is equally
likely to be in it (a proportionally stratified sample; see :meth:`WindowSet.snapshot`).

Usage::

    windows = WindowSet(WindowPolicy(mode="time", max_age_seconds=3600), rng=random.Random(7))
    windows.add(record, now)            # PredictionRecord or FeedbackRecord
    snap = windows.snapshot("fraud-detector", now)
    snap.labelled_indices()             # rows with a joined label, for the performance check
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsctl.errors import UsageError

FeatureValue = str | int | float | bool | None
Label = str | int | float | bool

MAX_BATCH_RECORDS = 10_000


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class PredictionRecord:
    """One logged prediction, as the SDK writes it."""

    prediction_id: str
    timestamp: datetime
    model: str
    version: str
    features: Mapping[str, FeatureValue]
    prediction: Label
    score: float | None
    latency_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "prediction",
            "prediction_id": self.prediction_id,
            "timestamp": _iso(self.timestamp),
            "model": self.model,
            "version": self.version,
            "features": dict(self.features),
            "prediction": self.prediction,
            "score": self.score,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class FeedbackRecord:
    """A ground-truth label for an earlier prediction (``model`` is optional in the log)."""

    prediction_id: str
    label: Label
    timestamp: datetime
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "feedback",
            "prediction_id": self.prediction_id,
            "label": self.label,
            "timestamp": _iso(self.timestamp),
        }
        if self.model is not None:
            out["model"] = self.model
        return out


Record = PredictionRecord | FeedbackRecord


class RecordError(ValueError):
    """A record failed validation; ``field`` names the offending key.

    Internal to the ingestion path: :func:`parse_batch` turns it into a
    :class:`~opsctl.errors.UsageError`, the log tailer counts and logs it.
    """

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _require(obj: Mapping[str, Any], name: str) -> Any:
    if name not in obj:
        raise RecordError(name, "missing")
    return obj[name]


def _text(obj: Mapping[str, Any], name: str, *, optional: bool = False) -> str | None:
    if optional and obj.get(name) is None:
        return None
    value = _require(obj, name)
    if not isinstance(value, str):
        raise RecordError(name, f"must be a string, got {_kind_of(value)}")
    if not value.strip():
        raise RecordError(name, "must not be empty")
    return value


def _number(obj: Mapping[str, Any], name: str, *, optional: bool = False) -> float | None:
    value = obj.get(name) if optional else _require(obj, name)
    if value is None and optional:
        return None
    # bool is an int subclass in Python, but `true` is not a number in a log line.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(name, f"must be a number, got {_kind_of(value)}")
    if not math.isfinite(value):
        raise RecordError(name, "must be finite")
    return float(value)


def _label(obj: Mapping[str, Any], name: str) -> Label:
    value = _require(obj, name)
    if value is None or not isinstance(value, str | int | float | bool):
        raise RecordError(name, f"must be a string, number or boolean, got {_kind_of(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(name, "must be finite")
    return value


def _timestamp(obj: Mapping[str, Any], name: str = "timestamp") -> datetime:
    value = _require(obj, name)
    if not isinstance(value, str):
        raise RecordError(name, f"must be an ISO-8601 string, got {_kind_of(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(name, f"not an ISO-8601 timestamp: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise RecordError(name, "must carry a timezone (UTC with Z)")
    return moment.astimezone(UTC)


def _features(obj: Mapping[str, Any]) -> Mapping[str, FeatureValue]:
    value = _require(obj, "features")
    if not isinstance(value, dict):
        raise RecordError("features", f"must be an object, got {_kind_of(value)}")
    for key, item in value.items():
        if item is not None and not isinstance(item, str | int | float | bool):
            raise RecordError(f"features.{key}", f"must be a string, number, boolean or null, got {_kind_of(item)}")
    return dict(value)  # a plain dict (not a proxy) so snapshots pickle to worker processes


def record_from_json(obj: Any) -> Record:
    """Validate one decoded JSON object and build its record; raises :class:`RecordError`.

    ``"type": "prediction" | "feedback"`` selects the schema; without it an object with a
    ``label`` and no ``features`` is feedback and anything else is checked as a prediction.
    Unknown keys are ignored so newer SDKs can add fields.
    """
    if not isinstance(obj, dict):
        raise RecordError("record", f"must be an object, got {_kind_of(obj)}")
    kind = obj.get("type")
    if kind is None:
        kind = "feedback" if "label" in obj and "features" not in obj else "prediction"
    if kind == "feedback":
        return FeedbackRecord(
            prediction_id=_text(obj, "prediction_id"),  # type: ignore[arg-type]
            label=_label(obj, "label"),
            timestamp=_timestamp(obj),
            model=_text(obj, "model", optional=True),
        )
    if kind != "prediction":
        raise RecordError("type", f"must be 'prediction' or 'feedback', got {kind!r}")
    # Fields are checked in the order the SDK writes them, so the first problem is reported.
    prediction_id = _text(obj, "prediction_id")
    timestamp = _timestamp(obj)
    model = _text(obj, "model")
    version = _text(obj, "version")
    features = _features(obj)
    prediction = _label(obj, "prediction")
    score = _number(obj, "score", optional=True)
    latency = _number(obj, "latency_ms", optional=True)  # the SDK writes null when not measured
    if latency is not None and latency < 0:
        raise RecordError("latency_ms", "must not be negative")
    return PredictionRecord(
        prediction_id=prediction_id,  # type: ignore[arg-type]
        timestamp=timestamp,
        model=model,  # type: ignore[arg-type]
        version=version,  # type: ignore[arg-type]
        features=features,
        prediction=prediction,
        score=score,
        latency_ms=latency,
    )


def parse_batch(json_body: Any, *, max_records: int = MAX_BATCH_RECORDS) -> list[Record]:
    """Validate an ingestion batch ``{"records": [...]}`` (bytes, str or decoded JSON).

    All or nothing: the first invalid record raises :class:`~opsctl.errors.UsageError` naming
    its index and field (``records[3].timestamp: missing``), so a client can fix and resend.
    """
    import json

    body = json_body
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise UsageError(f"request body is not valid JSON: {error}") from error
    if not isinstance(body, dict) or "records" not in body:
        raise UsageError('request body must be an object {"records": [...]}')
    items = body["records"]
    if not isinstance(items, list):
        raise UsageError(f"records: must be an array, got {_kind_of(items)}")
    if len(items) > max_records:
        raise UsageError(f"records: at most {max_records} records per batch, got {len(items)}")
    out: list[Record] = []
    for index, item in enumerate(items):
        try:
            out.append(record_from_json(item))
        except RecordError as error:
            where = f"records[{index}]" if error.field == "record" else f"records[{index}].{error.field}"
            raise UsageError(f"{where}: {error.problem}") from error
    return out


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class WindowPolicy:
    """The ``[window]`` settings: which predictions a drift or performance check looks at."""

    mode: str = "time"  # "time": the last max_age_seconds; "count": the last max_records_in_window
    max_age_seconds: float = 3600.0
    max_records_in_window: int = 10_000
    max_kept_records: int = 20_000  # memory cap per model: above it the window is sampled
    buckets: int = 12
    max_pending_labels: int = 100_000  # labels waiting for their prediction, all models together
    pending_label_max_age_seconds: float = 86_400.0

    def __post_init__(self) -> None:
        if self.mode not in ("time", "count"):
            raise ValueError(f"mode must be 'time' or 'count', got {self.mode!r}")
        if not self.max_age_seconds > 0:
            raise ValueError("max_age_seconds must be positive")
        if self.max_records_in_window < 1:
            raise ValueError("max_records_in_window must be at least 1")
        if self.buckets < 1:
            raise ValueError("buckets must be at least 1")
        if self.max_kept_records < self.buckets + 2:
            raise ValueError(f"max_kept_records must be at least buckets + 2 = {self.buckets + 2}")
        if self.max_pending_labels < 0:
            raise ValueError("max_pending_labels must not be negative")
        if not self.pending_label_max_age_seconds > 0:
            raise ValueError("pending_label_max_age_seconds must be positive")

    @property
    def bucket_capacity(self) -> int:
        # At most buckets + 2 slices are alive at once (the partly expired oldest one and a
        # slice slightly ahead of `now` for clock skew), so this keeps the total under the cap.
        return self.max_kept_records // (self.buckets + 2)


# --------------------------------------------------------------------------- window


@dataclass
class _Slot:
    record: PredictionRecord
    seq: int
    label: Label | None = None


@dataclass
class _Bucket:
    key: int
    seen: int = 0
    slots: list[_Slot] = field(default_factory=list)


@dataclass(frozen=True)
class WindowSnapshot:
    """The current window of one model as columns; row i of every column is one prediction."""

    model: str
    prediction_ids: tuple[str, ...]
    timestamps: tuple[datetime, ...]
    versions: tuple[str, ...]
    features: tuple[Mapping[str, FeatureValue], ...]
    predictions: tuple[Label, ...]
    scores: tuple[float | None, ...]
    latency_ms: tuple[float | None, ...]
    labels: tuple[Label | None, ...]
    seen: int  # predictions the window covers (>= rows when sampled)
    inclusion_probability: float  # 1.0 when every prediction of the window is a row

    @property
    def rows(self) -> int:
        return len(self.prediction_ids)

    @property
    def sampled(self) -> bool:
        return self.inclusion_probability < 1.0

    def labelled_indices(self) -> list[int]:
        return [i for i, label in enumerate(self.labels) if label is not None]

    def feature_names(self) -> list[str]:
        """Feature names in first-seen order (records may lack some features)."""
        names: dict[str, None] = {}
        for row in self.features:
            for name in row:
                names.setdefault(name, None)
        return list(names)

    def column(self, feature: str) -> list[FeatureValue]:
        return [row.get(feature) for row in self.features]


@dataclass
class WindowStats:
    """Counters since start, for logs and /metrics."""

    predictions: int = 0
    feedback: int = 0
    labels_joined: int = 0
    duplicates: int = 0  # a prediction_id already in the window (e.g. re-read after a crash)
    late: int = 0  # older than the window when it arrived
    future: int = 0  # more than one bucket ahead of `now` (clock skew)
    labels_evicted: int = 0  # pending labels dropped by the size cap or by age
    labels_orphaned: int = 0  # labels whose prediction was sampled out or expired

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


class _ModelWindow:
    def __init__(self, model: str, policy: WindowPolicy, rng: random.Random) -> None:
        self.model = model
        self.policy = policy
        self.rng = rng
        self.buckets: OrderedDict[int, _Bucket] = OrderedDict()
        self.index: dict[str, _Slot] = {}
        self.seq = 0  # arrival number of the last prediction (count mode)

    # -- geometry
    def _span(self) -> float:
        p = self.policy
        if p.mode == "time":
            return p.max_age_seconds / p.buckets
        return math.ceil(p.max_records_in_window / p.buckets)

    def _bucket_key(self, record: PredictionRecord, seq: int) -> int:
        if self.policy.mode == "time":
            return math.floor(record.timestamp.timestamp() / self._span())
        return (seq - 1) // int(self._span())

    def _in_window(self, slot: _Slot, now: datetime) -> bool:
        if self.policy.mode == "time":
            return slot.record.timestamp > now - timedelta(seconds=self.policy.max_age_seconds)
        return slot.seq > self.seq - self.policy.max_records_in_window

    # -- updates
    def add(self, record: PredictionRecord, now: datetime, stats: WindowStats) -> _Slot | None:
        if record.prediction_id in self.index:
            stats.duplicates += 1
            return None
        p = self.policy
        if p.mode == "time":
            if record.timestamp <= now - timedelta(seconds=p.max_age_seconds):
                stats.late += 1
                return None
            if record.timestamp > now + timedelta(seconds=self._span()):
                stats.future += 1
                return None
        self.seq += 1
        slot = _Slot(record, self.seq)
        key = self._bucket_key(record, self.seq)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = _Bucket(key)
            self.buckets[key] = bucket
            if len(self.buckets) > 1 and key < next(reversed(self.buckets)):
                self.buckets = OrderedDict(sorted(self.buckets.items()))
        self.expire(now)
        if key not in self.buckets:  # expired at once (count mode never does; defensive)
            return None
        # Algorithm R within the bucket: the n-th arrival replaces a random slot with
        # probability capacity / n, so the slots are a uniform sample of the bucket.
        bucket.seen += 1
        capacity = p.bucket_capacity
        if len(bucket.slots) < capacity:
            bucket.slots.append(slot)
        else:
            j = self.rng.randrange(bucket.seen)
            if j >= capacity:
                return None
            evicted = bucket.slots[j]
            del self.index[evicted.record.prediction_id]
            bucket.slots[j] = slot
        self.index[record.prediction_id] = slot
        return slot

    def expire(self, now: datetime) -> list[_Slot]:
        """Drop buckets wholly outside the window; returns the dropped slots."""
        dropped: list[_Slot] = []
        span = self._span()
        p = self.policy
        while self.buckets:
            key, bucket = next(iter(self.buckets.items()))
            if p.mode == "time":
                bucket_end = (key + 1) * span
                outside = bucket_end <= (now.timestamp() - p.max_age_seconds)
            else:
                last_seq_of_bucket = (key + 1) * int(span)
                outside = last_seq_of_bucket <= self.seq - p.max_records_in_window
            if not outside:
                break
            del self.buckets[key]
            for slot in bucket.slots:
                self.index.pop(slot.record.prediction_id, None)
            dropped.extend(bucket.slots)
        return dropped

    def kept(self) -> int:
        return sum(len(b.slots) for b in self.buckets.values())

    # -- reading
    def snapshot(self, now: datetime, version: str | None, rng: random.Random) -> WindowSnapshot:
        # Each slot of bucket b is kept with probability kept_b / seen_b (Algorithm R). Thinning
        # every bucket to the smallest of those rates gives every prediction in the window the
        # same inclusion probability; restricting to the window's edge keeps it (a uniform
        # subset restricted to a sub-population is still uniform over it).
        live = [b for b in self.buckets.values() if b.seen]
        rate = min((len(b.slots) / b.seen for b in live), default=1.0)
        chosen: list[_Slot] = []
        seen = 0.0
        for bucket in live:
            in_window = [s for s in bucket.slots if self._in_window(s, now)]
            bucket_rate = len(bucket.slots) / bucket.seen
            seen += len(in_window) / bucket_rate
            if bucket_rate > rate:
                # keep each slot with probability rate / bucket_rate, as an exact-size draw
                # (floor plus a coin for the fraction) over the bucket's slots.
                target = len(bucket.slots) * rate / bucket_rate
                size = int(target) + (1 if rng.random() < target - int(target) else 0)
                picked = set(rng.sample(range(len(bucket.slots)), min(size, len(bucket.slots))))
                in_window = [s for i, s in enumerate(bucket.slots) if i in picked and self._in_window(s, now)]
            chosen.extend(in_window)
        if version is not None:
            chosen = [s for s in chosen if s.record.version == version]
        chosen.sort(key=lambda s: s.seq)
        recs = [s.record for s in chosen]
        return WindowSnapshot(
            model=self.model,
            prediction_ids=tuple(r.prediction_id for r in recs),
            timestamps=tuple(r.timestamp for r in recs),
            versions=tuple(r.version for r in recs),
            features=tuple(r.features for r in recs),
            predictions=tuple(r.prediction for r in recs),
            scores=tuple(r.score for r in recs),
            latency_ms=tuple(r.latency_ms for r in recs),
            labels=tuple(s.label for s in chosen),
            seen=round(seen),
            inclusion_probability=rate,
        )


class WindowSet:
    """Bounded windows for every model, with feedback joined by ``prediction_id``.

    Feedback may arrive before its prediction: it then waits in a pending map bounded by
    ``max_pending_labels`` (oldest evicted first) and ``pending_label_max_age_seconds``.
    A prediction already in the window is ignored when it comes again (``stats.duplicates``),
    which makes at-least-once ingestion harmless for every prediction still held.
    Not thread-safe: one owner (the daemon's ingestion job) feeds it and takes snapshots.
    """

    def __init__(self, policy: WindowPolicy | None = None, *, rng: random.Random | None = None) -> None:
        self.policy = policy or WindowPolicy()
        self.rng = rng if rng is not None else random.Random()
        self.stats = WindowStats()
        self._windows: dict[str, _ModelWindow] = {}
        self._pending: OrderedDict[str, FeedbackRecord] = OrderedDict()

    def models(self) -> list[str]:
        return sorted(self._windows)

    def add(self, record: Record, now: datetime) -> None:
        if isinstance(record, PredictionRecord):
            self._add_prediction(record, now)
        else:
            self._add_feedback(record)
        self._expire_pending(now)

    def add_all(self, records: Iterable[Record], now: datetime) -> None:
        for record in records:
            self.add(record, now)

    def _add_prediction(self, record: PredictionRecord, now: datetime) -> None:
        self.stats.predictions += 1
        window = self._windows.get(record.model)
        if window is None:
            window = self._windows[record.model] = _ModelWindow(record.model, self.policy, self.rng)
        slot = window.add(record, now, self.stats)
        feedback = self._pending.pop(record.prediction_id, None)
        if feedback is not None:
            if slot is None:
                self.stats.labels_orphaned += 1
            else:
                slot.label = feedback.label
                self.stats.labels_joined += 1

    def _add_feedback(self, record: FeedbackRecord) -> None:
        self.stats.feedback += 1
        windows = [self._windows[record.model]] if record.model in self._windows else self._windows.values()
        for window in windows:
            slot = window.index.get(record.prediction_id)
            if slot is not None:
                if slot.label is None:
                    self.stats.labels_joined += 1
                slot.label = record.label  # a corrected label replaces the earlier one
                return
        if self.policy.max_pending_labels == 0:
            self.stats.labels_evicted += 1
            return
        self._pending.pop(record.prediction_id, None)
        self._pending[record.prediction_id] = record
        while len(self._pending) > self.policy.max_pending_labels:
            self._pending.popitem(last=False)
            self.stats.labels_evicted += 1

    def _expire_pending(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=self.policy.pending_label_max_age_seconds)
        # Insertion order is close to time order; stop at the first label still young enough.
        while self._pending:
            first = next(iter(self._pending.values()))
            if first.timestamp > horizon:
                break
            self._pending.popitem(last=False)
            self.stats.labels_evicted += 1

    def expire(self, now: datetime) -> None:
        """Drop what has left every window (call it on a schedule when traffic stops)."""
        for window in self._windows.values():
            window.expire(now)
        self._expire_pending(now)

    def pending_labels(self) -> int:
        return len(self._pending)

    def kept(self, model: str | None = None) -> int:
        """Predictions held in memory (for one model or all): never above ``max_kept_records`` each."""
        if model is not None:
            window = self._windows.get(model)
            return window.kept() if window else 0
        return sum(w.kept() for w in self._windows.values())

    def snapshot(self, model: str, now: datetime, *, version: str | None = None) -> WindowSnapshot:
        """The model's window at ``now`` as columns (empty when the model is unknown).

        When the window holds more predictions than the memory cap, the rows are a sample in
        which every prediction of the window had the same inclusion probability
        (``inclusion_probability``); ``seen`` estimates how many predictions the window covers.
        """
        window = self._windows.get(model)
        if window is None:
            return WindowSnapshot(model, (), (), (), (), (), (), (), (), 0, 1.0)
        window.expire(now)
        return window.snapshot(now, version, self.rng)
