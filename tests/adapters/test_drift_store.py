"""drift_results rows and the reference-summary cache, on a real registry file and artifact store."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsctl.adapters.artifacts import ArtifactStore
from opsctl.adapters.drift_store import DriftResult, DriftStore, SummaryCache, drift_report_from_json
from opsctl.adapters.registry import Registry
from opsctl.core.drift import DriftPolicy, detect_drift, render_markdown, summarize_reference
from opsctl.errors import IntegrityError, UsageError

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def registry(make_registry) -> Registry:  # type: ignore[no-untyped-def]
    return make_registry()  # SQLite and PostgreSQL (tests/fixtures/postgres.py)


def result(version: str, verdict: str, minutes: int, kind: str = "drift") -> DriftResult:
    return DriftResult(T0 + timedelta(minutes=minutes), "fraud", version, kind, verdict,
                       {"role": "production", "report": None, "n": minutes})


def test_latest_is_the_newest_row_per_version_and_history_is_newest_first(registry: Registry) -> None:
    store = DriftStore()
    for r in [result("v1", "no_drift", 0), result("v2", "drift", 1), result("v1", "drift", 2),
              result("v1", "ok", 3, kind="performance")]:
        store.record(registry, r)
    latest = store.latest(registry, "fraud", "drift")
    assert [(r.version, r.verdict, r.document["n"]) for r in latest] == [("v1", "drift", 2), ("v2", "drift", 1)]
    assert [r.verdict for r in store.latest(registry, "fraud", "drift", version="v2")] == ["drift"]
    assert [r.document["n"] for r in store.history(registry, "fraud", "drift", limit=2)] == [2, 1]
    assert [r.verdict for r in store.latest(registry, "fraud", "performance")] == ["ok"]
    assert store.latest(registry, "other", "drift") == []
    row = latest[0].to_json()
    assert (row["at"], row["kind"], row["role"]) == ("2026-03-01T00:02:00Z", "drift", "production")
    with pytest.raises(UsageError):
        store.history(registry, "fraud", "drift", limit=0)
    with pytest.raises(ValueError):
        result("v1", "x", 0, kind="latency")


def test_the_newest_result_of_every_model_version_comes_in_one_read(registry: Registry) -> None:
    store = DriftStore()
    other = DriftResult(T0, "other", "v1", "drift", "no_drift", {"role": "canary", "report": None, "n": 9})
    for r in [result("v1", "no_drift", 0), result("v2", "drift", 1), result("v1", "drift", 2),
              result("v1", "ok", 3, kind="performance"), other]:
        store.record(registry, r)
    newest = store.latest_everywhere(registry, "drift")
    assert {key: (r.verdict, r.document["n"]) for key, r in newest.items()} == {
        ("fraud", "v1"): ("drift", 2), ("fraud", "v2"): ("drift", 1), ("other", "v1"): ("no_drift", 9)}
    assert {key: r.verdict for key, r in store.latest_everywhere(registry, "performance").items()} == {
        ("fraud", "v1"): "ok"}


def test_housekeeping_prunes_old_rows(registry: Registry) -> None:
    store = DriftStore()
    store.record(registry, result("v1", "drift", 0))
    store.record(registry, result("v1", "no_drift", 60))
    with registry.write() as tx:
        tx.prune(before=T0 + timedelta(minutes=30))
    assert [r.verdict for r in store.history(registry, "fraud", "drift")] == ["no_drift"]


def test_a_report_survives_the_round_trip_through_json(registry: Registry) -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 500), "c": rng.choice(["x", "y"], 500)})
    current = pd.DataFrame({"a": rng.normal(0.5, 1, 400), "c": rng.choice(["x", "y", "z"], 400)})
    report = detect_drift(summarize_reference(reference, ["c"]), current, DriftPolicy(correction="bonferroni"))
    store = DriftStore()
    store.record(registry, DriftResult(T0, "fraud", "v1", "drift", "drift", {"report": report.to_json()}))
    (stored,) = store.latest(registry, "fraud", "drift")
    rebuilt = drift_report_from_json(stored.document["report"])
    assert render_markdown(rebuilt) == render_markdown(report)
    assert rebuilt.policy == report.policy
    with pytest.raises(IntegrityError):
        drift_report_from_json({"features": []})


def reference_csv(root: Path) -> Path:
    rng = np.random.default_rng(1)
    path = root / "reference.csv"
    pd.DataFrame({"amount": rng.normal(10, 2, 300), "country": rng.choice(["de", "fr"], 300),
                  "predicted_class": rng.integers(0, 2, 300)}).to_csv(path, index=False)
    return path


def test_a_summary_is_built_once_then_loaded_and_rebuilt_when_its_file_is_damaged(tmp_path: Path) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts")
    stored = artifacts.put(reference_csv(tmp_path))
    cache = SummaryCache(tmp_path / "summaries", artifacts)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(stored.name, stored.sha256)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.built == 1 and len({id(r) for r in results}) == 1
    summary = results[0]
    assert [c.name for c in summary.numerical] == ["amount"]
    # Text columns are categories, and so is the predicted class even though it is written as 0/1.
    assert [c.name for c in summary.categorical] == ["country", "predicted_class"]
    path = cache.path_for(stored.sha256, 10)
    assert path.is_file()

    fresh = SummaryCache(tmp_path / "summaries", artifacts)  # a restarted daemon
    assert fresh.get(stored.name, stored.sha256).columns == summary.columns
    assert fresh.built == 0
    path.write_bytes(b"not an npz")
    damaged = SummaryCache(tmp_path / "summaries", artifacts)
    assert damaged.get(stored.name, stored.sha256).columns == summary.columns
    assert damaged.built == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary files left


def test_a_tampered_reference_is_refused(tmp_path: Path) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts")
    stored = artifacts.put(reference_csv(tmp_path))
    target = artifacts.root / stored.name
    os.chmod(target, 0o640)
    target.write_text("amount\n1\n")
    with pytest.raises(IntegrityError, match="failed verification"):
        SummaryCache(tmp_path / "summaries", artifacts).get(stored.name, stored.sha256)
    with pytest.raises(IntegrityError, match="not a hex digest"):
        SummaryCache(tmp_path / "summaries", artifacts).get(stored.name, "../../etc/passwd")
