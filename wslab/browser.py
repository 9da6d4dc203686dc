"""A real Chromium for lessons and tests: launch it, and serve pages next to the sockets they open.

The browser's ``WebSocket`` is not Python's: it cannot send headers, it reports a refused handshake as
close ``1006`` with no status, and its timers keep running after a page forgets them. Those differences
are what chapters 09 and 10 are about, so they run the system's Chromium through Playwright
(``executable_path``, never a downloaded browser), as the browser tests do.

:func:`chromium` is an async context manager, so a cell or a test that opens a browser also closes it.
:func:`with_pages` puts HTML pages and ``wslab/static`` (the built browser client and the React bundle)
on the same origin as an app's WebSocket routes: the page then connects to ``location.host``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from wslab.apps import echo
from wslab.components import CHROMIUM_ARGS, require_or_skip
from wslab.wire import CloseCode

__all__ = [
    "CLIENT_PAGE",
    "REACT_PAGE",
    "STATIC",
    "SocketCounter",
    "chromium",
    "misbehaving_routes",
    "open_client_page",
    "with_pages",
]

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

STATIC = Path(__file__).resolve().parent / "static"
"""The browser client (``reconnecting-websocket.js``) and the React bundle, served at ``/static``."""


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless system Chromium, closed on exit.

    Raises :class:`~wslab.components.ComponentMissing` (with the install hint) where there is none;
    under pytest it skips instead, unless ``WSLAB_REQUIRE`` lists ``browser``.
    """
    component = require_or_skip("browser")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=component.path, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            await browser.close()


def _page(html: str) -> Any:
    async def endpoint(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    return endpoint


class SocketCounter:
    """ASGI middleware: WebSocket handshakes, accepted sockets and sockets open *now*, seen by the server.

    Why at the server: a page can lose track of a socket (a React render that made one and dropped the
    reference) but the server still holds it; counting here is the only honest measure of a leak.
    ``urls`` keeps each handshake's path and query string, which is what an access log records.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.attempts = 0
        self.accepted = 0
        self.open = 0
        self.peak = 0
        self.urls: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        self.attempts += 1
        query = scope.get("query_string", b"").decode()
        self.urls.append(scope["path"] + (f"?{query}" if query else ""))
        accepted = False

        async def counting_send(message: Any) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                self.accepted += 1
                self.open += 1
                self.peak = max(self.peak, self.open)
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if accepted:
                self.open -= 1

    async def settle(self, expected: int, timeout: float = 10.0, quiet: float = 0.2) -> int:
        """The open count once it has equalled ``expected`` for ``quiet`` seconds (or at ``timeout``).

        Why not return at the first match: sockets open and close concurrently (StrictMode closes its
        first client while the second connects), so a count can pass through the expected value on its
        way elsewhere. A leak must show as a count that *stays* wrong, and a fix as one that stays right.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        since: float | None = None
        while loop.time() < deadline:
            if self.open != expected:
                since = None
            elif since is None:
                since = loop.time()
            elif loop.time() - since >= quiet:
                break
            await asyncio.sleep(0.01)
        return self.open


async def _drop(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close(CloseCode.INTERNAL_ERROR)


async def _refuse(websocket: WebSocket) -> None:
    await websocket.close()  # before accept(): the handshake is answered with HTTP 403


async def _close_with(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close(int(websocket.path_params["code"]))


def misbehaving_routes() -> list[WebSocketRoute]:
    """Servers a client must cope with, one route each, for the client lessons (chapter 10).

    ``/ws/echo`` answers; ``/ws/drop`` accepts and closes 1011 at once (a crash loop behind a load
    balancer); ``/ws/refuse`` refuses every handshake (HTTP 403, as a balancer with no healthy backend
    answers 502); ``/ws/close/{code}`` accepts and closes with ``code``.
    """
    return [
        WebSocketRoute("/ws/echo", echo),
        WebSocketRoute("/ws/drop", _drop),
        WebSocketRoute("/ws/refuse", _refuse),
        WebSocketRoute("/ws/close/{code:int}", _close_with),
    ]


def with_pages(app: Any, pages: Mapping[str, str]) -> Starlette:
    """``app`` with ``pages`` (path → HTML) and ``/static`` in front of it, all on one origin.

    Why one origin: the page opens ``ws://${location.host}/...``, so no URL (and no port) is written
    into the HTML, and the server sees the same ``Origin`` a deployed page would send.
    """
    routes: list[Route | Mount] = [Route(path, _page(html)) for path, html in pages.items()]
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    routes.append(Mount("/", app))
    return Starlette(routes=routes)


CLIENT_PAGE = """<!doctype html>
<title>wslab browser client</title>
<script type="module">
  import * as wslab from "/static/reconnecting-websocket.js";
  import { NaiveReconnectingWebSocket } from "/static/naive-reconnecting-websocket.js";
  // What the lesson reads back: every state change (with its time on the page's clock) and message.
  window.wslab = wslab;
  window.Naive = NaiveReconnectingWebSocket;
  window.wsUrl = (path) => (path.startsWith("ws") ? path : `ws://${location.host}${path}`);
  window.states = [];
  window.messages = [];
  window.start = (path, options) => {
    const started = performance.now();
    window.client = new wslab.ReconnectingWebSocket(wsUrl(path), {
      ...options,
      onState: (change) => window.states.push({ at: (performance.now() - started) / 1000, ...change }),
      onMessage: (message) => window.messages.push(message),
    });
  };
  // The tutorial's client (chapter 10), wired the way its articles wire a status badge.
  window.badge = "";
  window.startNaive = (path, token, options) => {
    window.naive = new NaiveReconnectingWebSocket(wsUrl(path), token, options);
    window.naive.onopen = () => (window.badge = "connected");
    window.naive.onclose = () => (window.badge = "reconnecting…");
    window.naive.onmessage = (message) => window.messages.push(message);
  };
</script>
"""
"""A page that loads the course's browser client; ``start(path, options)`` connects it to its own host
(or to ``path`` itself when it is a ``ws://`` URL).

Options are plain JSON (``base``, ``cap``, ``maxAttempts``, ``token``...); the page records every state
change in ``window.states`` and every message in ``window.messages`` for the cell to read back.
``startNaive(path, token, options)`` starts the tutorial-style client of chapter 10 instead
(``window.naive``), with the status text its articles show in ``window.badge``."""


async def open_client_page(browser: Browser, base_url: str, path: str = "/client") -> Page:
    """A new tab on ``base_url + path`` (a :data:`CLIENT_PAGE`), once its module has loaded."""
    page = await browser.new_page()
    await page.goto(base_url + path)
    await page.wait_for_function("window.start !== undefined", polling=10)
    return page


REACT_PAGE = """<!doctype html>
<title>wslab React chat</title>
<div id="root"></div>
<script type="module">
  import "/static/react-chat.js";
  // mount({mode: "naive" | "hook", url, token, strict}) renders the chat component into #root.
  const root = document.getElementById("root");
  window.mountChat = (options) => (window.root = window.wslabReact.mount(root, options));
</script>
"""
"""Chapter 10's React page: ``react-chat.js``, built from ``react-chat.tsx`` and ``use-chat-socket.ts``."""
