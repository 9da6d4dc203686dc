"""The Server-Sent Events wire format, both directions and sans I/O: what the server writes, what a client
parses.

:func:`format_sse` is the server's half (one :class:`~wslab.feed.hub.FeedEvent` as ``id:``/``data:``
lines), :class:`SSEParser` the client's (the WHATWG event-stream rules, fed text, giving
:class:`SSEEvent` values and the ``retry`` hint). Keeping both here, apart from any socket, is what lets
a test check the format byte for byte and lets :mod:`wslab.feed.app` and :mod:`wslab.feed.clients`
agree on it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wslab.feed.hub import FeedEvent, dumps

__all__ = ["SSEEvent", "SSEParser", "format_sse"]


def format_sse(event: FeedEvent) -> str:
    """One event in the event-stream format: ``id:`` and ``data:`` lines, then a blank line."""
    return f"id: {event.id}\ndata: {dumps(event.data)}\n\n"


@dataclass
class SSEEvent:
    """One dispatched event of an event stream (``id`` is the last event id seen, as EventSource keeps)."""

    data: str
    id: str | None = None
    event: str = "message"


@dataclass
class SSEParser:
    """The event-stream format (WHATWG HTML §9.2), sans I/O: feed bytes, get events and ``retry`` values.

    Lines end in LF, CRLF or CR; ``field: value`` (one optional space dropped); a line starting with ``:``
    is a comment; a blank line dispatches the event. ``retry`` (milliseconds, digits only) is kept in
    :attr:`retry_ms`; ``id`` persists across events like EventSource's "last event ID".
    """

    last_event_id: str | None = None
    retry_ms: int | None = None
    max_line: int = 1 << 16
    _buffer: str = ""
    _data: list[str] = field(default_factory=list)
    _event: str = ""

    def feed(self, text: str) -> list[SSEEvent]:
        self._buffer += text
        out: list[SSEEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                if len(self._buffer) > self.max_line:
                    raise ValueError("event-stream line too long")
                return out
            line, end = cut
            self._buffer = self._buffer[end:]
            event = self._line(line)
            if event is not None:
                out.append(event)

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), self.last_event_id, self._event or "message")
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "event":
            self._event = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def _line_end(buffer: str) -> tuple[str, int] | None:
    for i, ch in enumerate(buffer):
        if ch == "\n":
            return buffer[:i], i + 1
        if ch == "\r":
            if i + 1 == len(buffer):
                return None  # a CR at the end may be the first half of a CRLF
            return buffer[:i], i + 2 if buffer[i + 1] == "\n" else i + 1
    return None
