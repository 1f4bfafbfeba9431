"""The OffsetStore contract, run against every implementation.

To add an implementation (e.g. the registry-backed store), add an entry to ``STORES``: a
function taking ``tmp_path`` and returning ``(open_store, durable)``, where ``open_store()``
returns a fresh store object on the same backing storage (a "process restart") and ``durable``
says whether offsets survive that restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsctl.adapters.ingest import MemoryOffsetStore, Offset, OffsetStore

Opener = Callable[[], OffsetStore]


def _memory(tmp_path: Path) -> tuple[Opener, bool]:
    store = MemoryOffsetStore()
    return (lambda: store), False


def _registry(tmp_path: Path) -> tuple[Opener, bool]:
    from opsctl.adapters.offset_store import RegistryOffsetStore
    from opsctl.adapters.registry import Registry

    path = tmp_path / "state" / "registry.db"
    return (lambda: RegistryOffsetStore(Registry(path))), True


def _postgres(tmp_path: Path, url: str, opened: list[Any]) -> tuple[Opener, bool]:
    from opsctl.adapters.offset_store import RegistryOffsetStore
    from opsctl.adapters.registry import open_registry
    from opsctl.adapters.registry_engine import RegistrySettings

    def open_store() -> OffsetStore:
        registry = open_registry(RegistrySettings(url=url), tmp_path / "registry.db")
        opened.append(registry)  # closed after the test: a pool left to the garbage collector warns
        return RegistryOffsetStore(registry)

    return open_store, True


STORES: dict[str, Callable[[Path], tuple[Opener, bool]]] = {
    "memory": _memory,
    "registry": _registry,
}


@pytest.fixture(params=[*sorted(STORES), "registry-postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Opener, bool]]:
    if request.param != "registry-postgresql":
        yield STORES[request.param](tmp_path)
        return
    opened: list[Any] = []  # a real server: tests/fixtures/postgres.py
    yield _postgres(tmp_path, request.getfixturevalue("postgres_url"), opened)
    for registry in opened:
        registry.close()


def test_an_unknown_key_has_no_offset(backend: tuple[Opener, bool]) -> None:
    open_store, _ = backend
    assert open_store().get("fraud/predictions") is None


def test_put_then_get_returns_the_same_offset(backend: tuple[Opener, bool]) -> None:
    open_store, _ = backend
    store = open_store()
    offset = Offset(inode=2**40 + 3, offset=123_456_789_012, line=99, fingerprint="ab12cd34ef56ab78")
    store.put("fraud/predictions", offset)
    assert store.get("fraud/predictions") == offset


def test_put_replaces_and_keys_are_independent(backend: tuple[Opener, bool]) -> None:
    open_store, _ = backend
    store = open_store()
    store.put("a", Offset(1, 10))
    store.put("b", Offset(2, 20))
    store.put("a", Offset(3, 0))
    assert store.get("a") == Offset(3, 0)
    assert store.get("b") == Offset(2, 20)


def test_keys_may_hold_any_text(backend: tuple[Opener, bool]) -> None:
    open_store, _ = backend
    store = open_store()
    key = "fraud-detector:/var/log/ml/predictions.jsonl \"quoted\" é"
    store.put(key, Offset(5, 6))
    assert store.get(key) == Offset(5, 6)


# The memory store does not outlive its process by design: the restart contract covers the
# stores that declare themselves durable, and is not generated (nor skipped) for the others.
DURABLE = sorted(name for name, make in STORES.items() if make(Path("/nonexistent-probe"))[1])


@pytest.mark.parametrize("name", DURABLE)
def test_offsets_survive_a_restart(name: str, tmp_path: Path) -> None:
    open_store, durable = STORES[name](tmp_path)
    assert durable
    open_store().put("k", Offset(7, 700, 7, "f"))
    open_store().put("other", Offset(8, 800))
    reopened = open_store()
    assert reopened.get("k") == Offset(7, 700, 7, "f")
    assert reopened.get("other") == Offset(8, 800)


def test_concurrent_puts_from_threads_are_all_kept(backend: tuple[Opener, bool]) -> None:
    open_store, _ = backend
    store = open_store()

    def writer(n: int) -> None:
        for i in range(20):
            store.put(f"key-{n}", Offset(n, i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [store.get(f"key-{n}") for n in range(4)] == [Offset(n, 19) for n in range(4)]


def test_offset_rejects_negative_positions() -> None:
    with pytest.raises(ValueError):
        Offset(1, -1)
