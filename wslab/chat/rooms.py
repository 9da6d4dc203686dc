"""Rooms and fan-out: who is where, and how a message reaches them without anyone waiting on anyone.

The rules, each the fix for a catalogued failure:

* **Membership belongs to the owning handler** (F01, F03). ``async with manager.membership(...)``
  registers a member and removes it in ``finally``, whatever ends the connection. The broadcaster
  never removes anyone.
* **A broadcast never awaits a socket** (F06). Every member has a bounded outbound queue drained by
  its own sender task (:meth:`Member.send_loop`, the only writer of that socket, F31); ``broadcast``
  only does ``put_nowait``. A stalled peer cannot stall the room.
* **Nothing grows without bound, nothing is dropped silently** (F07). A member whose backlog stays
  over ``queue_size`` without its socket taking anything for ``backlog_timeout`` seconds, or reaches
  twice ``queue_size``, is evicted: its handler closes it with 4009 (SLOW_CONSUMER) and the eviction is
  counted and reported. It can reconnect and catch up; everybody else kept receiving in order. A
  backlog that is still moving is a burst, not a slow reader: several members talking in the same loop
  turn can put more than ``queue_size`` messages in a fast reader's queue before its sender runs, and
  that reader must not be evicted for it (the readers also yield as soon as any queue is over
  ``queue_size``, see :attr:`Stats.behind`).
* **Every message carries the room's ``seq``**, assigned and enqueued in the same synchronous step,
  so each member's queue is in ``seq`` order.
* The JSON of a broadcast is encoded once and the same ``str`` goes to every recipient.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from wslab.chat.auth import Revocations
from wslab.chat.dedup import RecentIds
from wslab.chat.names import printable
from wslab.chat.protocol import Joined, Left, Ready, Resume, ServerMessage
from wslab.chat.ratelimit import UserLimits
from wslab.wire import CloseCode

__all__ = [
    "LOGGER",
    "ConnectionManager",
    "Eviction",
    "Member",
    "Report",
    "Room",
    "Stats",
    "log_report",
    "no_report",
]

Report = Callable[[str, str], None]
"""``report(kind, message)``: where the app tells the outside world what happened. Never ``print``."""


def no_report(kind: str, message: str) -> None:
    """The default report hook: do nothing."""


LOGGER = logging.getLogger("wslab.chat")
"""Where :func:`log_report` writes: a replica process forwards the ``wslab`` loggers to its lab."""


def log_report(kind: str, message: str) -> None:
    """A report hook for an app in another process: an INFO record on ``wslab.chat`` tagged ``wslab_kind``.

    Why a logger: a replica (``wslab.runtime.replica``) cannot call the lab's ``events.record``; it sends
    each ``wslab`` log record to the lab as a JSON line, and the record's ``wslab_kind`` becomes the
    event's kind there (``joined``, ``left``, ``evicted``...), as if the app had reported in-process.
    """
    LOGGER.info(message, extra={"wslab_kind": kind})


@dataclass
class Stats:
    """Counters a lesson asserts on (``assert app.state.chat.stats.evictions == 1``)."""

    enqueued: int = 0
    """Messages put on some member's outbound queue (one per recipient)."""
    delivered: int = 0
    """Messages a sender task handed to its socket."""
    evictions: int = 0
    """Members closed with 4009 because their queue overflowed."""
    behind: int = 0
    """Messages queued for a member that already had ``queue_size`` waiting: a reader that sees this
    change yields at once, so that senders run before more of a burst is queued."""


@dataclass(frozen=True)
class Eviction:
    """Who was evicted, from where, and how far behind they were."""

    user: str
    room: str
    queued: int


