"""Redis Streams fan-out: one stream per room, every message has an offset, reconnects resume (F18).

* ``XADD wslab:chat:stream:{room} MAXLEN ~ n`` (a Lua script that also ``INCR``\\s the room's ``seq`` and
  stores the room's **epoch**, set once per stream's life with ``SET NX``: Redis losing its data loses
  the epoch key too, so the next one differs).
* One reader per process: a single ``XREAD BLOCK`` over every room with local members, from each
  room's last delivered ID. It is supervised: after a disconnect it continues from that ID (nothing is
  lost while Redis stays up), and if the epoch changed it tells the room's members ``resync``.
* A member that joins with ``last_id``/``epoch`` is caught up before it goes live: ``XRANGE`` from its
  offset until the reader's recent-entries ring covers the rest, then the ring, in one synchronous step,
  so nothing is missed or doubled (each member also drops any ID it was already given). An offset older
  than what ``MAXLEN`` kept, or from another epoch, gets ``resync`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote, unquote

from redis.exceptions import RedisError, ResponseError

from wslab.chat.fanout.base import (
    PRESENCE_TTL,
    REDIS_TIMEOUT,
    Deliver,
    Entry,
    RefCounts,
    Resume,
    Start,
    StreamId,
    Supervised,
    format_id,
    parse_id,
    redis_client,
    stamp,
)
from wslab.chat.names import printable

_XADD = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
local seq = redis.call('INCR', KEYS[2])
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                  's', seq, 'e', epoch, 'x', ARGV[4], 'm', ARGV[2])
"""

RawEntry = tuple[bytes, dict[bytes, bytes]]
"""A stream entry as redis-py returns it (no ``decode_responses``): its ID and its fields."""

RING = 256
"""Recent entries each room keeps in memory, so a catch-up can join the live stream without a gap."""


STREAM_PREFIX = "wslab:chat:stream:"


def keys(room: str) -> tuple[str, str, str]:
    """The stream, seq counter and epoch keys of a room: ``wslab:chat:<kind>:{<room, escaped>}``.

    Why this shape: a room name is the client's, so it must not be able to name another room's key or
    another kind of key. The kind comes first (``stream``, ``stream-seq``, ``stream-epoch``, and the
    ``presence`` and pub/sub ``seq`` keys of the other modules are kinds too), and the room is escaped
    (:func:`urllib.parse.quote`, so it holds no ``:`` and no brace), so two different (kind, room) pairs
    never give the same key. With the room names pasted raw after ``wslab:chat:``, room ``x:epoch``'s
    keys were room ``presence:x``'s presence set, and WRONGTYPE stopped every room of the replica. The
    braces are Redis Cluster hash tags: the three keys of one room live in one slot, as the script needs.
    """
    tag = "{" + quote(room, safe="") + "}"
    return f"{STREAM_PREFIX}{tag}", f"wslab:chat:stream-seq:{tag}", f"wslab:chat:stream-epoch:{tag}"


def room_of(stream_key: str) -> str:
    """The room whose stream is ``stream_key`` (the inverse of ``keys(room)[0]``)."""
    return unquote(stream_key.removeprefix(STREAM_PREFIX).removeprefix("{").removesuffix("}"))


@dataclass
class RoomCursor:
    """This process's reading position in one room's stream."""

    epoch: str | None = None
    last: StreamId = (0, 0)
    seq: int = 0
    ring: deque[Entry] = field(default_factory=lambda: deque(maxlen=RING))
    base: StreamId = (0, 0)
    """The ring holds every entry after ``base`` up to ``last``."""
    broken: str | None = None
    """Why Redis refuses this room's keys (WRONGTYPE...): it is left out of the reader, the others go on."""

    def reset(self, epoch: str | None, last: StreamId, seq: int) -> None:
        self.epoch, self.last, self.seq, self.base = epoch, last, seq, last
        self.ring.clear()


