"""F25, Cross-Site WebSocket Hijacking: a cookie-authenticated socket that any web page can open.

Browsers cannot set an ``Authorization`` header on a WebSocket handshake, but they do attach cookies,
so "log in over HTTP, get a session cookie, and let the socket read it" is what many tutorials write.
It works, and it is ambient: the browser attaches the cookie to *every* handshake to this host,
including one started by a page on another origin that the victim happens to visit. The WebSocket
handshake is not subject to the same-origin policy and CORS does not apply to it (Starlette's
``CORSMiddleware`` passes non-HTTP scopes straight through), so that page gets a socket authenticated
as the victim: it reads the victim's rooms and can speak as them.

This app is the reference :func:`wslab.chat.create_app` with one part swapped, its session, plus the
``POST /login`` that sets the cookie. :class:`CookieSession` differs from the reference session twice:
it takes the token from the ``session`` cookie (instead of the first message), and it does **not**
check the ``Origin`` header before ``accept()`` (the reference does, with
:func:`wslab.chat.origins.origin_allowed`, and answers a foreign page with HTTP 403).

What the cookie's ``SameSite`` attribute changes is decided by the browser, not by this code; Starlette's
``set_cookie`` writes ``SameSite=Lax`` unless told otherwise (see the F25 notebook for what that does and
does not stop).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from wslab.chat.app import create_app as create_reference_app
from wslab.chat.auth import Claims, issue_token
from wslab.chat.rooms import Report, no_report
from wslab.chat.session import ChatSession
from wslab.chat.settings import ChatSettings

__all__ = ["COOKIE", "CookieSession", "create_app"]

COOKIE = "session"
"""The name of the cookie that carries the session token."""


class CookieSession(ChatSession):
    """A :class:`~wslab.chat.session.ChatSession` that authenticates with the ``session`` cookie."""

    def _origin_allowed(self) -> bool:
        return True  # THE PITFALL: any page, on any site, may open a socket with the victim's cookie

    async def _authenticate(self) -> Claims:
        # Ambient credentials: whoever's page opened the socket, the browser sent the victim's cookie.
        return self._verify(self.websocket.cookies.get(COOKIE, ""))


def create_app(settings: ChatSettings | None = None, report: Report = no_report) -> FastAPI:
    """The chat of :func:`wslab.chat.create_app`, authenticated by a cookie, no Origin check (don't)."""
    settings = settings if settings is not None else ChatSettings()
    app = create_reference_app(settings, report, session=CookieSession)

    @app.post("/login")
    async def login(user: str) -> JSONResponse:
        """A demo login (no password): sets the session cookie, with Starlette's default attributes."""
        response = JSONResponse({"user": user})
        response.set_cookie(COOKIE, issue_token(user, settings.secret, settings.token_ttl), httponly=True)
        return response

    return app
