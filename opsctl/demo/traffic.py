"""The demo's traffic generator: steady predictions per model, ground truth later.

::

    python -m opsctl.demo.traffic --target fraud-detector=http://127.0.0.1:8101 \\
        --target churn-predictor=http://127.0.0.1:8102 --rate 5 --label-delay 10

For each target it sends ``--rate`` requests per second to ``POST /predict``, each with
a user id (``id``, drawn from ``--users`` users, so the stable router keeps a user on one
version) and a unique ``prediction_id``. Inputs are live rows from
:mod:`opsctl.demo.models`, so the generator knows each row's true label; it posts it
to ``POST /feedback`` ``--label-delay`` seconds after the prediction was answered, for
a ``--label-fraction`` of predictions (real labels are late and incomplete). Requests
run concurrently, so a slow server (latency fault) does not lower the offered rate;
at most ``max_in_flight`` requests per model are outstanding, the rest are skipped
and counted. It runs until ``--duration`` or SIGINT/SIGTERM, then prints one JSON line
of counts per model. The generator itself never alters inputs or labels: the faults
live in the servers (see :mod:`opsctl.demo.faults`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Target:
    model: str
    url: str

    @classmethod
    def parse(cls, text: str) -> Target:
        model, sep, url = text.partition("=")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise ValueError(f"--target {text!r}: expected MODEL=http://HOST:PORT")
        return cls(model, url.rstrip("/"))


@dataclass
class TrafficStats:
    sent: int = 0
    answered: int = 0
    failed: int = 0
    skipped: int = 0
    labels_sent: int = 0
    labels_failed: int = 0
    labels_pending: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _PendingLabel:
    due: float
    prediction_id: str
    label: int


class TrafficGenerator:
    """Drives predictions and delayed feedback at a set of model servers."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        rate_per_second: float = 5.0,
        label_delay_seconds: float = 10.0,
        label_fraction: float = 1.0,
        users: int = 1_000,
        seed: int = 0,
        max_in_flight: int = 64,
        client: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_second <= 0 or label_delay_seconds < 0 or not 0.0 <= label_fraction <= 1.0 or users <= 0:
            raise ValueError("rate must be > 0, label delay >= 0, label fraction within [0, 1], users > 0")
        if len({t.model for t in targets}) != len(targets):
            raise ValueError("one target per model")
        self.targets = list(targets)
        self.rate = rate_per_second
        self.label_delay = label_delay_seconds
        self.label_fraction = label_fraction
        self.users = users
        self.seed = seed
        self.max_in_flight = max_in_flight
        self._client = client
        self._monotonic = monotonic
        self.stats = {t.model: TrafficStats() for t in targets}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, duration_seconds: float | None = None) -> dict[str, TrafficStats]:
        """Send traffic until ``duration_seconds`` pass or :meth:`stop` is called."""
        client = self._client or httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=2.0))
        try:
            # Load the models' data (pandas, sklearn) before the clock starts, off the event loop.
            streams = [_LiveRows(t.model, self.seed * 1_000 + i) for i, t in enumerate(self.targets)]
            for stream in streams:
                await asyncio.to_thread(stream.refill)
            tasks = [
                asyncio.create_task(self._drive(client, target, stream))
                for target, stream in zip(self.targets, streams, strict=True)
            ]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), duration_seconds)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            if self._client is None:
                await client.aclose()
        return self.stats

    async def _drive(self, client: httpx.AsyncClient, target: Target, rows: _LiveRows) -> None:
        stats = self.stats[target.model]
        rng = random.Random(f"{self.seed}:{target.model}")
        pending: collections.deque[_PendingLabel] = collections.deque()
        in_flight: set[asyncio.Task[None]] = set()
        labeller = asyncio.create_task(self._send_labels(client, target, pending, stats))
        interval = 1.0 / self.rate
        next_at = self._monotonic()
        number = 0
        try:
            while True:
                if rows.exhausted:
                    await asyncio.to_thread(rows.refill)
                features, label = rows.next()
                number += 1
                if len(in_flight) >= self.max_in_flight:
                    stats.skipped += 1
                else:
                    body = {
                        "id": f"user-{rng.randrange(self.users)}",
                        "prediction_id": f"{target.model}-{self.seed}-{number}",
                        "features": features,
                    }
                    wants_label = rng.random() < self.label_fraction
                    task = asyncio.create_task(self._predict(client, target, body, label, wants_label, pending, stats))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                next_at += interval
                now = self._monotonic()
                if next_at < now - 1.0:  # fell behind (a stalled loop): resume the rate, no burst
                    next_at = now
                await asyncio.sleep(max(0.0, next_at - now))
        finally:
            for task in [*in_flight, labeller]:
                task.cancel()
            await asyncio.gather(labeller, *in_flight, return_exceptions=True)
            stats.labels_pending = len(pending)

    async def _predict(
        self,
        client: httpx.AsyncClient,
        target: Target,
        body: dict[str, Any],
        label: int,
        wants_label: bool,
        pending: collections.deque[_PendingLabel],
        stats: TrafficStats,
    ) -> None:
        stats.sent += 1
        try:
            response = await client.post(f"{target.url}/predict", json=body)
        except httpx.HTTPError:
            stats.failed += 1
            return
        if response.status_code != 200:
            stats.failed += 1
            return
        stats.answered += 1
        if wants_label:
            prediction_id = response.json()["prediction_id"]
            # Answers arrive out of order under latency faults; insertion keeps `pending` sorted by due time.
            item = _PendingLabel(self._monotonic() + self.label_delay, prediction_id, label)
            if pending and pending[-1].due > item.due:
                index = next(i for i, p in enumerate(pending) if p.due > item.due)
                pending.insert(index, item)
            else:
                pending.append(item)

    async def _send_labels(
        self,
        client: httpx.AsyncClient,
        target: Target,
        pending: collections.deque[_PendingLabel],
        stats: TrafficStats,
    ) -> None:
        async def send(item: _PendingLabel) -> None:
            try:
                response = await client.post(
                    f"{target.url}/feedback", json={"prediction_id": item.prediction_id, "label": item.label}
                )
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                stats.labels_sent += 1
            else:
                stats.labels_failed += 1

        while True:
            now = self._monotonic()
            due: list[_PendingLabel] = []
            while pending and pending[0].due <= now and len(due) < self.max_in_flight:
                due.append(pending.popleft())
            # Concurrently, as predictions are sent: one round trip at a time caps labels at 1/latency
            # per second, so on a loaded host they fell behind the predictions and arrived ever later.
            sending = [asyncio.ensure_future(send(item)) for item in due]
            try:
                await asyncio.gather(*sending)
            except asyncio.CancelledError:
                # Stopped mid-batch: what did not go out is still pending (the stats count it there).
                pending.extendleft(item for item, task in reversed(list(zip(due, sending, strict=True)))
                                   if not task.done() or task.cancelled())
                raise
            wait = pending[0].due - self._monotonic() if pending else 0.05
            await asyncio.sleep(min(max(wait, 0.005), 0.05))


