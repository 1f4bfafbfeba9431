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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from opsctl.clock import Clock, SystemClock, utc_iso
from opsctl.core.alerts import Notification
from opsctl.core.runbooks import check_runbook_base_url, runbook_url


@dataclass(frozen=True)
class AlertmanagerSettings:
    """The ``[alertmanager]`` section; an empty ``url`` / ``webhook_url`` turns that target off."""

    url: str = ""
    webhook_url: str = ""
    timeout_seconds: float = 5.0
    # Base of generatorURL links (e.g. the daemon's public address); empty = no link.
    generator_url: str = ""
    max_queued: int = 10000
    # Base of each alert's runbook_url annotation (<base>/<alertname>.md); empty = the shipped pages.
    runbook_base_url: str = ""

    def __post_init__(self) -> None:
        check_runbook_base_url(self.runbook_base_url)
        for key in ("url", "webhook_url", "generator_url"):
            value = getattr(self, key)
            if value and not re.match(r"^https?://[^\s/]+", value):
                raise ValueError(f"{key} must be an http:// or https:// URL, got {value!r}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")
        if self.max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {self.max_queued}")


@dataclass(frozen=True)
class DeliveryResult:
    target: str  # "alertmanager" or "webhook"
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


class AlertmanagerNotifier:
    """Deliver notifications; failures are recorded and retried, never raised."""

    def __init__(
        self,
        settings: AlertmanagerSettings,
        client: httpx.Client | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=settings.timeout_seconds)
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._queue: dict[str, dict[tuple[str, str], Notification]] = {"alertmanager": {}, "webhook": {}}
        self.last_results: dict[str, DeliveryResult] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.settings.url or self.settings.webhook_url)

    def queued(self, target: str = "alertmanager") -> int:
        """Notifications waiting for a retry (shown in the TUI/CLI when a target is down)."""
        with self._lock:
            return len(self._queue.get(target, {}))

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def send(self, notifications: Iterable[Notification]) -> tuple[DeliveryResult, ...]:
        """Deliver these notifications plus any queued from failed attempts; never raises."""
        notifications = tuple(notifications)
        results = []
        if self.settings.url:
            results.append(self._deliver("alertmanager", notifications))
        if self.settings.webhook_url:
            results.append(self._deliver("webhook", notifications))
        return tuple(results)

    def _deliver(self, target: str, notifications: Sequence[Notification]) -> DeliveryResult:
        with self._lock:
            queue = self._queue[target]
            for n in notifications:
                queue.pop((n.alert.fingerprint, "firing"), None)
                queue.pop((n.alert.fingerprint, "resolved"), None)
                queue[(n.alert.fingerprint, n.kind)] = n
            batch = list(queue.values())
        if not batch:
            result = DeliveryResult(target, True, 0, self._clock.now())
            self.last_results[target] = result
            return result
        try:
            if target == "alertmanager":
                self._post_alertmanager(batch)
            else:
                self._post_webhook(batch)
        except Exception as error:  # a notifier must never take a job down with it
            result = DeliveryResult(target, False, 0, self._clock.now(), _describe(error))
            with self._lock:
                while len(queue) > self.settings.max_queued:  # drop the oldest, keep the newest
                    queue.pop(next(iter(queue)))
        else:
            result = DeliveryResult(target, True, len(batch), self._clock.now())
            with self._lock:
                for n in batch:
                    key = (n.alert.fingerprint, n.kind)
                    if queue.get(key) is n:
                        del queue[key]
        self.last_results[target] = result
        return result

    def _post_alertmanager(self, batch: Sequence[Notification]) -> None:
        body = [alertmanager_alert(n, self.settings.generator_url, self.settings.runbook_base_url) for n in batch]
        url = f"{self.settings.url.rstrip('/')}/api/v2/alerts"
        response = self._client.post(url, json=body, timeout=self.settings.timeout_seconds)
        response.raise_for_status()

    def _post_webhook(self, batch: Sequence[Notification]) -> None:
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
        response = self._client.post(self.settings.webhook_url, json=body,
                                     timeout=self.settings.timeout_seconds)
        response.raise_for_status()


def _describe(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}: {error.response.text[:200]}"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return f"{type(error).__name__}: {error}"[:300]
