// The metrics tables: the graph view in text, one row per node and one per queue.
import { fillLevel, fmt, h } from "./dom.js";

const COLUMNS = [
  ["in", 0],
  ["out", 0],
  ["errors", 0],
  ["inflight", 0],
  ["queue", 0],
  ["rate", 1],
  ["latency_ms", 1],
  ["unpaired", 0],
];

export class MetricsTable {
  /** @param {HTMLTableElement} nodesTable @param {HTMLTableElement} queuesTable */
  constructor(nodesTable, queuesTable) {
    this.nodesBody = nodesTable.tBodies[0];
    this.queuesBody = queuesTable.tBodies[0];
    this.rows = new Map();
    this.queueRows = new Map();
    this.clear();
  }

  clear() {
    this.rows.clear();
    this.queueRows.clear();
    this.nodesBody.replaceChildren(
      h("tr", { class: "placeholder" }, h("td", { colspan: 2 + 3 + COLUMNS.length, class: "muted" }, "No pipeline yet.")),
    );
    this.queuesBody.replaceChildren();
  }

  /**
   * One row per node (status pending) and per edge.
   * @param {{name: string, coro?: string, kind?: string}[]} nodes
   * @param {[string, string][]} edges
   */
  setTopology(nodes, edges) {
    this.rows.clear();
    this.queueRows.clear();
    this.nodesBody.replaceChildren(
      ...nodes.map((node) => {
        const cells = Object.fromEntries(
          COLUMNS.map(([col]) => [col, h("td", { class: "num", dataset: { col } }, "–")]),
        );
        const status = h("td", { class: "status-cell", dataset: { col: "status", status: "pending" } }, "pending");
        // Pool nodes only (their metrics name a pool): where they run and on how many workers.
        const pool = h("td", { class: "pool-cell", dataset: { col: "pool" } });
        const workers = h("td", { class: "num", dataset: { col: "workers" } }, "–");
        const row = h(
          "tr",
          { dataset: { node: node.name } },
          h("th", { scope: "row", dataset: { col: "node" } }, node.name),
          h("td", { dataset: { col: "coro" } }, node.coro ?? ""),
          pool,
          workers,
          status,
          ...COLUMNS.map(([col]) => cells[col]),
        );
        this.rows.set(node.name, { row, status, cells, pool, workers });
        return row;
      }),
    );
    this.queuesBody.replaceChildren(
      ...edges.map(([from, to]) => {
        const depth = h("td", { class: "num", dataset: { col: "depth" } }, "–");
        const capacity = h("td", { class: "num", dataset: { col: "capacity" } }, "–");
        const bar = h("span");
        bar.style.width = "0%";
        const fill = h("span", { class: "fill-bar", role: "img", "aria-label": "empty", dataset: { level: "low" } }, bar);
        const row = h(
          "tr",
          { dataset: { from, to } },
          h("th", { scope: "row" }, `${from} → ${to}`),
          depth,
          capacity,
          h("td", null, fill),
        );
        this.queueRows.set(JSON.stringify([from, to]), { row, depth, capacity, fill, bar });
        return row;
      }),
    );
  }

  setStatus(name, status) {
    const entry = this.rows.get(name);
    if (!entry || entry.status.dataset.status === status) return;
    entry.status.dataset.status = status;
    entry.status.textContent = status;
  }

  setCounts(name, m) {
    const entry = this.rows.get(name);
    if (!entry) return;
    for (const [col, digits] of COLUMNS) {
      if (!(col in m)) continue;
      const text = fmt(m[col], digits);
      if (entry.cells[col].textContent !== text) entry.cells[col].textContent = text;
    }
  }

  /** A pool node's pool, its workers, and (as the cell's tooltip) the items each one took. */
  setPool(name, m) {
    const entry = this.rows.get(name);
    if (!entry || typeof m.pool !== "string") return;
    if (entry.pool.textContent !== m.pool) entry.pool.textContent = m.pool;
    const workers = fmt(m.workers, 0);
    if (entry.workers.textContent !== workers) entry.workers.textContent = workers;
    const perWorker = m.per_worker && typeof m.per_worker === "object" ? Object.entries(m.per_worker) : [];
    const detail = perWorker.length
      ? `items per worker: ${perWorker.map(([w, n]) => `${w} ${fmt(n, 0)}`).join(", ")}`
      : "no items on a worker yet";
    const dups = m.duplicates ? `; ${fmt(m.duplicates, 0)} duplicate${m.duplicates === 1 ? "" : "s"} dropped` : "";
    entry.workers.title = detail + dups;
    entry.workers.dataset.perWorker = JSON.stringify(Object.fromEntries(perWorker));
  }

  /** Apply one `metrics` event. */
  update(metrics) {
    for (const [name, m] of Object.entries(metrics.nodes ?? {})) {
      if (m.status) this.setStatus(name, m.status);
      this.setCounts(name, m);
      this.setPool(name, m);
    }
    for (const e of metrics.edges ?? []) {
      const entry = this.queueRows.get(JSON.stringify([e.from, e.to]));
      if (!entry) continue;
      entry.depth.textContent = fmt(e.depth);
      entry.capacity.textContent = fmt(e.capacity);
      const percent = e.capacity ? Math.round((100 * Math.min(e.depth, e.capacity)) / e.capacity) : 0;
      entry.bar.style.width = `${percent}%`;
      entry.fill.dataset.level = fillLevel(e.depth, e.capacity);
      entry.fill.setAttribute("aria-label", `${percent}% full`);
    }
  }

  /** Final counters and states from `done`. */
  finish(nodes, states) {
    for (const [name, counts] of Object.entries(nodes)) this.setCounts(name, counts);
    for (const [name, state] of Object.entries(states)) this.setStatus(name, state);
  }

  /** Nothing in flight, every queue empty: the state after a completed run. */
  drained() {
    for (const name of this.rows.keys()) this.setCounts(name, { inflight: 0, queue: 0 });
    for (const entry of this.queueRows.values()) {
      entry.depth.textContent = "0";
      entry.bar.style.width = "0%";
      entry.fill.dataset.level = "low";
      entry.fill.setAttribute("aria-label", "empty");
    }
  }

  /** Current status of each node, as shown. */
  statuses() {
    return Object.fromEntries([...this.rows].map(([name, entry]) => [name, entry.status.dataset.status]));
  }
}
