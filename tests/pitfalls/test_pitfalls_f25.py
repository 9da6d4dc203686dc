"""F25: a cookie-authenticated socket without an Origin check is open to every web page.

The "browser" here is a test client that does what a browser does on a cross-site page: it sends the
page's ``Origin`` and attaches the victim's cookie. The pitfall lets it in as the victim; the reference
refuses the handshake with HTTP 403 and still serves its own page.
"""

from __future__ import annotations

import inspect

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware
from websockets.exceptions import InvalidStatus

from wslab import Lab
from wslab.chat import ChatSession, ChatSettings, create_app, issue_token
from wslab.pitfalls import f25_cookie_no_origin_check as f25
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

SECRET = "wslab-f25-test-secret-0123456789abcdef"
SITE = "http://chat.example"
EVIL = "http://evil.example"


def settings() -> ChatSettings:
    return ChatSettings(secret=SECRET, allowed_origins={SITE}, auth_timeout=1.0)


async def login(url: str, user: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
        return await http.post("/login", params={"user": user})


async def test_login_sets_an_httponly_samesite_lax_cookie() -> None:
    async with Lab() as lab:
        server = await lab.serve(f25.create_app(settings()), name="naive")
        response = await login(server.url, "alice")
        attributes = [a.strip().lower() for a in response.headers["set-cookie"].split(";")[1:]]
        assert set(attributes) == {"httponly", "path=/", "samesite=lax"}  # Starlette's defaults
        assert response.cookies[f25.COOKIE].count(".") == 2  # a JWT


async def test_a_foreign_page_with_the_victims_cookie_reads_the_victims_room() -> None:
    async with Lab() as lab:
        app = f25.create_app(settings())
        server = await lab.serve(app, name="naive")
        cookie = {"Cookie": f"{f25.COOKIE}={(await login(server.url, 'alice')).cookies[f25.COOKIE]}"}
        alice = await lab.connect(
            server.ws_url("/ws/chat/lobby"), name="alice", origin=SITE, additional_headers=cookie
        )
        assert (await alice.recv_json())["user"] == "alice"
        evil = await lab.connect(
            server.ws_url("/ws/chat/lobby"), name="evil", origin=EVIL, additional_headers=cookie
        )
        hijacked = await evil.recv_json()
        assert (hijacked["type"], hijacked["user"]) == ("ready", "alice")
        await alice.send_json({"type": "say", "text": "secret"})
        assert (await evil.recv_json())["text"] == "secret"
        await evil.send_json({"type": "say", "text": "sent by evil"})
        seen = [await alice.recv_json() for _ in range(3)]  # evil "joined", her own "secret", then evil's
        assert ("alice", "sent by evil") in {(m.get("from"), m.get("text")) for m in seen}
        assert app.state.chat.rooms == {"lobby": ["alice", "alice"]}


async def test_without_the_cookie_the_pitfall_refuses_4001() -> None:
    async with Lab() as lab:
        server = await lab.serve(f25.create_app(settings()), name="naive")
        evil = await lab.connect(server.ws_url("/ws/chat/lobby"), name="evil", origin=EVIL)
        await evil.wait_closed()
        assert evil.close_code == CloseCode.UNAUTHORIZED and evil.received == []


async def test_cors_middleware_does_not_protect_the_pitfall() -> None:
    async with Lab() as lab:
        app = f25.create_app(settings())
        app.add_middleware(CORSMiddleware, allow_origins=[SITE], allow_credentials=True)
        server = await lab.serve(app, name="naive")
        token = issue_token("alice", SECRET, 60)
        evil = await lab.connect(
            server.ws_url("/ws/chat/lobby"),
            name="evil",
            origin=EVIL,
            additional_headers={"Cookie": f"{f25.COOKIE}={token}"},
        )
        assert (await evil.recv_json())["user"] == "alice"
        # ...while it does its job for HTTP: no Access-Control-Allow-Origin for the foreign page
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as http:
            answer = await http.post("/login", params={"user": "x"}, headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in answer.headers


async def test_the_reference_refuses_the_foreign_page_with_403_and_serves_its_own() -> None:
    async with Lab() as lab:
        app = create_app(settings())
        server = await lab.serve(app, name="chat")
        token = issue_token("alice", SECRET, 60)
        with pytest.raises(InvalidStatus) as refused:
            await lab.connect(
                server.ws_url("/ws/chat/lobby"),
                name="evil",
                origin=EVIL,
                additional_headers={"Cookie": f"{f25.COOKIE}={token}"},
            )
        assert refused.value.response.status_code == 403
        alice = await lab.connect(server.ws_url("/ws/chat/lobby"), name="alice", origin=SITE)
        await alice.send_json({"type": "auth", "token": token})
        assert (await alice.recv_json())["type"] == "ready"
        assert app.state.chat.rooms == {"lobby": ["alice"]}


def test_the_pitfall_is_the_reference_app_with_its_session_swapped() -> None:
    """What the notebook shows: no route of its own, and a session overriding two methods only."""
    overridden = {name for name in vars(f25.CookieSession) if not name.startswith("__")}
    assert overridden == {"_origin_allowed", "_authenticate"}
    assert "@app.websocket" not in inspect.getsource(f25.create_app)
    assert "origin_allowed(" in inspect.getsource(ChatSession._origin_allowed)
    assert "return True" in inspect.getsource(f25.CookieSession._origin_allowed)
