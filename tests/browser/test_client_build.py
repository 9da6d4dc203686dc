"""The browser client: the served JS is built from the TS source, type-checks, and behaves like Python's.

``wslab/static/reconnecting-websocket.js`` is committed (learners need no Node.js), so a test rebuilds
it from the ``.ts`` into a temporary directory and compares: an edit to the source without ``npm run
build`` fails here. The rules are then checked in Node against the Python ones: ``decide()`` gives the
same decision for every close code, and the client, driven through a fake WebSocket, reconnects, stops,
refreshes its token, answers pings and gives up like ``ReconnectingClient``.

Without ``node_modules`` (run ``npm ci``) or Node.js these tests skip with that hint; in CI, where
``WSLAB_REQUIRE`` includes ``browser``, they fail instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from wslab.backoff import ExponentialBackoff, decide
from wslab.components import REQUIRE_ENV, required
from wslab.wire import CloseCode

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "wslab" / "static"
SOURCE = STATIC / "reconnecting-websocket.ts"
BUILT = STATIC / "reconnecting-websocket.js"
TSC = ROOT / "node_modules" / ".bin" / "tsc"


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


def _tsc() -> list[str]:
    node = _node()
    if not TSC.exists():
        _missing("node_modules/.bin/tsc not found", "npm ci")
    return [node, str(ROOT / "node_modules" / "typescript" / "bin" / "tsc")]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_committed_js_is_built_from_the_ts_source(tmp_path: Path) -> None:
    result = _run([*_tsc(), "-p", "tsconfig.json", "--outDir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    rebuilt = (tmp_path / BUILT.name).read_text()
    stale = f"{BUILT.name} is out of date with {SOURCE.name}: run `npm run build`"
    assert BUILT.read_text() == rebuilt, stale


def test_ts_source_type_checks_strictly() -> None:
    result = _run([*_tsc(), "-p", "tsconfig.json", "--noEmit"])
    assert result.returncode == 0, result.stdout + result.stderr


def _node_eval(script: str) -> object:
    """Run an ES module ``script`` in Node with ``CLIENT`` bound to the built client; return its JSON."""
    prelude = f"const CLIENT = await import({json.dumps(BUILT.as_uri())});\n"
    result = _run([_node(), "--input-type=module", "-e", prelude + script])
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


CODES = [None, *sorted(int(code) for code in CloseCode), 4000, 4123, 3000, 1004]


def test_decide_is_the_same_in_the_browser_as_in_python() -> None:
    browser = _node_eval(f"console.log(JSON.stringify({json.dumps(CODES)}.map(CLIENT.decide)));")
    python = [
        {"action": d.action.value, "reason": d.reason, "slowDown": d.slow_down} for d in map(decide, CODES)
    ]
    assert browser == python


def test_full_jitter_stays_under_the_capped_exponential_bound() -> None:
    top = _node_eval(
        "const top = [...Array(8).keys()].map((n) => CLIENT.fullJitter(n, 0.5, 2, 30, () => 1));"
        "console.log(JSON.stringify(top));"
    )
    assert top == [ExponentialBackoff(0.5, 2, 30).delay(n) for n in range(8)]
    assert _node_eval("console.log(CLIENT.fullJitter(3, 0.5, 2, 30, () => 0));") == 0


# A fake WebSocket the test drives by hand: open it, deliver messages, close it with a code.
FAKE = """
const sockets = [];
class FakeSocket {
  constructor(url) { this.url = url; this.sent = []; sockets.push(this); }
  send(data) { this.sent.push(JSON.parse(data)); }
  close() {}
  open() { this.onopen?.(); }
  deliver(message) { this.onmessage?.({ data: JSON.stringify(message) }); }
  drop(code) { this.onclose?.({ code }); }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const states = [];
const delivered = [];
const options = (extra) => ({
  WebSocketImpl: FakeSocket, base: 0.001, cap: 0.002, token: "t1",
  onState: (change) => states.push(change.detail ? `${change.state}: ${change.detail}` : change.state),
  onMessage: (message) => delivered.push(message), ...extra,
});
"""


def test_client_reconnects_refreshes_answers_pings_and_stops_like_python() -> None:
    out = _node_eval(
        FAKE
        + """
const renew = { onTokenNeeded: async () => "t2", resume: true };
const client = new CLIENT.ReconnectingWebSocket("ws://chat", options(renew));
sockets[0].open();
sockets[0].deliver({ type: "ping" });
sockets[0].deliver({ type: "message", from: "bob", text: "hi", seq: 5 });
sockets[0].drop(1012);
await sleep(50);
sockets[1].open();
sockets[1].drop(4002);
await sleep(50);
sockets[2].open();
sockets[2].drop(4001);
await sleep(50);
console.log(JSON.stringify({ states, delivered, sent: sockets.map((s) => s.sent), attempts: client.attempts,
  state: client.state, reason: client.offlineReason, codes: client.closeCodes }));
"""
    )
    assert isinstance(out, dict)
    assert out["sent"] == [
        [{"type": "auth", "token": "t1"}, {"type": "pong"}],  # the auth frame first; the ping answered
        [{"type": "auth", "token": "t1", "last_seq": 5}],  # resume: where it stopped
        [{"type": "auth", "token": "t2", "last_seq": 5}],  # 4002: a fresh token from onTokenNeeded
    ]
    assert out["delivered"] == [{"type": "message", "from": "bob", "text": "hi", "seq": 5}]  # not the ping
    assert out["attempts"] == 3  # 4001: no fourth attempt
    assert out["codes"] == [1012, 4002, 4001]
    assert (out["state"], out["reason"]) == ("offline", decide(4001).reason)
    assert out["states"][:3] == ["connecting", "open: connection 1", f"backing off: {decide(1012).reason}"]
    assert out["states"][-1] == f"offline: {decide(4001).reason}"


def test_client_gives_up_and_its_watchdog_replaces_a_silent_connection() -> None:
    out = _node_eval(
        FAKE
        + """
const refused = new CLIENT.ReconnectingWebSocket("ws://down", options({ maxAttempts: 2 }));
for (let i = 0; i < 3; i++) { sockets[i].drop(1006); await sleep(30); }
const gaveUp = { attempts: refused.attempts, state: refused.state, reason: refused.offlineReason,
                 sockets: sockets.length };
sockets.length = 0;
const quiet = new CLIENT.ReconnectingWebSocket("ws://quiet", options({ heartbeat: 0.02 }));
sockets[0].open();
// nothing arrives for 1.5 heartbeats (30 ms): the watchdog closes it and the client reconnects;
// polled (up to 2 s), since a busy machine may run Node's timers late
for (let t = 0; t < 200 && sockets.length < 2; t++) await sleep(10);
const watched = { sockets: sockets.length, codes: quiet.closeCodes };
quiet.close();
console.log(JSON.stringify({ gaveUp, watched, finalState: quiet.state }));
"""
    )
    assert isinstance(out, dict)
    assert out["gaveUp"] == {
        "attempts": 3,
        "state": "offline",
        "reason": "gave up after 2 failed attempts",  # the Python client's words and count
        "sockets": 3,
    }
    assert out["watched"]["sockets"] >= 2
    assert out["watched"]["codes"][0] == CloseCode.ABNORMAL_CLOSURE
    assert out["finalState"] == "offline"
