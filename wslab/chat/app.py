"""``create_app()``: the FastAPI application of the reference chat.

The one route is ``/ws/chat/{room_id}``: one room per connection, named in the path (no secrets in
the URL, catalogue F24). What happens on a connection is :class:`~wslab.chat.session.ChatSession`;
who is in which room is :class:`~wslab.chat.rooms.ConnectionManager`, exposed as
``app.state.chat`` so a lesson can assert on rooms, evictions and counters.

The route only picks the session class and runs it: everything about the connection, the ``Origin``
check before ``accept()`` (F25) included, is the session's, so a variant of the app (``wslab.pitfalls``)
is this function with one part swapped (``session=``, ``rooms=``, ``fanout=``), never a copy of it.

Size limits exist at two levels (F26). uvicorn's ``ws_max_size`` (default 16 MiB) is the server's
hard ceiling: the transport refuses bigger frames before the app sees them. The app's own
``max_message_bytes`` is the protocol's limit (KB, not MB, for chat) and is what gives the client a
clean 1009 MESSAGE_TOO_BIG with a reason from the app. ``settings.uvicorn_options()`` gives the
server ``ws_max_size`` a little above ``max_message_bytes``, compression off, and the limits uvicorn
lacks (``wslab.chat.transport``); every way wslab runs the chat uses it (``docs/security.md``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Header, HTTPException, WebSocket

from wslab.chat import logfilter
from wslab.chat.auth import TokenExpired, TokenInvalid, verify_token
from wslab.chat.dedup import RecentIds
from wslab.chat.fanout import FanOut, FanOutManager, HasHealth, MemoryFanOut, create_fanout
from wslab.chat.page import add_page
from wslab.chat.rooms import ConnectionManager, Report, log_report, no_report
from wslab.chat.session import ChatSession
from wslab.chat.settings import ChatSettings, settings_from_env


def create_app(
    settings: ChatSettings | None = None,
    report: Report = no_report,
    *,
    fanout: FanOut | None = None,
    rooms: ConnectionManager | None = None,
    session: type[ChatSession] | None = None,
) -> FastAPI:
    """A new chat app with its own rooms; ``report(kind, message)`` receives what happens (never printed).

    In a lab: ``create_app(settings, report=lambda kind, msg: lab.events.record("chat", kind, msg))``.
    The keywords swap one part of the reference for one built elsewhere, so that a lesson can run the
    reference app with exactly one part broken (``wslab.pitfalls``) and nothing else changed: ``fanout``
    replaces the backend named in ``settings`` (F13), ``rooms`` the connection manager (in-process only), and
    ``session`` the class that runs each connection (F24, F25, F28).
    """
    settings = settings if settings is not None else ChatSettings()
    logfilter.install()  # a client's invalid UTF-8 is not the server's error (see wslab.chat.logfilter)
    session_type = session if session is not None else ChatSession
    if rooms is None and fanout is None:
        fanout = create_fanout(
            settings.backend,
            settings.redis_url,
            settings.stream_maxlen,
            settings.redis_timeout,
            settings.presence_ttl,
        )
    manager: ConnectionManager
    if rooms is not None:
        manager = rooms
    elif fanout is None:
        manager = ConnectionManager(settings.queue_size, report, settings.backlog_timeout)
    else:
        manager = FanOutManager(fanout, settings.queue_size, report, settings.backlog_timeout)

    manager.recent_ids = RecentIds(settings.dedup_window)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await manager.aclose()
        await health.aclose()  # the listener and publisher tasks end with the app

    health: HasHealth = fanout if fanout is not None else MemoryFanOut()
    app = FastAPI(title="wslab chat", lifespan=lifespan)
    app.state.chat = manager
    app.state.settings = settings
    app.state.fanout = health

    @app.get("/health/fanout")
    async def fanout_health() -> dict[str, object]:
        """The fan-out's counters and state, for replicas in other processes (F13: no silent death)."""
        return health.health.as_dict()

    @app.post("/logout")
    async def logout(authorization: str = Header(default="")) -> dict[str, object]:
        """Log out (F28): void the caller's tokens and close their open sockets in this process, 4001.

        Authenticated by the token being revoked (``Authorization: Bearer <token>``), so nobody can log
        out somebody else. A token that expired within the last ``token_ttl`` may still log out (a tab
        left open overnight); an older one, or one already revoked, may not: a stolen old token must not
        be able to log its owner out again and again. With several replicas, sockets on the other
        processes are not closed here (see :class:`~wslab.chat.auth.Revocations`).
        """
        scheme, _, token = authorization.partition(" ")
        claims = None
        if scheme.lower() == "bearer":
            try:
                claims = verify_token(token, settings.secret)
            except TokenExpired:
                old = verify_token(token, settings.secret, now=0.0)  # genuine, only expired
                claims = old if -old.expires_in() <= settings.token_ttl else None
            except TokenInvalid:
                claims = None
        if claims is None or manager.revocations.is_revoked(claims):
            raise HTTPException(status_code=401, detail="a valid bearer token is required")
        closed = manager.revoke(claims.user)
        return {"user": claims.user, "connections_closed": closed}

    @app.websocket("/ws/chat/{room_id}")
    async def chat(websocket: WebSocket, room_id: str) -> None:
        await session_type(websocket, room_id, manager, settings, report).run()

    add_page(app, settings)  # the browser page at / (with a demo login) and its client at /static
    return app


def create_app_from_env() -> FastAPI:
    """``uvicorn --factory wslab.chat.app:create_app_from_env``: a replica configured by its environment.

    ``WSLAB_CHAT_SECRET`` (shared by every replica, so one token works on all), ``WSLAB_CHAT_BACKEND``
    (memory, the default, | pubsub | streams), ``REDIS_URL``, and any other field of
    :class:`ChatSettings` as ``WSLAB_CHAT_<FIELD>`` (see :func:`settings_from_env`). What the app reports
    goes to the ``wslab.chat`` logger (:func:`~wslab.chat.rooms.log_report`), which a replica started by
    the lab forwards to ``lab.events``.
    """
    return create_app(settings_from_env(os.environ), report=log_report)
