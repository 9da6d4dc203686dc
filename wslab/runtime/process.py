"""How the lab starts and ends a child process (replica, redis-server, nginx): one place, one set of rules.

* **Its own process group** (``start_new_session``). Jupyter's *Kernel → Interrupt* sends SIGINT to the
  kernel's whole process group, and so does Ctrl-C in a terminal running a script. A child in that
  group would get it too: every replica would shut down (its clients see 1012) and Redis would exit,
  while the interrupted cell only meant to stop waiting. In a group of its own, the child never hears
  an interrupt meant for the kernel; the lab stops it when the lab says so.
* **It dies with its parent** (Linux ``PR_SET_PDEATHSIG``, SIGKILL). Leaving the kernel's group means a
  dying terminal or kernel no longer takes the child along, and a kernel killed outright runs no
  ``atexit`` hook: the kernel asks the OS to kill the child the moment its parent goes. (Elsewhere, the
  lab's ``atexit`` hook and ``kill_blocking`` paths are what end children.)
* **Ending it is bounded**: :func:`terminate` sends a signal, waits, and SIGKILLs a child that lingers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping

__all__ = ["HOST", "free_port", "kill_now", "spawn", "terminate"]

HOST = "127.0.0.1"
"""Every server the lab starts listens on loopback only."""

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback port nothing listens on right now, for programs that cannot bind port 0 and report
    back (redis-server, nginx). Another process could take it first; callers treat a failed start as
    a reason to try again, not as a bug."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with(parent: int) -> Callable[[], None]:
    """The function the child runs between fork and exec: SIGKILL me when ``parent`` dies (Linux)."""

    def setup() -> None:  # pragma: no cover - runs in the child before exec
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect: nobody would kill us
            os._exit(1)

    return setup


async def spawn(
    *argv: str,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.STDOUT,
    env: Mapping[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """Start ``argv`` as a lab child: stdin closed, its own process group, killed if its parent dies.

    See the module docstring for why each: an interrupt of the kernel must not stop the lab's servers,
    and a kernel that dies must not leave them running.
    """
    linux = sys.platform.startswith("linux")
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=dict(env) if env is not None else None,
        start_new_session=True,
        preexec_fn=_die_with(os.getpid()) if linux else None,
    )


async def terminate(
    process: asyncio.subprocess.Process, sig: signal.Signals = signal.SIGTERM, timeout: float = 5.0
) -> None:
    """Send ``sig`` and wait up to ``timeout`` seconds for the exit; SIGKILL the child if it lingers.

    Returns at once for a child that has already exited; the exit status is ``process.returncode``.
    """
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        kill_now(process)
        await process.wait()


def kill_now(process: asyncio.subprocess.Process) -> None:
    """SIGKILL without waiting: for kernel exit, when no event loop runs any more."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
