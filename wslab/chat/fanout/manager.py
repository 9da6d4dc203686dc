"""The reference rooms with their fan-out going through a backend: :class:`FanOutManager`.

It is :class:`~wslab.chat.rooms.ConnectionManager` whose ``broadcast`` publishes through a
:class:`~wslab.chat.fanout.base.FanOut` instead of queueing locally; each process's backend hands back
what the room received (``deliver``), and the manager queues it for its local members, once each. A
member joining with a resume point (``membership(room, user, resume)``, from the client's ``auth``) is
caught up from the backend before it goes live. Its :attr:`FanOut.health` is what a lesson (or ``GET
/health/fanout``) looks at.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

from wslab.chat.fanout.base import Entry, FanOut, Start, StreamId, stamp
from wslab.chat.names import printable
from wslab.chat.protocol import Resume, ServerMessage
from wslab.chat.protocol import Resync as ResyncMessage
from wslab.chat.rooms import ConnectionManager, Member, Report, Room, Stats, no_report


class FanOutMember(Member):
    """A member whose position in the room's stream is known: what it was last given, and whether live."""

    def __init__(
        self,
        user: str,
        room: str,
        queue_size: int,
        stats: Stats,
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
    """The reference manager whose room fan-out goes through a backend (see the module docstring).

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
    async def membership(self, room: str, user: str, resume: Resume | None = None) -> AsyncIterator[Member]:
        """Join ``room`` in every process: interest, presence, the start from ``resume``, then catch-up."""
        key = secrets.token_hex(8)
        async with self.fanout.interest(room):
            try:
                await self.fanout.presence.enter(room, key, user)
                present = await self.fanout.presence.users(room)  # on every replica (F11: not only here)
                start = await self.fanout.prepare(room, resume)
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
        """Queue a message for one member, stamped with the position of the last room message it got."""
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
