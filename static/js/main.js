// The page: one graph model behind the canvas, the node form and the JSON view; the palette,
// checks, sharing and the run (docs/page.md, docs/protocol.md).
import { showAnnouncements } from "./announce.js";
import { CanvasEditor } from "./canvas_edit.js";
import { openConnection, request } from "./connection.js";
import { byId, h } from "./dom.js";
import { EXAMPLES, corosOf } from "./examples.js";
import { GraphModel, edgesOf, emptySpec, nodesOf } from "./graph_model.js";
import { GraphView } from "./graph_view.js";
import { MetricsTable } from "./metrics_table.js";
import { NodeForm } from "./node_form.js";
import { Palette } from "./palette.js";
import { ProblemsView } from "./problems.js";
import { ResultsLog } from "./results_log.js";
import { ANSWER_TIMEOUT_MS, RunView } from "./run_view.js";
import { takeLinkedSpec, wireFileControls } from "./share.js";
import { SpecEditor, formatSpec } from "./spec_editor.js";

const VALIDATE_DELAY_MS = 700;
const SYNTAX_DELAY_MS = 250;

const els = Object.fromEntries(
  ["run", "cancel", "run-status", "validate", "format", "import", "import-file", "export", "export-yaml", "share",
    "share-box", "share-url", "share-note", "undo", "redo", "new", "layout", "fit", "delete", "examples", "editor",
    "editor-note", "spec-errors", "run-problems", "done-line", "connection", "connection-text", "log-node"]
    .map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), byId(id)]),
);

// The link's graph is read before the connection reads (and clears) a token in the address.
const linked = takeLinkedSpec();
let specSchema = null;
let validateSeq = 0;
let validateTimer = 0;
let lastChecked = null; // the text of the last automatic check, to not ask twice
let syntaxTimer = 0;

const model = new GraphModel();
const editor = new SpecEditor(els.editor, { onChange: textChanged });
const graph = new GraphView(byId("graph"));
const table = new MetricsTable(byId("metrics"), byId("queues"));
const log = new ResultsLog({
  list: byId("log"), node: els.logNode, text: byId("log-text"), pause: byId("log-pause"), clear: byId("log-clear"), summary: byId("log-summary"),
});
const palette = new Palette(byId("palette"), byId("palette-filter"), byId("palette-count"), (entry) => addNode(entry));
const canvas = new CanvasEditor(graph, {
  onDrop: (coro, position) => {
    const entry = palette.get(coro);
    if (entry) addNode(entry, position);
  },
  onConnect: (from, to) => attempt(() => model.connect(from, to), `Connected ${from} → ${to}.`),
  onDelete: (nodes, edges) => removeSelection(nodes, edges),
  onSelect: selected,
});
const problems = new ProblemsView(
  { list: els.specErrors, textarea: els.editor, runList: els.runProblems },
  { reveal: (path) => editor.revealPath(path), revealError: (e) => editor.revealError(e), onGraph: (marks) => canvas.showProblems(marks) },
);
const form = new NodeForm(byId("node-form"), model, {
  entry: (coro) => palette.get(coro),
  properties: () => specSchema?.$defs?.NodeProperties,
  rename: (from, to) => {
    graph.renamePosition(from, to);
    model.rename(from, to);
    canvas.select(to);
  },
  connect: (from, to) => attempt(() => model.connect(from, to), `Connected ${from} → ${to}.`),
  remove: (name) => removeSelection([name], []),
});

// Exported for the page's tests (tests/test_editor.py, tests/test_page_remote.py), which read
// where and what things are drawn.
export { canvas, graph, model };

function note(text, undo = false) {
  els.editorNote.replaceChildren(text);
  if (undo) els.editorNote.append(" ", h("button", { type: "button", class: "link", onclick: () => model.undo() && note("Undone.") }, "Undo"));
}

function attempt(fn, done) {
  try {
    fn();
    if (done) note(done, true);
  } catch (err) {
    note(`Not done: ${err.message}.`);
  }
}

