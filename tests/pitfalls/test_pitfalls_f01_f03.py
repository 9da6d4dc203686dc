"""F01 (dead sockets in the docs' ConnectionManager) and F03 (a handler that trusts its input).

Two kinds of tests. The first kind pins what the locked stack (Starlette and uvicorn with its
``websockets-sansio`` implementation) really raises when the app sends to a peer that is gone, and in
whose handler: chapter 02 states these facts, and catalogue F05 says they change between versions, so
a version bump that changes them must fail here, loudly. The second kind runs the naive apps from
:mod:`wslab.pitfalls` next to the reference :mod:`wslab.chat` and asserts what a user would see:
who is still registered, who received what, who got disconnected.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected
from uvicorn.protocols.utils import ClientDisconnected

from wslab import Lab
from wslab.chat import ChatSettings, create_app, issue_token
from wslab.clients import LabClient
from wslab.pitfalls import f01_dead_sockets, f03_trusting_input
from wslab.runtime.servers import ServerHandle
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio

SECRET = "wslab-pitfalls-test-secret-0123456789abcdef"


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {check.__doc__ or check}")
        await asyncio.sleep(0.01)


async def naive(lab: Lab, factory: Callable[..., FastAPI]) -> tuple[FastAPI, dict[str, LabClient]]:
    """Serve a naive app and connect alice, bob and carol to its lobby; wait until all are registered."""
    app = factory(report=lambda kind, msg: lab.events.record("app", kind, msg))
    server = await lab.serve(app, name="naive")
    clients = {
        n: await lab.connect(server.ws_url(f"/ws/lobby/{n}"), name=n) for n in ("alice", "bob", "carol")
    }
    await eventually(lambda: app.state.chat.rooms == {"lobby": ["alice", "bob", "carol"]})
    return app, clients


def socket_of(app: FastAPI, name: str) -> WebSocket:
    """The server-side WebSocket of ``name``: the server runs on this loop, so a test can use it."""
    return next(ws for ws in app.state.chat["lobby"].active_connections if ws.path_params["name"] == name)


def app_events(lab: Lab, kind: str) -> list[str]:
    return [e.message for e in lab.events.select(source="app", kind=kind)]


async def send_error(ws: WebSocket, text: str = "x") -> BaseException | None:
    try:
        await ws.send_text(text)
    except BaseException as exc:  # the point is to see exactly what comes out
        return exc
    return None


# --- the stack these facts were observed on --------------------------------------------------------


def test_the_exception_classes_chapter_02_names() -> None:
    """The two exceptions a send to a dead peer raises: only one of them is a RuntimeError."""
    assert issubclass(WebSocketDisconnected, RuntimeError)
    assert not issubclass(WebSocketDisconnect, RuntimeError)
    assert issubclass(ClientDisconnected, OSError)


async def test_the_default_ws_implementation_is_websockets_sansio() -> None:
    async with Lab() as lab:
        _, c = await naive(lab, f01_dead_sockets.create_app)
        server = lab.get("server", "naive")
        protocol_class = server._server.config.ws_protocol_class  # type: ignore[union-attr]
        assert protocol_class.__name__ == "WebSocketsSansIOProtocol"
        assert len(c) == 3


# --- what a send to a gone peer raises, and where ---------------------------------------------------


async def test_a_peer_that_closes_cleanly_is_removed_by_its_own_handler() -> None:
    async with Lab() as lab:
        app, c = await naive(lab, f01_dead_sockets.create_app)
        alice, bob = c["alice"], c["bob"]
        await bob.close()
        await eventually(lambda: app.state.chat.rooms == {"lobby": ["alice", "carol"]})
        assert app_events(lab, "disconnect") == [
            "bob's handler caught WebSocketDisconnect(1000); removing bob"
        ]
        assert app_events(lab, "handler_crashed") == []
        assert await alice.recv() == "bob left the chat"


async def test_a_vanished_peer_is_noticed_by_its_own_receive_loop_with_code_1005() -> None:
    """TCP dropped without a close frame: on localhost uvicorn sees it at once and reports 1005, not 1006."""
    async with Lab() as lab:
        app, c = await naive(lab, f01_dead_sockets.create_app)
        alice, bob = c["alice"], c["bob"]
        await bob.abort()
        assert bob.close_code == CloseCode.ABNORMAL_CLOSURE  # what the client side logs
        await eventually(lambda: app.state.chat.rooms == {"lobby": ["alice", "carol"]})
        assert app_events(lab, "disconnect") == [
            "bob's handler caught WebSocketDisconnect(1005); removing bob"
        ]
        assert await alice.recv() == "bob left the chat"


async def test_sending_to_a_vanished_peer_before_the_server_notices_raises_nothing() -> None:
    async with Lab() as lab:
        app, c = await naive(lab, f01_dead_sockets.create_app)
        bob = c["bob"]
        bob_ws = socket_of(app, "bob")
        bob.ws.transport.abort()  # no await in between: the server cannot have seen it yet
        assert await send_error(bob_ws, "into the void") is None  # "sent", and lost
        await bob.wait_closed()
        assert "into the void" not in bob.received
        await eventually(lambda: app.state.chat.rooms == {"lobby": ["alice", "carol"]})


async def test_sending_after_the_server_noticed_raises_websocketdisconnect_1006_then_runtimeerror() -> None:
    """The first failed send is WebSocketDisconnect(1006), not a RuntimeError; the following ones are
    Starlette's WebSocketDisconnected, a RuntimeError: the one the usual ``except RuntimeError`` catches."""
    async with Lab() as lab:
        app, c = await naive(lab, f03_trusting_input.create_app)
        bob = c["bob"]
        bob_ws = socket_of(app, "bob")
        await bob.send("not json")  # bob's handler dies; his socket stays registered (F03)
        await bob.wait_closed()
        await eventually(lambda: bool(app_events(lab, "handler_crashed")))
        await asyncio.sleep(0.05)  # let uvicorn's connection_lost run

        first = await send_error(bob_ws)
        assert type(first) is WebSocketDisconnect and first.code == 1006
        assert isinstance(first.__context__, ClientDisconnected)  # uvicorn's OSError, translated
        second = await send_error(bob_ws)
        assert type(second) is WebSocketDisconnected and isinstance(second, RuntimeError)
        assert str(second) == 'Cannot call "send" once a close message has been sent.'


