"""Stable traffic splitting for A/B tests and canaries, and the daemon's routing table.

Usage::

    router = TrafficRouter({"1.0.0": 95.0, "1.1.0": 5.0})
    version = router.route(user_id)            # the same user -> the same version, always

    client = RoutingTableClient("http://127.0.0.1:7070", model="fraud-detector",
                                document_path="/var/lib/opsctl/routing.json",
                                fallback={"1.0.0": 100.0})
    version = client.router().route(user_id)   # split from GET /v1/routing/fraud-detector

Where the split comes from: the daemon's ``GET /v1/routing/{model}`` and/or the routing document
(``routing.json`` next to the registry, rewritten with every deployment change by whichever process
made it, so a break-glass ``opsctl rollback`` with the daemon down still reaches traffic). Given
both, the answer with the higher deployment generation wins (the daemon's on a tie).

Why not ``hash(key) % 100`` (the chapter's router): Python salts ``str`` hashes per
process, so a user changes variant on every restart and two replicas disagree. Here
the bucket is ``blake2b(salt + key)`` reduced to ``[0, BUCKETS)``: identical in every
process, on every machine, forever.

Variants take contiguous bucket ranges in the order given. Keep the order stable
(production first, the candidate last): raising the candidate's weight from 5 to 10
then only moves users from production to the candidate, never the other way.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from opsctl.errors import DaemonUnavailableError

BUCKETS = 10_000
_WEIGHT_TOLERANCE = 1e-6


def bucket_of(key: str, salt: str = "") -> int:
    """The stable bucket of ``key`` in ``[0, BUCKETS)``."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def validate_weights(weights: Iterable[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """Check a split (percent per version): names unique and non-empty, weights >= 0, sum 100."""
    pairs = tuple((str(name), float(weight)) for name, weight in weights)
    if not pairs:
        raise ValueError("a traffic split needs at least one version")
    seen: set[str] = set()
    for name, weight in pairs:
        if not name:
            raise ValueError("a traffic split has a version with an empty name")
        if name in seen:
            raise ValueError(f"version {name!r} appears twice in the traffic split")
        seen.add(name)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of version {name!r} must be a finite number >= 0, got {weight}")
    total = sum(weight for _, weight in pairs)
    if abs(total - 100.0) > _WEIGHT_TOLERANCE:
        raise ValueError(f"traffic split weights must sum to 100, got {total:g}")
    return pairs


class TrafficRouter:
    """Maps a request key to a version by stable hash; thread-safe, immutable."""

    def __init__(self, weights: Mapping[str, float] | Iterable[tuple[str, float]], salt: str = "") -> None:
        items = weights.items() if isinstance(weights, Mapping) else weights
        self.weights = validate_weights(items)
        self.salt = salt
        bounds: list[tuple[int, str]] = []
        cumulative = 0.0
        for name, weight in self.weights:
            cumulative += weight
            bounds.append((round(cumulative * BUCKETS / 100.0), name))
        # Rounding must not leave the top buckets unowned.
        last_positive = max(i for i, (_, w) in enumerate(self.weights) if w > 0)
        bounds[last_positive] = (BUCKETS, bounds[last_positive][1])
        self._bounds = tuple(bounds)

    def route(self, key: str) -> str:
        """The version that serves ``key``."""
        bucket = bucket_of(key, self.salt)
        for upper, name in self._bounds:
            if bucket < upper:
                return name
        raise AssertionError("unreachable: the last positive weight owns the top bucket")

    def as_dict(self) -> dict[str, float]:
        return dict(self.weights)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrafficRouter) and (self.weights, self.salt) == (other.weights, other.salt)

    def __hash__(self) -> int:
        return hash((self.weights, self.salt))

    def __repr__(self) -> str:
        return f"TrafficRouter({dict(self.weights)!r})"


@dataclass(frozen=True)
class RoutingSplit:
    """A split as read from the daemon, the routing document, or the configured fallback."""

    model: str
    weights: tuple[tuple[str, float], ...]
    updated_at: str | None
    source: str  # "daemon" | "document" | "fallback"
    generation: int | None = None  # the deployment's generation in the registry

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "splits": [{"version": name, "weight": weight} for name, weight in self.weights],
            "updated_at": self.updated_at,
            "source": self.source,
            "generation": self.generation,
        }


ROUTING_DOCUMENT_FORMAT = "opsctl-routing/1"


def read_routing_document(path: str | Path, model: str) -> RoutingSplit | None:
    """``model``'s split from a routing document; None when the file or the model is not there.

    Raises ValueError for a document that is there but malformed.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from error
    body = json.loads(text)
    if not isinstance(body, dict) or body.get("format") != ROUTING_DOCUMENT_FORMAT:
        raise ValueError(f"{path} is not an {ROUTING_DOCUMENT_FORMAT} document")
    entry = body.get("models", {}).get(model)
    if entry is None or not entry.get("splits"):
        return None
    weights = validate_weights((item["version"], item["weight"]) for item in entry["splits"])
    updated_at = entry.get("updated_at")
    return RoutingSplit(model, weights, str(updated_at) if updated_at else None, "document",
                        int(entry["generation"]))


_failures_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_failures_lock = threading.Lock()