class StreamsFanOut(Supervised):
    """Redis Streams for :class:`~wslab.chat.fanout.manager.FanOutManager` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        maxlen: int = 1000,
        block: float = 0.1,
        timeout: float = REDIS_TIMEOUT,
        presence_ttl: float = PRESENCE_TTL,
    ) -> None:
        super().__init__("streams", url, timeout, presence_ttl)
        self.maxlen = maxlen
        self.block_ms = max(1, int(block * 1000))
        self._script = self._client.register_script(_XADD)
        self._refs = RefCounts()
        self.cursors: dict[str, RoomCursor] = {}

    # -- interest ------------------------------------------------------------------------------------------
    def interest(self, room: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Reference-counted: the first local member opens the room's cursor, the last closes it."""
        self.ensure_started()
        return self._refs.held(room, lambda: self._open(room), lambda: self._close(room))

    async def _open(self, room: str) -> None:
        cursor = self.cursors[room] = RoomCursor()
        self.health.rooms = sorted(self._refs.counts)
        with contextlib.suppress(RedisError, OSError):  # unknown epoch: the reader finds it on reconnect
            cursor.reset(*await self._head(self._client, room))

    async def _close(self, room: str) -> None:
        self.cursors.pop(room, None)
        self.health.rooms = sorted(self._refs.counts)

    async def _head(self, client: Any, room: str) -> tuple[str, StreamId, int]:
        """The room's epoch (created if there is none yet), last ID and last seq."""
        stream, _, epoch_key = keys(room)
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(epoch_key, secrets.token_hex(6), nx=True)
            pipe.get(epoch_key)
            pipe.xrevrange(stream, "+", "-", count=1)
            _, epoch, newest = await pipe.execute()
        if not newest:
            return epoch.decode(), (0, 0), 0
        entry_id, fields = newest[0]
        return epoch.decode(), parse_id(entry_id), int(fields[b"s"])

    # -- resume --------------------------------------------------------------------------------------------
    async def prepare(self, room: str, resume: Resume | None) -> Start:
        """Start live, or from the client's offset if this epoch still holds it; else ``resync``."""
        cursor = self.cursors[room]
        start = Start(seq=cursor.seq, id=cursor.last, epoch=cursor.epoch)
        if resume is None or resume.last_id is None:
            return start
        if cursor.epoch is None or resume.epoch != cursor.epoch:
            start.resync = "epoch_changed"
            return start
        try:
            offset = parse_id(resume.last_id)
            oldest = cast(list[RawEntry], await self._client.xrange(keys(room)[0], "-", "+", count=1))
        except (ValueError, RedisError, OSError):
            start.resync = "history_lost"
            return start
        if oldest and int(oldest[0][1][b"s"]) != 1 and parse_id(oldest[0][0]) > offset:
            start.resync = "history_lost"  # MAXLEN trimmed something after the client's offset
            return start
        start.resume_from, start.seq = offset, resume.last_seq or 0
        return start

    async def catch_up(self, room: str, start: Start, deliver: Deliver) -> str | None:
        """Replay from Redis up to the ring, then the ring, synchronously; ``history_lost`` if Redis fails."""
        cursor = self.cursors[room]
        assert start.resume_from is not None
        position = start.resume_from
        try:
            while position < cursor.base:  # older than what the ring holds: read it from Redis
                since = f"({format_id(position)}"
                batch = cast(list[RawEntry], await self._client.xrange(keys(room)[0], since, "+", count=500))
                if not batch:
                    break
                for entry_id, fields in batch:
                    entry = self._entry(room, parse_id(entry_id), fields)
                    deliver(entry)
                    position = max(position, entry.id or position)
        except (RedisError, OSError):
            return "history_lost"
        for entry in list(cursor.ring):  # the rest, synchronously: no live entry can slip in between
            if entry.id is not None and entry.id > position:
                deliver(entry)
        return None

    # -- the reader ------------------------------------------------------------------------------------------
    async def _listen(self) -> None:
        # XREAD BLOCK answers within block_ms even when nothing is new, so a read that takes longer than
        # that plus the timeout means a dead connection: the client raises and the supervisor reconnects.
        client = redis_client(self.url, retries=0, timeout=self.timeout + self.block_ms / 1000)
        try:
            await client.ping()
            for room, cursor in list(self.cursors.items()):
                cursor.broken = None  # a new connection: try every room again
                await self._revalidate_room(client, room)
            self.connected()
            while True:
                for room, cursor in list(self.cursors.items()):
                    if cursor.epoch is None and cursor.broken is None:
                        await self._revalidate_room(client, room)
                streams: dict[Any, Any] = {
                    keys(r)[0]: format_id(c.last)
                    for r, c in self.cursors.items()
                    if c.epoch and c.broken is None
                }
                if not streams:
                    await asyncio.sleep(self.block_ms / 1000)
                    continue
                try:
                    read = await client.xread(streams, count=500, block=self.block_ms)
                except ResponseError as exc:  # one stream key of the wrong type fails the whole XREAD
                    if not await self._find_broken(client, streams, exc):
                        raise
                    continue
                response = cast(list[tuple[bytes, list[RawEntry]]] | None, read)
                for stream, entries in response or []:
                    room = room_of(stream.decode())
                    for entry_id, fields in entries:
                        try:
                            self._on_entry(room, parse_id(entry_id), fields)
                        except (KeyError, ValueError) as exc:  # not an entry we wrote: this room only
                            self._break(room, exc)
                            break
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _revalidate_room(self, client: Any, room: str) -> None:
        """:meth:`_revalidate`, except that a refusal of this room's keys only takes this room out."""
        try:
            await self._revalidate(client, room)
        except ResponseError as exc:
            self._break(room, exc)

    async def _find_broken(self, client: Any, streams: dict[str, str], exc: ResponseError) -> bool:
        """After a failed XREAD: take out every room whose stream key is not a stream; False if none is."""
        found = False
        for key in streams:
            kind = await client.type(key)
            if (kind.decode() if isinstance(kind, bytes) else kind) not in ("stream", "none"):
                self._break(room_of(key), exc)
                found = True
        return found

    def _break(self, room: str, exc: Exception) -> None:
        """One room's keys are unusable: report it, tell its members, and read every other room on."""
        cursor = self.cursors.get(room)
        if cursor is None or cursor.broken is not None:
            return
        cursor.broken = f"{type(exc).__name__}: {exc}"
        self.health.errors += 1
        self.health.last_error = cursor.broken
        self.report("fanout_room_error", f"room {printable(room)!r} left out of the reader: {cursor.broken}")
        self.resync(room, "room_unavailable", None)

    async def _revalidate(self, client: Any, room: str) -> None:
        """After (re)connecting: same epoch, go on from our ID; new epoch, history is gone: resync."""
        epoch, last, seq = await self._head(client, room)
        cursor = self.cursors.get(room)
        if cursor is None:
            return
        if cursor.epoch is None:
            cursor.reset(epoch, last, seq)
        elif cursor.epoch != epoch:
            cursor.reset(epoch, (0, 0), 0)
            self.resync(room, "epoch_changed", epoch)

    def _entry(self, room: str, entry_id: StreamId, fields: dict[bytes, bytes]) -> Entry:
        seq, epoch = int(fields[b"s"]), fields[b"e"].decode()
        text = stamp(fields[b"m"].decode(), seq, entry_id, epoch)
        return Entry(room, seq, text, fields[b"x"].decode() or None, entry_id, epoch)

    def _on_entry(self, room: str, entry_id: StreamId, fields: dict[bytes, bytes]) -> None:
        cursor = self.cursors.get(room)
        if cursor is None or entry_id <= cursor.last:
            return  # the room closed, or reopened from a later ID, while XREAD was in flight
        entry = self._entry(room, entry_id, fields)
        if entry.epoch != cursor.epoch:
            cursor.reset(entry.epoch, cursor.last, cursor.seq)
            self.resync(room, "epoch_changed", entry.epoch)
        elif cursor.seq and entry.seq > cursor.seq + 1:
            # MAXLEN trimmed entries before this reader got to them (a burst, a stalled reader): the
            # members cannot be given what they missed, so say so instead of skipping it silently.
            self.health.missed += entry.seq - cursor.seq - 1
            self.resync(room, "history_lost", entry.epoch)
        if len(cursor.ring) == cursor.ring.maxlen:
            cursor.base = cursor.ring[0].id or cursor.base
        cursor.ring.append(entry)
        cursor.last, cursor.seq = entry_id, entry.seq
        self.health.received += 1
        self.deliver(entry)

    async def _publish(self, room: str, encoded: str, exclude: str | None) -> None:
        args: list[str | int] = [self.maxlen, encoded, secrets.token_hex(6), exclude or ""]
        await self._script(keys=list(keys(room)), args=args)
