"""F24, the token in the URL: write the log scrubber an operator puts in front of the log pipeline.

The learner writes ``scrub(line)``: replace the value of every credential-looking query parameter
(``token``, ``access_token``, ``refresh_token``, ...) and keep everything else of the line, which is
what operators debug with. The checker runs the notebook's naive app (token in the URL) behind a relay,
connects clients the way real ones do (a session token; a mobile client that adds a refresh token and a
language; a library that calls it ``access_token``; a client with no credential at all), and scrubs the
real access-log lines the relay and uvicorn wrote. Every secret must be gone, every other byte kept.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

from wslab.exercises._core import Chapter, Exercise, Incorrect, WrongAnswer, article
from wslab.exercises._live import scenario, until

SECRET = "wslab-f24-exercise-secret-0123456789abcdef"
SHOWN = "scrub(line)"


def _kept_in_order(pieces: list[str], scrubbed: str) -> str | None:
    """The first non-secret piece of the line that ``scrubbed`` lost (None: all kept, in order)."""
    position = 0
    for piece in pieces:
        if not piece:
            continue
        found = scrubbed.find(piece, position)
        if found < 0:
            return piece
        position = found + len(piece)
    return None


class Scrub(Exercise):
    """q1: redact credentials from access-log lines, and nothing else."""

    name = "Scrub the logs"
    reads = ("scrub",)
    placeholder = """
import re


def scrub(line: str) -> str:
    ...  # your code here
"""
    hints = (
        "A credential in a URL is the value of a query parameter: after `?` or `&`, a name such as `token`, "
        "`access_token` or `refresh_token`, then `=`, then the value up to the next `&`, space or quote.",
        "One regular expression with a group for the parameter's name and `=`, and `re.sub` with a "
        r"replacement that keeps the group: `\1[REDACTED]`. Make sure it replaces every match in the line.",
        r"`[?&]` then a name ending in `token` (`\w*token`), or any of `jwt|auth|password|api_key`; the "
        r"value is `[^&\s\"]+`: it stops at `&`, so the parameters after it survive.",
    )
    solution_code = r"""
import re

CREDENTIAL = re.compile(r"(?i)([?&](?:\w*token|jwt|auth|password|api_key)=)[^&\s\"]+")


def scrub(line: str) -> str:
    return CREDENTIAL.sub(r"\1[REDACTED]", line)
"""
    wrong_answers = (
        WrongAnswer(
            "only the parameter named token",
            r"""
import re
def scrub(line):
    return re.sub(r"([?&]token=)[^&\s\"]+", r"\1[REDACTED]", line)
""",
            "still holds the value of `refresh_token`",
        ),
        WrongAnswer(
            "the value runs to the next space",
            r"""
import re
def scrub(line):
    return re.sub(r"([?&]\w*token=)\S+", r"\1[REDACTED]", line)
""",
            "lost `&refresh_token=`",
        ),
        WrongAnswer(
            "only the first credential of a line",
            r"""
import re
def scrub(line):
    return re.sub(r"([?&]\w*token=)[^&\s\"]+", r"\1[REDACTED]", line, count=1)
""",
            "still holds the value of `refresh_token`",
        ),
        WrongAnswer(
            "drops any line that holds a credential",
            r"""
import re
def scrub(line):
    return "[line removed: credential]" if re.search(r"[?&]\w*token=", line) else line
""",
            "lost `127.0.0.1",
        ),
        WrongAnswer(
            "redacts every query string",
            r"""
import re
def scrub(line):
    return re.sub(r"\?[^\s\"]*", "?[REDACTED]", line)
""",
            "changed a line that holds no credential",
        ),
    )
    secrets = (r"\w*token|jwt|auth|password|api_key",)
    correct_message = (
        "`scrub` removed all four credentials (a session token, a refresh token next to it, an "
        "`access_token`) from every real log line, kept every other byte (paths, `&lang=en`, status), and "
        "left the line with no credential untouched."
    )
    call_timeout = 30.0

    async def _check(self, scrub: Callable[..., Any]) -> None:
        from wslab.chat import ChatSettings, issue_token
        from wslab.lab import Lab
        from wslab.pitfalls import f24_token_in_url

        self.describe(scrub)
        session, refresh, library = (issue_token(u, SECRET, ttl=900) for u in ("alice", "bob", "erin"))
        secrets = {
            session: "`token`",
            refresh: "`refresh_token`",
            library: "`access_token`",
        }
        bob = issue_token("bob", SECRET, ttl=900)
        secrets[bob] = "`token`"
        queries = {
            "alice": f"?token={session}",
            "bob": f"?token={bob}&refresh_token={refresh}&lang=en",
            "erin": f"?access_token={library}",
            "frank": "?room=ops&lang=en",
        }
        async with Lab() as lab:
            app = f24_token_in_url.create_app(ChatSettings(secret=SECRET, auth_timeout=0.2))
            naive = await lab.serve(app, name="f24-naive", access_log=False)
            relay = await lab.proxy(naive, name="f24-relay")
            for user, query in queries.items():
                client = await lab.connect(relay.ws_url(f"/ws/chat/lobby{query}"), name=user)
                if user in ("alice", "bob"):
                    await client.close()
                else:  # refused by the app (no `token`), but the relay and uvicorn have logged the URL
                    with contextlib.suppress(TimeoutError):
                        await client.wait_closed(2.0)
            await until(lambda: len(relay.access_log) == len(queries), 2.0)
            lines = list(relay.access_log)
            lines += [e.message for e in lab.events.select(source="server:f24-naive", kind="access")]
        async with scenario("scrubbing the access logs of four clients", 5):
            # the line with no credential first: a scrubber that rewrites every URL is caught there
            for line in sorted(lines, key=lambda line: any(token in line for token in secrets)):
                self._judge(scrub, line, secrets)

    def _judge(self, scrub: Callable[..., Any], line: str, secrets: dict[str, str]) -> None:
        shown = re.sub(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", "<a token>", line)
        scrubbed = self.call(scrub, line)
        if not isinstance(scrubbed, str):
            got = "None" if scrubbed is None else article(type(scrubbed).__name__)
            raise Incorrect(
                f"`scrub(line)` returned {got} for `{shown}`; it should return the scrubbed line."
            )
        present = [token for token in secrets if token in line]
        if not present:
            if scrubbed != line:
                raise Incorrect(f"`scrub` changed a line that holds no credential: `{shown}`.")
            return
        for token in present:
            for piece in (token, *token.split(".")):
                if piece in scrubbed:
                    raise Incorrect(
                        f"the scrubbed line `{scrubbed.replace(token, '<a token>')}` still holds the value "
                        f"of {secrets[token]}: anyone who reads the log can replay it."
                    )
        pieces = re.split("|".join(re.escape(token) for token in present), line)
        lost = _kept_in_order(pieces, scrubbed)
        if lost is not None:
            raise Incorrect(
                f"the scrubbed line lost `{lost.strip()[:40]}` (from `{shown}`): redact the credential's "
                "value, keep everything else, which is what operators debug with."
            )


CHAPTER = Chapter("F24", "F24_token_in_url", (Scrub,))