class Member:
    """One authenticated connection in one room: its outbound queue and the request to close it.

    ``queue_size`` is where the member counts as behind; the queue itself holds twice that, the hard
    bound. Between the two a message is queued as long as the backlog keeps moving (the sender delivered
    something within ``backlog_timeout``); see the module docstring.
    """

    def __init__(
        self, user: str, room: str, queue_size: int, stats: Stats, backlog_timeout: float = 2.0
    ) -> None:
        self.user = user
        self.room = room
        self.queue_size = queue_size
        self.backlog_timeout = backlog_timeout
        self.outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=2 * queue_size)
        self.delivered = 0
        self.close_request: tuple[CloseCode, str] | None = None
        self.stopped = asyncio.Event()
        self._stats = stats
        self._behind_since = 0.0
        self._behind_at = -1  # ``delivered`` when the backlog was last seen moving
        self.on_stall: Callable[[Member], None] | None = None
        """The manager's eviction: called when the backlog made no progress for ``backlog_timeout``."""
        self._stall_timer: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        """False once the member is asked to close: nothing more is queued for it."""
        return self.close_request is None

    def offer(self, text: str) -> bool:
        """Queue ``text`` without waiting; False if the member cannot take it (the caller evicts)."""
        outbox = self.outbox
        try:
            outbox.put_nowait(text)
        except asyncio.QueueFull:
            return False
        self._stats.enqueued += 1
        # behind now: fine while the backlog moves (a burst), an eviction once it has stopped moving;
        # queue_size 0 is asyncio's "no bound" (the unbounded queue a lesson shows), never behind
        return outbox.qsize() < self.queue_size or self.queue_size <= 0 or self._still_moving()

    def _still_moving(self) -> bool:
        """Over ``queue_size``: True while the sender made progress within ``backlog_timeout``.

        The first time it is behind (and again after each progress) a timer is armed, so a member whose
        room then goes quiet is found out too: nothing would be offered to it to check again.
        """
        self._stats.behind += 1
        now = time.monotonic()
        if self.delivered != self._behind_at:
            self._behind_since, self._behind_at = now, self.delivered
            if self._stall_timer is None:
                loop = asyncio.get_running_loop()
                self._stall_timer = loop.call_later(self.backlog_timeout, self._check_stall)
            return True
        return now - self._behind_since < self.backlog_timeout

    def _check_stall(self) -> None:
        self._stall_timer = None
        if not self.active or self.outbox.qsize() < self.queue_size:
            return  # gone, or caught up
        now = time.monotonic()
        if self.delivered != self._behind_at:  # it moved meanwhile: a new stretch starts now
            self._behind_since, self._behind_at = now, self.delivered
        left = self.backlog_timeout - (now - self._behind_since)
        if left <= 0 and self.on_stall is not None:
            self.on_stall(self)
        elif left > 0:
            self._stall_timer = asyncio.get_running_loop().call_later(left, self._check_stall)

    def request_close(self, code: CloseCode, reason: str) -> None:
        """Ask the owning handler to close this connection (the first request wins)."""
        if self.close_request is None:
            self.close_request = (code, reason)
            self.stopped.set()

    async def send_loop(self, send: Callable[[str], Awaitable[None]]) -> None:
        """The one writer of this socket: send queued messages in order, forever (cancel to stop)."""
        while True:
            text = await self.outbox.get()
            await send(text)
            self.delivered += 1
            self._stats.delivered += 1

    def __repr__(self) -> str:
        return f"<Member {self.user!r} in {self.room!r}, {self.outbox.qsize()} queued>"