def _failure_counter(registry: CollectorRegistry) -> Counter:
    with _failures_lock:
        counter = _failures_by_registry.get(registry)
        if counter is None:
            counter = Counter(
                "opsctl_sdk_routing_fetch_failures_total",
                "Failed reads of the daemon's routing table (last known split kept)",
                ["model"],
                registry=registry,
            )
            _failures_by_registry[registry] = counter
        return counter


class RoutingTableClient:
    """Reads ``GET /v1/routing/{model}`` from the daemon and/or the routing document, cached for ``ttl_seconds``.

    With both sources the newer answer (higher deployment generation) wins, so traffic follows a
    change made while the daemon was down. When no source answers usefully, the last known split is
    kept (before the first success: ``fallback``); every failed daemon read is counted in
    ``opsctl_sdk_routing_fetch_failures_total{model}``. A failed read is not retried
    before ``ttl_seconds`` either, so a dead daemon costs at most one ``timeout`` per
    ``ttl_seconds``, not one per request. ``current()`` never does I/O; servers on an
    event loop call ``refresh()`` from a worker thread and ``current()`` per request.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        model: str,
        socket_path: str | None = None,
        document_path: str | Path | None = None,
        ttl_seconds: float = 5.0,
        timeout: float = 1.0,
        fallback: Mapping[str, float] | None = None,
        registry: CollectorRegistry = REGISTRY,
        transport: httpx.BaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if base_url is not None and socket_path is not None:
            raise ValueError("give at most one of base_url and socket_path")
        if base_url is None and socket_path is None and transport is None and document_path is None:
            raise ValueError("give base_url, socket_path or document_path")
        if ttl_seconds < 0 or timeout <= 0:
            raise ValueError("ttl_seconds must be >= 0 and timeout > 0")
        self.model = model
        self.ttl_seconds = ttl_seconds
        self.document_path = Path(document_path) if document_path is not None else None
        if transport is None and socket_path is not None:
            transport = httpx.HTTPTransport(uds=socket_path)
        self._http: httpx.Client | None = None
        if base_url is not None or transport is not None:
            self._http = httpx.Client(base_url=base_url or "http://opsctld", transport=transport, timeout=timeout)
        self._path = f"/v1/routing/{quote(model, safe='')}"
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures = _failure_counter(registry).labels(model)
        self._failures.inc(0)
        self.failures = 0
        self.last_error: str | None = None
        self._split: RoutingSplit | None = None
        self._router: TrafficRouter | None = None
        if fallback is not None:
            self._set(RoutingSplit(model, validate_weights(fallback.items()), None, "fallback"))
        self._checked_at: float | None = None

    def _set(self, split: RoutingSplit) -> None:
        self._split = split
        if self._router is None or self._router.weights != split.weights:
            self._router = TrafficRouter(split.weights)

    def current(self) -> RoutingSplit | None:
        """The split in hand, without any I/O (None before any success and without fallback)."""
        return self._split

    def split(self) -> RoutingSplit:
        """The split, fetched when the cached one is older than ``ttl_seconds``."""
        self.refresh(force=False)
        if self._split is None:
            raise DaemonUnavailableError(
                f"no routing table for {self.model!r}: neither the daemon nor the routing document has"
                f" answered yet ({self.last_error}) and no fallback split is configured"
            )
        return self._split

    def router(self) -> TrafficRouter:
        """A router for :meth:`split` (the same object while the split does not change)."""
        self.split()
        assert self._router is not None
        return self._router

    def refresh(self, force: bool = True) -> bool:
        """Fetch now (or only if stale when ``force`` is False); True if a source answered usefully."""
        with self._lock:
            now = self._monotonic()
            if not force and self._checked_at is not None and now - self._checked_at < self.ttl_seconds:
                return self._split is not None and self._split.source in ("daemon", "document")
            self._checked_at = now
            found: list[RoutingSplit] = []
            errors: list[str] = []
            if self.document_path is not None:
                try:
                    from_document = read_routing_document(self.document_path, self.model)
                except (ValueError, KeyError, TypeError) as error:
                    errors.append(f"routing document: {type(error).__name__}: {error}")
                else:
                    if from_document is not None:
                        found.append(from_document)
            if self._http is not None:
                try:
                    found.append(self._fetch())
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
                    self.failures += 1
                    errors.append(f"daemon: {type(error).__name__}: {error}")
                    self._failures.inc()
            self.last_error = "; ".join(errors) or None
            if not found:
                if self.document_path is not None and not errors:
                    self.last_error = f"{self.model!r} is not in {self.document_path}"
                return False
            # The newer deployment wins; the daemon's answer on a tie (it is the same registry row).
            best = max(found, key=lambda s: (s.generation if s.generation is not None else -1,
                                             s.source == "daemon"))
            self._set(best)
            return True

    def _fetch(self) -> RoutingSplit:
        assert self._http is not None
        response = self._http.get(self._path)
        response.raise_for_status()
        body = response.json()
        if body.get("model") != self.model:
            raise ValueError(f"routing table answered for model {body.get('model')!r}, not {self.model!r}")
        weights = validate_weights((entry["version"], entry["weight"]) for entry in body["splits"])
        updated_at = body.get("updated_at")
        generation = body.get("generation")
        return RoutingSplit(self.model, weights, str(updated_at) if updated_at else None, "daemon",
                            int(generation) if generation is not None else None)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> RoutingTableClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
