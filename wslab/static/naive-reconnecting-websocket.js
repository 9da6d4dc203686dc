/**
 * A reconnecting WebSocket as a typical tutorial writes it. DO NOT USE: chapter 10 runs it next to the
 * course's client (reconnecting-websocket.js) to show what each of these lines costs.
 *
 * Its mistakes, each marked below:
 *  (1) exponential backoff without jitter: every tab that lost the server retries at the same instants;
 *  (2) the retry counter is reset in onopen: a server that accepts and drops gets retried at full speed;
 *  (3) after maxRetries it stops silently: nothing tells the page it gave up;
 *  (4) it reconnects whatever the close code, 4001 (bad credentials) included;
 *  (5) close() does not cancel a pending reconnect, and its own close schedules one: after "logout"
 *      the socket comes back;
 *  (6) send() hands the message to the socket in any state: while CONNECTING it throws
 *      InvalidStateError, while reconnecting the message is lost;
 *  (7) the token goes in the URL, and so into every access log on the way.
 */
export class NaiveReconnectingWebSocket {
  constructor(url, token, { base = 0.5, cap = 30, maxRetries = 10 } = {}) {
    this.url = `${url}?token=${encodeURIComponent(token)}`; // (7)
    this.base = base;
    this.cap = cap;
    this.maxRetries = maxRetries;
    this.retries = 0;
    this.attempts = 0; // bookkeeping for the lesson, not part of the mistake
    this.delays = [];
    this.onopen = null;
    this.onclose = null;
    this.onmessage = null;
    this.connect();
  }

  connect() {
    this.attempts += 1;
    this.ws = new WebSocket(this.url);
    this.ws.onopen = () => {
      this.retries = 0; // (2)
      this.onopen?.();
    };
    this.ws.onmessage = (event) => this.onmessage?.(JSON.parse(event.data));
    this.ws.onclose = (event) => {
      this.onclose?.(event.code);
      if (this.retries >= this.maxRetries) return; // (3)
      const delay = Math.min(this.cap, this.base * 2 ** this.retries); // (1), and (4): no look at the code
      this.retries += 1;
      this.delays.push(delay);
      this.timer = setTimeout(() => this.connect(), delay * 1000);
    };
  }

  send(message) {
    this.ws.send(JSON.stringify(message)); // (6)
  }

  close() {
    this.ws.close(); // (5)
  }
}
