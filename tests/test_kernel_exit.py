"""A kernel that exits without ``await lab.close()`` still leaves nothing behind.

Learners restart kernels and close laptops mid-lesson. In-loop servers die with the process anyway;
replica processes and server threads would not, so the lab's exit hook ends them (every platform), and
on Linux a replica also asks the OS to kill it if its parent dies without running any hook (SIGKILL,
via PR_SET_PDEATHSIG, which macOS does not have: there that test is skipped, and the guarantee is only
the exit hook's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import asyncio, os, sys
from wslab import Lab
from wslab.apps import demo_app

async def main():
    lab = Lab()
    replica = await lab.serve_process("wslab.apps:demo_app", name="r", factory=True)
    await lab.serve(demo_app(), name="t", in_thread=True)
    directory = lab.temp_dir("x")
    print(replica.pid, directory, flush=True)
    if sys.argv[1] == "hang":
        await asyncio.sleep(60)

asyncio.run(main())   # returns without lab.close(): the interpreter exits and atexit runs
"""


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (psutil: the same answer on Linux and macOS)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_exit_without_close_ends_replicas_threads_and_temp_dirs() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "exit"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    pid, directory = result.stdout.split()
    assert wait_gone(int(pid)), "the replica outlived its parent"
    assert not Path(directory).exists()


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="PR_SET_PDEATHSIG is Linux-only: elsewhere a SIGKILLed kernel can leave its replicas running",
)
def test_parent_killed_outright_takes_its_replicas_along() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "hang"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid, _ = parent.stdout.readline().split()
        assert alive(int(pid))
        os.kill(parent.pid, signal.SIGKILL)  # no atexit, no cleanup: only PR_SET_PDEATHSIG helps
        parent.wait(10)
        assert wait_gone(int(pid)), "the replica survived a SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
