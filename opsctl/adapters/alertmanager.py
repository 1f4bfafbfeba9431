"""Push alert notifications to Alertmanager's v2 API and, optionally, to a generic JSON webhook.

A notifier never blocks a job for long and never raises into it: every delivery failure is returned
as a :class:`DeliveryResult`, kept for display (``last_results``) and the undelivered notifications
are retried with the next :meth:`AlertmanagerNotifier.send` (a newer notification for the same alert
replaces an older queued one, so a resolution is never overtaken by a stale "firing").

    notifier = AlertmanagerNotifier(AlertmanagerSettings(url="http://127.0.0.1:9093"))
    results = notifier.send(notifications)   # from opsctl.core.alerts.step
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from opsctl.adapters.http_config import (
    Authorization,
    BasicAuth,
    HeaderValues,
    HttpConfig,
    TlsConfig,
    build_client,
    check_http_fields,
    describe_http_error,
    describe_status,
)
from opsctl.clock import Clock, SystemClock, utc_iso
from opsctl.core.alerts import Notification
from opsctl.core.runbooks import check_runbook_base_url, runbook_url
from opsctl.errors import ConfigError


@dataclass(frozen=True)
class AlertmanagerSettings:
    """The ``[alertmanager]`` section; no ``url``/``urls`` and no ``webhook_url`` turns notifications off.

    ``urls`` lists every Alertmanager of an HA pair (or more): like Prometheus, opsctl sends every alert to
    every one of them, and they deduplicate. ``url`` (one Alertmanager) still works; both may be set.
    The http_config fields (``basic_auth``, ``authorization``, ``tls_config``, ``http_headers``) apply to
    the Alertmanagers, not to ``webhook_url``.
    """

    url: str = ""
    urls: tuple[str, ...] = ()
    webhook_url: str = ""
    timeout_seconds: float = 5.0
    # Base of generatorURL links (e.g. the daemon's public address); empty = no link.
    generator_url: str = ""
    max_queued: int = 10000
    # Base of each alert's runbook_url annotation (<base>/<alertname>.md); empty = the shipped pages.
    runbook_base_url: str = ""
    connect_timeout_seconds: float | None = None
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    tls_config: TlsConfig = field(default_factory=TlsConfig)
    http_headers: dict[str, str | HeaderValues] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_runbook_base_url(self.runbook_base_url)
        for key in ("url", "webhook_url", "generator_url"):
            value = getattr(self, key)
            if value and not re.match(r"^https?://[^\s/]+", value):
                raise ValueError(f"{key} must be an http:// or https:// URL, got {value!r}")
        for i, value in enumerate(self.urls):
            if not re.match(r"^https?://[^\s/]+", value):
                raise ValueError(f"urls[{i}] must be an http:// or https:// URL, got {value!r}")
        if len(set(self.alertmanager_urls)) != len(self.alertmanager_urls):
            raise ValueError("urls lists the same Alertmanager twice (or repeats url)")
        check_http_fields(self.timeout_seconds, self.connect_timeout_seconds, self.basic_auth, self.authorization,
                          self.http_headers)
        if self.max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {self.max_queued}")

    @property
    def alertmanager_urls(self) -> tuple[str, ...]:
        """Every Alertmanager to notify: ``url`` first, then ``urls``."""
        return ((self.url,) if self.url else ()) + tuple(self.urls)

    @property
    def http(self) -> HttpConfig:
        """The connection settings for the Alertmanagers (the same value type Prometheus uses)."""
        return HttpConfig(timeout_seconds=self.timeout_seconds, connect_timeout_seconds=self.connect_timeout_seconds,
                          basic_auth=self.basic_auth, authorization=self.authorization, tls_config=self.tls_config,
                          http_headers=self.http_headers)


def alertmanager_target(url: str, settings: AlertmanagerSettings) -> str:
    """The delivery target's name: ``alertmanager`` for a single one, ``alertmanager <url>`` in a group."""
    return "alertmanager" if len(settings.alertmanager_urls) == 1 else f"alertmanager {url}"


@dataclass(frozen=True)
class DeliveryResult:
    target: str  # "alertmanager", "alertmanager <url>" (several) or "webhook"
    ok: bool
    sent: int
    at: datetime
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "sent": self.sent, "at": utc_iso(self.at),
                "error": self.error}


def alertmanager_alert(notification: Notification, generator_url: str = "",
                       runbook_base_url: str = "") -> dict[str, Any]:
    """One element of the ``POST /api/v2/alerts`` body; every alert carries a ``runbook_url``."""
    alert = notification.alert
    annotations = dict(notification.annotations)
    name = notification.labels.get("alertname", alert.rule)
    annotations.setdefault("runbook_url", runbook_url(name, runbook_base_url))
    body: dict[str, Any] = {
        "labels": dict(notification.labels),
        "annotations": annotations,
        "startsAt": utc_iso(alert.starts_at),
        "endsAt": utc_iso(notification.ends_at),
    }
    if generator_url:
        body["generatorURL"] = f"{generator_url.rstrip('/')}/alerts/{alert.id}"
    return body


@dataclass
class _Target:
    """One destination with its own retry queue: a down Alertmanager holds back only its own queue."""

    name: str
    url: str
    kind: str  # "alertmanager" or "webhook"
    client: httpx.Client
    queue: dict[tuple[str, str], Notification] = field(default_factory=dict)
    in_flight: Future[DeliveryResult] | None = None


