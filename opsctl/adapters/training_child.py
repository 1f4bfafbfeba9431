"""Launcher that runs inside the training process: ``python -m opsctl.adapters.training_child REQUEST``.

It applies the memory limit, then either ``exec``\\ s the configured command or imports and calls
the ``module:function`` entry point, writing the result (or the error with its traceback) as JSON
next to the request. Standard library only, so the limit is in place before anything heavy loads.
Exit status: 0 with a result written, 1 when the function raised or returned a bad result, 2 for a bad
request, 127 when the command cannot be executed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsctl.adapters.training import TrainingContext, TrainingResult


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # Write then rename: the runner never reads half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _write_error(path: Path, error: BaseException) -> None:
    text = "".join(traceback.format_exception(error))
    sys.stderr.write(text)
    sys.stderr.flush()
    with contextlib.suppress(OSError):  # the traceback is in the log anyway
        _write_json(path, {"type": type(error).__name__, "message": str(error), "traceback": text})


def _limit_memory(megabytes: int) -> None:
    if megabytes > 0:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _as_result_json(value: Any) -> dict[str, Any]:
    if isinstance(value, TrainingResult):
        return value.to_json()
    if isinstance(value, Mapping):
        data = dict(value)
        for key in ("artifact_path", "reference_sample_path", "holdout_path"):
            if isinstance(data.get(key), os.PathLike):
                data[key] = os.fspath(data[key])
        return data
    raise TypeError(f"training function must return a TrainingResult or a mapping, got {type(value).__name__}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m opsctl.adapters.training_child REQUEST.json\n")
        return 2
    request = json.loads(Path(argv[0]).read_text())
    error_path = Path(request["error_path"])
    _limit_memory(int(request["memory_limit_mb"]))

    command = request.get("command")
    if command:
        try:
            os.execvp(command[0], command)  # the environment was prepared by the runner
        except OSError as exc:
            message = f"cannot execute training command {command[0]!r}: {exc.strerror or exc}"
            sys.stderr.write(message + "\n")
            _write_json(error_path, {"type": type(exc).__name__, "message": message})
            return 127

    output_dir = Path(request["output_dir"])
    context = TrainingContext(output_dir, request["params"], request.get("progress_fd"))
    try:
        module_name, _, function_name = request["entrypoint"].partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        value = function(context)
        data = _as_result_json(value)
        # Same check as the runner's, here for an early, precise message in the run's log.
        TrainingResult.from_json(data, output_dir=output_dir)
    except Exception as exc:  # MemoryError included: the runner reads the type to say "killed_oom"
        _write_error(error_path, exc)
        return 1
    _write_json(Path(request["result_path"]), data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
