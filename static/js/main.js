// The page: wires the editor, palette, graph view, metrics tables and results log to the
// socket.io protocol (docs/protocol.md).
import { openConnection, request } from "./connection.js";
import { byId, fmtSeconds, h } from "./dom.js";
import { EXAMPLES, corosOf } from "./examples.js";
import { GraphView } from "./graph_view.js";
import { MetricsTable } from "./metrics_table.js";
import { Palette, addNodeStub } from "./palette.js";
import { ResultsLog } from "./results_log.js";
import { SpecEditor, formatSpec } from "./spec_editor.js";

const RUN_OPTIONS = { results: "batch", window: 256, metrics: true, metrics_interval: 0.25 };
const ANSWER_TIMEOUT_MS = 15000;
const VALIDATE_DELAY_MS = 700;
const SYNTAX_DELAY_MS = 250;

const els = {
  run: byId("run"),
  cancel: byId("cancel"),
  runStatus: byId("run-status"),
  connection: byId("connection"),
  connectionText: byId("connection-text"),
  validate: byId("validate"),
  format: byId("format"),
  import: byId("import"),
  importFile: byId("import-file"),
  export: byId("export"),
  examples: byId("examples"),
  editor: byId("editor"),
  note: byId("editor-note"),
  errors: byId("spec-errors"),
  doneLine: byId("done-line"),
};

/** The run shown on the page. state: idle | starting | running | cancelling. */
const run = { state: "idle", pipelineId: null, outputs: [], lastSeq: -1, shown: false };
let connected = false;
let validateSeq = 0;
let validateTimer = 0;
let lastChecked = null; // the text of the last automatic check, to not ask twice
let syntaxTimer = 0;

const editor = new SpecEditor(els.editor, { onChange: specChanged });
const graph = new GraphView(byId("graph"));
const table = new MetricsTable(byId("metrics"), byId("queues"));
const log = new ResultsLog({
  list: byId("log"),
  node: byId("log-node"),
  text: byId("log-text"),
  pause: byId("log-pause"),
  clear: byId("log-clear"),
  summary: byId("log-summary"),
});
const palette = new Palette(byId("palette"), byId("palette-filter"), byId("palette-count"), addFromPalette);

// ---- status and controls ------------------------------------------------------------------

function setStatus(text, tone = "") {
  els.runStatus.textContent = text;
  els.runStatus.dataset.state = tone;
}

function setRunState(state) {
  run.state = state;
  const busy = state !== "idle";
  els.run.disabled = busy || !connected;
  els.cancel.disabled = !(state === "running" || state === "starting");
  els.validate.disabled = !connected;
  document.body.dataset.run = state;
}

function setConnection(state, detail) {
  els.connection.dataset.state = state;
  els.connectionText.textContent = detail;
  connected = state === "connected";
  setRunState(run.state);
}

function note(text, undoText = null) {
  els.note.replaceChildren(text);
  if (undoText !== null) {
    els.note.append(
      " ",
      h("button", { type: "button", class: "link", onclick: () => replaceSpec(undoText, "Undone.") }, "Undo"),
    );
  }
}

// ---- spec problems, shown under the editor ------------------------------------------------

function clearProblems() {
  els.errors.replaceChildren();
  els.errors.classList.remove("ok");
  els.editor.removeAttribute("aria-invalid");
}

function showSyntaxError(error) {
  els.errors.classList.remove("ok");
  els.editor.setAttribute("aria-invalid", "true");
  els.errors.replaceChildren(
    h("h3", null, "JSON syntax error"),
    h(
      "ul",
      null,
      h(
        "li",
        { class: "syntax-error" },
        h(
          "button",
          { type: "button", class: "link path", onclick: () => editor.revealError(error) },
          `line ${error.line}, column ${error.column}`,
        ),
        `: ${error.message}`,
      ),
    ),
  );
}

/** The error object of the protocol: {code, message, path, node, errors: [{path, code, message}]}. */
function showServerError(error, title) {
  const items = Array.isArray(error?.errors) && error.errors.length
    ? error.errors
    : [{ path: error?.path ?? null, code: error?.code ?? "error", message: error?.message ?? String(error) }];
  els.errors.classList.remove("ok");
  els.editor.setAttribute("aria-invalid", "true");
  els.errors.replaceChildren(
    h("h3", null, title ?? `${items.length} problem${items.length === 1 ? "" : "s"} (${error?.code ?? "error"})`),
    h(
      "ul",
      null,
      ...items.map((item) =>
        h(
          "li",
          { class: "spec-error", dataset: { path: item.path ?? "", code: item.code ?? "" } },
          item.path
            ? h(
                "button",
                {
                  type: "button",
                  class: "link path",
                  title: "Show it in the editor",
                  onclick: () => editor.revealPath(item.path),
                },
                item.path,
              )
            : null,
          item.path ? ": " : "",
          item.message ?? "",
          " ",
          h("span", { class: "code" }, `(${item.code ?? "error"})`),
        ),
      ),
    ),
  );
}

