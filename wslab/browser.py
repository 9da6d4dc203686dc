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

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from wslab.components import CHROMIUM_ARGS, require_or_skip

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
  // What the lesson reads back: every state change (with its time on the page's clock) and message.
  window.wslab = wslab;
  window.states = [];
  window.messages = [];
  window.start = (path, options) => {
    const started = performance.now();
    window.client = new wslab.ReconnectingWebSocket(`ws://${location.host}${path}`, {
      ...options,
      onState: (change) => window.states.push({ at: (performance.now() - started) / 1000, ...change }),
      onMessage: (message) => window.messages.push(message),
    });
  };
</script>
"""
"""A page that loads the course's browser client; ``start(path, options)`` connects it to its own host.

Options are plain JSON (``base``, ``cap``, ``maxAttempts``, ``token``...); the page records every state
change in ``window.states`` and every message in ``window.messages`` for the cell to read back."""


async def open_client_page(browser: Browser, base_url: str, path: str = "/client") -> Page:
    """A new tab on ``base_url + path`` (a :data:`CLIENT_PAGE`), once its module has loaded."""
    page = await browser.new_page()
    await page.goto(base_url + path)
    await page.wait_for_function("window.start !== undefined")
    return page
