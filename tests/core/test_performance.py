"""Performance drift: metrics against sklearn, intervals against statsmodels and by simulation."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from opsctl.core.performance import (
    BaselineMetrics,
    PerformancePolicy,
    auc_delong,
    auc_interval,
    canonical_label,
    evaluate_performance,
    evaluate_window,
    wilson_interval,
)
from opsctl.core.window import FeedbackRecord, PredictionRecord, WindowSet

BASE = BaselineMetrics(accuracy=0.92, auc=0.95, precision=0.9, recall=0.85)


def simulate(rng: np.random.Generator, n: int, accuracy: float, positive_rate: float = 0.3) -> tuple[
    list[int], list[int], list[float]
]:
    labels = (rng.random(n) < positive_rate).astype(int)
    correct = rng.random(n) < accuracy
    predictions = np.where(correct, labels, 1 - labels)
    scores = np.clip(0.5 + 0.35 * (2 * predictions - 1) + rng.normal(0, 0.2, n), 0, 1)
    return predictions.tolist(), labels.tolist(), scores.round(2).tolist()  # rounding makes ties


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (3, 10), (10, 10), (870, 1000), (1, 2), (199, 200)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_agrees_with_statsmodels(successes: int, n: int, confidence: float) -> None:
    expected = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    assert wilson_interval(successes, n, confidence) == pytest.approx(expected, abs=1e-12)


def test_metrics_agree_with_sklearn_including_tied_scores() -> None:
    rng = np.random.default_rng(11)
    predictions, labels, scores = simulate(rng, 2000, 0.88)
    report = evaluate_performance(predictions, labels, scores, BASE)
    assert report.metric("accuracy").value == pytest.approx(accuracy_score(labels, predictions), abs=1e-12)
    assert report.metric("precision").value == pytest.approx(precision_score(labels, predictions), abs=1e-12)
    assert report.metric("recall").value == pytest.approx(recall_score(labels, predictions), abs=1e-12)
    assert len(set(scores)) < len(scores) / 10  # plenty of ties
    assert report.metric("auc").value == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_of_a_multiclass_model_is_one_vs_rest_for_the_positive_label() -> None:
    rng = random.Random(3)
    labels = [rng.choice(["cat", "dog", "eel"]) for _ in range(600)]
    scores = [rng.random() + (0.4 if y == "dog" else 0.0) for y in labels]
    predictions = ["dog" if s > 0.7 else "cat" for s in scores]
    policy = PerformancePolicy(positive_label="dog")
    report = evaluate_performance(predictions, labels, scores, BaselineMetrics(auc=0.8), policy)
    binary = [int(y == "dog") for y in labels]
    assert report.metric("auc").value == pytest.approx(roc_auc_score(binary, scores), abs=1e-12)
    assert report.metric("precision").value == pytest.approx(
        precision_score(labels, predictions, labels=["dog"], average=None)[0], abs=1e-12
    )
    assert report.metric("recall").value == pytest.approx(
        recall_score(labels, predictions, labels=["dog"], average=None)[0], abs=1e-12
    )


def test_delong_variance_matches_the_placement_definition() -> None:
    rng = np.random.default_rng(5)
    pos = np.round(rng.normal(1, 1, 40), 1)
    neg = np.round(rng.normal(0, 1, 55), 1)
    # psi(x, y) = 1 if x > y, 1/2 if equal; V10_i = mean_j psi(pos_i, neg_j), V01_j = mean_i psi(pos_i, neg_j)
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected_var = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    auc, variance = auc_delong(np.concatenate([pos, neg]).tolist(), [True] * 40 + [False] * 55)
    assert auc == pytest.approx(psi.mean(), abs=1e-12)
    assert variance == pytest.approx(expected_var, rel=1e-10)


def test_labels_match_across_json_types() -> None:
    assert {canonical_label(v) for v in (1, 1.0, True, "1")} == {"1"}
    assert {canonical_label(v) for v in (0, 0.0, False, "0")} == {"0"}
    report = evaluate_performance([True, 1, "1", 0.0] * 60, [1, "1", 1.0, False] * 60, None,
                                  BaselineMetrics(accuracy=0.9), PerformancePolicy(min_labels=100))
    assert report.metric("accuracy").value == 1.0


# --------------------------------------------------------------------------- coverage


def test_wilson_interval_covers_the_true_accuracy_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(20260101)
    true_accuracy, n, runs = 0.9, 300, 1000
    hits = rng.binomial(n, true_accuracy, size=runs)
    covered = 0
    for h in hits:
        low, high = wilson_interval(int(h), n, 0.95)
        covered += low <= true_accuracy <= high
    assert 0.93 <= covered / runs <= 0.97, covered


def test_delong_interval_covers_the_true_auc_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(20260102)
    true_auc = norm.cdf(1 / np.sqrt(2))  # binormal, unit variances, means 0 and 1
    runs, m, n = 1000, 80, 120
    covered = 0
    labels = [True] * m + [False] * n
    for _ in range(runs):
        scores = np.concatenate([rng.normal(1, 1, m), rng.normal(0, 1, n)])
        auc, variance = auc_delong(scores.tolist(), labels)
        low, high = auc_interval(auc, variance, 0.95)
        covered += low <= true_auc <= high
    assert 0.93 <= covered / runs <= 0.97, covered


# --------------------------------------------------------------------------- verdicts


def test_the_chapter_scenario_is_degraded_with_the_numbers() -> None:
    rng = np.random.default_rng(1)
    predictions, labels, scores = simulate(rng, 1000, 0.80)
    report = evaluate_performance(predictions, labels, scores, BASE)
    assert report.verdict == "degraded"
    accuracy = report.metric("accuracy")
    assert accuracy.state == "degraded"
    assert accuracy.floor == pytest.approx(0.92 * 0.95)
    assert accuracy.relative_drop == pytest.approx((0.92 - accuracy.value) / 0.92)
    assert accuracy.ci_low < accuracy.value < accuracy.ci_high < 0.92
    assert accuracy.n == 1000


def test_few_labels_is_its_own_state_even_when_the_numbers_look_terrible() -> None:
    predictions, labels = [1] * 50 + [0] * 49, [0] * 99
    report = evaluate_performance(predictions, labels, None, BASE)
    assert report.verdict == "not_enough_labels"
    assert {m.state for m in report.metrics} == {"not_enough_labels"}
    assert all(m.value is None for m in report.metrics)


def test_a_metric_without_enough_of_a_class_is_not_judged() -> None:
    # 400 labels but only 10 positives: accuracy is judged, AUC and recall are not.
    labels = [1] * 10 + [0] * 390
    predictions = [0] * 400
    scores = [0.1] * 400
    report = evaluate_performance(predictions, labels, scores, BASE)
    assert report.metric("accuracy").state == "ok"
    assert report.metric("auc").state == "not_enough_labels"
    assert report.metric("recall").state == "not_enough_labels"
    assert report.metric("precision").state == "not_enough_labels"  # nothing predicted positive
    assert report.verdict == "ok"


def test_without_a_baseline_nothing_is_called_healthy() -> None:
    rng = np.random.default_rng(2)
    predictions, labels, scores = simulate(rng, 500, 0.9)
    report = evaluate_performance(predictions, labels, scores, BaselineMetrics())
    assert report.verdict == "no_baseline"
    assert report.metric("accuracy").value is not None  # the numbers are still there


def test_only_scored_rows_count_for_auc() -> None:
    rng = np.random.default_rng(4)
    predictions, labels, scores = simulate(rng, 600, 0.9)
    partial = [s if i % 3 else None for i, s in enumerate(scores)]
    report = evaluate_performance(predictions, labels, partial, BASE)
    kept = [i for i in range(600) if i % 3]
    auc = report.metric("auc")
    assert auc.n == len(kept)
    assert auc.value == pytest.approx(roc_auc_score([labels[i] for i in kept], [scores[i] for i in kept]), abs=1e-12)


def test_false_alarms_are_rare_and_a_real_drop_is_caught() -> None:
    rng = np.random.default_rng(77)
    policy = PerformancePolicy(metrics=["accuracy"])
    baseline = BaselineMetrics(accuracy=0.92)
    runs = 300
    false_alarms = sum(
        evaluate_performance(*simulate(rng, 1000, 0.92)[:2], None, baseline, policy).verdict == "degraded"
        for _ in range(runs)
    )
    detected = sum(
        evaluate_performance(*simulate(rng, 1000, 0.83)[:2], None, baseline, policy).verdict == "degraded"
        for _ in range(runs)
    )
    assert false_alarms / runs <= 0.01
    assert detected / runs >= 0.95


def test_a_drop_must_be_significant_by_default_not_a_point_estimate() -> None:
    # 200 labels at 86 % accuracy: below the 87.4 % floor, but the interval still reaches above it
    predictions, labels = [1] * 172 + [0] * 28, [1] * 200
    baseline = BaselineMetrics(accuracy=0.92)
    chapter = PerformancePolicy(metrics=["accuracy"], require_significant_drop=False)
    assert evaluate_performance(predictions, labels, None, baseline, chapter).verdict == "degraded"
    strict = PerformancePolicy(metrics=["accuracy"])
    assert evaluate_performance(predictions, labels, None, baseline, strict).verdict == "ok"
    worse = [1] * 150 + [0] * 50
    assert evaluate_performance(worse, labels, None, baseline, strict).verdict == "degraded"


def test_the_issue_false_alarm_recall_from_39_positives_is_no_alarm() -> None:
    # recall 0.500 against a 0.584 floor from 39 positives: its own interval contains the baseline.
    labels = [1] * 39 + [0] * 300
    predictions = [1] * 20 + [0] * 19 + [0] * 300
    report = evaluate_performance(predictions, labels, None, BaselineMetrics(accuracy=0.95, recall=0.615),
                                  PerformancePolicy(metrics=["accuracy", "recall"], min_class_labels=30))
    assert report.metric("recall").state == "ok" and report.verdict == "ok"


def test_a_version_at_its_baseline_alarms_within_alpha_over_500_checks_of_50_to_500_labels() -> None:
    rng = np.random.default_rng(2026)
    big = simulate(rng, 400_000, 0.88)
    truth = evaluate_performance(*big, BaselineMetrics(accuracy=0.5), PerformancePolicy(min_labels=10))
    baseline = BaselineMetrics(**{m.name: m.value for m in truth.metrics})
    policy = PerformancePolicy(min_labels=50, min_class_labels=10)
    alarms = checked = 0
    for _ in range(500):
        report = evaluate_performance(*simulate(rng, int(rng.integers(50, 501)), 0.88), baseline, policy)
        alarms += report.verdict == "degraded"
        checked += report.verdict in ("ok", "degraded")
    assert checked >= 450
    assert alarms / 500 <= 1 - policy.confidence


def test_severity_follows_the_size_and_the_certainty_of_the_drop() -> None:
    from opsctl.core.performance import severity_of

    baseline = BaselineMetrics(accuracy=0.92)
    policy = PerformancePolicy(metrics=["accuracy"])
    big = evaluate_performance([1] * 1600 + [0] * 400, [1] * 2000, None, baseline, policy)  # 0.80, sure
    modest = evaluate_performance([1] * 1700 + [0] * 300, [1] * 2000, None, baseline, policy)  # 0.85
    unsure = evaluate_performance([1] * 78 + [0] * 22, [1] * 100, None, baseline,
                                  PerformancePolicy(metrics=["accuracy"], min_labels=50))  # 0.78 on 100
    assert big.verdict == modest.verdict == unsure.verdict == "degraded"
    assert severity_of([m.to_json() for m in big.metrics]) == "critical"
    assert severity_of([m.to_json() for m in modest.metrics]) == "warning"
    assert severity_of([m.to_json() for m in unsure.metrics]) == "warning"
    ok = evaluate_performance([1] * 1840 + [0] * 160, [1] * 2000, None, baseline, policy)
    assert severity_of([m.to_json() for m in ok.metrics]) is None


def test_improvement_is_ok_with_a_negative_drop() -> None:
    report = evaluate_performance([1] * 300, [1] * 300, None, BaselineMetrics(accuracy=0.9),
                                  PerformancePolicy(metrics=["accuracy"]))
    assert report.verdict == "ok" and report.metric("accuracy").relative_drop < 0


def test_report_to_json_is_plain_json() -> None:
    rng = np.random.default_rng(8)
    report = evaluate_performance(*simulate(rng, 400, 0.9), BASE)
    data = json.loads(json.dumps(report.to_json()))
    assert data["verdict"] == report.verdict
    assert data["ci_methods"] == {
        "accuracy": "wilson", "precision": "wilson", "recall": "wilson", "auc": "delong-logit",
    }
    assert [m["name"] for m in data["metrics"]] == ["accuracy", "auc", "precision", "recall"]
    assert set(data["metrics"][0]) >= {"state", "value", "ci_low", "ci_high", "n", "baseline", "relative_drop", "floor"}


def test_evaluate_window_uses_the_labelled_rows_of_a_snapshot() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    windows = WindowSet(rng=random.Random(0))
    rng = np.random.default_rng(9)
    predictions, labels, scores = simulate(rng, 400, 0.9)
    for i, (p, s) in enumerate(zip(predictions, scores, strict=True)):
        windows.add(PredictionRecord(f"p{i}", t0, "m", "v1", {}, p, s, 1.0), t0)
    for i, y in enumerate(labels[:300]):  # the last 100 are never labelled
        windows.add(FeedbackRecord(f"p{i}", y, t0), t0)
    report = evaluate_window(windows.snapshot("m", t0), BASE)
    assert report.labelled == 300
    assert report.metric("accuracy").value == pytest.approx(accuracy_score(labels[:300], predictions[:300]))


@pytest.mark.parametrize(
    "kwargs",
    [{"min_labels": 0}, {"min_class_labels": 1}, {"max_relative_drop": 5}, {"max_relative_drop": 0},
     {"confidence": 95}, {"metrics": ["f1"]}, {"metrics": []}],
)
def test_impossible_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PerformancePolicy(**kwargs)  # type: ignore[arg-type]


def test_baseline_from_registry_metrics() -> None:
    assert BaselineMetrics.from_mapping({"accuracy": 0.9, "loss": 0.3, "auc": 1}) == BaselineMetrics(0.9, 1.0)
    with pytest.raises(ValueError):
        BaselineMetrics.from_mapping({"accuracy": "high"})
    with pytest.raises(ValueError):
        BaselineMetrics(accuracy=92.0)
