"""Under systemd the daemon's lines carry their syslog priority, and a reload follows Type=notify-reload's protocol.

A real daemon process writes to a file that ``JOURNAL_STREAM`` names by device and inode, as systemd does
for the journal's stream; journald would file each line at the ``<N>`` priority it starts with.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from opsctl.jsonlog import is_journal_stream, syslog_priority
from tests.fixtures.cli import OPSCTL, make_opsctl_env
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def test_error_lines_carry_priority_3_and_a_reload_sends_monotonic_usec(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", 'log_level = "debug"\n')  # into [daemon]
    log_path = env.root / "daemon.log"
    log_path.touch()
    info = log_path.stat()
    sink_path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(sink_path))
    sink.settimeout(10)
    process = DaemonProcess(env, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}",
                                  "NOTIFY_SOCKET": str(sink_path)}).start()
    try:
        env.config.write_text(env.config.read_text() + "[jobs\n")  # broken TOML: the reload must fail
        before = time.monotonic_ns() // 1000
        process.signal(signal.SIGHUP)
        messages: list[str] = []
        while not any("RELOADING=1" in m for m in messages):
            messages.append(sink.recv(4096).decode())
        after = time.monotonic_ns() // 1000
        reloading = next(m for m in messages if "RELOADING=1" in m).split("\n")
        usec = next(int(f.split("=", 1)[1]) for f in reloading if f.startswith("MONOTONIC_USEC="))
        assert before <= usec <= after  # CLOCK_MONOTONIC, the clock systemd compares it with
        # Type=notify-reload waits for READY=1 after the reload, failed or not.
        while not any(m.startswith("READY=1") for m in messages[messages.index("\n".join(reloading)):]):
            messages.append(sink.recv(4096).decode())

        failed = wait_for(lambda: next((line for line in _lines(log_path) if "config reload failed" in line), None),
                          10, what="the failed reload logged", context=process.log)
        assert failed.startswith("<3>{"), failed
        assert json.loads(failed[3:])["level"] == "error"
        # The socket answers a moment before "daemon ready" is logged: under load the reload can come first.
        ready = wait_for(lambda: next((line for line in _lines(log_path) if '"daemon ready"' in line), None),
                         10, what="the ready line logged", context=process.log)
        assert ready.startswith("<6>{"), ready
        # [daemon] log_level = "debug" lets debug lines through (asyncio names its selector), at priority 7.
        debug = [line for line in _lines(log_path) if line.startswith("<7>")]
        assert debug and all(json.loads(line[3:])["level"] == "debug" for line in debug)
        assert all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in _lines(log_path))
    finally:
        process.stop()
        sink.close()


def test_log_level_on_the_command_line_wins_over_the_config_and_no_prefix_off_the_journal(tmp_path: Path) -> None:
    env = make_opsctl_env(tmp_path / "opsctl", 'log_level = "debug"\n')  # into [daemon]
    log_path = env.root / "daemon.log"
    (tmp_path / "elsewhere").touch()
    other = (tmp_path / "elsewhere").stat()
    with log_path.open("ab") as log:
        # JOURNAL_STREAM names another file (as for a child redirected elsewhere): lines stay bare JSON.
        proc = subprocess.Popen([OPSCTL, "daemon", "--config", str(env.config), "--log-level", "error"],
                                env={**env.env, "JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}"},
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        # Answering means the signal handlers are installed (the socket exists before they are).
        probe = DaemonProcess(env)
        wait_for(probe.answers, 20, what="the daemon to answer", context=log_path.read_text)
        env.config.write_text(env.config.read_text() + "[jobs\n")
        proc.send_signal(signal.SIGHUP)
        failed = wait_for(lambda: next((line for line in _lines(log_path) if "config reload failed" in line), None),
                          10, what="the failed reload logged", context=log_path.read_text)
        assert json.loads(failed)["level"] == "error"
        levels = {json.loads(line)["level"] for line in _lines(log_path) if line.startswith("{")}
        assert levels == {"error"}, _lines(log_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_journal_stream_must_name_the_stream_itself(tmp_path: Path) -> None:
    path = tmp_path / "out"
    with path.open("w") as stream:
        info = os.fstat(stream.fileno())
        assert is_journal_stream(stream, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
        assert not is_journal_stream(stream, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"})
        assert not is_journal_stream(stream, {"JOURNAL_STREAM": "garbage"})
        assert not is_journal_stream(stream, {})


def test_syslog_priorities() -> None:
    import logging

    assert [syslog_priority(level) for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO,
                                                 logging.DEBUG, 5)] == [2, 3, 4, 6, 7, 7]


def test_an_unknown_log_level_is_a_config_error() -> None:
    import pytest

    from opsctl.config import DaemonSettings

    with pytest.raises(ValueError, match="log_level must be debug, info, warning or error"):
        DaemonSettings(log_level="loud")
