"""The leak checks see what they look for: a socket, a child process, a thread, a task.

Every test that says "nothing left behind" compares two :class:`leakcheck.Snapshot` objects; if the
snapshot saw nothing (as a /proc reader does on macOS), every such test would pass vacuously. So here
each kind of leak is made on purpose and must be reported, then cleaned up and no longer reported.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading

import pytest
from support.leakcheck import Snapshot, child_processes, tcp_sockets


def test_a_listening_and_a_connected_socket_are_seen() -> None:
    before = Snapshot.take()
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        port = server.getsockname()[1]
        assert ("LISTEN", port) in tcp_sockets()
        assert ("ESTABLISHED", client.getsockname()[1]) in tcp_sockets()
        assert any("TCP sockets still open" in p for p in Snapshot.take().leaks_since(before))
    finally:
        for sock in (accepted, client, server):
            sock.close()
    assert Snapshot.take().leaks_since(before) == []


def test_a_child_process_is_seen_until_it_ends() -> None:
    before = Snapshot.take()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in child_processes()
        assert any("child processes" in p for p in Snapshot.take().leaks_since(before))
    finally:
        child.kill()
        child.wait()
    assert child.pid not in child_processes()


def test_a_wslab_thread_is_seen() -> None:
    before = Snapshot.take()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="wslab-leak-probe")
    thread.start()
    try:
        assert any("wslab-leak-probe" in p for p in Snapshot.take().leaks_since(before))
    finally:
        stop.set()
        thread.join()
    assert Snapshot.take().leaks_since(before) == []


@pytest.mark.anyio
async def test_a_pending_task_is_seen() -> None:
    before = Snapshot.take()
    task = asyncio.ensure_future(asyncio.sleep(30))
    assert any("asyncio task" in p for p in Snapshot.take().leaks_since(before))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert Snapshot.take().leaks_since(before) == []
