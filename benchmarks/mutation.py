"""Mutation testing for opsctl's pure modules: do their tests notice when the code is wrong?

Each mutant is one small change to one module (a flipped comparison, a swapped operator, a
changed constant, a negated condition, ``and``/``or`` swapped, a boolean flipped, a return value
replaced by ``None``). The mutated module is written to a temporary directory and imported in
place of the real one (a meta-path finder installed by a pytest plugin), so the worktree is never
touched. The module's own tests then run with ``pytest -x -q -p no:cacheprovider`` under a
timeout: a failing run kills the mutant, a passing run lets it survive.

Mutants listed in ``benchmarks/mutation_equivalents.toml`` (each with a one-line reason why it
cannot change behaviour) are excluded from the score. Not run in CI; see benchmarks/README.md::

    .venv/bin/python benchmarks/mutation.py opsctl/core/sla.py opsctl/core/alerts.py
    .venv/bin/python benchmarks/mutation.py opsctl/core/gates.py:tests/core/test_canary.py --jobs 2

``MODULE[:TEST[,TEST...]]``: the tests are the module's mirror (``opsctl/core/x.py`` ->
``tests/core/test_x.py``) when it exists, plus any named after the colon.

By default each mutant runs in a process forked from a parent that has already imported the
third-party modules the tests need (pytest, hypothesis, scipy, ...), which makes a run several
times faster than a fresh interpreter per mutant; ``--no-fork`` starts ``python -m pytest`` for
each mutant instead. Project modules are never pre-imported, so every mutant run imports the
project afresh.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = Path(__file__).resolve().parent / "mutation_equivalents.toml"
PLUGIN_NAME = "_opsctl_mutation_plugin"

# Installed by every mutant run (as a pytest plugin, so it is in place before any test module is
# collected): the target module is loaded from the mutant's file, and Hypothesis is derandomized
# with no example database, so runs do not depend on each other or on earlier runs.
PLUGIN_SOURCE = '''
import importlib.abc
import importlib.util
import os
import sys

_NAME = os.environ["OPSCTL_MUTATION_MODULE"]
_FILE = os.environ["OPSCTL_MUTATION_FILE"]


class _MutantFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == _NAME:
            return importlib.util.spec_from_file_location(fullname, _FILE)
        return None


sys.meta_path.insert(0, _MutantFinder())
for _loaded in [m for m in sys.modules if m == _NAME]:
    del sys.modules[_loaded]

try:
    from hypothesis import settings as _settings
except ImportError:
    pass
else:
    _settings.register_profile("opsctl-mutation", derandomize=True)
    _settings.load_profile("opsctl-mutation")
'''


# --------------------------------------------------------------------------- mutants


@dataclass(frozen=True)
class Mutant:
    module: str  # path relative to the repository root
    node: int  # index of the mutated node in _walk order
    variant: int  # which of that node's mutations
    line: int
    kind: str
    original: str  # the source line, stripped
    mutant: str  # the mutated expression

    @property
    def key(self) -> tuple[str, str, str]:
        """What an entry in the equivalents file matches (stable when other lines move)."""
        return (self.module, self.original, self.mutant)


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | timeout | equivalent
    seconds: float
    reason: str = ""


_COMPARE_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}

Mutation = tuple[str, Callable[[ast.AST], ast.AST]]


def _is_docstring(node: ast.AST, parent: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and isinstance(parent, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    )


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _walk(tree: ast.Module) -> Iterator[tuple[ast.AST, ast.AST | None, str, int | None]]:
    """Pre-order (node, parent, field, index in field) skipping what cannot change behaviour:
    annotations (``from __future__ import annotations`` keeps them as strings), docstrings,
    decorators and ``if TYPE_CHECKING:`` blocks."""
    stack: list[tuple[ast.AST, ast.AST | None, str, int | None]] = [(tree, None, "", None)]
    while stack:
        node, parent, name, index = stack.pop()
        if _is_docstring(node, parent) or _is_type_checking(node):
            continue
        yield node, parent, name, index
        children: list[tuple[ast.AST, ast.AST | None, str, int | None]] = []
        for field_name, value in ast.iter_fields(node):
            if field_name in ("annotation", "returns", "type_comment", "decorator_list"):
                continue
            if isinstance(value, ast.AST):
                children.append((value, node, field_name, None))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        children.append((item, node, field_name, i))
        stack.extend(reversed(children))


def _number_mutants(value: int | float) -> list[int | float]:
    if value == 0:
        return [type(value)(1)]
    if value == 1:
        return [type(value)(0)]
    return [value + 1, value - 1]


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _negation_is_a_duplicate(test: ast.expr) -> bool:
    """``if not x`` (``drop not`` gives its negation) and ``if a == b`` (the flipped comparison is
    its negation) would count the same mutant twice."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return True
    return (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq | ast.NotEq | ast.Is | ast.IsNot | ast.In | ast.NotIn)
    )


