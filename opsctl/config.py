"""The one typed settings object, read from one TOML file.

Lookup order: ``--config FILE``, then ``$OPSCTL_CONFIG``, then
``/etc/opsctl/opsctl.toml``, then ``~/.config/opsctl/opsctl.toml``; with none of
them present the built-in defaults apply. Relative paths in the file are taken
relative to the file's own folder, so a config and its state can move together.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.errors import ConfigError
from opsctl.settings_loader import load_dataclass

if TYPE_CHECKING:
    from opsctl.adapters.actuators import ActuatorSettings
    from opsctl.adapters.alertmanager import AlertmanagerSettings
    from opsctl.adapters.ingest import IngestSettings
    from opsctl.adapters.prometheus import PrometheusSettings
    from opsctl.adapters.registry_engine import RegistrySettings
    from opsctl.core.alerts import AlertPolicy
    from opsctl.core.canary import CanaryPolicy
    from opsctl.core.drift_policy import DriftPolicy
    from opsctl.core.performance import PerformancePolicy
    from opsctl.core.retrain import RetrainPolicy
    from opsctl.core.sla import SlaThresholds
    from opsctl.core.window import WindowPolicy

SYSTEM_CONFIG = Path("/etc/opsctl/opsctl.toml")

# Upper bounds that keep every interval and timeout usable by the scheduler and by datetime arithmetic
# (1e308 seconds overflowed both): a year for job intervals, a day for timeouts, a century of retention.
MAX_INTERVAL_SECONDS = 365 * 86400.0
MAX_TIMEOUT_SECONDS = 86400.0
MAX_RETENTION_DAYS = 36500.0


def _is_root() -> bool:
    return os.geteuid() == 0


def default_state_dir() -> str:
    if _is_root():
        return "/var/lib/opsctl"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "opsctl")


def default_socket() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if _is_root() or not runtime:
        return "/run/opsctl/opsctl.sock"
    return str(Path(runtime) / "opsctl.sock")


@dataclass(frozen=True)
class DaemonSettings:
    """``[daemon]``: where the daemon keeps its state and listens."""

    state_dir: str = field(default_factory=default_state_dir)
    socket: str = field(default_factory=default_socket)
    socket_mode: str = "0660"
    # Off by default: a TCP listener needs a bearer token read from token_file.
    tcp_listen: str | None = None
    token_file: str | None = None
    # TLS on the TCP listener (both or neither): PEM certificate chain and its private key.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    retention_days: float = 14.0
    shutdown_timeout_seconds: float = 20.0
    connect_timeout_seconds: float = 0.5
    request_timeout_seconds: float = 5.0
    # The largest artifact (or reference sample) the API accepts, in bytes.
    max_upload_bytes: int = 10 * 1024**3
    # How an operator starts the daemon here; break-glass reports name it (the demo sets its own).
    start_command: str = "sudo systemctl start opsctl"
    # debug, info, warning or error; `opsctl daemon --log-level` overrides it.
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError(f"log_level must be debug, info, warning or error, got {self.log_level!r}")
        if not self.state_dir:
            raise ValueError("state_dir must not be empty")
        if not self.socket:
            raise ValueError("socket must not be empty")
        try:
            mode = int(self.socket_mode, 8)
        except ValueError:
            raise ValueError(f"socket_mode must be an octal string like '0660', got {self.socket_mode!r}") from None
        if mode & ~0o777:
            raise ValueError(f"socket_mode {self.socket_mode!r} has bits outside 0777")
        if mode & 0o002:
            raise ValueError(f"socket_mode {self.socket_mode!r} lets every local user change production;"
                             " use 0660 and a group")
        if self.tcp_listen is not None:
            host, sep, port = self.tcp_listen.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"tcp_listen must be HOST:PORT, got {self.tcp_listen!r}")
            if not self.token_file:
                raise ValueError("tcp_listen requires token_file (the TCP API always needs a bearer token)")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        if self.tls_cert_file and not self.tcp_listen:
            raise ValueError("tls_cert_file is for the TCP listener: set tcp_listen too")
        if not 0 < self.retention_days <= MAX_RETENTION_DAYS:
            raise ValueError(f"retention_days must be in (0, {MAX_RETENTION_DAYS:g}], got {self.retention_days}")
        if not 0 < self.max_upload_bytes <= 2**62:
            raise ValueError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        for name in ("shutdown_timeout_seconds", "connect_timeout_seconds", "request_timeout_seconds"):
            if not 0 < getattr(self, name) <= MAX_TIMEOUT_SECONDS:
                raise ValueError(f"{name} must be in (0, {MAX_TIMEOUT_SECONDS:g}], got {getattr(self, name)}")

    @property
    def registry_path(self) -> Path:
        return Path(self.state_dir) / "registry.db"

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.state_dir) / "artifacts"


@dataclass(frozen=True)
class JobsSettings:
    """``[jobs]``: how often each scheduled job runs, in seconds."""

    housekeeping_seconds: float = 60.0
    health_seconds: float = 15.0
    canary_seconds: float = 10.0
    drift_seconds: float = 300.0
    performance_seconds: float = 300.0
    ingest_seconds: float = 5.0
    alerts_seconds: float = 15.0
    # How often the daemon re-verifies the audit log's hash chain past the last verified row.
    audit_seconds: float = 60.0
    misfire_grace_seconds: float = 30.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            # `not 0 < value` also refuses NaN, which compares false with everything.
            if not 0 < value <= MAX_INTERVAL_SECONDS:
                raise ValueError(f"{f.name} must be in (0, {MAX_INTERVAL_SECONDS:g}] seconds, got {value}")


@dataclass(frozen=True)
class UiSettings:
    """``[ui]``: how the TUI presents this environment."""

    environment: str = "production"
    # Production contexts get a distinct, loud header colour.
    production: bool = True


# Sections whose settings classes live beside the code that uses them. They are
# validated on first use, so a one-shot `opsctl rollback` neither imports the
# statistics stack nor refuses to act over a typo in [drift]; the daemon and
# `opsctl config check` validate every section up front (Settings.validate).
_LAZY_SECTIONS: dict[str, str] = {
    "sla": "opsctl.core.sla:SlaThresholds",
    "alerts": "opsctl.core.alerts:AlertPolicy",
    "canary": "opsctl.core.canary:CanaryPolicy",
    "window": "opsctl.core.window:WindowPolicy",
    "performance": "opsctl.core.performance:PerformancePolicy",
    "drift": "opsctl.core.drift_policy:DriftPolicy",
    "prometheus": "opsctl.adapters.prometheus:PrometheusSettings",
    "alertmanager": "opsctl.adapters.alertmanager:AlertmanagerSettings",
    "retrain": "opsctl.core.retrain:RetrainPolicy",
    "ingest": "opsctl.adapters.ingest:IngestSettings",
    "actuators": "opsctl.adapters.actuators:ActuatorSettings",
    "registry": "opsctl.adapters.registry_engine:RegistrySettings",
}


# Keys a section no longer has, accepted so an older config still loads: each is dropped with a
# one-line warning (``Settings.warnings``) saying why it no longer matters.
_SEQUENTIAL = ("ignored: canary decisions are now sequential (exact tests valid at every look, "
               "pass on evidence of non-inferiority) and need no minimum sample or point-estimate tolerance")
_DEPRECATED_KEYS: dict[str, dict[str, str]] = {
    "canary": {
        "min_requests": _SEQUENTIAL,
        "min_labels": _SEQUENTIAL,
        "latency_ratio_tolerance": _SEQUENTIAL,
        "latency_slack_seconds": _SEQUENTIAL,
    },
}


def _drop_deprecated(name: str, table: Any) -> tuple[Any, list[str]]:
    """``table`` without the section's deprecated keys, and one warning per key dropped."""
    deprecated = _DEPRECATED_KEYS.get(name, {})
    if not deprecated or not isinstance(table, Mapping):
        return table, []
    found = [key for key in table if key in deprecated]
    kept = {key: value for key, value in table.items() if key not in deprecated}
    return kept, [f"{name}.{key} is deprecated and {deprecated[key]}" for key in found]


