// Problems with the spec: a JSON syntax error or the server's list of problems, shown under the
// JSON view, on the canvas next to the node or edge at fault, and (for a refused run) in full
// where the results go.
import { h } from "./dom.js";

/** The items of a protocol error: {code, message, path, errors: [{path, code, message}]}. */
export function problemItems(error) {
  return Array.isArray(error?.errors) && error.errors.length
    ? error.errors
    : [{ path: error?.path ?? null, code: error?.code ?? "error", message: error?.message ?? String(error) }];
}

/**
 * Which node or edge of a spec a problem path points at: "nodes.a.args.n" → node a,
 * "graph.a.1" → the edge from a to its second target (or node a when there is no such edge).
 * Node names may hold dots: the longest name that fits wins.
 */
export function locate(spec, path) {
  const text = String(path ?? "").replace(/\[(\d+)\]/g, ".$1");
  const names = Object.keys(spec?.nodes ?? {}).concat(Object.keys(spec?.graph ?? {}));
  for (const group of ["nodes", "graph"]) {
    if (!text.startsWith(`${group}.`)) continue;
    const rest = text.slice(group.length + 1);
    const name = names
      .filter((n) => rest === n || rest.startsWith(`${n}.`))
      .sort((a, b) => b.length - a.length)[0];
    if (name === undefined) return null;
    const detail = rest.slice(name.length + 1);
    if (group === "graph") {
      const index = /^\.(\d+)/.exec(rest.slice(name.length));
      const downs = spec.graph?.[name];
      const to = index && Array.isArray(downs) ? downs[Number(index[1])] : undefined;
      if (typeof to === "string" && Object.hasOwn(spec.nodes ?? {}, to)) return { edge: [name, to], detail: "" };
    }
    return Object.hasOwn(spec.nodes ?? {}, name) ? { node: name, detail } : null;
  }
  return null;
}

export class ProblemsView {
  /**
   * @param {{list: HTMLElement, textarea: HTMLElement, runList: HTMLElement}} els
   * @param {{reveal: (path: string) => void, revealError: (error: any) => void,
   *          onGraph: (marks: {node?: string, edge?: [string, string], message: string}[]) => void}} hooks
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
  }

  clear() {
    this.els.list.replaceChildren();
    this.els.list.classList.remove("ok");
    this.els.textarea.removeAttribute("aria-invalid");
    this.hooks.onGraph([]);
  }

  clearRun() {
    this.els.runList.replaceChildren();
    this.els.runList.hidden = true;
  }

  syntax(error) {
    this.els.list.classList.remove("ok");
    this.els.textarea.setAttribute("aria-invalid", "true");
    this.els.list.replaceChildren(
      h("h3", null, "JSON syntax error"),
      h("ul", null, h("li", { class: "syntax-error" },
        h("button", { type: "button", class: "link path", onclick: () => this.hooks.revealError(error) }, `line ${error.line}, column ${error.column}`),
        `: ${error.message}`)),
    );
  }

  items(items) {
    return h("ul", null, ...items.map((item) =>
      h("li", { class: "spec-error", dataset: { path: item.path ?? "", code: item.code ?? "" } },
        item.path
          ? h("button", { type: "button", class: "link path", title: "Show it in the JSON", onclick: () => this.hooks.reveal(item.path) }, item.path)
          : null,
        item.path ? ": " : "",
        item.message ?? "",
        " ",
        h("span", { class: "code" }, `(${item.code ?? "error"})`))));
  }

  /** The server's problems with a spec; also marked on the canvas. */
  server(error, spec, title) {
    const items = problemItems(error);
    this.els.list.classList.remove("ok");
    this.els.textarea.setAttribute("aria-invalid", "true");
    this.els.list.replaceChildren(
      h("h3", null, title ?? `${items.length} problem${items.length === 1 ? "" : "s"} (${error?.code ?? "error"})`),
      this.items(items),
    );
    const marks = [];
    for (const item of items) {
      const at = locate(spec, item.path);
      if (!at) continue;
      const where = at.detail && at.detail !== "coro" ? `${at.detail}: ` : "";
      marks.push({ node: at.node, edge: at.edge, message: `${where}${item.message ?? ""} (${item.code ?? "error"})` });
    }
    this.hooks.onGraph(marks);
  }

  /** A refused run: every problem, in full, where the results would be. */
  refused(error, spec) {
    const items = problemItems(error);
    this.server(error, spec);
    this.els.runList.hidden = false;
    this.els.runList.replaceChildren(
      h("h3", null, `Not run: ${items.length} problem${items.length === 1 ? "" : "s"} (${error?.code ?? "error"})`),
      this.items(items),
    );
  }

  valid(outputs) {
    this.els.textarea.removeAttribute("aria-invalid");
    this.els.list.classList.add("ok");
    const list = (outputs ?? []).join(", ");
    this.els.list.replaceChildren(h("h3", null, `✓ The server accepts this spec${list ? `; outputs: ${list}` : ""}.`));
    this.hooks.onGraph([]);
  }
}
