"""Re-execute notebooks in place so their stored outputs are real (``make notebooks``).

With ``--no-write`` (``make timings``) the notebooks run and their run times are printed, but nothing
is written: an instructor can check a workshop laptop without touching the course files.

Outputs are never edited by hand: learners read them on GitHub and nbval compares against them. Each
notebook runs in a fresh kernel from this environment, with the notebook's folder as working directory
(as nbval and JupyterLab do). Timing metadata is not recorded, so a re-run changes only what changed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
# stored outputs never carry the "installed set differs from the lock" warning (wslab.versions)
os.environ["WSLAB_NO_DRIFT_WARNING"] = "1"


def execute(path: Path, write: bool = True) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    if write:
        nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    write = "--no-write" not in argv
    paths = [Path(a) for a in argv if a != "--no-write"] or sorted(
        p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )
    total = 0.0
    for path in paths:
        elapsed = execute(path, write=write)
        print(f"{elapsed:6.1f} s  {path.relative_to(ROOT) if path.is_absolute() else path}", flush=True)
        total += elapsed
    print(f"{total:6.1f} s  in all ({len(paths)} notebooks{'' if write else ', nothing written'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
