"""Rooms across processes, the part every backend shares: the types, the interface, the supervisor.

* ``memory`` (the default): one process; :class:`MemoryFanOut` only carries the health of a fan-out that
  is the in-process :class:`~wslab.chat.rooms.ConnectionManager` itself.
* ``pubsub`` (:mod:`wslab.chat.fanout.pubsub`): Redis pub/sub, at-most-once (F11-F14).
* ``streams`` (:mod:`wslab.chat.fanout.streams`): one Redis stream per room; a client that reconnects
  with its last ``id`` and ``epoch`` gets exactly what it missed, or an explicit ``resync`` (F18).

A Redis backend never lets a member wait on Redis, nor Redis wait on a member: ``publish`` puts the
message on a bounded publish queue (a full one is a counted drop), and the supervised listener only
hands entries to ``deliver``, which only ``put_nowait``\\s on each member's bounded outbox. Every backend
is a :class:`Supervised` that fits :class:`FanOut`, the interface
:class:`~wslab.chat.fanout.manager.FanOutManager` calls; mypy checks that they fit (``create_fanout``
returns them as a ``FanOut``), and so does ``tests/fanout/test_fanout.py``.

This module imports nothing from its backends nor from the manager: they import it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from wslab.chat.presence import RedisPresence
from wslab.chat.protocol import Resume as Resume  # re-exported: every backend's prepare() takes one
from wslab.chat.rooms import Report, no_report

StreamId = tuple[int, int]
"""A Redis stream ID (``"1700000000000-3"``) as a comparable pair."""


def parse_id(text: str | bytes) -> StreamId:
    """``b"1700000000000-3"`` -> ``(1700000000000, 3)``: stream IDs compare as pairs, not as strings."""
    raw = text.decode() if isinstance(text, bytes) else text
    ms, _, n = raw.partition("-")
    return int(ms), int(n or 0)


def format_id(value: StreamId) -> str:
    """The inverse of :func:`parse_id`, for Redis commands and for the ``id`` a client is given."""
    return f"{value[0]}-{value[1]}"


@dataclass(frozen=True)
class Entry:
    """One room message as a backend hands it to the manager: final JSON, encoded once per process."""

    room: str
    seq: int
    text: str
    exclude: str | None = None
    id: StreamId | None = None
    epoch: str | None = None


def stamp(encoded: str, seq: int, id: StreamId | None = None, epoch: str | None = None) -> str:
    """Put the room position into JSON made by ``message.encode(0)`` (``seq`` is its first field)."""
    assert encoded.startswith('{"seq":0'), encoded
    text = '{"seq":' + str(seq) + encoded[len('{"seq":0') :]
    if id is not None:
        text = text[:-1] + f',"id":"{format_id(id)}","epoch":"{epoch}"}}'
    return text


@dataclass
class Start:
    """Where a new member starts: its first position, and whether it must catch up or resync first."""

    seq: int = 0
    id: StreamId | None = None
    epoch: str | None = None
    resume_from: StreamId | None = None
    resync: str | None = None


@dataclass
class FanOutHealth:
    """What a lesson asserts on: ``assert app.state.chat.fanout.health.reconnects == 1``."""

    backend: str
    state: str = "idle"
    """idle | connecting | connected | reconnecting | closed"""
    connects: int = 0
    reconnects: int = 0
    """Successful connects after a failure (the listener came back)."""
    errors: int = 0
    last_error: str | None = None
    published: int = 0
    publish_failures: int = 0
    """Messages lost because Redis refused or was unreachable (at-most-once, counted honestly)."""
    publish_dropped: int = 0
    """Messages dropped because the bounded publish queue was full."""
    received: int = 0
    missed: int = 0
    """Room messages this process never received, seen as gaps in ``seq`` (pub/sub only)."""
    rooms: list[str] = field(default_factory=list)
    """Rooms this process is subscribed to (or reading) right now."""
    presence_failures: int = 0
    """Presence updates or queries Redis did not answer (joins then list local members only)."""

    def as_dict(self) -> dict[str, Any]:
        """What ``GET /health/fanout`` answers, so a lesson can read a replica in another process."""
        return dict(self.__dict__)


Deliver = Callable[[Entry], None]
Resync = Callable[[str, str, str | None], None]
"""``resync(room, reason, epoch)``: tell every local member of ``room`` that history is discontinuous."""


class HasHealth(Protocol):
    """What every app's ``app.state.fanout`` has, the in-process one included: a health, and a close."""

    health: FanOutHealth

    async def aclose(self) -> None: ...


