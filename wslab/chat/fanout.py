"""Fan-out across processes: one interface, three backends, chosen when the app is created.

* ``memory`` (the default): one process, :class:`~wslab.chat.rooms.ConnectionManager` as it is.
* ``pubsub`` (:mod:`wslab.chat.fanout_pubsub`): Redis pub/sub, at-most-once (catalogue F11-F14).
* ``streams`` (:mod:`wslab.chat.fanout_streams`): one Redis stream per room; a client that reconnects
  with its last ``id`` and ``epoch`` gets exactly what it missed, or an explicit ``resync`` (F18).

A Redis backend never lets a member wait on Redis, nor Redis wait on a member: ``broadcast`` puts the
message on a bounded publish queue (a full one is a counted drop), and the supervised listener only
``put_nowait``\\s on each member's bounded outbox. :class:`FanOutManager` is the reference manager with
its fan-out going through a backend; its :attr:`FanOut.health` is what a lesson (or ``GET
/health/fanout``) looks at.

Why a context variable for the resume point: :meth:`ChatSession.run` calls ``membership(room, user)``;
the offset the client sent in its ``auth`` travels alongside, set by the session in its own task
(:data:`RESUME`), so the session's state machine stays the same for every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from wslab.chat.names import printable
from wslab.chat.presence import RedisPresence
from wslab.chat.protocol import Resync as ResyncMessage
from wslab.chat.protocol import ServerMessage
from wslab.chat.rooms import ConnectionManager, Member, Report, Room, no_report

StreamId = tuple[int, int]
"""A Redis stream ID (``"1700000000000-3"``) as a comparable pair."""


def parse_id(text: str | bytes) -> StreamId:
    raw = text.decode() if isinstance(text, bytes) else text
    ms, _, n = raw.partition("-")
    return int(ms), int(n or 0)


def format_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


@dataclass(frozen=True)
class Resume:
    """Where a reconnecting client left off (from its ``auth`` message)."""

    last_id: str | None = None
    epoch: str | None = None
    last_seq: int | None = None


RESUME: contextvars.ContextVar[Resume | None] = contextvars.ContextVar("wslab_chat_resume", default=None)
"""The resume point of the connection whose handler runs in this task (see the module docstring)."""


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
        return dict(self.__dict__)


Deliver = Callable[[Entry], None]
Resync = Callable[[str, str, str | None], None]
"""``resync(room, reason, epoch)``: tell every local member of ``room`` that history is discontinuous."""


class FanOut(Protocol):
    """What :class:`FanOutManager` needs from a backend."""

    health: FanOutHealth
    presence: RedisPresence

    def bind(self, deliver: Deliver, resync: Resync, report: Report) -> None: ...

    def interest(self, room: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Reference-counted: the first local member subscribes the process, the last unsubscribes."""
        ...

    def publish(self, room: str, encoded: str, exclude: str | None) -> None:
        """Queue ``encoded`` (``message.encode(0)``) for the room everywhere; never blocks."""
        ...

    async def prepare(self, room: str, resume: Resume | None) -> Start: ...

    async def catch_up(self, room: str, start: Start, deliver: Callable[[Entry], None]) -> str | None:
        """Replay what the member missed, in order, up to the live stream; a resync reason if it cannot."""
        ...

    async def aclose(self) -> None: ...


