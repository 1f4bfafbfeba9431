#!/usr/bin/env bash
# Create the benchmark-only virtualenv that holds Evidently (never a runtime or test
# dependency of opsctl). Evidently 0.7 needs pandas below 3, which is why it cannot
# share the project's .venv.
#
#   bash benchmarks/evidently_env.sh            # creates benchmarks/.venv-evidently
#   EVIDENTLY_PYTHON=python3.11 bash benchmarks/evidently_env.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${EVIDENTLY_VENV:-$here/.venv-evidently}"
python="${EVIDENTLY_PYTHON:-python3.11}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# Keep the venv out of git without touching the repository's .gitignore
# (what `python -m venv` does itself from Python 3.13 on).
printf '*\n' > "$venv/.gitignore"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet 'evidently==0.7.*' 'pandas<3' 'pyarrow'
"$venv/bin/python" -c 'import evidently, pandas; print("evidently", evidently.__version__, "pandas", pandas.__version__)'
