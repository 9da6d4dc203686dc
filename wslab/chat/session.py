"""One connection, from handshake to close: an explicit AWAIT_AUTH → READY → CLOSED state machine.

* **Before accept()** (F25): the ``Origin`` header must be allowed
  (:func:`~wslab.chat.origins.origin_allowed`). A refused Origin is answered by closing before
  accepting, which ASGI servers turn into an HTTP **403** handshake response (the client sees
  ``InvalidStatus``; there is no WebSocket close code, because there never was a WebSocket).
  Authentication is not done here: the token comes in the first message (F24).
* **AWAIT_AUTH** (catalogue F24, F29): the socket is accepted but belongs to no room and receives
  nothing. Its first message must be ``auth`` with a valid token, within ``auth_timeout``; otherwise
  it is closed with 4001 (UNAUTHORIZED), or 4002 (TOKEN_EXPIRED) for a genuine but expired token.
  Where the client left off (``last_seq``, ``last_id``, ``epoch`` in that same ``auth``) is kept as
  :attr:`ChatSession.resume` and handed to ``membership(room, user, resume)``.
* **READY**: a member of its room. Three tasks run in one ``TaskGroup`` (F31): the *reader* (the only
  caller of ``receive``), the *sender* (the only caller of ``send``, draining the member's bounded
  queue) and the *watchdog* (token expiry, F28, and close requests such as an eviction); with
  heartbeats on, a fourth sends ``ping`` and closes 1011 when no ``pong`` comes back in time (F02).
  When one of them decides the connection is over, the group cancels the others.
* **CLOSED**: membership is gone (removed in ``finally``), then the close frame goes out.

Every decision to close is a :class:`CloseConnection` carrying a :class:`~wslab.wire.CloseCode`, so
there is one place where the socket is closed and one place where it is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time

import anyio
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.chat.auth import Claims, TokenExpired, TokenInvalid, verify_token
from wslab.chat.names import InvalidName, check_name, printable
from wslab.chat.origins import origin_allowed
from wslab.chat.protocol import (
    PING,
    Ack,
    Auth,
    DirectMessage,
    Dm,
    Error,
    Message,
    Pong,
    ProtocolViolation,
    Reauth,
    Reauthed,
    Resume,
    Say,
    parse_client_message,
)
from wslab.chat.ratelimit import TokenBucket
from wslab.chat.rooms import ConnectionManager, Member, Report
from wslab.chat.settings import ChatSettings
from wslab.wire import CloseCode

__all__ = ["ChatSession", "CloseConnection", "PeerGone", "State"]


class State(enum.Enum):
    """Where a connection is in its life; only the transitions in ``_NEXT`` are legal."""

    AWAIT_AUTH = "await_auth"
    READY = "ready"
    CLOSED = "closed"


_NEXT = {State.AWAIT_AUTH: {State.READY, State.CLOSED}, State.READY: {State.CLOSED}, State.CLOSED: set()}


class CloseConnection(Exception):
    """The server decided to end this connection with ``code`` and ``reason``."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(f"{CloseCode.describe(code)}: {reason}")
        self.code = code
        self.reason = reason


class PeerGone(Exception):
    """The client disconnected (or its socket failed): nothing left to close."""


_REPORT_KIND = {
    CloseCode.UNAUTHORIZED: "auth_failed",
    CloseCode.TOKEN_EXPIRED: "token_expired",
    CloseCode.INTERNAL_ERROR: "heartbeat_timeout",
}
"""The ``report`` kind of a server-initiated close; every other code is reported as ``closed``."""

_SEND_FAILURES = (WebSocketDisconnect, RuntimeError, OSError)
"""What a send to a vanished peer raises, depending on the server stack (catalogue F01, F05)."""


