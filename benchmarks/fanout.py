"""Fan-out in one room: the reference chat, the sequential ``await send_text`` loop (F06), and
``websockets.broadcast()``, measured in one run, interleaved.

Three servers, each in its own child process (one core each while it is measured; the clients get the
other core), all driven by the same clients:

* ``reference``: :mod:`wslab.chat` (per-member bounded queue + sender task), under uvicorn;
* ``naive``: :mod:`wslab.pitfalls.f06_sequential_broadcast` (the speaker's handler awaits every
  peer's ``send_text`` in turn, JSON serialized per recipient), under uvicorn;
* ``ws.broadcast``: a bare ``websockets.asyncio.server.serve`` handler that speaks the same protocol
  (auth first, ``say`` -> ``message`` with ``seq``, same JSON, same sizes) and fans out with
  ``websockets.broadcast()``: the reference point for the fastest fan-out in plain Python. It sends no
  ``joined``/``left`` notices and validates ``say`` with ``json.loads`` rather than pydantic; neither
  is per recipient, so neither is in the measured cost.

The clients are raw asyncio sockets in this process (handshake, then a frame parser that only reads
lengths and counts): much cheaper per delivery than any of the servers, so the server is what is
measured. Settings of the chat apps: ``rate=1e9, burst=10**9`` (one client sends the whole burst),
``max_message_bytes=16384`` (the 8 kB stall messages); everything else is the default (``queue_size=64``),
and uvicorn runs with the options wslab runs the chat with (``ChatSettings.uvicorn_options()``:
``ws_max_size`` from ``max_message_bytes``, no compression, the control-frame and close limits of
``wslab.chat.transport``; ``--ws auto`` otherwise, 20 s pings, which the clients answer).

1. **Throughput.** N receivers and one sender in one room; the sender writes a burst of M ``say``
   messages (``exclude_self``, 200 characters of text) at once. Deliveries/s = M x N / (time until every
   receiver has all M). Median of several bursts per server, servers interleaved burst by burst.
2. **One client stops reading** (4 KiB SO_RCVBUF, reading paused after ``ready``), while the sender
   sends K messages of 8,000 characters at a steady pace. Healthy receivers' delivery latency (send
   to arrival) p50/p99; a server that has not delivered everything ``--wait`` s after the last send is
   reported ``stalled``. Then the stalled client reads again, to see whether it was closed (4009).

    python benchmarks/fanout.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
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
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

SECRET = "wslab-fanout-benchmark-secret-0123456789"
PATH = "/ws/chat/lobby"
SERVERS = ("reference", "naive", "ws.broadcast")
CHAT_SETTINGS: dict[str, Any] = {
    "secret": SECRET,
    "rate": 1e9,
    "burst": 10**9,
    "max_message_bytes": 16384,
}


# --- the servers, one child process each ---------------------------------------------------------


def run_server(kind: str, pipe: Connection, profile: str | None) -> None:
    """Child process: serve ``kind`` on 127.0.0.1, send the port through ``pipe``, run until SIGTERM."""
    import cProfile

    # SIGTERM ends the child with SystemExit, so that ``finally`` below runs (and dumps the profile).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    try:
        asyncio.run(_serve(kind, pipe))
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)


SERVER_SNDBUF = 64 * 1024


def listening_socket() -> socket.socket:
    """127.0.0.1, a free port, and a fixed send buffer that accepted sockets inherit.

    On loopback the kernel grows a send buffer up to 4 MB (tcp_wmem), so a client that stops reading
    would soak up megabytes before any server noticed. A fixed 64 KiB (the kernel doubles it) is
    closer to a real path and the same for all three servers.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SNDBUF)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


async def _serve(kind: str, pipe: Connection) -> None:
    if kind == "ws.broadcast":
        await _serve_bare(pipe)
        return
    import uvicorn

    from wslab.chat import ChatSettings, create_app
    from wslab.pitfalls import f06_sequential_broadcast

    factory = create_app if kind == "reference" else f06_sequential_broadcast.create_app
    settings = ChatSettings(**CHAT_SETTINGS)
    app = factory(settings)
    # The transport options wslab runs the chat with (ws_max_size, no compression, the protocol classes
    # of wslab.chat.transport); a checkout from before they existed runs with uvicorn's defaults.
    shipped = getattr(settings, "uvicorn_options", dict)()
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off", **shipped)
    server = uvicorn.Server(config)
    sock = listening_socket()
    pipe.send(sock.getsockname()[1])
    await server.serve(sockets=[sock])


