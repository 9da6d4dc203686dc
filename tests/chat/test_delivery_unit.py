"""De-duplication window and the clients' outbox, without a server (pure logic and a fake socket).

The end-to-end proof (connections cut during sends, every message delivered exactly once) is in
``tests/chat/test_delivery.py``; these pin the parts that make it work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from wslab.chat.dedup import RecentIds
from wslab.components import REQUIRE_ENV, required

BUILT = Path(__file__).resolve().parents[2] / "wslab" / "static" / "reconnecting-websocket.js"


def test_a_repeat_is_recognised_per_user_and_the_window_is_bounded() -> None:
    seen = RecentIds(capacity=3)
    assert seen.first_time("alice", "a-1") and not seen.first_time("alice", "a-1")
    assert seen.first_time("bob", "a-1")  # another user's id space: not a duplicate
    for n in range(2, 6):
        assert seen.first_time("alice", f"a-{n}")
    assert len(seen) == 3  # bounded: the oldest ids were forgotten...
    assert seen.first_time("alice", "a-1")  # ...so a retry this late would be delivered again
    assert seen.duplicates == 1


def test_a_retried_id_stays_in_the_window_while_it_is_retried() -> None:
    seen = RecentIds(capacity=2)
    assert seen.first_time("u", "x")
    assert seen.first_time("u", "y")
    assert not seen.first_time("u", "x")  # refreshed: now the newest
    assert seen.first_time("u", "z")  # evicts y, not x
    assert not seen.first_time("u", "x")


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RecentIds(capacity=0)


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
"""


def test_browser_client_resends_unacked_messages_after_the_auth_frame_until_acked() -> None:
    node = shutil.which("node")
    if node is None:
        message = "Node.js not found; fix: install Node.js 20+"
        if "browser" in required():
            pytest.fail(f"{message} (required by {REQUIRE_ENV})")
        pytest.skip(message)
    script = (
        f"const CLIENT = await import({json.dumps(BUILT.as_uri())});\n"
        + FAKE
        + """
const options = { WebSocketImpl: FakeSocket, base: 0.001, cap: 0.002, token: "t" };
const client = new CLIENT.ReconnectingWebSocket("ws://chat", options);
const results = [];
// queued: not open yet
const first = client.deliver({ type: "say", text: "one" }).then((id) => results.push(id));
sockets[0].open();
const second = client.deliver({ type: "say", text: "two" }).then((id) => results.push(id));
const ids = sockets[0].sent.slice(1).map((m) => m.msg_id);
sockets[0].deliver({ type: "ack", msg_id: ids[0] });
sockets[0].drop(1006);  // "two" was sent, its ack lost in the cut
await sleep(30);
sockets[1].open();
sockets[1].deliver({ type: "ack", msg_id: ids[1], duplicate: true });
await Promise.all([first, second]);
const late = client.deliver({ type: "say", text: "three" });
client.close();
const lateError = await late.then(() => "delivered", (error) => error.message);
console.log(JSON.stringify({ sent: sockets.map((s) => s.sent), ids, results, resent: client.resent,
  duplicateAcks: client.duplicateAcks, pending: client.pending, lateError }));
"""
    )
    result = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    one, two = out["ids"]
    assert one != two and out["results"] == [one, two]
    assert out["sent"][0] == [
        {"type": "auth", "token": "t"},
        {"type": "say", "text": "one", "msg_id": one},  # waited in the outbox until open
        {"type": "say", "text": "two", "msg_id": two},
    ]
    again, three = out["sent"][1][1:]
    assert out["sent"][1][0] == {"type": "auth", "token": "t"}
    assert again == {"type": "say", "text": "two", "msg_id": two}  # resent right after the auth frame
    assert three["text"] == "three"  # sent at once on the open connection, never acked
    assert (out["resent"], out["duplicateAcks"], out["pending"]) == (1, 1, 0)
    assert out["lateError"] == "not delivered: closed by the client"


def test_the_app_sizes_its_window_from_the_settings() -> None:
    from wslab.chat import ChatSettings, create_app

    assert create_app(ChatSettings(dedup_window=5)).state.chat.recent_ids.capacity == 5
    assert create_app(ChatSettings()).state.chat.recent_ids.capacity == 10_000
    with pytest.raises(ValueError, match="dedup_window must be at least 1"):
        ChatSettings(dedup_window=0)
