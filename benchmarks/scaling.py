"""Scaling out one room: the reference chat on 1 and 2 processes, in memory and through Redis, against
encode/broadcaster and python-socketio's ``AsyncRedisManager``, measured in one run, interleaved.

Configurations (every server process is a uvicorn child of this one; clients are split evenly across
the processes' ports, as a round-robin balancer would split them):

* ``chat 1p memory``: :mod:`wslab.chat`, one process, no backing store (the reference point: 1.00x);
* ``chat 1p pubsub`` / ``chat 2p pubsub``: the same app with ``backend="pubsub"`` (Redis pub/sub);
* ``chat 2p streams``: ``backend="streams"`` (Redis Streams, offsets and resume);
* ``broadcaster 1p`` / ``broadcaster 2p``: a minimal Starlette app, one ``Broadcast("redis://...")`` per
  process, one ``subscribe()`` per WebSocket (broadcaster's own chat example);
* ``socketio 1p`` / ``socketio 2p``: ``socketio.AsyncServer(client_manager=AsyncRedisManager(...))`` as
  an ASGI app; the clients speak Engine.IO v4 / Socket.IO v5 framing over a raw WebSocket
  (``40`` to join the namespace, ``42["say",{...}]`` events, ``2``/``3`` pings).

Every configuration has its own room / channel name, so they share one Redis without hearing each other.
The clients are raw asyncio sockets with a frame parser that only counts (see benchmarks/fanout.py), so
the servers are what is measured. The machine is small (often 2 cores): two server processes, Redis and
the clients then share them, which is exactly what the ratios show.

1. **Throughput.** N receivers and one sender in the room; the sender writes a burst of M ``say``
   messages at once. Deliveries/s = M x N / time until every receiver has all M. Median of several
   bursts per configuration, configurations interleaved burst by burst.
2. **Latency.** K messages at a steady pace, send -> arrival at every receiver, p50 / p99.
3. **Idle memory.** One process of each server, VmRSS (``/proc/<pid>/status``) before and after
   I idle connections (each authenticated and in its own room / subscribed to its own channel).

    python benchmarks/scaling.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import signal
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from fanout import Tally  # the same receiver tally as the fan-out benchmark (same folder)

from wslab.storm import ensure_fd_limit

SECRET = "wslab-scaling-benchmark-secret-0123456789"


@dataclass(frozen=True)
class Config:
    label: str
    server: str  # chat | broadcaster | socketio
    processes: int
    backend: str = "redis"  # chat: memory | pubsub | streams

    @property
    def room(self) -> str:
        return re.sub(r"[^a-z0-9]", "", self.label.lower())


CONFIGS = (
    Config("chat 1p memory", "chat", 1, "memory"),
    Config("chat 1p pubsub", "chat", 1, "pubsub"),
    Config("chat 2p pubsub", "chat", 2, "pubsub"),
    Config("chat 2p streams", "chat", 2, "streams"),
    Config("broadcaster 1p", "broadcaster", 1),
    Config("broadcaster 2p", "broadcaster", 2),
    Config("socketio 1p", "socketio", 1),
    Config("socketio 2p", "socketio", 2),
)
BASE = CONFIGS[0].label

NOTES = {
    "chat": "ours; rate limit lifted (rate=1e9, burst=10**9); everything else default",
    "broadcaster": (
        "needed three changes: (1) out of the box nothing published was ever delivered (0.3.1's Redis "
        "listener starts before the first SUBSCRIBE has returned, redis-py's listen() ends at once, and "
        "the listener waits for a new channel forever); fixed by subscribing two warm-up channels at "
        "startup; (2) two WebSockets subscribing first to a channel at once: one never receives "
        "(_subscribers[channel] = {queue} after an await), so one client per process joins alone first; "
        "(3) its README app uses Starlette(on_startup=...), gone in Starlette 1.x: a lifespan"
    ),
    "socketio": (
        "worked out of the box (AsyncRedisManager + ASGIApp under uvicorn); the clients needed "
        "Engine.IO/Socket.IO framing: '40' to join, '42[...]' events, answer '2' with '3'"
    ),
}


# --- the servers, one child process each ---------------------------------------------------------


def run_server(kind: str, backend: str, room: str, redis_url: str, pipe: Connection) -> None:
    """Child process: serve ``kind`` on 127.0.0.1, send the port through ``pipe``, run until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(_serve(kind, backend, room, redis_url, pipe))


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


