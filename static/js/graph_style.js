// How the graph canvas looks: node and edge styles (read from the page's colour variables, so
// they follow light and dark), and the text of a node's label.

export const STATES = ["pending", "running", "done", "failed", "cancelled"];
export const NODE_WIDTH = 164;
export const NODE_HEIGHT = 62;

/** Read the page's colour variables (they change with prefers-color-scheme). */
function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    fg: v("--fg"),
    muted: v("--muted"),
    panel: v("--panel"),
    nodeFill: v("--node-fill"),
    poolFill: v("--node-pool-fill"),
    edgeIdle: v("--edge-idle"),
    accent: v("--accent"),
    err: v("--err"),
    state: Object.fromEntries(STATES.map((s) => [s, v(`--state-${s}`)])),
    queue: { low: v("--queue-low"), mid: v("--queue-mid"), high: v("--queue-high") },
  };
}

export function styles() {
  const c = palette();
  const sheet = [
    {
      selector: "node",
      style: {
        shape: "round-rectangle",
        width: NODE_WIDTH,
        height: NODE_HEIGHT,
        "background-color": c.nodeFill,
        "border-width": 3,
        "border-color": c.state.pending,
        label: "data(label)",
        color: c.fg,
        "font-size": 13.5,
        "text-wrap": "wrap",
        "text-max-width": NODE_WIDTH - 8,
        "text-valign": "center",
        "text-halign": "center",
        "font-family": "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
        "line-height": 1.3,
      },
    },
    {
      selector: "edge",
      style: {
        width: "data(width)",
        "curve-style": "bezier",
        // Out of the right side (where the port is), into the left side, like wires.
        "source-endpoint": "50% 0%",
        "target-endpoint": "-50% 0%",
        "line-color": c.edgeIdle,
        "target-arrow-color": c.edgeIdle,
        "target-arrow-shape": "triangle",
        "arrow-scale": 0.9,
        label: "data(label)",
        "font-size": 13,
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
  // A node that runs on a worker pool: another fill, and its badge in the label.
  sheet.push({ selector: 'node[badge != ""]', style: { "background-color": c.poolFill } });
  sheet.push({ selector: 'node[state = "failed"]', style: { "border-style": "double", "border-width": 5 } });
  for (const [level, colour] of Object.entries(c.queue)) {
    sheet.push({
      selector: `edge[level = "${level}"]`,
      style: { "line-color": colour, "target-arrow-color": colour },
    });
  }
  sheet.push(
    {
      selector: "node.port",
      style: {
        shape: "ellipse", width: 16, height: 16, label: "", "border-width": 2,
        "border-color": c.panel, "background-color": c.accent,
      },
    },
    { selector: "node.port:active, node.port.hover", style: { width: 20, height: 20, "overlay-opacity": 0 } },
    { selector: "node.ghost", style: { width: 1, height: 1, opacity: 0, label: "" } },
    { selector: "edge.ghost", style: { "line-style": "dashed", "line-color": c.accent, "target-arrow-color": c.accent } },
    { selector: "node.drop-target", style: { "border-color": c.accent, "border-width": 5 } },
    { selector: "node.problem", style: { "border-color": c.err, "border-style": "dashed", "border-width": 4 } },
    { selector: "edge.problem", style: { "line-color": c.err, "target-arrow-color": c.err, "line-style": "dashed" } },
    { selector: ":selected", style: { "overlay-color": c.accent, "overlay-opacity": 0.18, "overlay-padding": 6 } },
  );
  return sheet;
}

/**
 * The pool badge of a node's metrics: "cpu x2" (its pool, and how many workers ran its items), or ""
 * for a node that runs in the server's process.
 */
export function poolBadge(m) {
  if (!m || typeof m.pool !== "string" || !m.pool) return "";
  return `${m.pool} x${Number.isInteger(m.workers) ? m.workers : 0}`;
}

export function nodeLabel(name, coro, m, badge = "") {
  const counts = m ? `in ${m.in ?? 0} · out ${m.out ?? 0} · err ${m.errors ?? 0}` : "in – · out – · err –";
  const short = String(coro ?? "").length > 24 ? `…${String(coro).slice(-23)}` : coro ?? "";
  return `${badge ? `${name} [${badge}]` : name}\n${short}\n${counts}`;
}
