"""The learner's real path: JupyterLab in Chromium, chapter 01 run through the UI, no errors.

Everything else tests the notebooks headlessly (nbval, nbclient). This test does what a learner does:
start ``jupyter lab``, open the chapter in a real browser, pick Run → Run All Cells from the menu, and
read what the page shows. It catches what headless runs cannot: a kernelspec JupyterLab cannot start,
a notebook the frontend refuses to open, outputs that do not render.

Isolation: the server gets its own config, data and runtime directories and a root directory holding a
*copy* of the notebook with its saved outputs stripped (so every output the test sees was produced by
this run, and JupyterLab's autosave never touches the repository). Clean-up deletes the kernels over the
REST API, stops the server's process group, and then kills anything still running from the temp
directory (kernels run in their own session, so killing the server's group alone would miss them).

Selectors are collected in the constants below so they can be fixed in one place after a JupyterLab
upgrade. Skipped without Chromium, a failure in CI (WSLAB_REQUIRE contains ``browser``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from wslab.components import CHROMIUM_ARGS, require_or_skip

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "01_handshake_and_frames.ipynb"
TOKEN = "wslab-e2e-token"

# Seconds. Each wait is bounded on its own *and* by one overall budget, so the test fails with a useful
# message well before pytest-timeout (120 s) would kill it. A passing run takes 25-35 s on 2 cores; the
# caps are generous because a cold JupyterLab on a loaded machine is slow, not because it hangs.
TOTAL_BUDGET = 105.0
SERVER_START_TIMEOUT = 45.0  # until /api/status answers
NOTEBOOK_OPEN_TIMEOUT = 45.0  # until every code cell of the notebook is in the DOM
KERNEL_READY_TIMEOUT = 45.0  # until the kernel is started, connected and idle
RUN_STARTED_TIMEOUT = 10.0  # after the menu click, until the first cell shows "[*]"
RUN_ALL_TIMEOUT = 60.0  # until every code cell shows an execution count

# --- JupyterLab 4.6 DOM: what the test relies on (with windowingMode "none", see _write_settings) ----
NOTEBOOK_PANEL = ".jp-NotebookPanel"
CODE_CELL = f"{NOTEBOOK_PANEL} .jp-Notebook .jp-Cell.jp-CodeCell"
INPUT_PROMPT = ".jp-InputArea-prompt"  # text "[ ]:" (never run), "[*]:" (queued/running), "[3]:"
# The toolbar's kernel status indicator: data-status "idle", "busy", "connecting", "unknown", ... Careful:
# it says "idle" *before* any kernel is attached (status bar: "No Kernel | Initializing"), so it is only
# trusted together with the status bar's kernel item, which reads "Python 3 (ipykernel) | Idle" once
# the kernel is connected. Run All clicked before that silently runs nothing.
KERNEL_STATUS = f"{NOTEBOOK_PANEL} .jp-Notebook-ExecutionIndicator"
STATUSBAR_TEXT = "#jp-main-statusbar .jp-StatusBar-TextItem"
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"
MENU_RUN = ".lm-MenuBar-item:has(.lm-MenuBar-itemLabel:text-is('Run'))"
MENU_RUN_ALL = ".lm-Menu-item[data-command='runmenu:run-all']"
STDERR_OUTPUT = f"{NOTEBOOK_PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
OUTPUT_AREA = f"{NOTEBOOK_PANEL} .jp-OutputArea-output"

# JS: the input prompt of every code cell, as displayed ("[1]:", "[*]:", "[ ]:").
PROMPTS_JS = f"""() => Array.from(document.querySelectorAll({json.dumps(CODE_CELL)}))
    .map(cell => (cell.querySelector({json.dumps(INPUT_PROMPT)})?.textContent ?? '').trim())"""
STDERR_JS = f"""() => Array.from(document.querySelectorAll({json.dumps(STDERR_OUTPUT)}))
    .map(o => o.textContent)"""
KERNEL_READY_JS = f"""() => {{
    const indicator = document.querySelector({json.dumps(KERNEL_STATUS)});
    const items = Array.from(document.querySelectorAll({json.dumps(STATUSBAR_TEXT)}));
    return indicator?.getAttribute('data-status') === 'idle'
        && items.some(i => i.textContent.trim() === {json.dumps(KERNEL_DISPLAY_NAME + " | Idle")});
}}"""
# True once every code cell shows a number, or as soon as an error output appears (fail fast).
DONE_OR_FAILED_JS = f"""(expected) => {{
    const prompts = ({PROMPTS_JS})();
    const errors = ({STDERR_JS})().filter(t => /Error|Traceback/.test(t));
    if (errors.length) return true;
    return prompts.length === expected && prompts.every(p => /^\\[\\d+\\]:?$/.test(p));
}}"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(base: str, path: str, method: str = "GET", timeout: float = 5.0) -> object:
    request = urllib.request.Request(
        f"{base}{path}", method=method, headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def _processes_under(directory: Path) -> list[int]:
    """Pids of live processes whose command line mentions `directory` (the server, its kernels)."""
    marker = str(directory)
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if any(marker in part for part in cmdline):
            found.append(process.pid)
    return [pid for pid in found if pid != os.getpid()]


def _copy_without_outputs(source: Path, target: Path) -> int:
    """Copy the notebook with outputs and execution counts cleared; return its number of code cells."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    code_cells = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            code_cells += 1
    target.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return code_cells


def _write_settings(config_dir: Path) -> None:
    """User settings for the isolated config dir: every cell in the DOM, no news/update requests."""
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab"
    files = {
        # "none": attach all cells, so every prompt and output is in the DOM (no virtualisation).
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    for name, content in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content), encoding="utf-8")
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "LabApp": {
                    "news_url": None,
                    "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
                    "extension_manager": "readonly",
                }
            }
        ),
        encoding="utf-8",
    )


@contextlib.contextmanager
def _jupyterlab(tmp: Path, budget: _Budget) -> Iterator[tuple[str, Path]]:
    """Run `jupyter lab` on a free loopback port with isolated dirs; yield (base URL, log file)."""
    root, config, data, runtime = (tmp / name for name in ("root", "config", "data", "runtime"))
    for directory in (root, config, data, runtime):
        directory.mkdir(exist_ok=True)
    _write_settings(config)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTERLAB_SETTINGS_DIR": str(config / "lab" / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(config / "lab" / "workspaces"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONUNBUFFERED": "1",
        "IPYTHONDIR": str(tmp / "ipython"),  # the kernel's history database and profile
    }
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = tmp / "jupyterlab.log"
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + budget.seconds(SERVER_START_TIMEOUT)
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{_tail(log_path)}")
            try:
                _api(base, "/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab not up in time:\n{_tail(log_path)}")
                time.sleep(0.25)
        yield base, log_path
    finally:
        _stop(process, base, tmp)


def _stop(process: subprocess.Popen[bytes], base: str, tmp: Path) -> None:
    with contextlib.suppress(Exception):
        for kernel in _api(base, "/api/kernels"):  # type: ignore[union-attr]
            with contextlib.suppress(Exception):
                _api(base, f"/api/kernels/{kernel['id']}", method="DELETE", timeout=15)
    # SIGTERM lets the server shut down whatever kernels remain; then the whole group, hard.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers in the server's group
    # Kernels run in their own session; their command line names the connection file in our runtime dir.
    deadline = time.monotonic() + 10
    while (leftover := _processes_under(tmp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in leftover:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class _Budget:
    """One deadline for the whole test; each wait gets min(its own cap, what is left)."""

    def __init__(self, total: float) -> None:
        self.deadline = time.monotonic() + total

    def seconds(self, cap: float) -> float:
        return max(1.0, min(cap, self.deadline - time.monotonic()))

    def ms(self, cap: float) -> float:
        return self.seconds(cap) * 1000


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def test_chapter_01_runs_clean_in_jupyterlab_in_chromium() -> None:
    browser_component = require_or_skip("browser")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    budget = _Budget(TOTAL_BUDGET)
    tmp = Path(tempfile.mkdtemp(prefix="wslab-jlab-e2e-"))
    try:
        (tmp / "root").mkdir()
        code_cells = _copy_without_outputs(NOTEBOOK, tmp / "root" / NOTEBOOK.name)
        with _jupyterlab(tmp, budget) as (base, log_path):
            specs = _api(base, "/api/kernelspecs")
            assert "python3" in specs["kernelspecs"], specs  # type: ignore[index]
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=browser_component.path, headless=True, args=list(CHROMIUM_ARGS)
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                try:
                    _run_notebook(page, base, code_cells, log_path, budget)
                except (AssertionError, PlaywrightError, pytest.fail.Exception) as exc:
                    # What the page looked like, for fixing selectors after a JupyterLab upgrade.
                    evidence = Path(tempfile.gettempdir()) / "wslab-jlab-e2e-failure"
                    with contextlib.suppress(Exception):
                        page.screenshot(path=f"{evidence}.png")
                        Path(f"{evidence}.html").write_text(page.content(), encoding="utf-8")
                        exc.add_note(f"page at failure: {evidence}.png and {evidence}.html")
                    raise
                finally:
                    browser.close()
        assert _processes_under(tmp) == [], "JupyterLab or a kernel survived clean-up"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_notebook(page, base: str, code_cells: int, log_path: Path, budget: _Budget) -> None:
    from playwright.sync_api import Error as PlaywrightError

    page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={TOKEN}", wait_until="domcontentloaded")
    # Cells are attached incrementally after the notebook model loads: wait for all of them.
    page.wait_for_function(
        f"(n) => ({PROMPTS_JS})().length === n",
        arg=code_cells,
        timeout=budget.ms(NOTEBOOK_OPEN_TIMEOUT),
        polling=250,
    )
    # The default kernel (python3 from ipykernel in this venv) must start and settle.
    page.wait_for_function(KERNEL_READY_JS, timeout=budget.ms(KERNEL_READY_TIMEOUT), polling=250)
    assert all(p in ("[ ]:", "[ ]") for p in page.evaluate(PROMPTS_JS)), "outputs were not cleared"

    # Run → Run All Cells, through the menu bar like a learner. Running a cell marks it "[*]" at once
    # (synchronously, in the frontend); if nothing is marked the click was lost, so it is safe to
    # try once more (nothing was queued, so nothing runs twice).
    for attempt in (1, 2):
        page.click(MENU_RUN)
        page.click(MENU_RUN_ALL)
        try:
            page.wait_for_function(
                f"() => ({PROMPTS_JS})().some(p => p !== '[ ]:')",
                timeout=budget.ms(RUN_STARTED_TIMEOUT),
                polling=100,
            )
            break
        except PlaywrightError:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")

    try:
        page.wait_for_function(
            DONE_OR_FAILED_JS, arg=code_cells, timeout=budget.ms(RUN_ALL_TIMEOUT), polling=250
        )
    except PlaywrightError:
        pytest.fail(
            f"not every cell ran in time; prompts: "
            f"{page.evaluate(PROMPTS_JS)}\nerrors: {page.evaluate(STDERR_JS)}\nserver log:\n"
            f"{_tail(log_path)}"
        )

    errors = [t for t in page.evaluate(STDERR_JS) if re.search(r"Error|Traceback", t)]
    assert errors == [], f"error output in the notebook:\n{errors[0][:3000]}"
    prompts = page.evaluate(PROMPTS_JS)
    assert prompts == [f"[{n}]:" for n in range(1, code_cells + 1)], prompts

    outputs = "\n".join(page.locator(OUTPUT_AREA).all_text_contents())
    assert "HTTP/1.1 200 OK" in outputs
    assert "101 Switching Protocols" in outputs
    assert "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in outputs
    assert "opcode=0x1 TEXT" in outputs
    assert "TEXT" in outputs and "BINARY" in outputs  # the tap table
    assert "pushed by the server, unasked: [1, 2, 3, 4, 5]" in outputs
    assert "the lab stopped everything it started: True" in outputs
