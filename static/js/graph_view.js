// The live graph: nodes laid out left to right (dagre), coloured by state, with in/out/error
// counters; edges labelled with queue depth and coloured green/amber/red as the queue fills.
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { fillLevel } from "./dom.js";

cytoscape.use(dagre);

const STATES = ["pending", "running", "done", "failed", "cancelled"];

/** Read the page's colour variables (they change with prefers-color-scheme). */
function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    fg: v("--fg"),
    muted: v("--muted"),
    panel: v("--panel"),
    nodeFill: v("--node-fill"),
    edgeIdle: v("--edge-idle"),
    state: Object.fromEntries(STATES.map((s) => [s, v(`--state-${s}`)])),
    queue: { low: v("--queue-low"), mid: v("--queue-mid"), high: v("--queue-high") },
  };
}

function styles() {
  const c = palette();
  const sheet = [
    {
      selector: "node",
      style: {
        shape: "round-rectangle",
        width: 196,
        height: 62,
        "background-color": c.nodeFill,
        "border-width": 3,
        "border-color": c.state.pending,
        label: "data(label)",
        color: c.fg,
        "font-size": 12,
        "text-wrap": "wrap",
        "text-max-width": 188,
        "text-valign": "center",
        "text-halign": "center",
        "font-family": "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      },
    },
    {
      selector: "edge",
      style: {
        width: "data(width)",
        "curve-style": "bezier",
        "line-color": c.edgeIdle,
        "target-arrow-color": c.edgeIdle,
        "target-arrow-shape": "triangle",
        "arrow-scale": 0.9,
        label: "data(label)",
        "font-size": 10,
        color: c.fg,
        "text-background-color": c.panel,
        "text-background-opacity": 0.9,
        "text-background-padding": 2,
        "text-background-shape": "round-rectangle",
      },
    },
  ];
  for (const state of STATES) {
    sheet.push({ selector: `node[state = "${state}"]`, style: { "border-color": c.state[state] } });
  }
  sheet.push({ selector: 'node[state = "failed"]', style: { "border-style": "double", "border-width": 5 } });
  for (const [level, colour] of Object.entries(c.queue)) {
    sheet.push({
      selector: `edge[level = "${level}"]`,
      style: { "line-color": colour, "target-arrow-color": colour },
    });
  }
  return sheet;
}

function nodeLabel(name, coro, m) {
  const counts = m ? `in ${m.in ?? 0} · out ${m.out ?? 0} · err ${m.errors ?? 0}` : "in – · out – · err –";
  const short = String(coro ?? "").length > 24 ? `…${String(coro).slice(-23)}` : coro ?? "";
  return `${name}\n${short}\n${counts}`;
}

export class GraphView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    this.key = "";
    this.nodeIds = new Map();
    this.edgeIds = new Map();
    this.cy = cytoscape({
      container,
      style: styles(),
      elements: [],
      userZoomingEnabled: false,
      boxSelectionEnabled: false,
      autoungrabify: true,
      autounselectify: true,
      minZoom: 0.3,
      maxZoom: 1.1,
    });
    this.empty = document.createElement("div");
    this.empty.className = "graph-empty";
    this.empty.textContent = "The graph appears here.";
    container.append(this.empty);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.cy.style(styles()));
    new ResizeObserver(() => this.fit()).observe(container);
  }

  fit() {
    this.cy.resize();
    if (this.cy.elements().length) this.cy.fit(undefined, 16);
  }

  /**
   * Show a topology; a no-op when it is the same as the one shown (the layout stays put).
   * @param {{name: string, coro?: string, kind?: string}[]} nodes
   * @param {[string, string][]} edges
   */
  setTopology(nodes, edges) {
    const key = JSON.stringify([nodes.map((n) => [n.name, n.coro]), edges]);
    if (key === this.key) {
      this.reset();
      return;
    }
    this.key = key;
    // Element ids are generated: node names may hold characters cytoscape selectors dislike.
    this.nodeIds = new Map(nodes.map((n, i) => [n.name, `n${i}`]));
    this.edgeIds = new Map();
    const elements = nodes.map((n) => ({
      group: "nodes",
      data: { id: this.nodeIds.get(n.name), name: n.name, coro: n.coro ?? "", state: "pending", label: nodeLabel(n.name, n.coro) },
    }));
    for (const [a, b] of edges) {
      const key = JSON.stringify([a, b]);
      if (!this.nodeIds.has(a) || !this.nodeIds.has(b) || this.edgeIds.has(key)) continue;
      const id = `e${this.edgeIds.size}`;
      this.edgeIds.set(key, id);
      elements.push({
        group: "edges",
        data: { id, source: this.nodeIds.get(a), target: this.nodeIds.get(b), label: "", width: 2 },
      });
    }
    this.cy.batch(() => {
      this.cy.elements().remove();
      this.cy.add(elements);
    });
    this.empty.hidden = nodes.length > 0;
    this.cy
      .layout({ name: "dagre", rankDir: "LR", nodeSep: 18, rankSep: 70, edgeSep: 10, fit: true, padding: 16, animate: false })
      .run();
  }

  /** Back to "nothing ran yet" on the topology shown. */
  reset() {
    this.cy.batch(() => {
      this.cy.nodes().forEach((node) => {
        node.data({ state: "pending", label: nodeLabel(node.data("name"), node.data("coro")) });
      });
      this.cy.edges().forEach((edge) => edge.data({ label: "", level: null, width: 2 }));
    });
  }

  node(name) {
    return this.cy.getElementById(this.nodeIds.get(name) ?? "");
  }

  /** Apply one `metrics` event. */
  update(metrics) {
    this.cy.batch(() => {
      for (const [name, m] of Object.entries(metrics.nodes ?? {})) {
        const node = this.node(name);
        if (node.empty()) continue;
        node.data({ state: STATES.includes(m.status) ? m.status : "pending", label: nodeLabel(name, node.data("coro"), m) });
      }
      for (const e of metrics.edges ?? []) {
        const edge = this.cy.getElementById(this.edgeIds.get(JSON.stringify([e.from, e.to])) ?? "");
        if (edge.empty()) continue;
        const ratio = e.capacity ? Math.min(1, e.depth / e.capacity) : 0;
        edge.data({
          label: `${e.depth}/${e.capacity}`,
          level: fillLevel(e.depth, e.capacity),
          width: 2 + 4 * ratio,
        });
      }
    });
  }

  /** Final counters and states from `done`. */
  finish(nodes, states) {
    this.cy.batch(() => {
      for (const [name, state] of Object.entries(states)) {
        const node = this.node(name);
        if (node.empty()) continue;
        node.data({ state, label: nodeLabel(name, node.data("coro"), nodes[name]) });
      }
    });
  }
}
