"""Admission control (catalogue F17): at most ``limit`` new WebSockets per ``window``, the rest told 1013.

After a deploy the whole crowd reconnects at once (F17). Jitter on the clients spreads it out, but the
server cannot count on every client being well behaved, and each accepted connection costs it a
handshake, an auth check and usually a state reload. :class:`AdmissionControl` is an ASGI wrapper that
lets at most ``limit`` WebSockets through to the app in any ``window`` seconds (a sliding window) and
turns the others away cheaply, before the app runs.

Why accept-then-close 1013 and not refuse the handshake: closing before ``websocket.accept`` makes an
ASGI server answer HTTP 403, which a client must treat as final (its credentials or origin were
refused). ``1013 TRY_AGAIN_LATER`` is the close code that means "overloaded, come back later"; clients
that follow :func:`wslab.backoff.decide` back off harder on it (``slow_down``), so a refused crowd
thins out instead of retrying at the same pace. Non-WebSocket traffic (HTTP, lifespan) passes untouched.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from wslab.wire import CloseCode

__all__ = ["ASGIApp", "AdmissionControl", "Report"]

ASGIApp = Callable[..., Any]
Report = Callable[[str, str], None]


def _no_report(kind: str, message: str) -> None:
    """The default report hook: do nothing."""


class AdmissionControl:
    """ASGI wrapper admitting at most ``limit`` WebSockets to ``app`` in any ``window`` seconds.

    ``admitted`` and ``refused`` count what happened (export them as metrics); ``admitted_at`` holds
    the ``clock()`` time of every admission, so a lesson can count admissions per window.
    ``report(kind, message)`` is told about every refusal (kind ``"refused"``); it never prints.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        report: Report = _no_report,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"need limit >= 1 and window > 0, got {limit!r} and {window!r}")
        self.app = app
        self.limit = limit
        self.window = window
        self.clock = clock
        self.report = report
        self.admitted_at: list[float] = []
        self.refused = 0
        self._recent: deque[float] = deque()

    @property
    def admitted(self) -> int:
        return len(self.admitted_at)

    def try_admit(self) -> bool:
        """Take a slot if fewer than ``limit`` admissions happened in the last ``window`` seconds."""
        now = self.clock()
        while self._recent and self._recent[0] <= now - self.window:
            self._recent.popleft()
        if len(self._recent) >= self.limit:
            return False
        self._recent.append(now)
        self.admitted_at.append(now)
        return True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket" or self.try_admit():
            await self.app(scope, receive, send)
            return
        self.refused += 1
        self.report("refused", f"over {self.limit} new connections per {self.window:g} s: closed 1013")
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send(
            {"type": "websocket.close", "code": int(CloseCode.TRY_AGAIN_LATER), "reason": "try again later"}
        )
