"""What a user or room name may be, checked where it enters the app, and how untrusted text is logged.

Every name the chat stores comes from a client: a user name from a token's ``sub`` claim (signed, but
signed for whatever name the login was asked for), a room name from the URL path. Both end up in JSON
sent to every member, in Redis keys and in log lines. So a name is checked once, at the boundary, and
refused with a clear reason if it is not a plain, printable name:

* a **lone surrogate** (``"\\ud800"``, valid in JSON, not in UTF-8) cannot be encoded: a room that
  stored one could never send its member list again;
* **control characters** (CR/LF, NUL, ESC...) forge lines in line-based logs and terminals;
* **format characters** (bidi overrides such as U+202E, zero-width spaces and joiners) make two
  different names look the same, or a name read backwards;
* leading or trailing spaces, and names longer than :data:`MAX_NAME` characters.

Message text is free-form (a chat message may contain a newline); it is only required to be valid
UTF-8, which the JSON parser already guarantees. What the app *logs* about any client value goes through
:func:`printable`, so that nothing a client sends can write a raw control character into a log.
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 64
"""Longest user or room name, in characters."""

_REFUSED = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (bidi override, zero-width)",
    "Cs": "a lone surrogate (not valid UTF-8)",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


class InvalidName(ValueError):
    """A user or room name the app refuses; the message says why without echoing the raw name."""


def check_name(name: object, what: str = "name") -> str:
    """``name`` if it is a plain printable name; :class:`InvalidName` saying why not.

    Why refuse rather than clean: a cleaned name is a different name, and two clients could end up
    with the same one; a refusal is visible and the client can pick another.
    """
    if not isinstance(name, str):
        raise InvalidName(f"a {what} must be a string")
    if not name:
        raise InvalidName(f"a {what} must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidName(f"a {what} has at most {MAX_NAME} characters, got {len(name)}")
    for position, char in enumerate(name):
        category = unicodedata.category(char)
        refused = _REFUSED.get(category)
        if refused is not None:
            raise InvalidName(f"a {what} must not contain {refused} (U+{ord(char):04X} at {position})")
    if name != name.strip():
        raise InvalidName(f"a {what} must not start or end with a space")
    return name


def is_valid_name(name: object) -> bool:
    """True if :func:`check_name` accepts ``name``."""
    try:
        check_name(name)
    except InvalidName:
        return False
    return True


def printable(text: object, limit: int = 200) -> str:
    """``text`` safe for a one-line log: control, format and surrogate characters as ``\\uXXXX`` escapes.

    Used for every client-controlled value in a report or log line: a room name with CR/LF must not
    start a forged line, and a lone surrogate must not make the log handler raise.
    """
    raw = text if isinstance(text, str) else repr(text)
    out: list[str] = []
    for char in raw[:limit]:
        if unicodedata.category(char) in _REFUSED or char == "\\":
            out.append(f"\\u{ord(char):04x}" if char != "\\" else "\\\\")
        else:
            out.append(char)
    if len(raw) > limit:
        out.append("…")
    return "".join(out)
