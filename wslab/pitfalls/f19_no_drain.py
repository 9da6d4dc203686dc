"""F19, deploys without draining: a push-only feed that never reads, stopped the default way.

The tutorial's "server push" endpoint accepts and then only sends: it waits on an in-process queue
and forwards whatever arrives. It never calls ``receive()``, so it never hears that its client left or
that the server is shutting down: uvicorn sends the client 1012 and closes the socket, but the handler
is still parked on ``queue.get()``. uvicorn's shutdown then waits for that task, and with its default
``timeout_graceful_shutdown=None`` it waits forever ("Waiting for background tasks to complete. (CTRL+C
to force quit)"), until the orchestrator's SIGKILL ends it.

The reference chat reads every connection in a task of its own (``ChatSession._read_loop``), so the
shutdown's disconnect reaches it at once; :mod:`wslab.drain` adds the part no framework does for you:
telling clients when to come back instead of letting them all return at once.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, WebSocket

__all__ = ["Feed", "create_app"]


class Feed:
    """An in-process fan-out: each subscriber gets its own unbounded queue (it is not the point here)."""

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[str]] = set()

    def publish(self, text: str) -> None:
        for queue in self.subscribers:
            queue.put_nowait(text)


def create_app() -> FastAPI:
    """A push-only feed at ``/ws/feed``: ``app.state.feed.publish(text)`` reaches every subscriber."""
    app = FastAPI(title="wslab push-only feed (F19)")
    app.state.feed = Feed()

    @app.websocket("/ws/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        queue: asyncio.Queue[str] = asyncio.Queue()
        app.state.feed.subscribers.add(queue)
        try:
            while True:  # the pitfall: nothing here ever calls receive(), so a disconnect goes unnoticed
                await websocket.send_text(await queue.get())
        finally:
            app.state.feed.subscribers.discard(queue)

    return app
