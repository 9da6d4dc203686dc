"""F28 pitfalls: with authentication checked once, an expired token and a logout leave the socket open."""

from __future__ import annotations

import asyncio

import pytest
from support.chat import chat_settings, logout, token

from wslab import Lab
from wslab.chat import create_app
from wslab.clients import LabClient
from wslab.lessons import join_chat
from wslab.pitfalls import f28_auth_once as f28
from wslab.runtime.servers import ServerHandle

pytestmark = pytest.mark.anyio


async def join_with(lab: Lab, server: ServerHandle, name: str, bearer: str) -> LabClient:
    return await join_chat(lab, server, name, token=bearer)


async def still_works(client: LabClient, text: str) -> bool:
    await client.send_json({"type": "say", "text": text})
    while (message := await client.recv_json(timeout=1)).get("type") != "message":
        pass
    return bool(message["text"] == text)


async def test_an_expired_token_keeps_an_auth_once_socket_open_and_the_reference_closes_it() -> None:
    async with Lab() as lab:
        broken = await lab.serve(f28.create_app(chat_settings()), name="f28")
        reference = await lab.serve(create_app(chat_settings()), name="reference")
        on_broken = await join_with(lab, broken, "alice@f28", token("alice", ttl=0.3))
        on_reference = await join_with(lab, reference, "alice@reference", token("alice", ttl=0.3))
        assert await on_reference.wait_closed(2) == "4002 TOKEN_EXPIRED 'token expired'"
        await asyncio.sleep(0.3)  # the token is 0.3 s past its exp by now
        assert await still_works(on_broken, "sent with an expired token")  # and it still speaks
        await on_broken.close()


async def test_a_logout_leaves_the_open_socket_alone_but_refuses_new_ones() -> None:
    async with Lab() as lab:
        broken = await lab.serve(f28.create_app(chat_settings()), name="f28")
        bearer = token("alice")
        phone = await join_with(lab, broken, "alice-phone", bearer)
        assert (await logout(broken, bearer))[0] == 200
        assert await still_works(phone, "after logout")  # the stolen or forgotten session goes on
        again = await lab.connect(broken.ws_url("/ws/chat/lobby"), name="alice-again")
        await again.send_json({"type": "auth", "token": bearer})
        assert await again.wait_closed(2) == "4001 UNAUTHORIZED 'token revoked'"  # only new ones refused
        await phone.close()
