"""F01: the FastAPI-docs ``ConnectionManager``: dead sockets stay registered, and a healthy sender pays.

This is the manager from the FastAPI docs (``docs_src/websockets_/tutorial003``), one per room, plus the
"fix" many projects add when their logs fill with errors: ``except RuntimeError`` around each send.
Everything that goes wrong comes from two choices:

* **Cleanup lives only in** ``except WebSocketDisconnect`` **in the endpoint.** A handler that ends any
  other way (a bug, a bad message: F03) leaves its socket in the list for good.
* **The broadcaster awaits every socket itself, and catches the wrong thing.** With uvicorn's
  ``websockets-sansio`` server and Starlette 1.10, a send to a peer whose TCP connection is gone raises
  ``WebSocketDisconnect(1006)``, not ``RuntimeError`` (uvicorn raises ``ClientDisconnected``, an
  ``OSError``, and Starlette turns it into ``WebSocketDisconnect``). It escapes ``broadcast`` into the
  *sender's* handler, whose ``except WebSocketDisconnect`` then removes the **sender** and ends its
  connection. Starlette has meanwhile marked the dead socket closed, so every later send to it raises
  ``WebSocketDisconnected`` (a ``RuntimeError``), which ``except RuntimeError`` swallows: the dead
  socket stays registered for good, and messages to it vanish without a trace.

The reference in :mod:`wslab.chat.rooms` fixes both: membership is an ``async with`` held by the
owning handler (removed in ``finally``), and a broadcast never awaits a socket (per-member queues).

Messages are JSON ``{"text": ...}``, parsed carefully here so that this module shows F01 alone; the
handler that trusts its input is :mod:`wslab.pitfalls.f03_trusting_input`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

Report = Callable[[str, str], None]
"""``report(kind, message)``, as in :mod:`wslab.chat`: where the app says what happened. Never prints."""


def no_report(kind: str, message: str) -> None:
    """The default report hook: do nothing."""


class ConnectionManager:
    """The FastAPI docs' manager: a plain list, and a broadcast that awaits every socket in turn."""

    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str) -> None:
        for connection in self.active_connections:
            try:  # noqa: SIM105 (kept as tutorials write it)
                await connection.send_text(message)
            except RuntimeError:
                # The usual "fix" for `Cannot call "send" once a close message has been sent`. It catches
                # Starlette's WebSocketDisconnected (a RuntimeError), not WebSocketDisconnect(1006).
                pass


class Rooms(dict[str, ConnectionManager]):
    """One docs manager per room; ``rooms`` has the same shape as the reference's ``manager.rooms``."""

    def __missing__(self, room: str) -> ConnectionManager:
        manager = self[room] = ConnectionManager()
        return manager

    @property
    def rooms(self) -> dict[str, list[str]]:
        """Room name -> names of the sockets still registered (dead or alive), non-empty rooms only."""
        return {
            room: [ws.path_params["name"] for ws in manager.active_connections]
            for room, manager in self.items()
            if manager.active_connections
        }


@contextmanager
def observed(report: Report, name: str) -> Iterator[None]:
    """Lab instrumentation, not part of the pattern: report any exception that ends ``name``'s handler."""
    try:
        yield
    except BaseException as exc:
        report("handler_crashed", f"{name}'s handler ended with {type(exc).__name__}: {exc}")
        raise


def create_app(report: Report = no_report) -> FastAPI:
    """The docs chat: ``/ws/{room}/{name}``, JSON ``{"text": ...}`` in, ``"<name>: <text>"`` out."""
    app = FastAPI(title="F01: dead sockets")
    rooms = Rooms()
    app.state.chat = rooms

    @app.websocket("/ws/{room}/{name}")
    async def chat(websocket: WebSocket, room: str, name: str) -> None:
        with observed(report, name):
            manager = rooms[room]
            await manager.connect(websocket)
            try:
                while True:
                    raw = await websocket.receive_text()
                    try:
                        text = json.loads(raw)["text"]
                    except (ValueError, KeyError, TypeError):
                        continue  # careful with input, so that only F01 is on show here
                    await manager.broadcast(f"{name}: {text}")
            except WebSocketDisconnect as exc:
                report(
                    "disconnect", f"{name}'s handler caught WebSocketDisconnect({exc.code}); removing {name}"
                )
                manager.disconnect(websocket)
                await manager.broadcast(f"{name} left the chat")

    return app
