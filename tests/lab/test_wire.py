"""wslab.wire: the RFC 6455 examples byte for byte, every failure mapped to its close code, and agreement
with python-websockets' own parser and handshake in both directions."""

from __future__ import annotations

import dataclasses
import random
import struct
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from websockets import frames as ws_frames
from websockets.client import ClientProtocol
from websockets.exceptions import ProtocolError as WsProtocolError
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from wslab.wire import (
    GUID,
    CloseCode,
    Frame,
    FrameParser,
    HandshakeError,
    HandshakeRequest,
    HandshakeResponse,
    InvalidUTF8,
    NeedMoreData,
    Opcode,
    PayloadTooBig,
    ProtocolError,
    WireError,
    accept_key,
    apply_mask,
    binary_frame,
    close_frame,
    close_payload,
    explain,
    make_key,
    parse_close,
    ping_frame,
    pong_frame,
    split_http_head,
    text_frame,
)

MASK = bytes.fromhex("37fa213d")
PAYLOAD_256 = bytes(range(256))
PAYLOAD_64K = bytes(range(256)) * 256

# RFC 6455 §5.7, "Examples" (the two long binary ones give only the header; the payload is ours).
RFC_EXAMPLES = [
    ("single-frame unmasked text", "810548656c6c6f", Frame(Opcode.TEXT, b"Hello")),
    ("single-frame masked text", "818537fa213d7f9f4d5158", Frame(Opcode.TEXT, b"Hello", mask_key=MASK)),
    ("first fragment", "010348656c", Frame(Opcode.TEXT, b"Hel", fin=False)),
    ("last fragment", "80026c6f", Frame(Opcode.CONT, b"lo")),
    ("unmasked ping", "890548656c6c6f", Frame(Opcode.PING, b"Hello")),
    ("masked pong", "8a8537fa213d7f9f4d5158", Frame(Opcode.PONG, b"Hello", mask_key=MASK)),
    ("256-byte binary, 16-bit length", "827e0100" + PAYLOAD_256.hex(), Frame(Opcode.BINARY, PAYLOAD_256)),
    (
        "64 KiB binary, 64-bit length",
        "827f0000000000010000" + PAYLOAD_64K.hex(),
        Frame(Opcode.BINARY, PAYLOAD_64K),
    ),
]


# --- RFC examples -------------------------------------------------------------------------------


def test_accept_key_matches_rfc_6455_section_1_3():
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("hexdata", "frame"), [e[1:] for e in RFC_EXAMPLES], ids=[e[0] for e in RFC_EXAMPLES]
)
def test_rfc_examples_parse_and_serialize_exactly(hexdata, frame):
    data = bytes.fromhex(hexdata)
    assert Frame.parse(data) == (frame, len(data))
    assert frame.serialize() == data


def test_builders_make_the_rfc_frames():
    assert text_frame("Hello").serialize().hex() == "810548656c6c6f"
    assert text_frame("Hello", mask=MASK).serialize().hex() == "818537fa213d7f9f4d5158"
    assert ping_frame(b"Hello").serialize().hex() == "890548656c6c6f"
    assert pong_frame(b"Hello", mask=MASK).serialize().hex() == "8a8537fa213d7f9f4d5158"
    assert binary_frame(PAYLOAD_256).serialize()[:4].hex() == "827e0100"
    random_mask = text_frame("Hello", mask=True)
    assert random_mask.masked and len(random_mask.mask_key) == 4
    assert Frame.parse(random_mask.serialize())[0] == random_mask


def test_explain_takes_the_masked_example_apart():
    assert explain(bytes.fromhex("818537fa213d7f9f4d5158")) == [
        ("81", "FIN=1 RSV=000 opcode=0x1 TEXT"),
        ("85", "MASK=1 length=5"),
        ("37 fa 21 3d", "masking key"),
        ("7f 9f 4d 51 58", "masked payload, unmasked: 'Hello'"),
    ]
    rows = explain(binary_frame(PAYLOAD_256).serialize())
    assert rows[1:3] == [("7e", "MASK=0 length=126: a 16-bit length follows"), ("01 00", "length=256")]


# --- frames: values, previews, masking ----------------------------------------------------------


