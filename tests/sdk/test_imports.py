"""The SDK must be importable by a model server that has none of the daemon's dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("numpy", "pandas", "sklearn", "scipy", "statsmodels", "opsctld", "daemon", "textual",
             "apscheduler", "starlette", "uvicorn", "joblib", "pyarrow")


def test_sdk_imports_only_stdlib_prometheus_client_and_httpx() -> None:
    code = (
        "import json, sys\n"
        "import opsctl.sdk, opsctl.sdk.metrics, opsctl.sdk.predlog, opsctl.sdk.router\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    loaded = set(json.loads(result.stdout))
    assert "prometheus_client" in loaded and "httpx" in loaded
    assert not loaded.intersection(FORBIDDEN), loaded.intersection(FORBIDDEN)