function showValid(outputs) {
  els.editor.removeAttribute("aria-invalid");
  els.errors.classList.add("ok");
  const list = (outputs ?? []).join(", ");
  els.errors.replaceChildren(h("h3", null, `✓ The server accepts this spec${list ? `; outputs: ${list}` : ""}.`));
}

// ---- the editor ---------------------------------------------------------------------------

/** Nodes and edges of a parsed spec, as far as its shape allows (for the preview). */
function topologyOf(spec) {
  const nodes = [];
  const edges = [];
  if (!spec || typeof spec !== "object" || Array.isArray(spec)) return { nodes, edges };
  const specNodes = spec.nodes && typeof spec.nodes === "object" ? spec.nodes : {};
  for (const [name, node] of Object.entries(specNodes)) {
    nodes.push({ name, coro: typeof node?.coro === "string" ? node.coro : "?" });
  }
  const specGraph = spec.graph && typeof spec.graph === "object" ? spec.graph : {};
  for (const [from, downs] of Object.entries(specGraph)) {
    if (!Object.hasOwn(specNodes, from) || !Array.isArray(downs)) continue;
    for (const to of downs) if (typeof to === "string" && Object.hasOwn(specNodes, to)) edges.push([from, to]);
  }
  return { nodes: nodes.slice(0, 200), edges: edges.slice(0, 1000) };
}

function specChanged() {
  clearTimeout(syntaxTimer);
  syntaxTimer = setTimeout(checkSyntax, SYNTAX_DELAY_MS);
}

function checkSyntax() {
  const parsed = editor.parse();
  if (!parsed.ok) {
    showSyntaxError(parsed.error);
    return;
  }
  if (els.errors.querySelector(".syntax-error")) clearProblems();
  if (run.state === "idle") {
    const { nodes, edges } = topologyOf(parsed.spec);
    graph.setTopology(nodes, edges);
    table.setTopology(nodes, edges);
  }
  clearTimeout(validateTimer);
  validateTimer = setTimeout(() => validate(true), VALIDATE_DELAY_MS);
}

/** Ask the server whether the spec is valid; quiet: do not report a busy or rate-limited server. */
async function validate(quiet = false) {
  const parsed = editor.parse();
  if (!parsed.ok) {
    showSyntaxError(parsed.error);
    if (!quiet) editor.revealError(parsed.error);
    return;
  }
  if (!connected) return;
  if (quiet && lastChecked === editor.text) return;
  lastChecked = editor.text;
  const seq = ++validateSeq;
  let answer;
  try {
    answer = await request(socket, "validate", ANSWER_TIMEOUT_MS, parsed.spec);
  } catch {
    if (!quiet && seq === validateSeq) note("The server did not answer the check.");
    return;
  }
  if (seq !== validateSeq) return; // an older answer: the text has changed since
  if (answer?.ok) showValid(answer.outputs);
  else if (!(quiet && ["rate_limited", "busy"].includes(answer?.error?.code))) showServerError(answer?.error);
}

function replaceSpec(text, message) {
  const previous = editor.text;
  editor.setText(text);
  note(message, previous === text ? null : previous);
}

function loadExample(example) {
  replaceSpec(formatSpec(example.build()), `Loaded the "${example.title}" example. `);
}

function addFromPalette(entry) {
  const parsed = editor.parse();
  if (!parsed.ok) {
    showSyntaxError(parsed.error);
    note(`Fix the JSON before adding ${entry.name}.`);
    return;
  }
  let name;
  const spec = parsed.spec;
  try {
    name = addNodeStub(spec, entry);
  } catch (err) {
    note(`Cannot add ${entry.name}: ${err.message}`);
    return;
  }
  replaceSpec(formatSpec(spec), `Added node "${name}" (${entry.name}); connect it in "graph". `);
  editor.revealPath(`nodes.${name}`);
}

function renderExamples(known) {
  els.examples.replaceChildren(
    ...EXAMPLES.map((example) => {
      const missing = known ? corosOf(example.build()).filter((coro) => !known.has(coro)) : [];
      return h(
        "button",
        {
          type: "button",
          dataset: { example: example.id },
          title: missing.length ? `Not on this server: ${missing.join(", ")}` : example.description,
          disabled: missing.length > 0,
          onclick: () => loadExample(example),
        },
        example.title,
      );
    }),
  );
}

// ---- running --------------------------------------------------------------------------------

