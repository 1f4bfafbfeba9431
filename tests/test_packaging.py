"""The wheel ships every package of the source tree (setuptools is given an explicit list)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_in_the_tree_is_listed_for_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapping = {source: name for name, source in setuptools["package-dir"].items()}
    in_tree = set()
    for source, name in mapping.items():
        for init in (ROOT / source).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / source).parts
            in_tree.add(".".join((name, *relative)))
    assert in_tree - listed == set(), "packages missing from [tool.setuptools] packages"
    assert listed - in_tree == set(), "listed packages that do not exist"
