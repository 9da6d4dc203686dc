"""The tested set: requirements.lock agrees with pyproject.toml, every install path uses it, and no
notebook asserts a library version (a new release must fail at the lesson whose behaviour it changes,
not in cell 1 of every notebook)."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from wslab import versions

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
PYTHONS = ("3.11", "3.12", "3.13")


def _declared(extras: tuple[str, ...] = ("dev",)) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("python", PYTHONS)
def test_every_declared_dependency_is_locked_inside_its_range(python: str) -> None:
    pins = versions.parse_lock(
        LOCK.read_text(), {"python_version": python, "python_full_version": f"{python}.0"}
    )
    problems = []
    for requirement in _declared():
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not in the lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} is outside {requirement.specifier}")
    assert not problems, "requirements.lock disagrees with pyproject.toml (run `make lock`): " + "; ".join(
        problems
    )


def test_the_lock_pins_exact_versions_with_hashes() -> None:
    text = LOCK.read_text()
    assert "--generate-hashes" in text and "--universal" in text.splitlines()[1]
    entries = re.findall(
        r"^([A-Za-z0-9][\w.-]*)==\S+(?:\s*;[^\\\n]*)?\s*\\\n((?:\s+--hash=sha256:[0-9a-f]{64}\s*\\?\n)+)",
        text,
        re.M,
    )
    pinned_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9][\w.-]*==", line)]
    assert len(entries) == len(pinned_lines) > 50, "every pin carries at least one sha256 hash"
    assert not re.search(r"^[A-Za-z0-9][\w.-]*(>=|<|~=|\s*$)", text, re.M), "only exact pins"


def test_parse_lock_reads_markers_for_the_interpreter_asked() -> None:
    text = (
        "uvicorn==0.55.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
        "tomli==2.2.1 ; python_full_version < '3.12' \\\n    --hash=sha256:" + "1" * 64 + "\n"
        "# via pytest\n"
        "Jinja2==3.1.6 \\\n"
    )
    old = versions.parse_lock(text, {"python_full_version": "3.11.7"})
    new = versions.parse_lock(text, {"python_full_version": "3.13.0"})
    assert old == {"uvicorn": "0.55.0", "tomli": "2.2.1", "jinja2": "3.1.6"}
    assert new == {"uvicorn": "0.55.0", "jinja2": "3.1.6"}


def test_drift_names_what_differs_and_how_to_fix_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_lock = {
        "uvicorn": "0.1.0",
        "websockets": versions.locked_versions()["websockets"],
        "no-such-pkg": "1.0",
    }  # type: ignore[index]
    found = versions.drift(fake_lock)
    assert [d.name for d in found] == ["no-such-pkg", "uvicorn"]
    assert str(found[0]) == "no-such-pkg not installed (tested 1.0)"
    message = versions.drift_message(found)
    assert "uvicorn" in message and "make lab" in message and "doctor" in message

    monkeypatch.setattr(versions, "drift", lambda: found)
    monkeypatch.setattr(versions, "_warned", False)
    monkeypatch.setenv(versions.NO_WARNING_ENV, "1")
    assert versions.warn_if_drifted() is False  # silenced (nbval, make notebooks)
    monkeypatch.delenv(versions.NO_WARNING_ENV)
    assert versions.warn_if_drifted() is True
    assert versions.warn_if_drifted() is False  # once per process, not once per notebook cell
    err = capsys.readouterr().err
    assert err.count("differ from the tested set") == 1 and "no-such-pkg" in err


@pytest.mark.tested_set
def test_this_venv_is_the_tested_set() -> None:
    """`make test` installs the lock; a difference here means an install path bypassed it."""
    assert versions.drift() == []


def test_recorded_with_names_the_locked_versions() -> None:
    pins = versions.locked_versions()
    assert pins is not None
    line = versions.recorded_with("starlette", "uvicorn")
    assert line == (
        f"Outputs recorded with starlette {pins['starlette']}, uvicorn {pins['uvicorn']} "
        "(the tested set in requirements.lock)."
    )


def _names_a_version(node: ast.AST) -> bool:
    """``x.__version__``, ``x.version_info`` (but not ``sys.version_info``) or a ``version(...)`` call."""
    if isinstance(node, ast.Attribute) and node.attr in {"__version__", "version_info"}:
        return not (isinstance(node.value, ast.Name) and node.value.id == "sys")
    if isinstance(node, ast.Call):
        return getattr(node.func, "attr", getattr(node.func, "id", "")) == "version"
    return False


def _asserts_a_version(source: str) -> bool:
    try:
        tree = ast.parse(re.sub(r"^\s*[%!].*$", "", source, flags=re.M))
    except SyntaxError:  # not Python (a cell magic): not ours to judge here
        return False
    return any(
        _names_a_version(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assert)
        for inner in ast.walk(node.test)
    )


def test_no_notebook_asserts_a_library_version() -> None:
    offenders = []
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code" and _asserts_a_version("".join(cell["source"])):
                offenders.append(f"{path.relative_to(ROOT)} cell {index}")
    assert not offenders, "assert behaviour where it is shown, not a version: " + ", ".join(offenders)


def test_the_version_check_catches_what_it_should() -> None:
    assert _asserts_a_version('assert uvicorn.__version__.startswith("0.54.")')
    assert _asserts_a_version('assert importlib.metadata.version("redis") == "8.1.0"')
    assert not _asserts_a_version("assert sys.version_info >= (3, 11)")
    assert not _asserts_a_version("print(uvicorn.__version__)\nassert x == 1")


def test_every_install_path_uses_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK\s*:= requirements\.lock$", makefile, re.M)
    assert "uv pip sync" in makefile and "$(LOCK)" in makefile
    assert "-r $(LOCK)" in makefile  # the offline wheelhouse is built from the lock too
    assert "requirements.lock" in (ROOT / "environment.yml").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    # no recipe installs straight from pyproject's ranges, except test-latest, whose point that is
    recipes = re.findall(r"^(\S[^:\n]*):.*\n((?:\t.*\n)+)", makefile, re.M)
    for target, body in recipes:
        if "test-latest" in target:
            continue
        assert ".[dev]" not in body or "-c $(LOCK)" in body or "--no-deps" in body, target