def _mutations(node: ast.AST, parent: ast.AST | None) -> list[Mutation]:
    found: list[Mutation] = []
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            swapped = _COMPARE_FLIP.get(type(op))
            if swapped is not None:

                def flip(n: ast.AST, k: int = k, swapped: type[ast.cmpop] = swapped) -> ast.AST:
                    assert isinstance(n, ast.Compare)
                    n.ops[k] = swapped()
                    return n

                found.append(("compare", flip))
    elif isinstance(node, ast.BinOp | ast.AugAssign):
        swapped_op = _BINOP_SWAP.get(type(node.op))
        if swapped_op is not None:

            def swap(n: ast.AST, swapped_op: type[ast.operator] = swapped_op) -> ast.AST:
                assert isinstance(n, ast.BinOp | ast.AugAssign)
                n.op = swapped_op()
                return n

            found.append(("arithmetic", swap))
    elif isinstance(node, ast.BoolOp):

        def and_or(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.BoolOp)
            n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()
            return n

        found.append(("and/or", and_or))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        found.append(("drop not" if isinstance(node.op, ast.Not) else "drop minus", lambda n: n.operand))  # type: ignore[attr-defined]
    elif isinstance(node, ast.Constant) and not isinstance(parent, ast.JoinedStr | ast.FormattedValue):
        if isinstance(node.value, bool):
            found.append(("boolean", lambda n: ast.Constant(not n.value)))  # type: ignore[attr-defined]
        elif isinstance(node.value, int | float):
            for new in _number_mutants(node.value):
                found.append(("constant", lambda n, new=new: ast.Constant(new)))
    if isinstance(node, ast.If | ast.While | ast.IfExp) and not _negation_is_a_duplicate(node.test):

        def negate(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.If | ast.While | ast.IfExp)
            n.test = ast.UnaryOp(ast.Not(), n.test)
            return n

        found.append(("negate", negate))
    if isinstance(node, ast.Return) and not (node.value is None or _is_none(node.value)):

        def return_none(n: ast.AST) -> ast.AST:
            assert isinstance(n, ast.Return)
            n.value = ast.Constant(None)
            return n

        found.append(("return", return_none))
    return found


def _replace(parent: ast.AST, name: str, index: int | None, new: ast.AST) -> None:
    if index is None:
        setattr(parent, name, new)
    else:
        getattr(parent, name)[index] = new


def _shown(node: ast.AST, parent: ast.AST | None, kind: str) -> ast.AST:
    """The node whose text identifies the mutant: a constant is shown with its expression."""
    if kind in ("constant", "boolean", "drop minus") and isinstance(parent, ast.expr):
        return parent
    if isinstance(node, ast.If | ast.While):
        return node.test
    return node


def _text(node: ast.AST) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= 160 else text[:157] + "..."


def mutants_of(module: str, source: str) -> list[Mutant]:
    tree = ast.parse(source)
    lines = source.splitlines()
    found = []
    for i, (node, parent, _name, _index) in enumerate(_walk(tree)):
        for variant, (kind, mutate) in enumerate(_mutations(node, parent)):
            scratch = ast.parse(source)
            target, t_parent, t_name, t_index = list(_walk(scratch))[i]
            replacement = mutate(target)
            if t_parent is not None and replacement is not target:
                _replace(t_parent, t_name, t_index, replacement)
            shown = _shown(replacement, t_parent, kind)
            line = getattr(node, "lineno", 0)
            found.append(
                Mutant(module, i, variant, line, kind, lines[line - 1].strip() if line else "", _text(shown))
            )
    return found


