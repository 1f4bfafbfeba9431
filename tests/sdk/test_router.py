from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opsctl.errors import DaemonUnavailableError
from opsctl.sdk.router import BUCKETS, RoutingTableClient, TrafficRouter, bucket_of
from tests.fixtures.wait import wait_for

# The two ways the router is used: a canary stage and an A/B test.
SPLITS = [{"1.0.0": 90.0, "1.1.0": 10.0}, {"1.0.0": 50.0, "1.1.0": 50.0}]
N_IDS = 10_000

_ASSIGN = (
    "import json, sys\n"
    "from opsctl.sdk.router import TrafficRouter\n"
    "routers = [TrafficRouter(w) for w in json.loads(sys.argv[1])]\n"
    "print(json.dumps([[r.route(f'user-{i}') for i in range(int(sys.argv[2]))] for r in routers]))\n"
)


def assignments_in_subprocess(hash_seed: str) -> list[list[str]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", _ASSIGN, json.dumps(SPLITS), str(N_IDS)],
        capture_output=True, text=True, timeout=30, check=True, env=env,
    )
    return json.loads(result.stdout)


def test_two_processes_assign_10000_ids_identically_and_split_matches_weights() -> None:
    # Different hash seeds: the chapter's hash(request_id) % 100 would disagree here.
    first = assignments_in_subprocess("1")
    second = assignments_in_subprocess("2")
    assert first == second
    for weights, assigned in zip(SPLITS, first, strict=True):
        assert len(assigned) == N_IDS
        assert assigned == [TrafficRouter(weights).route(f"user-{i}") for i in range(N_IDS)]
        shares = Counter(assigned)
        for version, weight in weights.items():
            assert abs(100.0 * shares[version] / N_IDS - weight) < 1.0, (version, shares)


def test_buckets_are_uniform() -> None:
    # 1 pp on 10,000 ids is a ~2-sigma band for a 50/50 split, so the split test alone
    # cannot show the hash is fair: a chi-squared test over 200,000 ids in 100 bins can.
    from scipy.stats import chisquare

    counts = [0] * 100
    for i in range(200_000):
        counts[bucket_of(f"user-{i}") * 100 // BUCKETS] += 1
    assert chisquare(counts).pvalue > 0.001


def test_bucket_is_a_fixed_function_of_the_key() -> None:
    # Pinned values: changing the hash would silently move every user to another variant.
    assert [bucket_of(k) for k in ("alice", "bob", "user-0")] == [5339, 5939, 8749]
    # A salt gives an independent assignment per experiment.
    assert (bucket_of("alice", salt="exp-1"), bucket_of("alice", salt="exp-2")) == (9021, 1632)


def test_raising_the_canary_weight_only_moves_users_onto_the_canary() -> None:
    before = TrafficRouter([("1.0.0", 95.0), ("1.1.0", 5.0)])
    after = TrafficRouter([("1.0.0", 90.0), ("1.1.0", 10.0)])
    for i in range(N_IDS):
        key = f"user-{i}"
        if before.route(key) == "1.1.0":
            assert after.route(key) == "1.1.0"


def test_zero_weight_gets_nothing_and_full_weight_gets_everything() -> None:
    router = TrafficRouter([("1.0.0", 100.0), ("1.1.0", 0.0)])
    assert {router.route(f"u{i}") for i in range(2000)} == {"1.0.0"}
    router = TrafficRouter([("1.0.0", 0.0), ("1.1.0", 100.0)])
    assert {router.route(f"u{i}") for i in range(2000)} == {"1.1.0"}


@pytest.mark.parametrize(
    "weights",
    [{}, {"a": 50.0, "b": 40.0}, {"a": 110.0, "b": -10.0}, {"a": float("nan")}, {"": 100.0}],
)
def test_invalid_weights_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TrafficRouter(weights)


class FakeDaemon:
    """A real Starlette app on uvicorn in a thread, serving GET /v1/routing/{model}; can stop and restart."""

    def __init__(self) -> None:
        self.splits = [{"version": "1.0.0", "weight": 95.0}, {"version": "1.1.0", "weight": 5.0}]
        self.generation: int | None = None
        self.requests = 0
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def routing(self, request: Request) -> JSONResponse:
        self.requests += 1
        body = {"model": request.path_params["model"], "splits": self.splits, "updated_at": "2026-01-01T00:00:00Z"}
        if self.generation is not None:
            body["generation"] = self.generation
        return JSONResponse(body)

    def start(self) -> None:
        app = Starlette(routes=[Route("/v1/routing/{model}", self.routing)])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        server = self._server
        wait_for(lambda: server.started, 10, 0.01, what="the fake daemon to start")

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)
        assert not self._thread.is_alive()


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    fake = FakeDaemon()
    fake.start()
    yield fake
    if fake._thread is not None and fake._thread.is_alive():
        fake.stop()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_client_reads_caches_and_keeps_last_known_split_when_daemon_goes_away(daemon: FakeDaemon) -> None:
    registry = CollectorRegistry()
    clock = FakeMonotonic()
    client = RoutingTableClient(daemon.url, model="fraud-detector", ttl_seconds=5.0, timeout=0.5,
                                registry=registry, monotonic=clock)
    with client:
        split = client.split()
        assert split.weights == (("1.0.0", 95.0), ("1.1.0", 5.0))
        assert split.source == "daemon" and split.updated_at == "2026-01-01T00:00:00Z"
        router = client.router()
        client.split()
        assert daemon.requests == 1  # cached within the ttl
        assert client.router() is router

        daemon.splits = [{"version": "1.0.0", "weight": 50.0}, {"version": "1.1.0", "weight": 50.0}]
        clock.now += 6
        assert client.split().weights == (("1.0.0", 50.0), ("1.1.0", 50.0))
        assert client.router() is not router

        daemon.stop()
        clock.now += 6
        assert client.split().weights == (("1.0.0", 50.0), ("1.1.0", 50.0))  # last known kept
        assert client.failures == 1
        assert registry.get_sample_value("opsctl_sdk_routing_fetch_failures_total",
                                         {"model": "fraud-detector"}) == 1
        client.split()
        assert client.failures == 1  # no retry storm within the ttl

        daemon.splits = [{"version": "1.0.0", "weight": 0.0}, {"version": "1.1.0", "weight": 100.0}]
        daemon.start()
        clock.now += 6
        assert client.split().weights == (("1.0.0", 0.0), ("1.1.0", 100.0))


