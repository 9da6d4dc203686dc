"""F24: a token in the URL ends up in the access logs; a token in the first message does not.

Each test puts a proxy (with an access log, like nginx's) in front of the app, as production would,
and then searches every log the run produced for the token string.
"""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from wslab import Lab
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.netem import FaultProxy
from wslab.pitfalls import f24_token_in_url
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

SECRET = "wslab-f24-test-secret-0123456789abcdef"


def settings() -> ChatSettings:
    return ChatSettings(secret=SECRET, auth_timeout=1.0)


def every_log(lab: Lab, proxy: FaultProxy) -> list[str]:
    """Every line the lab logged: event messages and data, and the proxy's access log."""
    lines = [f"{e.source} {e.kind} {e.message} {e.data!r}" for e in lab.events]
    return lines + list(proxy.access_log)


async def test_a_token_in_the_url_works_and_lands_in_both_access_logs() -> None:
    async with Lab() as lab:
        app = f24_token_in_url.create_app(settings())
        server = await lab.serve(app, name="naive")
        proxy = await lab.proxy(server)
        token = issue_token("alice", SECRET, 60)
        alice = await lab.connect(proxy.ws_url(f"/ws/chat/lobby?token={token}"), name="alice")
        ready = await alice.recv_json()
        assert (ready["type"], ready["user"]) == ("ready", "alice")
        assert app.state.chat.rooms == {"lobby": ["alice"]}

        uvicorn_lines = [e.message for e in lab.events.select(source="server:naive", kind="access")]
        assert any(f"/ws/chat/lobby?token={token}" in line for line in uvicorn_lines), uvicorn_lines
        assert any(f"GET /ws/chat/lobby?token={token} HTTP/1.1" in line for line in proxy.access_log)
        await alice.close()


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("", CloseCode.UNAUTHORIZED),
        ("not-a-jwt", CloseCode.UNAUTHORIZED),
        (issue_token("alice", SECRET, 60, now=0.0), CloseCode.TOKEN_EXPIRED),
    ],
    ids=["missing", "garbage", "expired"],
)
async def test_the_url_token_is_still_verified(token: str, code: CloseCode) -> None:
    async with Lab() as lab:
        app = f24_token_in_url.create_app(settings())
        server = await lab.serve(app, name="naive")
        alice = await lab.connect(server.ws_url(f"/ws/chat/lobby?token={token}"), name="alice")
        await alice.wait_closed()
        assert alice.close_code == code, alice.closed_as
        assert alice.received == [] and app.state.chat.rooms == {}


async def test_a_token_in_the_first_message_appears_in_no_log(caplog: pytest.LogCaptureFixture) -> None:
    async with Lab() as lab:
        app = create_app(settings(), report=lambda kind, msg: lab.events.record("chat", kind, msg))
        server = await lab.serve(app, name="chat")
        proxy = await lab.proxy(server)
        token = issue_token("alice", SECRET, 60)
        alice = await lab.connect(proxy.ws_url("/ws/chat/lobby"), name="alice")
        await alice.send_json({"type": "auth", "token": token})
        assert (await alice.recv_json())["type"] == "ready"
        await alice.send_json({"type": "say", "text": "hello"})
        assert (await alice.recv_json())["text"] == "hello"
        await alice.close()
        await lab.events.wait_for(source="chat", kind="left", contains="alice")

        assert lab.events.select(source="server:chat", kind="access")  # the request *was* logged...
        assert any("GET /ws/chat/lobby HTTP/1.1" in line for line in proxy.access_log)
        logged = every_log(lab, proxy) + [record.getMessage() for record in caplog.records]
        leaks = [line for line in logged if token in line]
        assert leaks == []  # ...without the token, anywhere


async def test_the_pitfall_differs_from_the_reference_only_in_where_the_token_travels() -> None:
    """Origin checks still apply: the lesson is about the URL, nothing else."""
    async with Lab() as lab:
        strict = ChatSettings(secret=SECRET, allowed_origins={"https://chat.example"})
        server = await lab.serve(f24_token_in_url.create_app(strict), name="naive")
        token = issue_token("alice", SECRET, 60)
        with pytest.raises(InvalidStatus) as rejected:
            await lab.connect(
                server.ws_url(f"/ws/chat/lobby?token={token}"), name="evil", origin="http://evil.example"
            )
        assert rejected.value.response.status_code == 403
