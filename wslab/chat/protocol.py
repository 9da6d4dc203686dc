"""The chat protocol: every message either side may send, in one place.

Frames are UTF-8 **text** frames holding one JSON object with a ``type``. A binary frame is a
protocol error: the server closes with 1003 (UNSUPPORTED_DATA, catalogue F32).

Client → server

=========  ===================================  ================================================
type       fields                               meaning
=========  ===================================  ================================================
auth       token: str, last_seq: int|None=None  must be the first message, within auth_timeout;
           last_id: str|None=None               ``last_id`` + ``epoch`` (from the last message you
           epoch: str|None=None                 got) resume a room on the ``streams`` backend
say        text: str, exclude_self: bool=False  broadcast to the room (optionally not to oneself);
           msg_id: str|None=None                with ``msg_id``, the server answers ``ack`` and
                                                drops a repeat of an id it has seen (a retry)
dm         to: str, text: str                   direct message to a user in the same room
reauth     token: str                           a fresh token for the same user: extends expiry
pong       (none)                               answer to the server's ``ping``
=========  ===================================  ================================================

Server → client (every one carries ``seq``, the room's sequence number: strictly increasing in
what one client receives, with gaps where a message went to someone else)

=========  ===================================  ================================================
type       fields                               meaning
=========  ===================================  ================================================
ready      user, room, members: list[str]       authenticated and joined; members includes you
joined     user                                 someone else joined the room
left       user                                 someone else left (or was evicted)
message    from, text                           a ``say`` from ``from``
dm         from, text                           a direct message to you
error      reason, detail                       your last message was refused; the socket stays open
reauthed   expires_in: float                    the new token is accepted; seconds it has left
ack        msg_id, duplicate: bool              your ``say`` with this ``msg_id`` is in the room
                                                (``duplicate``: it already was; this was a retry)
resync     reason, epoch: str|None              history is discontinuous: what you missed cannot
                                                be replayed; reload the room's state, then go on
=========  ===================================  ================================================

Where ``seq`` comes from depends on the fan-out backend (``ChatSettings.backend``):

* ``memory`` (one process): the room's local counter, as above.
* ``pubsub``: a per-room Redis ``INCR``, done in the same Lua call as the ``PUBLISH`` so the order of
  ``seq`` is the order of delivery in every process (cost: one script call per message on the single
  Redis thread, instead of a bare PUBLISH). A gap in ``seq`` is a message this client missed; pub/sub is
  at-most-once and the server says ``resync`` (reason ``fanout_reconnected``) after its listener had to
  reconnect. ``seq`` restarts when Redis loses its data.
* ``streams``: room messages also carry ``id`` (the Redis stream ID, the resume offset) and ``epoch`` (the
  stream's identity, new whenever its history is lost, e.g. a Redis restart); ``seq`` is stored in the
  entry. Send ``last_id`` and ``epoch`` in ``auth`` to get exactly what you missed, in order, then live
  messages; an offset older than the retained history (``MAXLEN``) or from another epoch gets ``resync``
  (reason ``history_lost`` or ``epoch_changed``) instead.

With a Redis backend, messages for one connection only (``ready``, ``error``, ``dm``, ``reauthed``,
``resync``) are not part of the room's stream: they repeat the ``seq`` (and ``id``) of the last room
message that connection was given, so ``seq`` never decreases but may repeat. ``ready.members`` lists the
room's members on every replica (this replica's first, in join order; :mod:`wslab.chat.presence`), but
``dm`` still reaches only users connected to the same process.

Sends that survive a reconnect: a client that gives each ``say`` a ``msg_id`` (unique per client, at
most 64 characters) may send it again after a reconnect until it gets the ``ack``; the server
remembers recent ids per user (:class:`wslab.chat.dedup.RecentIds`, bounded) and acks a repeat without
broadcasting it again, so each message reaches the room once. The ack means "accepted by the server
and handed to the fan-out". A ``say`` without ``msg_id`` works as before, with no ack.

The one exception is ``ping`` (``{"type": "ping"}``, no ``seq``): a heartbeat for this connection only,
not part of the room's stream, sent every ``heartbeat_interval`` when heartbeats are on. Answer it with
``pong`` within ``heartbeat_timeout`` or the server closes the connection with 1011.

``error.reason`` is one of :data:`ERROR_REASONS`. Connection-level failures are close codes instead
(see :class:`wslab.wire.CloseCode`): 4001 no/invalid auth, 4002 token expired, 4008 rate limited,
4009 too slow to keep up, 1003 binary frame, 1009 message too big.

A malformed message (not JSON, unknown ``type``, wrong fields) is answered with ``error`` and the
connection stays usable (F03): one bad message must not cost a user their session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# --- client -> server -----------------------------------------------------------------------------


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Auth(_ClientMessage):
    type: Literal["auth"]
    token: str
    last_seq: int | None = None  # the last seq this client saw in the room (resume; see the docstring)
    last_id: str | None = None  # the last stream ID seen (``streams`` backend)
    epoch: str | None = None  # the epoch that ID belongs to

    def resume(self) -> Resume | None:
        """Where this client left off, or None for a fresh start (no ``last_seq`` nor ``last_id``)."""
        if self.last_seq is None and self.last_id is None:
            return None
        return Resume(self.last_id, self.epoch, self.last_seq)


@dataclass(frozen=True)
class Resume:
    """Where a reconnecting client left off, as its ``auth`` said; what ``membership(...)`` resumes from."""

    last_id: str | None = None
    epoch: str | None = None
    last_seq: int | None = None


class Say(_ClientMessage):
    type: Literal["say"]
    text: Annotated[str, Field(min_length=1)]
    exclude_self: bool = False
    msg_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # asks for an ack; retries dedup


class Dm(_ClientMessage):
    type: Literal["dm"]
    to: Annotated[str, Field(min_length=1)]
    text: Annotated[str, Field(min_length=1)]


class Reauth(_ClientMessage):
    type: Literal["reauth"]
    token: str


class Pong(_ClientMessage):
    type: Literal["pong"]


ClientMessage = Annotated[Auth | Say | Dm | Reauth | Pong, Field(discriminator="type")]
_client_adapter: TypeAdapter[Auth | Say | Dm | Reauth | Pong] = TypeAdapter(ClientMessage)

ERROR_REASONS = ("bad_json", "unknown_type", "invalid_message", "unexpected", "unknown_user", "bad_token")
"""``bad_json``: not a JSON object; ``unknown_type``: missing or unknown ``type``; ``invalid_message``:
wrong fields for its type; ``unexpected``: valid but not now (a second ``auth``); ``unknown_user``: a
``dm`` to nobody in this room; ``bad_token``: a ``reauth`` that cannot extend the session."""


class ProtocolViolation(Exception):
    """A client message the server refuses; becomes an ``error`` message with this reason and detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_client_message(text: str) -> Auth | Say | Dm | Reauth | Pong:
    """Validate one text frame; raise :class:`ProtocolViolation` with a reason a client can act on."""
    try:
        return _client_adapter.validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        kind = first["type"]
        if kind == "json_invalid":
            raise ProtocolViolation("bad_json", f"not valid JSON: {first['msg']}") from None
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            raise ProtocolViolation("unknown_type", _short(first["msg"])) from None
        if kind in ("model_attributes_type", "model_type", "dict_type"):
            raise ProtocolViolation("bad_json", "a message is a JSON object with a 'type'") from None
        where = ".".join(str(part) for part in first["loc"][1:]) or "message"
        raise ProtocolViolation("invalid_message", f"{where}: {first['msg']}") from None


