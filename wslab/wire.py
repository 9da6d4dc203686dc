"""The WebSocket wire format (RFC 6455), as pure functions over bytes.

Nothing here opens a socket, starts a task or reads a clock. That is the point: the opening
handshake and the frame format are where WebSocket bugs hide, and code that only turns bytes into
values (and back) can be shown byte by byte in a notebook, fed hostile input in a test, and wrapped
by any I/O shell (``netem.FrameTap`` relays real TCP traffic through :class:`FrameParser`). The shape
follows python-websockets' sans-I/O core (``frames.py``): small typed values with ``parse()``,
``serialize()`` and ``check()``.

What this module deliberately does not do:

* **Extensions.** permessage-deflate (RFC 7692) sets RSV1 and compresses payloads. We report the
  RSV bits and never reject them, because a tap between a real client and a real server sees
  compressed frames whenever both sides negotiated the extension. An endpoint that negotiated no
  extension must fail the connection on any RSV bit (websockets does); that is a connection-level
  decision, not a frame-format one.
* **Non-minimal lengths.** RFC 6455 §5.2 says a sender MUST use the shortest length encoding, but
  it does not tell receivers to reject longer ones, and neither websockets nor browsers do. We parse
  them (``serialize()`` always writes the minimal form, so a parsed frame may re-serialize shorter).
* **Messages.** A frame is the unit here. :class:`FrameParser` tracks just enough message state to
  reject what RFC 6455 §5.4 forbids (continuation without a start, a new message inside a
  fragmented one) and to validate UTF-8 across fragments.
"""

from __future__ import annotations

import base64
import codecs
import dataclasses
import enum
import hashlib
import os
import re
import struct
from collections.abc import Sequence

__all__ = [
    "GUID",
    "CloseCode",
    "Frame",
    "FrameParser",
    "HandshakeError",
    "HandshakeRequest",
    "HandshakeResponse",
    "InvalidUTF8",
    "NeedMoreData",
    "Opcode",
    "PayloadTooBig",
    "ProtocolError",
    "WireError",
    "accept_key",
    "apply_mask",
    "binary_frame",
    "close_frame",
    "close_payload",
    "explain",
    "make_key",
    "parse_close",
    "ping_frame",
    "pong_frame",
    "split_http_head",
    "text_frame",
]

#: The fixed GUID of RFC 6455 §1.3. Hashing the client's key with it proves that the server read the
#: handshake as WebSocket, rather than a cache or a plain HTTP server echoing headers back.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Largest payload a control frame may carry (RFC 6455 §5.5): control frames must fit in a frame
#: whose length needs no extended field, so they can be interleaved cheaply inside a long message.
MAX_CONTROL_PAYLOAD = 125

#: split_http_head() gives up beyond this many bytes without an end of head, so a peer that never
#: sends ``\r\n\r\n`` cannot make a tap or a server buffer forever.
MAX_HEAD_SIZE = 16 * 1024

Bytes = bytes | bytearray | memoryview


class Opcode(enum.IntEnum):
    """The four-bit opcode of a frame (RFC 6455 §5.2).

    0x3-0x7 and 0xB-0xF are reserved: a receiver that meets one must fail the connection (1002),
    because it cannot know how to interpret the payload or whether the frame is a control frame.
    """

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """Control frames (opcodes 0x8-0xF) manage the connection and may interleave a fragmented message."""
        return self >= 0x8

    @property
    def is_data(self) -> bool:
        """Data frames (CONT, TEXT, BINARY) carry the application's messages."""
        return self < 0x8


