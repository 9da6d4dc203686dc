"""How long ``lab.serve`` takes to start, answer a first echo and stop, against uvicorn's own serve().

Baseline: ``uvicorn.Server.serve()`` run as a task on the same loop (the usual way to embed uvicorn),
started until ``server.started`` and stopped with ``should_exit = True``. Both run in this one process
invocation, interleaved, with the same app and client, and the medians are compared as ratios.

    python benchmarks/serve_timings.py [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time

import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from wslab import Lab
from wslab.apps import demo_app


async def first_echo(url: str) -> ClientConnection:
    """Connect and echo once; the connection stays open so that stop has a WebSocket to close."""
    ws = await connect(url, ping_interval=None, compression=None, proxy=None)
    await ws.send("x")
    assert await ws.recv() == "x"
    return ws


async def lab_once(lab: Lab) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    server = await lab.serve(demo_app(), name="bench")
    t1 = time.perf_counter()
    ws = await first_echo(server.ws_url("/ws/echo"))
    t2 = time.perf_counter()
    await server.stop()
    await ws.wait_closed()
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


async def uvicorn_once() -> tuple[float, float, float]:
    config = uvicorn.Config(demo_app(), host="127.0.0.1", port=0, log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    t0 = time.perf_counter()
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.001)
    t1 = time.perf_counter()
    port = server.servers[0].sockets[0].getsockname()[1]
    ws = await first_echo(f"ws://127.0.0.1:{port}/ws/echo")
    t2 = time.perf_counter()
    server.should_exit = True
    await task
    await ws.wait_closed()
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.2f} ms"


async def main(runs: int) -> None:
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    lab_times: list[tuple[float, float, float]] = []
    uv_times: list[tuple[float, float, float]] = []
    async with Lab() as lab:
        for _ in range(2):  # warm-up: imports, first socket
            await lab_once(lab)
            await uvicorn_once()
        for _ in range(runs):
            lab_times.append(await lab_once(lab))
            uv_times.append(await uvicorn_once())
    print(f"median of {runs} runs, same process, interleaved")
    print(f"{'':14}{'lab.serve':>12}{'uvicorn.serve':>16}{'ratio':>9}")
    for i, label in enumerate(("start", "first echo", "stop")):  # stop: with one WebSocket open
        ours = [t[i] for t in lab_times]
        theirs = [t[i] for t in uv_times]
        ratio = statistics.median(theirs) / statistics.median(ours)
        print(f"{label:14}{ms(ours):>12}{ms(theirs):>16}{ratio:8.1f}x")
    print("stop = until the server is gone and the open WebSocket has seen its close (1012)")
    print("ratio = uvicorn's time / lab.serve's time (higher means lab.serve is faster)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args().runs))