@dataclass(frozen=True)
class Settings:
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    source: str = "defaults"
    tables: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # One line per deprecated key the file sets (ignored); the CLI and the daemon print them.
    warnings: tuple[str, ...] = ()
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def section(self, name: str) -> Any:
        """The validated settings of a lazily loaded section (defaults when absent from the file)."""
        if name not in self._loaded:
            import importlib

            module_name, _, class_name = _LAZY_SECTIONS[name].partition(":")
            cls = getattr(importlib.import_module(module_name), class_name)
            self._loaded[name] = load_dataclass(cls, self.tables.get(name, {}), key=name, path=self.source)
        return self._loaded[name]

    def validate(self) -> Settings:
        """Validate every section now (raises ConfigError naming the first bad key)."""
        for name in _LAZY_SECTIONS:
            self.section(name)
        return self

    @property
    def sla(self) -> SlaThresholds:
        return self.section("sla")  # type: ignore[no-any-return]

    @property
    def alerts(self) -> AlertPolicy:
        return self.section("alerts")  # type: ignore[no-any-return]

    @property
    def canary(self) -> CanaryPolicy:
        return self.section("canary")  # type: ignore[no-any-return]

    @property
    def window(self) -> WindowPolicy:
        return self.section("window")  # type: ignore[no-any-return]

    @property
    def performance(self) -> PerformancePolicy:
        return self.section("performance")  # type: ignore[no-any-return]

    @property
    def drift(self) -> DriftPolicy:
        return self.section("drift")  # type: ignore[no-any-return]

    @property
    def prometheus(self) -> PrometheusSettings:
        return self.section("prometheus")  # type: ignore[no-any-return]

    @property
    def alertmanager(self) -> AlertmanagerSettings:
        return self.section("alertmanager")  # type: ignore[no-any-return]

    @property
    def retrain(self) -> RetrainPolicy:
        return self.section("retrain")  # type: ignore[no-any-return]

    @property
    def ingest(self) -> IngestSettings:
        return self.section("ingest")  # type: ignore[no-any-return]

    @property
    def actuators(self) -> ActuatorSettings:
        return self.section("actuators")  # type: ignore[no-any-return]

    @property
    def registry(self) -> RegistrySettings:
        return self.section("registry")  # type: ignore[no-any-return]


