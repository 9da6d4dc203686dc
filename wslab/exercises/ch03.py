"""Chapter 03, authentication: decide whether a handshake's Origin may open a cookie-authenticated socket.

The check is a few lines, and every popular shortcut (a substring test, comparing host names only,
letting a missing Origin through) lets some foreign page in. The checker computes the expected answers
itself with :func:`urllib.parse.urlsplit` rather than calling :mod:`wslab.chat.origins`, whose
reference allows a missing Origin on purpose (it authenticates with a token, not a cookie).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article

ALLOWLIST = frozenset({"https://chat.example"})
LOOK = "the attacker registered that domain. Compare whole origins, not substrings, prefixes or suffixes"
HOST = "api.chat.example:8443"


@dataclass(frozen=True)
class Case:
    """One handshake: its Origin and Host headers, the verdict, and why (said only when it is missed)."""

    origin: str | None
    host: str
    allowed: bool
    why: str


CASES = (
    Case(
        "https://chat.example",
        HOST,
        True,
        "it is on the allowlist: refusing it locks the chat's own site out",
    ),
    Case(f"https://{HOST}", HOST, True, "it is a page this very server sent (same origin)"),
    Case(f"http://{HOST}", HOST, True, "it is a page this very server sent (same origin)"),
    Case("https://evil.example", HOST, False, "any web site the victim visits could open the socket"),
    Case(
        "https://chat.example.evil.example",
        HOST,
        False,
        LOOK,
    ),
    Case(
        "https://evilchat.example",
        HOST,
        False,
        LOOK,
    ),
    Case(
        "https://evil.chat.example",
        HOST,
        False,
        "a subdomain of an allowed site is another origin (anyone who can host a page there, or take "
        "over a stale DNS record, gets in). Compare whole origins, not substrings, prefixes or suffixes",
    ),
    Case(
        "https://evil.api.chat.example:8443",
        HOST,
        False,
        "it only ends with this server's host: it is another host, another origin. Compare whole "
        "origins, not substrings, prefixes or suffixes",
    ),
    Case(
        "ws://api.chat.example:8443",
        HOST,
        False,
        "pages are served over http or https; an origin with another scheme is not a page this server "
        "sent, and the scheme is part of an origin",
    ),
    Case(
        "http://chat.example",
        HOST,
        False,
        "the scheme is part of an origin: a page served over plain http can be rewritten by anyone on "
        "the network, so it is not the https site you trust",
    ),
    Case(
        "https://api.chat.example:9999",
        HOST,
        False,
        "the port is part of an origin: another service on the same host name is another origin",
    ),
    Case(
        "https://api.chat.example:8443.evil.example",
        HOST,
        False,
        LOOK,
    ),
    Case(
        "null",
        HOST,
        False,
        "`null` is what sandboxed iframes and file:// pages send; it names no site, so nobody vouches for it",
    ),
    Case(
        None,
        HOST,
        False,
        "the handshake has no Origin header at all. This endpoint authenticates with a cookie: refuse what "
        "you cannot attribute to a page you trust",
    ),
)


def _expected(origin: str | None, host: str, allowlist: frozenset[str]) -> bool:
    from urllib.parse import urlsplit

    if origin is None:
        return False
    if origin in allowlist:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host


assert all(_expected(c.origin, c.host, ALLOWLIST) == c.allowed for c in CASES)


class OriginAllowed(Exercise):
    """q1: the Origin check a cookie-authenticated WebSocket endpoint runs before ``accept()``."""

    name = "Allow an Origin, or not"
    reads = ("origin_allowed",)
    placeholder = """
def origin_allowed(origin: str | None, host: str, allowlist: set[str]) -> bool:
    ...  # your code here
"""
    hints = (
        "An origin is exactly `scheme://host[:port]`, and two origins are the same only when all three "
        "parts are equal. Allow the allowlisted origins and the page this server sent; refuse the rest.",
        "Refuse a missing Origin first (`origin is None`). Then an exact `in allowlist` test. For the "
        "same-origin case, `urllib.parse.urlsplit(origin)` gives `.scheme` and `.netloc` (host and port).",
        "Same origin means: the scheme is `http` or `https`, and the `netloc` equals the `Host` header "
        "exactly (port included). Everything else, `null` too, is refused.",
    )
    solution_code = """
from urllib.parse import urlsplit


