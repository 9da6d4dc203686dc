"""What this process holds right now: TCP sockets, child processes, threads, asyncio tasks.

Tests take a snapshot before and after, so "no task, port, thread or process is left behind" is a
measured claim. Sockets and processes come from psutil, which reads them the platform's way (/proc on
Linux, libproc/sysctl on macOS), so the claim is measured on every platform CI runs, not only on Linux.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import psutil


def tcp_sockets() -> list[tuple[str, int]]:
    """(state, local port) of every TCP socket this process has open (IPv4 and IPv6)."""
    found = []
    for connection in psutil.Process().net_connections(kind="tcp"):
        if connection.laddr:
            found.append((connection.status, connection.laddr.port))
    return sorted(found)


def child_processes() -> list[int]:
    """Pids of live (not zombie) children of this process."""
    children = []
    for child in psutil.Process().children(recursive=False):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                children.append(child.pid)
        except psutil.NoSuchProcess:
            continue
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