def mutated_source(source: str, mutant: Mutant) -> str:
    tree = ast.parse(source)
    node, parent, name, index = list(_walk(tree))[mutant.node]
    kind, mutate = _mutations(node, parent)[mutant.variant]
    assert kind == mutant.kind, (kind, mutant)
    replacement = mutate(node)
    if parent is not None and replacement is not node:
        _replace(parent, name, index, replacement)
    return ast.unparse(ast.fix_missing_locations(tree))


# --------------------------------------------------------------------------- equivalents


@dataclass(frozen=True)
class Equivalent:
    module: str
    original: str
    mutant: str
    reason: str


def load_equivalents(path: Path) -> list[Equivalent]:
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text())
    entries = []
    for raw in data.get("equivalent", []):
        entry = Equivalent(raw["module"], raw["original"], raw["mutant"], raw["reason"])
        if not entry.reason.strip() or "\n" in entry.reason:
            raise SystemExit(f"{path}: every equivalent mutant needs a one-line reason: {raw}")
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------- running


@dataclass
class Target:
    module: str  # opsctl/core/sla.py
    import_name: str  # opsctl.core.sla
    tests: list[str] = field(default_factory=list)


def parse_target(spec: str) -> Target:
    module, _, extra = spec.partition(":")
    path = Path(module)
    if not (ROOT / path).is_file():
        raise SystemExit(f"no such module: {module}")
    parts = path.with_suffix("").parts
    mirror = Path("tests", *parts[1:-1], f"test_{parts[-1]}.py")
    tests = [str(mirror)] if (ROOT / mirror).is_file() else []
    tests += [t for t in extra.split(",") if t]
    if not tests:
        raise SystemExit(f"no tests for {module}: {mirror} does not exist; name them as {module}:TEST,...")
    for test in tests:
        if not (ROOT / test).exists():
            raise SystemExit(f"no such test file: {test}")
    return Target(str(path), ".".join(parts), tests)


def pytest_args(target: Target) -> list[str]:
    args = ["-x", "-q", "-p", "no:cacheprovider", "-p", PLUGIN_NAME]
    for optional, disable in (("xdist", ["-n", "0"]), ("pytest_randomly", ["-p", "no:randomly"])):
        if importlib.util.find_spec(optional) is not None:
            args += disable
    return args + target.tests


