"""The doctor's diagnosis on plain facts: each cause named, each fix said, unknown never ok."""

from __future__ import annotations

from opsctl.core.doctor import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_WARN,
    Finding,
    FreshnessFacts,
    LogDirFacts,
    QueryFacts,
    SelectorFacts,
    Status,
    diagnose_clock_skew,
    diagnose_disk,
    diagnose_freshness,
    diagnose_log_dir,
    diagnose_query,
    diagnose_staleness_setting,
    exit_code,
    has_extra_matchers,
    vector_selectors,
)

LABELS = {"model_label": "model", "version_label": "model_version"}
SCOPE = 'model="m",model_version="v1"'
REQUESTS = f"model_predictions_total{{{SCOPE}}}"
ERRORS = f'model_predictions_total{{status="error",{SCOPE}}}'


def query(*selectors: SelectorFacts, returned: bool = False, **kw: object) -> QueryFacts:
    return QueryFacts("error_rate", "m", "v1", returned, selectors=selectors, **kw)  # type: ignore[arg-type]


def present(text: str = REQUESTS, **kw: object) -> SelectorFacts:
    base = {"extra_matchers": False, "exists": True, "label_names": ("__name__", "job", "model", "model_version"),
            "metric_has_version": True, "selector_has_version": True, "versions_present": ("v1",)}
    return SelectorFacts(text, "model_predictions_total", **{**base, **kw})  # type: ignore[arg-type]


def test_a_query_that_answers_is_ok_and_nan_is_said() -> None:
    assert diagnose_query(query(returned=True, value=0.02), **LABELS).status is Status.OK
    nan = diagnose_query(query(returned=True, value=None), **LABELS)
    assert nan.status is Status.OK and "NaN" in nan.summary


def test_a_rejected_query_names_the_error() -> None:
    finding = diagnose_query(query(error="parse error: unexpected }"), **LABELS)
    assert finding.status is Status.FAIL and "parse error" in finding.summary


def test_missing_metric_names_similar_ones() -> None:
    facts = SelectorFacts(REQUESTS, "model_predictions_total", False, False,
                          similar_metrics=("predictions_total",))
    finding = diagnose_query(query(facts), **LABELS)
    assert finding.status is Status.FAIL
    assert finding.summary == ("no series: metric model_predictions_total does not exist in Prometheus; "
                               "similar names Prometheus has: predictions_total")


def test_other_label_names_are_listed() -> None:
    facts = present(label_names=("__name__", "instance", "rev", "svc"))
    finding = diagnose_query(query(facts), **LABELS)
    assert "has no 'model' or 'model_version' label. Labels present: instance, rev, svc" in finding.summary
    only_version = diagnose_query(query(present(label_names=("model", "rev"))), **LABELS)
    assert "has no 'model_version' label" in only_version.summary


def test_other_version_strings_are_listed() -> None:
    facts = present(metric_has_version=False, selector_has_version=False, versions_present=("1.0.0", "1.1.0"))
    finding = diagnose_query(query(facts), **LABELS)
    assert "versions it has for this model: 1.0.0, 1.1.0" in finding.summary


def test_uninitialised_error_counter_gets_the_or_times_zero_idiom() -> None:
    errors = present(ERRORS, extra_matchers=True, selector_has_version=False)
    finding = diagnose_query(query(errors, present()), **LABELS)
    assert finding.status is Status.FAIL
    assert f"{ERRORS} has no series for this version while model_predictions_total does" in finding.summary
    assert "`or ... * 0`" in finding.fix


def test_everything_present_but_no_answer_blames_the_expression() -> None:
    finding = diagnose_query(query(present()), **LABELS)
    assert finding.status is Status.FAIL and "the expression itself drops them" in finding.summary


def test_selectors_and_extra_matchers() -> None:
    promql = f"sum by (model) (rate({ERRORS}[5m])) or avg_over_time(up[5m]) * on (instance) {REQUESTS}"
    assert vector_selectors(promql) == (("model_predictions_total", ERRORS), ("up", "up"),
                                        ("model_predictions_total", REQUESTS))
    assert has_extra_matchers(ERRORS, SCOPE) and not has_extra_matchers(REQUESTS, SCOPE)
    assert vector_selectors('x{a="}{["}[1m]') == (("x", 'x{a="}{["}'),)


def test_staleness_must_cover_two_scrapes() -> None:
    assert diagnose_staleness_setting(60, [15, 30]).status is Status.OK
    short = diagnose_staleness_setting(50, [15, 30])
    assert short.status is Status.FAIL and "at least 60" in short.fix
    assert diagnose_staleness_setting(60, []).status is Status.UNKNOWN


def test_freshness() -> None:
    fresh = FreshnessFacts("m", "v1", True, True, 60, 15)
    assert diagnose_freshness(fresh).status is Status.OK
    stale = FreshnessFacts("m", "v1", True, False, 60, 15, 95.4, ("10.0.0.1:8000: connection refused",))
    finding = diagnose_freshness(stale)
    assert finding.status is Status.FAIL
    assert finding.summary == ("stale: no new samples in the last 60s (scrape interval 15s); last sample 95s ago; "
                               "targets down: 10.0.0.1:8000: connection refused")
    assert diagnose_freshness(FreshnessFacts("m", "v1", False, False, 60, 15)).status is Status.UNKNOWN


def test_clock_skew() -> None:
    assert diagnose_clock_skew(0.2, 0.01, 60).status is Status.OK
    behind = diagnose_clock_skew(5.0, 0.01, 60)
    assert behind.status is Status.WARN and "5.00s behind Prometheus" in behind.summary
    assert diagnose_clock_skew(-40.0, 0.01, 60).status is Status.FAIL
    assert diagnose_clock_skew(3.0, 4.0, 60).status is Status.OK  # within the round trip: cannot tell
    assert diagnose_clock_skew(None, 0.0, 60).status is Status.UNKNOWN


def test_log_dirs_and_disk() -> None:
    assert diagnose_log_dir(LogDirFacts("/x", False, False), 3600).status is Status.FAIL
    assert diagnose_log_dir(LogDirFacts("/x", True, False), 3600).status is Status.FAIL
    assert diagnose_log_dir(LogDirFacts("/x", True, True), 3600).status is Status.WARN
    assert diagnose_log_dir(LogDirFacts("/x", True, True, 7200.0, 2), 3600).status is Status.WARN
    assert diagnose_log_dir(LogDirFacts("/x", True, True, 12.0, 2), 3600).status is Status.OK
    gib = 2**30
    assert diagnose_disk("/s", 100 * gib, 200 * gib).status is Status.OK
    assert diagnose_disk("/s", gib, 5 * gib).status is Status.WARN
    assert diagnose_disk("/s", 100 * 2**20, 500 * gib).status is Status.FAIL
    assert diagnose_disk("/s", None, None).status is Status.UNKNOWN


def test_exit_codes_follow_opsctl_health() -> None:
    def f(status: Status) -> Finding:
        return Finding("c", status, "")

    assert exit_code([f(Status.OK)]) == EXIT_OK
    assert exit_code([f(Status.OK), f(Status.WARN)]) == EXIT_WARN
    assert exit_code([f(Status.WARN), f(Status.UNKNOWN)]) == EXIT_UNKNOWN
    assert exit_code([f(Status.UNKNOWN), f(Status.FAIL), f(Status.WARN)]) == EXIT_FAIL
