"""F21, the proxy's idle timeout: choose the heartbeat interval for a path of proxies, and prove it holds.

The learner writes ``heartbeat_interval(path)``: ``path`` maps each hop between browser and server to its
idle timeout in production seconds; return the interval for the server's pings. The rule the notebook
ends with: at most half the smallest idle timeout on the path (a ping can be late, its pong later), and
not absurdly often. The checker then builds that path from real relays, each cutting idle connections
after its (scaled) timeout, serves an app whose only traffic is uvicorn's protocol pings at the learner's
interval, and keeps a quiet client connected through the whole chain for twice the largest timeout.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import scenario

PATHS = (
    {"Cloudflare": 100.0, "corporate proxy": 30.0, "nginx": 60.0},
    {"nginx": 60.0, "AWS ALB": 60.0, "Cloudflare": 100.0},
)
"""Two real-looking paths (production seconds); the first has a short hop in the middle."""
SHOWN = "heartbeat_interval(path)"


def _quiet_app() -> Starlette:
    """``/ws``: accepts and never sends anything itself; only protocol pings cross the path."""

    async def quiet(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/ws", quiet)])


class HeartbeatInterval(Exercise):
    """q1: a heartbeat under every idle timeout on the path."""

    name = "A heartbeat for the whole path"
    reads = ("heartbeat_interval",)
    placeholder = """
def heartbeat_interval(path: dict) -> float:
    ...  # your code here
"""
    hints = (
        "Every hop cuts a connection that stays silent for longer than its own timeout, so the hop with the "
        "smallest timeout decides. The heartbeat keeps the connection from ever being silent that long.",
        "A ping can be sent late, and what resets a proxy's timer is bytes crossing it: leave a margin. "
        "The notebook's rule: the interval is at most half the smallest idle timeout.",
        "Take the smallest timeout in `path` and halve it: the largest interval that keeps the margin, so no "
        "more pings than needed.",
    )
    solution_code = """
def heartbeat_interval(path: dict) -> float:
    return min(path.values()) / 2
"""
    wrong_answers = (
        WrongAnswer(
            "half the largest timeout",
            """
def heartbeat_interval(path):
    return max(path.values()) / 2
""",
            "corporate proxy",
        ),
        WrongAnswer(
            "half the average timeout",
            """
def heartbeat_interval(path):
    return sum(path.values()) / len(path) / 2
""",
            "corporate proxy",
        ),
        WrongAnswer(
            "the smallest timeout itself, no margin",
            """
def heartbeat_interval(path):
    return min(path.values())
""",
            "no margin",
        ),
        WrongAnswer(
            "as often as possible",
            """
def heartbeat_interval(path):
    return 0.5
""",
            "pings per minute",
        ),
    )
    secrets = ("min(path.values()) / 2",)
    correct_message = (
        "`heartbeat_interval` stays within half the smallest idle timeout of each path, without pinging more "
        "than needed, and a quiet client kept its connection through both real chains of idle-cutting "
        "relays for twice their longest timeout."
    )
    call_timeout = 30.0

    async def _check(self, heartbeat_interval: Callable[..., Any]) -> None:
        from wslab.lab import Lab

        for path in PATHS:
            interval = self._interval(heartbeat_interval, path)
            async with Lab() as lab:
                name = " → ".join(path)
                async with scenario(f"a quiet client behind {name}", 10):
                    await self._hold(lab, path, interval)

    def _interval(self, heartbeat_interval: Callable[..., Any], path: dict[str, float]) -> float:
        call = f"heartbeat_interval({path!r})"
        got = self.call(heartbeat_interval, dict(path))
        if isinstance(got, bool) or not isinstance(got, numbers.Real):
            shown = "None" if got is None else article(type(got).__name__)
            raise Incorrect(f"`{call}` returned {shown}; it should return a number of seconds.")
        interval, (hop, smallest) = float(got), min(path.items(), key=lambda item: item[1])
        if interval <= 0:
            raise Incorrect(f"`{call}` returned {interval:g}: a heartbeat needs a positive interval.")
        if smallest / 2 < interval <= smallest:  # (longer than the smallest timeout: the run shows the cut)
            raise Incorrect(
                f"`{call}` returned {interval:.3g} s, not above the smallest idle timeout on the path "
                f"({hop}, {smallest:g} s) but with no margin: a late ping, or a pong that comes back "
                "after the cut, loses the connection. At most half."
            )
        if interval < smallest / 10:
            raise Incorrect(
                f"`{call}` returned {interval:g} s: {60 / interval:g} pings per minute on every connection, "
                f"where the smallest idle timeout ({hop}, {smallest:g} s) needs one every {smallest / 2:g} s."
            )
        return interval

    @staticmethod
    async def _hold(lab: Any, path: dict[str, float], interval: float) -> None:
        server = await lab.serve(
            _quiet_app(),
            name="f21-quiet",
            ws_ping_interval=lab.seconds(interval),
            ws_ping_timeout=lab.seconds(3 * interval),
        )
        target: Any = server
        relays = []
        for hop, timeout in reversed(list(path.items())):  # the browser's side is the first hop
            relay = await lab.proxy(target, name=hop)
            relay.idle_timeout = lab.seconds(timeout)
            relays.append(relay)
            target = relay.port
        client = await lab.connect(relays[-1].ws_url("/ws"), name="quiet-client")
        with_margin = lab.seconds(2 * max(path.values()))
        try:
            closed = await client.wait_closed(with_margin)
        except TimeoutError:
            return
        cut = [r.name for r in relays if lab.events.count(source=f"proxy:{r.name}", kind="idle-timeout")]
        raise Incorrect(
            f"with a ping every {interval:.3g} s, the quiet client's connection was cut ({closed}) by the "
            f"idle timeout of {', '.join(cut) or 'a hop'} ({', '.join(f'{path[h]:g} s' for h in cut)})."
        )


CHAPTER = Chapter("F21", "F21_proxy_idle_timeout", (HeartbeatInterval,))
