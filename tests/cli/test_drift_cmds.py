"""``opsctl drift compare`` on files, through the real console script; ``opsctl drift MODEL`` errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.fixtures.cli import OpsctlEnv

FEATURE_KEYS = {"name", "kind", "test", "statistic", "p_value", "p_value_adjusted", "effect_size", "drifted"}


def frames(rows: int = 3000, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.lognormal(3 + shift, 0.5, rows),
        "age": rng.normal(40, 10, rows),
        "segment": rng.choice([1, 2, 3], rows, p=[0.5, 0.3, 0.2]),  # numbers, but categories: --categorical
        "country": rng.choice(["de", "fr", "it"], rows, p=[0.5, 0.3, 0.2]),
    })


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    reference, current = frames(seed=1), frames(shift=0.5, seed=2)
    out = {"ref.csv": tmp_path / "ref.csv", "cur.parquet": tmp_path / "cur.parquet", "cur.csv": tmp_path / "cur.csv"}
    reference.to_csv(out["ref.csv"], index=False)
    current.to_parquet(out["cur.parquet"], index=False)
    current.to_csv(out["cur.csv"], index=False)
    return out


def test_compare_csv_with_parquet_finds_the_shifted_column(opsctl_env: OpsctlEnv, files: dict[str, Path]) -> None:
    result = opsctl_env.run("drift", "compare", str(files["ref.csv"]), str(files["cur.parquet"]),
                            "--categorical", "segment", "-o", "json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert document["dataset_drift"] is False  # one of four features: below the default share of 0.5
    features = {f["name"]: f for f in document["features"]}
    assert set(features) == {"amount", "age", "segment", "country"}
    for feature in features.values():
        assert set(feature) >= FEATURE_KEYS
    assert features["amount"]["drifted"] is True
    assert [features[n]["drifted"] for n in ("age", "segment", "country")] == [False, False, False]
    assert (features["segment"]["kind"], features["segment"]["test"]) == ("categorical", "chi2")
    assert (features["amount"]["kind"], features["amount"]["test"]) == ("numerical", "ks")
    # The statistic is scipy's on the same data.
    reference, current = pd.read_csv(files["ref.csv"]), pd.read_parquet(files["cur.parquet"])
    expected = stats.ks_2samp(reference["age"], current["age"])
    assert features["age"]["statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert features["age"]["p_value"] == pytest.approx(expected.pvalue, rel=1e-6)


def test_compare_two_csvs_prints_a_table_and_obeys_the_config_policy(opsctl_env: OpsctlEnv,
                                                                     files: dict[str, Path]) -> None:
    table = opsctl_env.run("drift", "compare", str(files["ref.csv"]), str(files["cur.csv"]))
    assert table.code == 0, table.stderr
    assert "dataset: no drift - 1 of 4 judged features drifted" in table.stdout
    assert any(line.startswith("amount") and "DRIFT" in line for line in table.stdout.splitlines())
    # [drift] in the config is the policy the command uses: "any critical feature" makes it a dataset drift.
    opsctl_env.config.write_text(opsctl_env.config.read_text()
                                 + '\n[drift]\ndataset_rule = "any_critical"\ncritical_features = ["amount"]\n')
    strict = opsctl_env.run("drift", "compare", str(files["ref.csv"]), str(files["cur.csv"]), "-o", "json")
    assert strict.code == 0, strict.stderr
    assert strict.json()["dataset_drift"] is True


@pytest.mark.parametrize("args,code,message", [
    (["compare", "REF", "missing.csv"], 3, "not found"),
    (["compare", "REF", "notes.txt"], 2, "unknown file type '.txt'"),
    (["compare", "REF"], 2, "opsctl: drift compare: the following arguments are required: CURRENT"),
    (["compare", "REF", "CUR", "--categorical", "nope"], 2, "categorical column(s) not in both files: nope"),
], ids=["missing-file", "bad-suffix", "one-file", "unknown-categorical"])
def test_compare_errors_are_one_line_with_an_exit_code(opsctl_env: OpsctlEnv, files: dict[str, Path],
                                                       tmp_path: Path, args: list[str], code: int,
                                                       message: str) -> None:
    (tmp_path / "notes.txt").write_text("a,b\n1,2\n")
    paths = {"REF": str(files["ref.csv"]), "CUR": str(files["cur.csv"]), "missing.csv": str(tmp_path / "missing.csv"),
             "notes.txt": str(tmp_path / "notes.txt")}
    result = opsctl_env.run("drift", *[paths.get(a, a) for a in args])
    assert result.code == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_drift_of_a_model_needs_the_daemon(opsctl_env: OpsctlEnv) -> None:
    result = opsctl_env.run("drift", "fraud", "-o", "json")
    assert result.code == 6
    assert "daemon is not running" in result.stderr
    assert result.json()["error"]["type"] == "DaemonUnavailableError"
    misuse = opsctl_env.run("drift", "fraud", "extra.csv")
    assert misuse.code == 2 and "unrecognized arguments: extra.csv" in misuse.stderr
