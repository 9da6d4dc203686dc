"""F25, cross-site WebSocket hijacking: write the Origin gate in front of a cookie-authenticated socket.

The learner writes ``admit_origin(websocket, allowed)``: accept the handshake when its ``Origin`` is one
of the ``allowed`` origins, exactly, and return True; otherwise refuse it *before* accepting (the client
gets HTTP 403) and return False. The checker serves a cookie-authenticated chat behind that gate (the
cookie is read after ``accept``, as in the notebook's broken app) and replays the notebook's Verify: alice
from the chat's own page, then the attacker's page with alice's cookie, and look-alike origins.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import Guarded, scenario

SECRET = "wslab-f25-exercise-secret-0123456789abcdef"
SITE = "https://chat.example"
ALLOWED = frozenset({SITE})
FOREIGN = (
    ("the attacker's page", "https://evil.example"),
    ("a look-alike domain", "https://chat.example.evil.example"),
    ("another port on the chat's host", "https://chat.example:8443"),
    ("the chat's host over plain http", "http://chat.example"),
)
SHOWN = "admit_origin(websocket, allowed)"


def _cookie_chat(guard: Guarded) -> Starlette:
    """``/ws``: the gate, then the session cookie is the credential (the notebook's broken design)."""
    from wslab.chat.auth import TokenInvalid, verify_token

    async def chat(websocket: WebSocket) -> None:
        verdict = await guard(websocket, set(ALLOWED))
        if not isinstance(verdict, bool):
            shown = "None" if verdict is None else article(type(verdict).__name__)
            guard.fail(f"`{SHOWN}` returned {shown}; it should return True or False.")
            return
        accepted = websocket.client_state is WebSocketState.CONNECTED
        if verdict and not accepted:
            guard.fail(
                f"`{SHOWN}` returned True without accepting the handshake: `await websocket.accept()`."
            )
            return
        if not verdict:
            if accepted:  # the page got its socket all the same, and reads whatever comes first
                await websocket.send_json({"type": "refused"})
                await websocket.close(4003)
            return
        try:
            claims = verify_token(websocket.cookies.get("session", ""), SECRET)
        except TokenInvalid:
            await websocket.close(4001)
            return
        await websocket.send_json({"type": "ready", "user": claims.user})
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/ws", chat)])


class AdmitOrigin(Exercise):
    """q1: refuse foreign origins before the handshake completes."""

    name = "An Origin gate"
    reads = ("admit_origin",)
    placeholder = """
async def admit_origin(websocket, allowed: set) -> bool:
    ...  # your code here
"""
    hints = (
        "The browser sends the page's origin in the `Origin` header (`websocket.headers.get('origin')`). "
        "The cookie comes along whatever page opened the socket, so the Origin is what you can check.",
        "Compare the whole origin, exactly: `origin in allowed`. Scheme, host and port are all part of it; "
        "a substring or a host-name test lets look-alikes in.",
        "Refuse by closing *before* accepting: `await websocket.close(code=1008)` then answers the handshake "
        "with HTTP 403, and no socket ever opens. Accept (`await websocket.accept()`) only the allowed ones.",
    )
    solution_code = """
async def admit_origin(websocket, allowed: set) -> bool:
    if websocket.headers.get("origin") not in allowed:
        await websocket.close(code=1008)  # before accept: the handshake is answered with HTTP 403
        return False
    await websocket.accept()
    return True
"""
    wrong_answers = (
        WrongAnswer(
            "a substring test",
            """
async def admit_origin(websocket, allowed):
    origin = websocket.headers.get("origin", "")
    if not any(site in origin for site in allowed):
        await websocket.close(code=1008)
        return False
    await websocket.accept()
    return True
""",
            "a look-alike domain",
        ),
        WrongAnswer(
            "accepts first, then closes",
            """
async def admit_origin(websocket, allowed):
    await websocket.accept()
    if websocket.headers.get("origin") not in allowed:
        await websocket.close(code=4003)
        return False
    return True
""",
            "got HTTP 101",
        ),
        WrongAnswer(
            "compares host names only",
            """
from urllib.parse import urlsplit
async def admit_origin(websocket, allowed):
    host = urlsplit(websocket.headers.get("origin", "")).hostname
    if host not in {urlsplit(site).hostname for site in allowed}:
        await websocket.close(code=1008)
        return False
    await websocket.accept()
    return True
""",
            "another port on the chat's host",
        ),
        WrongAnswer(
            "compares host and port, not the scheme",
            """
from urllib.parse import urlsplit
async def admit_origin(websocket, allowed):
    netloc = urlsplit(websocket.headers.get("origin", "")).netloc
    if netloc not in {urlsplit(site).netloc for site in allowed}:
        await websocket.close(code=1008)
        return False
    await websocket.accept()
    return True
""",
            "the chat's host over plain http",
        ),
        WrongAnswer(
            "refuses everybody",
            """
async def admit_origin(websocket, allowed):
    await websocket.close(code=1008)
    return False
""",
            "the chat's own page",
        ),
    )
    secrets = ('websocket.headers.get("origin") not in allowed',)
    correct_message = (
        "`admit_origin` lets the chat's own page in (alice got `ready` from her cookie) and answers the "
        "attacker's page, a look-alike domain, another port and plain http with HTTP 403, before any "
        "socket opens."
    )
    call_timeout = 20.0

    async def _check(self, admit_origin: Callable[..., Any]) -> None:
        from websockets.exceptions import InvalidStatus

        from wslab.chat import issue_token
        from wslab.lab import Lab

        guard = Guarded(self, admit_origin, SHOWN)
        cookie = {"Cookie": f"session={issue_token('alice', SECRET, 600)}"}
        async with Lab() as lab:
            server = await lab.serve(_cookie_chat(guard), name="f25-check")
            async with scenario("alice opens the chat's own page", 5, [guard]):
                try:
                    alice = await lab.connect(
                        server.ws_url("/ws"), name="alice", origin=SITE, additional_headers=cookie
                    )
                except InvalidStatus as exc:
                    raise Incorrect(
                        f"the chat's own page ({SITE}) got HTTP {exc.response.status_code}: allowed origins "
                        "must be accepted."
                    ) from None
                ready = await alice.recv_json(2.0)
                if ready.get("user") != "alice":
                    raise Incorrect(f"alice, on the chat's own page, received {ready}.")
            for label, origin in FOREIGN:
                async with scenario(f"{label} ({origin}) opens a socket with alice's cookie", 5, [guard]):
                    try:
                        page = await lab.connect(
                            server.ws_url("/ws"), name="page", origin=origin, additional_headers=cookie
                        )
                    except InvalidStatus as exc:
                        if exc.response.status_code != 403:
                            raise Incorrect(
                                f"the page got HTTP {exc.response.status_code}, not 403."
                            ) from None
                        continue
                    first: object = None
                    with contextlib.suppress(TimeoutError, ConnectionError):
                        first = await page.recv_json(1.0)
                    if isinstance(first, dict) and first.get("type") == "ready":
                        raise Incorrect(
                            f"the page got HTTP 101 and then {first}: it now speaks as alice in her chat."
                        )
                    raise Incorrect(
                        f"the page got HTTP 101, an open socket, before your close ({page.closed_as}): the "
                        "handshake itself must be refused, so no foreign page ever holds a socket."
                    )


CHAPTER = Chapter("F25", "F25_cross_site_hijacking", (AdmitOrigin,))
