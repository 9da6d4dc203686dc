"""Reconnect storms (catalogue F17): a crowd of clients, a server that restarts, accepts counted per window.

After a deploy every client notices the restart at the same instant. What happens next depends only on
the clients' backoff policy: with a fixed or purely exponential delay they come back *together*, and the
new server takes the whole crowd in one burst; with full jitter they come back spread out. This module
measures that on the server side: :class:`AcceptCounter` is an ASGI app that notes when it accepts each
WebSocket, and :func:`reconnect_storm` runs one restart against a crowd of real
:class:`~wslab.clients.ReconnectingClient` instances and reports the accepts per window.

Why the storm has its own time scale: every handshake costs the lab's single event loop CPU (a
millisecond or more for client and server together, more on a busy machine). At the notebooks' usual
1/100 that would stand for a tenth of a production second per client, and the lab's CPU, not the policy,
would shape the curve. Running the storm only 2x faster than production keeps the CPU mostly out of the
picture; what it still smears, :attr:`StormResult.waits` (the delays the clients *chose*) does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wslab.backoff import Backoff, ExponentialBackoff, FixedBackoff, FullJitterBackoff
from wslab.clients import ClientState, ReconnectingClient
from wslab.events import EventLog
from wslab.timing import TimeScale

__all__ = [
    "FLAP_SCALE",
    "STORM_SCALE",
    "AcceptCounter",
    "FlapResult",
    "PolicyFactory",
    "StormResult",
    "ensure_fd_limit",
    "flapping_server",
    "reconnect_storm",
    "storm_policies",
]

STORM_SCALE = TimeScale(0.5)
"""Storms run 2x faster than production (see the module docstring for why not 100x)."""

PolicyFactory = Callable[[int], Backoff]
"""Makes client ``i``'s policy: one RNG per client, seeded with ``i``, so a storm is reproducible."""


class AcceptCounter:
    """An ASGI app that accepts every WebSocket, records when (``time.monotonic()``), and holds it open.

    ``close_with`` makes it a *flapping* server instead: it accepts, then closes at once with that code,
    for the first ``flaps`` connections (all of them when ``flaps`` is None); later ones stay open.
    """

    def __init__(self, close_with: int | None = None, flaps: int | None = None) -> None:
        self.close_with = close_with
        self.flaps = flaps
        self.accepted: list[float] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        self.accepted.append(time.monotonic())
        await send({"type": "websocket.accept"})
        flapping = self.close_with is not None and (self.flaps is None or len(self.accepted) <= self.flaps)
        if flapping:
            await send({"type": "websocket.close", "code": self.close_with})
            return
        while (await receive())["type"] != "websocket.disconnect":
            pass


def storm_policies(
    time_scale: TimeScale = STORM_SCALE, base: float = 0.5, cap: float = 30.0
) -> dict[str, PolicyFactory]:
    """The three policies compared in the lesson, from production values (seconds) scaled to the lab."""
    b, c = time_scale.seconds(base), time_scale.seconds(cap)
    return {
        "fixed": lambda i: FixedBackoff(b),
        "exponential": lambda i: ExponentialBackoff(base=b, cap=c),
        "full jitter": lambda i: FullJitterBackoff(base=b, cap=c, rng=random.Random(i)),
    }


