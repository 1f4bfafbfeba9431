"""Session-wide test setup. Fixture modules that start real services live in
tests/fixtures/ and are registered here, one line each."""

pytest_plugins: list[str] = [
    "tests.fixtures.cli",
    "tests.fixtures.prometheus",
    "tests.fixtures.daemon",
    "tests.fixtures.secure",
    "tests.fixtures.wheel",
    "tests.fixtures.framework_envs",
    "tests.fixtures.postgres",
]
