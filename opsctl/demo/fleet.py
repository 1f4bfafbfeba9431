"""What the demo fleet is: its models, where everything lives in the state dir, the config files it
generates (``opsctl.toml``, Prometheus scrape config and targets) and the ``demo.json`` state file.

Pure data and text: nothing here starts a process (see :mod:`opsctl.demo.supervisor` and
:mod:`opsctl.cli.demo.handlers`). Layout of ``STATE_DIR``::

    opsctl.toml          the daemon's and the CLI's config (OPSCTL_CONFIG points here)
    demo.json            ports and pids of the running demo; removed at teardown
    state/               the daemon's state_dir: registry.db, artifacts/
    seed/                artifacts, metrics and reference samples the seed registered
    logs/                one log per child process, and the servers' prediction logs
    prometheus/          the generated prometheus.yml, targets.json and a fresh TSDB
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO_MODELS: tuple[str, ...] = ("fraud-detector", "churn-predictor")
SCRAPE_JOB = "opsctl-demo"
SCRAPE_INTERVAL = "1s"
STATE_FILE = "demo.json"
# sun_path is 108 bytes on Linux; past this, the daemon's socket goes to the temp dir instead.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class FleetLayout:
    """Paths inside one demo state dir (absolute)."""

    root: Path

    @classmethod
    def at(cls, state_dir: str | os.PathLike[str]) -> FleetLayout:
        return cls(Path(state_dir).expanduser().resolve())

    @property
    def config(self) -> Path:
        return self.root / "opsctl.toml"

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def daemon_state(self) -> Path:
        return self.root / "state"

    @property
    def seed_dir(self) -> Path:
        return self.root / "seed"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    @property
    def socket(self) -> Path:
        path = self.root / "opsctl.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        import hashlib

        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"opsctl-demo-{os.getuid()}-{digest}.sock"

    def ready_file(self, model: str) -> Path:
        return self.logs / f"{model}.ready.json"


def parse_models(text: str) -> tuple[str, ...]:
    """``fraud-detector,churn-predictor`` -> a tuple of known demo models (ValueError on others)."""
    from opsctl.demo.models import SPECS

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError("--models needs at least one model")
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise ValueError(f"unknown demo model {', '.join(unknown)}; known: {', '.join(SPECS)}")
    return names


def demo_config_toml(layout: FleetLayout, prometheus_url: str) -> str:
    """The demo's ``opsctl.toml``: everything inside the state dir, short intervals, quick canaries.

    Windows are short so a fault shows within seconds and a cleared one is forgotten within
    ~20 s; availability tolerates a missed 1 s scrape or two in the window on a busy laptop.
    """
    return f"""\
# Written by `opsctl demo`; rewritten at every start. Point a terminal at this demo with
#   OPSCTL_CONFIG={layout.config} opsctl status
[daemon]
state_dir = "state"
socket = {json.dumps(str(layout.socket))}
shutdown_timeout_seconds = 5.0
# A killed daemon stays down (break-glass practice) until this brings it back.
start_command = {json.dumps(f"opsctl demo restart daemon --state-dir {layout.root}")}

[jobs]
health_seconds = 5.0
canary_seconds = 1.0
drift_seconds = 30.0
performance_seconds = 30.0
ingest_seconds = 2.0
alerts_seconds = 5.0
housekeeping_seconds = 60.0

[prometheus]
url = "{prometheus_url}"
window = "20s"
staleness_seconds = 5.0
timeout_seconds = 3.0

# The canary's sla gate must show the canary's error rate under this ceiling: at 1 % a clean canary
# needs ~400 requests per stage (5 min at the demo's 25 % of 5 req/s), at 5 % ~190, matching the
# canary's own `max_error_rate_percent` below. The `errors` fault (far above 5 %) still degrades.
[sla]
availability_percent = 90.0
error_rate_percent = 5.0
accuracy_min_ratio = 0.9