class Room:
    """The members of one room, in join order, and its sequence counter."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[Member, None] = {}  # an ordered set
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class ConnectionManager:
    """All rooms of one app process. ``app.state.chat`` is this object; see the module docstring."""

    def __init__(
        self, queue_size: int = 64, report: Report = no_report, backlog_timeout: float = 2.0
    ) -> None:
        self.queue_size = queue_size
        self.backlog_timeout = backlog_timeout
        self.report = report
        self.limits = UserLimits()
        self.stats = Stats()
        self.evictions: list[Eviction] = []
        self.revocations = Revocations()
        self.recent_ids = RecentIds()  # message ids seen, so a retried ``say`` is not broadcast twice
        self._rooms: dict[str, Room] = {}

    # -- what a lesson looks at ------------------------------------------------------------------------
    @property
    def rooms(self) -> dict[str, list[str]]:
        """Room name -> member names in join order; a room with nobody left is not listed."""
        return {name: [m.user for m in room.members] for name, room in self._rooms.items()}

    def seq(self, room: str) -> int:
        """The last sequence number used in ``room`` (0 for a room that does not exist)."""
        existing = self._rooms.get(room)
        return existing.seq if existing is not None else 0

    # -- logout ----------------------------------------------------------------------------------------
    def revoke(self, user: str, reason: str = "logged out") -> int:
        """Void ``user``'s tokens and close each of their live connections 4001 (F28); how many closed.

        Why both halves: a revocation list alone only refuses *new* connections, and a socket that
        authenticated before the logout would go on streaming private messages until it happens to
        reconnect. Each closing handler reports its own close (``auth_failed``).
        """
        self.revocations.revoke(user)
        live = [m for room in self._rooms.values() for m in room.members if m.user == user and m.active]
        for member in live:
            member.request_close(CloseCode.UNAUTHORIZED, f"token revoked: {reason}")
        self.report("revoked", f"{user}: tokens revoked ({reason}), {len(live)} connection(s) closing")
        return len(live)

    async def aclose(self) -> None:
        """Release what the manager holds when the app shuts down: nothing here.

        Members leave with their own handlers; a manager that opens connections of its own (a Redis
        client, F12's listeners) overrides this, and the app's lifespan calls it.
        """

    # -- membership ------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def membership(self, room: str, user: str, resume: Resume | None = None) -> AsyncIterator[Member]:
        """Join ``room`` as ``user`` for the duration of the block; leaving is guaranteed.

        ``resume`` (where the client says it left off) means nothing in one process, which keeps no
        history; a manager with a fan-out backend (:class:`~wslab.chat.fanout.FanOutManager`) uses it.
        """
        member = self._join(room, user)
        try:
            yield member
        finally:
            self._leave(member)

    def _join(self, room_name: str, user: str) -> Member:
        """Add ``user`` to ``room_name`` and queue ``ready`` and ``joined``: all of it, or nothing.

        Anything that fails after the member is inserted (a message that cannot be encoded, a bug)
        removes it again before the exception goes on: a member that is in a room but whose handler
        never reached ``try``/``finally`` would stay listed forever, and be sent to every later joiner.
        """
        room = self._rooms.setdefault(room_name, Room(room_name))
        member = self._new_member(user, room_name)
        room.members[member] = None
        try:
            self.send_to(member, Ready(user=user, room=room_name, members=self._ready_members(room)))
            self.broadcast(room_name, Joined(user=user), exclude=member)
        except BaseException:
            member.request_close(CloseCode.INTERNAL_ERROR, "join failed")
            del room.members[member]
            if not room.members:
                del self._rooms[room_name]
            raise
        self.report("joined", f"{printable(user)} joined {printable(room_name)}")
        return member

    def _leave(self, member: Member) -> None:
        member.request_close(CloseCode.NORMAL_CLOSURE, "left")  # nothing more is queued for it
        room = self._rooms.get(member.room)
        if room is None or member not in room.members:
            return
        del room.members[member]
        if not room.members:
            del self._rooms[room.name]  # an empty room holds nothing worth keeping
        # Locally a no-op once the room is gone; a fan-out backend still tells the other processes.
        self.broadcast(room.name, Left(user=member.user))
        self.report("left", f"{printable(member.user)} left {printable(member.room)}")

    def _ready_members(self, room: Room) -> list[str]:
        """The member list a joining user is given: here, everyone in this process's room, in join order."""
        return [m.user for m in room.members]

    def _new_member(self, user: str, room: str) -> Member:
        """The member object for a join (a fan-out manager's members also track their stream position)."""
        member = Member(user, room, self.queue_size, self.stats, self.backlog_timeout)
        member.on_stall = self._evict
        return member

    # -- fan-out ---------------------------------------------------------------------------------------
    def broadcast(self, room: str, message: ServerMessage, exclude: Member | None = None) -> int:
        """Queue ``message`` for everyone in ``room`` but ``exclude``; returns how many got it queued."""
        target = self._rooms.get(room)
        if target is None:
            return 0
        text = message.encode(target.next_seq())  # encoded once for every recipient
        # A snapshot: evicting during the loop must not change what we iterate over.
        recipients = [m for m in target.members if m is not exclude]
        return sum(self._deliver(m, text) for m in recipients)

    def send_to(self, member: Member, message: ServerMessage) -> bool:
        """Queue ``message`` for one member, stamped with its room's next ``seq``."""
        room = self._rooms.get(member.room)
        if room is None or member not in room.members:
            return False
        return self._deliver(member, message.encode(room.next_seq()))

    def direct(self, room: str, to: str, message: ServerMessage) -> int:
        """Queue ``message`` for every connection of user ``to`` in ``room``; 0 if there is none."""
        target = self._rooms.get(room)
        if target is None:
            return 0
        recipients = [m for m in target.members if m.user == to and m.active]
        if not recipients:
            return 0
        text = message.encode(target.next_seq())
        return sum(self._deliver(m, text) for m in recipients)

    def _deliver(self, member: Member, text: str) -> bool:
        if not member.active:
            return False
        if member.offer(text):
            return True
        self._evict(member)
        return False

    def _evict(self, member: Member) -> None:
        if not member.active:
            return  # already closing (evicted by an offer, or left)
        queued = member.outbox.qsize()
        member.request_close(CloseCode.SLOW_CONSUMER, f"too slow: {queued} messages queued")
        self.stats.evictions += 1
        self.evictions.append(Eviction(member.user, member.room, queued))
        where = f"{printable(member.user)} in {printable(member.room)}"
        self.report("evicted", f"{where}: too far behind ({queued} messages queued)")
