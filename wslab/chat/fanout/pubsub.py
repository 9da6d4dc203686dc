"""Redis pub/sub fan-out: one subscriber connection per process, one SUBSCRIBE per room, at-most-once.

* **Ref-counted** (F12): the first local member of a room subscribes the process, the last one
  unsubscribes (:meth:`PubSubFanOut.interest` is an async context manager, so nobody can forget).
* **Exactly once per process**: a ``say`` is only published; every process, the publisher's included,
  delivers it when it comes back from Redis, to each local member once.
* **Supervised** (F13): the listener runs under :class:`~wslab.chat.fanout.base.Supervised`; after a crash,
  a Redis restart or a silent connection (no answer to a PING within ``redis_timeout``: a half-open
  link would otherwise leave it "connected" and deaf) it backs off, reconnects, re-subscribes every
  room that has local members, and tells those members ``resync`` (what was published meanwhile is
  gone: pub/sub keeps nothing).
* **seq**: a Lua script does ``INCR`` and ``PUBLISH`` in one atomic step, so ``seq`` order is delivery
  order in every process, and a gap in ``seq`` is a message this process missed (``health.missed``).
* The listener only enqueues (F14): it never waits on a member, so Redis never waits on the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import RedisError

from wslab.chat.fanout.base import (
    PRESENCE_TTL,
    REDIS_TIMEOUT,
    Deliver,
    Entry,
    RefCounts,
    Resume,
    Start,
    Supervised,
    redis_client,
    stamp,
)

PREFIX = "wslab:chat:room:"
"""Channel of a room: ``wslab:chat:room:{room}``."""
CONTROL = "wslab:chat:control"
"""Always subscribed, so the listener has a connection (and notices its loss) even with no rooms."""

_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], seq .. '|' .. ARGV[2] .. '|' .. ARGV[3])
return seq
"""


def channel(room: str) -> str:
    """The Redis channel of ``room``."""
    return PREFIX + room


SUBSCRIBE_TIMEOUT = 5.0
"""Seconds a join waits for Redis to confirm the room's SUBSCRIBE before going ahead anyway."""


