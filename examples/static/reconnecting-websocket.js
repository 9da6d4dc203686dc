/**
 * A browser WebSocket that stays connected: the same rules as wslab's Python `ReconnectingClient`
 * (wslab/clients.py) and `decide()` (wslab/backoff.py).
 *
 * - After a drop, wait a random delay in [0, min(cap, base * factor^n)] ("full jitter") before
 *   trying again. The first delay is random too: after a server restart every client notices at the
 *   same instant, and that crowd is the biggest one (catalogue F17). The counter n resets only once
 *   a connection has *stayed up* `stableAfter` seconds, so a server that accepts and drops at once
 *   cannot make every browser retry at full speed.
 * - What to do is decided by the close code: 4001/1008/4003 (and client bugs) stop, because the same
 *   credentials fail again (F20); 4002 asks `onTokenNeeded` for a new token; 1013/4008 back off
 *   harder; anything else (1001, 1006, 1011, 1012...) reconnects.
 * - The first message on every connection is the auth frame `{"type": "auth", "token": ...}`, with
 *   `last_seq` when `resume` is on, so a server can replay what was missed (F18).
 * - An application `{"type": "ping"}` is answered with `{"type": "pong"}` and not delivered; with
 *   `heartbeat` set, a connection on which nothing arrived for 1.5 × heartbeat is treated as dead.
 * - `maxAttempts` failed attempts in a row end in "offline" ("gave up ..."), which the page shows.
 * - `send()` is fire-and-forget and refuses while not open. `deliver()` is for messages that must
 *   arrive: it gives the message an id (`msg_id`), keeps it until the server answers
 *   `{"type": "ack", "msg_id": ...}`, and sends it again on every new connection until then. The server
 *   drops an id it has already seen (and acks it again), so a message whose ack was lost in a cut is
 *   delivered once, not twice. The returned promise resolves with the id once acknowledged.
 *
 * Durations are in seconds, like the Python side. Build: `npm run build` (tsc) writes the .js next
 * to this file; the chat app serves it at /static/reconnecting-websocket.js.
 */
