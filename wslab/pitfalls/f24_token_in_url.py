"""F24, the token in the URL: ``ws://host/ws/chat/{room}?token=...`` works, and leaks the token.

Browsers cannot set an ``Authorization`` header on a WebSocket handshake, so the quick fix is to put
the token in the query string. It authenticates just as well, with the very same
:func:`~wslab.chat.auth.verify_token`. But the query string is part of the request line, and the
request line is what every access log on the way writes down: uvicorn logs
``"WebSocket /ws/chat/lobby?token=eyJ..." [accepted]`` at INFO, and so do nginx, load balancers and
CDNs. Anyone who can read a log can replay the token until it expires.

This app is the reference :func:`wslab.chat.create_app` with one difference: :class:`QueryTokenSession`
takes the token from the URL instead of from the first message. Everything else (Origin check, rooms,
expiry, limits) is the reference code, so the lesson is about where the token travels and nothing else.
"""

from __future__ import annotations

from fastapi import FastAPI, WebSocket

from wslab.chat.auth import Claims
from wslab.chat.origins import origin_allowed
from wslab.chat.rooms import ConnectionManager, Report, no_report
from wslab.chat.session import ChatSession
from wslab.chat.settings import ChatSettings
from wslab.wire import CloseCode

__all__ = ["QueryTokenSession", "create_app"]


class QueryTokenSession(ChatSession):
    """A :class:`~wslab.chat.session.ChatSession` that authenticates with the token from the URL."""

    def __init__(
        self,
        websocket: WebSocket,
        room: str,
        token: str,
        manager: ConnectionManager,
        settings: ChatSettings,
        report: Report,
    ) -> None:
        super().__init__(websocket, room, manager, settings, report)
        self.token = token

    async def _authenticate(self) -> Claims:
        # The pitfall: the token already travelled in the request line, so it is in every access log.
        return self._verify(self.token)


def create_app(settings: ChatSettings | None = None, report: Report = no_report) -> FastAPI:
    """The chat app of :func:`wslab.chat.create_app`, authenticating with ``?token=`` (don't)."""
    settings = settings if settings is not None else ChatSettings()
    manager = ConnectionManager(queue_size=settings.queue_size, report=report)
    app = FastAPI(title="wslab chat, token in the URL (F24)")
    app.state.chat = manager
    app.state.settings = settings

    @app.websocket("/ws/chat/{room_id}")
    async def chat(websocket: WebSocket, room_id: str, token: str = "") -> None:
        origin = websocket.headers.get("origin")
        if not origin_allowed(origin, websocket.headers.get("host"), settings):
            report("rejected", f"handshake from origin {origin!r} refused (HTTP 403)")
            await websocket.close(int(CloseCode.FORBIDDEN_ORIGIN), "origin not allowed")
            return
        await QueryTokenSession(websocket, room_id, token, manager, settings, report).run()

    return app
