// The results log: the last CAP entries, filterable by node and by text, with pause and clear.
// Rendering is batched to one animation frame, so a fast pipeline cannot flood the page.
import { h, preview } from "./dom.js";

export const CAP = 1000;
/** Redraw at most this often: drawing each batch at once would slow the whole pipeline. */
const FLUSH_MS = 200;

export class ResultsLog {
  /**
   * @param {{list: HTMLOListElement, node: HTMLSelectElement, text: HTMLInputElement,
   *          pause: HTMLButtonElement, clear: HTMLButtonElement, summary: HTMLElement}} els
   */
  constructor(els) {
    this.els = els;
    this.entries = []; // newest last, at most CAP
    this.pending = []; // received while paused or before the next frame
    this.paused = false;
    this.received = 0; // results received in this run
    this.dropped = 0; // entries that fell off the cap
    this.frame = 0;
    this.lastFlush = 0;
    this.summaryTimer = 0;
    this.nodes = new Set();
    els.node.addEventListener("change", () => this.rerender());
    els.text.addEventListener("input", () => this.rerender());
    els.pause.addEventListener("click", () => this.setPaused(!this.paused));
    els.clear.addEventListener("click", () => this.clear());
  }

  /** A new run: forget everything, list the output nodes in the node filter. */
  reset(outputs = []) {
    this.entries = [];
    this.pending = [];
    this.received = 0;
    this.dropped = 0;
    this.nodes = new Set();
    const keep = this.els.node.value;
    this.els.node.replaceChildren(h("option", { value: "" }, "all"));
    for (const name of outputs) this.addNodeOption(name);
    this.els.node.value = this.nodes.has(keep) ? keep : "";
    this.els.list.replaceChildren();
    this.summary();
  }

  addNodeOption(name) {
    if (this.nodes.has(name)) return;
    this.nodes.add(name);
    this.els.node.append(h("option", { value: name }, name));
  }

  clear() {
    this.entries = [];
    this.pending = [];
    this.dropped = 0;
    this.els.list.replaceChildren();
    this.summary();
  }

  setPaused(paused) {
    this.paused = paused;
    this.els.pause.setAttribute("aria-pressed", String(paused));
    this.els.pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) this.schedule();
    this.summary();
  }

  /** Results from one `results` event: [{node, seq, value}]. */
  addResults(items) {
    for (const item of items) {
      this.received += 1;
      if (!this.nodes.has(item.node)) this.addNodeOption(item.node);
      this.push({ kind: "result", node: item.node, seq: item.seq, text: preview(item.value) });
    }
  }

  /** A line about the run (started, error, done); kind: "event" | "warning" | "error". */
  addEvent(kind, text) {
    this.push({ kind, node: null, seq: null, text });
  }

  push(entry) {
    this.pending.push(entry);
    if (this.pending.length >= 2 * CAP) {
      // Trim in halves, not one by one: keeps a long pause cheap.
      this.dropped += this.pending.length - CAP;
      this.pending.splice(0, this.pending.length - CAP);
    }
    this.schedule();
  }

  schedule() {
    if (this.paused) {
      this.summarySoon();
      return;
    }
    if (this.frame) return;
    const wait = Math.max(0, this.lastFlush + FLUSH_MS - performance.now());
    this.frame = setTimeout(() => {
      requestAnimationFrame(() => {
        this.frame = 0;
        this.lastFlush = performance.now();
        this.flush();
      });
    }, wait);
  }

  /** The summary line, at most every FLUSH_MS (while paused, nothing else redraws). */
  summarySoon() {
    if (this.summaryTimer) return;
    this.summaryTimer = setTimeout(() => {
      this.summaryTimer = 0;
      this.summary();
    }, FLUSH_MS);
  }

  matches(entry) {
    const node = this.els.node.value;
    const needle = this.els.text.value.trim().toLowerCase();
    if (entry.kind === "result" && node && entry.node !== node) return false;
    if (needle && !`${entry.node ?? ""} ${entry.text}`.toLowerCase().includes(needle)) return false;
    return true;
  }

  row(entry) {
    if (entry.kind !== "result") return h("li", { class: entry.kind }, entry.text);
    return h(
      "li",
      { dataset: { node: entry.node, seq: entry.seq } },
      h("span", { class: "seq" }, entry.seq),
      h("span", { class: "node", title: entry.node }, entry.node),
      h("span", { class: "value" }, entry.text),
    );
  }

  flush() {
    if (this.paused || !this.pending.length) return;
    const list = this.els.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    let fresh = this.pending;
    this.pending = [];
    if (fresh.length > CAP) {
      this.dropped += fresh.length - CAP;
      fresh = fresh.slice(-CAP);
    }
    this.entries.push(...fresh);
    if (this.entries.length > CAP) {
      const extra = this.entries.length - CAP;
      this.dropped += extra;
      this.entries.splice(0, extra);
    }
    const rows = fresh.filter((e) => this.matches(e)).map((e) => this.row(e));
    list.append(...rows.slice(-CAP));
    while (list.childElementCount > CAP) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
    this.summary();
  }

  rerender() {
    const list = this.els.list;
    list.replaceChildren(...this.entries.filter((e) => this.matches(e)).map((e) => this.row(e)));
    list.scrollTop = list.scrollHeight;
    this.summary();
  }

  summary() {
    const parts = [`${this.received} result${this.received === 1 ? "" : "s"} received`];
    const shown = this.els.list.childElementCount;
    if (shown !== this.entries.length) parts.push(`${shown} shown by the filter`);
    if (this.dropped) parts.push(`oldest ${this.dropped} dropped (keeps the last ${CAP})`);
    if (this.paused) parts.push(`paused, ${this.pending.length} waiting`);
    this.els.summary.textContent = parts.join(" · ");
  }
}
