/**
 * A small React page for chapter 10: the same chat component written two ways, mounted on demand.
 *
 * - `naive`: the client is constructed in the component body, as many tutorials do, with no effect and
 *   no cleanup; every render opens another socket and none is ever closed.
 * - `hook`: `useChatSocket` (use-chat-socket.ts): one client per mounted component, closed on unmount.
 *
 * Built by esbuild into react-chat.js (`npm run build`), with React's development build, because
 * StrictMode's double render and double mount (what this page is for) happen only in development.
 * The page calls `window.wslabReact.mount(element, {mode, url, token, strict})`.
 */
import { StrictMode, useRef, useState } from "react";
import { createRoot, type Root } from "react-dom/client";

import { ReconnectingWebSocket } from "./reconnecting-websocket.js";
import { useChatSocket } from "./use-chat-socket.js";

interface ChatProps {
  url: string;
  token: string;
}

let naiveBodies = 0; // how many times the naive component's body ran: one socket each

function NaiveChat({ url, token }: ChatProps) {
  naiveBodies += 1;
  const client = new ReconnectingWebSocket(url, { token }); // the mistake: a new socket per render
  return <p id="state">{client.state}</p>;
}

function HookChat({ url, token }: ChatProps) {
  const { state, detail, messages, deliver } = useChatSocket(url, token);
  const [delivered, setDelivered] = useState(0);
  const said = useRef(0);
  const say = () => {
    said.current += 1;
    void deliver({ type: "say", text: `hello from react ${said.current}` }).then(() => setDelivered((n) => n + 1));
  };
  return (
    <div>
      <p id="state" data-state={state}>
        {detail ? `${state}: ${detail}` : state}
      </p>
      <button id="say" onClick={say}>
        say hello (delivered: <span id="delivered">{delivered}</span>)
      </button>
      <ul id="messages">
        {messages.map((message, index) => (
          <li key={index}>{JSON.stringify(message)}</li>
        ))}
      </ul>
    </div>
  );
}

interface AppProps extends ChatProps {
  mode: "naive" | "hook";
}

function App({ mode, url, token }: AppProps) {
  const [renders, setRenders] = useState(0);
  const [mounted, setMounted] = useState(true);
  const Chat = mode === "naive" ? NaiveChat : HookChat;
  return (
    <main>
      <button id="rerender" onClick={() => setRenders((n) => n + 1)}>
        re-render ({renders})
      </button>
      <button id="leave" onClick={() => setMounted(false)}>
        leave the chat
      </button>
      {mounted ? <Chat url={url} token={token} /> : <p id="state">unmounted</p>}
    </main>
  );
}

export interface MountOptions extends AppProps {
  strict: boolean;
}

export function mount(element: HTMLElement, { strict, ...props }: MountOptions): Root {
  const root = createRoot(element);
  root.render(strict ? <StrictMode>{<App {...props} />}</StrictMode> : <App {...props} />);
  return root;
}

declare global {
  interface Window {
    wslabReact: { mount: typeof mount; naiveBodies: () => number };
  }
}

window.wslabReact = { mount, naiveBodies: () => naiveBodies };
