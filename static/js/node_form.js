// The form of the selected node, generated from JSON Schema: its arguments from the registry
// (GET /api/registry) and its run properties from the spec schema (GET /api/schema). Each
// field is checked as you type; a valid value goes into the spec at once.
import { h } from "./dom.js";
import { typeLabel } from "./palette.js";

/** The schema of a value without its "or null" branch: {schema, nullable}. */
function unwrap(schema) {
  if (Array.isArray(schema?.anyOf)) {
    const rest = schema.anyOf.filter((s) => s?.type !== "null");
    if (rest.length === 1) return { schema: { ...rest[0], description: schema.description, default: schema.default }, nullable: rest.length < schema.anyOf.length };
  }
  return { schema: schema ?? {}, nullable: false };
}

/** How a value of this schema is edited: checkbox, select, number, text, lines or json. */
export function controlOf(schema) {
  const { schema: s } = unwrap(schema);
  if (Array.isArray(s.enum)) return "select";
  if (s.type === "boolean") return "checkbox";
  if (s.type === "integer" || s.type === "number") return "number";
  if (s.type === "string") return "text";
  if (s.type === "array" && s.items?.type === "string") return "lines";
  return "json";
}

/**
 * Read and check a field's raw input against its schema: {value} (undefined: leave it out) or
 * {error}.
 */
export function readField(schema, raw, required) {
  const { schema: s } = unwrap(schema);
  const kind = controlOf(schema);
  if (kind === "checkbox") return { value: raw };
  if (kind === "select") return { value: raw === "" ? undefined : JSON.parse(raw) };
  const text = String(raw);
  if (text.trim() === "") return required ? { error: "required" } : { value: undefined };
  if (kind === "lines") return { value: text.split("\n").filter((line) => line !== "") };
  if (kind === "text") {
    if (s.minLength && text.length < s.minLength) return { error: `at least ${s.minLength} characters` };
    return { value: text };
  }
  let value;
  if (kind === "number") {
    value = Number(text);
    if (!Number.isFinite(value)) return { error: "not a number" };
    if (s.type === "integer" && !Number.isInteger(value)) return { error: "a whole number" };
  } else {
    try {
      value = JSON.parse(text);
    } catch (err) {
      return { error: `not JSON: ${err.message}` };
    }
  }
  if (typeof value === "number") {
    if (s.minimum !== undefined && value < s.minimum) return { error: `must be ≥ ${s.minimum}` };
    if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) return { error: `must be > ${s.exclusiveMinimum}` };
    if (s.maximum !== undefined && value > s.maximum) return { error: `must be ≤ ${s.maximum}` };
  }
  return { value };
}

function shown(kind, value) {
  if (value === undefined || value === null) return kind === "checkbox" ? false : "";
  if (kind === "checkbox") return Boolean(value);
  if (kind === "lines" && Array.isArray(value)) return value.join("\n");
  if (kind === "text" && typeof value === "string") return value;
  if (kind === "number" && typeof value === "number") return String(value);
  return JSON.stringify(value);
}

let fieldSeq = 0;

export class NodeForm {
  /**
   * @param {HTMLElement} root
   * @param {import("./graph_model.js").GraphModel} model
   * @param {{entry: (coro: string) => any, properties: () => any, rename: (from: string, to: string) => void,
   *          connect: (from: string, to: string) => void, remove: (name: string) => void}} hooks
   */
  constructor(root, model, hooks) {
    this.root = root;
    this.model = model;
    this.hooks = hooks;
    this.name = null;
    model.onChange((source) => {
      if (source !== "form") this.render();
    });
    this.render();
  }

  show(name) {
    this.name = name;
    this.render();
  }

  /** Draw the form again, keeping the keyboard focus on the same field or button. */
  render() {
    const active = this.root.contains(document.activeElement) ? document.activeElement : null;
    const field = active?.dataset?.field;
    const label = active?.tagName === "BUTTON" ? active.textContent : null;
    this.draw();
    if (!active) return;
    const again = field
      ? this.root.querySelector(`[data-field="${CSS.escape(field)}"]`)
      : [...this.root.querySelectorAll("button")].find((b) => b.textContent === label);
    (again ?? this.root.querySelector("h3"))?.focus?.();
  }

  draw() {
    const node = this.name === null ? undefined : this.model.spec?.nodes?.[this.name];
    if (!node || typeof node !== "object") {
      this.name = null;
      this.root.replaceChildren(h("p", { class: "muted" }, "Select a node on the canvas to edit its arguments and properties."));
      return;
    }
    const entry = this.hooks.entry(node.coro);
    const argSchema = entry?.args_schema ?? { properties: {} };
    const propSchema = this.hooks.properties() ?? { properties: {} };
    this.root.replaceChildren(
      h("h3", { tabindex: "-1" }, "Node ", h("code", null, this.name)),
      entry?.doc ? h("p", { class: "form-doc" }, entry.doc) : h("p", { class: "form-doc muted" }, entry ? "" : `${node.coro} is not on this server.`),
      this.nameField(),
      h("fieldset", { class: "form-group" }, h("legend", null, `Arguments of ${node.coro}`),
        ...this.fields(argSchema, "args", node.args ?? {}),
        Object.keys(argSchema.properties ?? {}).length ? null : h("p", { class: "muted" }, "No arguments.")),
      h("details", { class: "form-group" }, h("summary", null, "Properties (how the node runs)"),
        ...this.fields(propSchema, "properties", node.properties ?? {})),
      this.connections(),
    );
  }