class CloseCode(enum.IntEnum):
    """Status codes of a close frame: RFC 6455 §7.4.1, the IANA registry, and wslab's own.

    Ranges: 1000-2999 belong to the protocol and its extensions, 3000-3999 are registered by
    libraries and frameworks with IANA, 4000-4999 are private to an application. Three codes exist
    only to be *reported* by an API and must never appear in a close frame: 1005 (the close frame had
    no code), 1006 (there was no close frame at all: a TCP drop, a proxy idle kill, a crash) and 1015
    (the TLS handshake failed). See :meth:`is_sendable`.

    wslab's application codes follow the Pusher convention that 4000-4099 mean "do not reconnect
    unchanged", so that a client never loops on a failure that retrying cannot fix (catalogue F20):

    * ``UNAUTHORIZED`` (4001): auth missing, invalid or too late. Do not reconnect with the same
      credentials.
    * ``TOKEN_EXPIRED`` (4002): the credentials were good but expired. Get a new token, then reconnect.
    * ``FORBIDDEN_ORIGIN`` (4003): the Origin header is not allowed. Retrying cannot help.
    * ``RATE_LIMITED`` (4008): too many messages or connections. Back off before reconnecting.
    * ``SLOW_CONSUMER`` (4009): evicted because the outbound queue to this client was full. Reconnect
      (with backoff) and catch up, rather than let one slow reader stall everyone.
    * ``RESYNC_REQUIRED`` (4010): the server cannot replay what the client missed. Reconnect and
      reload a fresh snapshot instead of resuming from the last offset.
    """

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015

    UNAUTHORIZED = 4001
    TOKEN_EXPIRED = 4002
    FORBIDDEN_ORIGIN = 4003
    RATE_LIMITED = 4008
    SLOW_CONSUMER = 4009
    RESYNC_REQUIRED = 4010

    @classmethod
    def describe(cls, code: int) -> str:
        """Name any code: ``"1000 NORMAL_CLOSURE"``, ``"4123 (application)"``, ``"999 (invalid)"``.

        Tables and error messages show codes through this, so an unknown code still says which range
        it belongs to instead of failing or printing a bare number.
        """
        try:
            return f"{code} {cls(code).name}"
        except ValueError:
            pass
        if 1000 <= code <= 2999:
            kind = "reserved"
        elif 3000 <= code <= 3999:
            kind = "registered"
        elif 4000 <= code <= 4999:
            kind = "application"
        else:
            kind = "invalid"
        return f"{code} ({kind})"

    @classmethod
    def is_sendable(cls, code: int) -> bool:
        """Whether ``code`` may appear in a close frame on the wire (RFC 6455 §7.4).

        1000-1014 except 1004 (reserved), 1005 and 1006 (reporting only), plus 3000-4999. A receiver
        that gets any other code must fail the connection with 1002.
        """
        return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


# --- errors ---------------------------------------------------------------------------------------


class WireError(ValueError):
    """Bytes that break RFC 6455. ``close_code`` is what the receiver must close the connection with.

    Mapping each failure to its code here, once, means a server built on this module cannot answer
    invalid UTF-8 with 1002 or an oversized frame with 1011 by accident.
    """

    close_code: CloseCode = CloseCode.PROTOCOL_ERROR
    #: Set by :meth:`FrameParser.feed`: the complete frames it parsed, in the same call, before the
    #: error. A tap shows them before the error row instead of losing them.
    frames: Sequence[Frame] = ()


class ProtocolError(WireError):
    """A frame that violates the framing rules (reserved opcode, long control frame, bad mask...): 1002."""

    close_code = CloseCode.PROTOCOL_ERROR


class PayloadTooBig(WireError):
    """A frame whose declared length exceeds the receiver's ``max_size``: 1009.

    Raised as soon as the length field is read, before any of the payload arrives, so that a peer
    cannot make us buffer gigabytes just by announcing them.
    """

    close_code = CloseCode.MESSAGE_TOO_BIG


class InvalidUTF8(WireError):
    """A text message or close reason that is not valid UTF-8: 1007 (invalid payload data)."""

    close_code = CloseCode.INVALID_DATA


class NeedMoreData(Exception):
    """Not an error: the bytes so far are a valid prefix of a frame, but not a whole frame.

    ``needed`` is the smallest total number of bytes that could complete it (it can grow once the
    extended length field has arrived). An incremental reader waits until it has that many.
    """

    def __init__(self, needed: int, have: int) -> None:
        super().__init__(f"need at least {needed} bytes, have {have}")
        self.needed = needed
        self.have = have


class HandshakeError(ValueError):
    """An opening handshake (HTTP/1.1 Upgrade request or 101 response) that RFC 6455 §4 rejects."""


# --- masking and close payloads -------------------------------------------------------------------


