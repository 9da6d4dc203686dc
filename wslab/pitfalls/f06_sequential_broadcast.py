"""F06, sequential broadcast: one peer that stops reading stalls the whole room (head-of-line blocking).

The reference chat (:mod:`wslab.chat.rooms`) only *queues* a broadcast: ``put_nowait`` on every
member's bounded outbox, each drained by that member's own sender task. This variant does what most
first versions do instead, in the handler of the member who spoke::

    for ws in room:
        await ws.send_text(json.dumps(msg))

It serializes the JSON again for every recipient and awaits each peer's socket in turn. While a peer
keeps reading, ``send_text`` returns at once and nothing looks wrong. Once a peer stops reading, its
TCP window and then the server's write buffer fill up, ``send_text`` waits for that socket to become
writable, and the loop stops there. Nobody after that peer in the room gets the message. The speaker's
handler is stuck too, so the speaker's next messages are not even read. This lasts until the peer
reads again or the keepalive kills it, about 40 s with uvicorn's defaults (catalogue F02, F06).

Everything else is the reference app: first-message auth, rooms, ``seq``, rate and size limits. The
``ready``/``joined``/``left`` notices still go through the reference queues, so the same clients and
the same load generator drive both apps. Only ``say`` takes the sequential path, and
:meth:`SequentialSession._read_loop` is the reference read loop with that one line changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import FastAPI, WebSocket

from wslab.chat.app import create_app as create_reference_app
from wslab.chat.protocol import Error, Message, ProtocolViolation, Say, ServerMessage, parse_client_message
from wslab.chat.rooms import ConnectionManager, Member, Report, no_report
from wslab.chat.session import _SEND_FAILURES, ChatSession, CloseConnection
from wslab.chat.settings import ChatSettings
from wslab.wire import CloseCode

__all__ = ["SequentialManager", "SequentialSession", "create_app"]


class SequentialManager(ConnectionManager):
    """The reference manager, plus each member's socket and a broadcast that awaits them one by one."""

    def __init__(self, queue_size: int = 64, report: Report = no_report) -> None:
        super().__init__(queue_size=queue_size, report=report)
        self.sockets: dict[Member, WebSocket] = {}

    async def broadcast_sequentially(
        self, room: str, message: ServerMessage, exclude: Member | None = None
    ) -> int:
        """THE PITFALL: send ``message`` to each member in turn, waiting for each one's socket."""
        target = self._rooms.get(room)
        if target is None:
            return 0
        msg = message.model_dump(by_alias=True) | {"seq": target.next_seq()}
        sent = 0
        for member in list(target.members):
            ws = self.sockets.get(member)
            if member is exclude or ws is None:
                continue
            # A vanished peer's own handler removes it (F01); this variant is about the *slow* one.
            with contextlib.suppress(*_SEND_FAILURES):
                await ws.send_text(json.dumps(msg))  # JSON per recipient, and one stuck peer blocks here
                sent += 1
        return sent


class SequentialSession(ChatSession):
    """The reference session, except that a ``say`` goes out through ``broadcast_sequentially``."""

    manager: SequentialManager

    async def _serve(self, member: Member) -> CloseConnection | None:
        self.manager.sockets[member] = self.websocket
        try:
            return await super()._serve(member)
        finally:
            del self.manager.sockets[member]

    async def _read_loop(self, member: Member) -> None:
        while True:
            text = await self._receive_text()
            if not self.bucket.take():
                raise CloseConnection(CloseCode.RATE_LIMITED, f"more than {self.settings.rate:g} messages/s")
            try:
                message = parse_client_message(text)
                if isinstance(message, Say):  # the reference: self.manager.broadcast(...), which never awaits
                    exclude = member if message.exclude_self else None
                    say = Message(sender=member.user, text=message.text)
                    await self.manager.broadcast_sequentially(self.room, say, exclude=exclude)
                else:
                    self._handle(member, message)
            except ProtocolViolation as exc:
                self.manager.send_to(member, Error(reason=exc.reason, detail=exc.detail))
            await asyncio.sleep(0)


def create_app(settings: ChatSettings | None = None, report: Report = no_report) -> FastAPI:
    """:func:`wslab.chat.create_app` with the sequential manager and session swapped in."""
    settings = settings if settings is not None else ChatSettings()
    manager = SequentialManager(queue_size=settings.queue_size, report=report)
    return create_reference_app(settings, report, rooms=manager, session=SequentialSession)