class FanOut(HasHealth, Protocol):
    """What :class:`~wslab.chat.fanout.manager.FanOutManager` needs from a backend.

    A backend fits it structurally (no base class needed); ``create_fanout`` is typed to return it, so
    mypy fails the day a backend's method stops matching, and ``tests/fanout/test_fanout.py`` compares the
    signatures at run time.
    """

    presence: RedisPresence

    def bind(self, deliver: Deliver, resync: Resync, report: Report) -> None:
        """Where the backend hands what it receives: the manager's delivery, resync and report hooks."""
        ...

    def interest(self, room: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Reference-counted: the first local member subscribes the process, the last unsubscribes."""
        ...

    def publish(self, room: str, encoded: str, exclude: str | None) -> None:
        """Queue ``encoded`` (``message.encode(0)``) for the room everywhere; never blocks."""
        ...

    async def prepare(self, room: str, resume: Resume | None) -> Start:
        """Where a member joining now starts, given where its client says it left off."""
        ...

    async def catch_up(self, room: str, start: Start, deliver: Deliver) -> str | None:
        """Replay what the member missed, in order, up to the live stream; a resync reason if it cannot."""
        ...


class MemoryFanOut:
    """The in-process backend's health, so every app has ``app.state.chat.fanout``; fan-out is local."""

    def __init__(self) -> None:
        self.health = FanOutHealth(backend="memory", state="connected")

    async def aclose(self) -> None:
        """Nothing to stop: the rooms are this process's; only the state says the app has ended."""
        self.health.state = "closed"


REDIS_TIMEOUT = 2.0
"""Seconds without an answer from Redis before a connection counts as dead (ChatSettings.redis_timeout)."""
PRESENCE_TTL = 30.0
"""Seconds a crashed replica's members stay listed in their rooms (ChatSettings.presence_ttl)."""


def redis_client(url: str, retries: int = 1, timeout: float = REDIS_TIMEOUT) -> Redis:
    """A client that fails fast: a publish during an outage is lost and counted, not retried for seconds.

    One immediate retry by default: after a Redis restart the first command meets a pooled connection
    the old server closed, and that must not cost the first message after recovery. Listeners use
    ``retries=0``: redis-py would otherwise reconnect and re-subscribe behind the supervisor's back,
    and nobody would know (nor tell the members) that messages were lost in between.

    ``timeout`` bounds every read: on a half-open connection (Redis gone without a FIN or RST: a
    failover, a NAT entry dropped) a command would otherwise wait for its reply forever, and the one
    publisher task with it (F13). A command that timed out is not retried: Redis may have run it, and
    a second run would publish the message twice.
    """
    retry = Retry(NoBackoff(), retries, supported_errors=(RedisConnectionError,))
    return Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=timeout, retry=retry)


