"""The chat page at ``/``: plain HTML plus the browser client, and a demo login at ``POST /token``.

The page has no framework: a form for a name and a room, the connection state, the members and the
messages. Everything about staying connected is in ``wslab/static/reconnecting-websocket.js`` (built
from the ``.ts`` next to it), which follows the same rules as the Python ``ReconnectingClient``.

``POST /token`` is a **demo login without a password**: it issues a token for whatever name it is
given, with the app's ``token_ttl``. It exists so that a learner can open the page in two tabs and chat
as two people. A real app issues the token from its own authenticated session (a cookie, an OAuth
flow) and never to anyone who asks.

Page options, all in the query string so a lesson or a test can make time short:
``?base=0.05&cap=0.2`` (backoff, seconds), ``factor``, ``stable`` (seconds a connection must stay up
before the backoff resets), ``max`` (attempts before giving up), ``heartbeat`` (overrides the server's
``heartbeat_interval``, which the page is given: the client's watchdog fires when nothing arrived for
1.5 times that) and ``resume=1`` (send ``last_seq``).
A token can be supplied in the fragment, ``#token=...`` (never sent to the server in the URL, F24);
the page then uses that token and cannot get a new one when it expires, so it goes offline instead.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator

from wslab.chat.auth import issue_token
from wslab.chat.names import check_name
from wslab.chat.settings import ChatSettings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
"""Where the built browser client lives (served at ``/static``)."""


class TokenRequest(BaseModel):
    user: str = Field(min_length=1, max_length=32, pattern=r"^[\w .-]+$")

    @field_validator("user")
    @classmethod
    def _plain_name(cls, user: str) -> str:
        return check_name(user, "user name")  # the rule every token's name is held to


class TokenResponse(BaseModel):
    user: str
    token: str
    expires_in: float


def add_page(app: FastAPI, settings: ChatSettings) -> None:
    """Serve the chat page at ``/``, the demo login at ``POST /token`` and the client at ``/static``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        # The client's watchdog needs the server's heartbeat interval (empty: heartbeats are off).
        heartbeat = getattr(settings, "heartbeat_interval", None)
        return PAGE.replace("__HEARTBEAT__", "" if heartbeat is None else repr(float(heartbeat)))

    @app.post("/token")
    async def token(request: TokenRequest) -> TokenResponse:
        """Demo login, no password: a token for ``user`` valid for the app's ``token_ttl``."""
        issued = issue_token(request.user, settings.secret, settings.token_ttl)
        return TokenResponse(user=request.user, token=issued, expires_in=settings.token_ttl)

    app.add_exception_handler(RequestValidationError, refuse_without_echo)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


async def refuse_without_echo(request: Request, exc: Exception) -> JSONResponse:
    """422 saying which field is wrong and why, without echoing the client's value back.

    FastAPI's own handler puts each offending ``input`` in the answer; a name holding a lone surrogate
    (valid JSON, ``"\\ud800"``) cannot be encoded as UTF-8, so that answer itself failed with a 500.
    """
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error.get("type")}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


def run(host: str = "127.0.0.1", port: int = 8000) -> int:
    """Run the chat for a learner's own browser until Ctrl-C (``python -m wslab chat``); the exit code.

    Blocking and ``uvicorn.run``: this is a command line, never a notebook cell (DESIGN rule 1).
    """
    import uvicorn

    from wslab.chat.app import create_app  # here, not at the top: app.py imports this module

    try:  # a sentence instead of uvicorn's log line when the port is taken (exit code 1)
        socket.create_server((host, port)).close()
    except OSError as exc:
        print(f"wslab chat: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    shown = f"[{host}]" if ":" in host else host
    print(f"wslab chat: open http://{shown}:{port}/ in your browser (two tabs = two people); Ctrl-C stops it")
    # A short graceful-shutdown timeout, so Ctrl-C never hangs on open sockets (catalogue F19).
    app = create_app()
    # The transport limits follow the app's (ws_max_size, compression off): uvicorn's defaults would let
    # any socket, authenticated or not, make the server buffer 16 MiB messages or inflate deflate bombs.
    options = app.state.settings.uvicorn_options()
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2, **options)
    return 0


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wslab chat</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 52rem; padding: 1rem; }
  header { display: flex; gap: 1rem; align-items: baseline; justify-content: space-between; }
  #state { padding: .15rem .6rem; border-radius: 1rem; background: #eee; }
  #state[data-state="open"] { background: #c8f0c8; }
  #state[data-state="connecting"], #state[data-state="backing off"] { background: #fde9b0; }
  #state[data-state="offline"] { background: #f6c5c5; }
  #chat { display: grid; grid-template-columns: 10rem 1fr; gap: 1rem; }
  #log { list-style: none; padding: 0; margin: 0; height: 22rem; overflow-y: auto; border: 1px solid #ddd; }
  #log li { padding: .1rem .5rem; }
  #log .notice { color: #666; font-style: italic; }
  #log .error { color: #a00; }
  #say { grid-column: 2; display: flex; gap: .5rem; }
  #text { flex: 1; }
