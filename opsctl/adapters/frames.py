"""Read CSV or Parquet files into frames for drift checks; ``compare_files`` for ``opsctl drift compare``.

Columns named in ``categorical`` are read as text in both files, so a reference CSV and a
current Parquet file agree on category values ("1" is "1" in both). A column present in both
files that is text in both is treated as categorical even if not listed; a column that is
numerical in one file and text in the other is an error, as is a pair of files with no column
in common.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from opsctl.core.drift import DriftPolicy, DriftReport, detect_drift, summarize_reference
from opsctl.errors import NotFoundError, UsageError

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_frame(path: str | Path, categorical: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame, with the ``categorical`` columns as text."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UsageError(f"{path}: unknown file type {path.suffix!r} (use .csv or .parquet)")
    if not path.is_file():
        raise NotFoundError("file", str(path))
    try:
        if kind == "csv":
            frame = pd.read_csv(path, dtype={name: "string" for name in categorical})
        else:
            frame = pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"{path}: cannot read as {kind}: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own ArrowInvalid & co for corrupt files
        if type(exc).__module__.startswith("pyarrow"):
            raise UsageError(f"{path}: cannot read as {kind}: {exc}") from exc
        raise
    for name in categorical:
        if name in frame.columns:
            frame[name] = frame[name].astype("string")
    return frame


def _is_text(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)


def align_frames(
    reference: pd.DataFrame, current: pd.DataFrame, categorical: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The two frames restricted to their common columns, and the categorical ones among them."""
    common = [name for name in reference.columns if name in current.columns]
    if not common:
        raise UsageError("the reference and current data have no column in common")
    listed = set(categorical)
    unknown = sorted(listed - set(common))
    if unknown:
        raise UsageError(f"categorical column(s) not in both files: {', '.join(map(str, unknown))}")
    kinds: list[str] = []
    for name in common:
        if name in listed:
            kinds.append(name)
            continue
        ref_text, cur_text = _is_text(reference[name]), _is_text(current[name])
        if ref_text != cur_text:
            raise UsageError(
                f"column {name!r} is {'text' if ref_text else 'numerical'} in the reference but "
                f"{'text' if cur_text else 'numerical'} in the current data; "
                "list it with --categorical or fix the data"
            )
        if ref_text:
            kinds.append(name)
    reference = reference[common].copy()
    current = current[common].copy()
    for name in kinds:
        reference[name] = reference[name].astype("string")
        current[name] = current[name].astype("string")
    return reference, current, kinds


def compare_files(
    reference_path: str | Path,
    current_path: str | Path,
    categorical: Sequence[str] = (),
    policy: DriftPolicy | None = None,
) -> DriftReport:
    """Run the drift check of a scheduled job on two files (``opsctl drift compare``)."""
    reference = read_frame(reference_path, categorical)
    current = read_frame(current_path, categorical)
    reference, current, kinds = align_frames(reference, current, categorical)
    summary = summarize_reference(reference, kinds)
    return detect_drift(summary, current, policy or DriftPolicy())