async def _serve(kind: str, backend: str, room: str, redis_url: str, pipe: Connection) -> None:
    import uvicorn

    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1:] * 2)
    if kind == "chat":
        from wslab.chat import ChatSettings, create_app

        settings = ChatSettings(
            secret=SECRET,
            rate=1e9,
            burst=10**9,
            backend=backend,
            redis_url=redis_url if backend != "memory" else None,
        )
        app: Any = create_app(settings)
        lifespan = "auto"
    elif kind == "broadcaster":
        app, lifespan = _broadcaster_app(redis_url), "on"
    else:
        app, lifespan = _socketio_app(redis_url, room), "auto"
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    sock = _listening_socket()
    pipe.send(sock.getsockname()[1])
    await server.serve(sockets=[sock])


def _broadcaster_app(redis_url: str) -> Any:
    """broadcaster's README chat, per WebSocket: ``async with broadcast.subscribe(channel)``."""
    from broadcaster import Broadcast
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    broadcast = Broadcast(redis_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await broadcast.connect()
        # broadcaster 0.3.1 + redis-py 5+: the first subscribe() wakes the backend's listener before
        # SUBSCRIBE has returned, pubsub.listen() sees no channel yet and ends, and the listener then
        # waits for a *new* channel forever: nothing published is ever delivered. A second channel,
        # subscribed after the first one is in place, restarts it for good.
        for warm in ("bench-warm-1", "bench-warm-2"):
            await broadcast._backend.subscribe(warm)
        yield
        await broadcast.disconnect()

    async def endpoint(ws: WebSocket) -> None:
        channel = ws.path_params["room"]
        await ws.accept()
        async with broadcast.subscribe(channel=channel) as subscriber:
            await ws.send_text('{"type":"ready"}')

            async def receive() -> None:
                with contextlib.suppress(WebSocketDisconnect):
                    async for text in ws.iter_text():
                        message = json.loads(text)
                        if message.get("type") == "say":
                            out = json.dumps({"type": "message", "text": message["text"]})
                            await broadcast.publish(channel=channel, message=out)

            task = asyncio.create_task(receive())
            try:
                async for event in subscriber:
                    if task.done():
                        break
                    await ws.send_text(event.message)
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass
            finally:
                task.cancel()

    return Starlette(routes=[WebSocketRoute("/ws/{room}", endpoint)], lifespan=lifespan)


def _socketio_app(redis_url: str, room: str) -> Any:
    import socketio

    manager = socketio.AsyncRedisManager(redis_url, channel=f"sio-{room}")
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any]) -> None:
        path = environ.get("QUERY_STRING", "")
        await sio.enter_room(
            sid, dict(p.split("=", 1) for p in path.split("&") if "=" in p).get("room", room)
        )
        await sio.emit("ready", {}, to=sid)

    @sio.on("say")
    async def say(sid: str, data: dict[str, Any]) -> None:
        await sio.emit("message", {"text": data["text"]}, room=room)

    return socketio.ASGIApp(sio)


