"""One live feed, three ways: WebSocket, Server-Sent Events and polling, over the same history.

A :class:`FeedHub` numbers every event it publishes (``1, 2, 3, …``) and keeps a bounded history, so any
transport can answer "what came after N?". :func:`create_feed_app` serves that hub three ways:

- ``/feed/ws?after=N``: a WebSocket. The server pushes ``{"id": N, "data": …}`` text messages; the client
  may talk back on the same connection (``{"type": "say", "data": …}`` publishes, ``{"type": "ack",
  "id": N}`` acknowledges). Without ``after`` a connection gets only what is published from then on: a
  client that reconnects and wants what it missed has to say where it was.
- ``/feed/sse``: Server-Sent Events (``text/event-stream``). One long HTTP response of ``id:``/``data:``
  lines and a ``retry:`` hint; a reconnecting client sends ``Last-Event-ID`` and gets what it missed
  first, then the live stream. Only GET: nothing flows from client to server once the request is sent.
- ``/feed/poll?after=N[&wait=s]``: polling. A JSON list of the events after ``N``; with ``wait``, a long
  poll that holds the request until something arrives (or ``wait`` seconds pass).
- ``POST /feed/say``: what SSE and polling clients need to send anything: a separate request.

:class:`SSEClient` and :class:`PollingClient` are minimal clients over raw asyncio streams, so a lesson can
see every byte (and count them honestly through a :class:`wslab.netem.FaultProxy`); SSE's reconnect rules
are EventSource's: wait ``retry``, reconnect, send ``Last-Event-ID``. :class:`WebSocketFeedClient` is the
WebSocket counterpart with the same ``received`` record, for side-by-side measurements.

Everything is bounded: history, per-subscriber queues (a subscriber that falls behind is dropped, and
resumes from history), message sizes, long-poll waits, client records and reconnect attempts.

Modules, one job each: :mod:`~wslab.feed.hub` (the transport-free core: events, history, subscriptions
and the bounds), :mod:`~wslab.feed.sse` (the event-stream format, written and parsed, sans I/O),
:mod:`~wslab.feed.app` (the Starlette app: one endpoint function per transport) and
:mod:`~wslab.feed.clients` (the SSE, polling and WebSocket clients, and one bare HTTP request).
"""

from wslab.feed.app import create_feed_app
from wslab.feed.clients import PollingClient, SSEClient, WebSocketFeedClient, http_request
from wslab.feed.hub import FeedHub, dumps
from wslab.feed.sse import SSEParser, format_sse

__all__ = [
    "FeedHub",
    "PollingClient",
    "SSEClient",
    "SSEParser",
    "WebSocketFeedClient",
    "create_feed_app",
    "dumps",
    "format_sse",
    "http_request",
]
