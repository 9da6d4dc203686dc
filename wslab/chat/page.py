"""The chat page at ``/``: plain HTML plus the browser client, and a demo login at ``POST /token``.

The page (``wslab/static/chat.html``) has no framework: a form for a name and a room, the connection
state, the members and the messages. Everything about staying connected is in
``wslab/static/reconnecting-websocket.js`` (built from the ``.ts`` next to it), which follows the same
rules as the Python ``ReconnectingClient``.

``POST /token`` is a **demo login without a password**: it issues a token for whatever name it is
given, with the app's ``token_ttl``. It exists so that a learner can open the page in two tabs and chat
as two people. A real app issues the token from its own authenticated session (a cookie, an OAuth
flow) and never to anyone who asks.

Page options, all in the query string so a lesson or a test can make time short:
``?base=0.05&cap=0.2`` (backoff, seconds), ``factor``, ``stable`` (seconds a connection must stay up
before the backoff resets), ``max`` (attempts before giving up), ``heartbeat`` (overrides the server's
``heartbeat_interval``, which the page is given: the client's watchdog fires when nothing arrived for
1.5 times that) and ``resume=1`` (send ``last_seq``).
A token can be supplied in the fragment, ``#token=...`` (never sent to the server in the URL, F24);
the page then uses that token and cannot get a new one when it expires, so it goes offline instead.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator

from wslab.chat.auth import issue_token
from wslab.chat.names import check_name
from wslab.chat.settings import ChatSettings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
"""Where the page and the built browser client live (the client is served at ``/static``)."""
PAGE_FILE = STATIC_DIR / "chat.html"
"""The page's HTML; ``__HEARTBEAT__`` in it is replaced by the server's heartbeat interval."""


class TokenRequest(BaseModel):
    user: str = Field(min_length=1, max_length=32, pattern=r"^[\w .-]+$")

    @field_validator("user")
    @classmethod
    def _plain_name(cls, user: str) -> str:
        return check_name(user, "user name")  # the rule every token's name is held to


class TokenResponse(BaseModel):
    user: str
    token: str
    expires_in: float


def add_page(app: FastAPI, settings: ChatSettings) -> None:
    """Serve the chat page at ``/``, the demo login at ``POST /token`` and the client at ``/static``."""
    html = PAGE_FILE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        # The client's watchdog needs the server's heartbeat interval (empty: heartbeats are off).
        heartbeat = getattr(settings, "heartbeat_interval", None)
        return html.replace("__HEARTBEAT__", "" if heartbeat is None else repr(float(heartbeat)))

    @app.post("/token")
    async def token(request: TokenRequest) -> TokenResponse:
        """Demo login, no password: a token for ``user`` valid for the app's ``token_ttl``."""
        issued = issue_token(request.user, settings.secret, settings.token_ttl)
        return TokenResponse(user=request.user, token=issued, expires_in=settings.token_ttl)

    app.add_exception_handler(RequestValidationError, refuse_without_echo)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


async def refuse_without_echo(request: Request, exc: Exception) -> JSONResponse:
    """422 saying which field is wrong and why, without echoing the client's value back.

    FastAPI's own handler puts each offending ``input`` in the answer; a name holding a lone surrogate
    (valid JSON, ``"\\ud800"``) cannot be encoded as UTF-8, so that answer itself failed with a 500.
    """
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error.get("type")}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)