async def test_sending_after_the_app_closed_the_socket_raises_websocketdisconnected() -> None:
    async with Lab() as lab:
        app, c = await naive(lab, f01_dead_sockets.create_app)
        bob = c["bob"]
        bob_ws = socket_of(app, "bob")
        await bob_ws.close(int(CloseCode.UNSUPPORTED_DATA))
        error = await send_error(bob_ws)
        assert type(error) is WebSocketDisconnected and isinstance(error, RuntimeError)
        await bob.wait_closed()
        assert bob.close_code == CloseCode.UNSUPPORTED_DATA


# --- F03: one malformed message, and what follows ----------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "crash"),
    [
        ("not json", "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
        (b"\x01\x02", "KeyError: 'text'"),
        ('{"txt": "typo"}', "KeyError: 'text'"),
        ("[1, 2]", "TypeError: list indices must be integers or slices, not str"),
    ],
    ids=["not-json", "binary-frame", "no-text-key", "json-list"],
)
async def test_f03_a_bad_message_leaks_the_sender_and_a_healthy_peer_pays(
    payload: str | bytes, crash: str
) -> None:
    async with Lab() as lab:
        app, c = await naive(lab, f03_trusting_input.create_app)
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        await bob.send(payload)
        await bob.wait_closed()
        assert bob.close_code == CloseCode.ABNORMAL_CLOSURE  # the handler died: no close frame
        await eventually(lambda: bool(app_events(lab, "handler_crashed")))
        assert app_events(lab, "handler_crashed") == [f"bob's handler ended with {crash}"]
        assert app.state.chat.rooms == {"lobby": ["alice", "bob", "carol"]}  # bob leaked

        # alice says hi: the send to bob raises WebSocketDisconnect(1006) in *alice's* handler
        await alice.send_json({"text": "hi"})
        await alice.wait_closed()
        assert app_events(lab, "disconnect") == [
            "alice's handler caught WebSocketDisconnect(1006); removing alice"
        ]
        assert app.state.chat.rooms == {"lobby": ["bob", "carol"]}  # the healthy one is gone
        assert alice.received == ["alice: hi"] and alice.close_code == CloseCode.ABNORMAL_CLOSURE
        assert await carol.recv() == "alice left the chat"  # carol never got "alice: hi"

        # from now on ``except RuntimeError`` swallows every send to bob: the room "works", bob leaks
        await carol.send_json({"text": "anyone?"})
        assert await carol.recv() == "carol: anyone?"
        assert app.state.chat.rooms == {"lobby": ["bob", "carol"]}
        assert len(app_events(lab, "handler_crashed")) == 1