function isCurrent(pipelineId) {
  if (run.state === "idle") return false;
  if (run.pipelineId === null) return true; // events may come before the ack answer
  return pipelineId === run.pipelineId;
}

function showTopology(nodes, edges, outputs) {
  run.shown = true;
  const list = (nodes ?? []).map((n) => (typeof n === "string" ? { name: n } : n));
  graph.setTopology(list, edges ?? []);
  table.setTopology(list, edges ?? []);
  for (const name of outputs ?? []) log.addNodeOption(name);
}

async function startRun() {
  if (run.state !== "idle" || !connected) return;
  const parsed = editor.parse();
  if (!parsed.ok) {
    showSyntaxError(parsed.error);
    editor.revealError(parsed.error);
    setStatus("Not run: fix the JSON first", "error");
    return;
  }
  // The run shows its own topology: a pending preview or check must not redraw over it.
  clearTimeout(syntaxTimer);
  clearTimeout(validateTimer);
  validateSeq++;
  editor.save();
  Object.assign(run, { pipelineId: null, outputs: [], lastSeq: -1, shown: false });
  setRunState("starting");
  setStatus("Starting…", "running");
  els.doneLine.hidden = true;
  log.reset();
  graph.reset();
  let answer;
  try {
    answer = await request(socket, "process_msg", ANSWER_TIMEOUT_MS, parsed.spec, RUN_OPTIONS);
  } catch {
    if (run.state === "starting") {
      setRunState("idle");
      setStatus("The server did not answer", "error");
    }
    return;
  }
  if (!answer?.ok) {
    setRunState("idle");
    const error = answer?.error ?? { code: "error", message: "no answer" };
    setStatus(`Not run: ${error.message ?? error.code}`, "error");
    showServerError(error, error.code === "invalid_spec" ? undefined : `Not run (${error.code})`);
    return;
  }
  if (run.state === "idle") return; // done already came (a very short run)
  run.pipelineId = answer.pipeline_id;
  run.outputs = answer.outputs ?? [];
  if (run.state === "starting") {
    setRunState("running");
    setStatus(`Running ${answer.pipeline_id}…`, "running");
  }
  // pipeline_started may have come first, and metrics after it: do not redraw over them.
  if (!run.shown) showTopology(answer.nodes, answer.edges, answer.outputs);
  clearProblems();
}

async function cancelRun() {
  if (!(run.state === "running" || run.state === "starting")) return;
  setRunState("cancelling");
  setStatus("Cancelling…", "running");
  try {
    const answer = await request(socket, "cancel", ANSWER_TIMEOUT_MS, run.pipelineId ? { pipeline_id: run.pipelineId } : {});
    if (!answer?.ok && answer?.error?.code === "not_running" && run.state === "cancelling") {
      setRunState("idle");
      setStatus("Nothing was running", "");
    }
  } catch {
    if (run.state === "cancelling") setStatus("The server did not answer the cancel", "error");
  }
}

/** Node states once the run is over (done never leaves a node "running"). */
function finalStates(done) {
  const shown = table.statuses();
  const states = {};
  for (const name of Object.keys({ ...shown, ...(done.nodes ?? {}) })) {
    const current = shown[name];
    if (done.error?.node === name) states[name] = "failed";
    else if (["done", "failed", "cancelled"].includes(current)) states[name] = current;
    else states[name] = done.status === "completed" ? "done" : "cancelled";
  }
  return states;
}

function finishRun(done) {
  const nodes = done.nodes ?? {};
  const states = finalStates(done);
  graph.finish(nodes, states);
  table.finish(nodes, states);
  // A completed pipeline has nothing left in flight or queued (the last metrics event may
  // predate the end, or a short run may have had none).
  if (done.status === "completed") table.drained();
  const errors = Object.values(nodes).reduce((sum, n) => sum + (n.errors ?? 0), 0);
  const count = done.results ?? log.received;
  const parts = [
    `Done: ${done.status}`,
    `${count} result${count === 1 ? "" : "s"}`,
    `${Object.keys(nodes).length} nodes`,
    fmtSeconds(done.elapsed),
  ];
  if (errors) parts.push(`${errors} item error${errors === 1 ? "" : "s"}`);
  if (done.skipped) parts.push(`${done.skipped} result${done.skipped === 1 ? "" : "s"} not sendable`);
  if (done.error) parts.push(`${done.error.code}: ${done.error.message}`);
  const text = parts.join(" · ");
  els.doneLine.textContent = text;
  els.doneLine.dataset.status = done.status;
  els.doneLine.hidden = false;
  log.addEvent(done.status === "failed" ? "error" : "event", text);
  if (log.received !== count) {
    log.addEvent("warning", `This page received ${log.received} of the ${count} results.`);
  }
  const label = { completed: "Completed", cancelled: "Cancelled", failed: "Failed" }[done.status] ?? done.status;
  setStatus(`${label} in ${fmtSeconds(done.elapsed)}`, done.status);
  setRunState("idle");
}

