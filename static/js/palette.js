// The palette: every registered coroutine with its kind, doc line and arguments (from
// GET api/registry, relative: the page may be mounted under a prefix); drag one onto the canvas, or choose Add, to add a node to the graph.
import { DRAG_TYPE } from "./canvas_edit.js";
import { h } from "./dom.js";

/** A short type label for a JSON Schema (pydantic's output: type, anyOf, items, $ref). */
export function typeLabel(schema) {
  if (!schema || typeof schema !== "object") return "any";
  if (Array.isArray(schema.anyOf)) {
    let parts = [...new Set(schema.anyOf.map(typeLabel))];
    if (parts.includes("number")) parts = parts.filter((p) => p !== "integer"); // integers are numbers
    return parts.join(" | ");
  }
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if ("const" in schema) return JSON.stringify(schema.const);
  if (schema.$ref) return String(schema.$ref).split("/").pop();
  if (schema.type === "array") return `${typeLabel(schema.items)}[]`;
  if (schema.type === "object") return "object";
  if (schema.type) return Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  return "any";
}

/** The arguments of a registry entry: [{name, type, required, default, description}]. */
export function argsOf(entry) {
  const schema = entry.args_schema ?? {};
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).map(([name, prop]) => ({
    name,
    type: typeLabel(prop),
    required: required.has(name),
    hasDefault: Object.hasOwn(prop, "default"),
    default: prop.default,
    description: prop.description ?? "",
    schema: prop,
  }));
}

/** A placeholder value a user replaces: the default, else an empty value of the right type. */
function placeholder(arg) {
  if (arg.hasDefault) return arg.default;
  const type = arg.schema.type ?? arg.schema.anyOf?.[0]?.type;
  return { string: "", integer: 0, number: 0, boolean: false, array: [], object: {} }[type] ?? null;
}

/**
 * Add a node stub for a registry entry to a spec object (changed in place); returns its name.
 * The node is added to "graph" as a sink, with a placeholder for each required argument.
 */
export function addNodeStub(spec, entry) {
  if (!spec || typeof spec !== "object" || Array.isArray(spec)) throw new Error("the spec is not a JSON object");
  spec.nodes ??= {};
  spec.graph ??= {};
  if (typeof spec.nodes !== "object" || typeof spec.graph !== "object") {
    throw new Error('"nodes" and "graph" must be objects');
  }
  const base =
    String(entry.name)
      .split(".")
      .pop()
      .replace(/[^A-Za-z0-9_-]/g, "_")
      .toLowerCase() || "node";
  let name = base;
  for (let n = 2; Object.hasOwn(spec.nodes, name) || Object.hasOwn(spec.graph, name); n++) {
    name = `${base}${n}`;
  }
  const node = { coro: entry.name };
  // Only the required arguments: the others keep their defaults (the node form shows them).
  const args = argsOf(entry).filter((arg) => arg.required);
  if (args.length) node.args = Object.fromEntries(args.map((arg) => [arg.name, placeholder(arg)]));
  spec.nodes[name] = node;
  spec.graph[name] = [];
  return name;
}

export class Palette {
  /**
   * @param {HTMLUListElement} list
   * @param {HTMLInputElement} filter
   * @param {HTMLElement} count
   * @param {(entry: any) => void} onChoose
   */
  constructor(list, filter, count, onChoose) {
    this.list = list;
    this.filter = filter;
    this.count = count;
    this.onChoose = onChoose;
    this.entries = [];
    filter.addEventListener("input", () => this.render());
  }

  /** Fetch the registry; returns the entries (also kept). */
  async load() {
    this.list.replaceChildren(h("li", { class: "muted" }, "Loading the registry…"));
    try {
      const response = await fetch("api/registry", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      this.entries = Array.isArray(body.coroutines) ? body.coroutines : [];
    } catch (err) {
      this.list.replaceChildren(
        h(
          "li",
          { class: "muted" },
          `Could not load the registry (${err.message}). `,
          h("button", { type: "button", class: "link", onclick: () => this.load() }, "Retry"),
        ),
      );
      this.count.textContent = "";
      return [];
    }
    this.render();
    return this.entries;
  }

  /** @param {string} name */
  get(name) {
    return this.entries.find((entry) => entry.name === name);
  }

  render() {
    const needle = this.filter.value.trim().toLowerCase();
    const shown = this.entries.filter(
      (e) => !needle || `${e.name} ${e.kind} ${e.doc ?? ""}`.toLowerCase().includes(needle),
    );
    this.count.textContent = `${shown.length} of ${this.entries.length}`;
    if (!shown.length) {
      this.list.replaceChildren(h("li", { class: "muted" }, this.entries.length ? "No match." : "The registry is empty."));
      return;
    }
    this.list.replaceChildren(...shown.map((entry) => this.item(entry)));
  }

  item(entry) {
    const args = argsOf(entry);
    return h(
      "li",
      {
        dataset: { coro: entry.name },
        draggable: "true",
        title: `Drag onto the canvas to add a ${entry.name} node`,
        ondragstart: (event) => {
          event.dataTransfer.setData(DRAG_TYPE, entry.name);
          event.dataTransfer.setData("text/plain", entry.name);
          event.dataTransfer.effectAllowed = "copy";
        },
      },
      h(
        "div",
        { class: "palette-item-head" },
        h("code", null, entry.name),
        h("span", { class: `kind kind-${entry.kind}` }, entry.kind ?? "?"),
        h(
          "button",
          {
            type: "button",
            title: `Add a ${entry.name} node to the graph`,
            "aria-label": `Add ${entry.name}`,
            onclick: () => this.onChoose(entry),
          },
          "Add",
        ),
      ),
      entry.doc ? h("p", { class: "palette-doc" }, entry.doc) : null,
      args.length
        ? h(
            "ul",
            { class: "palette-args", "aria-label": "arguments" },
            ...args.map((arg) =>
              h(
                "li",
                { title: arg.description || null },
                h("code", null, arg.name),
                `: ${arg.type}`,
                arg.required ? " (required)" : arg.hasDefault ? ` = ${JSON.stringify(arg.default)}` : "",
              ),
            ),
          )
        : h("p", { class: "palette-args muted" }, "no arguments"),
    );
  }
}