def test_client_uses_fallback_before_first_success_and_raises_without_one() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    registry = CollectorRegistry()
    with RoutingTableClient(dead_url, model="m", fallback={"1.0.0": 100.0}, registry=registry,
                            timeout=0.5) as client:
        split = client.split()
        assert split.source == "fallback" and split.weights == (("1.0.0", 100.0),)
        assert client.failures == 1
    with RoutingTableClient(dead_url, model="m", registry=registry, timeout=0.5) as client, \
            pytest.raises(DaemonUnavailableError):
        client.split()


def test_client_rejects_an_invalid_table_and_keeps_the_previous_one(daemon: FakeDaemon) -> None:
    clock = FakeMonotonic()
    with RoutingTableClient(daemon.url, model="m", registry=CollectorRegistry(), monotonic=clock) as client:
        client.split()
        daemon.splits = [{"version": "1.0.0", "weight": 60.0}, {"version": "1.1.0", "weight": 60.0}]
        clock.now += 10
        assert client.split().weights == (("1.0.0", 95.0), ("1.1.0", 5.0))
        assert client.failures == 1 and "sum to 100" in (client.last_error or "")


def test_client_reads_over_a_unix_socket(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "opsctld.sock"
    fake = FakeDaemon()
    app = Starlette(routes=[Route("/v1/routing/{model}", fake.routing)])
    server = uvicorn.Server(uvicorn.Config(app, uds=str(path), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, 0.01, what="the server on the socket to start")
        with RoutingTableClient(socket_path=str(path), model="fraud-detector",
                                registry=CollectorRegistry()) as client:
            assert client.split().weights == (("1.0.0", 95.0), ("1.1.0", 5.0))
    finally:
        server.should_exit = True
        thread.join(10)


def _document(path: object, generation: int, splits: list[dict[str, object]]) -> None:
    import pathlib

    pathlib.Path(str(path)).write_text(json.dumps({
        "format": "opsctl-routing/1", "generation": 1,
        "models": {"fraud-detector": {"splits": splits, "generation": generation, "updated_at": None}}}))


def test_client_with_daemon_and_document_keeps_the_newer_deployment(daemon: FakeDaemon, tmp_path: object) -> None:
    import pathlib

    document = pathlib.Path(str(tmp_path)) / "routing.json"
    daemon.generation = 5
    _document(document, 7, [{"version": "1.0.0", "weight": 100.0}])  # a break-glass rollback, daemon behind
    clock = FakeMonotonic()
    with RoutingTableClient(daemon.url, document_path=document, model="fraud-detector", registry=CollectorRegistry(),
                            monotonic=clock) as client:
        split = client.split()
        assert (split.weights, split.source, split.generation) == ((("1.0.0", 100.0),), "document", 7)
        daemon.generation = 8  # the daemon moved on (a new canary): its answer is newer now
        clock.now += 10
        split = client.split()
        assert (split.weights, split.source, split.generation) == ((("1.0.0", 95.0), ("1.1.0", 5.0)), "daemon", 8)
        daemon.stop()
        _document(document, 9, [{"version": "1.1.0", "weight": 100.0}])
        clock.now += 10
        assert client.split().weights == (("1.1.0", 100.0),)  # the daemon is gone, the document still moves
