// The operator's announcements (the `announce` event, sent to every client of every server by
// `POST /api/announce`): the latest one in a banner at the top of the page, until dismissed.

const MAX_CHARS = 4096;

/**
 * Show each `announce` event of `socket` in `box` (the latest replaces the one before).
 * @param {any} socket
 * @param {{box: HTMLElement, message: HTMLElement, from: HTMLElement, dismiss: HTMLButtonElement}} els
 */
export function showAnnouncements(socket, { box, message, from, dismiss }) {
  dismiss.addEventListener("click", () => {
    box.hidden = true;
  });
  socket.on("announce", (payload) => {
    const text = typeof payload?.message === "string" ? payload.message : "";
    if (!text) return;
    message.textContent = text.length > MAX_CHARS ? `${text.slice(0, MAX_CHARS - 1)}…` : text;
    const at = typeof payload.at === "number" ? new Date(payload.at * 1000) : null;
    const parts = [];
    if (at && !Number.isNaN(at.getTime())) parts.push(at.toLocaleTimeString());
    if (typeof payload.server === "string" && payload.server) parts.push(`via ${payload.server}`);
    from.textContent = parts.length ? `(${parts.join(", ")})` : "";
    box.hidden = false;
  });
}
