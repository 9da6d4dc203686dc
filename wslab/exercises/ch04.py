"""Chapter 04, heartbeats: choose a ping interval and a pong timeout for the network a server sits behind.

Three numbers describe that network: the idle timeout of the proxy in front of the server (nginx's
``proxy_read_timeout``, a load balancer's idle limit), the worst round trip a *legitimate* client can
take to answer (a phone in a tunnel, a busy tab), and how soon the product needs a vanished client
noticed (its presence dot going grey). Each rule the answer must keep comes from one failure of the
catalogue: an interval at or above the idle timeout lets the proxy cut quiet connections (F21); a
timeout at or below the worst latency closes busy but alive clients with 1011 (F04); an interval plus
timeout beyond the deadline leaves half-open peers counted as online (F02); and pings every few
milliseconds cost every connection traffic for nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article

MIN_INTERVAL = 1.0
"""Seconds: below this, heartbeats are pure overhead (100 000 sockets × 10 pings/s: a million messages/s)."""


@dataclass(frozen=True)
class Scenario:
    """One deployment: the proxy's idle timeout, the worst legitimate round trip, the detection deadline."""

    what: str
    idle_timeout: float
    worst_latency: float
    detect_within: float


SCENARIOS = (
    Scenario("nginx with its default proxy_read_timeout", 60.0, 5.0, 60.0),
    Scenario("an internal load balancer with a short idle limit", 10.0, 2.0, 15.0),
    Scenario("an AWS ALB in front of mobile clients on slow networks", 60.0, 30.0, 75.0),
    Scenario("Cloudflare, with a relaxed presence deadline", 100.0, 10.0, 90.0),
    # The deadline decides here: half the idle timeout plus the pong timeout is far too late.
    Scenario("nginx, with a presence dot that must go grey within 20 s", 60.0, 5.0, 20.0),
    Scenario("a trading desk on a LAN: fast clients, a dead peer noticed within 3 s", 30.0, 0.5, 3.0),
)


def _verdict(scenario: Scenario, interval: float, timeout: float) -> str | None:
    """Why ``(interval, timeout)`` fails ``scenario`` (the reason, without the answer), or None."""
    s = scenario
    if interval >= s.idle_timeout:
        return (
            f"with a {interval:g} s interval the connection is silent for {interval:g} s between heartbeats, "
            f"and the proxy's idle timeout ({s.idle_timeout:g} s) cuts it first: the client sees 1006"
        )
    if interval < MIN_INTERVAL:
        return (
            f"a {interval:g} s interval pings too often: every connection pays for every ping, so stay at "
            f"or above {MIN_INTERVAL:g} s"
        )
    if timeout <= s.worst_latency:
        return (
            f"a {timeout:g} s pong timeout is not above the worst-case latency ({s.worst_latency:g} s): "
            "busy but alive clients get closed with 1011"
        )
    if interval + timeout > s.detect_within:
        return (
            f"a dead peer is noticed only about interval + timeout = {interval + timeout:g} s after it "
            f"vanished, later than the {s.detect_within:g} s allowed"
        )
    return None


def _reference(s: Scenario) -> tuple[float, float]:
    timeout = 1.5 * s.worst_latency
    return min(s.idle_timeout / 2, s.detect_within - timeout), timeout


assert all(_verdict(s, *_reference(s)) is None for s in SCENARIOS)


