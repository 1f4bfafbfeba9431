"""Incremental reading of the SDK's JSON-lines prediction and feedback logs.

:class:`LogTailer` reads only complete lines from where it stopped, and remembers where that
is per file as an :class:`Offset` (inode, byte offset, line number, and a fingerprint of the
first line) in an :class:`OffsetStore`. It survives

- rotation by rename (``predictions.jsonl`` -> ``predictions.jsonl.1``, new file created): the
  rest of the old inode is read from its rotated name first, then the new file from 0;
- copytruncate (the same inode shrinks below the offset, or its first line changes): it
  restarts at 0 and counts it;
- restarts: it resumes from the persisted offset.

Delivery is **at-least-once**: :meth:`LogTailer.poll` returns a batch and the offset it would
move to; :meth:`LogTailer.commit` persists that offset once the caller has applied the batch.
A crash between the two re-delivers the batch on restart, never skips it. The window
(:class:`opsctl.core.window.WindowSet`) ignores a prediction_id it already holds, so a replay
does not double-count. (Exactly-once would need the window and the offset committed in one
transaction, and the window lives in memory.)

Malformed lines (not UTF-8, not JSON, missing fields, wrong types) are counted, logged with
path and line number, and skipped; they never raise.

Usage::

    tailer = LogTailer("/var/log/model/predictions.jsonl", RegistryOffsetStore(registry), "fraud/predictions")
    batch = tailer.poll()
    windows.add_all(batch.records, clock.now())
    tailer.commit(batch)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsctl.core.window import Record, RecordError, WindowSnapshot, record_from_json

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("opsctl.ingest")

FINGERPRINT_BYTES = 128


@dataclass(frozen=True)
class Offset:
    """Where reading stopped in one file: the next byte to read is ``offset`` of ``inode``.

    ``line`` counts the lines before ``offset`` (for messages); ``fingerprint`` is a hash of the
    file's first bytes (up to the first newline, at most 128), which tells a reused inode or a
    truncated-and-refilled file from the one we were reading.
    """

    inode: int
    offset: int
    line: int = 0
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.offset < 0 or self.line < 0:
            raise ValueError("offset and line must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {"inode": self.inode, "offset": self.offset, "line": self.line, "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, obj: Any) -> Offset:
        if not isinstance(obj, dict):
            raise ValueError(f"an offset must be an object, got {type(obj).__name__}")
        inode, offset = obj.get("inode"), obj.get("offset")
        line, fingerprint = obj.get("line", 0), obj.get("fingerprint", "")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (inode, offset, line)):
            raise ValueError("inode, offset and line must be integers")
        if not isinstance(fingerprint, str):
            raise ValueError("fingerprint must be a string")
        return cls(inode=inode, offset=offset, line=line, fingerprint=fingerprint)  # type: ignore[arg-type]


class OffsetStore(Protocol):
    """Where tailers persist their offsets; ``put`` is durable when it returns."""

    def get(self, key: str) -> Offset | None: ...

    def put(self, key: str, offset: Offset) -> None: ...


class MemoryOffsetStore:
    """An in-memory store, for tests and for servers that do not need to resume."""

    def __init__(self) -> None:
        self._offsets: dict[str, Offset] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Offset | None:
        with self._lock:
            return self._offsets.get(key)

    def put(self, key: str, offset: Offset) -> None:
        with self._lock:
            self._offsets[key] = offset


@dataclass(frozen=True)
class Malformed:
    """One skipped line: where it was and why."""

    path: str
    line: int
    problem: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "problem": self.problem}


@dataclass(frozen=True)
class TailBatch:
    """Records read by one :meth:`LogTailer.poll`, and the offset to commit once applied."""

    records: list[Record]
    malformed: list[Malformed]
    offset: Offset | None
    files: tuple[str, ...]  # the paths read, in order (the rotated name first after a rotation)


@dataclass
class TailStats:
    """Counters since this tailer was created, for logs and /metrics."""

    lines: int = 0
    records: int = 0
    malformed: int = 0
    rotations: int = 0
    truncations: int = 0
    lost_rotations: int = 0  # the rotated file was gone before we finished it

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Position:
    inode: int
    offset: int
    line: int
    fingerprint: str


def _numbered_backups(path: Path) -> list[Path]:
    """``path.1``, ``path.2``, ... that exist, newest (lowest number) first."""
    prefix = path.name + "."
    numbered: list[tuple[int, Path]] = []
    try:
        entries = list(path.parent.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        suffix = entry.name[len(prefix):]
        if entry.name.startswith(prefix) and suffix.isdigit():
            numbered.append((int(suffix), entry))
    return [p for _, p in sorted(numbered)]


def _fingerprint(path: Path, inode: int | None = None) -> str | None:
    """Hash of the first line (at most FINGERPRINT_BYTES); empty while that line is incomplete.

    With ``inode``: None when ``path`` no longer holds that inode (rotated since it was stat'ed), so
    a fingerprint is never taken from the file that replaced the one being read.
    """
    try:
        with path.open("rb") as handle:
            if inode is not None and os.fstat(handle.fileno()).st_ino != inode:
                return None
            head = handle.read(FINGERPRINT_BYTES)
    except FileNotFoundError:
        return None if inode is not None else ""
    except OSError:
        return ""
    newline = head.find(b"\n")
    if newline >= 0:
        head = head[: newline + 1]
    elif len(head) < FINGERPRINT_BYTES:
        return ""  # the first line is still being written
    return hashlib.sha256(head).hexdigest()[:16]


class LogTailer:
    """Reads one JSON-lines log incrementally; see the module docstring for the guarantees.

    ``rotated`` lists where rotated files may be found, newest first (default: the existing
    ``<name>.1``, ``<name>.2``, ... next to it, as the SDK and logrotate name them); the old
    inode is recognised among them by its inode number, and the files rotated after it are
    read in order before the live file. ``parse`` turns a decoded JSON object into a record
    and raises :class:`RecordError` for an invalid one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset_store: OffsetStore,
        key: str,
        *,
        rotated: Callable[[Path], list[Path]] | None = None,
        max_bytes_per_poll: int = 4 << 20,
        max_line_bytes: int = 1 << 20,
        parse: Callable[[Any], Record] = record_from_json,
        logger: logging.Logger | None = None,
    ) -> None:
        if max_line_bytes < 1 or max_bytes_per_poll < max_line_bytes:
            raise ValueError("need 1 <= max_line_bytes <= max_bytes_per_poll")
        self.path = Path(path)
        self.store = offset_store
        self.key = key
        self._rotated = rotated or _numbered_backups
        self.max_bytes_per_poll = max_bytes_per_poll
        self.max_line_bytes = max_line_bytes
        self.parse = parse
        self.log = logger or log
        self.stats = TailStats()
        stored = offset_store.get(key)
        self._pos: _Position | None = (
            _Position(stored.inode, stored.offset, stored.line, stored.fingerprint) if stored else None
        )

    # -- public
    def poll(self) -> TailBatch:
        """Read the complete lines written since the last poll (bounded by ``max_bytes_per_poll``).

        Does not persist anything; call :meth:`commit` with the batch after applying it.
        """
        records: list[Record] = []
        malformed: list[Malformed] = []
        files: list[str] = []
        budget = self.max_bytes_per_poll
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None

        pos = self._pos
        if pos is not None and (current is None or current.st_ino != pos.inode):
            # Rotated: finish the old inode under its rotated name, then every file rotated
            # after it (newest last), then the live file from 0.
            rotated = self._rotated(self.path)  # newest first
            index = self._find_inode(rotated, pos.inode)
            if index is None:
                if current is None:
                    return self._batch(pos, records, malformed, files)
                self.stats.lost_rotations += 1
                self.log.warning(
                    "%s: rotated file (inode %d) is gone; lines after byte %d of it are lost",
                    self.path, pos.inode, pos.offset,
                )
                pos = None
            else:
                while True:
                    # The newest rotated file may still get its last line while no live file
                    # exists yet; any older one is complete.
                    final = current is not None or index > 0
                    pos, budget, at_end = self._read(rotated[index], pos, budget, records, malformed, final=final)
                    files.append(str(rotated[index]))
                    if not at_end:  # out of budget (or lost a race): continue next poll
                        return self._batch(pos, records, malformed, files)
                    index -= 1
                    while index >= 0 and not rotated[index].exists():
                        index -= 1
                    if index < 0:
                        break
                    newer = os.stat(rotated[index])
                    self.stats.rotations += 1
                    pos = _Position(newer.st_ino, 0, 0, _fingerprint(rotated[index], newer.st_ino) or "")
                    if current is not None and newer.st_ino == current.st_ino:
                        break  # rotated while we looked: the next poll finds it by inode
                if current is None:
                    return self._batch(pos, records, malformed, files)
                if pos.inode != current.st_ino:
                    self.stats.rotations += 1
                    pos = None
        if current is None:
            return self._batch(pos, records, malformed, files)
        if pos is not None and pos.inode != current.st_ino:
            return self._batch(pos, records, malformed, files)

        fingerprint = _fingerprint(self.path, current.st_ino)
        if fingerprint is None:  # rotated between the stat and now: the next poll follows it by inode
            return self._batch(pos, records, malformed, files)
        if pos is None:
            pos = _Position(current.st_ino, 0, 0, fingerprint)
        elif pos.offset > current.st_size or (pos.fingerprint and fingerprint and fingerprint != pos.fingerprint):
            self.stats.truncations += 1
            self.log.warning(
                "%s: truncated (offset %d, size %d); reading again from the start",
                self.path, pos.offset, current.st_size,
            )
            pos = _Position(current.st_ino, 0, 0, fingerprint)
        elif not pos.fingerprint:
            pos = _Position(pos.inode, pos.offset, pos.line, fingerprint)
        pos, budget, _ = self._read(self.path, pos, budget, records, malformed, final=False)
        files.append(str(self.path))
        return self._batch(pos, records, malformed, files)

    def commit(self, batch: TailBatch) -> None:
        """Persist the batch's offset (after its records have been applied)."""
        if batch.offset is not None:
            self.store.put(self.key, batch.offset)

    def rewind(self) -> None:
        """Forget uncommitted progress: the next poll starts again from the committed offset."""
        stored = self.store.get(self.key)
        self._pos = _Position(stored.inode, stored.offset, stored.line, stored.fingerprint) if stored else None

    def read(self) -> list[Record]:
        """Poll and commit at once: at-most-once if the caller dies before using the records."""
        batch = self.poll()
        self.commit(batch)
        return batch.records

    # -- internals
    def _batch(
        self, pos: _Position | None, records: list[Record], malformed: list[Malformed], files: list[str]
    ) -> TailBatch:
        self._pos = pos
        offset = Offset(pos.inode, pos.offset, pos.line, pos.fingerprint) if pos else None
        return TailBatch(records, malformed, offset, tuple(files))

    def _find_inode(self, candidates: list[Path], inode: int) -> int | None:
        for index, candidate in enumerate(candidates):
            try:
                if os.stat(candidate).st_ino == inode:
                    return index
            except FileNotFoundError:
                continue
        return None

    def _read(
        self,
        path: Path,
        pos: _Position,
        budget: int,
        records: list[Record],
        malformed: list[Malformed],
        *,
        final: bool,
    ) -> tuple[_Position, int, bool]:
        """Read complete lines of ``path`` from ``pos``; ``final``: the file will not grow again.

        Returns the new position, the budget left, and whether the end of the file was reached.
        """
        offset, line = pos.offset, pos.line
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return pos, budget, False  # rotated away between stat and open: found by inode next poll
        with handle:
            if os.fstat(handle.fileno()).st_ino != pos.inode:
                return pos, budget, False  # same race, the name now holds another file
            handle.seek(offset)
            at_end = False
            while budget > 0:
                # Read at least one line's worth, so "no newline in a full chunk" means too long.
                size = max(min(budget, self.max_bytes_per_poll), self.max_line_bytes + 1)
                chunk = handle.read(size)
                if not chunk:
                    at_end = True
                    break
                end = chunk.rfind(b"\n")
                if end < 0:
                    if len(chunk) == size:
                        # A line longer than the limit: skip to its end (or wait for its end).
                        skipped = self._skip_long_line(handle, offset)
                        if skipped is None:
                            at_end = True
                            if final:
                                line += 1
                                self._malformed(path, line, "unterminated last line of a rotated file", malformed)
                                offset = handle.seek(0, os.SEEK_END)
                            break
                        line += 1
                        self._malformed(path, line, f"longer than {self.max_line_bytes} bytes", malformed)
                        budget -= skipped - offset
                        offset = skipped
                        handle.seek(offset)
                        continue
                    at_end = True
                    if final:  # nobody will finish this line any more
                        line += 1
                        self._malformed(path, line, "unterminated last line of a rotated file", malformed)
                        offset += len(chunk)
                    break  # else: a line still being written waits for its newline
                complete = chunk[: end + 1]
                for raw in complete.split(b"\n")[:-1]:
                    line += 1
                    if len(raw) > self.max_line_bytes:
                        self._malformed(path, line, f"longer than {self.max_line_bytes} bytes", malformed)
                        continue
                    self._parse_line(path, line, raw, records, malformed)
                offset += len(complete)
                budget -= len(complete)
                handle.seek(offset)
        return _Position(pos.inode, offset, line, pos.fingerprint), budget, at_end

    def _skip_long_line(self, handle: Any, start: int) -> int | None:
        """Offset just past the newline ending the line at ``start``, or None if not written yet."""
        handle.seek(start)
        position = start
        while True:
            block = handle.read(1 << 16)
            if not block:
                return None
            newline = block.find(b"\n")
            if newline >= 0:
                return position + newline + 1
            position += len(block)

    def _parse_line(
        self, path: Path, line: int, raw: bytes, records: list[Record], malformed: list[Malformed]
    ) -> None:
        self.stats.lines += 1
        if not raw.strip():
            return  # blank lines carry nothing and are not worth a warning
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            self._malformed(path, line, "not UTF-8", malformed)
            return
        except ValueError as error:
            self._malformed(path, line, f"not JSON: {error}", malformed)
            return
        try:
            record = self.parse(obj)
        except RecordError as error:
            self._malformed(path, line, str(error), malformed)
            return
        records.append(record)
        self.stats.records += 1

    def _malformed(self, path: Path, line: int, problem: str, malformed: list[Malformed]) -> None:
        self.stats.malformed += 1
        malformed.append(Malformed(str(path), line, problem))
        self.log.warning("%s:%d: skipped malformed line: %s", path, line, problem)