class Runner:
    """Runs one mutant at a time per job: forked from a warmed-up parent, or as a new process."""

    def __init__(self, workdir: Path, *, fork: bool, timeout: float | None) -> None:
        self.workdir = workdir
        self.fork = fork
        self.timeout = timeout
        (workdir / f"{PLUGIN_NAME}.py").write_text(PLUGIN_SOURCE)

    def env(self, import_name: str, path: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["OPSCTL_MUTATION_MODULE"] = import_name
        env["OPSCTL_MUTATION_FILE"] = str(path)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.workdir), env.get("PYTHONPATH", "")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def warm_up(self, target: Target, path: Path) -> tuple[float, str]:
        """Run the unmutated module once in a fresh process; pre-import what it imported."""
        record = self.workdir / "modules.json"
        env = self.env(target.import_name, path)
        env["OPSCTL_MUTATION_RECORD"] = str(record)
        (self.workdir / "conftest_record.py").write_text(
            "import atexit, json, os, sys\n"
            "def _dump():\n"
            "    mods = {n: getattr(m, '__file__', None) for n, m in list(sys.modules.items())}\n"
            "    open(os.environ['OPSCTL_MUTATION_RECORD'], 'w').write(json.dumps(mods))\n"
            "atexit.register(_dump)\n"
        )
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args(target), "-p", "conftest_record"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            return seconds, done.stdout[-3000:] + done.stderr[-3000:]
        if self.fork:
            self._preload(json.loads(record.read_text()))
        return seconds, ""

    def _preload(self, modules: dict[str, str | None]) -> None:
        def is_project(file: object) -> bool:
            # The virtualenv may live inside the repository; what is installed there is not project code.
            text = str(file or "")
            return text.startswith(str(ROOT)) and not text.startswith(sys.prefix)

        for name, file in sorted(modules.items()):
            top = name.partition(".")[0]
            if name in sys.modules or top in ("__main__", "conftest", "tests", PLUGIN_NAME, "conftest_record"):
                continue
            if file is None or is_project(file) or str(file).startswith(str(self.workdir)):
                continue  # project code (and builtins) is imported afresh by every mutant
            with contextlib.suppress(BaseException):  # not pre-imported: the mutant run imports it
                importlib.import_module(name)
        # Nothing of the project may be cached in the parent: drop anything a third-party import pulled in.
        for name in [n for n, m in sys.modules.items() if is_project(getattr(m, "__file__", None))]:
            del sys.modules[name]

    def start(self, target: Target, path: Path) -> int | subprocess.Popen[bytes]:
        env = self.env(target.import_name, path)
        if not self.fork:
            return subprocess.Popen(
                [sys.executable, "-m", "pytest", *pytest_args(target)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
        pid = os.fork()
        if pid:
            return pid
        code = 3
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.setsid()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.chdir(ROOT)
            os.environ.clear()
            os.environ.update(env)
            sys.path.insert(0, str(self.workdir))
            import pytest

            code = int(pytest.main(pytest_args(target)))
        finally:
            os._exit(code)

    @staticmethod
    def poll(handle: int | subprocess.Popen[bytes]) -> int | None:
        if isinstance(handle, subprocess.Popen):
            return handle.poll()
        pid, status = os.waitpid(handle, os.WNOHANG)
        return None if pid == 0 else os.waitstatus_to_exitcode(status)

    @staticmethod
    def kill(handle: int | subprocess.Popen[bytes]) -> None:
        pid = handle.pid if isinstance(handle, subprocess.Popen) else handle
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if isinstance(handle, subprocess.Popen):
            handle.wait()
        else:
            os.waitpid(pid, 0)


def run_module(
    runner: Runner, target: Target, mutants: list[Mutant], equivalents: list[Equivalent], jobs: int
) -> tuple[list[Outcome], float, float]:
    source = (ROOT / target.module).read_text()
    workdir = runner.workdir / target.import_name
    workdir.mkdir()
    baseline = workdir / "unmutated.py"
    baseline.write_text(mutated_source_identity(source))
    baseline_seconds, failure = runner.warm_up(target, baseline)
    if failure:
        raise SystemExit(f"{target.module}: the tests fail on the unmutated module:\n{failure}")
    timeout = runner.timeout or max(30.0, 5.0 * baseline_seconds)

    equivalent_keys = {(e.module, e.original, e.mutant): e.reason for e in equivalents}
    outcomes: list[Outcome] = []
    pending = []
    for m in mutants:
        if m.key in equivalent_keys:
            outcomes.append(Outcome(m, "equivalent", 0.0, equivalent_keys[m.key]))
        else:
            pending.append(m)

    started = time.monotonic()
    running: dict[int, tuple[Mutant, int | subprocess.Popen[bytes], float]] = {}
    queue = list(enumerate(pending))
    try:
        _drain(runner, target, source, workdir, queue, running, outcomes, jobs, timeout, len(pending))
    finally:
        for _m, handle, _t0 in running.values():  # interrupted: no mutant run outlives this process
            runner.kill(handle)
    print(file=sys.stderr)
    outcomes.sort(key=lambda o: (o.mutant.node, o.mutant.variant))
    return outcomes, time.monotonic() - started, baseline_seconds


def _drain(
    runner: Runner,
    target: Target,
    source: str,
    workdir: Path,
    queue: list[tuple[int, Mutant]],
    running: dict[int, tuple[Mutant, int | subprocess.Popen[bytes], float]],
    outcomes: list[Outcome],
    jobs: int,
    timeout: float,
    total: int,
) -> None:
    while queue or running:
        while queue and len(running) < jobs:
            n, m = queue.pop(0)
            path = workdir / f"m{n:04d}" / Path(target.module).name
            path.parent.mkdir()
            path.write_text(mutated_source(source, m))
            running[n] = (m, runner.start(target, path), time.monotonic())
        time.sleep(0.02)
        for n, (m, handle, t0) in list(running.items()):
            code = runner.poll(handle)
            elapsed = time.monotonic() - t0
            if code is None and elapsed > timeout:
                runner.kill(handle)
                outcomes.append(Outcome(m, "timeout", elapsed))
            elif code is None:
                continue
            elif code == 0:
                outcomes.append(Outcome(m, "survived", elapsed))
            else:
                outcomes.append(Outcome(m, "killed", elapsed, f"exit {code}"))
            del running[n]
            done = sum(o.status != "equivalent" for o in outcomes)
            print(f"\r  {target.module}: {done}/{total}", end="", file=sys.stderr, flush=True)


def mutated_source_identity(source: str) -> str:
    """The unmutated module through the same parse/unparse as every mutant (checks the pipeline)."""
    return ast.unparse(ast.parse(source))


# --------------------------------------------------------------------------- report


def report(target: Target, outcomes: list[Outcome], seconds: float, baseline: float) -> dict[str, object]:
    total = len(outcomes)
    equivalent = sum(o.status == "equivalent" for o in outcomes)
    killed = sum(o.status in ("killed", "timeout") for o in outcomes)
    survivors = [o for o in outcomes if o.status == "survived"]
    scored = total - equivalent
    percent = 100.0 * killed / scored if scored else 100.0
    print(f"\n{target.module}  (tests: {' '.join(target.tests)})")
    timeouts = sum(o.status == "timeout" for o in outcomes)
    print(
        f"  mutants {total}  killed {killed} (of which timed out {timeouts})  survived {len(survivors)}"
        f"  equivalent {equivalent}  killed {percent:.1f} %  ({seconds:.0f} s; one unmutated run {baseline:.1f} s)"
    )
    for o in survivors:
        print(f"  survived  line {o.mutant.line:4d}  [{o.mutant.kind}]  {o.mutant.original}")
        print(f"                 mutant: {o.mutant.mutant}")
    return {
        "module": target.module,
        "tests": target.tests,
        "mutants": total,
        "killed": killed,
        "timeouts": timeouts,
        "survived": len(survivors),
        "equivalent": equivalent,
        "percent_killed": round(percent, 1),
        "seconds": round(seconds, 1),
        "survivors": [asdict(o.mutant) for o in survivors],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", metavar="MODULE[:TEST,...]", help="module path, extra test files")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1: the machine is shared)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default 5x a clean run)")
    parser.add_argument("--equivalents", type=Path, default=EQUIVALENTS, help="reviewed equivalent mutants (TOML)")
    parser.add_argument("--lines", default=None, help="only mutants on lines A-B (for working on one function)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-fork", action="store_true", help="a fresh python -m pytest per mutant")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    # SIGTERM unwinds like Ctrl-C: running mutants are killed and the temporary directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    targets = [parse_target(spec) for spec in args.targets]
    equivalents = load_equivalents(args.equivalents)
    results = []
    with tempfile.TemporaryDirectory(prefix="opsctl-mutation-") as tmp:
        runner = Runner(Path(tmp), fork=not args.no_fork and hasattr(os, "fork"), timeout=args.timeout)
        for target in targets:
            mutants = mutants_of(target.module, (ROOT / target.module).read_text())
            if args.lines:
                low, _, high = args.lines.partition("-")
                mutants = [m for m in mutants if int(low) <= m.line <= int(high or low)]
            if args.list:
                for m in mutants:
                    print(f"{m.module}:{m.line}  [{m.kind}]  {m.original}  ->  {m.mutant}")
                continue
            outcomes, seconds, baseline = run_module(runner, target, mutants, equivalents, args.jobs)
            results.append(report(target, outcomes, seconds, baseline))
    known = {(m.module, m.original, m.mutant) for t in targets
             for m in mutants_of(t.module, (ROOT / t.module).read_text())}
    stale = [e for e in equivalents if e.module in {t.module for t in targets}
             and (e.module, e.original, e.mutant) not in known]
    for e in stale:
        print(f"warning: equivalent entry matches no mutant (code changed?): {e.module}: {e.original} -> {e.mutant}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