  nameField() {
    const id = `field-${++fieldSeq}`;
    const error = h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    const input = h("input", { id, type: "text", value: this.name, "aria-describedby": `${id}-error`, "data-field": "name" });
    input.addEventListener("change", () => {
      const to = input.value.trim();
      try {
        this.hooks.rename(this.name, to);
        this.name = to;
        error.textContent = "";
        input.removeAttribute("aria-invalid");
        this.render();
      } catch (err) {
        error.textContent = err.message;
        input.setAttribute("aria-invalid", "true");
      }
    });
    return h("div", { class: "field" }, h("label", { for: id }, "Name"), input, error);
  }

  fields(schema, group, values) {
    const required = new Set(schema.required ?? []);
    return Object.entries(schema.properties ?? {}).map(([field, prop]) =>
      this.field(group, field, prop, required.has(field), values[field]),
    );
  }

  field(group, field, prop, required, current) {
    const id = `field-${++fieldSeq}`;
    const kind = controlOf(prop);
    const { schema } = unwrap(prop);
    const help = [prop.description ?? schema.description, Object.hasOwn(prop, "default") ? `default ${JSON.stringify(prop.default)}` : null]
      .filter(Boolean).join("; ");
    const error = h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    const attrs = { id, "aria-describedby": `${id}-help ${id}-error`, "data-field": `${group}.${field}`, "aria-required": required ? "true" : null };
    let input;
    if (kind === "select") {
      const value = current ?? prop.default;
      input = h("select", attrs, required ? null : h("option", { value: "" }, "(default)"),
        ...schema.enum.map((option) => h("option", { value: JSON.stringify(option), selected: JSON.stringify(option) === JSON.stringify(value) && current !== undefined }, String(option))));
    } else if (kind === "checkbox") {
      input = h("input", { ...attrs, type: "checkbox" });
      input.checked = shown(kind, current ?? prop.default);
    } else if (kind === "lines" || kind === "json") {
      input = h("textarea", { ...attrs, rows: kind === "lines" ? 4 : 2, spellcheck: "false", placeholder: kind === "lines" ? "one per line" : "JSON" });
      input.value = shown(kind, current);
    } else {
      input = h("input", { ...attrs, type: "text", inputmode: kind === "number" ? "decimal" : null, placeholder: Object.hasOwn(prop, "default") ? shown(kind, prop.default) : "" });
      input.value = shown(kind, current);
    }
    const check = () => {
      const raw = kind === "checkbox" ? input.checked : input.value;
      const read = readField(prop, raw, required);
      if (read.error) {
        error.textContent = read.error;
        input.setAttribute("aria-invalid", "true");
        return;
      }
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      this.model.setField(this.name, group, field, read.value);
    };
    input.addEventListener(kind === "checkbox" || kind === "select" ? "change" : "input", check);
    return h("div", { class: "field", dataset: { name: field } },
      h("label", { for: id }, field, required ? h("span", { class: "required", title: "required" }, " *") : null,
        h("span", { class: "type" }, ` ${typeLabel(prop)}`)),
      input,
      help ? h("span", { class: "field-help", id: `${id}-help` }, help) : null,
      error);
  }

  connections() {
    const spec = this.model.spec;
    const downs = spec.graph?.[this.name];
    const list = Array.isArray(downs) ? downs : typeof downs === "string" ? [downs] : [];
    const others = Object.keys(spec.nodes ?? {}).filter((n) => n !== this.name && !list.includes(n));
    const id = `field-${++fieldSeq}`;
    const pick = h("select", { id }, h("option", { value: "" }, "choose a node…"), ...others.map((n) => h("option", { value: n }, n)));
    return h("div", { class: "form-group connections" },
      h("h4", null, "Sends its results to"),
      list.length
        ? h("ul", null, ...list.map((to) => h("li", null, h("code", null, to), " ",
          h("button", { type: "button", class: "link", "aria-label": `Disconnect ${to}`, onclick: () => this.model.disconnect([[this.name, to]]) }, "remove"))))
        : h("p", { class: "muted" }, "nothing (an output node)"),
      h("div", { class: "field inline" }, h("label", { for: id }, "Connect to"), pick,
        h("button", { type: "button", onclick: () => pick.value && this.hooks.connect(this.name, pick.value) }, "Connect")),
      h("button", { type: "button", class: "danger", onclick: () => this.hooks.remove(this.name) }, "Delete node"),
    );
  }
}
