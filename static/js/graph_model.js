// The editor model: the graph spec being edited, the one source of truth behind the JSON view
// and the canvas, with undo/redo over every change from either of them.
import { addNodeStub } from "./palette.js";

const MAX_HISTORY = 200;
/** The canvas draws at most this many nodes and edges (a pasted giant spec must not hang the tab). */
export const MAX_DRAWN_NODES = 500;
export const MAX_DRAWN_EDGES = 2000;

/** A new, empty graph. */
export function emptySpec() {
  return { nodes: {}, graph: {} };
}

const isObject = (v) => Boolean(v) && typeof v === "object" && !Array.isArray(v);

/** The [from, to] edges of a spec between nodes it declares (what the canvas can draw). */
export function edgesOf(spec) {
  const edges = [];
  const nodes = isObject(spec?.nodes) ? spec.nodes : {};
  const graph = isObject(spec?.graph) ? spec.graph : {};
  for (const [from, downs] of Object.entries(graph)) {
    if (!Object.hasOwn(nodes, from)) continue;
    const list = Array.isArray(downs) ? downs : typeof downs === "string" ? [downs] : [];
    for (const to of list) {
      if (typeof to === "string" && Object.hasOwn(nodes, to) && !edges.some(([a, b]) => a === from && b === to)) {
        edges.push([from, to]);
        if (edges.length >= MAX_DRAWN_EDGES) return edges;
      }
    }
  }
  return edges;
}

/** The nodes of a spec: [{name, coro}] (as far as its shape allows). */
export function nodesOf(spec) {
  const nodes = isObject(spec?.nodes) ? spec.nodes : {};
  return Object.entries(nodes)
    .slice(0, MAX_DRAWN_NODES)
    .map(([name, node]) => ({ name, coro: typeof node?.coro === "string" ? node.coro : "?" }));
}

/** A spec the graph operations can work on, or an Error saying why not. */
function checkShape(spec) {
  if (!isObject(spec)) return new Error("the spec is not a JSON object");
  if (spec.nodes !== undefined && !isObject(spec.nodes)) return new Error('"nodes" must be an object');
  if (spec.graph !== undefined && !isObject(spec.graph)) return new Error('"graph" must be an object');
  return null;
}

export class GraphModel {
  constructor() {
    this.spec = emptySpec();
    this.past = [];
    this.future = [];
    this.listeners = [];
  }

  /** @param {(source: string) => void} fn called after every change with who made it */
  onChange(fn) {
    this.listeners.push(fn);
  }

  emit(source) {
    for (const fn of this.listeners) fn(source);
  }

  get text() {
    return JSON.stringify(this.spec);
  }

  remember(before) {
    this.past.push(before);
    if (this.past.length > MAX_HISTORY) this.past.shift();
    this.future = [];
  }

  /** Replace the whole spec (typed JSON, an example, an import, New); recorded for undo. */
  set(spec, source, { record = true } = {}) {
    const before = this.text;
    if (JSON.stringify(spec) === before) return false;
    if (record) this.remember(before);
    this.spec = structuredClone(spec);
    this.emit(source);
    return true;
  }

  /** Change a copy of the spec with fn(draft); keep it (and record the old one) if it changed. */
  edit(fn, source = "canvas") {
    const shape = checkShape(this.spec);
    if (shape) throw shape;
    const before = this.text;
    const draft = structuredClone(this.spec);
    draft.nodes ??= {};
    draft.graph ??= {};
    const result = fn(draft);
    if (JSON.stringify(draft) !== before) {
      this.remember(before);
      this.spec = draft;
      this.emit(source);
    }
    return result;
  }

  get canUndo() {
    return this.past.length > 0;
  }

  get canRedo() {
    return this.future.length > 0;
  }

  undo() {
    if (!this.past.length) return false;
    this.future.push(this.text);
    this.spec = JSON.parse(this.past.pop());
    this.emit("history");
    return true;
  }

  redo() {
    if (!this.future.length) return false;
    this.past.push(this.text);
    this.spec = JSON.parse(this.future.pop());
    this.emit("history");
    return true;
  }

  // ---- graph operations (each one undo step) ----

  /** Add a node for a registry entry; returns its name. */
  addNode(entry) {
    return this.edit((spec) => addNodeStub(spec, entry));
  }

  removeNodes(names) {
    const gone = new Set(names);
    this.edit((spec) => {
      for (const name of gone) {
        delete spec.nodes[name];
        delete spec.graph[name];
      }
      for (const [from, downs] of Object.entries(spec.graph)) {
        if (Array.isArray(downs)) spec.graph[from] = downs.filter((to) => !gone.has(to));
      }
    });
  }

  /** Add the edge from → to; throws with a reason when it cannot be. */
  connect(from, to) {
    if (from === to) throw new Error("a node cannot feed itself");
    this.edit((spec) => {
      if (!Object.hasOwn(spec.nodes, from) || !Object.hasOwn(spec.nodes, to)) throw new Error("no such node");
      const downs = spec.graph[from];
      const list = Array.isArray(downs) ? downs : typeof downs === "string" ? [downs] : [];
      if (list.includes(to)) throw new Error(`${from} already feeds ${to}`);
      spec.graph[from] = [...list, to];
      if (!Object.hasOwn(spec.graph, to)) spec.graph[to] = [];
    });
  }

  /** Remove the edges given as [from, to] pairs. */
  disconnect(pairs) {
    this.edit((spec) => {
      for (const [from, to] of pairs) {
        const downs = spec.graph[from];
        if (Array.isArray(downs)) spec.graph[from] = downs.filter((name) => name !== to);
        else if (downs === to) spec.graph[from] = [];
      }
    });
  }

  /** Rename a node everywhere it appears (its key order kept); throws when the name is taken. */
  rename(from, to) {
    if (from === to) return;
    if (!to) throw new Error("a node needs a name");
    this.edit((spec) => {
      if (Object.hasOwn(spec.nodes, to)) throw new Error(`there is already a node "${to}"`);
      const renameKey = (obj) => Object.fromEntries(Object.entries(obj).map(([k, v]) => [k === from ? to : k, v]));
      spec.nodes = renameKey(spec.nodes);
      spec.graph = renameKey(spec.graph);
      for (const [name, downs] of Object.entries(spec.graph)) {
        if (Array.isArray(downs)) spec.graph[name] = downs.map((n) => (n === from ? to : n));
        else if (downs === from) spec.graph[name] = to;
      }
    });
  }

  /**
   * Set (or, with undefined, remove) one field of a node's args or properties; an empty
   * object is dropped so that the JSON stays as short as a hand-written one.
   */
  setField(name, group, field, value) {
    this.edit((spec) => {
      const node = spec.nodes[name];
      if (!isObject(node)) return;
      const values = isObject(node[group]) ? { ...node[group] } : {};
      if (value === undefined) delete values[field];
      else values[field] = value;
      if (Object.keys(values).length) node[group] = values;
      else delete node[group];
    }, "form");
  }
}
