// The graph canvas: nodes laid out left to right (dagre) or where the user put them, each with
// an output port to draw edges from; while running, coloured by state with in/out/error
// counters, edges labelled with queue depth and coloured green/amber/red as the queue fills.
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { fillLevel } from "./dom.js";
import { NODE_WIDTH, STATES, nodeLabel, poolBadge, styles } from "./graph_style.js";

cytoscape.use(dagre);

const LAYOUT_KEY = "pipelines.layout.v1";

/** Saved node positions by name (a graph spec has no place for them). */
function loadPositions() {
  try {
    const saved = JSON.parse(localStorage.getItem(LAYOUT_KEY) ?? "{}");
    return new Map(Object.entries(saved && typeof saved === "object" ? saved : {}));
  } catch {
    return new Map();
  }
}

export class GraphView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    this.key = "";
    this.nodeIds = new Map();
    this.edgeIds = new Map();
    this.positions = loadPositions();
    /** Where the next new node goes (a drop from the palette); else a free spot. */
    this.nextPosition = null;
    this.cy = cytoscape({
      container,
      style: styles(),
      elements: [],
      boxSelectionEnabled: false,
      selectionType: "single",
      wheelSensitivity: 0.3,
      minZoom: 0.3,
      maxZoom: 2,
    });
    this.empty = document.createElement("div");
    this.empty.className = "graph-empty";
    this.empty.textContent = "Drag coroutines here from the palette, or pick an example.";
    container.append(this.empty);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.cy.style(styles()));
    new ResizeObserver(() => this.cy.resize()).observe(container);
    this.cy.on("position", "node.real", (event) => this.placePort(event.target));
    this.cy.on("dragfree", "node.real", (event) => {
      const node = event.target;
      this.positions.set(node.data("name"), { ...node.position() });
      this.savePositions();
    });
  }

  savePositions() {
    try {
      const names = new Set(this.nodeIds.keys());
      const kept = [...this.positions].filter(([name]) => names.has(name));
      localStorage.setItem(LAYOUT_KEY, JSON.stringify(Object.fromEntries(kept)));
    } catch {
      // Storage can be disabled: positions then last as long as the tab.
    }
  }

  placePort(node) {
    const port = this.cy.getElementById(`p${node.id()}`);
    const { x, y } = node.position();
    if (port.nonempty()) port.position({ x: x + NODE_WIDTH / 2, y });
  }

  /** Zoom to show every node, never above 100 % (labels stay at their size on small graphs). */
  fit() {
    this.cy.resize();
    if (!this.cy.nodes().length) return;
    this.cy.fit(undefined, 24);
    if (this.cy.zoom() > 1) {
      this.cy.zoom(1);
      this.cy.center();
    }
  }

  /** Lay every node out left to right again (dagre), and keep those positions. */
  autoLayout() {
    const real = this.cy.nodes(".real");
    if (!real.length) return;
    real
      .union(real.edgesWith(real))
      .layout({ name: "dagre", rankDir: "LR", nodeSep: 22, rankSep: 48, edgeSep: 10, fit: false, animate: false })
      .run();
    real.forEach((node) => {
      this.positions.set(node.data("name"), { ...node.position() });
      this.placePort(node);
    });
    this.savePositions();
    this.fit();
  }

  /** A spot for a node added without a position: right of the others, on the middle row. */
  freeSpot() {
    const real = this.cy.nodes(".real");
    if (!real.length) return { x: 0, y: 0 };
    const box = real.boundingBox();
    return { x: box.x2 + NODE_WIDTH / 2 + 60, y: (box.y1 + box.y2) / 2 };
  }

  /** Position a named node will take when it appears (a drop from the palette). */
  placeNext(name, position) {
    this.positions.set(name, position);
  }

  renamePosition(from, to) {
    if (this.positions.has(from)) this.positions.set(to, this.positions.get(from));
  }

  /**
   * Show a topology; a no-op when it is the same as the one shown (the layout stays put).
   * Known nodes keep their positions; when none has one, dagre lays them all out.
   * @param {{name: string, coro?: string}[]} nodes
   * @param {[string, string][]} edges
   */
  setTopology(nodes, edges) {
    const key = JSON.stringify([nodes.map((n) => [n.name, n.coro]), edges]);
    if (key === this.key) return;
    this.key = key;
    const selected = this.cy.$(":selected").map((el) => el.data("name") ?? el.data("pair"));
    // Element ids are generated: node names may hold characters cytoscape selectors dislike.
    this.nodeIds = new Map(nodes.map((n, i) => [n.name, `n${i}`]));
    this.edgeIds = new Map();
    const known = nodes.filter((n) => this.positions.has(n.name));
    const dropped = this.nextPosition !== null;
    const elements = [];
    for (const n of nodes) {
      const id = this.nodeIds.get(n.name);
      const position = this.positions.get(n.name) ?? { x: 0, y: 0 };
      elements.push(
        {
          group: "nodes",
          classes: "real",
          position: { ...position },
          data: { id, name: n.name, coro: n.coro ?? "", state: "pending", badge: "", label: nodeLabel(n.name, n.coro) },
        },
        {
          group: "nodes",
          classes: "port",
          position: { x: position.x + NODE_WIDTH / 2, y: position.y },
          selectable: false,
          grabbable: false,
          data: { id: `p${id}`, owner: n.name },
        },
      );
    }
    for (const [a, b] of edges) {
      const pair = JSON.stringify([a, b]);
      if (!this.nodeIds.has(a) || !this.nodeIds.has(b) || this.edgeIds.has(pair)) continue;
      const id = `e${this.edgeIds.size}`;
      this.edgeIds.set(pair, id);
      elements.push({
        group: "edges",
        data: { id, pair, from: a, to: b, source: this.nodeIds.get(a), target: this.nodeIds.get(b), label: "", width: 2 },
      });
    }
    this.cy.batch(() => {
      this.cy.elements().remove();
      this.cy.add(elements);
    });
    this.empty.hidden = nodes.length > 0;
    if (nodes.length && !known.length && !this.nextPosition) this.autoLayout();
    else {
      for (const n of nodes) {
        if (this.positions.has(n.name)) continue;
        const spot = this.nextPosition ?? this.freeSpot();
        this.nextPosition = null;
        this.positions.set(n.name, spot);
        this.node(n.name).position(spot);
        this.placePort(this.node(n.name));
      }
      this.savePositions();
      // A drop lands where the pointer was: the view stays put.
      if (!dropped) this.fitIfOutside();
    }
    for (const name of selected) {
      const el = this.cy.elements().filter((e) => (e.data("name") ?? e.data("pair")) === name);
      el.select();
    }
  }

  /** Bring the whole graph into view when part of it is off the canvas. */
  fitIfOutside() {
    const box = this.cy.nodes(".real").boundingBox();
    const view = this.cy.extent();
    if (box.x1 < view.x1 || box.x2 > view.x2 || box.y1 < view.y1 || box.y2 > view.y2) this.fit();
  }

  /** Back to "nothing ran yet" on the topology shown. */
  reset() {
    this.cy.batch(() => {
      this.cy.nodes(".real").forEach((node) => {
        node.data({ state: "pending", badge: "", label: nodeLabel(node.data("name"), node.data("coro")) });
      });
      this.cy.edges().forEach((edge) => edge.data({ label: "", level: null, width: 2 }));
    });
  }

  /** The pool badge shown on a node ("cpu x2"), "" when it runs in the server's process. */
  badge(name) {
    const node = this.node(name);
    return node.empty() ? null : node.data("badge");
  }

  node(name) {
    return this.cy.getElementById(this.nodeIds.get(name) ?? "");
  }

  edge(from, to) {
    return this.cy.getElementById(this.edgeIds.get(JSON.stringify([from, to])) ?? "");
  }

  /** Apply one `metrics` event. */
  update(metrics) {
    this.cy.batch(() => {
      for (const [name, m] of Object.entries(metrics.nodes ?? {})) {
        const node = this.node(name);
        if (node.empty()) continue;
        const badge = poolBadge(m);
        node.data({ state: STATES.includes(m.status) ? m.status : "pending", badge, label: nodeLabel(name, node.data("coro"), m, badge) });
      }
      for (const e of metrics.edges ?? []) {
        const edge = this.edge(e.from, e.to);
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
        node.data({ state, label: nodeLabel(name, node.data("coro"), nodes[name], node.data("badge")) });
      }
    });
  }
}