class Supervised:
    """A listener that cannot die silently (F13): crash or disconnect -> report, back off, run again.

    The base of every Redis backend: it owns the command connection (``_client``) and the presence
    (:class:`~wslab.chat.presence.RedisPresence`) built on it, the supervised listener task and the
    bounded publisher task. A backend writes ``_listen`` (calling :meth:`connected` once it is
    subscribed) and ``_publish``, plus the :class:`FanOut` methods about rooms.
    """

    backoff_min = 0.05
    backoff_max = 2.0

    def __init__(
        self, backend: str, url: str, timeout: float = REDIS_TIMEOUT, presence_ttl: float = PRESENCE_TTL
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.health = FanOutHealth(backend=backend)
        self._client = redis_client(url, timeout=timeout)
        self.presence = RedisPresence(self._client, presence_ttl, self.health)
        self.report: Report = no_report
        self.deliver: Deliver = lambda entry: None
        self.resync: Resync = lambda room, reason, epoch: None
        self._task: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[tuple[str, str, str | None]] = asyncio.Queue(maxsize=1024)
        self._failed_before = False
        self._delay = self.backoff_min
        self._closing = False

    def bind(self, deliver: Deliver, resync: Resync, report: Report) -> None:
        """Where received entries, resyncs and reports go (the manager's hooks)."""
        self.deliver, self.resync, self.report = deliver, resync, report

    def ensure_started(self) -> None:
        """Start the listener and the publisher on first use, in the loop of the first member."""
        if self._task is None:
            name = self.health.backend
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"fanout-{name}")
            self._publisher = asyncio.get_running_loop().create_task(self._publish_loop(), name="fanout-pub")

    async def _supervise(self) -> None:
        while True:
            self.health.state = "reconnecting" if self._failed_before else "connecting"
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever killed it, it comes back
                if self._cancelled():
                    raise asyncio.CancelledError from exc
                self._failed_before = True
                self.health.errors += 1
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                self.health.state = "reconnecting"
                self.report("fanout_error", f"{self.health.backend} listener: {self.health.last_error}")
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self.backoff_max)

    def connected(self) -> None:
        """Called by ``_listen`` once it is connected and subscribed: resets the backoff story."""
        self.health.state = "connected"
        self.health.connects += 1
        self._delay = self.backoff_min
        if self._failed_before:
            self.health.reconnects += 1
            self.presence.refresh_soon()  # Redis may have restarted and lost every entry
            after = self.health.last_error
            self.report("fanout_reconnected", f"{self.health.backend} listener back after {after}")

    async def _listen(self) -> None:
        raise NotImplementedError

    # -- publishing: bounded queue, one task, failures counted ----------------------------------------
    def publish(self, room: str, encoded: str, exclude: str | None) -> None:
        """Queue ``encoded`` (``message.encode(0)``) for the room everywhere; never blocks."""
        self.ensure_started()
        try:
            self._outbox.put_nowait((room, encoded, exclude))
        except asyncio.QueueFull:
            self.health.publish_dropped += 1
            self.report("fanout_publish_dropped", f"publish queue full; message to {room} dropped")

    async def _publish_loop(self) -> None:
        failing = False
        while True:
            room, encoded, exclude = await self._outbox.get()
            try:
                await self._publish(room, encoded, exclude)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # at-most-once: count it, go on
                if self._cancelled():
                    raise asyncio.CancelledError from exc
                self.health.publish_failures += 1
                if not failing:
                    why = f"{type(exc).__name__}: {exc}"
                    self.report("fanout_publish_failed", f"message to {room} lost: {why}")
                failing = True
            else:
                self.health.published += 1
                failing = False

    async def _publish(self, room: str, encoded: str, exclude: str | None) -> None:
        raise NotImplementedError

    def _cancelled(self) -> bool:
        """True when we are being stopped: redis-py may turn a cancellation into a ConnectionError."""
        task = asyncio.current_task()
        return self._closing or (task is not None and task.cancelling() > 0)

    async def aclose(self) -> None:
        """Stop the listener and the publisher, then the presence refresher and the connection."""
        self._closing = True
        tasks = [task for task in (self._task, self._publisher) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._task = self._publisher = None
        self.health.state = "closed"
        await self.presence.aclose()
        await self._client.aclose()


class RefCounts:
    """Local members per room; ``acquire``/``release`` say when the count leaves or reaches zero."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def acquire(self, room: str) -> bool:
        self.counts[room] = self.counts.get(room, 0) + 1
        return self.counts[room] == 1

    def release(self, room: str) -> bool:
        self.counts[room] -= 1
        if self.counts[room] == 0:
            del self.counts[room]
            return True
        return False

    @contextlib.asynccontextmanager
    async def held(
        self, room: str, first: Callable[[], Awaitable[None]], last: Callable[[], Awaitable[None]]
    ) -> AsyncIterator[None]:
        """Hold ``room`` for the block: ``first()`` when the count leaves 0, ``last()`` when it is back."""
        if self.acquire(room):
            try:
                await first()
            except BaseException:  # cancelled while subscribing: the count must not leak
                self.release(room)
                raise
        try:
            yield
        finally:
            if self.release(room):
                await last()
