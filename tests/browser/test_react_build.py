"""The React page of chapter 10: the committed bundle is built from its sources, which type-check.

``wslab/static/react-chat.js`` is committed (learners need no Node.js), so this test bundles
``react-chat.tsx`` (with ``use-chat-socket.ts`` and the client) again with the project's esbuild into a
temporary file and compares: an edit to a source without ``npm run build`` fails here. The hook and the
page are also type-checked strictly (``tsconfig.react.json``).

Without ``node_modules`` (run ``npm ci``) or Node.js these tests skip with that hint; in CI, where
``WSLAB_REQUIRE`` includes ``browser``, they fail instead.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from wslab.components import REQUIRE_ENV, required

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "wslab" / "static" / "react-chat.js"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
TSC = ROOT / "node_modules" / "typescript" / "bin" / "tsc"


def _missing(what: str, hint: str) -> None:
    message = f"{what}; fix: {hint}"
    if "browser" in required():
        pytest.fail(f"{message} (required by {REQUIRE_ENV})")
    pytest.skip(message)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        _missing("Node.js not found", "install Node.js 20+ (apt-get install nodejs | brew install node)")
    assert node is not None
    return node


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _build_command(outfile: Path) -> list[str]:
    """``npm run build:react`` as package.json has it, writing to ``outfile``: one recipe, not a copy."""
    script = json.loads((ROOT / "package.json").read_text())["scripts"]["build:react"]
    args = shlex.split(script)
    assert args[0] == "esbuild", script
    return [str(ESBUILD), *(f"--outfile={outfile}" if a.startswith("--outfile=") else a for a in args[1:])]


def test_committed_bundle_is_built_from_the_sources(tmp_path: Path) -> None:
    _node()
    if not ESBUILD.exists():
        _missing("node_modules/.bin/esbuild not found", "npm ci")
    rebuilt = tmp_path / BUNDLE.name
    result = _run(_build_command(rebuilt))
    assert result.returncode == 0, result.stdout + result.stderr
    stale = f"{BUNDLE.name} is out of date with react-chat.tsx / use-chat-socket.ts: run `npm run build`"
    assert BUNDLE.read_bytes() == rebuilt.read_bytes(), stale


def test_the_bundle_carries_react_development_build_for_strict_mode() -> None:
    # StrictMode's double render and double mount exist only in React's development build; a
    # production bundle would let the StrictMode tests pass without testing anything. The key warning
    # is one of the development build's messages (the production build has none of them).
    assert "Each child in a list should have a unique" in BUNDLE.read_text()


def test_hook_and_page_type_check_strictly() -> None:
    node = _node()
    if not TSC.exists():
        _missing("node_modules/typescript not found", "npm ci")
    result = _run([node, str(TSC), "-p", "tsconfig.react.json"])
    assert result.returncode == 0, result.stdout + result.stderr