/** Close codes by name, as in wslab.wire.CloseCode (RFC 6455 §7.4, IANA, and wslab's 4xxx). */
export const CloseCode = {
    NORMAL_CLOSURE: 1000,
    GOING_AWAY: 1001,
    PROTOCOL_ERROR: 1002,
    UNSUPPORTED_DATA: 1003,
    NO_STATUS_RCVD: 1005,
    ABNORMAL_CLOSURE: 1006,
    INVALID_DATA: 1007,
    POLICY_VIOLATION: 1008,
    MESSAGE_TOO_BIG: 1009,
    MANDATORY_EXTENSION: 1010,
    INTERNAL_ERROR: 1011,
    SERVICE_RESTART: 1012,
    TRY_AGAIN_LATER: 1013,
    BAD_GATEWAY: 1014,
    TLS_HANDSHAKE: 1015,
    UNAUTHORIZED: 4001,
    TOKEN_EXPIRED: 4002,
    FORBIDDEN_ORIGIN: 4003,
    RATE_LIMITED: 4008,
    SLOW_CONSUMER: 4009,
    RESYNC_REQUIRED: 4010,
};
const NAMES = new Map(Object.entries(CloseCode).map(([name, code]) => [code, name]));
/** `"1012 SERVICE_RESTART"`, `"4123 (application)"`: a code with its name (CloseCode.describe). */
export function describeCode(code) {
    const name = NAMES.get(code);
    if (name !== undefined)
        return `${code} ${name}`;
    if (code >= 1000 && code <= 2999)
        return `${code} (reserved)`;
    if (code >= 3000 && code <= 3999)
        return `${code} (registered)`;
    if (code >= 4000 && code <= 4999)
        return `${code} (application)`;
    return `${code} (invalid)`;
}
const STOP = {
    [CloseCode.NORMAL_CLOSURE]: "closed normally",
    [CloseCode.UNAUTHORIZED]: "not authorized: the same credentials will fail again",
    [CloseCode.POLICY_VIOLATION]: "policy violation: retrying would repeat it",
    [CloseCode.FORBIDDEN_ORIGIN]: "origin not allowed",
    [CloseCode.PROTOCOL_ERROR]: "protocol error: a client bug, retrying repeats it",
    [CloseCode.UNSUPPORTED_DATA]: "unsupported data: a client bug, retrying repeats it",
    [CloseCode.MESSAGE_TOO_BIG]: "message too big: a client bug, retrying repeats it",
};
const SLOW_DOWN = {
    [CloseCode.TRY_AGAIN_LATER]: "server overloaded: try again later",
    [CloseCode.RATE_LIMITED]: "rate limited",
};
/** What to do after a close with `code` (null: the connection could not be opened at all). */
export function decide(code) {
    if (code === CloseCode.TOKEN_EXPIRED) {
        return { action: "refresh token", reason: "token expired: get a new one, then reconnect", slowDown: false };
    }
    if (code !== null && code in STOP)
        return { action: "stop", reason: STOP[code], slowDown: false };
    if (code !== null && code in SLOW_DOWN)
        return { action: "reconnect", reason: SLOW_DOWN[code], slowDown: true };
    if (code === null)
        return { action: "reconnect", reason: "could not connect", slowDown: false };
    return { action: "reconnect", reason: `connection lost (${describeCode(code)})`, slowDown: false };
}
/** Full jitter: a random delay in [0, min(cap, base × factor^attempt)] seconds. */
export function fullJitter(attempt, base, factor, cap, random) {
    return random() * Math.min(cap, base * factor ** attempt);
}
/** See the module comment. `new ReconnectingWebSocket(url, options)` starts connecting at once. */
export class ReconnectingWebSocket {
    constructor(url, options = {}) {
        this.url = url;
        this.state = "connecting";
        this.offlineReason = "";
        this.lastSeq = null;
        /** Connection attempts, successful or not; connections that opened; pings answered. */
        this.attempts = 0;
        this.connections = 0;
        this.pongs = 0;
        /** `deliver()`: messages sent again on a new connection; acks that said "already had it". */
        this.resent = 0;
        this.duplicateAcks = 0;
        this.closeCodes = [];
        this.ws = null;
        this.failures = 0;
        this.stopping = false;
        this.outbox = new Map();
        this.nextId = 0;
        // Unique per client instance, so ids from two tabs of the same user never collide.
        this.idPrefix = Math.random().toString(36).slice(2, 10);
        // `?? default` rather than a spread: an option given as undefined still gets its default.
        this.options = {
            ...options,
            base: options.base ?? 0.5,
            factor: options.factor ?? 2,
            cap: options.cap ?? 30,
            stableAfter: options.stableAfter ?? 1,
            openTimeout: options.openTimeout ?? 10,
        };
        this.token = options.token ?? null;
        this.connect();
    }
    /** Send `message` as JSON on the open connection; throws while not open (no silent queueing). */
    send(message) {
        if (this.ws === null || this.state !== "open")
            throw new Error(`not connected (${this.state})`);
        this.ws.send(JSON.stringify(message));
    }
    /**
     * Send `message` with a `msg_id` until the server acknowledges it, across reconnects; resolves with
     * the id. While not connected it waits in the outbox (explicitly: see `pending`). Rejects when the
     * client stops (close, or offline) before the ack came.
     */
    deliver(message) {
        if (this.stopping || this.state === "offline") {
            return Promise.reject(new Error(`not delivering: the client is ${this.state}`));
        }
        if (this.outbox.size >= (this.options.maxPending ?? 1000)) {
            return Promise.reject(new Error(`${this.outbox.size} messages already wait for an ack`));
        }
        this.nextId += 1;
        const id = `${this.idPrefix}-${this.nextId}`;
        return new Promise((resolve, reject) => {
            const pending = { frame: JSON.stringify({ ...message, msg_id: id }), sentOn: null, resolve, reject };
            this.outbox.set(id, pending);
            if (this.ws !== null && this.state === "open")
                this.transmit(this.ws, pending);
        });
    }
    /** Messages given to `deliver()` that the server has not acknowledged yet. */
    get pending() {
        return this.outbox.size;
    }
    transmit(ws, pending) {
        if (pending.sentOn !== null)
            this.resent += 1;
        pending.sentOn = this.connections;
        ws.send(pending.frame);
    }
    failPending(reason) {
        for (const pending of this.outbox.values())
            pending.reject(new Error(`not delivered: ${reason}`));
        this.outbox.clear();
    }
    /** Stop reconnecting and close the current connection, if any. */
    close() {
        this.stopping = true;
        clearTimeout(this.timer);
        const ws = this.ws;
        this.ws = null;
        if (ws !== null) {
            detach(ws);
            ws.close(CloseCode.NORMAL_CLOSURE);
        }
        this.goOffline("closed by the client");
    }
    setState(state, detail = "", extra = {}) {
        this.state = state;
        this.options.onState?.({ state, detail, ...extra });
    }
    goOffline(reason) {
        this.offlineReason = reason;
        this.failPending(reason);
        this.setState("offline", reason);
    }
    connect() {
        if (this.stopping)
            return;
        this.setState("connecting");
        this.attempts += 1;
        const Impl = this.options.WebSocketImpl ?? WebSocket;
        const ws = new Impl(this.url);
        this.ws = ws;
        let openedAt = null; // performance.now() when it opened
        let done = false;
        const finish = (code) => {
            if (done)
                return;
            done = true;
            clearTimeout(this.timer);
            detach(ws);
            if (this.ws === ws)
                this.ws = null;
            const upFor = openedAt === null ? 0 : (performance.now() - openedAt) / 1000;
            void this.ended({ opened: openedAt !== null, code, upFor });
        };
        // A connection that neither opens nor fails (a blackholed address) must still end some day.
        this.timer = setTimeout(() => {
            ws.close();
            finish(null);
        }, this.options.openTimeout * 1000);
        ws.onopen = () => {
            openedAt = performance.now();
            this.connections += 1;
            this.setState("open", `connection ${this.connections}`);
            if (this.token !== null) {
                const auth = { type: "auth", token: this.token };
                if (this.options.resume && this.lastSeq !== null)
                    auth.last_seq = this.lastSeq;
                ws.send(JSON.stringify(auth));
            }
            // Whatever was not acknowledged goes again, in order, right after the auth frame.
            for (const pending of this.outbox.values())
                this.transmit(ws, pending);
            this.armWatchdog(ws, finish);
        };
        ws.onmessage = (event) => {
            this.armWatchdog(ws, finish);
            this.handle(ws, event.data);
        };
        // The browser reports a failed or lost connection as close 1006; a refused handshake too.
        ws.onclose = (event) => finish(openedAt === null ? null : event.code);
    }
    /** Restart the "nothing arrived" timer; while connecting it is the open timeout instead. */
    armWatchdog(ws, finish) {
        clearTimeout(this.timer);
        const heartbeat = this.options.heartbeat;
        if (!heartbeat)
            return;
        this.timer = setTimeout(() => {
            // The peer may be gone without a trace: do not wait for a close handshake that never ends.
            ws.close(CloseCode.NORMAL_CLOSURE, "no heartbeat");
            finish(CloseCode.ABNORMAL_CLOSURE);
        }, 1.5 * heartbeat * 1000);
    }
    handle(ws, raw) {
        let message = raw;
        if (typeof raw === "string") {
            try {
                message = JSON.parse(raw);
            }
            catch {
                message = raw;
            }
        }
        if (isRecord(message)) {
            if (message.type === "ping") {
                ws.send(JSON.stringify({ type: "pong" }));
                this.pongs += 1;
                return;
            }
            if (message.type === "ack" && typeof message.msg_id === "string") {
                const pending = this.outbox.get(message.msg_id);
                if (message.duplicate === true)
                    this.duplicateAcks += 1;
                if (pending !== undefined) {
                    this.outbox.delete(message.msg_id);
                    pending.resolve(message.msg_id);
                }
                return;
            }
            if (typeof message.seq === "number" && Number.isInteger(message.seq))
                this.lastSeq = message.seq;
        }
        this.options.onMessage?.(message);
    }
    async ended({ opened, code, upFor }) {
        if (opened) {
            this.closeCodes.push(code);
            if (upFor >= this.options.stableAfter)
                this.failures = 0; // only a connection that stayed up resets
        }
        if (this.stopping)
            return;
        const decision = decide(code);
        if (decision.action === "stop")
            return this.goOffline(decision.reason);
        if (decision.action === "refresh token") {
            const renewed = await this.refreshToken();
            if (this.stopping)
                return; // close() was called while the token was being fetched
            if (!renewed)
                return this.goOffline("token expired and no new token");
        }
        const max = this.options.maxAttempts;
        if (max !== null && max !== undefined && this.failures >= max) {
            return this.goOffline(`gave up after ${this.failures} failed attempts`);
        }
        if (decision.slowDown)
            this.failures += 2; // the server asked for less: jump ahead
        const { base, factor, cap } = this.options;
        const delay = fullJitter(this.failures, base, factor, cap, this.options.random ?? Math.random);
        this.failures += 1;
        this.setState("backing off", decision.reason, { delay, code });
        this.timer = setTimeout(() => this.connect(), delay * 1000);
    }
    async refreshToken() {
        const provider = this.options.onTokenNeeded;
        if (provider === undefined)
            return false;
        let fresh;
        try {
            fresh = await provider();
        }
        catch {
            fresh = null;
        }
        if (!fresh)
            return false;
        this.token = fresh;
        return true;
    }
}
function detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
}
function isRecord(value) {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}