class PubSubFanOut(Supervised):
    """Redis pub/sub for :class:`~wslab.chat.fanout.manager.FanOutManager` (see the module docstring)."""

    def __init__(self, url: str, timeout: float = REDIS_TIMEOUT, presence_ttl: float = PRESENCE_TTL) -> None:
        super().__init__("pubsub", url, timeout, presence_ttl)
        self._script = self._client.register_script(_PUBLISH)
        self._refs = RefCounts()
        self._pubsub: Any = None
        self._last_seq: dict[str, int] = {}
        # Redis confirms a SUBSCRIBE with a message on the subscriber connection; until it has, messages
        # published to the room are not delivered to this process. A member is only told "ready" after
        # the confirmation, so the first message said after someone joins cannot be lost.
        self._listening = asyncio.Event()
        self._confirmed: dict[str, asyncio.Event] = {}

    # -- interest ----------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def interest(self, room: str) -> AsyncIterator[None]:
        """Reference-counted: the first local member subscribes the process, the last unsubscribes."""
        self.ensure_started()
        async with self._refs.held(room, lambda: self._subscribe(room), lambda: self._unsubscribe(room)):
            # every member waits for the confirmation, not only the one whose join sent the SUBSCRIBE
            with contextlib.suppress(TimeoutError):  # Redis down: the supervisor subscribes when it is back
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                    await self._confirmed.setdefault(channel(room), asyncio.Event()).wait()
            yield

    async def _subscribe(self, room: str) -> None:
        self.health.rooms = sorted(self._refs.counts)
        confirmed = self._confirmed.setdefault(channel(room), asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await self._listening.wait()  # a listener that is still connecting subscribes every room
        if self._pubsub is not None and not confirmed.is_set():
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(channel(room))

    async def _unsubscribe(self, room: str) -> None:
        self.health.rooms = sorted(self._refs.counts)
        self._last_seq.pop(room, None)
        self._confirmed.pop(channel(room), None)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel(room))

    async def prepare(self, room: str, resume: Resume | None) -> Start:
        """Start after the last ``seq`` this process saw; a resuming client is told ``resync``."""
        start = Start(seq=self._last_seq.get(room, 0))
        if resume is not None and (resume.last_id is not None or resume.last_seq is not None):
            start.resync = "no_history"  # pub/sub keeps nothing to replay
        return start

    async def catch_up(self, room: str, start: Start, deliver: Deliver) -> str | None:
        """Nothing to replay: pub/sub keeps nothing (``prepare`` never asks for a catch-up)."""
        return None

    # -- the listener --------------------------------------------------------------------------------------
    async def _listen(self) -> None:
        client = redis_client(self.url, retries=0, timeout=self.timeout)
        pubsub = client.pubsub()
        try:
            for event in self._confirmed.values():
                event.clear()  # a new connection: every room needs a fresh confirmation
            rooms = list(self._refs.counts)
            await pubsub.subscribe(CONTROL, *map(channel, rooms))
            self._pubsub = pubsub
            late = set(self._refs.counts) - set(rooms)  # joined while we were subscribing
            if late:
                await pubsub.subscribe(*map(channel, late))
            self._listening.set()
            reconnected = self._failed_before
            self.connected()
            if reconnected:
                for room in list(self._refs.counts):
                    self._last_seq.pop(room, None)
                    self.resync(room, "fanout_reconnected", None)
            await self._receive(pubsub)
        finally:
            self._listening.clear()
            self._pubsub = None
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _receive(self, pubsub: Any) -> None:
        """Hand over what arrives; after ``timeout / 2`` of silence PING, and give up when the PING gets
        no answer within ``timeout``.

        A subscriber connection only waits to become readable. If Redis vanishes without a FIN or RST
        (a failover, a NAT entry dropped), nothing on it ever fails and the listener stays "connected"
        but deaf: every message published meanwhile is lost and nobody is told. redis-py's
        ``health_check_interval`` only *sends* the PING on a pub/sub connection (celery/kombu#2590), so
        the answer is checked here: raising hands the connection to the supervisor, which reconnects,
        re-subscribes and tells the members ``resync``.
        """
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged_at: float | None = None
        while True:
            message = await pubsub.get_message(timeout=min(1.0, self.timeout / 4))
            now = loop.time()
            if message is None:
                # Only a PING that got no answer counts, and only after a read came back empty: a loop
                # that was merely blocked for a while finds the PONG waiting in its buffer.
                if pinged_at is None and now - heard >= self.timeout / 2:
                    await pubsub.ping()
                    pinged_at = now
                elif pinged_at is not None and now - pinged_at >= self.timeout:
                    raise ConnectionError(f"no answer from Redis to a PING within {self.timeout:g} s")
                continue
            heard, pinged_at = now, None
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        """One message from the subscriber connection: a room message, or Redis confirming a SUBSCRIBE."""
        if message.get("type") == "message":
            self._on_message(message["channel"], message["data"])
        elif message.get("type") == "subscribe":
            name = message["channel"]
            name = name.decode() if isinstance(name, bytes) else name
            self._confirmed.setdefault(name, asyncio.Event()).set()

    def _on_message(self, raw_channel: bytes, data: bytes) -> None:
        name = raw_channel.decode()
        if not name.startswith(PREFIX):
            return
        room = name[len(PREFIX) :]
        if room not in self._refs.counts:
            return  # a message that crossed our UNSUBSCRIBE
        seq_text, exclude, encoded = data.decode().split("|", 2)
        seq = int(seq_text)
        last = self._last_seq.get(room)
        if last is not None and seq > last + 1:
            self.health.missed += seq - last - 1
        self._last_seq[room] = seq
        self.health.received += 1
        self.deliver(Entry(room, seq, stamp(encoded, seq), exclude or None))

    async def _publish(self, room: str, encoded: str, exclude: str | None) -> None:
        await self._script(keys=[f"wslab:chat:seq:{room}"], args=[channel(room), exclude or "", encoded])
