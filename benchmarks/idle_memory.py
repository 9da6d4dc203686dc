"""Memory per idle connection of ``python -m wslab chat``: authenticated members, each in a room of its own.

Starts the runner as a learner does (a child process), takes one token per user from its demo login
(``POST /token``), opens ``--connections`` raw sockets (handshake offering ``permessage-deflate``, as
browsers do), authenticates each into its own room, waits, and reads the server's ``VmRSS`` before and
after. Per connection = growth / connections: the server's cost of holding a quiet member (socket,
uvicorn protocol, the app's task group and queue, and compression state if it was negotiated).

    python benchmarks/idle_memory.py [--connections 500]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def token(port: int, user: str) -> str:
    request = urllib.request.Request(
        f"http://{HOST}:{port}/token",
        data=json.dumps({"user": user}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(json.load(response)["token"])


def masked_text(text: str) -> bytes:
    payload = text.encode()
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def member(port: int, user: str, tok: str) -> tuple[asyncio.StreamWriter, bool]:
    reader, writer = await asyncio.open_connection(HOST, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/chat/room-{user} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    compressed = b"permessage-deflate" in head.lower()
    writer.write(masked_text(json.dumps({"type": "auth", "token": tok})))
    await reader.read(4096)  # ready
    return writer, compressed


async def main(connections: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * connections + 256)), hard))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wslab", "chat", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        users = [f"idle{i}" for i in range(connections)]
        tokens = [token(port, user) for user in users]
        await asyncio.sleep(1.0)
        before = rss_kb(server.pid)
        members = []
        for user, tok in zip(users, tokens, strict=True):
            members.append(await member(port, user, tok))
        await asyncio.sleep(2.0)
        after = rss_kb(server.pid)
        for writer, _ in members:
            writer.transport.abort()
    finally:
        server.terminate()
        server.wait(10)
    compressed = sum(1 for _, c in members if c)
    print(f"{connections} idle members of python -m wslab chat, each in its own room")
    print(f"compression negotiated on {compressed} of {connections}")
    print(f"server RSS before {before / 1024:.1f} MB, after {after / 1024:.1f} MB")
    print(f"per idle connection: {(after - before) / connections:.1f} KB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.connections))