async def test_f01_careful_parsing_alone_keeps_everyone() -> None:
    async with Lab() as lab:
        app, c = await naive(lab, f01_dead_sockets.create_app)
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        await bob.send("not json")
        await alice.send_json({"text": "hi"})
        for client in (alice, bob, carol):
            assert await client.recv() == "alice: hi"
        assert app.state.chat.rooms == {"lobby": ["alice", "bob", "carol"]}


# --- the reference, same triggers ----------------------------------------------------------------


async def reference(lab: Lab) -> tuple[Any, ServerHandle, list[LabClient]]:
    settings = ChatSettings(secret=SECRET, rate=1000.0, burst=1000)
    app = create_app(settings, report=lambda kind, msg: lab.events.record("chat", kind, msg))
    server = await lab.serve(app, name="chat")
    clients = []
    for name in ("alice", "bob", "carol"):
        client = await lab.connect(server.ws_url("/ws/chat/lobby"), name=name)
        await client.send_json({"type": "auth", "token": issue_token(name, SECRET, 60)})
        clients.append(client)
    await eventually(lambda: app.state.chat.rooms == {"lobby": ["alice", "bob", "carol"]})
    return app.state.chat, server, clients


async def until(client: LabClient, kind: str, **fields: str) -> dict[str, Any]:
    """Read ``client``'s messages until one of type ``kind`` with ``fields`` arrives; return it."""
    while True:
        msg = await client.recv_json()
        if msg["type"] == kind and all(msg.get(k) == v for k, v in fields.items()):
            return msg


@pytest.mark.parametrize("payload", ["not json", b"\x01\x02", '{"txt": "typo"}', "[1, 2]"])
async def test_reference_same_triggers_nobody_leaks_and_alice_is_heard(payload: str | bytes) -> None:
    async with Lab() as lab:
        manager, _, (alice, bob, carol) = await reference(lab)
        await bob.send(payload)
        if isinstance(payload, bytes):  # a binary frame is a protocol error: closed 1003, bob leaves
            await bob.wait_closed()
            assert bob.close_code == CloseCode.UNSUPPORTED_DATA
            await eventually(lambda: manager.rooms == {"lobby": ["alice", "carol"]})
            listeners = [alice, carol]
        else:  # a bad text message is answered with an error, and bob stays
            assert (await until(bob, "error"))["reason"] == "bad_json" or payload == '{"txt": "typo"}'
            assert manager.rooms == {"lobby": ["alice", "bob", "carol"]}
            listeners = [alice, bob, carol]
        await alice.send_json({"type": "say", "text": "hi"})
        for client in listeners:
            await until(client, "message", text="hi")
        assert not alice.closed and not carol.closed


async def test_reference_a_vanished_peer_leaves_and_nobody_else_does() -> None:
    async with Lab() as lab:
        manager, _, (alice, bob, carol) = await reference(lab)
        await bob.abort()
        await eventually(lambda: manager.rooms == {"lobby": ["alice", "carol"]})
        await alice.send_json({"type": "say", "text": "hi"})
        for client in (alice, carol):
            received = [json.loads(m) for m in client.drain()]
            while not any(m["type"] == "message" for m in received):
                received.append(await client.recv_json())
            assert ("left", "bob") in [(m["type"], m.get("user")) for m in received]
        assert not alice.closed and not carol.closed