class MemoryFanOut:
    """The in-process backend's health, so every app has ``app.state.chat.fanout``; fan-out is local."""

    def __init__(self) -> None:
        self.health = FanOutHealth(backend="memory", state="connected")

    async def aclose(self) -> None:
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
    """A listener that cannot die silently (F13): crash or disconnect -> report, back off, run again."""

    backoff_min = 0.05
    backoff_max = 2.0

    presence: RedisPresence | None = None

    def __init__(self, backend: str) -> None:
        self.health = FanOutHealth(backend=backend)
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
        self.deliver, self.resync, self.report = deliver, resync, report

    def ensure_started(self) -> None:
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
            if self.presence is not None:
                self.presence.refresh_soon()  # Redis may have restarted and lost every entry
            after = self.health.last_error
            self.report("fanout_reconnected", f"{self.health.backend} listener back after {after}")

    async def _listen(self) -> None:
        raise NotImplementedError

    # -- publishing: bounded queue, one task, failures counted ----------------------------------------
    def publish(self, room: str, encoded: str, exclude: str | None) -> None:
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
        self._closing = True
        tasks = [task for task in (self._task, self._publisher) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self._task = self._publisher = None
        self.health.state = "closed"


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


# --- the manager -------------------------------------------------------------------------------------


class FanOutMember(Member):
    """A member whose position in the room's stream is known: what it was last given, and whether live."""

    def __init__(
        self,
        user: str,
        room: str,
        queue_size: int,
        stats: Any,
        key: str | None = None,
        backlog_timeout: float = 2.0,
    ) -> None:
        super().__init__(user, room, queue_size, stats, backlog_timeout)
        self.key = key or secrets.token_hex(8)  # names this member in other processes (``exclude``)
        self.seq = 0
        self.id: StreamId | None = None
        self.epoch: str | None = None
        self.live = True


class FanOutManager(ConnectionManager):
    """The reference manager whose room fan-out goes through a Redis backend (see the module docstring).

    Per-connection messages (``ready``, ``error``, ``dm``, ``reauthed``, ``resync``) are not part of the
    room's stream: they carry the position of the last room message this member was given.
    """

    def __init__(
        self, fanout: FanOut, queue_size: int = 64, report: Report = no_report, backlog_timeout: float = 2.0
    ) -> None:
        super().__init__(queue_size=queue_size, report=report, backlog_timeout=backlog_timeout)
        self.fanout = fanout
        fanout.bind(self._deliver_entry, self._resync_room, report)
        self._start = Start()
        self._present: list[str] = []
        self._key: str | None = None

    def _ready_members(self, room: Room) -> list[str]:
        """This process's members in join order, then those present on other replicas (sorted)."""
        here = [m.user for m in room.members]
        return here + [user for user in self._present if user not in here]

    def _new_member(self, user: str, room: str) -> Member:
        member = FanOutMember(user, room, self.queue_size, self.stats, self._key, self.backlog_timeout)
        member.on_stall = self._evict
        member.seq, member.id, member.epoch = self._start.seq, self._start.id, self._start.epoch
        member.live = self._start.resume_from is None
        if not member.live:
            member.id = self._start.resume_from
        return member

    @contextlib.asynccontextmanager
    async def membership(self, room: str, user: str) -> AsyncIterator[Member]:
        key = secrets.token_hex(8)
        async with self.fanout.interest(room):
            try:
                await self.fanout.presence.enter(room, key, user)
                present = await self.fanout.presence.users(room)  # on every replica (F11: not only here)
                start = await self.fanout.prepare(room, RESUME.get())
                # prepare() and _join() in one synchronous step: no room message can slip in between
                self._start, self._present, self._key = start, present, key  # read by _join
                member = self._join(room, user)
            except BaseException:
                self.fanout.presence.leave(room, key)  # or the refresher would keep it listed forever
                raise
            finally:
                self._start, self._present, self._key = Start(), [], None
            try:
                assert isinstance(member, FanOutMember)
                if start.resync is not None:
                    self._send_resync(member, start.resync, start.epoch)
                if not member.live:
                    reason = await self.fanout.catch_up(room, start, lambda entry: self._offer(member, entry))
                    if reason is not None:
                        self._send_resync(member, reason, start.epoch)
                    member.live = True
                yield member
            finally:
                self._leave(member)  # first: its "left" is queued before the presence update
                self.fanout.presence.leave(room, key)

    # -- fan-out -----------------------------------------------------------------------------------------
    def broadcast(self, room: str, message: ServerMessage, exclude: Member | None = None) -> int:
        """Publish to ``room`` in every process; 0, since who gets it is decided by each listener."""
        key = exclude.key if isinstance(exclude, FanOutMember) else None
        self.fanout.publish(room, message.encode(0), key)
        return 0

    def send_to(self, member: Member, message: ServerMessage) -> bool:
        room = self._rooms.get(member.room)
        if room is None or member not in room.members or not isinstance(member, FanOutMember):
            return False
        return self._deliver(member, stamp(message.encode(0), member.seq, member.id, member.epoch))

    def direct(self, room: str, to: str, message: ServerMessage) -> int:
        """Direct messages stay within this process (a user on another replica is ``unknown_user``)."""
        target = self._rooms.get(room)
        if target is None:
            return 0
        recipients = [m for m in target.members if m.user == to and m.active]
        return sum(self.send_to(m, message) for m in recipients)

    def _deliver_entry(self, entry: Entry) -> None:
        room = self._rooms.get(entry.room)
        if room is None:
            return
        for member in list(room.members):
            if isinstance(member, FanOutMember) and member.live and member.key != entry.exclude:
                self._offer(member, entry)

    def _offer(self, member: FanOutMember, entry: Entry) -> None:
        if entry.id is not None and member.id is not None and entry.id <= member.id:
            return  # already given (a replay overlapping the live stream)
        member.seq, member.id, member.epoch = entry.seq, entry.id, entry.epoch or member.epoch
        if member.key != entry.exclude:
            self._deliver(member, entry.text)

    def _resync_room(self, room: str, reason: str, epoch: str | None) -> None:
        target = self._rooms.get(room)
        for member in list(target.members) if target is not None else []:
            if isinstance(member, FanOutMember):
                if epoch is not None and epoch != member.epoch:
                    member.seq, member.id = 0, None  # positions of the lost stream mean nothing now
                self._send_resync(member, reason, epoch)

    def _send_resync(self, member: FanOutMember, reason: str, epoch: str | None) -> None:
        """``resync`` carries ``seq`` and its own ``epoch``: the position to resume from is unknown."""
        member.epoch = epoch if epoch is not None else member.epoch
        self.report("resync", f"{printable(member.user)} in {printable(member.room)}: {reason}")
        if member.active and member in self._rooms.get(member.room, _NOBODY).members:
            self._deliver(member, stamp(ResyncMessage(reason=reason, epoch=epoch).encode(0), member.seq))


_NOBODY = Room("")


def create_fanout(
    backend: str,
    redis_url: str | None,
    stream_maxlen: int,
    redis_timeout: float = REDIS_TIMEOUT,
    presence_ttl: float = PRESENCE_TTL,
) -> FanOut | None:
    """The backend named in :class:`~wslab.chat.settings.ChatSettings` (None for ``memory``)."""
    if backend == "memory":
        return None
    if redis_url is None:
        raise ValueError(f"the {backend!r} fan-out needs ChatSettings.redis_url")
    if backend == "pubsub":
        from wslab.chat.fanout_pubsub import PubSubFanOut

        return PubSubFanOut(redis_url, timeout=redis_timeout, presence_ttl=presence_ttl)
    if backend == "streams":
        from wslab.chat.fanout_streams import StreamsFanOut

        return StreamsFanOut(
            redis_url, maxlen=stream_maxlen, timeout=redis_timeout, presence_ttl=presence_ttl
        )
    raise ValueError(f"unknown fan-out backend {backend!r}: memory, pubsub or streams")
