"""EventLog: where background work reports what happened, so cells can show it and assert on it.

Servers, proxies and clients run as background tasks (or threads, or processes). Anything they print would
land in whichever cell happens to be running, or nowhere under nbval, so they never print: they append an
:class:`Event` here. A cell then *asks* the log (``lab.events.select(kind="closed")``) and shows a
deterministic table: events in order, numbered by position, with ports, pids and temp paths replaced by
names. Wall-clock times are kept for measurements but never displayed raw.
"""

from __future__ import annotations

import asyncio
import html
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "EventLog", "Table"]

_PORT_RE = re.compile(r"\b(127\.0\.0\.1|localhost|\[::1\]):\d{2,5}\b")
_PID_RE = re.compile(r"(process \[|pid[ =:]+)\d+")
_TMP_RE = re.compile(r"/tmp/[\w.\-/]+")
_HEXADDR_RE = re.compile(r"0x[0-9a-f]{6,}")


@dataclass(frozen=True)
class Event:
    """One thing that happened. ``at`` is seconds since the log was created (for measurements only)."""

    seq: int
    at: float
    source: str
    kind: str
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def matches(
        self, source: str | None = None, kind: str | None = None, contains: str | None = None
    ) -> bool:
        """True when every given filter matches; ``source`` may end in ``*`` to match a prefix."""
        if source is not None:
            if source.endswith("*"):
                if not self.source.startswith(source[:-1]):
                    return False
            elif self.source != source:
                return False
        if kind is not None and self.kind != kind:
            return False
        return contains is None or contains in self.message


class EventLog:
    """A thread-safe, append-only log of :class:`Event` values with query helpers for assertions.

    Thread-safe because the thread and subprocess variants of a server report from other threads.
    """

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._aliases: dict[str, str] = {}

    # -- writing ---------------------------------------------------------------------------------
    def record(self, source: str, kind: str, message: str = "", **data: Any) -> Event:
        """Append an event and return it. Safe to call from any thread; never prints."""
        with self._lock:
            event = Event(len(self._events) + 1, time.monotonic() - self._t0, source, kind, message, data)
            self._events.append(event)
        return event

    def alias(self, raw: str, name: str) -> None:
        """Show ``raw`` (e.g. ``127.0.0.1:53817``) as ``name`` (e.g. ``alice``) in every table.

        Registered by the lab for the addresses it hands out, so tables read as names and stay the same
        from run to run although ports change.
        """
        with self._lock:
            self._aliases[raw] = name

    def clear(self) -> None:
        """Forget every event (aliases stay): for a fresh table in the next step of a lesson."""
        with self._lock:
            self._events.clear()

    # -- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.snapshot())

    def snapshot(self) -> list[Event]:
        """A copy of the events so far, safe to iterate while background work keeps recording."""
        with self._lock:
            return list(self._events)

    def mark(self) -> int:
        """The current position; pass it as ``since=`` to look only at what happens afterwards."""
        with self._lock:
            return self._events[-1].seq if self._events else 0

    def select(
        self,
        source: str | None = None,
        kind: str | None = None,
        contains: str | None = None,
        since: int = 0,
        where: Callable[[Event], bool] | None = None,
    ) -> list[Event]:
        """Events matching every given filter, oldest first."""
        return [
            e
            for e in self.snapshot()
            if e.seq > since and e.matches(source, kind, contains) and (where is None or where(e))
        ]

    def count(self, **filters: Any) -> int:
        """How many events match (same filters as :meth:`select`)."""
        return len(self.select(**filters))

    def last(self, **filters: Any) -> Event | None:
        """The newest matching event, or None."""
        found = self.select(**filters)
        return found[-1] if found else None

    async def wait_for(self, timeout: float = 2.0, **filters: Any) -> Event:
        """Wait until an event matching ``filters`` exists (recorded after ``since=``) and return it.

        Polls every few milliseconds rather than using a condition variable, because events also arrive
        from other threads and processes. Raises ``TimeoutError`` naming the filters, so a lesson that
        breaks fails with a message instead of hanging.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.select(**filters)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                shown = ", ".join(f"{k}={v!r}" for k, v in filters.items())
                raise TimeoutError(f"no event matching {shown} within {timeout:g} s")
            await asyncio.sleep(0.005)

    # -- display ---------------------------------------------------------------------------------
    def sanitize(self, text: str) -> str:
        """Replace what changes from run to run (ports, pids, temp paths) by stable names."""
        with self._lock:
            aliases = sorted(self._aliases.items(), key=lambda kv: -len(kv[0]))
        for raw, name in aliases:
            text = text.replace(raw, name)
        text = _PORT_RE.sub(r"\1:<port>", text)
        text = _PID_RE.sub(r"\1<pid>", text)
        text = _TMP_RE.sub("<tmp>", text)
        return _HEXADDR_RE.sub("0x…", text)

    def table(
        self,
        source: str | None = None,
        kind: str | None = None,
        contains: str | None = None,
        since: int = 0,
        where: Callable[[Event], bool] | None = None,
        limit: int | None = None,
    ) -> Table:
        """A deterministic table of matching events: position, source, kind, message (sanitized)."""
        events = self.select(source=source, kind=kind, contains=contains, since=since, where=where)
        rows = [(str(i), e.source, e.kind, self.sanitize(e.message)) for i, e in enumerate(events, 1)]
        hidden = 0
        if limit is not None and len(rows) > limit:
            hidden, rows = len(rows) - limit, rows[:limit]
        return Table(["#", "source", "kind", "message"], rows, footer=f"… {hidden} more" if hidden else "")


class Table:
    """A small table that renders the same as plain text and as HTML, for cells and for nbval.

    Used for event logs, frame taps and transcripts: one renderer so every table in the course looks alike.
    """

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], footer: str = "") -> None:
        self.columns = list(columns)
        self.rows = [tuple("" if v is None else str(v) for v in row) for row in rows]
        self.footer = footer

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        """Every value of one column, for assertions on what the table shows."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def __repr__(self) -> str:
        if not self.rows:
            return "(no rows)"
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in self.rows]
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td style='text-align:left'><code>{html.escape(v)}</code></td>" for v in r)
            + "</tr>"
            for r in self.rows
        )
        foot = f"<p>{html.escape(self.footer)}</p>" if self.footer else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}"
