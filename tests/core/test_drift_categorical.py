"""Categorical drift agrees with scipy on a table built independently from the raw values."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from opsctl.core.drift import DriftPolicy, detect_drift, summarize_reference


def _independent_table(ref: pd.Series, cur: pd.Series) -> np.ndarray:
    """2 x K counts with unseen and missing buckets, built the slow obvious way."""
    known = set(ref.dropna())

    def bucket(v: object) -> str:
        if pd.isna(v):
            return "__missing__"
        return str(v) if v in known else "__unseen__"

    labels = pd.concat(
        [pd.DataFrame({"side": 0, "b": [bucket(v) for v in ref]}),
         pd.DataFrame({"side": 1, "b": [bucket(v) for v in cur]})]
    )
    return pd.crosstab(labels["side"], labels["b"]).to_numpy()


def _cases() -> list[tuple[pd.Series, pd.Series]]:
    rng = np.random.default_rng(21)
    cats = np.array(["a", "b", "c"])
    return [
        (pd.Series(rng.choice(cats, 1000, p=[0.5, 0.3, 0.2])), pd.Series(rng.choice(cats, 1000, p=[0.3, 0.4, 0.3]))),
        (pd.Series(rng.choice(cats, 500)), pd.Series(rng.choice(np.array(["a", "b", "c", "d", "e"]), 700))),
        (pd.Series(["x"] * 300 + [None] * 20), pd.Series(["x"] * 200 + [None] * 90)),  # two buckets: Yates
        (pd.Series(rng.choice(cats, 400)), pd.Series(rng.choice(cats, 400))),
        (pd.Series(rng.integers(0, 4, 600)), pd.Series(rng.integers(0, 6, 600))),  # int categories
    ]


@pytest.mark.parametrize("case", range(5))
def test_chi2_and_js_match_scipy(case: int) -> None:
    ref, cur = _cases()[case]
    summary = summarize_reference(pd.DataFrame({"f": ref}), categorical=["f"])
    feature = detect_drift(summary, pd.DataFrame({"f": cur}), DriftPolicy()).features[0]
    table = _independent_table(ref, cur)
    expected = stats.chi2_contingency(table)
    assert feature.test == "chi2"
    assert feature.statistic == expected.statistic
    assert feature.p_value == expected.pvalue
    shares = table / table.sum(axis=1, keepdims=True)
    assert feature.effect_size == pytest.approx(distance.jensenshannon(shares[0], shares[1], base=2), abs=1e-12)
    assert 0.0 <= feature.effect_size <= 1.0


def test_single_category_on_both_sides_is_no_drift() -> None:
    summary = summarize_reference(pd.DataFrame({"f": ["x"] * 200}), categorical=["f"])
    feature = detect_drift(summary, pd.DataFrame({"f": ["x"] * 150}), DriftPolicy()).features[0]
    assert (feature.statistic, feature.p_value, feature.effect_size) == (0.0, 1.0, 0.0)
    assert feature.drifted is False


def test_chapter_category_mix_shift_is_detected() -> None:
    rng = np.random.default_rng(2024)
    cats = np.array(["A", "B", "C"])
    ref = pd.DataFrame({"segment": rng.choice(cats, 1000, p=[0.5, 0.3, 0.2])})
    cur = pd.DataFrame({"segment": rng.choice(cats, 1000, p=[0.3, 0.4, 0.3])})
    feature = detect_drift(summarize_reference(ref, ["segment"]), cur, DriftPolicy()).features[0]
    assert feature.drifted is True and feature.reason == "distribution"
    assert feature.effect_size > 0.1


def test_unseen_categories_are_a_signal_of_their_own() -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"country": rng.choice(np.array(["de", "fr", "it"]), 5000)})
    cur_values = rng.choice(np.array(["de", "fr", "it"]), 5000).astype(object)
    cur_values[:400] = "xx"  # 8 % of the window is a country the model never saw
    report = detect_drift(summarize_reference(ref, ["country"]), pd.DataFrame({"country": cur_values}),
                          DriftPolicy(js_threshold=0.9))  # the JS floor alone would not fire
    feature = report.features[0]
    assert feature.unseen_share == pytest.approx(0.08)
    assert feature.drifted is True and feature.reason == "unseen_categories"