class _LiveRows:
    """An endless stream of (features, true label) live rows for one model."""

    _CHUNK = 2_000

    def __init__(self, model: str, seed: int) -> None:
        self.model = model
        self.seed = seed
        self._chunk = 0
        self._rows: list[dict[str, Any]] = []
        self._labels: list[int] = []
        self._position = 0

    @property
    def exhausted(self) -> bool:
        return self._position >= len(self._rows)

    def refill(self) -> None:
        """Generate the next chunk (blocking: pandas and sklearn; call from a worker thread)."""
        from opsctl.demo import models

        data = models.make_dataset(self.model, self._CHUNK, seed=self.seed * 10_000 + self._chunk, purpose="live")
        self._rows, self._labels = data.rows(), [int(v) for v in data.y]
        self._chunk += 1
        self._position = 0

    def next(self) -> tuple[dict[str, Any], int]:
        if self.exhausted:
            self.refill()
        row, label = self._rows[self._position], self._labels[self._position]
        self._position += 1
        return row, label


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m opsctl.demo.traffic", description=__doc__.split("\n")[0])
    parser.add_argument("--target", action="append", required=True, metavar="MODEL=URL")
    parser.add_argument("--rate", type=float, default=5.0, help="requests per second per model")
    parser.add_argument("--label-delay", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--label-fraction", type=float, default=1.0)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        targets = [Target.parse(text) for text in args.target]
        generator = TrafficGenerator(
            targets,
            rate_per_second=args.rate,
            label_delay_seconds=args.label_delay,
            label_fraction=args.label_fraction,
            users=args.users,
            seed=args.seed,
        )
    except ValueError as error:
        print(f"opsctl-demo-traffic: {error}", file=sys.stderr)
        return 2

    async def run() -> dict[str, TrafficStats]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, generator.stop)
        return await generator.run(args.duration)

    stats = asyncio.run(run())
    print(json.dumps({model: s.to_json() for model, s in stats.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
