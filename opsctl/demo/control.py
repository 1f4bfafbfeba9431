"""Control of a running demo fleet: find it, inject and clear faults, read its status.

The one client for a demo that ``opsctl demo`` (see :mod:`opsctl.demo.runner`) brought up; the CLI
(``opsctl demo fault|clear|status``) and the TUI's game day both use it. The running demo is found
through its ``demo.json``; faults go to the model servers' ``/fault`` endpoint (see
:mod:`opsctl.demo.faults`). Faults are practice, not production changes, so nothing here is
audited: what the daemon then sees and does (alerts, canary rollbacks) is, as in a real incident.

Blocking (httpx): call from a thread worker in the TUI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opsctl.demo.faults import FAULT_KINDS, Fault
from opsctl.demo.fleet import DemoState, FleetLayout, ServerState, pid_alive, read_state
from opsctl.errors import NotFoundError, OpsctlError, UsageError

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class FaultInjected:
    """One server took the fault (``exiting``: a crash fault, the server exits now)."""

    server: ServerState
    fault: Fault
    exiting: bool

    def to_json(self) -> dict[str, Any]:
        return {"model": self.server.model, "url": self.server.url, "fault": self.fault.to_json(),
                "exiting": self.exiting}


@dataclass(frozen=True)
class FaultsCleared:
    """What one server removed (empty: no fault was active)."""

    server: ServerState
    cleared: tuple[Fault, ...]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.server.model, "url": self.server.url, "cleared": [f.to_json() for f in self.cleared]}


@dataclass(frozen=True)
class ServerStatus:
    """A model server of the demo: is its process alive, and its active faults (None: it did not answer)."""

    server: ServerState
    running: bool
    faults: tuple[Fault, ...] | None

    def to_json(self) -> dict[str, Any]:
        faults = None if self.faults is None else [f.to_json() for f in self.faults]
        return {**self.server.to_json(), "running": self.running, "faults": faults}


@dataclass(frozen=True)
class FleetStatus:
    """``opsctl demo status``: the demo's processes and each server's faults."""

    state: DemoState
    daemon_running: bool
    prometheus_running: bool
    servers: tuple[ServerStatus, ...]

    def to_json(self) -> dict[str, Any]:
        document = self.state.to_json()
        return {**document, "servers": [s.to_json() for s in self.servers],
                "daemon": {**document["daemon"], "running": self.daemon_running},
                "prometheus": {**document["prometheus"], "running": self.prometheus_running}}


class DemoControl:
    """The demo running from ``layout``'s state dir; use as a context manager (it holds an HTTP client)."""

    def __init__(self, layout: FleetLayout, *, http: httpx.Client | None = None) -> None:
        self.layout = layout
        self._http = http

    @classmethod
    def detect(cls, places: Iterable[str | Path | None]) -> DemoControl | None:
        """The demo whose ``demo.json`` is in the first of ``places`` (or its parent); None when none is."""
        for place in places:
            if not place:
                continue
            path = Path(place)
            for candidate in (path, path.parent):
                if (candidate / "demo.json").is_file():
                    return cls(FleetLayout.at(candidate))
        return None

    def __enter__(self) -> DemoControl:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=httpx.Timeout(5.0, connect=1.0))
        return self._http

    # -- reading demo.json ------------------------------------------------------------------------

    def state(self) -> DemoState:
        """The running demo; NotFoundError when none runs from this state dir."""
        state = read_state(self.layout)
        if state is None:
            raise NotFoundError("running demo", str(self.layout.root),
                                f"start one with `opsctl demo --state-dir {self.layout.root}` (or pass --state-dir)")
        return state

    def models(self) -> list[str]:
        """The models the demo serves (empty when no demo runs or ``demo.json`` is unreadable)."""
        state = read_state(self.layout)
        return [] if state is None else sorted({server.model for server in state.servers})

    def servers(self, model: str) -> list[ServerState]:
        state = self.state()
        servers = state.servers_of(model)
        if not servers:
            raise NotFoundError("demo model", model, f"this demo serves {', '.join(s.model for s in state.servers)}")
        return servers

    # -- faults -----------------------------------------------------------------------------------

    def inject(self, model: str, kind: str, *, level: float | None = None, versions: Sequence[str] = (),
               features: Sequence[str] = ()) -> list[FaultInjected]:
        """Inject one fault into every server of ``model``; UsageError for a fault the server refuses."""
        if kind not in FAULT_KINDS:
            raise UsageError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        if features and kind != "drift":
            raise UsageError("--feature applies to drift faults only")
        body: dict[str, Any] = {"kind": kind}
        if level is not None:
            body["level"] = level
        if versions:
            body["versions"] = list(versions)
        if features:
            body["features"] = list(features)
        results = []
        for server in self.servers(model):
            answer = self._call("POST", server, "/fault", json=body)
            results.append(FaultInjected(server, _fault(answer.get("fault")), bool(answer.get("exiting"))))
        return results

    def clear(self, model: str, kind: str | None = None) -> list[FaultsCleared]:
        """Clear ``kind`` (or every fault) on every server of ``model``."""
        params = {"kind": kind} if kind else {}
        return [FaultsCleared(server, tuple(_fault(f) for f in self._call("DELETE", server, "/fault",
                                                                            params=params).get("cleared", [])))
                for server in self.servers(model)]

    def status(self) -> FleetStatus:
        """Every process of the demo, and the faults of each server that answers."""
        state = self.state()
        servers = []
        for server in state.servers:
            alive = pid_alive(server.pid)
            faults: tuple[Fault, ...] | None = None
            if alive:
                try:
                    faults = tuple(_fault(f) for f in self._call("GET", server, "/fault").get("faults", []))
                except OpsctlError:
                    faults = None  # alive but not answering: unknown, never "no faults"
            servers.append(ServerStatus(server, alive, faults))
        return FleetStatus(state, pid_alive(state.daemon_pid), pid_alive(state.prometheus_pid), tuple(servers))

    def _call(self, method: str, server: ServerState, path: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        try:
            response = self.http.request(method, f"{server.url}{path}", **kwargs)
        except httpx.TransportError as error:
            hint = ("its process is gone (a crash fault cannot be cleared: restart the demo, or run it with"
                    " --restart-crashed)" if not pid_alive(server.pid) else "see `opsctl demo status`")
            raise OpsctlError(f"{server.model}'s server at {server.url} does not answer ({type(error).__name__});"
                              f" {hint}") from error
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code >= 400:
            raise UsageError(f"{server.model}: {body.get('error') or response.text.strip()}")
        return body


def _fault(document: Mapping[str, Any] | None) -> Fault:
    """A fault as a server reports it; OpsctlError when the answer is not one."""
    try:
        return Fault.from_json(document or {})
    except ValueError as error:
        raise OpsctlError(f"a demo server answered with a fault it cannot have: {error}") from None