def test_frame_properties():
    bye = close_frame(CloseCode.NORMAL_CLOSURE, "bye")
    assert bye.payload == b"\x03\xe8bye"
    assert (bye.close_code, bye.close_reason) == (CloseCode.NORMAL_CLOSURE, "bye")
    assert isinstance(bye.close_code, CloseCode)
    assert close_frame(None).close_code is None
    assert text_frame("héllo").text == "héllo"
    assert binary_frame(b"x").text is None and binary_frame(b"x").close_code is None
    assert Opcode.PING.is_control and not Opcode.CONT.is_control and Opcode.BINARY.is_data
    with pytest.raises(InvalidUTF8):
        _ = Frame(Opcode.TEXT, b"\xff").text


def test_frame_normalises_its_fields_and_keeps_repr_short():
    frame = Frame(1, bytearray(b"hi"))
    assert frame.opcode is Opcode.TEXT and type(frame.payload) is bytes
    assert repr(binary_frame(bytes(10_000))) == "Frame(Opcode.BINARY, payload=<10000 bytes>)"
    with pytest.raises(TypeError, match="text_frame"):
        Frame(Opcode.TEXT, "hi")
    with pytest.raises(ValueError, match="4 bytes"):
        Frame(Opcode.TEXT, b"hi", mask_key=b"abc")
    with pytest.raises(ValueError):
        Frame(3, b"")


@pytest.mark.parametrize(
    ("frame", "width", "expected"),
    [
        (text_frame("Hello"), 40, "'Hello'"),
        (text_frame("x" * 100), 12, "'xxxxxxxxx…'"),
        (text_frame("line\nbreak"), 40, "'line\\nbreak'"),
        (binary_frame(bytes(range(4))), 40, "00 01 02 03"),
        (binary_frame(bytes(range(100))), 16, "00 01 02 03 04…"),
        (close_frame(1000, "bye"), 40, "1000 NORMAL_CLOSURE 'bye'"),
        (close_frame(4123), 40, "4123 (application)"),
        (close_frame(None), 40, "(no status code)"),
        (Frame(Opcode.CLOSE, b"\x03"), 40, "malformed 03"),
        (ping_frame(), 40, "(empty)"),
        (ping_frame(b"\x00\xff"), 40, "00 ff"),
        (Frame(Opcode.TEXT, b"\x00\x01", rsv1=True), 40, "00 01"),
        (Frame(Opcode.TEXT, b"a\xc3", fin=False), 40, "'a'"),  # "aé" cut inside the é
    ],
)
def test_preview_for_tables(frame, width, expected):
    assert frame.preview(width) == expected
    assert len(frame.preview(width)) <= width


def test_apply_mask_is_an_involution_and_fast_on_a_mebibyte():
    data = random.Random(0).randbytes(1 << 20)
    start = time.perf_counter()
    masked = apply_mask(data, MASK)
    elapsed = time.perf_counter() - start
    assert apply_mask(masked, MASK) == data
    assert masked[:5] == bytes(a ^ b for a, b in zip(data[:5], MASK + MASK[:1], strict=True))
    assert elapsed < 0.25, f"apply_mask took {elapsed:.3f} s for 1 MiB"


def test_serialize_puts_invalid_frames_on_the_wire_and_check_catches_them():
    long_ping = Frame(Opcode.PING, bytes(200))
    assert long_ping.serialize()[:4].hex() == "897e00c8"  # serialize never refuses: hostile tests need it
    with pytest.raises(ProtocolError, match="125"):
        long_ping.check()
    with pytest.raises(ProtocolError, match="fragmented control"):
        Frame(Opcode.CLOSE, fin=False).check()
    with pytest.raises(ProtocolError, match="125"):
        ping_frame(bytes(126))


def test_non_minimal_length_encoding_is_accepted_and_reserialized_minimally():
    data = bytes.fromhex("817e0005") + b"Hello"  # 16-bit length field holding 5
    frame, used = Frame.parse(data)
    assert (frame, used) == (text_frame("Hello"), 9)
    assert frame.serialize().hex() == "810548656c6c6f"


# --- close codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "description", "sendable"),
    [
        (999, "999 (invalid)", False),
        (1000, "1000 NORMAL_CLOSURE", True),
        (1004, "1004 (reserved)", False),
        (1005, "1005 NO_STATUS_RCVD", False),
        (1006, "1006 ABNORMAL_CLOSURE", False),
        (1007, "1007 INVALID_DATA", True),
        (1014, "1014 BAD_GATEWAY", True),
        (1015, "1015 TLS_HANDSHAKE", False),
        (2999, "2999 (reserved)", False),
        (3000, "3000 (registered)", True),
        (4001, "4001 UNAUTHORIZED", True),
        (4010, "4010 RESYNC_REQUIRED", True),
        (4123, "4123 (application)", True),
        (5000, "5000 (invalid)", False),
    ],
)
def test_close_codes_are_named_and_classified(code, description, sendable):
    assert CloseCode.describe(code) == description
    assert CloseCode.is_sendable(code) is sendable


