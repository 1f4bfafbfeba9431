"""Session-wide test setup. Fixture modules that start real services live in
tests/fixtures/ and are registered here, one line each."""

import pytest

pytest_plugins: list[str] = [
    "tests.fixtures.cli",
    "tests.fixtures.prometheus",
    "tests.fixtures.daemon",
    "tests.fixtures.secure",
    "tests.fixtures.wheel",
    "tests.fixtures.framework_envs",
    "tests.fixtures.postgres",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the ``slow`` tests first, each file's tests still in file order.

    With ``-n 2 --dist loadgroup`` a work unit is handed out in collection order (multi-test
    ``xdist_group``s first), so a four-minute end-to-end test collected near the end (tests/demo,
    tests/tui) used to start when the other worker was nearly done and ran alone. Started first,
    the long units overlap and the thousands of short tests fill in behind them. Order only:
    every test still runs, on the same fixtures, and tests that build on each other within a
    module keep their order (the partition is stable).
    """
    def rank(item: pytest.Item) -> int:
        # A single-test xdist_group (tests/demo/test_story_e2e.py, tests/tui/test_tmux_demo.py) is one
        # long demo: first of all. Multi-test groups are handed out first by the scheduler anyway.
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if item.get_closest_marker("xdist_group") is not None else 1

    items.sort(key=rank)  # stable
