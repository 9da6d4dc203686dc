"""F12, one Redis subscription per WebSocket: every message arrives N times, connections grow with users.

The reference fan-out (:mod:`wslab.chat.fanout.pubsub`) keeps **one** subscriber connection per
process, subscribes a room when its first local member joins (ref-counted), and its one listener hands
each message to each local member once. This variant does what the "scale your FastAPI chat with Redis"
tutorials write instead, inside the WebSocket handler::

    pubsub = redis.pubsub()                 # a new Redis connection for this WebSocket
    await pubsub.subscribe(room)
    async def reader():
        async for message in pubsub.listen():
            if message["type"] == "message":
                await manager.broadcast(room, message["data"])   # to *every* local socket of the room
    task = asyncio.create_task(reader())
    try:
        while True:
            await redis.publish(room, await websocket.receive_text())
    finally:
        manager.disconnect(websocket)
        task.cancel()                       # ... and no UNSUBSCRIBE, no pubsub.aclose()

Three things go wrong at once (catalogue F12):

* with *k* members of a room in one process there are *k* listeners, and each one re-broadcasts to all
  *k* members: everybody receives every message *k* times;
* Redis holds one connection per WebSocket (``CLIENT LIST``, ``PUBSUB NUMSUB``), plus the publisher's:
  a crowd of users reaches ``maxclients`` (10 000 by default);
* a member who leaves cancels its reader but never unsubscribes: its subscription, and its connection,
  stay in Redis until the process ends.

Everything else is the reference app: first-message auth, rooms, ``seq``, limits. The ``ready`` /
``joined`` / ``left`` notices go through the reference queues, so the same clients drive both apps;
only ``say`` takes the Redis path, and :meth:`ListenerPerConnectionSession._read_loop` is the reference
read loop with that one line changed. Each Redis connection this app opens is named (``CLIENT
SETNAME``) after the app, so a lesson can count them in ``CLIENT LIST``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis

from wslab.chat.app import create_app as create_reference_app
from wslab.chat.protocol import Error, Message, ProtocolViolation, Resume, Say, parse_client_message
from wslab.chat.rooms import ConnectionManager, Member, Report, no_report
from wslab.chat.session import ChatSession, CloseConnection
from wslab.chat.settings import ChatSettings
from wslab.wire import CloseCode

__all__ = ["ListenerPerConnectionManager", "ListenerPerConnectionSession", "channel", "create_app"]

PREFIX = "wslab:f12:room:"
"""Channel of a room (not the reference's, so both apps can share one Redis in a lesson)."""


def channel(room: str) -> str:
    return PREFIX + room


class ListenerPerConnectionManager(ConnectionManager):
    """The reference in-process manager, plus a Redis pub/sub connection and a listener per member."""

    def __init__(
        self, redis_url: str, name: str = "f12", queue_size: int = 64, report: Report = no_report
    ) -> None:
        super().__init__(queue_size=queue_size, report=report)
        self.name = name
        self.redis: Redis = Redis.from_url(redis_url, client_name=name)
        self.listeners: dict[Member, asyncio.Task[None]] = {}
        self.subscriptions: list[Any] = []  # every pubsub ever opened: nothing ever removes one

    @contextlib.asynccontextmanager
    async def membership(self, room: str, user: str, resume: Resume | None = None) -> AsyncIterator[Member]:
        pubsub = self.redis.pubsub()  # THE PITFALL: one more Redis connection for every WebSocket
        await pubsub.subscribe(channel(room))
        self.subscriptions.append(pubsub)
        async with super().membership(room, user, resume) as member:
            self.listeners[member] = asyncio.get_running_loop().create_task(
                self._listen(pubsub, room), name=f"f12-listener-{user}"
            )
            try:
                yield member
            finally:
                self.listeners.pop(member).cancel()  # no UNSUBSCRIBE, no aclose(): the subscription stays

    async def _listen(self, pubsub: Any, room: str) -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                fields = json.loads(message["data"])
                # each member's listener re-broadcasts to *all* local members: k listeners, k copies
                self.broadcast(room, Message(sender=fields["from"], text=fields["text"]))

    async def publish(self, room: str, message: Message) -> None:
        await self.redis.publish(channel(room), message.encode(0))

    async def aclose(self) -> None:
        """App shutdown: what the process exiting would do; nothing closes them before that."""
        for task in self.listeners.values():
            task.cancel()
        await asyncio.gather(*self.listeners.values(), return_exceptions=True)
        for pubsub in self.subscriptions:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        await self.redis.aclose()


class ListenerPerConnectionSession(ChatSession):
    """The reference session, except that a ``say`` is published to Redis and awaited."""

    manager: ListenerPerConnectionManager

    async def _read_loop(self, member: Member) -> None:
        while True:
            text = await self._receive_text()
            if not self.bucket.take():
                raise CloseConnection(CloseCode.RATE_LIMITED, f"more than {self.settings.rate:g} messages/s")
            try:
                message = parse_client_message(text)
                if isinstance(message, Say):  # the reference: self.manager.broadcast(...), in every process
                    await self.manager.publish(self.room, Message(sender=member.user, text=message.text))
                else:
                    self._handle(member, message)
            except ProtocolViolation as exc:
                self.manager.send_to(member, Error(reason=exc.reason, detail=exc.detail))
            await asyncio.sleep(0)


def create_app(settings: ChatSettings, report: Report = no_report, name: str = "f12") -> FastAPI:
    """:func:`wslab.chat.create_app` with a Redis listener per connection; needs ``settings.redis_url``.

    ``name`` is the ``CLIENT SETNAME`` of every Redis connection this app opens.
    """
    if settings.redis_url is None:
        raise ValueError("the F12 app needs ChatSettings.redis_url")
    manager = ListenerPerConnectionManager(
        settings.redis_url, name=name, queue_size=settings.queue_size, report=report
    )
    return create_reference_app(settings, report, rooms=manager, session=ListenerPerConnectionSession)
