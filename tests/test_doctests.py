"""The docstring examples of every module in ``opsctl/`` and ``daemon/`` run, under the installed names.

A dedicated test rather than ``--doctest-modules``: pytest would import ``daemon/`` as a top-level
package ``daemon`` (the name python-daemon owns) beside ``opsctld``, loading every daemon module twice.
Importing a module must not start anything: the last test imports them all in a fresh interpreter,
in an empty folder, and checks that no thread, child process or file appeared.
"""

from __future__ import annotations

import doctest
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_architecture import module_files

FILES = module_files()
MODULES = sorted(FILES)


def _prompts(name: str) -> int:
    """How many ``>>>`` lines the module's source has: each must be a collected, passing example."""
    return sum(line.lstrip().startswith(">>> ") for line in FILES[name].read_text(encoding="utf-8").splitlines())


WITH_EXAMPLES = [name for name in MODULES if _prompts(name)]


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    # Only what is defined here: a name imported from another module is checked there.
    return [t for t in tests if t.examples and _defined_in(t, module)]


def _defined_in(test: doctest.DocTest, module: object) -> bool:
    return test.filename is None or Path(test.filename).resolve() == Path(module.__file__).resolve()  # type: ignore[attr-defined]


def test_the_examples_are_found() -> None:
    # The modules that had the 25 examples when this test was written; more may come, none may go.
    assert set(WITH_EXAMPLES) >= {"opsctl.adapters.actuators", "opsctl.adapters.prometheus", "opsctl.core.abtest",
                                  "opsctl.core.alerts", "opsctl.core.gates", "opsctl.core.sla"}


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in _examples(name):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted == _prompts(name), "a >>> line outside a docstring the finder reads (or skipped)"
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed (see above)"


_PROBE = """
import importlib, json, os, sys, threading
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module(name)
children = []
for task in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{task}/children") as handle:
        children += handle.read().split()
print(json.dumps({"threads": [t.name for t in threading.enumerate()], "children": children,
                  "files": sorted(os.listdir("."))}))
"""


def test_importing_every_module_starts_nothing(tmp_path: Path) -> None:
    # Every module except the CLI entry shims that are modules run with -m (their main is guarded).
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(MODULES)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {"threads": ["MainThread"], "children": [], "files": []}