def test_wslab_application_codes():
    assert [(c.name, c.value) for c in CloseCode if c >= 4000] == [
        ("UNAUTHORIZED", 4001),
        ("TOKEN_EXPIRED", 4002),
        ("FORBIDDEN_ORIGIN", 4003),
        ("RATE_LIMITED", 4008),
        ("SLOW_CONSUMER", 4009),
        ("RESYNC_REQUIRED", 4010),
    ]


def test_close_payload_round_trip_and_refusals():
    assert parse_close(close_payload(CloseCode.RATE_LIMITED, "slow down")) == (4008, "slow down")
    assert parse_close(close_payload(3001)) == (3001, "")
    assert parse_close(b"") == (None, "")
    with pytest.raises(ProtocolError, match="1005 NO_STATUS_RCVD"):
        close_payload(CloseCode.NO_STATUS_RCVD)
    with pytest.raises(ProtocolError, match="123"):
        close_payload(1000, "x" * 124)
    assert len(close_payload(1000, "x" * 123)) == 125


# --- every malformed input maps to its close code -----------------------------------------------


@pytest.mark.parametrize(
    ("hexdata", "error", "code", "message"),
    [
        ("8300", ProtocolError, 1002, "reserved opcode 0x3"),
        ("8b00", ProtocolError, 1002, "reserved opcode 0xB"),
        ("0900", ProtocolError, 1002, "fragmented control frame"),
        ("897e", ProtocolError, 1002, "longer than 125"),  # rejected from the header alone
        ("827f8000000000000000", ProtocolError, 1002, "most significant bit"),
        ("880103", ProtocolError, 1002, "1 byte"),
        ("880203ed", ProtocolError, 1002, "1005"),
        ("880203e7", ProtocolError, 1002, r"999 \(invalid\)"),
        ("88020bb8", None, None, None),  # 3000: fine
        ("880403e8fffe", InvalidUTF8, 1007, "not valid UTF-8"),
    ],
)
def test_frame_errors_map_to_close_codes(hexdata, error, code, message):
    data = bytes.fromhex(hexdata)
    if error is None:
        Frame.parse(data)
        return
    with pytest.raises(error, match=message) as info:
        Frame.parse(data)
    assert isinstance(info.value, WireError) and isinstance(info.value, ValueError)
    assert info.value.close_code == code


def test_payload_too_big_is_1009_before_the_payload_arrives():
    header = bytes.fromhex("827e1000")  # announces 4096 bytes, sends none
    with pytest.raises(PayloadTooBig, match="4096") as info:
        Frame.parse(header, max_size=1024)
    assert info.value.close_code == CloseCode.MESSAGE_TOO_BIG
    with pytest.raises(NeedMoreData):
        Frame.parse(header, max_size=4096)


@pytest.mark.parametrize(
    ("expect_masked", "frame"), [(True, text_frame("hi")), (False, text_frame("hi", mask=MASK))]
)
def test_masking_direction_is_enforced(expect_masked, frame):
    with pytest.raises(ProtocolError, match="must" if expect_masked else "must not") as info:
        FrameParser(expect_masked=expect_masked).feed(frame.serialize())
    assert info.value.close_code == CloseCode.PROTOCOL_ERROR
    assert FrameParser(expect_masked=None).feed(frame.serialize()) == [frame]


@pytest.mark.parametrize(
    ("frames", "error", "message"),
    [
        ([Frame(Opcode.CONT, b"lo")], ProtocolError, "without a fragmented message"),
        ([Frame(Opcode.TEXT, b"a", fin=False), text_frame("b")], ProtocolError, "while a fragmented TEXT"),
        ([Frame(Opcode.TEXT, b"\xc3", fin=False), Frame(Opcode.CONT, b"(")], InvalidUTF8, "not valid UTF-8"),
        ([Frame(Opcode.TEXT, b"ok\xff", fin=False)], InvalidUTF8, "not valid UTF-8"),  # fails at once
        ([binary_frame(bytes(2000))], PayloadTooBig, "2000 bytes"),
    ],
)
def test_frame_parser_enforces_message_rules(frames, error, message):
    parser = FrameParser(max_size=1000)
    with pytest.raises(error, match=message):
        parser.feed(b"".join(f.serialize() for f in frames))


