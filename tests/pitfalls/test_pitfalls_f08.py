"""F08: a blocking call in a handler stalls every client of the loop; ``asyncio.to_thread`` does not.

The broken app runs on a thread server (its own loop), as the notebook does: on the test's loop the
blocking handler would stall the test itself. Each test races a slow ``"lookup"`` from bob against an
unrelated echo from alice and asserts who is served first and how long alice waited.
"""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from wslab import Lab
from wslab.pitfalls import f08_blocking_handler as f08

pytestmark = pytest.mark.anyio

LOOKUP = 0.4


async def race(lab: Lab, offload: bool) -> tuple[float, str]:
    server = await lab.serve(f08.create_app(LOOKUP, offload=offload), name="f08", in_thread=True)
    bob = await lab.connect(server.ws_url("/ws"), name="bob")
    alice = await lab.connect(server.ws_url("/ws"), name="alice")
    mark = lab.events.mark()
    await bob.send("lookup")
    await asyncio.sleep(LOOKUP / 10)
    started = time.monotonic()
    await alice.send("ping")
    assert await alice.recv(timeout=LOOKUP + 5) == "ping"
    latency = time.monotonic() - started
    assert await bob.recv(timeout=LOOKUP + 5) == "lookup result"
    first = lab.events.select(kind="received", since=mark)[0].source
    return latency, first


async def test_blocking_handler_makes_an_unrelated_client_wait() -> None:
    async with Lab() as lab:
        latency, first = await race(lab, offload=False)
    assert first == "client:bob"
    assert latency >= 0.5 * LOOKUP


async def test_offloaded_handler_keeps_the_loop_free() -> None:
    async with Lab() as lab:
        latency, first = await race(lab, offload=True)
    assert first == "client:alice"
    assert latency < 0.5 * LOOKUP


def test_the_two_handlers_differ_in_one_call() -> None:
    broken = inspect.getsource(f08.blocking_endpoint).splitlines()[2:]
    fixed = inspect.getsource(f08.offloaded_endpoint).splitlines()[2:]
    changed = [(a, b) for a, b in zip(broken, fixed, strict=True) if a != b]
    assert len(changed) == 1 and "asyncio.to_thread" in changed[0][1]