class ChatSession:
    """Runs one WebSocket connection of the chat; create one per connection and ``await run()``."""

    def __init__(
        self,
        websocket: WebSocket,
        room: str,
        manager: ConnectionManager,
        settings: ChatSettings,
        report: Report,
    ) -> None:
        self.websocket = websocket
        self.room = room
        self.manager = manager
        self.settings = settings
        self.report = report
        self.state = State.AWAIT_AUTH
        self.claims: Claims | None = None
        self.resume: Resume | None = None
        """Where the client left off, from its ``auth`` (None: a fresh start)."""
        self.bucket = TokenBucket(settings.rate, settings.burst)
        self.pong = asyncio.Event()
        self.pings_sent = 0

    def _move(self, state: State) -> None:
        if state not in _NEXT[self.state]:
            raise RuntimeError(f"illegal chat state transition {self.state.name} -> {state.name}")
        self.state = state

    @property
    def who(self) -> str:
        """The user, once authenticated, for reports."""
        return self.claims.user if self.claims is not None else "anonymous"

    # -- the whole life --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Check the Origin and the room's name, accept, authenticate, be in the room, close; never leaves
        membership behind."""
        if not self._origin_allowed():
            origin = self.websocket.headers.get("origin")
            self.report("rejected", f"handshake from origin {origin!r} refused (HTTP 403)")
            self._move(State.CLOSED)
            # Before accept(), close() makes the server answer the handshake with 403 Forbidden.
            await self.websocket.close(int(CloseCode.FORBIDDEN_ORIGIN), "origin not allowed")
            return
        try:  # the room name is the client's: checked before it is stored, sent or used in a Redis key
            check_name(self.room, "room name")
        except InvalidName as exc:
            self.report("rejected", f"room {printable(self.room)!r} refused (HTTP 400): {exc}")
            self._move(State.CLOSED)
            await refuse_handshake(self.websocket, 400, str(exc))
            return
        await self.websocket.accept()
        closing: CloseConnection | None = None
        try:
            self.claims = await self._authenticate()
            user = self.claims.user
            limit = self.settings.max_connections_per_user
            if not self.manager.limits.connect(user, limit):
                raise CloseConnection(CloseCode.RATE_LIMITED, f"more than {limit} connections for this user")
            try:
                # one bucket for every connection of this user: more sockets must not mean more messages
                self.bucket = self.manager.limits.bucket(user, self.settings.rate, self.settings.burst)
                self._move(State.READY)
                async with self.manager.membership(self.room, user, self.resume) as member:
                    closing = await self._serve(member)
            finally:
                self.manager.limits.disconnect(user)
        except CloseConnection as exc:  # refused during AWAIT_AUTH
            closing = exc
        except PeerGone:
            pass
        finally:
            self._move(State.CLOSED)
        if closing is not None:
            await self._close(closing)

    async def _serve(self, member: Member) -> CloseConnection | None:
        assert self.claims is not None
        if self.manager.revocations.is_revoked(self.claims):
            # A logout that came while joining (a fan-out manager awaits Redis then): nothing queued
            # for this member, ``ready`` or replayed history, has been sent, and nothing will be.
            return CloseConnection(CloseCode.UNAUTHORIZED, "token revoked")
        closing: CloseConnection | None = None
        try:
            # anyio's task group rather than asyncio.TaskGroup: Starlette's TestClient cancels the app
            # through an anyio cancel scope, and on Python 3.11 asyncio.TaskGroup drops that
            # cancellation when a child fails at the same moment (the client's disconnect).
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._send_loop, member, name=f"chat-send-{member.user}")
                tasks.start_soon(self._read_loop, member, name=f"chat-read-{member.user}")
                tasks.start_soon(self._watchdog, member, name=f"chat-watch-{member.user}")
                if self.settings.heartbeat_interval is not None:
                    tasks.start_soon(self._heartbeat, member, name=f"chat-heartbeat-{member.user}")
        except* CloseConnection as group:
            closing = group.exceptions[0]  # type: ignore[assignment]
        except* PeerGone:
            pass
        return closing

    async def _close(self, closing: CloseConnection) -> None:
        if closing.code is not CloseCode.SLOW_CONSUMER:  # the manager reported the eviction already
            kind = _REPORT_KIND.get(closing.code, "closed")
            self.report(kind, f"{printable(self.who)} in {printable(self.room)}: {closing}")
        # A peer that stopped reading may never take the close frame; do not wait for it forever.
        with contextlib.suppress(TimeoutError, *_SEND_FAILURES):
            async with asyncio.timeout(self.settings.close_timeout):
                await self.websocket.close(int(closing.code), closing.reason)

    # -- before accept() ---------------------------------------------------------------------------------
    def _origin_allowed(self) -> bool:
        """Whether the web page that opened this socket may: ``Origin`` against the settings' allowlist."""
        headers = self.websocket.headers
        return origin_allowed(headers.get("origin"), headers.get("host"), self.settings)

    # -- AWAIT_AUTH --------------------------------------------------------------------------------------
    async def _authenticate(self) -> Claims:
        try:
            async with asyncio.timeout(self.settings.auth_timeout):
                text = await self._receive_text()
        except TimeoutError:
            raise CloseConnection(CloseCode.UNAUTHORIZED, "no auth message in time") from None
        try:
            message = parse_client_message(text)
        except ProtocolViolation as exc:
            raise CloseConnection(CloseCode.UNAUTHORIZED, f"expected auth first ({exc.reason})") from None
        if not isinstance(message, Auth):
            raise CloseConnection(CloseCode.UNAUTHORIZED, f"expected auth first, got {message.type}")
        self.resume = message.resume()
        return self._verify(message.token)

    def _verify(self, token: str) -> Claims:
        """The claims of a token this connection authenticates with, or the close that refuses it.

        One place for every way in (the first message here; the URL or a cookie in the pitfalls), so a
        variant that moves the token differs from the reference only in where the token comes from.
        """
        try:
            claims = verify_token(token, self.settings.secret)
        except TokenExpired:
            raise CloseConnection(CloseCode.TOKEN_EXPIRED, "token expired") from None
        except TokenInvalid:
            raise CloseConnection(CloseCode.UNAUTHORIZED, "invalid token") from None
        if self.manager.revocations.is_revoked(claims):
            raise CloseConnection(CloseCode.UNAUTHORIZED, "token revoked")
        return claims

    async def _receive_text(self) -> str:
        """The next text message, after the checks that apply to every frame (F26, F32)."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise PeerGone
        text: str | None = message.get("text")
        if text is None:
            raise CloseConnection(CloseCode.UNSUPPORTED_DATA, "binary frames are not supported; send text")
        # Cheap bound first: a str of n characters is at most 4n UTF-8 bytes.
        if len(text) * 4 > self.settings.max_message_bytes and (
            len(text.encode()) > self.settings.max_message_bytes
        ):
            raise CloseConnection(
                CloseCode.MESSAGE_TOO_BIG, f"messages are limited to {self.settings.max_message_bytes} bytes"
            )
        return text

    # -- READY -----------------------------------------------------------------------------------------
    async def _send_loop(self, member: Member) -> None:
        try:
            await member.send_loop(self.websocket.send_text)
        except _SEND_FAILURES:
            raise PeerGone from None

    async def _read_loop(self, member: Member) -> None:
        # receive() does not suspend while frames are already buffered, so a burst from one client
        # would otherwise fill every peer's queue before any sender task ran, and evict healthy peers.
        # Yielding after every message prevents that but costs a task switch per recipient per message
        # (measured by benchmarks/fanout.py); yielding every quarter queue keeps the protection for one
        # talker and lets each sender drain several messages per wake-up. Several talkers whose data
        # arrived in the same loop turn would still add up (k x a quarter queue): so a reader also
        # yields as soon as any member anywhere is over ``queue_size`` (``stats.behind`` changed).
        yield_every = max(1, self.settings.queue_size // 4)
        stats = self.manager.stats
        behind = stats.behind
        handled = 0
        while True:
            text = await self._receive_text()
            if not self.bucket.take():
                raise CloseConnection(CloseCode.RATE_LIMITED, f"more than {self.settings.rate:g} messages/s")
            try:
                self._handle(member, parse_client_message(text))
            except ProtocolViolation as exc:
                self.manager.send_to(member, Error(reason=exc.reason, detail=exc.detail))
            handled += 1
            if handled % yield_every == 0 or stats.behind != behind:
                behind = stats.behind
                await asyncio.sleep(0)

    def _handle(self, member: Member, message: Auth | Say | Dm | Reauth | Pong) -> None:
        """Act on one valid message; synchronous, so a handler can never await a peer's socket."""
        if isinstance(message, Say):
            msg_id = message.msg_id
            if msg_id is not None and not self.manager.recent_ids.first_time(member.user, msg_id):
                # A retry of a message already in the room (its ack was lost): acknowledge, never repeat.
                self.manager.send_to(member, Ack(msg_id=msg_id, duplicate=True))
                return
            exclude = member if message.exclude_self else None
            self.manager.broadcast(self.room, Message(sender=member.user, text=message.text), exclude=exclude)
            if msg_id is not None:
                self.manager.send_to(member, Ack(msg_id=msg_id))
        elif isinstance(message, Dm):
            dm = DirectMessage(sender=member.user, text=message.text)
            if not self.manager.direct(self.room, message.to, dm):
                raise ProtocolViolation("unknown_user", f"nobody called {message.to!r} is in {self.room!r}")
        elif isinstance(message, Reauth):
            self.claims = self._reauthenticate(message.token)
            self.manager.send_to(member, Reauthed(expires_in=round(self.claims.expires_in(), 3)))
        elif isinstance(message, Auth):
            raise ProtocolViolation("unexpected", "already authenticated; use reauth to refresh the token")
        elif isinstance(message, Pong):
            self.pong.set()

    def _reauthenticate(self, token: str) -> Claims:
        assert self.claims is not None
        try:
            claims = verify_token(token, self.settings.secret)
        except (TokenExpired, TokenInvalid) as exc:
            raise ProtocolViolation("bad_token", str(exc)) from None
        if claims.user != self.claims.user:
            raise ProtocolViolation("bad_token", "the new token is for another user")
        if self.manager.revocations.is_revoked(claims):
            raise ProtocolViolation("bad_token", "the new token was revoked")
        if claims.expires_at <= self.claims.expires_at:
            raise ProtocolViolation("bad_token", "the new token does not expire later than the current one")
        return claims

    async def _heartbeat(self, member: Member) -> None:
        """Ping every ``heartbeat_interval``; no ``pong`` within ``heartbeat_timeout`` closes 1011.

        The ping goes through the member's queue like any message, so a client that is far behind sees
        it late: that is the honest measure of whether it keeps up (F04). A half-open peer never
        answers, and this is what notices (F02); the send alone would succeed for minutes.
        """
        interval = self.settings.heartbeat_interval
        assert interval is not None
        timeout = self.settings.heartbeat_timeout or interval
        while True:
            await asyncio.sleep(interval)
            self.pong.clear()
            if not member.offer(PING):
                continue  # a full queue is the eviction's business, not the heartbeat's
            self.pings_sent += 1
            try:
                async with asyncio.timeout(timeout):
                    await self.pong.wait()
            except TimeoutError:
                raise CloseConnection(
                    CloseCode.INTERNAL_ERROR, f"no pong within {timeout:g} s (heartbeat timeout)"
                ) from None

    async def _watchdog(self, member: Member) -> None:
        """Close on token expiry (re-checked after each wake-up: reauth may have moved it) or on request.

        A logout (:meth:`ConnectionManager.revoke`) is a close request like an eviction.
        """
        while True:
            assert self.claims is not None
            left = self.claims.expires_in(time.time())
            if left <= 0:
                raise CloseConnection(CloseCode.TOKEN_EXPIRED, "token expired")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await member.stopped.wait()
            if member.close_request is not None:
                raise CloseConnection(*member.close_request)


async def refuse_handshake(websocket: WebSocket, status: int, reason: str) -> None:
    """Answer the handshake with HTTP ``status`` and ``reason`` as the body, before any WebSocket exists.

    Servers that support the ASGI denial-response extension (uvicorn does) send exactly that; others get
    a close before accept, which they answer with 403.
    """
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(reason, status_code=status))
    else:
        await websocket.close(int(CloseCode.POLICY_VIOLATION), reason[:120])
