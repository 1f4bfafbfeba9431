"""A demo model server: one model, one or more versions, a real HTTP process.

::

    python -m opsctl.demo.server --model fraud-detector \\
        --version 1.0.0=/path/fraud-1.0.0.joblib:SHA256 --version 1.1.0=/path/fraud-1.1.0.joblib:SHA256 \\
        --split 1.0.0=95 --split 1.1.0=5 --port 8101 --log-dir /tmp/demo/logs

Artifacts are loaded with joblib only after their sha256 matches the one given (the
registry hands out path and hash); a mismatch exits with code 5 and one line on stderr.
The version for a request is chosen by the SDK's stable-hash ``TrafficRouter`` on the
request's ``id``; the split comes from the daemon (``--routing-url`` or
``--routing-socket``) and/or the routing document next to the registry (``--routing-document``:
how a break-glass rollback made while the daemon is down reaches this server), refreshed every
``--routing-ttl`` seconds (the newer of the two wins, last known split kept), or is static
(``--split``, default: all traffic to the first version).

With ``--artifacts-dir`` (the daemon's artifact store), a split naming a version the server
does not load yet (a retrained candidate going into a canary) makes it ask the daemon for the
version (``GET /v1/models/{model}/versions``: artifact name and sha256), load the verified
artifact and then follow the split, as a deployment would roll the new version out. Without it,
or when loading fails, the last split it can honour stays.

Endpoints (JSON):

* ``POST /predict`` ``{"id": "user-7", "prediction_id": "p-1", "features": {...}}`` ->
  ``{"prediction_id", "model", "version", "prediction", "score"}`` (``id`` and
  ``prediction_id`` are optional; the routing key is ``id``, else the prediction id).
* ``POST /feedback`` ``{"prediction_id": "p-1", "label": 1}`` -> ``{"matched": true, "version": "1.0.0"}``;
  updates ``model_accuracy`` over the last ``--accuracy-window`` labelled predictions per version.
* ``GET /metrics`` (Prometheus text), ``GET /healthz``.
* ``GET /fault``, ``POST /fault`` ``{"kind": "errors", "level": 0.5, "versions": [...]}``,
  ``DELETE /fault[?kind=errors]``; see :mod:`opsctl.demo.faults`.

It binds 127.0.0.1 only. ``--port 0`` picks a free port; ``--ready-file`` receives
``{"port": ..., "pid": ...}`` once the socket listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import sys
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, ProcessCollector, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opsctl.demo import models
from opsctl.demo.faults import CRASH_EXIT_CODE, Fault, FaultKind, FaultState
from opsctl.errors import IntegrityError, OpsctlError, UsageError
from opsctl.sdk.metrics import ModelMetrics
from opsctl.sdk.predlog import FeedbackLogger, PredictionLogger
from opsctl.sdk.router import RoutingTableClient, TrafficRouter, validate_weights

HOST = "127.0.0.1"
_REMEMBERED_PREDICTIONS = 100_000


@dataclass(frozen=True)
class VersionArg:
    version: str
    path: Path
    sha256: str


def parse_version_arg(text: str) -> VersionArg:
    """``VERSION=PATH:SHA256`` (the path may itself contain ``:``; the hash is after the last one)."""
    version, sep, rest = text.partition("=")
    path, colon, digest = rest.rpartition(":")
    if not sep or not colon or not version or not path:
        raise UsageError(f"--version {text!r}: expected VERSION=ARTIFACT_PATH:SHA256")
    if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise UsageError(f"--version {text!r}: {digest!r} is not a sha256 hex digest")
    return VersionArg(version, Path(path), digest.lower())


def parse_split_args(items: Sequence[str]) -> tuple[tuple[str, float], ...]:
    pairs = []
    for item in items:
        version, sep, weight = item.partition("=")
        try:
            pairs.append((version, float(weight)))
        except ValueError:
            raise UsageError(f"--split {item!r}: expected VERSION=PERCENT") from None
        if not sep:
            raise UsageError(f"--split {item!r}: expected VERSION=PERCENT")
    try:
        return validate_weights(pairs)
    except ValueError as error:
        raise UsageError(f"--split: {error}") from error


class ModelServer:
    """The application state and the Starlette app of one model server."""

    def __init__(
        self,
        model: str,
        estimators: dict[str, Any],
        log_dir: Path,
        *,
        split: Sequence[tuple[str, float]] | None = None,
        routing: RoutingTableClient | None = None,
        routing_ttl_seconds: float = 2.0,
        accuracy_window: int = 200,
        registry: CollectorRegistry | None = None,
        seed: int | None = None,
        version_source: Callable[[str], VersionArg | None] | None = None,
    ) -> None:
        self.spec = models.spec(model)
        self.model = model
        self.estimators = estimators
        self.registry = registry or CollectorRegistry()
        self.metrics = {v: ModelMetrics(model, v, registry=self.registry) for v in estimators}
        self.router = TrafficRouter(split or [(next(iter(estimators)), 100.0)])
        if not self._servable(self.router):
            raise UsageError(f"split {self.router.as_dict()} names versions this server does not load")
        self.routing = routing
        self.routing_ttl_seconds = routing_ttl_seconds
        self.version_source = version_source
        self.faults = FaultState(random.Random(seed))
        self._rng = random.Random(seed)
        self.accuracy_window = accuracy_window
        self.windows = {v: deque[bool](maxlen=accuracy_window) for v in estimators}
        self._predictions: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self.prediction_log = PredictionLogger(log_dir, model, next(iter(estimators)), registry=self.registry)
        self.feedback_log = FeedbackLogger(log_dir, model, registry=self.registry)
        self._fault_gauge = Gauge(
            "opsctl_demo_fault_active",
            "1 while a game-day fault of this kind is injected into this version",
            ["model", "model_version", "kind"],
            registry=self.registry,
        )
        self._routing_rejected = Gauge(
            "opsctl_demo_routing_split_rejected",
            "1 while the daemon's split names a version this server does not serve",
            ["model"],
            registry=self.registry,
        )
        self._routing_rejected.labels(model).set(0)
        self._update_fault_gauge()
        ProcessCollector(registry=self.registry)
        self.app = Starlette(
            routes=[
                Route("/predict", self.predict, methods=["POST"]),
                Route("/feedback", self.feedback, methods=["POST"]),
                Route("/metrics", self.metrics_endpoint, methods=["GET"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/fault", self.fault, methods=["GET", "POST", "DELETE"]),
            ],
            lifespan=self._lifespan,
        )

    def _servable(self, router: TrafficRouter) -> bool:
        return all(v in self.estimators for v, w in router.weights if w > 0)

    # --- lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        task = None
        if self.routing is not None:
            await asyncio.to_thread(self._refresh_routing)
            task = asyncio.create_task(self._routing_loop())
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(self.close)
            # uvicorn then re-raises the SIGTERM/SIGINT it caught, so a supervisor sees -15/-2;
            # this line is how it tells a graceful stop (logs flushed) from a kill.
            print(f"opsctl-demo-server: {self.model} stopped, logs flushed", file=sys.stderr, flush=True)

    async def _routing_loop(self) -> None:
        while True:
            await asyncio.sleep(self.routing_ttl_seconds)
            await asyncio.to_thread(self._refresh_routing)

    def _refresh_routing(self) -> None:
        assert self.routing is not None
        if self.faults.routing_stuck():
            return  # the injected fault: this server no longer follows routing changes
        self.routing.refresh()
        split = self.routing.current()
        if split is None:
            return
        candidate = TrafficRouter(split.weights)
        if candidate == self.router:
            return
        if not self._servable(candidate) and self.version_source is not None:
            for version, weight in candidate.weights:
                if weight > 0 and version not in self.estimators:
                    self._add_version(version)
        if self._servable(candidate):
            self.router = candidate
            self._routing_rejected.labels(self.model).set(0)
        else:  # keep serving the last split we can honour
            self._routing_rejected.labels(self.model).set(1)

    def _add_version(self, version: str) -> None:
        """Load a version the daemon's split names (verified artifact); on failure, leave it out."""
        assert self.version_source is not None
        try:
            found = self.version_source(version)
            if found is None:
                return
            estimator = models.load_artifact(found.path, found.sha256)
        except (OpsctlError, OSError, ValueError) as error:
            print(f"opsctl-demo-server: cannot load {self.model} {version}: {error}", file=sys.stderr, flush=True)
            return
        # Metrics and windows first: a request is routed to the version only once the router
        # (swapped after this returns) names it.
        self.metrics[version] = ModelMetrics(self.model, version, registry=self.registry)
        self.windows[version] = deque[bool](maxlen=self.accuracy_window)
        self.estimators[version] = estimator
        self._update_fault_gauge()
        print(f"opsctl-demo-server: {self.model} now serves {version} too", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.prediction_log.close()
        self.feedback_log.close()
        if self.routing is not None:
            self.routing.close()

    # --- endpoints -------------------------------------------------------------------------

    async def predict(self, request: Request) -> Response:
        try:
            body = await request.json()
            features = body["features"]
            if not isinstance(features, dict):
                raise ValueError("features must be an object")
            frame = models.rows_to_frame(self.model, [features])
        except (ValueError, KeyError, TypeError) as error:
            return JSONResponse({"error": f"bad request: {error}"}, status_code=422)
        prediction_id = str(body.get("prediction_id") or uuid.uuid4().hex)
        version = self.router.route(str(body.get("id") or prediction_id))
        metrics = self.metrics[version]
        with metrics.time() as timer:
            delay = self.faults.added_latency(version)
            if delay:
                await asyncio.sleep(delay)
            if self.faults.should_fail(version):
                timer.mark_error()
                return JSONResponse({"error": "injected fault: errors", "version": version}, status_code=500)
            drift = self.faults.drift(version)
            if drift is not None:
                frame = await run_in_threadpool(self._drift, frame, drift)
            try:
                score = float((await run_in_threadpool(models.predict_scores, self.estimators[version], frame))[0])
            except Exception as error:  # a broken model is a 500, counted as an error by the timer
                return JSONResponse({"error": f"prediction failed: {type(error).__name__}"}, status_code=500)
        prediction = int(score >= 0.5)
        assert timer.elapsed_seconds is not None
        self._remember(prediction_id, version, prediction)
        logged_features = models.frame_rows(frame)[0] if drift is not None else features
        self.prediction_log.log(
            prediction_id,
            logged_features,
            prediction,
            score,
            round(timer.elapsed_seconds * 1000.0, 3),
            version=version,
        )
        return JSONResponse(
            {
                "prediction_id": prediction_id,
                "model": self.model,
                "version": version,
                "prediction": prediction,
                "score": score,
            }
        )

    def _drift(self, frame: Any, fault: Fault) -> Any:
        import numpy as np

        names = fault.features or tuple(self.spec.feature_names[:2])
        rng = np.random.default_rng(self._rng.getrandbits(64))
        return models.apply_drift(self.spec, frame, {name: fault.level for name in names}, rng)

    def _remember(self, prediction_id: str, version: str, prediction: int) -> None:
        self._predictions[prediction_id] = (version, prediction)
        if len(self._predictions) > _REMEMBERED_PREDICTIONS:
            self._predictions.popitem(last=False)

    async def feedback(self, request: Request) -> Response:
        try:
            body = await request.json()
            prediction_id = str(body["prediction_id"])
            label = body["label"]
            if label not in (0, 1):
                raise ValueError(f"label must be 0 or 1, got {label!r}")
            label = int(label)
        except (ValueError, KeyError, TypeError) as error:
            return JSONResponse({"error": f"bad request: {error}"}, status_code=422)
        known = self._predictions.get(prediction_id)
        version = known[0] if known else None
        if version is not None:
            label = self.faults.noisy_label(version, label)
        self.feedback_log.log(prediction_id, label)
        if known is None:
            return JSONResponse({"matched": False, "version": None})
        window = self.windows[known[0]]
        window.append(known[1] == label)
        self.metrics[known[0]].set_accuracy(sum(window) / len(window))
        return JSONResponse({"matched": True, "version": known[0]})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "model": self.model,
                "versions": list(self.estimators),
                "split": [{"version": v, "weight": w} for v, w in self.router.weights],
                "routing": self.routing.current().to_json() if self.routing and self.routing.current() else None,
                "faults": [f.to_json() for f in self.faults.active()],
                "pid": os.getpid(),
            }
        )

    async def fault(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"faults": [f.to_json() for f in self.faults.active()]})
        if request.method == "DELETE":
            kind_text = request.query_params.get("kind")
            try:
                kind = FaultKind(kind_text) if kind_text else None
            except ValueError:
                return JSONResponse({"error": f"unknown fault kind {kind_text!r}"}, status_code=422)
            removed = self.faults.clear(kind)
            self._update_fault_gauge()
            return JSONResponse({"cleared": [f.to_json() for f in removed]})
        try:
            fault = Fault.from_json(await request.json())
            unknown = [v for v in fault.versions if v not in self.estimators]
            if unknown:
                raise ValueError(f"this server does not serve versions {', '.join(unknown)}")
            for name in fault.features:
                self.spec.feature(name)
        except (ValueError, OpsctlError) as error:
            return JSONResponse({"error": str(error)}, status_code=422)
        if fault.kind == FaultKind.CRASH:
            # Answer first, then die without cleanup, the way a segfaulting server would.
            return JSONResponse(
                {"fault": fault.to_json(), "exiting": True},
                status_code=202,
                background=BackgroundTask(_crash_soon),
            )
        self.faults.set(fault)
        self._update_fault_gauge()
        return JSONResponse({"fault": fault.to_json()})

    def _update_fault_gauge(self) -> None:
        active = {f.kind: f for f in self.faults.active()}
        for version in self.estimators:
            for kind in FaultKind:
                if kind == FaultKind.CRASH:
                    continue
                fault = active.get(kind)
                on = fault is not None and fault.applies_to(version)
                self._fault_gauge.labels(self.model, version, kind.value).set(1 if on else 0)


