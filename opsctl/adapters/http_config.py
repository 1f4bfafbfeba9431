"""How opsctl talks to an authenticated Prometheus or Alertmanager: Prometheus' own ``http_config`` names.

A block written for a Prometheus scrape or remote-read config can be copied under ``[prometheus]`` or
``[alertmanager]``::

    [prometheus.basic_auth]
    username = "opsctl"
    password_file = "/etc/opsctl/prometheus.password"
    [prometheus.authorization]          # or a bearer token instead of basic auth
    type = "Bearer"
    credentials_file = "/etc/opsctl/prometheus.token"
    [prometheus.tls_config]
    ca_file = "/etc/opsctl/ca.pem"
    cert_file = "/etc/opsctl/client.pem"
    key_file = "/etc/opsctl/client.key"
    server_name = "prometheus.internal"
    insecure_skip_verify = false
    [prometheus.http_headers]
    X-Scope-OrgID = "team-a"                    # a plain value, or Prometheus' form:
    X-Extra = { values = ["a"], files = ["/etc/opsctl/extra-header"] }

Secrets only ever come from files, read at every request (so a rotated password or token is used at
once); the settings hold paths, never secret values, so neither logs nor
``opsctl config check`` can print one. :func:`check_files` is what ``config check`` and the daemon's
preflight run; :func:`describe_http_error` turns httpx/TLS failures into the one-line reasons shown in
health and status ("authentication failed (401) at URL", "TLS: unknown authority ...").
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from opsctl.errors import ConfigError

_HEADER_NAME_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Headers the client sets itself; letting config override them would break auth or framing silently.
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "content-type", "transfer-encoding"})


@dataclass(frozen=True)
class BasicAuth:
    """``basic_auth``: user name and the file holding the password."""

    username: str = ""
    password_file: str = ""

    def __post_init__(self) -> None:
        if not self.username:
            raise ValueError("basic_auth.username must not be empty")
        if not self.password_file:
            raise ValueError("basic_auth.password_file must name a file (passwords are never written inline)")


@dataclass(frozen=True)
class Authorization:
    """``authorization``: ``Authorization: <type> <credentials read from credentials_file>``."""

    type: str = "Bearer"
    credentials_file: str = ""

    def __post_init__(self) -> None:
        if not self.type or any(c.isspace() for c in self.type):
            raise ValueError(f"authorization.type must be one word like 'Bearer', got {self.type!r}")
        if self.type.lower() == "basic":
            raise ValueError("authorization.type 'Basic' is not allowed; use [basic_auth] instead")
        if not self.credentials_file:
            raise ValueError("authorization.credentials_file must name a file (credentials are never written inline)")


@dataclass(frozen=True)
class TlsConfig:
    """``tls_config``: the CA to trust, a client certificate, the expected server name."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    insecure_skip_verify: bool = False

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("tls_config.cert_file and tls_config.key_file go together (a client certificate needs "
                             "its key)")


@dataclass(frozen=True)
class HeaderValues:
    """Prometheus' long form of one header: literal ``values`` and ``files`` whose content is a value."""

    values: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.values and not self.files:
            raise ValueError("a header needs values or files")


@dataclass(frozen=True)
class HttpConfig:
    """Everything needed to build an HTTP client for one Prometheus or Alertmanager (paths, no secrets)."""

    timeout_seconds: float = 5.0
    connect_timeout_seconds: float | None = None
    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    tls_config: TlsConfig = field(default_factory=TlsConfig)
    http_headers: dict[str, str | HeaderValues] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_http_fields(self.timeout_seconds, self.connect_timeout_seconds, self.basic_auth, self.authorization,
                          self.http_headers)

    def files(self) -> tuple[tuple[str, str], ...]:
        """(setting key, path) of every file this config reads."""
        out: list[tuple[str, str]] = []
        if self.basic_auth:
            out.append(("basic_auth.password_file", self.basic_auth.password_file))
        if self.authorization:
            out.append(("authorization.credentials_file", self.authorization.credentials_file))
        for key in ("ca_file", "cert_file", "key_file"):
            value = getattr(self.tls_config, key)
            if value:
                out.append((f"tls_config.{key}", value))
        for name, value in sorted(self.http_headers.items()):
            if isinstance(value, HeaderValues):
                out.extend((f"http_headers.{name}.files[{i}]", path) for i, path in enumerate(value.files))
        return tuple(out)

    @property
    def scheme_note(self) -> str:
        """What this config authenticates with, without a secret (for doctor and status lines)."""
        parts = []
        if self.basic_auth:
            parts.append(f"basic auth as {self.basic_auth.username}")
        if self.authorization:
            parts.append(f"{self.authorization.type} credentials")
        if self.tls_config.ca_file:
            parts.append(f"CA {self.tls_config.ca_file}")
        if self.tls_config.cert_file:
            parts.append("client certificate")
        if self.tls_config.insecure_skip_verify:
            parts.append("TLS verification OFF")
        if self.http_headers:
            parts.append("headers " + ", ".join(sorted(self.http_headers)))
        return "; ".join(parts) or "no authentication"


def check_http_fields(timeout_seconds: float, connect_timeout_seconds: float | None, basic_auth: BasicAuth | None,
                      authorization: Authorization | None, http_headers: dict[str, Any]) -> None:
    """The checks shared by every section that carries http_config fields (raises ValueError)."""
    if not timeout_seconds > 0:
        raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
    if connect_timeout_seconds is not None and not 0 < connect_timeout_seconds <= timeout_seconds:
        raise ValueError(f"connect_timeout_seconds must be in (0, timeout_seconds], got {connect_timeout_seconds}")
    if basic_auth is not None and authorization is not None:
        raise ValueError("basic_auth and authorization are mutually exclusive (both set the Authorization header)")
    for name in http_headers:
        if not name or not set(name) <= _HEADER_NAME_CHARS:
            raise ValueError(f"http_headers: {name!r} is not an HTTP header name")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"http_headers: {name} is set by opsctl itself (use basic_auth / authorization)")