async def _serve_bare(pipe: Connection) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

    from wslab.chat import verify_token

    members: set[ServerConnection] = set()
    seq = itertools.count(1)

    def dumps(obj: dict[str, Any]) -> str:
        return json.dumps(obj, separators=(",", ":"))

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await chat(ws)

    async def chat(ws: ServerConnection) -> None:
        user = verify_token(json.loads(await ws.recv())["token"], SECRET).user
        members.add(ws)
        try:
            ready = {"seq": next(seq), "type": "ready", "user": user, "room": "lobby", "members": []}
            await ws.send(dumps(ready))
            async for raw in ws:
                say = json.loads(raw)
                if say.get("type") != "say":
                    continue
                text = dumps({"seq": next(seq), "type": "message", "from": user, "text": say["text"]})
                broadcast([m for m in members if m is not ws] if say.get("exclude_self") else members, text)
        finally:
            members.discard(ws)

    sock = listening_socket()
    pipe.send(sock.getsockname()[1])
    async with serve(handler, sock=sock) as server:
        await server.serve_forever()


@dataclass
class ServerProcess:
    kind: str
    process: multiprocessing.process.BaseProcess
    port: int

    @classmethod
    def start(cls, kind: str, profile: str | None = None) -> ServerProcess:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=run_server, args=(kind, theirs, profile), name=f"fanout-{kind}")
        process.start()
        if not ours.poll(30):
            process.kill()
            raise RuntimeError(f"the {kind} server did not start")
        return cls(kind, process, ours.recv())

    def stop(self) -> None:
        self.process.terminate()  # uvicorn and asyncio.run end cleanly on SIGTERM
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# --- the clients: raw sockets, a frame parser that only reads lengths --------------------------------


@dataclass
class Tally:
    """How many receivers have all ``target`` messages of the current run."""

    receivers: int
    target: int = 0
    done: int = 0
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self, target: int) -> None:
        self.target, self.done = target, 0
        self.event.clear()

    def finished_one(self) -> None:
        self.done += 1
        if self.done >= self.receivers:
            self.event.set()


_TEXT_INDEX = re.compile(rb'"text": ?"(\d{6})')


class Client(asyncio.Protocol):
    """One WebSocket client: handshake, auth, then count ``message`` frames (and time them, if asked)."""

    def __init__(self, port: int, user: str, tally: Tally | None) -> None:
        from wslab.chat import issue_token
        from wslab.wire import HandshakeRequest, text_frame

        loop = asyncio.get_running_loop()
        self.request = HandshakeRequest(path=PATH, host=f"127.0.0.1:{port}").serialize()
        auth = json.dumps({"type": "auth", "token": issue_token(user, SECRET, 3600)})
        self.auth = text_frame(auth, mask=True).serialize()
        self.tally = tally
        self.buf = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = loop.create_future()
        self.messages = 0
        self.arrivals: list[tuple[int, float]] | None = None  # (message index, arrival time) when timing
        self.close_code: int | None = None
        self.gone: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)
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
            assert self.transport is not None
            self.transport.write(self.auth)
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
            elif opcode == 9:  # the servers ping every 20 s (their defaults): answer, as a real client does
                self.pong(bytes(buf[pos + head : end]))
            elif opcode == 8:
                self.close_code = (
                    int.from_bytes(buf[pos + head : pos + head + 2], "big") if length >= 2 else 1005
                )
            pos = end
        del buf[:pos]

    def _text(self, buf: bytearray, start: int, end: int) -> None:
        if not self.ready.done():
            self.ready.set_result(None)
        elif buf.find(b'message"', start, min(start + 48, end)) >= 0:
            self.messages += 1
            if self.arrivals is not None:
                match = _TEXT_INDEX.search(buf, start, min(start + 96, end))
                if match:
                    self.arrivals.append((int(match.group(1)), time.perf_counter()))
            if self.tally is not None and self.messages == self.tally.target:
                self.tally.finished_one()

    def pong(self, payload: bytes) -> None:
        from wslab.wire import pong_frame

        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(pong_frame(payload, mask=True).serialize())

    def send(self, frames: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frames)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(port: int, user: str, tally: Tally | None, rcvbuf: int | None = None) -> Client:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    client = Client(port, user, tally)
    await loop.create_connection(lambda: client, sock=sock)
    async with asyncio.timeout(30):
        await client.ready
    return client


