"""Chapter 01, handshake and frames: compute the accept header, unmask a client frame.

Both answers are a few lines over bytes, which is the point of the chapter: the handshake and the
framing are plain, checkable transformations. The checkers compute the expected values themselves
(hashlib, base64, XOR) rather than import :mod:`wslab.wire`, so the reference and the learner's code
never share a bug.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import re
from collections.abc import Callable

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article

# RFC 6455 §1.3: the GUID a server appends to the client's key, and the RFC's own worked example.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="

# RFC 6455 §5.7: a single-frame masked text message.
RFC_MASK = bytes.fromhex("37fa213d")
RFC_MASKED = bytes.fromhex("7f9f4d5158")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _accept(key: str) -> str:
    return _b64(hashlib.sha1((key + GUID).encode("ascii")).digest())


def _xor(payload: bytes, mask_key: bytes, period: int = 4) -> bytes:
    return bytes(b ^ mask_key[i % period] for i, b in enumerate(payload))


def _keys() -> tuple[str, ...]:
    """The RFC's key first (its answer is in the RFC, so a learner can compare), then fresh ones."""
    return (RFC_KEY, *(_b64(random.Random(seed).randbytes(16)) for seed in (1, 2, 3)))


def _unmask_cases() -> tuple[tuple[bytes, bytes], ...]:
    """(masked payload, mask key): the RFC's example, then lengths around and past the key's 4 bytes."""
    rng = random.Random(6455)
    cases = [(RFC_MASKED, RFC_MASK), (b"", rng.randbytes(4))]
    for length in (1, 3, 4, 7, 8, 13, 126):
        key = rng.randbytes(4)
        cases.append((_xor(rng.randbytes(length), key), key))
    return tuple(cases)


KEYS = _keys()
UNMASK_CASES = _unmask_cases()