def test_frame_parser_accepts_utf8_split_across_fragments_and_compressed_text():
    e_acute = "é".encode()
    frames = [
        Frame(Opcode.TEXT, b"caf" + e_acute[:1], fin=False),
        ping_frame(b"interleaved"),
        Frame(Opcode.CONT, e_acute[1:]),
        Frame(Opcode.TEXT, b"\xff\x00 deflate output", rsv1=True),
    ]
    assert FrameParser().feed(b"".join(f.serialize() for f in frames)) == frames


def test_frame_parser_stays_failed_and_keeps_the_frames_before_the_error():
    parser = FrameParser()
    good = [text_frame("one"), text_frame("two")]
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"".join(f.serialize() for f in good) + bytes.fromhex("8300"))
    assert list(info.value.frames) == good
    assert parser.consumed == 10  # the error is at byte 10 of the stream
    with pytest.raises(ProtocolError, match="already failed"):
        parser.feed(text_frame("three").serialize())


# --- incremental parsing ------------------------------------------------------------------------

STREAM = [
    text_frame("Hello", mask=MASK),
    Frame(Opcode.TEXT, b"Hel", fin=False, mask_key=MASK),
    ping_frame(b"are you there?", mask=MASK),
    Frame(Opcode.CONT, b"lo", mask_key=MASK),
    binary_frame(PAYLOAD_64K, mask=MASK),
    binary_frame(PAYLOAD_256, mask=MASK),
    close_frame(CloseCode.GOING_AWAY, "bye", mask=MASK),
]


def test_frame_parser_one_byte_at_a_time_equals_all_at_once():
    data = b"".join(f.serialize() for f in STREAM)
    all_at_once = FrameParser(expect_masked=True).feed(data)
    parser = FrameParser(expect_masked=True)
    one_by_one = [frame for i in range(len(data)) for frame in parser.feed(data[i : i + 1])]
    assert all_at_once == one_by_one == STREAM
    assert parser.buffered == 0 and parser.consumed == len(data)


def test_every_proper_prefix_needs_more_data():
    for frame in [*STREAM[:4], binary_frame(PAYLOAD_256)]:
        data = frame.serialize()
        for cut in range(len(data)):
            with pytest.raises(NeedMoreData) as info:
                Frame.parse(data[:cut])
            assert cut < info.value.needed <= len(data)


# --- agreement with websockets' frame parser, both ways -------------------------------------------


class LenientWsFrame(ws_frames.Frame):
    """websockets' Frame minus its one check that depends on negotiated extensions.

    websockets rejects any RSV bit when ``extensions=None``: it is an endpoint that knows nothing was
    negotiated. wslab.wire is a codec that must also read permessage-deflate traffic, so it reports
    RSV bits instead. Everything else (opcode, control-frame rules, masking, lengths) is still
    websockets' own code; ``test_stock_websockets_rejects_rsv_bits`` pins the difference.
    """

    def check(self) -> None:
        ws_frames.Frame.check(dataclasses.replace(self, rsv1=False, rsv2=False, rsv3=False))


