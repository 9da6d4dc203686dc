"""Keep what any client can trigger out of the server's error channel.

uvicorn's WebSocket protocol logs a text frame that is not UTF-8 with ``logger.exception``: an ERROR and
a traceback per frame, although the client is closed with 1007 as it should be and the server is fine.
Any client can send such frames as fast as it can reconnect, and fill the channel an operator watches
for real errors (and pages on). :class:`ClientFaultFilter` turns those records into one INFO line
without the traceback; installed on ``uvicorn.error`` by :func:`install`, once, from ``create_app``.
"""

from __future__ import annotations

import logging

CLIENT_FAULTS = ("Invalid UTF-8 sequence received from client",)
"""Messages uvicorn logs as errors that are the client's doing, not the server's."""


class ClientFaultFilter(logging.Filter):
    """Downgrade a client's fault from ERROR-with-traceback to one INFO line (never drops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(CLIENT_FAULTS):
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                record.msg = f"{record.msg} ({type(exc).__name__}), closed 1007"
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def install(logger_name: str = "uvicorn.error") -> None:
    """Add the filter to ``logger_name`` unless it is there already (idempotent: every app calls it)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, ClientFaultFilter) for f in logger.filters):
        logger.addFilter(ClientFaultFilter())