@dataclass
class ServerProcess:
    process: multiprocessing.process.BaseProcess
    port: int

    @classmethod
    def start(cls, config: Config, redis_url: str) -> ServerProcess:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        args = (config.server, config.backend, config.room, redis_url, theirs)
        process = ctx.Process(target=run_server, args=args, name=f"scaling-{config.room}")
        process.start()
        if not ours.poll(30):
            process.kill()
            raise RuntimeError(f"{config.label} did not start")
        return cls(process, ours.recv())

    def rss_kb(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# --- the clients: raw sockets, three dialects ----------------------------------------------------


_TEXT_INDEX = re.compile(rb'"text": ?"(\d{6})')


def _frame(text: str) -> bytes:
    from wslab.wire import text_frame

    return text_frame(text, mask=True).serialize()


class Client(asyncio.Protocol):
    """One WebSocket client of ``kind``: handshake, join, then count ``message`` frames (timed if asked)."""

    def __init__(self, kind: str, port: int, path: str, user: str, tally: Tally | None) -> None:
        from wslab.chat import issue_token
        from wslab.wire import HandshakeRequest

        self.kind = kind
        self.request = HandshakeRequest(path=path, host=f"127.0.0.1:{port}").serialize()
        if kind == "chat":
            self.hello = _frame(json.dumps({"type": "auth", "token": issue_token(user, SECRET, 3600)}))
        elif kind == "socketio":
            self.hello = _frame("40")
        else:
            self.hello = b""
        self.marker = b'42["message"' if kind == "socketio" else b'message"'
        self.tally = tally
        self.buf = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.messages = 0
        self.arrivals: list[tuple[int, float]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before ready"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(bytes(buf[:end]).decode("latin-1"))
            del buf[: end + 4]
            self.upgraded = True
            if self.hello:
                self.send(self.hello)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1:
                self._text(buf, pos + head, end)
            elif opcode == 9:
                from wslab.wire import pong_frame

                self.send(pong_frame(bytes(buf[pos + head : end]), mask=True).serialize())
            pos = end
        del buf[:pos]

    def _text(self, buf: bytearray, start: int, end: int) -> None:
        if self.kind == "socketio":
            if end - start == 1 and buf[start] == ord("2"):  # Engine.IO ping
                self.send(_frame("3"))
                return
            if not self.ready.done():
                if buf.startswith(b'42["ready"', start):
                    self.ready.set_result(None)
                return
        elif not self.ready.done():
            self.ready.set_result(None)
            return
        if buf.find(self.marker, start, min(start + 48, end)) >= 0:
            self.messages += 1
            if self.arrivals is not None:
                match = _TEXT_INDEX.search(buf, start, min(start + 96, end))
                if match:
                    self.arrivals.append((int(match.group(1)), time.perf_counter()))
            if self.tally is not None and self.messages == self.tally.target:
                self.tally.finished_one()

    def send(self, frames: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frames)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def path_of(config: Config, room: str) -> str:
    if config.server == "socketio":
        return f"/socket.io/?EIO=4&transport=websocket&room={room}"
    return f"/ws/chat/{room}" if config.server == "chat" else f"/ws/{room}"


async def connect(config: Config, port: int, room: str, user: str, tally: Tally | None) -> Client:
    loop = asyncio.get_running_loop()
    client = Client(config.server, port, path_of(config, room), user, tally)
    await loop.create_connection(lambda: client, "127.0.0.1", port)
    async with asyncio.timeout(30):
        await client.ready
    return client


def say_frames(kind: str, texts: list[str]) -> bytes:
    if kind == "socketio":
        frames = ("42" + json.dumps(["say", {"text": t}]) for t in texts)
    elif kind == "chat":
        frames = (json.dumps({"type": "say", "text": t, "exclude_self": True}) for t in texts)
    else:
        frames = (json.dumps({"type": "say", "text": t}) for t in texts)
    return b"".join(_frame(f) for f in frames)


@dataclass
class Room:
    config: Config
    tally: Tally
    receivers: list[Client]
    sender: Client

    @classmethod
    async def fill(cls, config: Config, servers: list[ServerProcess], n: int) -> Room:
        tally = Tally(n)
        sender = await connect(config, servers[0].port, config.room, "sender", None)
        gate = asyncio.Semaphore(16)  # a join is a notice to every member in the chat: no join storm

        async def one(i: int) -> Client:
            async with gate:
                return await connect(config, servers[i % len(servers)].port, config.room, f"r{i:04d}", tally)

        # broadcaster 0.3.1 loses a subscriber when two WebSockets are the first of a channel in a
        # process at once (``_subscribers[channel] = {queue}`` after an await overwrites the other's
        # queue): one receiver per process joins alone first, for every server alike.
        first = [await one(i) for i in range(len(servers))]
        receivers = first + list(await asyncio.gather(*(one(i) for i in range(len(servers), n))))
        await asyncio.sleep(0.5)
        return cls(config, tally, list(receivers), sender)

    async def burst(self, frames: bytes, m: int, timeout: float) -> float | None:
        for client in self.receivers:
            client.messages = 0
        self.tally.reset(m)
        started = time.perf_counter()
        self.sender.send(frames)
        try:
            async with asyncio.timeout(timeout):
                await self.tally.event.wait()
        except TimeoutError:
            return None
        return time.perf_counter() - started

    async def paced(self, k: int, interval: float, wait: float) -> list[float]:
        """Latencies (s) of ``k`` messages sent ``interval`` apart, at every receiver."""
        for client in self.receivers:
            client.messages, client.arrivals = 0, []
        self.tally.reset(k)
        frames = [say_frames(self.config.server, [f"{i:06d}" + "x" * 94]) for i in range(k)]
        sent_at: list[float] = []
        start = time.perf_counter()
        for i, frame in enumerate(frames):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            sent_at.append(time.perf_counter())
            self.sender.send(frame)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.tally.event.wait()
        latencies = sorted(t - sent_at[i] for c in self.receivers for i, t in c.arrivals or [])
        for client in self.receivers:
            client.arrivals = None
        return latencies

    def close(self) -> None:
        for client in [*self.receivers, self.sender]:
            client.close()


# --- measurements --------------------------------------------------------------------------------


def pct(ordered: list[float], p: int) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


@dataclass
class Row:
    n: int
    rate: dict[str, float | None]
    p50: dict[str, float | None]
    p99: dict[str, float | None]
    delivered: dict[str, float]


async def measure(
    n: int, m: int, bursts: int, k: int, pace: float, servers: dict[str, list[ServerProcess]]
) -> Row:
    rooms: dict[str, Room] = {}
    for config in CONFIGS:  # one after the other: a chat join is a notice to every member
        progress(f"N={n}: connecting {n} receivers to {config.label}")
        rooms[config.label] = await Room.fill(config, servers[config.label], n)
    try:
        texts = [f"{i:06d}" + "x" * 194 for i in range(m)]
        frames = {c.label: say_frames(c.server, texts) for c in CONFIGS}
        times: dict[str, list[float | None]] = {c.label: [] for c in CONFIGS}
        order = list(rooms)
        progress(f"N={n}: {bursts} bursts of {m}, interleaved")
        for label, room in rooms.items():  # warm-up
            await room.burst(frames[label], m, timeout=10)
        for b in range(bursts):
            shift = b % len(order)
            for label in order[shift:] + order[:shift]:
                times[label].append(await rooms[label].burst(frames[label], m, timeout=10))
                await asyncio.sleep(0.05)
        row = Row(n, {}, {}, {}, {})
        for label, values in times.items():
            done = [v for v in values if v is not None]
            row.rate[label] = m * n / statistics.median(done) if len(done) == len(values) else None
        progress(f"N={n}: {k} messages every {pace * 1000:g} ms per configuration")
        for label in order:
            latencies = await rooms[label].paced(k, pace, wait=5.0)
            row.delivered[label] = len(latencies) / (k * n)
            complete = row.delivered[label] >= 1.0
            row.p50[label] = pct(latencies, 50) if complete else None
            row.p99[label] = pct(latencies, 99) if complete else None
            await asyncio.sleep(0.1)
        return row
    finally:
        for room in rooms.values():
            room.close()
        await asyncio.sleep(0.5)


async def idle_memory(config: Config, redis_url: str, count: int) -> tuple[float, int]:
    """KiB of VmRSS per idle connection (each in its own room) in one process of ``config``; held count."""
    server = ServerProcess.start(config, redis_url)
    clients: list[Client] = []
    try:
        await asyncio.sleep(0.5)
        before = server.rss_kb()
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> Client:
            async with gate:
                return await connect(config, server.port, f"idle{i}", f"i{i:05d}", None)

        clients = list(await asyncio.gather(*(one(i) for i in range(count))))
        await asyncio.sleep(1.0)
        return (server.rss_kb() - before) / count, len(clients)
    finally:
        for client in clients:
            client.close()
        server.stop()


# --- the run -------------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


@dataclass
class Plan:
    sizes: list[tuple[int, int, float]]  # (N receivers, M burst, latency pace in s)
    bursts: int
    k: int
    idle: int


def plan(quick: bool) -> Plan:
    if quick:
        return Plan([(100, 20, 0.02)], bursts=3, k=20, idle=200)
    # M stays under the chat's per-member queue (64): a burst is not an overflow test (that is fanout.py)
    # N=1000 in one chat room is 500,000 joined notices per configuration before anything is measured,
    # so the large size is 600 (a full run stays around 3 minutes); the idle test holds 1,000.
    return Plan([(200, 50, 0.02), (600, 40, 0.04)], bursts=3, k=40, idle=1000)


async def main(quick: bool) -> None:
    from wslab import Lab

    p = plan(quick)
    largest = max(n for n, _, _ in p.sizes)
    ensure_fd_limit(len(CONFIGS) * (largest + 8) + p.idle + 512)
    started = time.perf_counter()
    async with Lab() as lab:
        redis = await lab.redis()
        servers: dict[str, list[ServerProcess]] = {}
        rows: list[Row] = []
        try:
            progress(f"starting {sum(c.processes for c in CONFIGS)} server processes")
            wanted = [c for c in CONFIGS for _ in range(c.processes)]
            started_all = await asyncio.gather(
                *(asyncio.to_thread(ServerProcess.start, c, redis.url) for c in wanted),
                return_exceptions=True,
            )
            for config, server in zip(wanted, started_all, strict=True):
                if isinstance(server, ServerProcess):
                    servers.setdefault(config.label, []).append(server)
            failed = [e for e in started_all if isinstance(e, BaseException)]
            if failed:
                raise failed[0]
            for n, m, pace in p.sizes:
                rows.append(await measure(n, m, p.bursts, p.k, pace, servers))
        finally:
            for processes in servers.values():
                for server in processes:
                    server.stop()
        memory: dict[str, tuple[float, int]] = {}
        for config in (CONFIGS[0], CONFIGS[4], CONFIGS[6]):
            progress(f"idle memory: {p.idle} connections to one {config.server} process")
            memory[config.server] = await idle_memory(config, redis.url, p.idle)
    report(p, rows, memory, redis.version, time.perf_counter() - started)


def fmt_rate(value: float | None) -> str:
    return "timeout" if value is None else f"{value / 1000:,.0f} k/s"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


def fmt_ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or base is None else f"{value / base:.2f}x"


def report(
    p: Plan, rows: list[Row], memory: dict[str, tuple[float, int]], redis: str, elapsed: float
) -> None:
    from importlib.metadata import version

    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ("uvicorn", "starlette", "websockets", "redis", "broadcaster", "python-socketio")
    )
    print(
        "\none room, one sender; servers are uvicorn child processes, "
        f"clients in this one ({os.cpu_count()} CPUs)"
    )
    print(f"Redis {redis}; {versions}")
    print(f"throughput: burst of M says (200 chars), median of {p.bursts} bursts, configurations interleaved")
    print(f"latency: {p.k} says (100 chars) at a steady pace, send -> arrival at every receiver")
    print(f"ratios are relative to '{BASE}' (throughput: higher is better; p50: lower is better)\n")
    header = f"{'N':>5}  {'configuration':<17}{'deliveries/s':>13}{'ratio':>8}{'p50':>10}{'p99':>10}"
    print(header + f"{'p50 ratio':>11}{'delivered':>11}")
    for row in rows:
        for config in CONFIGS:
            label = config.label
            rate, p50 = row.rate[label], row.p50[label]
            print(
                f"{row.n:>5}  {label:<17}{fmt_rate(rate):>13}{fmt_ratio(rate, row.rate[BASE]):>8}"
                f"{fmt_ms(p50):>10}{fmt_ms(row.p99[label]):>10}"
                f"{fmt_ratio(p50, row.p50[BASE]):>11}{row.delivered[label]:>11.0%}"
            )
        print()
    print(
        "scaling, throughput relative to the same server's 1 process "
        "(the issue's target: ours >= broadcaster's)"
    )
    for row in rows:
        pairs = [
            ("chat pubsub", "chat 1p pubsub", "chat 2p pubsub"),
            ("broadcaster", "broadcaster 1p", "broadcaster 2p"),
            ("socketio", "socketio 1p", "socketio 2p"),
        ]
        parts = [f"{name} 2p/1p {fmt_ratio(row.rate[two], row.rate[one])}" for name, one, two in pairs]
        base = [f"{name} 2p/'{BASE}' {fmt_ratio(row.rate[two], row.rate[BASE])}" for name, _, two in pairs]
        print(f"  N={row.n}: " + ", ".join(parts))
        print(f"  N={row.n}: " + ", ".join(base))
    print(f"\nidle connections, one process each, {p.idle} connections each in its own room/channel:")
    for server, (kib, held) in memory.items():
        print(
            f"  {server:<12} {kib:6.1f} KiB VmRSS per connection "
            f"({kib * 1000 / 1024:,.0f} MiB per 1,000); held {held:,}"
        )
    print("\nwhat it took to run each server:")
    for server, note in NOTES.items():
        print(f"  {server}: {note}")
    print(f"\nwhole run: {elapsed:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="N=100 only, 200 idle: a smoke run of about a minute"
    )
    asyncio.run(main(parser.parse_args().quick))
