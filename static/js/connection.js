// The socket.io connection: its state for the header badge, and request/answer over acks.
import { io } from "socket.io-client";

const TOKEN_KEY = "pipelines.token";

/** The access token, from "#token=..." in the address (kept for this tab) or an earlier prompt. */
function readToken() {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]);
    sessionStorage.setItem(TOKEN_KEY, token);
    // Keep the token out of the visible address and the history.
    history.replaceState(null, "", window.location.pathname + window.location.search);
    return token;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/**
 * Open the socket and report its state.
 * @param {(state: "connecting"|"connected"|"disconnected", detail: string) => void} onState
 * @param {HTMLButtonElement} tokenButton shown when the server asks for a token
 */
export function openConnection(onState, tokenButton) {
  let token = readToken();
  const socket = io({
    // Next to the page, which may be mounted under a prefix (server.mount.setup).
    path: new URL("socket.io", document.baseURI).pathname,
    auth: (cb) => cb(token ? { token } : {}),
    reconnectionDelayMax: 5000,
  });

  tokenButton.addEventListener("click", () => {
    const entered = window.prompt("Access token for this server:");
    if (!entered) return;
    token = entered.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    tokenButton.hidden = true;
    onState("connecting", "Connecting…");
    socket.connect();
  });

  onState("connecting", "Connecting…");
  socket.on("connect", () => {
    tokenButton.hidden = true;
    onState("connected", "Connected");
  });
  socket.on("disconnect", (reason) => {
    const again = reason === "io client disconnect" ? "" : ", reconnecting…";
    onState("disconnected", `Disconnected (${reason})${again}`);
    if (reason === "io server disconnect") {
      // The server closed this session on purpose (shutdown, stall): come back in a moment.
      setTimeout(() => socket.connect(), 1000);
    }
  });
  socket.io.on("reconnect_attempt", (attempt) => onState("connecting", `Reconnecting (try ${attempt})…`));
  socket.on("connect_error", (err) => {
    const message = err?.message || "connection refused";
    if (socket.active) {
      // A network problem: socket.io retries by itself.
      onState("disconnected", `Cannot connect (${message}), retrying…`);
    } else if (/token/i.test(message)) {
      // Refused for want of a valid token: wait for one rather than retry in a loop.
      onState("disconnected", token ? "Refused: the access token is not valid" : "This server needs an access token");
      tokenButton.hidden = false;
    } else {
      // Refused for now (too many sessions, shutting down): try again later.
      onState("disconnected", `Refused: ${message}; retrying in 5 s`);
      setTimeout(() => socket.connect(), 5000);
    }
  });
  return socket;
}

/**
 * Emit an event and wait for its ack answer.
 * @param {import("socket.io-client").Socket} socket
 * @param {string} event
 * @param {number} timeoutMs
 * @param {...any} args
 * @returns {Promise<any>}
 */
export function request(socket, event, timeoutMs, ...args) {
  return socket.timeout(timeoutMs).emitWithAck(event, ...args);
}

/**
 * Acknowledge one `results` event: the server's credit window waits for it. Every ack the page
 * sends goes through here.
 * @param {((...args: any[]) => void) | undefined} ack
 * @param {any} _payload the event's payload
 */
export function ackResults(ack, _payload) {
  if (typeof ack === "function") ack();
}
