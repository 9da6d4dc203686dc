"""ChatSettings: every limit and deadline of the chat app, in one frozen value.

Durations are real seconds. The app knows nothing about the lab's time scale: a lesson passes
``auth_timeout=lab.seconds(5)`` and says "5 s in production", so the app stays production code.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENV_PREFIX", "ChatSettings", "settings_from_env"]


@dataclass(frozen=True)
class ChatSettings:
    """Limits and deadlines of one chat app; the defaults are sensible production values.

    Origins (catalogue F25). The Origin header is what a *browser* says about the page that opened the
    socket; it protects users from other web sites, it is not authentication (any other client can
    forge it). So:

    * a request **without** an Origin header (a script, a CLI, a test client) is allowed when
      ``allow_missing_origin`` (the default): it cannot be a cross-site page in a victim's browser;
    * a request whose Origin is in ``allowed_origins`` (exact ``scheme://host[:port]`` strings) is
      allowed;
    * with ``allow_same_origin`` (the default), an Origin naming the very host and port the request
      was sent to (the page served by this app) is allowed, so the chat page works on any port;
    * anything else is refused *before* the handshake completes: the client gets HTTP 403.
    """

    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    """HS256 key for the tokens; random per app unless given (tests and multi-process setups share one)."""
    allowed_origins: frozenset[str] = frozenset()
    allow_same_origin: bool = True
    allow_missing_origin: bool = True
    handshake_timeout: float = 10.0
    """Seconds a new TCP connection may take to send a complete request head (the WebSocket handshake)
    before it is closed; uvicorn has no such deadline, so a silent connection would hold a socket and a
    file descriptor forever (applied where wslab runs uvicorn: :meth:`uvicorn_options`)."""
    auth_timeout: float = 5.0
    """Seconds a new socket may take to send its ``auth`` message (F24/F29) before it is closed 4001."""
    token_ttl: float = 15 * 60.0
    """Lifetime of tokens the app hands out (``issue_token(user, secret, token_ttl)``); an open socket
    closes 4002 when its token ends, unless the client sent ``reauth`` first (F28)."""
    max_message_bytes: int = 4096
    """Largest accepted text message, in UTF-8 bytes; larger ones close the socket with 1009 (F26)."""
    rate: float = 10.0
    """Sustained messages per second per connection (F27)."""
    burst: int = 20
    """Messages a connection may send at once before ``rate`` applies."""
    queue_size: int = 64
    """Outbound messages a connection may have waiting before it counts as behind (F06/F07). A member
    over it is evicted 4009 once its backlog made no progress for ``backlog_timeout`` seconds, or at
    once when the backlog reaches twice ``queue_size`` (the hard bound on memory per connection)."""
    backlog_timeout: float = 2.0
    """Seconds a member may stay over ``queue_size`` without its socket taking a single message before it
    is evicted 4009. A reader that keeps up drains its queue within one loop turn; this is what tells
    a burst (many members talking at once) from a peer that stopped reading."""
    dedup_window: int = 10_000
    """Message ids (``say`` with ``msg_id``) this process remembers to recognise a retry (oldest
    forgotten first): the bound on de-duplication memory, under 2 MB. A retry must come back within it
    (10 000 covers 10 messages/s for over 15 minutes); see :mod:`wslab.chat.dedup`."""
    max_connections_per_user: int = 8
    """Open connections one user may hold in this process (all rooms); one more is closed 4008. The
    message rate (``rate``, ``burst``) is also per user: every connection of a user draws on one bucket."""
    heartbeat_interval: float | None = None
    """Seconds between application pings (``{"type": "ping"}``); None turns them off. Unlike protocol
    pings (uvicorn's ``ws_ping_interval``) these reach the page's JavaScript, which browsers do not let
    send or see protocol pings, so both ends can detect a dead connection (F02, F21)."""
    heartbeat_timeout: float | None = None
    """Seconds a client may take to answer a ping with ``pong`` before it is closed 1011; None means
    ``heartbeat_interval``. Too tight a value closes busy but alive clients (F04)."""
    close_timeout: float = 5.0
    """Seconds the server waits for its close frame to get out to a peer that stopped reading."""
    backend: str = "memory"
    """Room fan-out: ``"memory"`` (one process), ``"pubsub"`` (Redis pub/sub, at-most-once) or
    ``"streams"`` (Redis Streams: offsets, resume, epoch); see :mod:`wslab.chat.fanout` (F11-F14, F18)."""
    redis_url: str | None = None
    """The Redis every replica shares; required by the ``pubsub`` and ``streams`` backends."""
    stream_maxlen: int = 1000
    """History kept per room by the ``streams`` backend (``XADD ... MAXLEN ~ n``); older offsets resync."""
    redis_timeout: float = 2.0
    """Seconds without an answer from Redis after which the fan-out counts a connection as dead: a
    command fails (counted), the listener reconnects and members get ``resync``. The pub/sub listener
    PINGs after half of it in silence, so a half-open connection to Redis cannot leave it deaf (F13)."""
    presence_ttl: float = 30.0
    """With a Redis backend, how long a member stays listed in its room after its replica stopped
    refreshing it (a crash); see :mod:`wslab.chat.presence`."""

    def __post_init__(self) -> None:
        if isinstance(self.allowed_origins, (list, tuple, set)):
            object.__setattr__(self, "allowed_origins", frozenset(self.allowed_origins))
        for name in FLOAT_FIELDS:  # nan passes every comparison, inf never expires: refuse both
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
                raise ValueError(f"ChatSettings.{name} must be a finite number, got {value!r}")
        for name in ("heartbeat_interval", "heartbeat_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"ChatSettings.{name} must be positive or None, got {value!r}")
        for name in (
            "handshake_timeout",
            "auth_timeout",
            "token_ttl",
            "rate",
            "close_timeout",
            "redis_timeout",
            "presence_ttl",
            "backlog_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ChatSettings.{name} must be positive, got {getattr(self, name)!r}")
        if self.presence_ttl < 3 * self.redis_timeout:
            raise ValueError(
                f"ChatSettings.presence_ttl ({self.presence_ttl:g}) must be at least 3 x redis_timeout "
                f"({self.redis_timeout:g}): entries are refreshed every presence_ttl / 3"
            )
        for name in ("max_message_bytes", "burst", "queue_size", "max_connections_per_user", "dedup_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"ChatSettings.{name} must be at least 1, got {getattr(self, name)!r}")

    def uvicorn_options(self) -> dict[str, Any]:
        """The uvicorn options that must agree with these limits; every way wslab runs the chat uses them.

        ``ws_max_size``: uvicorn buffers a whole message before the app sees it, up to 16 MiB by default;
        the protocol allows ``max_message_bytes``, so the transport refuses anything more than a little
        above it (a message between the two still gets the app's own 1009 with a reason).
        ``ws_per_message_deflate`` off, deliberately: chat messages are small, every compressed
        connection keeps two zlib contexts (tens of KB), and a compressed frame can announce little and
        inflate to ``ws_max_size`` (a compression bomb costs the server, not the client).
        The protocol classes (``http``, ``ws``) add what uvicorn does not bound: a deadline for the request
        head (``handshake_timeout``), control frames counted against ``rate``/``burst``, and an abort of a
        peer that has not gone ``close_timeout`` after the app closed it (:mod:`wslab.chat.transport`).
        """
        from wslab.chat.transport import protocol_classes  # imports uvicorn: only when a server is made

        return {
            "ws_max_size": self.max_message_bytes + 1024,
            "ws_per_message_deflate": False,
            **protocol_classes(
                rate=self.rate,
                burst=self.burst,
                close_timeout=self.close_timeout,
                handshake_timeout=self.handshake_timeout,
            ),
        }


FLOAT_FIELDS = (
    "handshake_timeout",
    "auth_timeout",
    "token_ttl",
    "rate",
    "heartbeat_interval",
    "heartbeat_timeout",
    "close_timeout",
    "redis_timeout",
    "presence_ttl",
    "backlog_timeout",
)
"""The fields that are durations or rates: each must be finite (checked in ``__post_init__``)."""

ENV_PREFIX = "WSLAB_CHAT_"


def settings_from_env(env: Mapping[str, str]) -> ChatSettings:
    """ChatSettings from environment variables: how a replica process is configured (twelve-factor).

    Every field can be set as ``WSLAB_CHAT_<FIELD>`` (``WSLAB_CHAT_BACKEND=pubsub``,
    ``WSLAB_CHAT_HEARTBEAT_INTERVAL=30``, ``WSLAB_CHAT_RATE=5``); ``redis_url`` also as the usual
    ``REDIS_URL`` (setting both to different values is an error). Numbers are finite decimals, booleans
    ``true``/``false`` (or ``1``/``0``, ``yes``/``no``, ``on``/``off``), origins a comma-separated list;
    an empty value means None for the optional fields and is an error for the others.
    Why one rule for all fields: a replica must be configurable as fully as an in-process app, or lessons
    about limits and heartbeats could not be repeated on a cluster. Every error, whether a value that does
    not parse, one out of range, or a ``WSLAB_CHAT_`` variable naming no field, is a ValueError naming
    the variable: a typo in a deployment must stop the replica, not leave a limit silently at its default.
    """
    hints = typing.get_type_hints(ChatSettings)
    names = {f.name for f in dataclasses.fields(ChatSettings)}
    values: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in names:
            known = ", ".join(sorted(names))
            raise ValueError(f"{key}: ChatSettings has no field {name!r} (fields: {known})")
        try:
            values[name] = _parse(hints[name], raw.strip())
        except ValueError as exc:
            raise ValueError(f"{key}={raw!r}: {exc}") from None
    if env.get("REDIS_URL"):
        if values.get("redis_url", env["REDIS_URL"]) != env["REDIS_URL"]:
            raise ValueError("REDIS_URL and WSLAB_CHAT_REDIS_URL name different Redis servers; set one")
        values["redis_url"] = env["REDIS_URL"]
    try:
        return ChatSettings(**values)
    except ValueError as exc:  # a range check in __post_init__: say which variable it came from
        given = [f"{ENV_PREFIX}{name.upper()}" for name in values if f"ChatSettings.{name} " in str(exc)]
        raise ValueError(f"{', '.join(given)}: {exc}" if given else str(exc)) from None


def _parse(hint: Any, raw: str) -> Any:
    """One environment string as a value of the field's type; ValueError says what was expected."""
    if hint == float | None or hint == int | None:
        if raw.lower() in ("", "none", "off"):
            return None
        hint = typing.get_args(hint)[0]
    if hint is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if hint is int or hint is float:
        expected = "an integer" if hint is int else "a finite number"
        try:
            value = hint(raw)
        except ValueError:
            raise ValueError(f"expected {expected}") from None
        if not math.isfinite(value):
            raise ValueError(f"expected {expected}")  # nan would pass every range check
        return value
    if hint == frozenset[str]:
        return frozenset(part.strip() for part in raw.split(",") if part.strip())
    if hint == str | None:
        return raw or None
    if hint is str:
        return raw
    raise TypeError(f"settings_from_env cannot parse a {hint!r} field yet; teach _parse its type")
