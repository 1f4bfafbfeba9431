"""A client leaving the event stream (a TUI quitting, a laptop lid closing) is routine: no traceback in the log."""

from __future__ import annotations

import httpx

from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.wait import wait_for


def test_clients_that_leave_the_event_stream_leave_no_traceback(daemon: DaemonProcess) -> None:
    for _ in range(3):
        transport = httpx.HTTPTransport(uds=str(daemon.env.socket))
        with httpx.Client(transport=transport, base_url="http://opsctl") as c, c.stream("GET", "/v1/events") as r:
            assert r.status_code == 200
            assert next(r.iter_raw()).startswith(b": opsctl")
    # The daemon notices each departure; it still answers and its log says nothing alarming about them.
    with daemon.http() as http:
        wait_for(lambda: http.get("/v1/status").status_code == 200, what="the daemon answering")
    daemon.stop()
    log = daemon.log()
    assert "Traceback" not in log and "aclose()" not in log, log[-2000:]
