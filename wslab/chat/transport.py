"""Limits below the app: what uvicorn does not bound, bounded where wslab runs uvicorn.

Three upstream behaviours (reproductions in ``docs/upstream-reports.md``), each bounded by a small
subclass of uvicorn's own protocol, passed as ``http=`` / ``ws=`` through
:meth:`~wslab.chat.settings.ChatSettings.uvicorn_options`:

* **Control frames are free** for a client: uvicorn answers every ping at once with
  ``transport.write``, ignoring flow control, so a client that sends pings and never reads makes the
  server buffer one pong per ping without bound; and no rate limit of the app sees them.
  :class:`LimitedWebSocketProtocol` takes every ping and pong from a per-connection
  :class:`~wslab.chat.ratelimit.TokenBucket` (the app's ``rate`` and ``burst``): one over closes 1008.
  A peer whose unsent output is over :data:`MAX_WRITE_BUFFER` when it pings is aborted.
* **A peer that stops reading keeps its connection after the close**: when the app closes, uvicorn
  calls ``transport.close()``, which waits for the write buffer to drain, forever if the peer never
  reads. :class:`LimitedWebSocketProtocol` aborts the transport ``close_timeout`` seconds after the
  app is done with the connection, if it is still there.
* **Nothing bounds the time to send a request head**: a client that connects and sends nothing, or
  half a handshake, holds a socket (and a file descriptor) until it goes away; the app's
  ``auth_timeout`` only starts once the handshake is complete. :class:`HeadDeadlineH11Protocol` closes
  a connection that has not sent a complete request head within ``handshake_timeout``.

Behind nginx, ``client_header_timeout`` does the last one for the proxy (see :mod:`wslab.runtime.nginx`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from wslab.chat.ratelimit import TokenBucket

MAX_WRITE_BUFFER = 256 * 1024
"""Bytes of unsent output (pongs, messages) after which a peer that still sends pings is aborted."""


class LimitedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with control frames rate-limited and a bounded close (see above)."""

    control_rate: float = 10.0
    control_burst: float = 20.0
    abort_after: float = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.control = TokenBucket(self.control_rate, self.control_burst)
        self.abort_timer: asyncio.TimerHandle | None = None

    # -- control frames ---------------------------------------------------------------------------------
    def handle_ping(self) -> None:
        # websockets queued a pong for every ping of the chunk just parsed, before uvicorn sees the first
        # one, and uvicorn's handle_ping writes them all at once. So each ping takes exactly its own pong
        # from the front of the queue (``writes``, one serialized frame per entry), and writes it only
        # if the bucket allows.
        allowed = self._control_frame_allowed()
        writes = self.conn.writes
        if writes and writes[0][:1] == b"\x8a":
            pong = writes.pop(0)
            if allowed:
                self.transport.write(pong)

    def handle_pong(self, event: Any) -> None:
        if not self._control_frame_allowed():
            return
        super().handle_pong(event)

    def _control_frame_allowed(self) -> bool:
        if self.close_sent or self.transport.is_closing():
            return False
        if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.transport.abort()  # pings while not reading what we send: nothing more is owed
            return False
        if self.control.take():
            return True
        self.conn.writes = [frame for frame in self.conn.writes if frame[:1] != b"\x8a"]  # owed no more
        self.conn.fail(1008, "too many control frames")
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1008, "reason": "too many pings"})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
        self._abort_later()
        return False

    # -- a bounded end ------------------------------------------------------------------------------------
    def on_task_complete(self, task: asyncio.Task[None]) -> None:
        super().on_task_complete(task)
        self._abort_later()  # the app is done: the connection gets close_timeout to go, then it is cut

    def _abort_later(self) -> None:
        if self.abort_timer is None and not self.disconnected:
            self.abort_timer = self.loop.call_later(self.abort_after, self._abort_if_open)

    def _abort_if_open(self) -> None:
        self.abort_timer = None
        if not self.disconnected:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.abort_timer is not None:
            self.abort_timer.cancel()
            self.abort_timer = None
        super().connection_lost(exc)


class HeadDeadlineH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that sends no complete request head in time."""

    head_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.head_timeout, self._too_slow)

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._cancel_head_timer()  # the head is complete; the WebSocket protocol takes over
        super().handle_websocket_upgrade(event)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _too_slow(self) -> None:
        self.head_timer = None
        upgraded = self.transport.get_protocol() is not self  # a WebSocket now: not ours any more
        if upgraded or self.transport.is_closing() or self.cycle is not None:
            return
        self.logger.info("closed a connection that sent no complete request head in %g s", self.head_timeout)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def protocol_classes(
    *, rate: float, burst: float, close_timeout: float, handshake_timeout: float
) -> dict[str, type[asyncio.Protocol]]:
    """``{"http": ..., "ws": ...}`` for ``uvicorn.Config``, with these limits (new subclasses each call)."""
    ws = type(
        "LimitedWebSocketProtocol",
        (LimitedWebSocketProtocol,),
        {"control_rate": rate, "control_burst": float(burst), "abort_after": close_timeout},
    )
    http = type("HeadDeadlineH11Protocol", (HeadDeadlineH11Protocol,), {"head_timeout": handshake_timeout})
    return {"http": http, "ws": ws}
