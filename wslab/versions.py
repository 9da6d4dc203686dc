"""The tested set: what ``requirements.lock`` pins, what is installed, and where they differ.

Why this exists: some lessons show behaviour that changes between releases (which exception a send to a
dead peer raises, whether a pooled Redis connection reconnects by itself). The course is recorded and
tested with one exact set of versions, the lock that every ``make`` target installs. A learner who
installed differently (``pip install`` by hand, a conda environment a month later) should hear about it
once, with the command that fixes it, instead of meeting a puzzling output in chapter 02. And a notebook
never asserts a version: behaviour is asserted where it is shown, so a new release that changes a lesson
fails at that lesson (``make test-latest``), not in cell 1 of every notebook.

The lock is universal (one file for Python 3.11-3.13 and every platform): a line may carry an
environment marker, evaluated here with :mod:`packaging` so only the lines for this interpreter count.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name

__all__ = [
    "LOCK_FILE",
    "NO_WARNING_ENV",
    "Drift",
    "drift",
    "drift_message",
    "find_lock",
    "locked_versions",
    "parse_lock",
    "recorded_with",
    "warn_if_drifted",
]

LOCK_FILE = "requirements.lock"
"""The lock's file name, at the top of the repository beside ``pyproject.toml``."""

NO_WARNING_ENV = "WSLAB_NO_DRIFT_WARNING"
"""Set (to anything) to silence the drift warning, e.g. under nbval, where notebooks are compared cell
by cell and a drifted lesson must fail at the cell that shows the changed behaviour instead."""

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]+))?")


@dataclass(frozen=True)
class Drift:
    """One package whose installed version is not the locked one (``installed`` None: not installed)."""

    name: str
    locked: str
    installed: str | None

    def __str__(self) -> str:
        have = self.installed if self.installed is not None else "not installed"
        return f"{self.name} {have} (tested {self.locked})"


def parse_lock(text: str, environment: dict[str, str] | None = None) -> dict[str, str]:
    """``{canonical name: version}`` for the pins in a ``uv pip compile`` lock that apply here.

    ``environment`` overrides marker variables (``{"python_version": "3.13"}``), so a test can read
    the lock as another interpreter would.
    """
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if not match:
            continue
        marker = match.group("marker")
        if marker:
            try:
                if not Marker(marker.strip()).evaluate(environment):
                    continue
            except InvalidMarker as exc:
                raise ValueError(f"{LOCK_FILE}: cannot read the marker in {line.strip()!r}: {exc}") from exc
        pins[canonicalize_name(match.group("name"))] = match.group("version")
    return pins


def find_lock() -> Path | None:
    """The lock beside the checkout wslab runs from, or None (installed from a wheel, no checkout)."""
    candidate = Path(__file__).resolve().parent.parent / LOCK_FILE
    return candidate if candidate.is_file() else None


@cache
def locked_versions() -> dict[str, str] | None:
    """The lock's pins for this interpreter, read once per process; None when there is no lock."""
    path = find_lock()
    return parse_lock(path.read_text(encoding="utf-8")) if path is not None else None


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def drift(locked: dict[str, str] | None = None) -> list[Drift]:
    """Every locked package whose installed version differs, sorted by name (empty: the tested set)."""
    pins = locked_versions() if locked is None else locked
    if not pins:
        return []
    found = [Drift(name, version, _installed(name)) for name, version in sorted(pins.items())]
    return [d for d in found if d.installed != d.locked]


def drift_message(differences: list[Drift], *, limit: int = 6) -> str:
    """One paragraph: what differs from the tested set, what that means, and the command that fixes it."""
    shown = ", ".join(str(d) for d in differences[:limit])
    more = f" and {len(differences) - limit} more" if len(differences) > limit else ""
    return (
        f"wslab: the installed packages differ from the tested set in {LOCK_FILE}: {shown}{more}. "
        "The course runs, but an output that depends on a version may differ from the one stored in the "
        "notebook. `make lab` (or `uv pip sync requirements.lock`) installs the tested set; "
        "`python -m wslab doctor` lists every difference."
    )


_warned = False


def warn_if_drifted() -> bool:
    """Print :func:`drift_message` to stderr once per process if the installed set is not the lock's.

    :meth:`wslab.Lab.open` calls it, so a learner sees it in the first cell of any notebook. Returns
    whether it printed. Silent under :data:`NO_WARNING_ENV`, and when there is no lock to compare with.
    """
    global _warned
    if _warned or os.environ.get(NO_WARNING_ENV):
        return False
    differences = drift()
    if not differences:
        return False
    _warned = True
    print(drift_message(differences), file=sys.stderr)
    return True


def recorded_with(*names: str) -> str:
    """The sentence a version-dependent notebook prints: which locked versions its outputs come from.

    It names the *locked* versions, so the stored output does not change when someone runs a newer
    release; whether this machine differs is :func:`warn_if_drifted`'s job (printed once, to stderr).
    """
    pins = locked_versions() or {}
    parts = [f"{name} {pins.get(canonicalize_name(name), _installed(name) or '?')}" for name in names]
    return "Outputs recorded with " + ", ".join(parts) + f" (the tested set in {LOCK_FILE})."


def main() -> int:
    """``python -m wslab.versions``: every difference from the lock, one per line (``make test-latest``)."""
    if locked_versions() is None:
        print(f"no {LOCK_FILE} beside wslab: nothing to compare with")
        return 0
    differences = drift()
    for d in differences:
        print(f"  {d.name}: tested {d.locked}, installed {d.installed or 'nothing'}")
    print(f"{len(differences)} packages differ from {LOCK_FILE}" if differences else f"matches {LOCK_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
