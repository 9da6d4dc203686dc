"""The README, the instructor guide and the start page agree, because the parts they share are generated
or checked here: the run times (written by ``make timings`` into both documents) and the "where do I look
when…" table (in the README and in chapter 00, which is where a learner in JupyterLab lands).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "instructors.md"
START_PAGE = ROOT / "notebooks" / "00_start_here.ipynb"
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)

_spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "tools" / "execute_notebooks.py")
assert _spec is not None and _spec.loader is not None
execute_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(execute_notebooks)


def run_times(doc: Path) -> str:
    match = execute_notebooks.BLOCK.search(doc.read_text())
    assert match, f"{doc.name} has no run-times block"
    return match.group(0)


def test_readme_and_guide_carry_the_same_generated_run_times_for_every_notebook() -> None:
    readme, guide = run_times(README), run_times(GUIDE)
    # the only difference allowed: links are relative to each document
    assert readme == guide.replace("](../notebooks/", "](notebooks/"), "run `make timings`"
    listed = re.findall(r"\]\(notebooks/([^)]+\.ipynb)\) \| (\d+) s \|", readme)
    assert sorted(name for name, _ in listed) == sorted(
        p.relative_to(ROOT / "notebooks").as_posix() for p in NOTEBOOKS
    ), "a notebook was added or renamed since the last `make timings`"
    assert all(int(seconds) >= 1 for _, seconds in listed)


def test_no_hand_written_run_times_outside_the_generated_block() -> None:
    for doc in (README, GUIDE):
        outside = execute_notebooks.BLOCK.sub("", doc.read_text())
        assert not re.search(r"\|\s*~?\d+(\.\d+)?(–\d+(\.\d+)?)? s( each)? \|", outside), doc.name


def test_timings_block_rounds_up_and_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    notebooks = execute_notebooks.NOTEBOOKS
    times = {notebooks / "00_start_here.ipynb": 0.2, notebooks / "failures" / "F01_dead_sockets.ipynb": 61.5}
    block = execute_notebooks.timings_block(times, datetime.date(2026, 1, 2), 2)
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{execute_notebooks.START}\nold\n{execute_notebooks.END}\nafter\n")
    execute_notebooks.write_timings(block, [doc])
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "old" not in text
    assert "| 1 s |" in text and "| 62 s |" in text and "about 2 min" in text and "2026-01-02" in text
    assert "failures/F01_dead_sockets.ipynb)" in text


def where_to_look(text: str) -> list[str]:
    """The rows of the "Where do I look when…" table, links made relative to notebooks/."""
    match = re.search(r"### Where do I look when…\n\n((?:\|.*\n)+)", text + "\n")
    assert match, "no 'Where do I look when…' table"
    return [row.replace("](notebooks/", "](") for row in match.group(1).strip().splitlines()]


def test_the_start_page_has_the_readme_course_map_and_where_to_look_table() -> None:
    cells = nbformat.read(START_PAGE, as_version=4).cells
    start = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    readme = README.read_text()
    assert where_to_look(start) == where_to_look(readme)
    failure_notebooks = {p.name for p in NOTEBOOKS if p.parent.name == "failures"}
    linked = set(re.findall(r"\(failures/(F\d\d_\w+\.ipynb)\)", "\n".join(where_to_look(start))))
    assert linked == failure_notebooks, "every failure notebook has a row in the table"
    mermaid = re.compile(r"```mermaid\n(.*?)```", re.S)
    assert mermaid.search(readme).group(1) == mermaid.search(start).group(1)  # type: ignore[union-attr]


@pytest.mark.slow
def test_make_lab_opens_markdown_pages_rendered(tmp_path: Path) -> None:
    """`make lab` sets JUPYTER_CONFIG_PATH=jupyter: JupyterLab's default viewer for Markdown is the preview.

    Without it, double-clicking notebooks/failures/README.md (the failure index) shows its source.
    Checked on a real JupyterLab server's settings API, with isolated config and data directories.
    """
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(ROOT / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    command += [f"--ServerApp.port={port}", "--IdentityProvider.token=t", f"--ServerApp.root_dir={tmp_path}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    url = f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/docmanager-extension:plugin?token=t"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "jupyter lab exited"
            try:
                with opener.open(url, timeout=2) as response:
                    plugin = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "jupyter lab did not answer in 60 s"
                time.sleep(0.25)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert plugin["schema"]["properties"]["defaultViewers"]["default"] == {"markdown": "Markdown Preview"}