class AcceptFor(Exercise):
    """q1: the server's half of the opening handshake."""

    name = "Compute Sec-WebSocket-Accept"
    reads = ("accept_for",)
    placeholder = """
def accept_for(key: str) -> str:
    ...  # your code here
"""
    hints = (
        "The server proves it understood the handshake by transforming the client's `Sec-WebSocket-Key`: "
        "append the fixed GUID from RFC 6455 §1.3 to the key, hash that with SHA-1, and send the digest "
        "as base64 text.",
        "`hashlib.sha1()` takes bytes: encode the string `key + GUID`, and take the raw 20-byte "
        "`.digest()`, not its hexadecimal form. The key is used as received: do not decode it.",
        "`base64.b64encode(digest)` returns bytes, but a header value is a `str`: finish with "
        '`.decode("ascii")`. The GUID is `258EAFA5-E914-47DA-95CA-C5AB0DC85B11`.',
    )
    solution_code = """
import base64
import hashlib

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key: str) -> str:
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")
"""
    wrong_answers = (
        WrongAnswer(
            "forgot the GUID",
            """
import base64, hashlib
def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
""",
            "GUID",
        ),
        WrongAnswer(
            "hexdigest instead of base64",
            """
import hashlib
def accept_for(key: str) -> str:
    return hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).hexdigest()
""",
            "hexadecimal",
        ),
        WrongAnswer(
            "SHA-256 instead of SHA-1",
            """
import base64, hashlib
def accept_for(key: str) -> str:
    digest = hashlib.sha256((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()
""",
            "SHA-256",
        ),
        WrongAnswer(
            "decoded the key from base64 before hashing",
            """
import base64, hashlib
def accept_for(key: str) -> str:
    raw = base64.b64decode(key) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    return base64.b64encode(hashlib.sha1(raw).digest()).decode()
""",
            "exactly as it appears",
        ),
        WrongAnswer(
            "returns bytes instead of str",
            """
import base64, hashlib
def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
""",
            "returned bytes",
        ),
        WrongAnswer(
            "the GUID before the key",
            """
import base64, hashlib
def accept_for(key: str) -> str:
    digest = hashlib.sha1(("258EAFA5-E914-47DA-95CA-C5AB0DC85B11" + key).encode()).digest()
    return base64.b64encode(digest).decode()
""",
            "puts the GUID first",
        ),
        WrongAnswer(
            "the GUID in lower case",
            """
import base64, hashlib
def accept_for(key: str) -> str:
    digest = hashlib.sha1((key + "258eafa5-e914-47da-95ca-c5ab0dc85b11").encode()).digest()
    return base64.b64encode(digest).decode()
""",
            "spelled exactly as in RFC 6455",
        ),
        WrongAnswer(
            "only the RFC's example, hard-coded",
            """
def accept_for(key: str) -> str:
    return "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
""",
            "right shape",
        ),
    )
    secrets = tuple(_accept(key) for key in KEYS)
    correct_message = f"`accept_for` matches RFC 6455 for the RFC's example key and {len(KEYS) - 1} others."

    def _check(self, accept_for: Callable[[str], object]) -> None:
        for key in KEYS:
            got = self.call(accept_for, key)
            if got != _accept(key):
                raise Incorrect(self._diagnose(self.describe(accept_for, key), key, got))

    @staticmethod
    def _diagnose(call: str, key: str, got: object) -> str:
        """Name the mistake the answer's shape betrays, so the reason teaches the protocol."""
        if got is None:
            return f"`{call}` returned None: did you forget `return`?"
        if isinstance(got, bytes | bytearray):
            return (
                f"`{call}` returned bytes. A header value is text: turn the base64 bytes into a `str` "
                "before returning."
            )
        if not isinstance(got, str):
            return f"`{call}` returned {article(type(got).__name__)}; the header value is a `str`."
        if re.fullmatch(r"[0-9a-fA-F]{40}", got):
            return (
                f"`{call}` returned hexadecimal digits. The header value is base64 text: it encodes the "
                "raw 20 digest bytes, not their hex spelling."
            )
        try:
            raw = base64.b64decode(got, validate=True)
        except binascii.Error:
            return f"`{call}` returned a str that is not valid base64 ({len(got)} characters)."
        if re.fullmatch(rb"[0-9a-fA-F]{40}", raw):
            return (
                f"`{call}` returned base64 of hexadecimal digits: encode the raw 20 digest bytes, not "
                "their hex spelling."
            )
        if len(raw) == 32:
            return (
                f"`{call}` returned base64 that decodes to 32 bytes, the size of a SHA-256 digest. The "
                "handshake uses SHA-1, whose digest is 20 bytes."
            )
        if len(raw) != 20:
            return f"`{call}` returned base64 that decodes to {len(raw)} bytes; a SHA-1 digest is 20 bytes."
        if got == _b64(hashlib.sha1(key.encode("ascii")).digest()):
            return f"`{call}` hashes the key alone: append RFC 6455's fixed GUID to the key before hashing."
        if got == _b64(hashlib.sha1((GUID + key).encode("ascii")).digest()):
            return f"`{call}` puts the GUID first: the key comes first, then the GUID."
        if got == _b64(hashlib.sha1(base64.b64decode(key) + GUID.encode("ascii")).digest()):
            return (
                f"`{call}` hashes the 16 bytes the key decodes to. RFC 6455 uses the key exactly as it "
                "appears in the header, as text, without decoding it."
            )
        return (
            f"`{call}` returned the right shape (a 20-byte digest as base64) but the wrong value: check "
            "that you hash exactly `key + GUID` and that the GUID is spelled exactly as in RFC 6455."
        )


