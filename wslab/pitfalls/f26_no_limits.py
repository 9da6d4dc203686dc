"""F26/F27, no limits: any message size, any rate, and one client can make every other one pay.

The chat every tutorial writes has no limit of its own: it reads whatever arrives and fans it out.
Then a user uploads a picture as base64, gets ``1009 (message too big)`` from the server's default
limit (16 MiB in uvicorn, 1 MiB in websockets), and the "fix" that ends the complaints is to raise
that limit as well (``--ws-max-size 1073741824``). From then on:

* **size** (F26): a 100 MB message is read whole into memory, decoded, validated and fanned out to
  every member of the room, each copy queued for its own socket; the event loop spends that time
  on one client while everybody else waits;
* **rate** (F27): a client that sends thousands of messages a second is served as fast as the
  process can go, and every member of its room receives every one of them.

This module is the reference app (:func:`wslab.chat.create_app`) with exactly those limits off: the
app's ``max_message_bytes``, ``rate`` and ``burst`` set to :data:`NO_LIMIT`, and
:data:`UVICORN_OPTIONS` for the server (``ws_max_size`` raised to 1 GiB). Everything else (auth,
rooms, bounded outbound queues) is the reference, so a lesson compares limits and nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import FastAPI

from wslab.chat import create_app as create_reference_app
from wslab.chat.rooms import Report, no_report
from wslab.chat.settings import ChatSettings

__all__ = ["NO_LIMIT", "UVICORN_OPTIONS", "create_app", "without_limits"]

NO_LIMIT = 2**62
"""Large enough never to be reached: messages, bytes and messages per second."""

UVICORN_OPTIONS: dict[str, Any] = {"ws_max_size": 2**30}
"""What ``lab.serve(app, **UVICORN_OPTIONS)`` passes to uvicorn: the size limit raised "so the 1009s stop"."""


def without_limits(settings: ChatSettings) -> ChatSettings:
    """``settings`` with the app's own size and rate limits switched off (THE PITFALL)."""
    return dataclasses.replace(settings, max_message_bytes=NO_LIMIT, rate=float(NO_LIMIT), burst=NO_LIMIT)


def create_app(settings: ChatSettings | None = None, report: Report = no_report) -> FastAPI:
    """The reference chat with no message size or rate limit; serve it with :data:`UVICORN_OPTIONS`."""
    settings = settings if settings is not None else ChatSettings()
    return create_reference_app(without_limits(settings), report=report)
