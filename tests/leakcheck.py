"""What this process holds right now: TCP sockets, child processes, threads, asyncio tasks.

Tests take a snapshot before and after, so "no task, port, thread or process is left behind" is a
measured claim. Linux only (reads /proc), which is where CI runs; elsewhere the socket and process
parts report nothing.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from pathlib import Path

_TCP_STATES = {"01": "ESTABLISHED", "0A": "LISTEN", "06": "TIME_WAIT", "08": "CLOSE_WAIT"}


def _socket_inodes() -> set[str]:
    inodes = set()
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.exists():
        return inodes
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_sockets() -> list[tuple[str, int]]:
    """(state, local port) of every TCP socket this process has open."""
    mine = _socket_inodes()
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) > 9 and parts[9] in mine:
                port = int(parts[1].rsplit(":", 1)[1], 16)
                found.append((_TCP_STATES.get(parts[3], parts[3]), port))
    return sorted(found)


def child_processes() -> list[int]:
    """Pids of live (not zombie) children of this process."""
    me = os.getpid()
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return sorted(children)


def wslab_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("wslab-"))


@dataclass(frozen=True)
class Snapshot:
    sockets: list[tuple[str, int]]
    children: list[int]
    threads: list[str]
    tasks: int

    @classmethod
    def take(cls) -> Snapshot:
        try:
            tasks = len(asyncio.all_tasks()) - 1  # minus the task taking the snapshot
        except RuntimeError:
            tasks = 0
        return cls(tcp_sockets(), child_processes(), wslab_threads(), tasks)

    def leaks_since(self, before: Snapshot) -> list[str]:
        problems = []
        new_sockets = [s for s in self.sockets if s not in before.sockets]
        if new_sockets:
            problems.append(f"TCP sockets still open: {new_sockets}")
        new_children = [p for p in self.children if p not in before.children]
        if new_children:
            problems.append(f"child processes still running: {new_children}")
        new_threads = [t for t in self.threads if t not in before.threads]
        if new_threads:
            problems.append(f"threads still running: {new_threads}")
        if self.tasks > before.tasks:
            problems.append(f"{self.tasks - before.tasks} asyncio task(s) still pending")
        return problems