// ---- the model and its three views ----------------------------------------------------------

model.onChange((source) => {
  if (source !== "text") editor.setText(formatSpec(model.spec));
  graph.setTopology(nodesOf(model.spec), edgesOf(model.spec));
  els.undo.disabled = !model.canUndo;
  els.redo.disabled = !model.canRedo;
  clearTimeout(validateTimer);
  validateTimer = setTimeout(() => validate(true), VALIDATE_DELAY_MS);
});

function textChanged() {
  clearTimeout(syntaxTimer);
  syntaxTimer = setTimeout(checkSyntax, SYNTAX_DELAY_MS);
}

function checkSyntax() {
  const parsed = editor.parse();
  if (!parsed.ok) {
    problems.syntax(parsed.error);
    return;
  }
  if (els.specErrors.querySelector(".syntax-error")) problems.clear();
  if (!model.set(parsed.spec, "text")) {
    clearTimeout(validateTimer);
    validateTimer = setTimeout(() => validate(true), VALIDATE_DELAY_MS);
  }
}

/** Replace the whole graph (New, an example, an import, a link): laid out afresh, one undo step. */
function replaceGraph(spec, message) {
  graph.positions.clear();
  canvas.cy.$(":selected").unselect();
  if (model.set(spec, "replace")) note(message, true);
  else note(message);
  graph.fit();
}

/** The spec the graph operations start from: the model, unless the JSON text does not parse. */
function editable() {
  if (!editor.text.trim()) {
    model.set(emptySpec(), "replace");
    return true;
  }
  const parsed = editor.parse();
  if (parsed.ok) return true;
  problems.syntax(parsed.error);
  note("Fix the JSON first (or start a New graph).");
  return false;
}

function addNode(entry, position = null) {
  if (!editable()) return;
  graph.nextPosition = position;
  try {
    const name = model.addNode(entry);
    note(`Added node "${name}" (${entry.name}); drag from its right dot to connect it.`, true);
    canvas.select(name);
  } catch (err) {
    note(`Cannot add ${entry.name}: ${err.message}`);
  } finally {
    graph.nextPosition = null;
  }
}

function removeSelection(nodes, edges) {
  if (!editable()) return;
  if (nodes.length) attempt(() => model.removeNodes(nodes), `Deleted ${nodes.join(", ")}.`);
  else attempt(() => model.disconnect(edges), `Removed ${edges.map(([a, b]) => `${a} → ${b}`).join(", ")}.`);
}

function selected(selection) {
  els.delete.disabled = !selection;
  form.show(selection?.node ?? null);
  // After (or during) a run, choosing a node shows only its results.
  if (runView.state !== "idle" || log.received > 0) {
    const name = selection?.node ?? "";
    if (name) log.addNodeOption(name);
    els.logNode.value = name;
    els.logNode.dispatchEvent(new Event("change"));
  }
}

// ---- checks -----------------------------------------------------------------------------------

/** Ask the server whether the spec is valid; quiet: do not report a busy or rate-limited server. */
async function validate(quiet = false) {
  const parsed = editor.parse();
  if (!parsed.ok) {
    problems.syntax(parsed.error);
    if (!quiet) editor.revealError(parsed.error);
    return;
  }
  if (!runView.connected) return;
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
  if (answer?.ok) problems.valid(answer.outputs);
  else if (!(quiet && ["rate_limited", "busy"].includes(answer?.error?.code))) problems.server(answer?.error, parsed.spec);
}

// ---- running ----------------------------------------------------------------------------------

const runView = new RunView({
  els: { run: els.run, cancel: els.cancel, runStatus: els.runStatus, doneLine: els.doneLine },
  graph, table, log, problems,
  onState: () => { els.validate.disabled = !runView.connected; },
});
const socket = openConnection((state, detail) => {
  els.connection.dataset.state = state;
  els.connectionText.textContent = detail;
  const was = runView.connected;
  runView.setConnected(state === "connected");
  if (!was && runView.connected) checkSyntax();
}, byId("token-button"));
runView.attach(socket);
showAnnouncements(socket, {
  box: byId("announce"), message: byId("announce-message"), from: byId("announce-from"), dismiss: byId("announce-dismiss"),
});