class HeartbeatSettings(Exercise):
    """q1: ``heartbeat_settings(idle_timeout, worst_latency, detect_within) -> (interval, timeout)``."""

    name = "Choose a heartbeat interval and timeout"
    reads = ("heartbeat_settings",)
    placeholder = """
def heartbeat_settings(idle_timeout: float, worst_latency: float, detect_within: float) -> tuple:
    ...  # your code here: return (ping interval, pong timeout), in seconds
"""
    hints = (
        "Each number constrains one setting. The proxy's idle timeout bounds how long the connection may "
        "stay silent; the worst-case latency bounds how soon you may give up waiting for a pong; the "
        "deadline bounds how long a dead peer may go unnoticed.",
        "Pick the pong timeout first, with a margin above `worst_latency` (say half as much again). Then "
        "pick an interval well below `idle_timeout` that still leaves `interval + timeout` within "
        "`detect_within`.",
        "`timeout = 1.5 * worst_latency`; the interval is the smaller of half the idle timeout and what "
        "the deadline leaves once the timeout is taken out of it.",
    )
    solution_code = """
def heartbeat_settings(idle_timeout: float, worst_latency: float, detect_within: float) -> tuple:
    timeout = 1.5 * worst_latency  # above the slowest legitimate pong, with a margin (F04)
    # traffic well within the proxy's idle timeout (F21), a dead peer noticed in time (F02)
    interval = min(idle_timeout / 2, detect_within - timeout)
    return interval, timeout
"""
    wrong_answers = (
        WrongAnswer(
            "uvicorn's defaults everywhere",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    return 20.0, 20.0
""",
            "idle timeout",
        ),
        WrongAnswer(
            "the interval equal to the idle timeout",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    return idle_timeout, 2 * worst_latency
""",
            "idle timeout",
        ),
        WrongAnswer(
            "a timeout equal to the worst latency",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    return idle_timeout / 4, worst_latency
""",
            "worst-case latency",
        ),
        WrongAnswer(
            "a generous timeout that never notices a dead peer in time",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    return idle_timeout / 2, 60 * worst_latency
""",
            "dead peer",
        ),
        WrongAnswer(
            "pinging all the time",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    return 0.05, 2 * worst_latency
""",
            "too often",
        ),
        WrongAnswer(
            "ignores detect_within",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    return idle_timeout / 2, 1.5 * worst_latency
""",
            "later than the 20 s allowed",
        ),
        WrongAnswer(
            "the deadline as the interval, forgetting the timeout",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    timeout = 1.5 * worst_latency
    return min(idle_timeout / 2, detect_within), timeout
""",
            "dead peer is noticed only",
        ),
        WrongAnswer(
            "ignores the idle timeout",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    timeout = 1.5 * worst_latency
    return detect_within - timeout, timeout
""",
            "idle timeout",
        ),
        WrongAnswer(
            "ignores the worst latency",
            """
def heartbeat_settings(idle_timeout, worst_latency, detect_within):
    timeout = detect_within / 4
    return min(idle_timeout / 2, detect_within - timeout), timeout
""",
            "worst-case latency",
        ),
    )
    secrets = ("min(idle_timeout / 2, detect_within - timeout)",)
    correct_message = (
        f"`heartbeat_settings` keeps all {len(SCENARIOS)} deployments alive and honest: traffic within every "
        "idle timeout, no alive client closed for being slow, every dead peer noticed in time."
    )

    def _check(self, heartbeat_settings: Callable[[float, float, float], object]) -> None:
        for s in SCENARIOS:
            args = (s.idle_timeout, s.worst_latency, s.detect_within)
            got = self.call(heartbeat_settings, *args)
            call = f"{self._name_of(heartbeat_settings)}{args!r}"
            if got is None:
                raise Incorrect(f"`{call}` returned None: did you forget `return`?")
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Incorrect(
                    f"`{call}` returned {article(type(got).__name__)}; it should return a pair "
                    "`(interval, timeout)` in seconds."
                )
            interval, timeout = got
            for label, value in (("interval", interval), ("timeout", timeout)):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise Incorrect(
                        f"`{call}` gave {article(type(value).__name__)} as the {label}; use seconds."
                    )
                if not math.isfinite(value) or value <= 0:
                    raise Incorrect(
                        f"`{call}` gave {value!r} as the {label}: it must be a positive number of seconds "
                        "(uvicorn's `None` switches heartbeats off, which is the failure this chapter shows)."
                    )
            reason = _verdict(s, float(interval), float(timeout))
            if reason is not None:
                raise Incorrect(
                    f"For {s.what}, `{call}` returned `({interval:g}, {timeout:g})`, but {reason}."
                )


from wslab.exercises.build_ch04 import BuildHeartbeat  # noqa: E402  (the build track: served for real)

CHAPTER = Chapter("04", "04_heartbeats", (HeartbeatSettings, BuildHeartbeat))