def _short(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- server -> client -----------------------------------------------------------------------------

PING = '{"type":"ping"}'
"""The heartbeat, pre-encoded: it carries no ``seq`` (see the module docstring)."""


class ServerMessage(BaseModel):
    """Base of what the server sends; ``seq`` is stamped by the room at the moment of sending."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)
    seq: int = 0

    def encode(self, seq: int) -> str:
        """The JSON text of this message with ``seq``: built once, then sent to every recipient."""
        return self.model_copy(update={"seq": seq}).model_dump_json(by_alias=True)


class Ready(ServerMessage):
    type: Literal["ready"] = "ready"
    user: str
    room: str
    members: list[str]


class Joined(ServerMessage):
    type: Literal["joined"] = "joined"
    user: str


class Left(ServerMessage):
    type: Literal["left"] = "left"
    user: str


class Message(ServerMessage):
    type: Literal["message"] = "message"
    sender: str = Field(serialization_alias="from")
    text: str


class DirectMessage(ServerMessage):
    type: Literal["dm"] = "dm"
    sender: str = Field(serialization_alias="from")
    text: str


class Error(ServerMessage):
    type: Literal["error"] = "error"
    reason: str
    detail: str


class Ack(ServerMessage):
    type: Literal["ack"] = "ack"
    msg_id: str
    duplicate: bool = False


class Reauthed(ServerMessage):
    type: Literal["reauthed"] = "reauthed"
    expires_in: float


class Resync(ServerMessage):
    type: Literal["resync"] = "resync"
    reason: str
    epoch: str | None = None