def ws_outcome(data: bytes, *, mask: bool, frame_cls: type[ws_frames.Frame] = LenientWsFrame) -> tuple:
    """Drive websockets' generator-based parser over complete data, then read close payloads with
    ``Close.parse`` (websockets does that in its protocol layer; wslab.wire does it in Frame.check)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = frame_cls.parse(reader.read_exact, mask=mask, max_size=None, extensions=None)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    except WsProtocolError:
        return ("protocol error",)
    else:
        raise AssertionError("websockets asked for more bytes than the frame holds")
    assert not reader.buffer, "websockets did not consume the whole frame"
    if frame.opcode is ws_frames.Opcode.CLOSE:
        try:
            ws_frames.Close.parse(bytes(frame.data))
        except WsProtocolError:
            return ("protocol error",)
        except UnicodeDecodeError:
            return ("invalid utf-8",)
    return ("ok", int(frame.opcode), frame.fin, frame.rsv1, frame.rsv2, frame.rsv3, bytes(frame.data))


def our_outcome(data: bytes, *, mask: bool) -> tuple:
    try:
        frame, used = Frame.parse(data, expect_masked=mask)
    except InvalidUTF8:
        return ("invalid utf-8",)
    except ProtocolError:
        return ("protocol error",)
    assert used == len(data)
    return ("ok", int(frame.opcode), frame.fin, frame.rsv1, frame.rsv2, frame.rsv3, frame.payload)


BOUNDARY_SIZES = [0, 1, 2, 124, 125, 126, 127, 128, 255, 256, 65534, 65535, 65536, 65537]


def payloads(max_size: int) -> st.SearchStrategy[bytes]:
    """Small random payloads, plus payloads whose size sits on a length-encoding boundary (built from a
    seed, because asking hypothesis for 64 KiB of bytes is slow)."""
    sizes = st.sampled_from([n for n in BOUNDARY_SIZES if n <= max_size])
    sized = st.builds(lambda n, seed: random.Random(seed).randbytes(n), sizes, st.integers(0, 2**32))
    return st.one_of(st.binary(max_size=min(max_size, 200)), sized)


close_payloads = st.one_of(
    st.builds(
        lambda code, reason: struct.pack("!H", code) + reason.encode()[:123],
        st.one_of(st.sampled_from(list(CloseCode)), st.integers(0, 0xFFFF)),
        st.text(max_size=20),
    ),
    st.binary(max_size=125),
)


@st.composite
def frame_fields(draw, *, valid_control_only: bool) -> dict:
    opcode = draw(st.sampled_from(list(Opcode)))
    if opcode.is_control and valid_control_only:
        fin, limit = True, 125
    elif opcode.is_control:  # mostly valid, sometimes too long or fragmented: both must then refuse
        fin, limit = draw(st.sampled_from([True, True, True, False])), 127
    else:
        fin, limit = draw(st.booleans()), 65537
    if opcode is Opcode.CLOSE and draw(st.booleans()):
        payload = draw(close_payloads)
    else:
        payload = draw(payloads(limit))
    rsv1, rsv2, rsv3 = draw(st.sampled_from([(False, False, False)] * 3 + [(True, False, False)]))
    if draw(st.integers(0, 9)) == 0:
        rsv1, rsv2, rsv3 = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    mask = draw(st.one_of(st.none(), st.binary(min_size=4, max_size=4)))
    return dict(opcode=opcode, payload=payload, fin=fin, rsv1=rsv1, rsv2=rsv2, rsv3=rsv3, mask_key=mask)


def length_encoding(payload: bytes) -> str:
    return (
        "7-bit length"
        if len(payload) <= 125
        else "16-bit length"
        if len(payload) <= 65535
        else "64-bit length"
    )


AGREEMENT = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@AGREEMENT
@given(frame_fields(valid_control_only=False))
def test_websockets_parses_what_we_serialize(fields):
    frame = Frame(**fields)
    data = frame.serialize()
    ours, theirs = our_outcome(data, mask=frame.masked), ws_outcome(data, mask=frame.masked)
    event(f"{frame.opcode.name}: {ours[0]}, {length_encoding(frame.payload)}")
    assert ours == theirs
    if ours[0] == "ok":
        assert ours[1:] == (frame.opcode, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3, frame.payload)


@AGREEMENT
@given(frame_fields(valid_control_only=True))
def test_we_parse_what_websockets_serializes(fields):
    mask_key = fields.pop("mask_key")
    ws_frame = LenientWsFrame(ws_frames.Opcode(fields.pop("opcode")), fields.pop("payload"), **fields)
    data = ws_frame.serialize(mask=mask_key is not None, extensions=None)
    ours = our_outcome(data, mask=mask_key is not None)
    event(f"{ws_frame.opcode.name}: {ours[0]}, {length_encoding(ws_frame.data)}")
    assert ours == ws_outcome(data, mask=mask_key is not None)
    if ours[0] == "ok":
        assert ours[1:] == (ws_frame.opcode, ws_frame.fin, *fields_rsv(ws_frame), ws_frame.data)
        assert Frame.parse(data)[0].serialize() == data  # the kept mask key reproduces the exact bytes


def fields_rsv(ws_frame: ws_frames.Frame) -> tuple[bool, bool, bool]:
    return ws_frame.rsv1, ws_frame.rsv2, ws_frame.rsv3


def test_stock_websockets_rejects_rsv_bits_that_we_report():
    data = Frame(Opcode.TEXT, b"\xf2H\xcd\xc9\xc9\x07\x00", rsv1=True).serialize()  # "Hello", deflated
    assert ws_outcome(data, mask=False, frame_cls=ws_frames.Frame) == ("protocol error",)
    assert Frame.parse(data)[0].rsv1


@st.composite
def streams(draw) -> list[Frame]:
    """Valid client streams: messages split into fragments, with control frames in between."""
    frames: list[Frame] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            control = draw(st.sampled_from([Opcode.PING, Opcode.PONG]))
            frames.append(Frame(control, draw(st.binary(max_size=125)), mask_key=b"\x05\x06\x07\x08"))
            continue
        opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
        payload = draw(st.text(max_size=50)).encode() if opcode is Opcode.TEXT else draw(payloads(300))
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for i, part in enumerate(parts):
            first, last = i == 0, i == len(parts) - 1
            frames.append(
                Frame(opcode if first else Opcode.CONT, part, fin=last, mask_key=b"\x01\x02\x03\x04")
            )
    return frames


@settings(max_examples=200, deadline=None)
@given(streams(), st.lists(st.integers(0, 10_000), max_size=8))
def test_frame_parser_is_independent_of_chunking(frames, cuts):
    data = b"".join(f.serialize() for f in frames)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    parser = FrameParser(expect_masked=True)
    assert [f for chunk in chunks for f in parser.feed(chunk)] == frames
    assert parser.buffered == 0


# --- opening handshake --------------------------------------------------------------------------


def test_request_round_trips_and_response_checks():
    request = HandshakeRequest(
        "/chat?room=1",
        "localhost:8000",
        origin="http://localhost:8000",
        subprotocols=["chat.v2", "chat.v1"],
        extra_headers=[("Cookie", "session=abc")],
    )
    assert len(request.key) == 24 and request.key != make_key()
    data = request.serialize()
    assert data.startswith(b"GET /chat?room=1 HTTP/1.1\r\nHost: localhost:8000\r\nUpgrade: websocket\r\n")
    assert data.endswith(b"\r\n\r\n")
    parsed = HandshakeRequest.parse(data)
    assert parsed == request
    assert parsed.header("COOKIE") == "session=abc" and parsed.header("sec-websocket-version") == "13"

    response = HandshakeResponse.for_request(parsed, subprotocol="chat.v1")
    assert response.accept == accept_key(request.key)
    again = HandshakeResponse.parse(response.serialize())
    assert again == response
    again.check(request)
    again.check(request.key)


def test_tampered_accept_fails_naming_expected_and_got():
    request = HandshakeRequest("/", "example.com", key="dGhlIHNhbXBsZSBub25jZQ==")
    response = HandshakeResponse.for_request(request)
    response.headers[2] = ("Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    with pytest.raises(HandshakeError) as info:
        response.check(request)
    message = str(info.value)
    assert (
        "expected 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='" in message
        and "got 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='" in message
    )


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (HandshakeResponse(403, "Forbidden"), "expected status 101 Switching Protocols, got 403 Forbidden"),
        (HandshakeResponse(headers=[("Connection", "Upgrade")]), "Upgrade header must contain 'websocket'"),
        (
            HandshakeResponse(headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")]),
            "missing Sec-WebSocket-Accept",
        ),
    ],
)
def test_response_check_failures(response, message):
    with pytest.raises(HandshakeError, match=message):
        response.check(make_key())


def test_response_check_refuses_unoffered_subprotocol_and_extensions():
    request = HandshakeRequest("/", "h", subprotocols=["a"])
    response = HandshakeResponse.for_request(request)
    with pytest.raises(HandshakeError, match="subprotocol 'b'"):
        HandshakeResponse(headers=[*response.headers, ("Sec-WebSocket-Protocol", "b")]).check(request)
    with pytest.raises(HandshakeError, match="extensions"):
        HandshakeResponse(
            headers=[*response.headers, ("Sec-WebSocket-Extensions", "permessage-deflate")]
        ).check(request)
    with pytest.raises(HandshakeError, match="not offered"):
        HandshakeResponse.for_request(request, subprotocol="b")


GOOD_REQUEST = (
    "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
BAD_REQUESTS = [
    ("POST ", "GET ", "method must be GET"),
    ("HTTP/1.0", "HTTP/1.1", "HTTP/1.1 or later"),
    ("Upgrade: h2c", "Upgrade: websocket", "Upgrade header must contain 'websocket'"),
    ("", "Upgrade: websocket\r\n", "Upgrade header must contain 'websocket'"),
    ("Connection: keep-alive", "Connection: Upgrade", "Connection header must contain the 'upgrade' token"),
    ("Sec-WebSocket-Version: 8", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version must be 13, got '8'"),
    ("", "Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version must be 13, got None"),
    ("c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZQ==", "16 bytes in base64"),
    ("not base64!!", "dGhlIHNhbXBsZSBub25jZQ==", "16 bytes in base64"),
    ("", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "missing Sec-WebSocket-Key"),
]


@pytest.mark.parametrize(("new", "old", "message"), BAD_REQUESTS, ids=[b[2] for b in BAD_REQUESTS])
def test_bad_requests_are_refused_by_us_and_by_websockets(new, old, message):
    data = GOOD_REQUEST.replace(old, new, 1).encode()
    with pytest.raises(HandshakeError, match=message):
        HandshakeRequest.parse(data)
    server = ServerProtocol()
    server.receive_data(data)
    events = server.events_received()
    assert events == [] or server.accept(events[0]).status_code != 101


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD_REQUEST[:-2], "incomplete HTTP head"),
        (GOOD_REQUEST + "hi", "2 bytes follow the HTTP head"),
        (GOOD_REQUEST.replace("Host: example.com\r\n", ""), "missing Host"),
        (GOOD_REQUEST.replace("Host: example.com", "Host example.com"), "malformed header line"),
    ],
)
def test_malformed_heads(data, message):
    with pytest.raises(HandshakeError, match=message):
        HandshakeRequest.parse(data.encode())


def test_header_tokens_are_case_insensitive_lists():
    data = GOOD_REQUEST.replace("Connection: Upgrade", "connection: keep-alive, UPGRADE").replace(
        "Upgrade: websocket", "UPGRADE: WebSocket"
    )
    assert HandshakeRequest.parse(data.encode()).key == "dGhlIHNhbXBsZSBub25jZQ=="


def test_split_http_head():
    response = HandshakeResponse.for_request(HandshakeRequest("/", "h")).serialize()
    frames = text_frame("hi").serialize()
    assert split_http_head(response[:-1]) is None
    assert split_http_head(response + frames) == (response, frames)
    with pytest.raises(HandshakeError, match="within 100 bytes"):
        split_http_head(b"x" * 101, limit=100)


def test_websockets_client_request_is_parsed_and_accepts_our_response():
    client = ClientProtocol(
        parse_uri("ws://example.com:8000/chat?room=1"),
        subprotocols=["chat.v1", "chat.v2"],
        extensions=[ClientPerMessageDeflateFactory()],  # what websockets.connect() offers by default
    )
    client.send_request(client.connect())
    [data] = client.data_to_send()

    request = HandshakeRequest.parse(data)
    assert (request.path, request.host) == ("/chat?room=1", "example.com:8000")
    assert request.subprotocols == ["chat.v1", "chat.v2"]
    assert request.header("Sec-WebSocket-Extensions").startswith("permessage-deflate")

    client.receive_data(HandshakeResponse.for_request(request, subprotocol="chat.v2").serialize())
    assert client.handshake_exc is None
    assert client.state is State.OPEN and client.subprotocol == "chat.v2"


def test_websockets_client_rejects_a_tampered_response_like_we_do():
    client = ClientProtocol(parse_uri("ws://example.com/"))
    client.send_request(client.connect())
    request = HandshakeRequest.parse(client.data_to_send()[0])
    response = HandshakeResponse.for_request(HandshakeRequest("/", "example.com"))  # accept for another key
    client.receive_data(response.serialize())
    assert client.handshake_exc is not None and client.state is not State.OPEN
    with pytest.raises(HandshakeError, match="mismatch"):
        response.check(request)


def test_websockets_server_accepts_our_request_and_we_accept_its_response():
    request = HandshakeRequest(
        "/chat", "localhost:9000", origin="http://localhost:9000", subprotocols=["chat.v1"]
    )
    server = ServerProtocol(subprotocols=["chat.v1"])
    server.receive_data(request.serialize())
    [ws_request] = server.events_received()
    ws_response = server.accept(ws_request)
    assert ws_response.status_code == 101, ws_response.body
    server.send_response(ws_response)
    [data] = server.data_to_send()

    response = HandshakeResponse.parse(data)
    response.check(request)
    assert response.subprotocol == "chat.v1" and server.state is State.OPEN