async def _crash_soon() -> None:
    await asyncio.sleep(0.05)
    sys.stderr.write("opsctl-demo-server: injected crash fault, exiting\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT_CODE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m opsctl.demo.server", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, choices=sorted(models.SPECS))
    parser.add_argument("--version", dest="versions", action="append", required=True,
                        metavar="V=ARTIFACT_PATH:SHA256")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--split", action="append", default=[], metavar="V=PERCENT")
    routing = parser.add_mutually_exclusive_group()
    routing.add_argument("--routing-url", help="daemon base URL serving GET /v1/routing/{model}")
    routing.add_argument("--routing-socket", help="daemon Unix socket serving GET /v1/routing/{model}")
    parser.add_argument("--routing-document", type=Path, metavar="FILE",
                        help="the routing document (routing.json next to the registry); works without the daemon")
    parser.add_argument("--routing-ttl", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--artifacts-dir", type=Path, metavar="DIR",
                        help="the daemon's artifact store: load versions the daemon's split names on demand")
    parser.add_argument("--accuracy-window", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="seed for fault randomness")
    parser.add_argument("--ready-file", type=Path, help='write {"port", "pid"} here once listening')
    return parser


def _load(args: argparse.Namespace) -> ModelServer:
    version_args = [parse_version_arg(text) for text in args.versions]
    seen = [v.version for v in version_args]
    if len(set(seen)) != len(seen):
        raise UsageError(f"--version given twice for the same version: {seen}")
    estimators = {v.version: models.load_artifact(v.path, v.sha256) for v in version_args}
    split = parse_split_args(args.split) if args.split else None
    registry = CollectorRegistry()
    routing = None
    if args.routing_url or args.routing_socket or args.routing_document:
        routing = RoutingTableClient(
            args.routing_url,
            socket_path=args.routing_socket,
            document_path=args.routing_document,
            model=args.model,
            ttl_seconds=args.routing_ttl,
            timeout=1.0,
            fallback=dict(split or [(version_args[0].version, 100.0)]),
            registry=registry,
        )
    version_source = None
    if args.artifacts_dir is not None:
        if not (args.routing_url or args.routing_socket):
            raise UsageError("--artifacts-dir needs --routing-url or --routing-socket (the daemon says what to load)")
        version_source = daemon_versions(args.model, args.artifacts_dir, url=args.routing_url,
                                         socket_path=args.routing_socket)
    return ModelServer(
        args.model,
        estimators,
        args.log_dir,
        split=split,
        routing=routing,
        routing_ttl_seconds=args.routing_ttl,
        accuracy_window=args.accuracy_window,
        registry=registry,
        seed=args.seed,
        version_source=version_source,
    )