# Churn labels are noisy (holdout accuracy ~0.74): over the server's 200-label accuracy window,
# 0.9 x baseline is only ~1.6 standard errors away and would flap; 0.85 is ~3.5 away, and the
# accuracy fault (40 % of labels flipped, accuracy ~0.55) still trips it.
[sla.models.churn-predictor]
accuracy_min_ratio = 0.85

# Canaries a 5 req/s demo can decide in a couple of minutes, with honest statistics: the margins
# are wide because the traffic is small. A clean canary needs 1.6/0.02 = 80 requests to show it is
# not 2 points worse than production, 64 to show it is under the 5 % ceiling, 32 to show under 5 %
# of its requests are slow, and about 70 labels to show its accuracy is within 10 points; an
# `errors` fault fails the exact tests on its first dozen requests (looks every 3 s: a rollback after
# three failed looks). A real service at 0.1 % errors and the default margin (a doubling) needs about
# 5,000 canary requests per stage (see the README).
[canary]
stages = [25.0, 100.0]
min_stage_seconds = 30.0
analysis_interval_seconds = 3.0
progress_deadline_seconds = 300.0
error_rate_min_baseline = 0.02
max_error_rate_percent = 5.0
latency_min_share = 0.05
accuracy_tolerance = 0.1

# The servers write SDK prediction/feedback logs under logs/MODEL/; the daemon tails them for the
# drift and performance checks.
[ingest]
log_dirs = {json.dumps([f"logs/{m}" for m in DEMO_MODELS])}

[window]
max_age_seconds = 600.0

# The drift fault shifts two features (`opsctl demo fault MODEL drift`: the first two unless
# --feature says otherwise): 2 of fraud-detector's 10 features, 2 of churn-predictor's 6. The
# product default (dataset drift when half the features drift) would call that "no drift" and
# never retrain; in the demo two drifted features are dataset drift.
[drift]
min_rows = 200
drift_share = 0.2

# Drift or a performance drop on fraud-detector retrains it on fresh (drifted) data; a challenger
# better by 0.01 AUC on the same holdout goes to a canary, never straight to production.
[retrain]
metric = "roc_auc"
min_improvement = 0.01
cooldown_seconds = 600

[retrain.models.fraud-detector]
entrypoint = "opsctl.demo.training:train"
params = {{ drift = "v1=2.0,v2=2.0" }}

[ui]
environment = "demo"
production = false
"""


def merge_config(base: str, extra: str) -> str:
    """``base`` TOML with the tables and keys of ``extra`` laid over it (``opsctl demo --config-extra``).

    Tables merge key by key (``[canary] min_stage_seconds`` replaces only that key); any other
    value replaces the base's. Raises ValueError when either text is not valid TOML.
    """
    import tomllib

    try:
        merged = tomllib.loads(base)
        over = tomllib.loads(extra)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"not valid TOML: {error}") from None
    _merge_into(merged, over)
    return "# Written by `opsctl demo` (its defaults with --config-extra laid over them).\n" + _dump_toml(merged)


def _merge_into(target: dict[str, Any], over: Mapping[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"cannot write {value!r} as TOML")


def _dump_toml(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> str:
    lines: list[str] = []
    tables = {k: v for k, v in document.items() if isinstance(v, Mapping)}
    arrays = {k: v for k, v in document.items()
              if isinstance(v, list) and v and all(isinstance(i, Mapping) for i in v)}
    for key, value in document.items():
        if key not in tables and key not in arrays:
            lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables.items():
        path = (*prefix, key)
        text += f"\n[{'.'.join(json.dumps(p) for p in path)}]\n" + _dump_toml(value, path)
    for key, items in arrays.items():
        path = (*prefix, key)
        for item in items:
            text += f"\n[[{'.'.join(json.dumps(p) for p in path)}]]\n" + _dump_toml(item, path)
    return text


def prometheus_config(layout: FleetLayout) -> str:
    """Scrape every demo server each second; targets come from ``targets.json`` (file_sd)."""
    return f"""\
