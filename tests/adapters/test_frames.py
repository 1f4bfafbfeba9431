"""compare_files on real CSV and Parquet files."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsctl.adapters.frames import compare_files, read_frame
from opsctl.core.drift import DriftPolicy
from opsctl.errors import NotFoundError, UsageError

POLICY = DriftPolicy(threads=1)


def _frames(shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(12)
    ref = pd.DataFrame({"amount": rng.normal(size=2000), "plan": rng.choice(np.array(["a", "b"]), 2000),
                        "region": rng.integers(1, 4, 2000)})
    cur = pd.DataFrame({"amount": rng.normal(shift, size=1500), "plan": rng.choice(np.array(["a", "b"]), 1500),
                        "region": rng.integers(1, 4, 1500), "extra": 1.0})
    return ref, cur


def test_csv_against_parquet(tmp_path: Path) -> None:
    ref, cur = _frames(shift=0.5)
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet")
    report = compare_files(tmp_path / "ref.csv", tmp_path / "cur.parquet", ["region"], POLICY)
    by_name = {f.name: f for f in report.features}
    assert set(by_name) == {"amount", "plan", "region"}  # "extra" is only in one file
    assert by_name["amount"].drifted is True
    assert by_name["plan"].kind == "categorical"  # text in both files
    assert by_name["region"].kind == "categorical" and by_name["region"].unseen_share == 0.0
    assert by_name["region"].drifted is False and by_name["plan"].drifted is False


def test_errors_name_the_problem(tmp_path: Path) -> None:
    ref, cur = _frames()
    ref.to_csv(tmp_path / "ref.csv", index=False)
    with pytest.raises(NotFoundError, match=r"nope\.csv"):
        compare_files(tmp_path / "ref.csv", tmp_path / "nope.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UsageError, match="unknown file type"):
        read_frame(tmp_path / "x.json")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UsageError, match="cannot read as parquet"):
        read_frame(tmp_path / "broken.parquet")
    pd.DataFrame({"other": [1, 2]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(UsageError, match="no column in common"):
        compare_files(tmp_path / "ref.csv", tmp_path / "other.csv")
    cur.assign(amount="high").to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(UsageError, match="'amount' is numerical in the reference but text"):
        compare_files(tmp_path / "ref.csv", tmp_path / "text.csv")
    with pytest.raises(UsageError, match="not in both files: missing"):
        compare_files(tmp_path / "ref.csv", tmp_path / "ref.csv", ["missing"])