class AlertmanagerNotifier:
    """Deliver notifications to every Alertmanager (and the webhook); failures are recorded and retried,
    never raised.

    Each target is delivered from its own worker thread, so an Alertmanager that hangs until its timeout
    does not hold back the others: they receive the batch at once. :meth:`send` waits for this round
    (at most about ``timeout_seconds``); a target still busy with an earlier round is not sent to
    again, its queue absorbs the new notifications for its next turn.
    """

    def __init__(
        self,
        settings: AlertmanagerSettings,
        client: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._own_clients: list[httpx.Client] = []
        self.config_error = ""
        am_client = client
        if am_client is None and settings.alertmanager_urls:
            # A missing or unreadable file is reported with every delivery (and by `opsctl doctor`) instead of
            # failing the daemon's start; a secret file is read again at each delivery, so fixing it is enough.
            try:
                am_client = build_client(settings.http, "alertmanager")
            except ConfigError:
                try:
                    am_client = build_client(settings.http, "alertmanager", check_secrets=False)
                except ConfigError as error:  # an unusable CA or client certificate
                    self.config_error = str(error)
                    am_client = httpx.Client(timeout=settings.timeout_seconds)
            self._own_clients.append(am_client)
        webhook_client = client
        if webhook_client is None and settings.webhook_url:
            webhook_client = httpx.Client(timeout=settings.timeout_seconds)
            self._own_clients.append(webhook_client)
        self._targets: dict[str, _Target] = {}
        for url in settings.alertmanager_urls:
            assert am_client is not None
            name = alertmanager_target(url, settings)
            self._targets[name] = _Target(name, url, "alertmanager", am_client)
        if settings.webhook_url:
            assert webhook_client is not None
            self._targets["webhook"] = _Target("webhook", settings.webhook_url, "webhook", webhook_client)
        self._executor: ThreadPoolExecutor | None = None
        self.last_results: dict[str, DeliveryResult] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self._targets)

    def queued(self, target: str = "alertmanager") -> int:
        """Notifications waiting for a retry (shown in the TUI/CLI when a target is down)."""
        found = self._targets.get(target)
        if found is None:
            return 0
        with self._lock:
            return len(found.queue)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for client in self._own_clients:
            client.close()

    def send(self, notifications: Iterable[Notification]) -> tuple[DeliveryResult, ...]:
        """Deliver these notifications plus any queued from failed attempts to every target; never raises."""
        notifications = tuple(notifications)
        if not self._targets:
            return ()
        with self._lock:
            for target in self._targets.values():
                for n in notifications:
                    target.queue.pop((n.alert.fingerprint, "firing"), None)
                    target.queue.pop((n.alert.fingerprint, "resolved"), None)
                    target.queue[(n.alert.fingerprint, n.kind)] = n
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=len(self._targets),
                                                    thread_name_prefix="opsctl-notify")
            started: list[_Target] = []
            busy: list[_Target] = []
            for target in self._targets.values():
                if target.in_flight is not None and not target.in_flight.done():
                    busy.append(target)
                    continue
                target.in_flight = self._executor.submit(self._deliver, target)
                started.append(target)
        results: list[DeliveryResult] = []
        for target in self._targets.values():
            if target in busy:
                result = DeliveryResult(target.name, False, 0, self._clock.now(),
                                        "still delivering an earlier batch (slow or hanging); queued")
                self.last_results[target.name] = result
                results.append(result)
                continue
            assert target.in_flight is not None
            try:
                results.append(target.in_flight.result())
            except Exception as error:  # _deliver never raises; a cancelled future at close() does
                results.append(DeliveryResult(target.name, False, 0, self._clock.now(), _describe(error)))
        return tuple(results)

    def _deliver(self, target: _Target) -> DeliveryResult:
        with self._lock:
            batch = list(target.queue.values())
        if not batch:
            result = DeliveryResult(target.name, True, 0, self._clock.now())
            self.last_results[target.name] = result
            return result
        try:
            if self.config_error and target.kind == "alertmanager":
                raise ConfigError(self.config_error)
            if target.kind == "alertmanager":
                self._post_alertmanager(target, batch)
            else:
                self._post_webhook(target, batch)
        except Exception as error:  # a notifier must never take a job down with it
            result = DeliveryResult(target.name, False, 0, self._clock.now(), _describe(error, target.url))
            with self._lock:
                while len(target.queue) > self.settings.max_queued:  # drop the oldest, keep the newest
                    target.queue.pop(next(iter(target.queue)))
        else:
            result = DeliveryResult(target.name, True, len(batch), self._clock.now())
            with self._lock:
                for n in batch:
                    key = (n.alert.fingerprint, n.kind)
                    if target.queue.get(key) is n:
                        del target.queue[key]
        self.last_results[target.name] = result
        return result

    def _post_alertmanager(self, target: _Target, batch: Sequence[Notification]) -> None:
        body = [alertmanager_alert(n, self.settings.generator_url, self.settings.runbook_base_url) for n in batch]
        response = target.client.post(f"{target.url.rstrip('/')}/api/v2/alerts", json=body)
        response.raise_for_status()

    def _post_webhook(self, target: _Target, batch: Sequence[Notification]) -> None:
        body = {
            "version": "opsctl/1",
            "alerts": [
                {
                    "status": n.kind,
                    "id": n.alert.id,
                    "fingerprint": n.alert.fingerprint,
                    **alertmanager_alert(n, self.settings.generator_url, self.settings.runbook_base_url),
                }
                for n in batch
            ],
        }
        response = target.client.post(target.url, json=body)
        response.raise_for_status()


def _describe(error: Exception, url: str = "") -> str:
    if isinstance(error, httpx.HTTPStatusError):
        refused = describe_status(error.response.status_code, url or str(error.request.url))
        return refused or f"HTTP {error.response.status_code}: {error.response.text[:200]}"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.TransportError) and url:
        return describe_http_error(error, url)
    return f"{type(error).__name__}: {error}"[:300]