def ensure_fd_limit(needed: int) -> int:
    """Raise this process's soft limit on open files to at least ``needed`` (up to the hard limit).

    Every client is a socket, and so is its server side: a crowd of 300 needs 600 descriptors, more
    than macOS's default soft limit of 256. Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _histogram(values: tuple[float, ...], window: float) -> list[int]:
    if not values:
        return []
    counts = [0] * (int(max(values) // window) + 1)
    for value in values:
        counts[int(value // window)] += 1
    return counts


@dataclass(frozen=True)
class StormResult:
    """One restart, seen from both sides, in production seconds.

    ``accepts``: when the server accepted each reconnect, since the stop began (what the server feels;
    on a busy machine the lab's own CPU smears it). ``waits``: for each client that came back, the sum
    of the backoff delays it chose between the 1012 and the reconnect that got in (what the policy
    asked for: exact, whatever the CPU does).
    """

    policy: str
    clients: int
    window: float
    accepts: tuple[float, ...]
    attempts: int  # connection attempts after the stop, refused ones included
    waits: tuple[float, ...] = ()

    def wait_counts(self) -> list[int]:
        """Clients per ``window`` of chosen waiting time."""
        return _histogram(self.waits, self.window)

    @property
    def wait_peak(self) -> int:
        """The most clients that chose to come back within the same window."""
        return max(self.wait_counts(), default=0)

    @property
    def came_back(self) -> int:
        """Clients accepted again within the horizon."""
        return len(self.accepts)

    def counts(self) -> list[int]:
        """Accepts per ``window``, from the stop to the last accept."""
        return _histogram(self.accepts, self.window)

    @property
    def peak(self) -> int:
        """The most accepts in one window: the burst the new server has to absorb."""
        return max(self.counts(), default=0)

    @property
    def refused(self) -> int:
        """Attempts that hit the stopped server (each one a wasted round trip)."""
        return self.attempts - len(self.accepts)


async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"storm: {what} within {timeout:g} s")
        await asyncio.sleep(0.005)


async def reconnect_storm(
    lab: Any,
    policy: str,
    factory: PolicyFactory,
    *,
    clients: int = 300,
    outage: float = 1.1,
    horizon: float = 2.5,
    window: float = 0.1,
    time_scale: TimeScale = STORM_SCALE,
    name: str = "storm",
    timeout: float = 20.0,
) -> StormResult:
    """Connect ``clients`` reconnecting clients, restart the server, count accepts per window.

    The server (an :class:`AcceptCounter` served by ``lab`` under ``name``) stops, which sends every
    client 1012; ``outage`` production seconds after it has stopped, a new one starts on the same port.
    Accepts are counted until the whole crowd is back or ``horizon`` seconds after the restart, whichever
    comes first (jitter's long tail would otherwise make the lesson wait), and reported in production
    seconds since the stop began. Durations are production seconds, run at ``time_scale``. The crowd
    has an event log of its own (thousands of state changes would drown ``lab.events``) and is closed
    before this returns.
    """
    ensure_fd_limit(2 * clients + 256)
    counter = AcceptCounter()
    server = await lab.serve(counter, name=name, access_log=False)
    crowd_events = EventLog()
    crowd = [
        ReconnectingClient(
            server.ws_url("/ws"),
            f"{name}-{i}",
            crowd_events,
            policy=factory(i),
            stable_after=time_scale.seconds(60),
        ).start()
        for i in range(clients)
    ]
    try:
        await _wait(
            lambda: all(c.state is ClientState.OPEN for c in crowd), timeout, "the crowd did not connect"
        )
        before = sum(c.attempts for c in crowd)
        port = server.port
        counter.accepted.clear()
        since = len(crowd_events)
        stopped = time.monotonic()
        await server.stop()  # returns once every client has had its 1012, so the outage is all downtime
        await asyncio.sleep(time_scale.seconds(outage))
        await lab.serve(counter, name=name, port=port, access_log=False)
        deadline = time.monotonic() + time_scale.seconds(horizon)
        await _wait(
            lambda: len(counter.accepted) >= clients or time.monotonic() > deadline,
            timeout,
            "the crowd did not come back",
        )
        accepts = tuple(
            sorted(time_scale.to_production(at - stopped) for at in counter.accepted if at <= deadline)
        )
        # a client records "open" a moment after the server accepted it: let those moments pass
        accepted = len(accepts)
        with contextlib.suppress(TimeoutError):
            await _wait(lambda: sum(c.state is ClientState.OPEN for c in crowd) >= accepted, 2.0, "")
        attempts = sum(c.attempts for c in crowd) - before
        until = len(crowd_events)
        chosen = _waits(crowd_events.select(kind="state", since=since, where=lambda e: e.seq <= until))
        waits = tuple(sorted(time_scale.to_production(w) for w in chosen))
    finally:
        # Server first: every client then sits in its backoff sleep, from which close() returns at once
        # (closing hundreds of open sockets one close handshake at a time would take longer than the storm).
        with contextlib.suppress(Exception):
            await lab.get("server", name).stop(grace=0.2)
        await asyncio.gather(*(c.close() for c in crowd), return_exceptions=True)
    return StormResult(policy, clients, window, accepts, attempts, waits)


def _waits(state_changes: list[Any]) -> list[float]:
    """Per client, the sum of the backoff delays it chose until it was open again (if it was)."""
    total: dict[str, float] = {}
    back: dict[str, float] = {}
    for event in state_changes:
        if event.source in back:
            continue
        if event.data.get("state") == ClientState.OPEN.value:
            back[event.source] = total.get(event.source, 0.0)
        else:
            total[event.source] = total.get(event.source, 0.0) + event.data.get("delay", 0.0)
    return list(back.values())


FLAP_SCALE = TimeScale(0.05)
"""The flapping demo runs 20x faster than production: two clients' attempts, not a crowd's handshakes."""


@dataclass(frozen=True)
class FlapResult:
    """Clients against a server that accepts and then drops each connection at once.

    ``delays`` holds, per client, the backoff delays it chose (production seconds), at least enough to
    cover ``duration``. They are exact for a seeded policy, so the attempts they add up to are too.
    """

    stable_after: float  # production seconds a connection must last before the schedule resets
    duration: float  # production seconds the attempts are counted over
    delays: tuple[tuple[float, ...], ...]

    @property
    def clients(self) -> int:
        return len(self.delays)

    @property
    def attempts(self) -> int:
        """Handshakes the server gets from all clients within ``duration`` (handshakes taking no time)."""
        return sum(_attempts_within(d, self.duration) for d in self.delays)


def _attempts_within(delays: tuple[float, ...], duration: float) -> int:
    attempts, elapsed = 1, 0.0  # the first connection, then one attempt after each delay
    for delay in delays:
        elapsed += delay
        if elapsed > duration:
            break
        attempts += 1
    return attempts


async def flapping_server(
    lab: Any,
    stable_after: float,
    *,
    clients: int = 2,
    duration: float = 10.0,
    base: float = 0.5,
    cap: float = 30.0,
    close_code: int = 1011,
    time_scale: TimeScale = FLAP_SCALE,
    name: str = "flapping",
    timeout: float = 20.0,
) -> FlapResult:
    """Full-jitter clients (seeded per client) against a server that closes every connection with
    ``close_code`` right after accepting it, until each client's chosen delays cover ``duration``
    production seconds.

    With ``stable_after=0`` every open counts as success and resets the schedule, so the clients keep
    retrying at the *first* attempt's short delays: a storm made by the clients themselves.
    """
    counter = AcceptCounter(close_with=close_code)
    server = await lab.serve(counter, name=name, access_log=False)
    events = EventLog()
    crowd = [
        ReconnectingClient(
            server.ws_url("/ws"),
            f"{name}-{i}",
            events,
            policy=FullJitterBackoff(
                time_scale.seconds(base), cap=time_scale.seconds(cap), rng=random.Random(i)
            ),
            stable_after=time_scale.seconds(stable_after),
        ).start()
        for i in range(clients)
    ]

    def chosen() -> list[tuple[float, ...]]:
        return [
            tuple(
                time_scale.to_production(e.data["delay"])
                for e in events.select(source=c.source, kind="state")
                if "delay" in e.data
            )
            for c in crowd
        ]

    try:
        await _wait(lambda: all(sum(d) > duration for d in chosen()), timeout, "the clients did not flap")
    finally:
        await server.stop(grace=0.2)
        await asyncio.gather(*(c.close() for c in crowd), return_exceptions=True)
    # only what was chosen while the server was flapping: after the stop, refusals follow other rules
    delays = []
    for d in chosen():
        covered = next(i for i in range(len(d) + 1) if sum(d[:i]) > duration)
        delays.append(d[:covered])
    return FlapResult(stable_after, duration, tuple(delays))
