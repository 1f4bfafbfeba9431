"""The daemon's event bus: every audit event, job result and state change, fanned out to SSE clients.

Publishers may be on any thread (jobs run in worker threads); subscribers are
asyncio queues on the daemon's loop. A slow client never slows the daemon: its
bounded queue overflows, it is told so and disconnected, and it reconnects with
``Last-Event-ID`` to resume from the ring buffer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsctl.clock import Clock, SystemClock, utc_iso


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    at: datetime
    data: dict[str, Any]

    def to_sse(self) -> str:
        payload = json.dumps({"id": self.id, "kind": self.kind, "at": utc_iso(self.at), "data": self.data},
                             default=str, separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.kind}\ndata: {payload}\n\n"


class _Overflowed:
    pass


_OVERFLOW = _Overflowed()


class EventBus:
    def __init__(self, *, clock: Clock | None = None, history: int = 1000, queue_size: int = 1000) -> None:
        self._clock = clock or SystemClock()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[Event | _Overflowed]] = set()
        self._queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None
        # Told of every event published here with relay=True (on PostgreSQL: sent on to the other daemons).
        self.relay: Callable[[str, dict[str, Any]], None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str, data: dict[str, Any], *, relay: bool = True) -> Event:
        """Thread-safe: record the event and hand it to every subscriber on the loop (and to ``relay``).

        ``relay=False``: an event another daemon relayed here, which must not go back out.
        """
        with self._lock:
            event = Event(next(self._ids), kind, self._clock.now(), data)
            self._history.append(event)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._deliver(event)
            else:
                loop.call_soon_threadsafe(self._deliver, event)
        if relay and self.relay is not None:
            self.relay(kind, data)
        return event

    def _deliver(self, event: Event) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # Make room for the marker so the client learns why it was cut off.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(_OVERFLOW)

    def close(self) -> None:
        """End every subscription (used at shutdown so SSE responses finish)."""
        for queue in list(self._subscribers):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(_OVERFLOW)

    def since(self, last_id: int) -> list[Event]:
        with self._lock:
            return [e for e in self._history if e.id > last_id]

    async def subscribe(self, last_id: int | None = None) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event | _Overflowed] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            if last_id is not None:
                for event in self.since(last_id):
                    yield event
            while True:
                item = await queue.get()
                if isinstance(item, _Overflowed):
                    return
                yield item
        finally:
            self._subscribers.discard(queue)
