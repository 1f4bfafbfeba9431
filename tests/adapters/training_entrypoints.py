"""Training entry points for the runner's tests (test helpers only): ones that succeed, raise,
hang, eat memory, and a command-line trainer (``python -m tests.adapters.training_entrypoints``).

Standard library only, so each run starts fast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from opsctl.adapters.training import (
    ENV_OUTPUT_DIR,
    ENV_PARAMS,
    ENV_PROGRESS_FD,
    ENV_RESULT,
    TrainingContext,
    TrainingResult,
)
from tests.fixtures.wait import wait_for


def _write_outputs(output_dir: Path) -> tuple[Path, Path]:
    artifact = output_dir / "model.json"
    artifact.write_text(json.dumps({"weights": [0.1, 0.2]}))
    reference = output_dir / "reference.csv"
    reference.write_text("amount,age\n10.5,31\n99.0,47\n")
    return artifact, reference


def succeed(ctx: TrainingContext) -> TrainingResult:
    """Prints numbered lines, and in the middle waits until the runner has passed the
    'waiting for ack' line on (the test's on_log creates the file ``params['ack']``)."""
    ack = Path(ctx.params["ack"])
    for step in range(3):
        print(f"step {step}")
        ctx.report_progress((step + 1) / 10, f"step {step}")
    print("waiting for ack", flush=True)
    wait_for(ack.exists, 10.0, 0.01, what="the ack (log lines must be streamed while the run is going)")
    for step in range(3, 6):
        print(f"step {step}", file=sys.stderr if step == 4 else sys.stdout)
    ctx.report_progress(1.0, "done")
    artifact, reference = _write_outputs(ctx.output_dir)
    return TrainingResult(
        artifact_path=artifact,
        metrics={"accuracy": 0.91, "auc": 0.95},
        training_data_hash="sha256:" + "ab" * 32,
        reference_sample_path=reference,
    )


def return_mapping(ctx: TrainingContext) -> dict[str, object]:
    """A plain mapping with relative paths is accepted too."""
    _write_outputs(ctx.output_dir)
    return {
        "artifact_path": "model.json",
        "metrics": {"accuracy": float(ctx.params.get("accuracy", "0.5"))},
        "training_data_hash": "sha256:" + "cd" * 32,
        "holdout_path": "reference.csv",
    }


def raise_error(ctx: TrainingContext) -> TrainingResult:
    print("loading training data")
    raise ValueError("bad training data: column 'amount' missing")


def escape_output_dir(ctx: TrainingContext) -> dict[str, object]:
    """Claims an artifact outside its own output directory."""
    return {"artifact_path": "/etc/passwd", "metrics": {}, "training_data_hash": "x"}


def half_done(ctx: TrainingContext) -> dict[str, object]:
    """Writes an artifact, then reports a metric that is not a number."""
    _write_outputs(ctx.output_dir)
    return {"artifact_path": "model.json", "metrics": {"accuracy": float("nan")}, "training_data_hash": "x"}


def _spawn_sleeper(ctx: TrainingContext) -> None:
    # A grandchild in the same process group, to check the runner kills the whole group.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    Path(ctx.params["pid_file"]).write_text(f"{os.getpid()} {sleeper.pid}")


def hang(ctx: TrainingContext) -> TrainingResult:
    _spawn_sleeper(ctx)
    print("training forever", flush=True)
    while True:
        time.sleep(1)


def hang_ignoring_sigterm(ctx: TrainingContext) -> TrainingResult:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _spawn_sleeper(ctx)
    print("training forever, deaf to SIGTERM", flush=True)
    while True:
        time.sleep(1)


def leave_orphan(ctx: TrainingContext) -> TrainingResult:
    """Succeeds, but leaves a background process behind in its group."""
    _spawn_sleeper(ctx)
    artifact, _ = _write_outputs(ctx.output_dir)
    return TrainingResult(artifact_path=artifact, metrics={}, training_data_hash="x")


def eat_memory(ctx: TrainingContext) -> TrainingResult:
    """Allocates 64 MB blocks; gives up (and fails the test by succeeding) at 2 GB.

    ``bytearray(n)`` comes from calloc, so the address space grows (what RLIMIT_AS counts) without
    touching pages: if the limit were missing, the machine would not be hurt.
    """
    blocks = []
    for count in range(32):
        blocks.append(bytearray(64 * 1024 * 1024))
        print(f"allocated {(count + 1) * 64} MB", flush=True)
    artifact, _ = _write_outputs(ctx.output_dir)
    return TrainingResult(artifact_path=artifact, metrics={"blocks": float(len(blocks))}, training_data_hash="x")


def command_main() -> int:
    """The command-line contract: everything comes from environment variables."""
    output_dir = Path(os.environ[ENV_OUTPUT_DIR])
    params = json.loads(os.environ[ENV_PARAMS])
    progress_fd = int(os.environ[ENV_PROGRESS_FD])
    print(f"command trainer, lr={params['lr']}")
    if params.get("fail") == "yes":
        print("giving up: no data", file=sys.stderr)
        return 3
    os.write(progress_fd, b'{"fraction": 0.5, "message": "half"}\n')
    artifact, _reference = _write_outputs(output_dir)
    result = {
        "artifact_path": str(artifact),
        "metrics": {"accuracy": 0.8, "lr": float(params["lr"])},
        "training_data_hash": "sha256:" + "ef" * 32,
        "reference_sample_path": "reference.csv",
    }
    Path(os.environ[ENV_RESULT]).write_text(json.dumps(result))
    print("command trainer done")
    return 0


if __name__ == "__main__":
    sys.exit(command_main())