def _read_secret(path: str, key: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist", key=key) from None
    except PermissionError:
        raise ConfigError(f"{path} is not readable by this user (uid {os.geteuid()})", key=key) from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a file", key=key) from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}", key=key) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", key=key) from None
    # Files written by `echo secret > file` end in a newline that is not part of the secret.
    value = text.strip()
    if not value:
        raise ConfigError(f"{path} is empty", key=key)
    return value


def check_files(http: HttpConfig, section: str) -> None:
    """Every file the config names exists and is readable (raises ConfigError naming the key); CA and
    client certificate are loaded to catch a wrong file early. Reads secrets only to check them."""
    for key, path in http.files():
        _read_secret(path, f"{section}.{key}")
    _ssl_context(http, section)


def _ssl_context(http: HttpConfig, section: str) -> ssl.SSLContext | bool:
    tls = http.tls_config
    if tls.insecure_skip_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif tls.ca_file:
        try:
            context = ssl.create_default_context(cafile=tls.ca_file)
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(f"{tls.ca_file} is not a usable CA file: {error}", key=f"{section}.tls_config.ca_file") \
                from None
    elif tls.cert_file:
        context = ssl.create_default_context()
    else:
        return True
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(f"cannot load the client certificate {tls.cert_file} with key {tls.key_file}: {error}",
                              key=f"{section}.tls_config.cert_file") from None
    return context


def headers(http: HttpConfig, section: str) -> dict[str, str]:
    """The request headers: authorization (from its file or basic auth) and the configured extra headers."""
    out: dict[str, str] = {}
    for name, value in http.http_headers.items():
        if isinstance(value, str):
            out[name] = value
        else:
            parts = [*value.values, *(_read_secret(p, f"{section}.http_headers.{name}") for p in value.files)]
            out[name] = ", ".join(parts)
    if http.authorization is not None:
        credentials = _read_secret(http.authorization.credentials_file, f"{section}.authorization.credentials_file")
        out["Authorization"] = f"{http.authorization.type} {credentials}"
    elif http.basic_auth is not None:
        password = _read_secret(http.basic_auth.password_file, f"{section}.basic_auth.password_file")
        token = base64.b64encode(f"{http.basic_auth.username}:{password}".encode()).decode("ascii")
        out["Authorization"] = f"Basic {token}"
    return out


class _FileSecrets(httpx.Auth):
    """Reads the secret files at every request, so a rotated password or token is used at once (no restart,
    no reload); a file that became unreadable raises ConfigError naming the key."""

    def __init__(self, http: HttpConfig, section: str) -> None:
        self._http = http
        self._section = section

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers.update(headers(self._http, self._section))
        yield request


def build_client(http: HttpConfig, section: str, *, check_secrets: bool = True) -> httpx.Client:
    """An ``httpx.Client`` carrying this config's auth, TLS and headers.

    Reads every secret file now (raises ConfigError naming the key when one is missing or unreadable;
    ``check_secrets=False`` skips that, for a client that should start working once the file is fixed),
    then again at each request. A CA or client certificate that cannot be loaded always raises.
    """
    if check_secrets:
        headers(http, section)
    timeout = httpx.Timeout(http.timeout_seconds, connect=http.connect_timeout_seconds or http.timeout_seconds)
    transport = None
    verify = _ssl_context(http, section)
    if http.tls_config.server_name and not http.tls_config.insecure_skip_verify:
        # Verify the certificate against server_name while connecting to the URL's host (an IP, a
        # load balancer): httpx passes the request extension through to the TLS handshake.
        transport = _ServerNameTransport(http.tls_config.server_name, verify=verify)
    return httpx.Client(auth=_FileSecrets(http, section), timeout=timeout, verify=verify, transport=transport)


class _ServerNameTransport(httpx.HTTPTransport):
    def __init__(self, server_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._server_name = server_name

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions, "sni_hostname": self._server_name}
        return super().handle_request(request)


def describe_http_error(error: BaseException, url: str) -> str:
    """One line naming the cause: TLS trust, TLS name, refused, timed out, or the plain error."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(str(e) for e in chain)
    if "CERTIFICATE_VERIFY_FAILED" in text or any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        if "Hostname mismatch" in text or "doesn't match" in text or "IP address mismatch" in text:
            return f"TLS: certificate name mismatch at {url} (set [tls_config] server_name to the name it was issued " \
                   "for)"
        return f"TLS: unknown authority at {url} (the server's certificate is not signed by a trusted CA; set " \
               "tls_config.ca_file)"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"TLS: the server at {url} does not speak TLS (use http://) or expects it (use https://)"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return f"TLS: handshake with {url} failed: {error}"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out at {url}"
    if isinstance(error, httpx.ConnectError):
        return f"unreachable at {url}: {error}"
    return f"{type(error).__name__} at {url}: {error}"[:300]


def describe_status(status_code: int, url: str) -> str | None:
    """The reason for an authentication/authorization refusal, or None for other codes."""
    if status_code == 401:
        return f"authentication failed (401) at {url}: check basic_auth / authorization credentials"
    if status_code == 403:
        return f"authorization failed (403) at {url}: the credentials are not allowed to read this"
    return None
