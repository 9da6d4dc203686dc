"""Scaled time: production durations mapped to lab durations with one knob.

Real WebSocket timeouts are long (a 20 s ping interval, nginx's 60 s ``proxy_read_timeout``). A lesson that
waited for them would take minutes, so every duration in the course goes through one :class:`TimeScale`:
``lab.seconds(30)`` is 0.3 s at the default scale of 1/100. Keeping the production number in the source
(``lab.seconds(30)`` rather than ``0.3``) keeps the lesson honest about what it models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_SCALE", "TimeScale", "format_duration"]

DEFAULT_SCALE = 0.01
"""Notebook default: 1/100, so a 30 s production timeout takes 0.3 s."""


def format_duration(seconds: float) -> str:
    """Format a duration for people: ``0.3 s``, ``45 ms``, ``2 min``; stable enough for stored outputs."""
    if seconds < 0:
        raise ValueError(f"durations are not negative, got {seconds!r}")
    if seconds == 0:
        return "0 s"
    if seconds < 0.1:
        ms = seconds * 1000
        if ms >= 100 or ms == int(ms):
            return f"{ms:.0f} ms"
        return f"{_trim(ms, 3)} ms"
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{_trim(seconds, 3)} s"


def _trim(value: float, significant: int) -> str:
    """Round to a few significant digits and drop trailing zeros (0.30000000000000004 -> 0.3)."""
    digits = max(significant - 1 - math.floor(math.log10(abs(value))), 0)
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class TimeScale:
    """Maps production seconds to lab seconds.

    ``factor`` is lab time per production second (0.01 means 100x faster). Scaling is linear on purpose:
    the ratios between timeouts (ping interval vs proxy idle timeout, backoff cap vs base) are what the
    lessons are about, and a linear map keeps every ratio intact.
    """

    factor: float = DEFAULT_SCALE

    def __post_init__(self) -> None:
        if not (0 < self.factor <= 1):
            raise ValueError(f"a time scale factor is in (0, 1], got {self.factor!r}")

    def seconds(self, production_seconds: float) -> float:
        """Lab duration for ``production_seconds``: what to pass to timeouts, sleeps and intervals."""
        if production_seconds < 0:
            raise ValueError(f"durations are not negative, got {production_seconds!r}")
        return production_seconds * self.factor

    def to_production(self, lab_seconds: float) -> float:
        """The production duration a measured lab duration stands for (to report measurements)."""
        return lab_seconds / self.factor

    def explain(self, production_seconds: float) -> str:
        """``"30 s in production → 0.3 s here"``: say both numbers wherever a scaled value is shown."""
        here = format_duration(self.seconds(production_seconds))
        return f"{format_duration(production_seconds)} in production → {here} here"

    def __str__(self) -> str:
        speedup = 1 / self.factor
        shown = f"{speedup:.0f}" if abs(speedup - round(speedup)) < 1e-9 else f"{speedup:.3g}"
        return f"time runs {shown}x faster here than in production (1 s → {format_duration(self.factor)})"