class Unmask(Exercise):
    """q2: what a server does to every frame a client sends."""

    name = "Unmask a client frame"
    reads = ("unmask",)
    placeholder = """
def unmask(payload: bytes, mask_key: bytes) -> bytes:
    ...  # your code here
"""
    hints = (
        "Masking is XOR with the 4-byte masking key, one payload byte at a time. XOR undoes itself, so "
        "unmasking is the very same operation.",
        "Payload byte `i` is XORed with key byte `i % 4`: the key repeats for as long as the payload "
        "lasts, and the payload length need not be a multiple of 4.",
        "Iterating over `bytes` gives ints, and `bytes()` accepts an iterable of ints: "
        "`bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload))`.",
    )
    solution_code = """
def unmask(payload: bytes, mask_key: bytes) -> bytes:
    return bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload))
"""
    wrong_answers = (
        WrongAnswer(
            "key not repeated (zip stops after 4 bytes)",
            """
def unmask(payload: bytes, mask_key: bytes) -> bytes:
    return bytes(b ^ m for b, m in zip(payload, mask_key))
""",
            "repeats",
        ),
        WrongAnswer(
            "key not repeated (bytes after the 4th left masked)",
            """
def unmask(payload: bytes, mask_key: bytes) -> bytes:
    head = bytes(b ^ m for b, m in zip(payload, mask_key))
    return head + payload[4:]
""",
            "repeats",
        ),
        WrongAnswer(
            "uses i % 3",
            """
def unmask(payload: bytes, mask_key: bytes) -> bytes:
    return bytes(b ^ mask_key[i % 3] for i, b in enumerate(payload))
""",
            "only 3 of the 4 key bytes",
        ),
        WrongAnswer(
            "returns str",
            """
def unmask(payload: bytes, mask_key: bytes) -> str:
    return "".join(chr(b ^ mask_key[i % 4]) for i, b in enumerate(payload))
""",
            "returned a str",
        ),
        WrongAnswer(
            "drops the bytes after the last whole key",
            """
def unmask(payload: bytes, mask_key: bytes) -> bytes:
    whole = len(payload) // 4 * 4
    return bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload[:whole]))
""",
            "unmasking keeps the length",
        ),
        WrongAnswer(
            "the key bytes in reverse order",
            """
def unmask(payload: bytes, mask_key: bytes) -> bytes:
    return bytes(b ^ mask_key[3 - i % 4] for i, b in enumerate(payload))
""",
            "gets byte 0",
        ),
        WrongAnswer(
            "uses i % 2",
            """
def unmask(payload: bytes, mask_key: bytes) -> bytes:
    return bytes(b ^ mask_key[i % 2] for i, b in enumerate(payload))
""",
            "only 2 of the 4 key bytes",
        ),
    )
    secrets = ("Hello", "48656c6c6f")
    correct_message = (
        f"`unmask` recovers the RFC 6455 §5.7 example and {len(UNMASK_CASES) - 1} other payloads, "
        "including an empty one and lengths that are not multiples of 4."
    )

    def _check(self, unmask: Callable[[bytes, bytes], object]) -> None:
        for payload, mask_key in UNMASK_CASES:
            got = self.call(unmask, payload, mask_key)
            if got != _xor(payload, mask_key):
                raise Incorrect(
                    self._diagnose(self.describe(unmask, payload, mask_key), payload, mask_key, got)
                )

    @staticmethod
    def _diagnose(call: str, payload: bytes, mask_key: bytes, got: object) -> str:
        """Name the mistake the result betrays; speak of sizes and positions, never of the plaintext."""
        if got is None:
            return f"`{call}` returned None: did you forget `return`?"
        if isinstance(got, str):
            return (
                f"`{call}` returned a str. Frame payloads are bytes, even in text frames: decoding "
                "UTF-8 comes after unmasking and is not part of it."
            )
        if not isinstance(got, bytes | bytearray):
            return f"`{call}` returned {article(type(got).__name__)}; it should return bytes."
        size = f"a {len(payload)}-byte payload"
        want = _xor(payload, mask_key)
        if len(got) != len(payload):
            if len(payload) > 4 and len(got) == 4:
                return (
                    f"`{call}` returned only 4 bytes for {size}: unmasking keeps the length, and the "
                    "4-byte key repeats for the whole payload."
                )
            return f"`{call}` returned {len(got)} bytes for {size}: unmasking never changes the length."
        if bytes(got) == want[:4] + payload[4:]:
            return (
                f"`{call}` unmasks only the first 4 bytes of {size}: the key repeats for the whole "
                "payload, so byte 4 uses key byte 0 again."
            )
        for period in (1, 2, 3):
            if bytes(got) == _xor(payload, mask_key, period):
                return (
                    f"`{call}` cycles through only {period} of the 4 key bytes: every key byte takes "
                    "its turn."
                )
        if bytes(got) == payload:
            return f"`{call}` returned the payload unchanged."
        first = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        return f"`{call}` gets byte {first} of {size} wrong (counting from 0)."


CHAPTER = Chapter("01", "01_handshake_and_frames", (AcceptFor, Unmask))