def daemon_versions(model: str, artifacts_dir: Path, *, url: str | None = None,
                    socket_path: str | None = None) -> Callable[[str], VersionArg | None]:
    """A lookup of ``model``'s versions through the daemon's API: version -> its artifact in ``artifacts_dir``."""
    import httpx

    def lookup(version: str) -> VersionArg | None:
        transport = httpx.HTTPTransport(uds=socket_path) if socket_path else None
        try:
            with httpx.Client(base_url=url or "http://opsctld", transport=transport, timeout=5.0) as client:
                response = client.get(f"/v1/models/{quote(model, safe='')}/versions")
                response.raise_for_status()
                listed = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise OpsctlError(f"the daemon did not list {model}'s versions: {error}") from error
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict) and item.get("version") == version:
                artifact = Path(str(item["artifact"]))
                if artifact.is_absolute() or ".." in artifact.parts:
                    raise IntegrityError(f"{model} {version}: artifact name {artifact} is not inside the store")
                return VersionArg(version, artifacts_dir / artifact, str(item["sha256"]).lower())
        return None

    return lookup


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    args = build_parser().parse_args(argv)
    try:
        server = _load(args)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, args.port))
        sock.listen(128)
    except IntegrityError as error:
        print(f"opsctl-demo-server: {error}", file=sys.stderr)
        return error.exit_code
    except OpsctlError as error:
        print(f"opsctl-demo-server: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"opsctl-demo-server: cannot listen on {HOST}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    if args.ready_file:
        temp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        temp.write_text(json.dumps({"port": port, "pid": os.getpid(), "started_at": time.time()}))
        temp.replace(args.ready_file)  # atomic: a reader never sees half a file
    print(f"{args.model} serving {', '.join(server.estimators)} on http://{HOST}:{port}", flush=True)
    config = uvicorn.Config(server.app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
