// Editing on the graph canvas: drop coroutines from the palette, draw an edge by dragging from
// a node's output port (the dot on its right) onto another node, select, delete (Delete or
// Backspace), and the problems of a check shown next to the node or edge at fault.
import { h } from "./dom.js";

export const DRAG_TYPE = "application/x-pipelines-coro";

/**
 * @typedef {{
 *   onDrop: (coro: string, position: {x: number, y: number}) => void,
 *   onConnect: (from: string, to: string) => void,
 *   onDelete: (nodes: string[], edges: [string, string][]) => void,
 *   onSelect: (selection: {node?: string, edge?: [string, string]} | null) => void,
 * }} CanvasHooks
 */

export class CanvasEditor {
  /**
   * @param {import("./graph_view.js").GraphView} view
   * @param {CanvasHooks} hooks
   */
  constructor(view, hooks) {
    this.view = view;
    this.cy = view.cy;
    this.hooks = hooks;
    this.drawing = null;
    this.problems = [];
    const container = view.container;
    container.tabIndex = 0;
    this.overlay = h("div", { class: "graph-problems", "aria-hidden": "true" });
    // What is selected, said to screen readers (the canvas itself is a picture to them).
    this.live = h("p", { class: "visually-hidden", id: "graph-selection", "aria-live": "polite" });
    container.append(this.overlay);
    container.after(this.live);

    container.addEventListener("dragover", (event) => {
      if (!event.dataTransfer?.types.includes(DRAG_TYPE)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    container.addEventListener("drop", (event) => {
      const coro = event.dataTransfer?.getData(DRAG_TYPE);
      if (!coro) return;
      event.preventDefault();
      this.hooks.onDrop(coro, this.modelPoint(event.clientX, event.clientY));
    });
    container.addEventListener("keydown", (event) => {
      if (event.key === "Delete" || event.key === "Backspace") {
        event.preventDefault();
        this.deleteSelected();
      } else if (event.key === "Escape") this.cy.$(":selected").unselect();
      else if (event.key.startsWith("Arrow")) {
        // Arrows walk the nodes in spec order: the canvas is usable without a mouse.
        event.preventDefault();
        this.step(event.key === "ArrowRight" || event.key === "ArrowDown" ? 1 : -1);
      }
    });

    // A click on the canvas focuses it, so that Delete and Escape reach it.
    this.cy.on("tapstart", () => container.focus({ preventScroll: true }));
    this.cy.on("select unselect", () => queueMicrotask(() => this.selected()));
    this.cy.on("tapstart", "node.port", (event) => this.startEdge(event));
    this.cy.on("tapdrag", (event) => this.dragEdge(event));
    this.cy.on("tapend", (event) => this.endEdge(event));
    this.cy.on("mouseover", "node.port", (event) => event.target.addClass("hover"));
    this.cy.on("mouseout", "node.port", (event) => event.target.removeClass("hover"));
    this.cy.on("render", () => this.placeProblems());
  }

  /** A point of the page (clientX/Y) in the graph's own coordinates. */
  modelPoint(clientX, clientY) {
    const rect = this.view.container.getBoundingClientRect();
    const pan = this.cy.pan();
    const zoom = this.cy.zoom();
    return { x: (clientX - rect.left - pan.x) / zoom, y: (clientY - rect.top - pan.y) / zoom };
  }

  /** Where a node (or its port) is on the page, for tests and tooltips: {x, y, w, h} centre-based. */
  screenBox(name, part = "node") {
    const node = this.view.node(name);
    if (node.empty()) return null;
    const el = part === "port" ? this.cy.getElementById(`p${node.id()}`) : node;
    const box = el.renderedBoundingBox({ includeLabels: false, includeOverlays: false });
    const rect = this.view.container.getBoundingClientRect();
    return { x: rect.left + (box.x1 + box.x2) / 2, y: rect.top + (box.y1 + box.y2) / 2, w: box.w, h: box.h };
  }

  /** The middle of the edge from → to on the page, or null. */
  edgePoint(from, to) {
    const edge = this.view.edge(from, to);
    if (edge.empty()) return null;
    const mid = edge.renderedMidpoint();
    const rect = this.view.container.getBoundingClientRect();
    return { x: rect.left + mid.x, y: rect.top + mid.y };
  }

  /** The selected node or edge, by name. */
  selection() {
    const el = this.cy.$(":selected").first();
    if (el.empty()) return null;
    if (el.isNode()) return { node: el.data("name") };
    return { edge: [el.data("from"), el.data("to")] };
  }

  select(name) {
    this.cy.$(":selected").unselect();
    this.view.node(name).select();
  }

  selected() {
    const selection = this.selection();
    this.live.textContent = selection?.node
      ? `Selected node ${selection.node} (${this.view.node(selection.node).data("coro")}).`
      : selection?.edge
        ? `Selected the edge from ${selection.edge[0]} to ${selection.edge[1]}.`
        : "Nothing selected.";
    this.hooks.onSelect(selection);
  }

  /** Select the next (or previous) node. */
  step(delta) {
    const names = [...this.view.nodeIds.keys()];
    if (!names.length) return;
    const current = this.selection()?.node;
    const at = current === undefined ? (delta > 0 ? -1 : 0) : names.indexOf(current);
    this.select(names[(at + delta + names.length) % names.length]);
  }

  deleteSelected() {
    const selected = this.cy.$(":selected");
    const nodes = selected.nodes(".real").map((n) => n.data("name"));
    const edges = selected.edges().map((e) => [e.data("from"), e.data("to")]);
    if (nodes.length || edges.length) this.hooks.onDelete(nodes, edges);
  }

  /** The real node under a graph point, if any. */
  nodeAt(point) {
    return this.cy.nodes(".real").filter((node) => {
      const box = node.boundingBox({ includeLabels: false, includeOverlays: false });
      return point.x >= box.x1 && point.x <= box.x2 && point.y >= box.y1 && point.y <= box.y2;
    }).first();
  }

  startEdge(event) {
    const from = event.target.data("owner");
    const source = this.view.node(from);
    this.cy.userPanningEnabled(false);
    this.cy.batch(() => {
      this.cy.add([
        { group: "nodes", classes: "ghost", data: { id: "ghost-target" }, position: { ...event.position }, selectable: false, grabbable: false },
        { group: "edges", classes: "ghost", data: { id: "ghost-edge", source: source.id(), target: "ghost-target" } },
      ]);
    });
    this.drawing = { from, target: null };
  }

  dragEdge(event) {
    if (!this.drawing) return;
    this.cy.getElementById("ghost-target").position({ ...event.position });
    const over = this.nodeAt(event.position);
    if (this.drawing.target && (over.empty() || over.id() !== this.drawing.target.id())) {
      this.drawing.target.removeClass("drop-target");
      this.drawing.target = null;
    }
    if (over.nonempty() && over.data("name") !== this.drawing.from) {
      over.addClass("drop-target");
      this.drawing.target = over;
    }
  }

  endEdge(event) {
    if (!this.drawing) return;
    const { from } = this.drawing;
    this.drawing = null;
    this.cy.remove("#ghost-edge, #ghost-target");
    this.cy.nodes(".drop-target").removeClass("drop-target");
    this.cy.userPanningEnabled(true);
    const target = this.nodeAt(event.position);
    if (target.nonempty() && target.data("name") !== from) this.hooks.onConnect(from, target.data("name"));
  }

  /**
   * Mark the nodes and edges a check found fault with, each message next to its element.
   * @param {{node?: string, edge?: [string, string], message: string}[]} problems
   */
  showProblems(problems) {
    this.problems = problems;
    this.cy.elements(".problem").removeClass("problem");
    this.overlay.replaceChildren();
    for (const problem of problems) {
      const el = problem.edge ? this.view.edge(...problem.edge) : this.view.node(problem.node ?? "");
      if (el.empty()) continue;
      el.addClass("problem");
      const box = h("div", { class: "graph-problem", dataset: { node: problem.node ?? "", edge: problem.edge ? problem.edge.join("→") : "" } }, problem.message);
      box._element = el;
      this.overlay.append(box);
    }
    this.placeProblems();
  }

  placeProblems() {
    let lastBottom = new Map();
    for (const box of this.overlay.children) {
      const el = box._element;
      if (!el || el.removed()) continue;
      const r = el.renderedBoundingBox({ includeLabels: false, includeOverlays: false });
      const key = el.id();
      const top = lastBottom.get(key) ?? r.y2 + 4;
      box.style.left = `${Math.max(0, r.x1)}px`;
      box.style.top = `${top}px`;
      lastBottom.set(key, top + box.offsetHeight + 2);
    }
  }
}