# Sections other modules own are registered here as they land, so config.py
# stays the one place that knows the file's shape.
_SECTIONS: dict[str, type] = {
    "daemon": DaemonSettings,
    "jobs": JobsSettings,
    "ui": UiSettings,
}


def find_config(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file to use, or None for built-in defaults."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("OPSCTL_CONFIG"):
        return Path(env["OPSCTL_CONFIG"])
    candidates = [SYSTEM_CONFIG, Path(env.get("HOME", str(Path.home()))) / ".config" / "opsctl" / "opsctl.toml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def load_settings(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Find, read and validate the config; raises ConfigError naming the file and key."""
    path = find_config(explicit, environ)
    if path is None:
        return Settings()
    return load_file(path)


def load_file(path: Path) -> Settings:
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", path=shown) from None
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", path=shown) from error
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", path=shown) from None
    return parse_settings(text, path=path)


def parse_settings(text: str, *, path: Path | None = None) -> Settings:
    shown = str(path) if path else "<config>"
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}", path=shown) from None
    values: dict[str, Any] = {}
    lazy: dict[str, Any] = {}
    warnings: list[str] = []
    known = [*_SECTIONS, *_LAZY_SECTIONS]
    for name, table in document.items():
        section = _SECTIONS.get(name)
        if section is None and name not in _LAZY_SECTIONS:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else f"; known sections: {', '.join(sorted(known))}"
            raise ConfigError(f"unknown section{hint}", key=name, path=shown)
        table, dropped = _drop_deprecated(name, table)
        warnings.extend(dropped)
        if section is None:
            if not isinstance(table, Mapping):
                raise ConfigError("must be a table", key=name, path=shown)
            lazy[name] = table
        else:
            values[name] = load_dataclass(section, table, key=name, path=shown)
    if path is not None:
        lazy = _resolve_http_files(lazy, path.parent)
    settings = Settings(**values, source=shown, tables=lazy, warnings=tuple(warnings))
    if path is not None:
        settings = _resolve_relative_paths(settings, path.parent)
    return settings


# http_config keys naming files ([prometheus.basic_auth] password_file, ...), relative to the config's folder.
_HTTP_FILE_KEYS = {"basic_auth": ("password_file",), "authorization": ("credentials_file",),
                   "tls_config": ("ca_file", "cert_file", "key_file")}


def _resolve_http_files(tables: dict[str, Any], base: Path) -> dict[str, Any]:
    """The lazy tables with relative secret/CA file paths of [prometheus] and [alertmanager] made absolute."""

    def absolute(value: Any) -> Any:
        return str((base / value).resolve()) if isinstance(value, str) and value and not os.path.isabs(value) \
            else value

    out = dict(tables)
    for section in ("prometheus", "alertmanager"):
        table = tables.get(section)
        if not isinstance(table, Mapping):
            continue
        table = dict(table)
        for sub, keys in _HTTP_FILE_KEYS.items():
            if isinstance(table.get(sub), Mapping):
                table[sub] = {k: absolute(v) if k in keys else v for k, v in table[sub].items()}
        headers = table.get("http_headers")
        if isinstance(headers, Mapping):
            table["http_headers"] = {
                name: ({**value, "files": [absolute(f) for f in value["files"]]}
                       if isinstance(value, Mapping) and isinstance(value.get("files"), list) else value)
                for name, value in headers.items()}
        out[section] = table
    return out


def _resolve_relative_paths(settings: Settings, base: Path) -> Settings:
    daemon = settings.daemon
    changes: dict[str, str] = {}
    for name in ("state_dir", "socket", "token_file"):
        value = getattr(daemon, name)
        if value and not os.path.isabs(value):
            changes[name] = str((base / value).resolve())
    if not changes:
        return settings
    return replace(settings, daemon=replace(daemon, **changes), _loaded={})
