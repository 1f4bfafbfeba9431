"""The one exception hierarchy of opsctl, and the exit code each error maps to.

::

    OpsctlError                      exit 1
     ├── UsageError(ValueError)      exit 2   bad arguments, bad command line
     ├── ConfigError(ValueError)     exit 2   a config file that cannot be used
     ├── NotFoundError(LookupError)  exit 3   unknown model, version, alert, ...
     ├── ConflictError               exit 4   someone else changed it first / state forbids it
     ├── IntegrityError              exit 5   tampered or missing artifact, unsafe path
     ├── DaemonUnavailableError      exit 6   the daemon does not answer
     ├── ConfirmationRequired        exit 7   a production change needs --yes off a terminal
     ├── MetricsSourceError          exit 1   Prometheus trouble (see subclasses)
     │    ├── PrometheusUnreachable
     │    ├── NoDataError
     │    └── StaleDataError
     ├── StorageError                exit 1   the state dir's file system refused a write (full, read-only)
     ├── TrainingError               exit 1   a retraining run failed or timed out
     └── ActuatorError               exit 1   a traffic split could not be applied

Errors take data and build their own message, so callers never format one.
"""

from __future__ import annotations


class OpsctlError(Exception):
    """Base of every error opsctl raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(OpsctlError, ValueError):
    exit_code = 2


class ConfigError(OpsctlError, ValueError):
    """A config file that cannot be used; names the file and the key."""

    exit_code = 2

    def __init__(self, problem: str, *, key: str | None = None, path: str | None = None) -> None:
        where = ""
        if path:
            where = f"{path}: "
        if key:
            where += f"[{key}] "
        super().__init__(f"{where}{problem}")
        self.key = key
        self.path = path
        self.problem = problem


class NotFoundError(OpsctlError, LookupError):
    exit_code = 3

    def __init__(self, kind: str, name: str, hint: str = "", *, message: str | None = None) -> None:
        if message is None:
            message = f"{kind} {name!r} not found"
            if hint:
                message += f" ({hint})"
        super().__init__(message)
        self.kind = kind
        self.name = name


class ConflictError(OpsctlError):
    """The change lost a race or the current state forbids it; nothing was changed."""

    exit_code = 4


class IntegrityError(OpsctlError):
    """An artifact failed verification or a path tried to leave its directory."""

    exit_code = 5


class DaemonUnavailableError(OpsctlError):
    """Nobody answers on the daemon's socket: no request reached it, so falling back is safe."""

    exit_code = 6


class ConfirmationRequired(OpsctlError):
    exit_code = 7


class MetricsSourceError(OpsctlError):
    """The metrics source could not give a usable answer."""


class PrometheusUnreachable(MetricsSourceError):
    pass


class MetricsAuthError(MetricsSourceError):
    """Prometheus answered but refused the credentials (401/403), or its TLS certificate is not trusted."""


class NoDataError(MetricsSourceError):
    pass


class StaleDataError(MetricsSourceError):
    pass


class StorageError(OpsctlError):
    """The state dir's file system refused a write: full, read-only, or not permitted."""


class TrainingError(OpsctlError):
    pass


class ActuatorError(OpsctlError):
    pass


EXIT_OK = 0
EXIT_FAILURE = 1


def exit_code_for(error: BaseException) -> int:
    """Map an exception to the documented exit code (1 for anything unexpected)."""
    if isinstance(error, OpsctlError):
        return error.exit_code
    return EXIT_FAILURE