def say_frames(texts: list[str]) -> bytes:
    from wslab.wire import text_frame

    frames = (json.dumps({"type": "say", "text": t, "exclude_self": True}) for t in texts)
    return b"".join(text_frame(f, mask=True).serialize() for f in frames)


@dataclass
class Room:
    """One server with its N receivers and its sender."""

    server: ServerProcess
    tally: Tally
    receivers: list[Client]
    sender: Client

    @classmethod
    async def fill(cls, server: ServerProcess, n: int) -> Room:
        tally = Tally(n)
        sender = await connect(server.port, "sender", None)
        # At most 16 handshakes at once: each join queues a ``joined`` notice for every member, and a
        # storm of joins in one loop iteration would overflow the reference's queues (and evict).
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> Client:
            async with gate:
                return await connect(server.port, f"r{i:04d}", tally)

        receivers = await asyncio.gather(*(one(i) for i in range(n)))
        await asyncio.sleep(0.5)  # let the joined notices settle
        return cls(server, tally, list(receivers), sender)

    async def burst(self, frames: bytes, m: int, timeout: float) -> float | None:
        """Seconds until every receiver has all ``m`` messages of one burst (None: not within ``timeout``)."""
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

    def close(self) -> None:
        for client in [*self.receivers, self.sender]:
            client.close()


# --- the two measurements ------------------------------------------------------------------------


def rate(values: list[float | None], deliveries: int) -> float | None:
    done = [v for v in values if v is not None]
    return deliveries / statistics.median(done) if len(done) == len(values) else None


def fmt_rate(value: float | None) -> str:
    return "timeout" if value is None else f"{value / 1000:,.0f} k/s"


def fmt_ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


async def throughput(rooms: dict[str, Room], n: int, m: int, bursts: int) -> dict[str, float | None]:
    frames = say_frames([f"{i:06d}" + "x" * 194 for i in range(m)])  # 200 characters of text
    times: dict[str, list[float | None]] = {kind: [] for kind in rooms}
    order = list(rooms)
    for room in rooms.values():  # warm-up, not counted
        await room.burst(frames, m, timeout=30)
    for b in range(bursts):
        for kind in order[b % 3 :] + order[: b % 3]:  # rotate who goes first
            times[kind].append(await rooms[kind].burst(frames, m, timeout=30))
            await asyncio.sleep(0.05)
    return {kind: rate(values, m * n) for kind, values in times.items()}


@dataclass
class StallResult:
    delivered: float
    p50: float | None
    p99: float | None
    stalled_close: str
    healthy_closed: int


async def with_stalled_client(room: Room, k: int, interval: float, wait: float) -> StallResult:
    stalled = await connect(room.server.port, "stalled", None, rcvbuf=4096)
    assert stalled.transport is not None
    stalled.transport.pause_reading()
    await asyncio.sleep(0.3)  # joined notices
    for client in room.receivers:
        client.messages, client.arrivals = 0, []
    room.tally.reset(k)
    frames = [say_frames([f"{i:06d}" + os.urandom(3997).hex()]) for i in range(k)]  # 8,000 chars
    sent_at: list[float] = []
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
        sent_at.append(time.perf_counter())
        room.sender.send(frame)
    try:
        async with asyncio.timeout(wait):
            await room.tally.event.wait()
    except TimeoutError:
        pass
    latencies = sorted(t - sent_at[i] for c in room.receivers for i, t in c.arrivals or [])
    delivered = len(latencies) / (k * len(room.receivers))
    # read again: was it closed by the server (and with which code), or just left behind?
    stalled.transport.resume_reading()
    try:
        async with asyncio.timeout(3):
            while stalled.close_code is None and not stalled.gone.done():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pass
    closed = f"closed {stalled.close_code}" if stalled.close_code is not None else "still open"
    healthy_closed = sum(c.close_code is not None or c.gone.done() for c in room.receivers)
    stalled.close()
    for client in room.receivers:
        client.arrivals = None
    if delivered < 1.0:
        return StallResult(delivered, None, None, closed, healthy_closed)
    return StallResult(delivered, _pct(latencies, 50), _pct(latencies, 99), closed, healthy_closed)


def _pct(ordered: list[float], p: int) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def progress(text: str) -> None:
    print(f"... {text}", file=sys.stderr, flush=True)


