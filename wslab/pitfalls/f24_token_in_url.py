"""F24, the token in the URL: ``ws://host/ws/chat/{room}?token=...`` works, and leaks the token.

Browsers cannot set an ``Authorization`` header on a WebSocket handshake, so the quick fix is to put
the token in the query string. It authenticates just as well, with the very same
:func:`~wslab.chat.auth.verify_token`. But the query string is part of the request line, and the
request line is what every access log on the way writes down: uvicorn logs
``"WebSocket /ws/chat/lobby?token=eyJ..." [accepted]`` at INFO, and so do nginx, load balancers and
CDNs. Anyone who can read a log can replay the token until it expires.

This app is the reference :func:`wslab.chat.create_app` with one part swapped: its session,
:class:`QueryTokenSession`, takes the token from the URL instead of from the first message. Everything
else (Origin check, rooms, expiry, limits) is the reference code, so the lesson is about where the token
travels and nothing else.
"""

from __future__ import annotations

from fastapi import FastAPI

from wslab.chat.app import create_app as create_reference_app
from wslab.chat.auth import Claims
from wslab.chat.rooms import Report, no_report
from wslab.chat.session import ChatSession
from wslab.chat.settings import ChatSettings

__all__ = ["QueryTokenSession", "create_app"]


class QueryTokenSession(ChatSession):
    """A :class:`~wslab.chat.session.ChatSession` that authenticates with the token from the URL."""

    async def _authenticate(self) -> Claims:
        # The pitfall: the token already travelled in the request line, so it is in every access log.
        return self._verify(self.websocket.query_params.get("token", ""))


def create_app(settings: ChatSettings | None = None, report: Report = no_report) -> FastAPI:
    """The chat app of :func:`wslab.chat.create_app`, authenticating with ``?token=`` (don't)."""
    return create_reference_app(settings, report, session=QueryTokenSession)