def origin_allowed(origin: str | None, host: str, allowlist: set[str]) -> bool:
    if origin is None:  # cookie auth: no Origin, no socket
        return False
    if origin in allowlist:  # whole origins, compared exactly
        return True
    parts = urlsplit(origin)  # same origin: the page this server sent
    return parts.scheme in ("http", "https") and parts.netloc == host
"""
    wrong_answers = (
        WrongAnswer(
            "substring match",
            """
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return False
    return any(allowed in origin for allowed in allowlist) or origin in (f"http://{host}", f"https://{host}")
""",
            "whole origins",
        ),
        WrongAnswer(
            "hard-coded domain substring",
            """
def origin_allowed(origin, host, allowlist):
    return origin is not None and "chat.example" in origin
""",
            "whole origins",
        ),
        WrongAnswer(
            "ignores the scheme",
            """
from urllib.parse import urlsplit
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return False
    netloc = urlsplit(origin).netloc
    return netloc == host or netloc in {urlsplit(a).netloc for a in allowlist}
""",
            "scheme",
        ),
        WrongAnswer(
            "compares host names without the port",
            """
from urllib.parse import urlsplit
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return False
    if origin in allowlist:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.hostname == host.split(":")[0]
""",
            "port",
        ),
        WrongAnswer(
            "lets a missing Origin through",
            """
from urllib.parse import urlsplit
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return True  # not a browser
    if origin in allowlist:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host
""",
            "no Origin header",
        ),
        WrongAnswer(
            "same-origin by suffix of the host",
            """
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return False
    if origin in allowlist:
        return True
    return origin.startswith(("http://", "https://")) and origin.endswith(host)
""",
            "only ends with this server's host",
        ),
        WrongAnswer(
            "allowlist by host-name suffix",
            """
from urllib.parse import urlsplit
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return False
    parts = urlsplit(origin)
    for allowed in map(urlsplit, allowlist):  # the site and its subdomains
        if parts.scheme == allowed.scheme and (
            parts.hostname == allowed.hostname or parts.hostname.endswith("." + allowed.hostname)
        ):
            return True
    return parts.scheme in ("http", "https") and parts.netloc == host
""",
            "a subdomain of an allowed site is another origin",
        ),
        WrongAnswer(
            "startswith an allowed origin",
            """
from urllib.parse import urlsplit
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return False
    if any(origin.startswith(a) for a in allowlist):
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host
""",
            "whole origins",
        ),
        WrongAnswer(
            "same-origin by prefix",
            """
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return False
    if origin in allowlist:
        return True
    return origin.startswith((f"http://{host}", f"https://{host}"))
""",
            "whole origins",
        ),
        WrongAnswer(
            "same origin without looking at the scheme",
            """
from urllib.parse import urlsplit
def origin_allowed(origin, host, allowlist):
    if origin is None:
        return False
    return origin in allowlist or urlsplit(origin).netloc == host
""",
            "pages are served over http or https",
        ),
    )
    secrets = ('parts.scheme in ("http", "https") and parts.netloc == host',)
    correct_message = (
        f"`origin_allowed` gives the right verdict for all {len(CASES)} handshakes: the allowlisted site, "
        "the same-origin page, and look-alike (substring, prefix, suffix, subdomain), downgraded, "
        "other-scheme, other-port, `null` and missing origins."
    )

    def _check(self, origin_allowed: Callable[[str | None, str, set[str]], object]) -> None:
        for case in CASES:
            allowlist = set(ALLOWLIST)
            got = self.call(origin_allowed, case.origin, case.host, allowlist)
            # Spelled out in full (describe() shortens long arguments): the look-alike is the lesson.
            call = f"{self._name_of(origin_allowed)}({case.origin!r}, {case.host!r}, {allowlist!r})"
            if not isinstance(got, bool):
                if got is None:
                    raise Incorrect(f"`{call}` returned None: did you forget `return`?")
                raise Incorrect(f"`{call}` returned {article(type(got).__name__)}; it should return a bool.")
            if got != case.allowed:
                verdict = "let it in" if got else "refused it"
                raise Incorrect(f"`{call}` {verdict}, but {case.why}.")


from wslab.exercises.build_ch03 import BuildAuth  # noqa: E402  (the build track: served for real)

CHAPTER = Chapter("03", "03_authentication", (OriginAllowed, BuildAuth))