def raise_fd_limit(wanted: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return f"fd limit {soft} (enough)"
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    note = "" if target >= wanted else f"; hard limit {hard} < {wanted}: the largest N may fail"
    return f"fd limit raised {soft} -> {target}{note}"


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Plan:
    sizes: list[tuple[int, int, float]]  # (N receivers, M burst, stall pace in s)
    bursts: int
    stall_k: int
    wait: float


def plan(quick: bool) -> Plan:
    if quick:
        return Plan([(20, 200, 0.005), (200, 50, 0.02)], bursts=3, stall_k=110, wait=1.5)
    # The pace keeps the offered load (N x 8 kB per message) well under every server's capacity, so
    # that latency measures the stall and not a backlog.
    return Plan([(100, 500, 0.01), (1000, 50, 0.1)], bursts=5, stall_k=110, wait=2.0)


async def main(quick: bool, profile_reference: str | None) -> None:
    p = plan(quick)
    largest = max(n for n, _, _ in p.sizes)
    print(raise_fd_limit(3 * (largest + 4) + 256))
    servers = {
        kind: ServerProcess.start(kind, profile_reference if kind == "reference" else None)
        for kind in SERVERS
    }
    rows: list[tuple[int, int, dict[str, float | None]]] = []
    stalls: list[tuple[int, dict[str, StallResult]]] = []
    started = time.perf_counter()
    try:
        for n, m, pace in p.sizes:
            rooms: dict[str, Room] = {}
            for kind, server in servers.items():  # one after the other: joins are N^2/2 notices
                progress(f"N={n}: connecting {n} receivers to {kind}")
                rooms[kind] = await Room.fill(server, n)
            progress(f"N={n}: {p.bursts} bursts of {m} per server")
            rows.append((n, m, await throughput(rooms, n, m, p.bursts)))
            results: dict[str, StallResult] = {}
            for kind, room in rooms.items():
                progress(f"N={n}: stalled client on {kind}")
                results[kind] = await with_stalled_client(room, p.stall_k, pace, p.wait)
            stalls.append((n, results))
            for room in rooms.values():
                room.close()
            await asyncio.sleep(0.5)
    finally:
        for server in servers.values():
            server.stop()
    report(p, rows, stalls, time.perf_counter() - started)


def report(
    p: Plan,
    rows: list[tuple[int, int, dict[str, float | None]]],
    stalls: list[tuple[int, dict[str, StallResult]]],
    elapsed: float,
) -> None:
    cpus = os.cpu_count()
    print(f"\none room, one sender, servers in their own processes, clients in this one ({cpus} CPUs)")
    print(
        f"1. throughput: a burst of M says (200 chars), median of {p.bursts} bursts per server, interleaved"
    )
    print("   deliveries/s = M x N / time until every receiver has all M")
    print(f"{'N':>6}{'M':>6}{'reference':>12}{'naive':>12}{'ws.broadcast':>14}", end="")
    print(f"{'ref/naive':>11}{'ref/ws.bc':>11}")
    for n, m, r in rows:
        ref, naive, bare = r["reference"], r["naive"], r["ws.broadcast"]
        print(
            f"{n:>6}{m:>6}{fmt_rate(ref):>12}{fmt_rate(naive):>12}{fmt_rate(bare):>14}"
            f"{fmt_ratio(ref, naive):>11}{fmt_ratio(ref, bare):>11}"
        )
    print(f"\n2. one client stops reading: {p.stall_k} says of 8,000 chars at a steady pace;")
    print(
        f"   healthy receivers' latency (send -> arrival); 'stalled' = not all delivered {p.wait:g} s after"
    )
    print(f"{'N':>6}  {'server':<14}{'delivered':>10}{'p50':>11}{'p99':>11}", end="")
    print(f"{'healthy closed':>16}  stalled client")
    for n, results in stalls:
        for kind, s in results.items():
            if s.p50 is None or s.p99 is None:
                p50, p99 = "stalled", "stalled"
            else:
                p50, p99 = f"{s.p50 * 1000:.1f} ms", f"{s.p99 * 1000:.1f} ms"
            print(f"{n:>6}  {kind:<14}{s.delivered:>10.0%}{p50:>11}{p99:>11}", end="")
            print(f"{s.healthy_closed:>16}  {s.stalled_close}")
    print(f"\nwhole run: {elapsed:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N and M: a smoke run of a few seconds")
    parser.add_argument(
        "--profile-reference", metavar="FILE", help="run the reference server under cProfile, stats to FILE"
    )
    args = parser.parse_args()
    asyncio.run(main(args.quick, args.profile_reference))