</style>
</head>
<body data-heartbeat="__HEARTBEAT__">
<header>
  <h1>wslab chat</h1>
  <span id="state" data-state="idle">not connected</span>
</header>
<form id="join">
  <label>Name <input id="name" required maxlength="32" autocomplete="off"></label>
  <label>Room <input id="room" required maxlength="64" value="lobby"></label>
  <button id="join-button">Join</button>
  <small>Demo login: no password; a real app takes the token from its own session.</small>
</form>
<section id="chat" hidden>
  <aside><h2>Members</h2><ul id="members"></ul></aside>
  <ol id="log"></ol>
  <form id="say">
    <input id="text" autocomplete="off" placeholder="Say something" disabled>
    <button id="send" disabled>Send</button>
  </form>
</section>
<script type="module">
import { ReconnectingWebSocket } from "/static/reconnecting-websocket.js";

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const number = (key) => (query.has(key) ? Number(query.get(key)) : undefined);
const suppliedToken = new URLSearchParams(location.hash.slice(1)).get("token");
const members = new Set();
let countdown;

function show(change) {
  clearInterval(countdown);
  const el = $("state");
  el.dataset.state = change.state;
  if (change.state === "backing off") {
    const until = performance.now() + change.delay * 1000;
    const tick = () => {
      const left = Math.max(0, (until - performance.now()) / 1000);
      el.textContent = `backing off: retrying in ${left.toFixed(1)} s (${change.detail})`;
    };
    tick();
    countdown = setInterval(tick, 100);
  } else if (change.state === "offline") {
    el.textContent = `offline: ${change.detail}`;
  } else {
    el.textContent = change.state;
  }
  const open = change.state === "open";
  $("text").disabled = $("send").disabled = !open;
}

function note(text, kind) {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = text;
  $("log").append(li);
  li.scrollIntoView({ block: "end" });
}

function showMembers() {
  $("members").replaceChildren(...[...members].sort().map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    return li;
  }));
}

function receive(message) {
  switch (message.type) {
    case "ready":
      members.clear();
      message.members.forEach((name) => members.add(name));
      note(`you are ${message.user} in ${message.room}`, "notice");
      break;
    case "joined":
      members.add(message.user);
      note(`${message.user} joined`, "notice");
      break;
    case "left":
      members.delete(message.user);
      note(`${message.user} left`, "notice");
      break;
    case "message":
      note(`${message.from}: ${message.text}`, "message");
      break;
    case "dm":
      note(`${message.from} (direct): ${message.text}`, "message");
      break;
    case "error":
      note(`error: ${message.reason}: ${message.detail}`, "error");
      break;
  }
  showMembers();
}

async function login(user) {
  const response = await fetch("/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  if (!response.ok) throw new Error(`login failed: HTTP ${response.status}`);
  return (await response.json()).token;
}

$("join").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("name").value.trim();
  const room = $("room").value.trim();
  let token = suppliedToken;
  try {
    token = token ?? (await login(user));
  } catch (error) {
    show({ state: "offline", detail: String(error.message) });
    return;
  }
  $("join").hidden = true;
  $("chat").hidden = false;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/ws/chat/${encodeURIComponent(room)}`;
  const client = new ReconnectingWebSocket(url, {
    token,
    // A supplied token cannot be renewed by this page: after 4002 it goes offline and says why.
    onTokenNeeded: suppliedToken ? undefined : () => login(user),
    base: number("base"),
    factor: number("factor"),
    cap: number("cap"),
    stableAfter: number("stable"),
    maxAttempts: number("max") ?? null,
    heartbeat: number("heartbeat") ?? (Number(document.body.dataset.heartbeat) || null),
    resume: query.get("resume") === "1",
    onState: show,
    onMessage: receive,
  });
  window.wslabChat = { client };  // for tests and the browser console
});

$("say").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text) return;
  try {
    window.wslabChat.client.send({ type: "say", text });
    $("text").value = "";
  } catch (error) {
    note(`not sent: ${error.message}`, "error");
  }
});
</script>
</body>
</html>
"""
