"""The feed's core, with no transport: numbered events, a bounded history and bounded live subscriptions.

Every transport in :mod:`wslab.feed.app` answers the same question from here, "what came after N?", so a
lesson can compare WebSocket, SSE and polling over one history. Nothing in this module knows about HTTP,
sockets or a wire format beyond :func:`dumps`, the one JSON encoding every transport shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HISTORY",
    "MAX_MESSAGE",
    "MAX_RECORDED",
    "MAX_WAIT",
    "QUEUE_SIZE",
    "FeedEvent",
    "FeedHub",
    "Subscription",
    "dumps",
    "live_after",
]

HISTORY = 1000
"""Events a hub keeps for resuming clients."""
QUEUE_SIZE = 256
"""Events a subscriber may fall behind before it is dropped (it can resume from history)."""
MAX_MESSAGE = 4096
"""Largest client→server WebSocket message or ``say`` body, in bytes."""
MAX_WAIT = 30.0
"""Longest long-poll wait a request may ask for, in seconds."""
MAX_RECORDED = 10_000
"""Messages a client keeps in ``received``."""


def dumps(obj: Any) -> str:
    """Compact JSON, the same on every transport so their byte counts compare."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class FeedEvent:
    """One published event. ``published_at`` is ``time.monotonic()`` (for latency, never sent)."""

    id: int
    data: Any
    published_at: float = 0.0

    def wire(self) -> dict[str, Any]:
        """What every transport sends for this event."""
        return {"id": self.id, "data": self.data}


class Subscription:
    """A subscriber's bounded queue of live events; ``None`` in the queue means "you were dropped"."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue(size + 1)
        self.size = size
        self.ended = ""  # why the hub stopped feeding it: "overflow", "closed"

    def _offer(self, event: FeedEvent) -> bool:
        if self.ended:
            return False
        if self.queue.qsize() >= self.size:
            self._end("overflow")
            return False
        self.queue.put_nowait(event)
        return True

    def _end(self, reason: str) -> None:
        if not self.ended:
            self.ended = reason
            self.queue.put_nowait(None)  # the extra slot is reserved for this

    async def get(self, timeout: float | None = None) -> FeedEvent | None:
        """The next live event; ``None`` once dropped; ``TimeoutError`` after ``timeout`` seconds."""
        return await asyncio.wait_for(self.queue.get(), timeout)


class FeedHub:
    """Bounded history with increasing integer ids, and bounded live subscriptions.

    >>> hub = FeedHub()
    >>> hub.publish({"price": 101})
    1
    >>> [e.id for e in hub.since(0)]
    [1]
    """

    def __init__(self, history: int = HISTORY, queue_size: int = QUEUE_SIZE) -> None:
        self._history: deque[FeedEvent] = deque(maxlen=history)
        self._subscribers: set[Subscription] = set()
        self._changed: asyncio.Event | None = None
        self.queue_size = queue_size
        self.last_id = 0
        self.dropped = 0  # subscribers dropped for falling behind
        self.requests: Counter[str] = Counter()  # per transport: WebSocket/SSE connections, polls, says
        self.upstream: Counter[str] = Counter()  # client→server messages seen on WebSockets, by type

    # -- writing -----------------------------------------------------------------------------------
    def publish(self, data: Any) -> int:
        """Append ``data`` as the next event, hand it to every live subscriber, and return its id."""
        self.last_id += 1
        event = FeedEvent(self.last_id, data, time.monotonic())
        self._history.append(event)
        for sub in list(self._subscribers):
            if not sub._offer(event) and sub.ended == "overflow":
                self._subscribers.discard(sub)
                self.dropped += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        return event.id

    def close_subscribers(self) -> int:
        """End every live subscription (WebSockets close with 1012, SSE streams end): what a graceful
        shutdown does first, so that no stream holds the server open. Returns how many were ended."""
        subs = list(self._subscribers)
        for sub in subs:
            sub._end("closed")
        self._subscribers.clear()
        return len(subs)

    # -- reading -----------------------------------------------------------------------------------
    def since(self, after: int, limit: int | None = None) -> list[FeedEvent]:
        """Events with ``id > after`` still in the history, oldest first (at most ``limit``)."""
        found = [e for e in self._history if e.id > after]
        return found[:limit] if limit is not None else found

    def get(self, event_id: int) -> FeedEvent | None:
        """The event with this id, if it is still in the history."""
        for event in reversed(self._history):
            if event.id == event_id:
                return event
        return None

    def covers(self, after: int) -> bool:
        """True if everything after ``after`` is still in the history (a resume from it is complete)."""
        oldest = self._history[0].id if self._history else self.last_id + 1
        return after >= oldest - 1

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """A live subscription for the duration of a ``with`` block (never leaks on cancellation)."""
        sub = Subscription(self.queue_size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def resume(self, sub: Subscription, after: int | None) -> tuple[list[FeedEvent], int]:
        """What a (re)connecting subscriber gets first, and the last id that covers.

        Call it *after* subscribing: an event published in between is then both in the replay and in
        the queue, and :func:`live_after` skips it, instead of falling between the two.
        """
        if after is None:
            return [], self.last_id
        replay = self.since(after)
        return replay, replay[-1].id if replay else max(after, 0)

    async def wait_after(self, after: int, timeout: float) -> bool:
        """Wait until an event with ``id > after`` exists, at most ``timeout`` seconds (long polling)."""
        deadline = time.monotonic() + timeout
        while self.last_id <= after:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._changed is None:
                self._changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True


async def live_after(sub: Subscription, last: int, timeout: float | None = None) -> FeedEvent | None:
    """The next live event newer than ``last`` (skipping ones a replay already sent); None if dropped."""
    while True:
        event = await sub.get(timeout)
        if event is None or event.id > last:
            return event