def apply_mask(data: Bytes, mask_key: Bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask_key`` repeated; masking and unmasking are the same operation.

    Clients must mask (RFC 6455 §5.3) so that a hostile page cannot place chosen bytes on the wire
    and poison a transparent proxy's cache. The XOR runs on one big integer instead of a Python loop
    per byte, which keeps a 1 MiB payload in the low milliseconds.
    """
    if len(mask_key) != 4:
        raise ValueError(f"mask_key must be 4 bytes, got {len(mask_key)}")
    n = len(data)
    if n == 0:
        return b""
    key = (bytes(mask_key) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame: a 2-byte big-endian code, then the reason in UTF-8.

    Refuses what a peer would have to reject: a code that must not be sent (1005, 1006, 1015, out of
    range) and a reason that would push the control frame past 125 bytes.
    """
    if not CloseCode.is_sendable(code):
        raise ProtocolError(f"close code {CloseCode.describe(code)} must not be sent in a close frame")
    raw = reason.encode()
    if len(raw) > MAX_CONTROL_PAYLOAD - 2:
        raise ProtocolError(f"close reason is {len(raw)} bytes in UTF-8, at most 123 fit in a control frame")
    return struct.pack("!H", code) + raw


def parse_close(payload: Bytes) -> tuple[int | None, str]:
    """Read a close frame's payload, as its receiver must (RFC 6455 §5.5.1, §7.4).

    Returns ``(None, "")`` for an empty payload: the frame had no code, which an API then reports as
    1005. Known codes come back as :class:`CloseCode` members, others as plain ints.

    Raises :class:`ProtocolError` for a 1-byte payload or an unsendable code, and
    :class:`InvalidUTF8` for a reason that is not UTF-8.
    """
    if len(payload) == 0:
        return None, ""
    if len(payload) == 1:
        raise ProtocolError("close payload of 1 byte: a close code takes 2")
    (code,) = struct.unpack("!H", payload[:2])
    # The reason is checked before the code only to fail the same way as websockets when both are bad.
    try:
        reason = bytes(payload[2:]).decode()
    except UnicodeDecodeError as exc:
        raise InvalidUTF8(f"close reason is not valid UTF-8: {exc.reason}") from None
    if not CloseCode.is_sendable(code):
        raise ProtocolError(f"close code {CloseCode.describe(code)} is not allowed on the wire")
    return _close_code(code), reason


def _close_code(code: int) -> int:
    try:
        return CloseCode(code)
    except ValueError:
        return code


# --- frames ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, repr=False)
class Frame:
    """One WebSocket frame, payload already unmasked.

    ``mask_key`` is kept (rather than a bare "masked" flag) so that ``Frame.parse(b)[0].serialize()``
    gives back the exact bytes ``b``: a notebook can take a frame apart and put it back together.
    Frames sent by a client must carry a mask key, frames sent by a server must not.

    ``serialize()`` encodes whatever it is given, even a frame :meth:`check` would reject, so that
    tests and notebooks can put hostile frames on the wire. The builders (:func:`text_frame`,
    :func:`close_frame`, ...) only make valid frames.
    """

    opcode: Opcode
    payload: bytes = b""
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    mask_key: bytes | None = None

    def __post_init__(self) -> None:
        # Accept ints and bytes-likes for convenience in notebooks, but store one canonical type so
        # equality and hashing behave.
        object.__setattr__(self, "opcode", Opcode(self.opcode))
        if isinstance(self.payload, str):
            raise TypeError("payload must be bytes; use text_frame() to send a str")
        object.__setattr__(self, "payload", bytes(self.payload))
        if self.mask_key is not None:
            if len(self.mask_key) != 4:
                raise ValueError(f"mask_key must be 4 bytes, got {len(self.mask_key)}")
            object.__setattr__(self, "mask_key", bytes(self.mask_key))

    def __repr__(self) -> str:
        # The default repr would print a 1 MiB payload in full; show defaults only when they differ.
        payload = repr(self.payload) if len(self.payload) <= 64 else f"<{len(self.payload)} bytes>"
        parts = [f"Opcode.{self.opcode.name}", f"payload={payload}"]
        parts += [f"{name}=True" for name in ("rsv1", "rsv2", "rsv3") if getattr(self, name)]
        if not self.fin:
            parts.append("fin=False")
        if self.mask_key is not None:
            parts.append(f"mask_key={self.mask_key!r}")
        return f"Frame({', '.join(parts)})"

    @property
    def masked(self) -> bool:
        """Whether the frame travels masked, i.e. was (or will be) sent by a client."""
        return self.mask_key is not None

    @property
    def close_code(self) -> int | None:
        """The code of a CLOSE frame (a :class:`CloseCode` when known); ``None`` for other frames
        and for a close frame without a code."""
        return parse_close(self.payload)[0] if self.opcode is Opcode.CLOSE else None

    @property
    def close_reason(self) -> str | None:
        """The reason of a CLOSE frame (``""`` when absent); ``None`` for other frames."""
        return parse_close(self.payload)[1] if self.opcode is Opcode.CLOSE else None

    @property
    def text(self) -> str | None:
        """The payload of a TEXT frame, decoded; ``None`` for other opcodes.

        A fragment of a longer message may end in the middle of a character, so decode the
        reassembled message for fragmented text (``FrameParser`` validates across fragments).
        Raises :class:`InvalidUTF8` on invalid UTF-8.
        """
        if self.opcode is not Opcode.TEXT:
            return None
        if self.rsv1:
            raise ValueError("RSV1 is set: the payload is compressed (permessage-deflate), not UTF-8 text")
        try:
            return self.payload.decode()
        except UnicodeDecodeError as exc:
            raise InvalidUTF8(f"text frame is not valid UTF-8: {exc.reason}") from None

    def serialize(self) -> bytes:
        """Encode the frame: header, 7/16/64-bit length (always the shortest), mask key, masked payload."""
        head1 = (
            (0x80 if self.fin else 0)
            | (0x40 if self.rsv1 else 0)
            | (0x20 if self.rsv2 else 0)
            | (0x10 if self.rsv3 else 0)
            | self.opcode
        )
        mask_bit = 0x80 if self.mask_key is not None else 0
        length = len(self.payload)
        if length <= 125:
            header = struct.pack("!BB", head1, mask_bit | length)
        elif length <= 0xFFFF:
            header = struct.pack("!BBH", head1, mask_bit | 126, length)
        else:
            header = struct.pack("!BBQ", head1, mask_bit | 127, length)
        if self.mask_key is None:
            return header + self.payload
        return header + self.mask_key + apply_mask(self.payload, self.mask_key)

    @classmethod
    def parse(
        cls, data: Bytes, *, max_size: int | None = None, expect_masked: bool | None = None
    ) -> tuple[Frame, int]:
        """Parse one frame from the start of ``data``; return it and the number of bytes it used.

        Errors are raised as early as the bytes allow (a reserved opcode from the first byte, an
        oversized length before any payload), because a receiver should not wait for, or buffer,
        a frame it will reject anyway. ``expect_masked`` enforces the direction rule: ``True`` when
        reading what a client sent (a server must reject unmasked frames), ``False`` for a server's
        frames, ``None`` to accept both (a tap reading unknown traffic).

        Raises :class:`NeedMoreData` if ``data`` is a valid but incomplete frame,
        :class:`ProtocolError`, :class:`PayloadTooBig` or :class:`InvalidUTF8` (close reason).
        """
        frame, end = _parse_frame(data, 0, max_size=max_size, expect_masked=expect_masked)
        return frame, end

    def check(self) -> None:
        """Raise :class:`WireError` if a receiver must reject this frame for what it contains.

        Control frames must be short (≤ 125 bytes) and unfragmented. A close payload must be empty or
        hold a sendable code and a UTF-8 reason. RSV bits are not checked: see the module docstring.
        """
        if self.opcode.is_control:
            if not self.fin:
                raise ProtocolError(f"fragmented control frame ({self.opcode.name} with FIN=0)")
            if len(self.payload) > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(
                    f"{self.opcode.name} payload is {len(self.payload)} bytes; control frames allow 125"
                )
        if self.opcode is Opcode.CLOSE:
            parse_close(self.payload)

    def preview(self, width: int = 40) -> str:
        """A one-line, never-failing view of the payload for frame tables, at most ``width`` characters.

        Text is quoted and cut with '…'; binary is hex; a close frame reads like
        ``1000 NORMAL_CLOSURE 'bye'``. Compressed (RSV1) payloads are shown as hex, since decoding
        them as text would show noise.
        """
        payload = self.payload
        if self.opcode is Opcode.CLOSE:
            try:
                code, reason = parse_close(payload)
            except WireError:
                return _clip("malformed " + _hex(payload), width)
            if code is None:
                return "(no status code)"
            described = CloseCode.describe(code)
            return _clip(f"{described} {reason!r}" if reason else described, width)
        if not payload:
            return "(empty)"
        if not self.rsv1:
            text = _as_text(payload, final=self.fin or self.opcode.is_control)
            if text is not None:
                return _quote(text, width)
        return _clip(_hex(payload, limit=width), width)


def _parse_frame(
    data: Bytes, offset: int, *, max_size: int | None, expect_masked: bool | None
) -> tuple[Frame, int]:
    """Parse a frame starting at ``data[offset]``; return it and the offset just past it.

    Working at an offset lets :class:`FrameParser` read its buffer in place, without copying the
    unread remainder once per frame.
    """
    have = len(data) - offset
    if have < 2:
        raise NeedMoreData(2, have)
    head1, head2 = data[offset], data[offset + 1]
    fin = bool(head1 & 0x80)
    try:
        opcode = Opcode(head1 & 0x0F)
    except ValueError:
        raise ProtocolError(f"reserved opcode 0x{head1 & 0x0F:X}") from None
    masked = bool(head2 & 0x80)
    if expect_masked is True and not masked:
        raise ProtocolError("unmasked frame from a client: client-to-server frames must be masked")
    if expect_masked is False and masked:
        raise ProtocolError("masked frame from a server: server-to-client frames must not be masked")
    length = head2 & 0x7F
    if opcode.is_control:
        if not fin:
            raise ProtocolError(f"fragmented control frame ({opcode.name} with FIN=0)")
        if length > MAX_CONTROL_PAYLOAD:
            raise ProtocolError(f"{opcode.name} payload is longer than 125 bytes")

    header = 2
    if length == 126:
        header = 4
        if have < header:
            raise NeedMoreData(header, have)
        (length,) = struct.unpack_from("!H", data, offset + 2)
    elif length == 127:
        header = 10
        if have < header:
            raise NeedMoreData(header, have)
        (length,) = struct.unpack_from("!Q", data, offset + 2)
        if length >> 63:
            raise ProtocolError("64-bit payload length has its most significant bit set")
    if max_size is not None and length > max_size:
        raise PayloadTooBig(f"frame payload of {length} bytes exceeds max_size={max_size}")

    key_start = offset + header
    start = key_start + (4 if masked else 0)
    end = start + length
    if len(data) < end:
        raise NeedMoreData(end - offset, have)
    mask_key = bytes(data[key_start:start]) if masked else None
    payload = bytes(data[start:end])
    if mask_key is not None:
        payload = apply_mask(payload, mask_key)
    frame = Frame(
        opcode,
        payload,
        fin=fin,
        rsv1=bool(head1 & 0x40),
        rsv2=bool(head1 & 0x20),
        rsv3=bool(head1 & 0x10),
        mask_key=mask_key,
    )
    frame.check()
    return frame, end


def _hex(data: bytes, limit: int | None = None) -> str:
    if limit is not None:
        data = data[: limit // 3 + 1]
    return data.hex(" ")


def _clip(s: str, width: int) -> str:
    return s if len(s) <= width else s[: max(width - 1, 0)].rstrip() + "…"


def _quote(text: str, width: int) -> str:
    quoted = repr(text)
    if len(quoted) <= width:
        return quoted
    # Cut inside the quotes, so the result still reads as a (shortened) string: 'Hello wor…'.
    for keep in range(min(len(text), width), -1, -1):
        quoted = repr(text[:keep])
        if len(quoted) + 1 <= width:
            break
    return quoted[:-1] + "…" + quoted[-1]


def _as_text(payload: bytes, *, final: bool) -> str | None:
    """Decode for display only: ``None`` unless the payload is UTF-8 (allowing a character cut off
    at the end of a non-final fragment) and has no control characters that would garble a table."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(payload, final=final)
    except UnicodeDecodeError:
        return None
    if any(c < " " and c not in "\t\n\r" for c in text):
        return None
    return text


def _mask_key(mask: bool | Bytes) -> bytes | None:
    if mask is True:
        return os.urandom(4)
    if mask is False:
        return None
    if len(mask) != 4:
        raise ValueError(f"mask must be True, False or 4 bytes, got {len(mask)} bytes")
    return bytes(mask)


def text_frame(text: str, *, fin: bool = True, mask: bool | Bytes = False) -> Frame:
    """A TEXT frame. ``mask=True`` draws a random key (what a client sends); bytes use that key."""
    return Frame(Opcode.TEXT, text.encode(), fin=fin, mask_key=_mask_key(mask))


def binary_frame(data: Bytes, *, fin: bool = True, mask: bool | Bytes = False) -> Frame:
    """A BINARY frame; ``mask`` as for :func:`text_frame`."""
    return Frame(Opcode.BINARY, bytes(data), fin=fin, mask_key=_mask_key(mask))


def ping_frame(payload: Bytes = b"", *, mask: bool | Bytes = False) -> Frame:
    """A PING; the peer must answer with a PONG carrying the same payload (≤ 125 bytes)."""
    return _control(Opcode.PING, payload, mask)


def pong_frame(payload: Bytes = b"", *, mask: bool | Bytes = False) -> Frame:
    """A PONG, the answer to a PING (or, unsolicited, a one-way heartbeat)."""
    return _control(Opcode.PONG, payload, mask)


def close_frame(
    code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "", *, mask: bool | Bytes = False
) -> Frame:
    """A CLOSE frame; ``code=None`` sends no code at all (the peer then reports 1005)."""
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return Frame(Opcode.CLOSE, b"", mask_key=_mask_key(mask))
    return Frame(Opcode.CLOSE, close_payload(code, reason), mask_key=_mask_key(mask))


def _control(opcode: Opcode, payload: Bytes, mask: bool | Bytes) -> Frame:
    frame = Frame(opcode, bytes(payload), mask_key=_mask_key(mask))
    frame.check()
    return frame


def explain(data: Bytes) -> list[tuple[str, str]]:
    """Take the first frame in ``data`` apart: ``(hex bytes, meaning)`` rows, header field by field.

    For notebooks that teach the format byte by byte. The frame is parsed (and so validated) first,
    so the explanation never describes bytes that are not a frame.
    """
    frame, end = Frame.parse(data)
    raw = bytes(data[:end])
    b0, b1 = raw[0], raw[1]
    rsv = "".join("1" if b0 & bit else "0" for bit in (0x40, 0x20, 0x10))
    rows = [
        (f"{b0:02x}", f"FIN={b0 >> 7} RSV={rsv} opcode=0x{b0 & 0x0F:X} {frame.opcode.name}"),
    ]
    length7 = b1 & 0x7F
    pos = 2
    if length7 < 126:
        rows.append((f"{b1:02x}", f"MASK={b1 >> 7} length={length7}"))
    else:
        size = 2 if length7 == 126 else 8
        rows.append((f"{b1:02x}", f"MASK={b1 >> 7} length={length7}: a {size * 8}-bit length follows"))
        rows.append((raw[2 : 2 + size].hex(" "), f"length={len(frame.payload)}"))
        pos += size
    if frame.mask_key is not None:
        rows.append((frame.mask_key.hex(" "), "masking key"))
        pos += 4
        meaning = "masked payload, unmasked: " + frame.preview()
    else:
        meaning = "payload: " + frame.preview()
    if frame.payload:
        rows.append((_clip(raw[pos : pos + 17].hex(" "), 48), meaning))
    return rows


# --- incremental parsing --------------------------------------------------------------------------


class FrameParser:
    """Turn one direction of a byte stream into frames, whatever the chunking.

    TCP delivers bytes, not frames: a read may hold half a header or three frames. ``feed()`` keeps
    the leftovers and returns every frame completed so far. Besides the per-frame rules it enforces
    what needs memory of earlier frames (RFC 6455 §5.4): a continuation needs a message to continue,
    a new message may not start inside a fragmented one, and a text message must be valid UTF-8
    across its fragments (checked incrementally, so a bad byte fails at once, not at the end).
    Compressed messages (RSV1) are not UTF-8-checked: their payload is deflate output.

    Once it has raised, the parser stays failed and raises again: a receiver must fail the
    connection, and nothing after a framing error can be trusted to be aligned on a frame.
    """

    def __init__(
        self, *, expect_masked: bool | None = None, max_size: int | None = None, validate_utf8: bool = True
    ) -> None:
        self.expect_masked = expect_masked
        self.max_size = max_size
        self.validate_utf8 = validate_utf8
        #: Bytes turned into frames so far; locates an error in the stream.
        self.consumed = 0
        self.error: WireError | None = None
        self._buffer = bytearray()
        self._needed = 2
        self._message: Opcode | None = None  # opcode of the fragmented message in progress
        self._decoder: codecs.IncrementalDecoder | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    def feed(self, data: Bytes) -> list[Frame]:
        """Add ``data``; return the frames it completes (possibly none).

        On a :class:`WireError`, frames completed earlier in the same call are on ``exc.frames``.
        """
        if self.error is not None:
            again = type(self.error)(f"parser already failed: {self.error}")
            raise again from self.error
        self._buffer += data
        frames: list[Frame] = []
        if len(self._buffer) < self._needed:  # skip re-parsing a header we know is incomplete
            return frames
        offset = 0
        try:
            while True:
                try:
                    frame, end = _parse_frame(
                        self._buffer, offset, max_size=self.max_size, expect_masked=self.expect_masked
                    )
                except NeedMoreData as exc:
                    self._needed = exc.needed
                    break
                self._track(frame)
                frames.append(frame)
                offset = end
        except WireError as exc:
            exc.frames = frames
            self.error = exc
            raise
        finally:
            del self._buffer[:offset]
            self.consumed += offset
        return frames

    def _track(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode.is_control:
            return
        if opcode is Opcode.CONT:
            if self._message is None:
                raise ProtocolError("continuation frame without a fragmented message to continue")
        elif self._message is not None:
            raise ProtocolError(f"new {opcode.name} message while a fragmented {self._message.name} is open")
        else:
            self._message = opcode
            check = self.validate_utf8 and opcode is Opcode.TEXT and not frame.rsv1
            self._decoder = codecs.getincrementaldecoder("utf-8")() if check else None
        if self._decoder is not None:
            try:
                self._decoder.decode(frame.payload, final=frame.fin)
            except UnicodeDecodeError as exc:
                raise InvalidUTF8(f"text message is not valid UTF-8: {exc.reason}") from None
        if frame.fin:
            self._message = None
            self._decoder = None


# --- opening handshake ----------------------------------------------------------------------------


def make_key() -> str:
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes (RFC 6455 §4.1).

    It is a nonce, not a secret: it proves the response was made for this request, nothing more.
    """
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer ``key`` with: base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def split_http_head(data: Bytes, *, limit: int = MAX_HEAD_SIZE) -> tuple[bytes, bytes] | None:
    """Split ``(head including the final \\r\\n\\r\\n, rest)``; ``None`` while the head is incomplete.

    After a 101 the same TCP stream carries frames, possibly in the same read as the head, so the
    bytes after the blank line belong to the frame parser. Raises :class:`HandshakeError` once more
    than ``limit`` bytes arrive without an end of head.
    """
    end = bytes(data[: limit + 4]).find(b"\r\n\r\n")
    if end < 0 or end + 4 > limit:
        if len(data) > limit:
            raise HandshakeError(f"no end of HTTP head within {limit} bytes")
        return None
    return bytes(data[: end + 4]), bytes(data[end + 4 :])


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _parse_head(data: Bytes) -> tuple[str, list[tuple[str, str]]]:
    split = split_http_head(data)
    if split is None:
        raise HandshakeError("incomplete HTTP head: it must end with an empty line (\\r\\n\\r\\n)")
    head, rest = split
    if rest:
        raise HandshakeError(f"{len(rest)} bytes follow the HTTP head; split them off with split_http_head()")
    lines = head[:-4].split(b"\r\n")
    headers = []
    for raw in lines[1:]:
        line = raw.decode("latin-1")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HandshakeError(f"malformed header line: {line!r}")
        headers.append((name, value.strip(" \t")))
    return lines[0].decode("latin-1"), headers


def _values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    name = name.lower()
    return [value for key, value in headers if key.lower() == name]


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    values = _values(headers, name)
    return ", ".join(values) if values else None


def _single(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    values = _values(headers, name)
    if len(values) > 1:
        raise HandshakeError(f"{name} header appears {len(values)} times; it must appear once")
    return values[0] if values else None


def _tokens(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    """A comma-separated header across all its lines, as lower-case tokens (HTTP list syntax)."""
    return [t.strip().lower() for value in _values(headers, name) for t in value.split(",") if t.strip()]


def _check_http_version(version: str, line: str) -> None:
    match = re.fullmatch(r"HTTP/(\d)\.(\d)", version)
    if match is None:
        raise HandshakeError(f"malformed HTTP version in {line!r}")
    if (int(match[1]), int(match[2])) < (1, 1):
        raise HandshakeError(f"{version} cannot upgrade to WebSocket: HTTP/1.1 or later is required")


def _check_upgrade(headers: Sequence[tuple[str, str]]) -> None:
    upgrade = _tokens(headers, "Upgrade")
    if "websocket" not in upgrade:
        raise HandshakeError(f"Upgrade header must contain 'websocket', got {_header(headers, 'Upgrade')!r}")
    if "upgrade" not in _tokens(headers, "Connection"):
        raise HandshakeError(
            f"Connection header must contain the 'upgrade' token, got {_header(headers, 'Connection')!r}"
        )


# Headers HandshakeRequest models as fields; parse() keeps every other header in extra_headers.
_REQUEST_FIELDS = {
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "origin",
    "sec-websocket-protocol",
}


@dataclasses.dataclass
class HandshakeRequest:
    """The client's opening handshake: an HTTP/1.1 GET asking to upgrade (RFC 6455 §4.1).

    ``parse()`` checks everything a server must check before answering 101; anything it does not
    model (cookies, Authorization, Sec-WebSocket-Extensions...) lands in ``extra_headers`` in wire
    order, so ``parse(r.serialize()) == r``.
    """

    path: str
    host: str
    key: str = dataclasses.field(default_factory=make_key)
    origin: str | None = None
    subprotocols: list[str] = dataclasses.field(default_factory=list)
    extra_headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The header lines, in the order :meth:`serialize` writes them."""
        headers = [
            ("Host", self.host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", "13"),
        ]
        if self.origin is not None:
            headers.append(("Origin", self.origin))
        if self.subprotocols:
            headers.append(("Sec-WebSocket-Protocol", ", ".join(self.subprotocols)))
        return headers + list(self.extra_headers)

    def header(self, name: str) -> str | None:
        """A header's value, case-insensitively; repeated headers are joined with ", " as HTTP allows."""
        return _header(self.headers, name)

    def serialize(self) -> bytes:
        lines = [f"GET {self.path} HTTP/1.1"] + [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @classmethod
    def parse(cls, data: Bytes) -> HandshakeRequest:
        """Parse and validate a request head; :class:`HandshakeError` says what is wrong."""
        start, headers = _parse_head(data)
        parts = start.split(" ")
        if len(parts) != 3:
            raise HandshakeError(f"malformed request line: {start!r}")
        method, path, version = parts
        if method != "GET":
            raise HandshakeError(f"method must be GET to open a WebSocket, got {method!r}")
        _check_http_version(version, start)
        host = _single(headers, "Host")
        if host is None:
            raise HandshakeError("missing Host header")
        _check_upgrade(headers)
        version_header = _single(headers, "Sec-WebSocket-Version")
        if version_header != "13":
            raise HandshakeError(f"Sec-WebSocket-Version must be 13, got {version_header!r}")
        key = _single(headers, "Sec-WebSocket-Key")
        if key is None:
            raise HandshakeError("missing Sec-WebSocket-Key header")
        try:
            raw_key = base64.b64decode(key, validate=True)
        except ValueError:
            raw_key = b""
        if len(raw_key) != 16:
            raise HandshakeError(f"Sec-WebSocket-Key must be 16 bytes in base64, got {key!r}")
        protocols = [
            p.strip() for v in _values(headers, "Sec-WebSocket-Protocol") for p in v.split(",") if p.strip()
        ]
        return cls(
            path=path,
            host=host,
            key=key,
            origin=_single(headers, "Origin"),
            subprotocols=protocols,
            extra_headers=[(k, v) for k, v in headers if k.lower() not in _REQUEST_FIELDS],
        )


@dataclasses.dataclass
class HandshakeResponse:
    """The server's answer: ``101 Switching Protocols`` to accept, any other status to refuse.

    ``parse()`` only checks HTTP syntax, so that a refusal (403, 426...) can be read and shown;
    :meth:`check` is the client's verdict on whether the upgrade really happened.
    """

    status: int = 101
    reason: str = "Switching Protocols"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @classmethod
    def for_request(cls, request: HandshakeRequest, *, subprotocol: str | None = None) -> HandshakeResponse:
        """The 101 that accepts ``request``, choosing ``subprotocol`` (which the client must have offered)."""
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(request.key)),
        ]
        if subprotocol is not None:
            if subprotocol not in request.subprotocols:
                raise HandshakeError(f"subprotocol {subprotocol!r} was not offered: {request.subprotocols}")
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        return cls(headers=headers)

    @property
    def accept(self) -> str | None:
        return self.header("Sec-WebSocket-Accept")

    @property
    def subprotocol(self) -> str | None:
        return self.header("Sec-WebSocket-Protocol")

    def header(self, name: str) -> str | None:
        """A header's value, case-insensitively; repeated headers are joined with ", " as HTTP allows."""
        return _header(self.headers, name)

    def serialize(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {self.reason}"] + [f"{n}: {v}" for n, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @classmethod
    def parse(cls, data: Bytes) -> HandshakeResponse:
        start, headers = _parse_head(data)
        version, _, rest = start.partition(" ")
        status, _, reason = rest.partition(" ")
        if not re.fullmatch(r"\d{3}", status):
            raise HandshakeError(f"malformed status line: {start!r}")
        _check_http_version(version, start)
        return cls(status=int(status), reason=reason, headers=headers)

    def check(self, request_or_key: HandshakeRequest | str) -> None:
        """Raise :class:`HandshakeError` unless this response accepts that request (RFC 6455 §4.2.2).

        Given the whole request (not only its key), also check that the server picked a subprotocol
        the client offered and accepted no extension the client did not offer.
        """
        request = request_or_key if isinstance(request_or_key, HandshakeRequest) else None
        key = request.key if request is not None else str(request_or_key)
        if self.status != 101:
            raise HandshakeError(f"expected status 101 Switching Protocols, got {self.status} {self.reason}")
        _check_upgrade(self.headers)
        got = _single(self.headers, "Sec-WebSocket-Accept")
        expected = accept_key(key)
        if got is None:
            raise HandshakeError(f"missing Sec-WebSocket-Accept header (expected {expected!r})")
        if got != expected:
            raise HandshakeError(
                f"Sec-WebSocket-Accept mismatch for key {key!r}: expected {expected!r}, got {got!r}"
            )
        if request is None:
            return
        chosen = _single(self.headers, "Sec-WebSocket-Protocol")
        if chosen is not None and chosen not in request.subprotocols:
            raise HandshakeError(
                f"server chose subprotocol {chosen!r}, but the client offered {request.subprotocols}"
            )
        if self.header("Sec-WebSocket-Extensions") and not request.header("Sec-WebSocket-Extensions"):
            raise HandshakeError("server accepted extensions the client did not offer")
