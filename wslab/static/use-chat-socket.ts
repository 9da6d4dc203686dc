/**
 * useChatSocket: the course's browser client (reconnecting-websocket.ts) in a React component.
 *
 * The rules a hook must follow, each one a leak or a bug when broken (chapter 10 counts the sockets):
 * - the client is created in an effect, never in the component body: a body runs on every render (twice
 *   per render under StrictMode in development), and each run would open a socket nobody closes;
 * - the effect's cleanup closes it: on unmount, and before the effect runs again (new url or token);
 *   `close()` also cancels a pending reconnect, so nothing comes back after the component is gone;
 * - StrictMode mounts, unmounts and mounts again in development: the first client is closed by the
 *   cleanup, so one socket per mounted component remains;
 * - the token goes in the first message (the client's auth frame), never in the URL;
 * - callbacks from a closed client are ignored, so a late message cannot update a component that has
 *   moved on to a new connection;
 * - `messages` keeps the last `keep` messages only: a long-lived tab must not grow without bound;
 * - `send` is fire-and-forget (false while not open); `deliver` is the client's `deliver()`: sent until
 *   acknowledged, across reconnects, exactly once in the room (chapter 10, section 6).
 *
 * `options` are read when the connection is made; change `url` or `token` to reconnect.
 */
import { useCallback, useEffect, useRef, useState } from "react";

import { type ClientState, type Options, ReconnectingWebSocket } from "./reconnecting-websocket.js";

export interface ChatSocket {
  /** What the client is doing ("connecting", "open", "backing off", "offline"), for a status badge. */
  state: ClientState;
  /** Why (backing off, offline), as the client says it. */
  detail: string;
  /** Messages received, oldest first (pings are answered by the client, not delivered). */
  messages: unknown[];
  /** Send on the open connection; false (nothing sent) while not open. */
  send: (message: object) => boolean;
  /** Send until acknowledged, across reconnects (the client's `deliver()`); resolves with the id. */
  deliver: (message: object) => Promise<string>;
}

export function useChatSocket(
  url: string,
  token: string | null,
  options: Omit<Options, "token" | "onState" | "onMessage"> = {},
  keep = 100,
): ChatSocket {
  const [state, setState] = useState<ClientState>(token === null ? "offline" : "connecting");
  const [detail, setDetail] = useState("");
  const [messages, setMessages] = useState<unknown[]>([]);
  const client = useRef<ReconnectingWebSocket | null>(null);
  const settings = useRef(options);
  settings.current = options;

  useEffect(() => {
    if (token === null) {
      setState("offline");
      setDetail("no token");
      return undefined;
    }
    let current = true; // false once cleaned up: a closed client's late callbacks are ignored
    const socket = new ReconnectingWebSocket(url, {
      ...settings.current,
      token,
      onState: (change) => {
        if (!current) return;
        setState(change.state);
        setDetail(change.detail);
      },
      onMessage: (message) => {
        if (current) setMessages((previous) => [...previous.slice(-(keep - 1)), message]);
      },
    });
    client.current = socket;
    return () => {
      current = false;
      if (client.current === socket) client.current = null;
      socket.close();
    };
  }, [url, token, keep]);

  const send = useCallback((message: object): boolean => {
    const socket = client.current;
    if (socket === null || socket.state !== "open") return false;
    socket.send(message);
    return true;
  }, []);

  const deliver = useCallback((message: object): Promise<string> => {
    const socket = client.current;
    if (socket === null) return Promise.reject(new Error("not delivering: no connection (no token, or unmounted)"));
    return socket.deliver(message);
  }, []);

  return { state, detail, messages, send, deliver };
}