// ---- the socket -------------------------------------------------------------------------------

const socket = openConnection((state, detail) => {
  const wasConnected = connected;
  setConnection(state, detail);
  if (wasConnected && !connected && run.state !== "idle") {
    // The server cancels a session's pipeline when its client leaves.
    log.addEvent("error", "Connection lost: the server stops the pipeline of a client that leaves.");
    setStatus("Connection lost; the run was stopped", "error");
    setRunState("idle");
  }
  if (!wasConnected && connected) checkSyntax();
}, byId("token-button"));

socket.on("pipeline_started", (info) => {
  if (!isCurrent(info.pipeline_id)) return;
  run.pipelineId = info.pipeline_id;
  run.outputs = info.outputs ?? [];
  if (run.state === "starting") setRunState("running");
  if (!run.shown) showTopology(info.nodes, info.edges, info.outputs);
  log.addEvent("event", `Pipeline ${info.pipeline_id} started: ${(info.nodes ?? []).length} nodes, outputs ${(info.outputs ?? []).join(", ")}.`);
  if (run.state === "running") setStatus(`Running ${info.pipeline_id}…`, "running");
});

socket.on("results", (payload, ack) => {
  try {
    if (isCurrent(payload?.pipeline_id)) {
      const items = Array.isArray(payload.items) ? payload.items : [];
      for (const item of items) {
        if (typeof item.seq === "number") {
          if (item.seq !== run.lastSeq + 1) {
            log.addEvent("warning", `Gap in results: expected seq ${run.lastSeq + 1}, got ${item.seq}.`);
          }
          run.lastSeq = item.seq;
        }
      }
      log.addResults(items);
    }
  } finally {
    // Acknowledge every batch, current or stale: the server's credit window waits for it.
    if (typeof ack === "function") ack();
  }
});

socket.on("recv", (value, ack) => {
  // Only the legacy results mode sends these; this page asks for batches. Keep the window open.
  try {
    if (run.state !== "idle") log.addResults([{ node: "", seq: null, value }]);
  } finally {
    if (typeof ack === "function") ack();
  }
});

socket.on("metrics", (metrics) => {
  if (!isCurrent(metrics.pipeline_id)) return;
  graph.update(metrics);
  table.update(metrics);
  if (run.state === "running") {
    setStatus(`Running ${run.pipelineId ?? ""} · ${fmtSeconds(metrics.elapsed)} · ${log.received} results`, "running");
  }
});

socket.on("pipeline_error", (error) => {
  if (error.event) return; // a refused request: the page asked with an ack, which said so
  const ours = error.pipeline_id ? isCurrent(error.pipeline_id) : run.state !== "idle";
  if (!ours) return;
  const where = error.node ? `node ${error.node}: ` : error.path ? `${error.path}: ` : "";
  const text = `${error.terminal ? "Error" : "Warning"} (${error.code}): ${where}${error.message}`;
  log.addEvent(error.terminal ? "error" : "warning", text);
  if (error.terminal) setStatus(text, "error");
  if (["invalid_spec", "invalid_payload"].includes(error.code)) showServerError(error);
});

socket.on("done", (done) => {
  if (!isCurrent(done.pipeline_id)) return;
  finishRun(done);
});

// ---- controls ---------------------------------------------------------------------------------

els.run.addEventListener("click", startRun);
els.cancel.addEventListener("click", cancelRun);
els.validate.addEventListener("click", () => validate(false));
els.format.addEventListener("click", () => {
  const parsed = editor.parse();
  if (!parsed.ok) {
    showSyntaxError(parsed.error);
    editor.revealError(parsed.error);
    return;
  }
  editor.setText(formatSpec(parsed.spec));
});
els.export.addEventListener("click", () => editor.exportFile());
els.import.addEventListener("click", () => els.importFile.click());
els.importFile.addEventListener("change", async () => {
  const file = els.importFile.files?.[0];
  els.importFile.value = "";
  if (!file) return;
  const previous = editor.text;
  try {
    const parsed = await editor.importFile(file);
    note(`Imported ${file.name}${parsed.ok ? "" : " (it has a JSON error)"}. `, previous);
  } catch (err) {
    note(`Cannot import ${file.name}: ${err.message}`);
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    startRun();
  }
});

// ---- start ------------------------------------------------------------------------------------

renderExamples(null);
if (!editor.restore()) editor.setText(formatSpec(EXAMPLES[0].build()));
checkSyntax();
setRunState("idle");
palette.load().then((entries) => {
  if (entries.length) renderExamples(new Set(entries.map((entry) => entry.name)));
});
