"""F03: a handler that trusts its input: one malformed message kills it, and its membership leaks.

The handler every tutorial shows::

    data = await websocket.receive_json()
    text = data["text"]

Each line raises on input a client controls: ``receive_json`` raises ``JSONDecodeError`` on text
that is not JSON and ``KeyError: 'text'`` on a binary frame (Starlette reads ``message["text"]``,
F32); ``data["text"]`` raises ``KeyError`` on an object without ``text`` and ``TypeError`` on a JSON
list or number. None of these is a ``WebSocketDisconnect``, so the docs-style cleanup in ``except
WebSocketDisconnect`` is skipped: the handler dies, uvicorn drops the TCP connection (the client sees
1006, no close frame), and the socket stays in the manager's list. The next broadcast to it is F01.

The reference (:mod:`wslab.chat.session`) reads with ``receive()``, validates every message, answers
a bad one with an ``error`` message and keeps the connection, and leaves its room in ``finally``.
"""

from __future__ import annotations

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from wslab.pitfalls.f01_dead_sockets import Report, Rooms, no_report, observed


def create_app(report: Report = no_report) -> FastAPI:
    """``/ws/{room}/{name}`` with the F01 manager and a handler that trusts every message."""
    app = FastAPI(title="F03: trusting input")
    rooms = Rooms()
    app.state.chat = rooms

    @app.websocket("/ws/{room}/{name}")
    async def chat(websocket: WebSocket, room: str, name: str) -> None:
        with observed(report, name):
            manager = rooms[room]
            await manager.connect(websocket)
            try:
                while True:
                    data = await websocket.receive_json()
                    text = data["text"]
                    await manager.broadcast(f"{name}: {text}")
            except WebSocketDisconnect as exc:
                report(
                    "disconnect", f"{name}'s handler caught WebSocketDisconnect({exc.code}); removing {name}"
                )
                manager.disconnect(websocket)
                await manager.broadcast(f"{name} left the chat")

    return app
