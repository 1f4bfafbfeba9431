"""Stable traffic splitting for A/B tests and canaries, and the daemon's routing table.

Usage::

    router = TrafficRouter({"1.0.0": 95.0, "1.1.0": 5.0})
    version = router.route(user_id)            # the same user -> the same version, always

    client = RoutingTableClient("http://127.0.0.1:7070", model="fraud-detector",
                                document_path="/var/lib/opsctl/routing.json",
                                fallback={"1.0.0": 100.0})
    version = client.router().route(user_id)   # split from GET /v1/routing/fraud-detector

    # Another host: the daemon's TCP listener ([daemon] tcp_listen) needs a bearer token, and a CA
    # when it serves TLS ([daemon] tls_cert_file) with a certificate the system does not trust.
    client = RoutingTableClient("https://opsctl.internal:7443", model="fraud-detector",
                                token_file="/etc/model-server/opsctl.token", ca_file="/etc/opsctl/ca.pem",
                                fallback={"1.0.0": 100.0})

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
import logging
import math
import ssl
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

log = logging.getLogger("opsctl.sdk.router")

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


@dataclass(frozen=True)
class RoutingStatus:
    """The split a :class:`RoutingTableClient` routes by, and the last error of its sources (None: all fine)."""

    model: str
    split: RoutingSplit | None
    failures: int
    last_error: str | None

    @property
    def source(self) -> str | None:
        return self.split.source if self.split else None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "split": self.split.to_json() if self.split else None,
                "source": self.source, "failures": self.failures, "last_error": self.last_error}


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

    Over TCP the daemon wants ``Authorization: Bearer``: pass ``token`` or ``token_file`` (a file
    holding the token, the first word of its first non-comment line, so the daemon's own
    ``TOKEN IDENTITY`` line works too; re-read when the daemon refuses it, so a rotated token is
    picked up without a restart). ``ca_file`` verifies an ``https://`` daemon against that CA
    instead of the system's. A refused token never raises: the client keeps its split, and
    ``last_error`` / :meth:`status` (and one warning in the log per new error) say why.
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
        token: str | None = None,
        token_file: str | Path | None = None,
        ca_file: str | Path | None = None,
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
        if token is not None and token_file is not None:
            raise ValueError("give at most one of token and token_file")
        if (token is not None or token_file is not None or ca_file is not None) and base_url is None:
            raise ValueError("token, token_file and ca_file are for a daemon reached over TCP (base_url)")
        self.model = model
        self.ttl_seconds = ttl_seconds
        self.document_path = Path(document_path) if document_path is not None else None
        self.token_file = Path(token_file) if token_file is not None else None
        self._token = token if token is not None else (read_token(self.token_file) if self.token_file else None)
        if self._token is not None and not self._token.strip():
            raise ValueError("token must not be empty")
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"cannot use ca_file {ca_file}: {error}") from error
        if transport is None and socket_path is not None:
            transport = httpx.HTTPTransport(uds=socket_path)
        self._http: httpx.Client | None = None
        if base_url is not None or transport is not None:
            self._http = httpx.Client(base_url=base_url or "http://opsctld", transport=transport, timeout=timeout,
                                      verify=verify)
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
                    errors.append(f"daemon: {_describe(error)}")
                    self._failures.inc()
            previous = self.last_error
            self.last_error = "; ".join(errors) or None
            if self.last_error and self.last_error != previous:
                log.warning("routing table for %s: %s; keeping the %s split", self.model, self.last_error,
                            self._split.source if self._split else "(no)")
            if not found:
                if self.document_path is not None and not errors:
                    self.last_error = f"{self.model!r} is not in {self.document_path}"
                return False
            # The newer deployment wins; the daemon's answer on a tie (it is the same registry row).
            best = max(found, key=lambda s: (s.generation if s.generation is not None else -1,
                                             s.source == "daemon"))
            self._set(best)
            return True

    def status(self) -> RoutingStatus:
        """What a model server can expose (e.g. on its own health page): the split in use and why."""
        return RoutingStatus(self.model, self._split, self.failures, self.last_error)

    def _fetch(self) -> RoutingSplit:
        assert self._http is not None
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        response = self._http.get(self._path, headers=headers)
        if response.status_code in (401, 403) and self.token_file is not None:
            # The token may have been rotated since it was read: read the file again, once.
            fresh = read_token(self.token_file)
            if fresh != self._token:
                self._token = fresh
                response = self._http.get(self._path, headers={"Authorization": f"Bearer {fresh}"})
        if response.status_code in (401, 403):
            given = ("no token was given (pass token= or token_file=)" if not self._token
                     else f"the token from {self.token_file} was refused" if self.token_file
                     else "the token was refused")
            raise _AuthenticationFailed(f"authentication failed ({response.status_code}): {given}")
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


class _AuthenticationFailed(ValueError):
    """The daemon refused the bearer token (or none was given)."""


def read_token(path: str | Path) -> str:
    """The token in ``path``: the first word of its first line that is not blank or a ``#`` comment.

    Raises ValueError naming the file when it cannot be read or holds no token.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read token_file {path}: {error}") from error
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            return words[0]
    raise ValueError(f"token_file {path} holds no token")


def _describe(error: Exception) -> str:
    if isinstance(error, _AuthenticationFailed):
        return str(error)
    if isinstance(error, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(error):
        return f"TLS: the daemon's certificate was not verified ({error}); pass ca_file="
    return f"{type(error).__name__}: {error}"
