"""The ``[drift]`` settings load without the statistics stack (``opsctl config check`` stays fast)."""

import json
import subprocess
import sys

_HEAVY = ("numpy", "pandas", "scipy", "sklearn")

_PROBE = """
import json, sys
from opsctl.config import parse_settings
from opsctl.core.drift_policy import DriftPolicy, render_markdown

policy = parse_settings('[drift]\\nalpha = 0.01\\ncorrection = "bonferroni"\\n').drift
assert isinstance(policy, DriftPolicy) and policy.alpha == 0.01 and policy.correction == "bonferroni"
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})))
"""


def test_loading_the_drift_policy_imports_no_numpy_pandas_or_scipy() -> None:
    # A fresh interpreter: this test process has numpy loaded already.
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=set(_HEAVY))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_heavy_module_re_exports_the_light_names() -> None:
    from opsctl.core import drift, drift_policy

    assert drift.DriftPolicy is drift_policy.DriftPolicy
    assert drift.render_markdown is drift_policy.render_markdown
