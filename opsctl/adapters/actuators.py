"""Actuators: how a canary's traffic split reaches traffic, and the Flagger-style hooks.

* :class:`RoutingTableActuator` (default): the registry's ``deployments`` row *is* the routing
  table the SDK router reads through ``GET /v1/routing/{model}``; committing the weight applies it,
  so ``apply`` has nothing else to do.
* :class:`CommandActuator`: runs a configured command (nginx weights, ``kubectl patch``, anything)
  with the model, versions and weights as ``{placeholders}`` in its arguments and as
  ``OPSCTL_*`` environment variables, under a timeout.
* :class:`WebhookActuator`: POSTs the split as JSON; any 2xx answer confirms it.

Hooks (``pre_rollout``, ``confirm_promotion``, ``post_rollout``, ``rollback``) are commands or
webhooks of the same shape (:class:`Hook`); a hook fails on a non-zero exit, a non-2xx answer or a
timeout.

The contract every caller relies on: ``apply`` returns only once the split is in effect, and raises
:class:`~opsctl.errors.ActuatorError` otherwise. The canary service applies the actuator *first*
and only then commits the weight to the registry, so the registry never claims a weight traffic
does not have. :class:`Retrying` wraps any actuator or hook with bounded retries.

>>> settings = ActuatorSettings(kind="command", command=["/usr/local/bin/set-weight", "{model}",
...                             "{canary_version}", "{canary_weight}"])
>>> build_actuator(settings).name
'command'
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from opsctl.errors import ActuatorError

if TYPE_CHECKING:
    # httpx is imported where an HTTP actuator is built: a one-shot on the default routing table never pays for it.
    import httpx

HOOK_KINDS = ("pre_rollout", "confirm_promotion", "post_rollout", "rollback")


@dataclass(frozen=True)
class Split:
    """The traffic split to apply: ``canary_weight`` percent to the canary, the rest to production."""

    model: str
    production_version: str | None
    canary_version: str | None
    canary_weight: float

    @property
    def production_weight(self) -> float:
        return round(100.0 - self.canary_weight, 6) if self.production_version else 0.0

    def variables(self) -> dict[str, str]:
        return {
            "model": self.model,
            "production_version": self.production_version or "",
            "canary_version": self.canary_version or "",
            "canary_weight": f"{self.canary_weight:g}",
            "production_weight": f"{self.production_weight:g}",
        }

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "production_version": self.production_version,
                "canary_version": self.canary_version, "canary_weight": self.canary_weight,
                "production_weight": self.production_weight}


class Actuator(Protocol):
    """Applies a split; ``current_weight`` is the canary weight in effect, None when it cannot tell."""

    name: str

    def apply(self, split: Split) -> None: ...

    def current_weight(self, model: str) -> float | None: ...


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class HookSpec:
    """One hook: a command (argv with ``{placeholders}``) or a webhook URL; empty = not configured."""

    command: list[str] = field(default_factory=list)
    url: str | None = None
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.command and self.url:
            raise ValueError("a hook is a command or a url, not both")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, got {self.url!r}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")

    @property
    def configured(self) -> bool:
        return bool(self.command or self.url)


@dataclass(frozen=True)
class ActuatorSettings:
    """``[actuators]``: how traffic splits are applied, with retries, and the canary hooks."""

    kind: str = "routing_table"  # routing_table | command | webhook
    command: list[str] = field(default_factory=list)
    url: str | None = None
    timeout_seconds: float = 10.0
    # Attempts per apply (1 = no retry) and the pause between them; the canary job retries
    # again on its next tick either way.
    attempts: int = 3
    retry_backoff_seconds: float = 0.5
    pre_rollout: HookSpec = field(default_factory=HookSpec)
    confirm_promotion: HookSpec = field(default_factory=HookSpec)
    post_rollout: HookSpec = field(default_factory=HookSpec)
    rollback: HookSpec = field(default_factory=HookSpec)
    # Give up on a notification hook (post_rollout, rollback) after this many failed attempts.
    hook_max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.kind not in ("routing_table", "command", "webhook"):
            raise ValueError(f"kind must be routing_table, command or webhook, got {self.kind!r}")
        if self.kind == "command" and not self.command:
            raise ValueError("kind = 'command' needs command = [...]")
        if self.kind == "webhook" and not self.url:
            raise ValueError("kind = 'webhook' needs url")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, got {self.url!r}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")
        if self.attempts < 1 or self.hook_max_attempts < 1:
            raise ValueError("attempts and hook_max_attempts must be at least 1")
        if self.retry_backoff_seconds < 0 or not math.isfinite(self.retry_backoff_seconds):
            raise ValueError(f"retry_backoff_seconds must be >= 0, got {self.retry_backoff_seconds}")

    def hook(self, kind: str) -> HookSpec:
        if kind not in HOOK_KINDS:
            raise ValueError(f"unknown hook {kind!r}")
        return getattr(self, kind)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- runners


def _fill(argv: list[str], values: Mapping[str, str]) -> list[str]:
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


def run_command(argv: list[str], values: Mapping[str, str], *, timeout: float, what: str) -> str:
    """Run ``argv`` with ``{placeholders}`` filled and ``OPSCTL_<NAME>`` in the environment.

    Returns stdout; raises ActuatorError on a non-zero exit, a missing program or the timeout
    (the whole process group is killed, so a shell script's children die too).
    """
    env = {**os.environ, **{f"OPSCTL_{k.upper()}": v for k, v in values.items()}}
    command = _fill(argv, values)
    try:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    except OSError as error:
        raise ActuatorError(f"{what}: cannot run {command[0]!r}: {error.strerror}") from error
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.communicate()
        raise ActuatorError(f"{what}: {command[0]} timed out after {timeout:g}s") from None
    if proc.returncode != 0:
        detail = (stderr or stdout).strip().splitlines()[-1:] or [""]
        raise ActuatorError(f"{what}: {command[0]} exited with {proc.returncode}: {detail[0][:200]}")
    return stdout


def _new_client() -> httpx.Client:
    import httpx

    return httpx.Client()


def post_json(client: httpx.Client, url: str, body: dict[str, Any], *, timeout: float, what: str) -> None:
    """POST ``body``; raises ActuatorError unless the answer is 2xx."""
    import httpx

    try:
        response = client.post(url, json=body, timeout=timeout)
    except httpx.TimeoutException as error:
        raise ActuatorError(f"{what}: {url} timed out after {timeout:g}s") from error
    except httpx.TransportError as error:
        raise ActuatorError(f"{what}: {url} unreachable: {error}") from error
    if not 200 <= response.status_code < 300:
        raise ActuatorError(f"{what}: {url} answered HTTP {response.status_code}: {response.text[:200]}")


class RoutingTableActuator:
    """The default: the registry's deployment row is the routing table, committed by the caller."""

    name = "routing_table"

    def __init__(self, read_weight: Callable[[str], float | None] | None = None) -> None:
        self._read_weight = read_weight

    def apply(self, split: Split) -> None:
        return None  # committing the deployment row is what applies it

    def current_weight(self, model: str) -> float | None:
        return self._read_weight(model) if self._read_weight else None


class CommandActuator:
    name = "command"

    def __init__(self, argv: list[str], *, timeout_seconds: float = 10.0) -> None:
        if not argv:
            raise ValueError("command actuator needs a command")
        self.argv = list(argv)
        self.timeout_seconds = timeout_seconds

    def apply(self, split: Split) -> None:
        run_command(self.argv, split.variables(), timeout=self.timeout_seconds,
                    what=f"actuator for {split.model}")

    def current_weight(self, model: str) -> float | None:
        return None  # a command cannot be asked; the job re-applies the persisted weight on start


class WebhookActuator:
    name = "webhook"

    def __init__(self, url: str, *, timeout_seconds: float = 10.0, client: httpx.Client | None = None) -> None:
        self.url = url
        self.timeout_seconds = timeout_seconds
        self._client = client or _new_client()

    def apply(self, split: Split) -> None:
        post_json(self._client, self.url, {"type": "traffic_split", **split.to_json()},
                  timeout=self.timeout_seconds, what=f"actuator for {split.model}")

    def current_weight(self, model: str) -> float | None:
        return None


class Retrying:
    """``attempts`` tries of an actuator with ``backoff_seconds`` between them; the last error is raised."""

    def __init__(self, inner: Actuator, *, attempts: int = 3, backoff_seconds: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner
        self.name = inner.name
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep
        self.failures = 0  # attempts that failed, over the actuator's life (for metrics and tests)

    def apply(self, split: Split) -> None:
        last: ActuatorError | None = None
        for attempt in range(self.attempts):
            try:
                self.inner.apply(split)
                return
            except ActuatorError as error:
                self.failures += 1
                last = error
                if attempt + 1 < self.attempts:
                    self._sleep(self.backoff_seconds * (2 ** attempt))
        assert last is not None
        raise ActuatorError(f"{last} (after {self.attempts} attempts)") from last

    def current_weight(self, model: str) -> float | None:
        return self.inner.current_weight(model)


@dataclass(frozen=True)
class HookCall:
    """What a hook receives: the hook kind and the canary's model, versions and weight."""

    kind: str
    model: str
    canary_version: str
    production_version: str | None
    weight: float

    def variables(self) -> dict[str, str]:
        return {"hook": self.kind, "model": self.model, "canary_version": self.canary_version,
                "production_version": self.production_version or "", "canary_weight": f"{self.weight:g}"}

    def to_json(self) -> dict[str, Any]:
        return {"type": "canary_hook", "hook": self.kind, "model": self.model,
                "canary_version": self.canary_version, "production_version": self.production_version,
                "canary_weight": self.weight}


class Hooks:
    """Runs the configured hooks; an unconfigured hook succeeds at once."""

    def __init__(self, settings: ActuatorSettings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self._client = client or _new_client()

    def configured(self, kind: str) -> bool:
        return self.settings.hook(kind).configured

    def run(self, call: HookCall) -> None:
        spec = self.settings.hook(call.kind)
        what = f"{call.kind.replace('_', '-')} hook for {call.model}"
        if spec.command:
            run_command(spec.command, call.variables(), timeout=spec.timeout_seconds, what=what)
        elif spec.url:
            post_json(self._client, spec.url, call.to_json(), timeout=spec.timeout_seconds, what=what)


def build_actuator(settings: ActuatorSettings, *, read_weight: Callable[[str], float | None] | None = None,
                   client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """The configured actuator, wrapped in :class:`Retrying`."""
    inner: Actuator
    if settings.kind == "command":
        inner = CommandActuator(settings.command, timeout_seconds=settings.timeout_seconds)
    elif settings.kind == "webhook":
        assert settings.url is not None
        inner = WebhookActuator(settings.url, timeout_seconds=settings.timeout_seconds, client=client)
    else:
        inner = RoutingTableActuator(read_weight)
    return Retrying(inner, attempts=settings.attempts, backoff_seconds=settings.retry_backoff_seconds, sleep=sleep)


def describe(split: Split) -> str:
    return json.dumps(split.to_json(), sort_keys=True)