# Written by `opsctl demo`.
global:
  scrape_interval: {SCRAPE_INTERVAL}
  evaluation_interval: {SCRAPE_INTERVAL}
  external_labels:
    fleet: opsctl-demo
scrape_configs:
  - job_name: {SCRAPE_JOB}
    scrape_interval: {SCRAPE_INTERVAL}
    scrape_timeout: {SCRAPE_INTERVAL}
    file_sd_configs:
      - files: [{json.dumps(str(layout.prometheus_dir / "targets.json"))}]
        refresh_interval: 5s
"""


def prometheus_targets(servers: Sequence[ServerState]) -> str:
    """file_sd targets; the target label is ``service``, never ``model``: the servers' own ``model``
    label must reach Prometheus unrenamed (a target label of the same name would turn it into
    ``exported_model``)."""
    groups = [
        {"targets": [f"127.0.0.1:{s.port}"], "labels": {"service": s.model, "fleet": "opsctl-demo"}}
        for s in servers
    ]
    return json.dumps(groups, indent=2) + "\n"


@dataclass(frozen=True)
class ServerState:
    model: str
    versions: tuple[str, ...]
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "versions": list(self.versions), "port": self.port, "pid": self.pid,
                "url": self.url}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServerState:
        return cls(str(data["model"]), tuple(data["versions"]), int(data["port"]), int(data["pid"]))


@dataclass(frozen=True)
class DemoState:
    """``demo.json``: how ``opsctl demo fault`` and tests find the running demo."""

    supervisor_pid: int
    state_dir: str
    config: str
    prometheus_url: str
    prometheus_pid: int
    daemon_pid: int
    daemon_socket: str
    traffic_pid: int | None
    servers: tuple[ServerState, ...] = field(default_factory=tuple)
    started_at: str = ""

    @property
    def ports(self) -> list[int]:
        return [int(self.prometheus_url.rsplit(":", 1)[1]), *(s.port for s in self.servers)]

    @property
    def pids(self) -> list[int]:
        pids = [self.prometheus_pid, self.daemon_pid, *(s.pid for s in self.servers)]
        return pids + ([self.traffic_pid] if self.traffic_pid else [])

    def servers_of(self, model: str) -> list[ServerState]:
        return [s for s in self.servers if s.model == model]

    def to_json(self) -> dict[str, Any]:
        return {
            "supervisor_pid": self.supervisor_pid,
            "state_dir": self.state_dir,
            "config": self.config,
            "started_at": self.started_at,
            "prometheus": {"url": self.prometheus_url, "pid": self.prometheus_pid},
            "daemon": {"pid": self.daemon_pid, "socket": self.daemon_socket},
            "traffic": {"pid": self.traffic_pid},
            "servers": [s.to_json() for s in self.servers],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DemoState:
        return cls(
            supervisor_pid=int(data["supervisor_pid"]),
            state_dir=str(data["state_dir"]),
            config=str(data["config"]),
            started_at=str(data.get("started_at", "")),
            prometheus_url=str(data["prometheus"]["url"]),
            prometheus_pid=int(data["prometheus"]["pid"]),
            daemon_pid=int(data["daemon"]["pid"]),
            daemon_socket=str(data["daemon"]["socket"]),
            traffic_pid=data["traffic"]["pid"],
            servers=tuple(ServerState.from_json(s) for s in data["servers"]),
        )


def write_state(layout: FleetLayout, state: DemoState) -> None:
    """Atomically (a reader never sees half a file)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.state_file.with_name(f".{STATE_FILE}.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, layout.state_file)


def read_state(layout: FleetLayout) -> DemoState | None:
    """The running demo's state, or None when no demo runs from this state dir.

    A ``demo.json`` whose supervisor is gone (killed with -9) counts as no demo.
    """
    try:
        data = json.loads(layout.state_file.read_text(encoding="utf-8"))
        state = DemoState.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if pid_alive(state.supervisor_pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not running; /proc says so (Linux).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