# --------------------------------------------------------------------------- frames


def features_frame(snapshot: WindowSnapshot) -> pd.DataFrame:
    """The window's features as a DataFrame (one column per feature, missing values as NaN/None)."""
    import pandas as pd

    names = snapshot.feature_names()
    return pd.DataFrame(
        {name: snapshot.column(name) for name in names},
        index=pd.Index(snapshot.prediction_ids, name="prediction_id"),
    )


def outputs_frame(snapshot: WindowSnapshot) -> pd.DataFrame:
    """The window's model outputs and labels: version, prediction, score, latency_ms, label."""
    import pandas as pd

    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(list(snapshot.timestamps), utc=True),
            "version": list(snapshot.versions),
            "prediction": list(snapshot.predictions),
            "score": pd.array(snapshot.scores, dtype="Float64"),
            "latency_ms": list(snapshot.latency_ms),
            "label": list(snapshot.labels),
        },
        index=pd.Index(snapshot.prediction_ids, name="prediction_id"),
    )


@dataclass(frozen=True)
class IngestSettings:
    """``[ingest]``: where the daemon finds the SDK's prediction and feedback logs.

    Every directory in ``log_dirs`` is scanned at each ingest tick for ``*.predictions.jsonl`` and
    ``*.feedback.jsonl`` (the SDK's names; rotated ``.1``, ``.2``, ... files are followed by the
    tailer). A relative directory is taken relative to the config file's folder.
    """

    log_dirs: list[str] = field(default_factory=list)
    max_bytes_per_poll: int = 4 << 20
    max_line_bytes: int = 1 << 20
    max_batch_records: int = 10_000  # per POST /v1/ingest
    seed: int | None = None  # of the window's reservoir sampling (None: random)

    def __post_init__(self) -> None:
        if any(not d.strip() for d in self.log_dirs):
            raise ValueError("log_dirs must not contain empty paths")
        if self.max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be at least 1, got {self.max_line_bytes}")
        if self.max_bytes_per_poll < self.max_line_bytes:
            raise ValueError(f"max_bytes_per_poll must be at least max_line_bytes ({self.max_line_bytes}),"
                             f" got {self.max_bytes_per_poll}")
        if self.max_batch_records < 1:
            raise ValueError(f"max_batch_records must be at least 1, got {self.max_batch_records}")