function startRun() {
  const parsed = editor.parse();
  if (!parsed.ok) {
    problems.syntax(parsed.error);
    editor.revealError(parsed.error);
    runView.setStatus("Not run: fix the JSON first", "error");
    return;
  }
  // The run shows its own state: a pending check must not redraw over it.
  clearTimeout(syntaxTimer);
  clearTimeout(validateTimer);
  validateSeq++;
  editor.save();
  model.set(parsed.spec, "text");
  runView.start(parsed.spec);
}

// ---- controls ---------------------------------------------------------------------------------

const on = (el, fn) => el.addEventListener("click", fn);
on(els.run, startRun);
on(els.cancel, () => runView.cancel());
on(els.validate, () => validate(false));
on(els.format, () => {
  const parsed = editor.parse();
  if (parsed.ok) editor.setText(formatSpec(parsed.spec));
  else {
    problems.syntax(parsed.error);
    editor.revealError(parsed.error);
  }
});
on(els.new, () => replaceGraph(emptySpec(), "New graph: drag coroutines onto the canvas."));
on(els.undo, () => model.undo());
on(els.redo, () => model.redo());
on(els.layout, () => graph.autoLayout());
on(els.fit, () => graph.fit());
on(els.delete, () => canvas.deleteSelected());
wireFileControls(els, {
  spec: () => model.spec,
  exportJson: () => editor.exportFile(),
  importJson: async (file) => {
    graph.positions.clear();
    const parsed = await editor.importFile(file);
    if (parsed.ok) checkSyntax();
    note(`Imported ${file.name}${parsed.ok ? "" : " (it has a JSON error)"}.`, parsed.ok);
  },
  replace: replaceGraph,
  note,
});
document.addEventListener("keydown", (event) => {
  const mod = event.ctrlKey || event.metaKey;
  if (!mod) return;
  if (event.key === "Enter") {
    event.preventDefault();
    startRun();
    return;
  }
  // Text fields keep their own undo; everywhere else it is the graph's.
  if (event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement) return;
  const key = event.key.toLowerCase();
  if (key === "z" || key === "y") {
    event.preventDefault();
    if (key === "y" || event.shiftKey) model.redo();
    else model.undo();
  }
});

function renderExamples(known) {
  els.examples.replaceChildren(
    ...EXAMPLES.map((example) => {
      const missing = known ? corosOf(example.build()).filter((coro) => !known.has(coro)) : [];
      return h("button", {
        type: "button",
        dataset: { example: example.id },
        title: missing.length ? `Not on this server: ${missing.join(", ")}` : example.description,
        disabled: missing.length > 0,
        onclick: () => replaceGraph(example.build(), `Loaded the "${example.title}" example.`),
      }, example.title);
    }),
  );
}

// ---- start ------------------------------------------------------------------------------------

renderExamples(null);
if (linked?.spec) {
  graph.positions.clear();
  model.set(linked.spec, "replace", { record: false });
  note("Opened the graph of the link.");
} else {
  if (linked?.error) note(`Not opened: ${linked.error}.`);
  if (!editor.restore()) editor.setText(formatSpec(EXAMPLES[0].build()));
  const parsed = editor.parse();
  if (parsed.ok) model.set(parsed.spec, "text", { record: false });
  else problems.syntax(parsed.error);
}
runView.setState("idle");
fetch("api/schema").then((r) => r.json()).then((schema) => {
  specSchema = schema;
  form.render();
}).catch(() => {});
palette.load().then((entries) => {
  if (entries.length) renderExamples(new Set(entries.map((entry) => entry.name)));
  form.render();
});
