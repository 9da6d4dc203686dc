"""A token bucket: the per-connection message rate limit (catalogue F27).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each message takes
one. A client may send a short burst (a paste, a reconnect catching up) but not sustain more than
``rate`` messages a second. The clock is a parameter so that a test can drive time by hand instead of
sleeping, and so that a lesson can show the arithmetic step by step.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``take()`` is True while the caller is within ``rate`` per second with bursts up to ``burst``.

    >>> now = [0.0]
    >>> bucket = TokenBucket(rate=1, burst=2, clock=lambda: now[0])
    >>> [bucket.take() for _ in range(3)]
    [True, True, False]
    >>> now[0] = 1.0
    >>> bucket.take()
    True
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)  # a new connection may burst at once
        self._last = clock()

    def _refill(self) -> None:
        now = self.clock()
        # max() guards against a clock that steps back: never remove tokens because of it.
        self.tokens = min(self.burst, self.tokens + max(now - self._last, 0.0) * self.rate)
        self._last = now

    def take(self, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` if there are enough; False (and nothing spent) if the caller is too fast."""
        self._refill()
        if self.tokens >= tokens:
            self.tokens -= tokens
            return True
        return False


class UserLimits:
    """Per-user limits of one process: how many connections a user holds, and one bucket they share.

    Why per user and not only per connection: a limit per connection is multiplied by every socket a
    client opens, and one token opens as many as it likes. Every connection of a user draws on the
    same bucket, so five sockets may together send what one may. The bucket is dropped when the user's
    last connection closes (a reconnect starts full, as a new connection always did); what a user
    cannot do is multiply its rate by holding more sockets at once.
    """

    def __init__(self) -> None:
        self.connections: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def connect(self, user: str, maximum: int) -> bool:
        """Count one more connection of ``user``; False (nothing counted) if it already has ``maximum``."""
        held = self.connections.get(user, 0)
        if held >= maximum:
            return False
        self.connections[user] = held + 1
        return True

    def disconnect(self, user: str) -> None:
        """One connection of ``user`` ended (call once per successful :meth:`connect`)."""
        held = self.connections.get(user, 0) - 1
        if held > 0:
            self.connections[user] = held
        else:
            self.connections.pop(user, None)
            self._buckets.pop(user, None)

    def bucket(self, user: str, rate: float, burst: float) -> TokenBucket:
        """The bucket every connection of ``user`` takes its messages from."""
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = TokenBucket(rate, burst)
        return bucket
