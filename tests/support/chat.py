"""One chat app (wslab.chat) served by a Lab, and its clients: what the chat area's tests share.

Kept out of the test modules so a test file never imports another one: importing a test module runs
its collection-time code and re-registers its tests under a second name.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from wslab import Lab
from wslab.chat import ChatSettings, ConnectionManager, create_app, issue_token
from wslab.clients import LabClient
from wslab.lessons import join_chat
from wslab.runtime.servers import ServerHandle

SECRET = "wslab-chat-test-secret-0123456789abcdef"


def chat_settings(**overrides: Any) -> ChatSettings:
    """Short real durations and generous limits; each test tightens the one it is about."""
    values: dict[str, Any] = {
        "secret": SECRET,
        "auth_timeout": 1.0,
        "rate": 1000.0,
        "burst": 1000,
        "queue_size": 64,
        "max_message_bytes": 4096,
    }
    values.update(overrides)
    return ChatSettings(**values)


async def start(lab: Lab, **overrides: Any) -> tuple[ServerHandle, ConnectionManager]:
    """Serve a fresh chat app whose reports land in the lab's event log under ``chat``."""
    app = create_app(
        chat_settings(**overrides), report=lambda kind, msg: lab.events.record("chat", kind, msg)
    )
    server = await lab.serve(app, name="chat")
    return server, app.state.chat


def token(user: str, ttl: float = 60.0, secret: str = SECRET) -> str:
    """A token for ``user`` signed with the tests' secret (a negative ``ttl`` gives an expired one)."""
    return issue_token(user, secret, ttl)


async def join(lab: Lab, server: ServerHandle, user: str, room: str = "lobby", **options: Any) -> LabClient:
    """Connect as ``user``, authenticate in the first message, and check the ``ready`` answer."""
    client = await join_chat(lab, server, user, token=token(user), room=room, timeout=2.0, **options)
    ready = json.loads(client.received[0])  # the first thing the server says is `ready`
    assert ready["user"] == user and ready["room"] == room, ready
    return client


async def logout(server: ServerHandle, bearer: str) -> tuple[int, dict[str, Any]]:
    """POST /logout with ``Authorization: Bearer <bearer>``: the status and the JSON body."""

    def post() -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            server.url + "/logout", method="POST", headers={"Authorization": f"Bearer {bearer}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return await asyncio.to_thread(post)
