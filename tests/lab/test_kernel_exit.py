"""A kernel that exits without ``await lab.close()`` leaves nothing behind; one interrupted keeps it all.

Learners restart kernels and close laptops mid-lesson. In-loop servers die with the process anyway;
replica processes and server threads would not, so the lab's exit hook ends them (every platform), and
on Linux a replica also asks the OS to kill it if its parent dies without running any hook (SIGKILL,
via PR_SET_PDEATHSIG, which macOS does not have: there that test is skipped, and the guarantee is only
the exit hook's).

Learners also press Kernel -> Interrupt, which sends SIGINT to the kernel's whole process group: the
lab's children (replicas, Redis, nginx) run in a group of their own, so they keep running, and the next
cell can use them.
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

from wslab.components import require_or_skip

ROOT = Path(__file__).resolve().parents[2]

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


INTERRUPTED = """
import asyncio, signal
from wslab import Lab

async def main():
    lab = Lab()
    replica = await lab.serve_process("wslab.apps:demo_app", name="r", factory=True)
    redis = await lab.redis()
    interrupted = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupted.set)  # the kernel survives it
    print(replica.pid, redis.process.pid, flush=True)
    await interrupted.wait()
    # A child in our process group would have had the SIGINT too; replica and Redis both exit on it.
    exits = [asyncio.ensure_future(p.wait()) for p in (replica.process, redis.process)]
    done, _ = await asyncio.wait(exits, timeout=2)
    # "The next cell": both still answer.
    client = await lab.connect(replica.ws_url("/ws/echo"), name="later")
    await client.send("still here")
    echo = await client.recv()
    redis_client = redis.client()
    pong = await redis_client.ping()
    await redis_client.aclose()
    print(len(done), echo, pong, flush=True)
    await asyncio.sleep(60)  # until the test kills us

asyncio.run(main())
"""


def test_an_interrupt_of_the_kernel_leaves_its_servers_running_and_a_kill_still_ends_them() -> None:
    require_or_skip("redis")
    # The "kernel" leads a process group of its own, so the SIGINT below reaches it and not pytest.
    parent = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None
        replica, redis = (int(pid) for pid in parent.stdout.readline().split())
        os.killpg(parent.pid, signal.SIGINT)  # what Jupyter's Kernel -> Interrupt does
        line = parent.stdout.readline()
        assert line.split() == ["0", "still", "here", "True"], line or parent.stderr.read()
        assert alive(replica) and alive(redis)
        os.kill(parent.pid, signal.SIGKILL)  # no atexit, no cleanup: only PR_SET_PDEATHSIG helps
        parent.wait(10)
        assert wait_gone(replica), "the replica survived a SIGKILLed parent"
        assert wait_gone(redis), "Redis survived a SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
