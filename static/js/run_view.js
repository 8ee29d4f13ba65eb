// The run: its state in one place, the socket events that change it, and what they show (the
// canvas counters, the metrics tables, the results log, the done line).
import { ackResults, request } from "./connection.js";
import { fmtSeconds } from "./dom.js";

const RUN_OPTIONS = { results: "batch", window: 256, metrics: true, metrics_interval: 0.25 };
export const ANSWER_TIMEOUT_MS = 15000;

export class RunView {
  /**
   * @param {{els: Record<string, any>, graph: any, table: any, log: any, problems: any,
   *          onState: (state: string) => void}} parts
   */
  constructor({ els, graph, table, log, problems, onState }) {
    Object.assign(this, { socket: null, els, graph, table, log, problems, onState });
    /** idle | starting | running | cancelling */
    this.state = "idle";
    this.pipelineId = null;
    this.outputs = [];
    this.lastSeq = -1;
    this.shown = false;
    this.connected = false;
  }

  setStatus(text, tone = "") {
    this.els.runStatus.textContent = text;
    this.els.runStatus.dataset.state = tone;
  }

  setState(state) {
    this.state = state;
    const busy = state !== "idle";
    this.els.run.disabled = busy || !this.connected;
    this.els.cancel.disabled = !(state === "running" || state === "starting");
    document.body.dataset.run = state;
    this.onState(state);
  }

  setConnected(connected) {
    const was = this.connected;
    this.connected = connected;
    if (was && !connected && this.state !== "idle") {
      // The server cancels a session's pipeline when its client leaves.
      this.log.addEvent("error", "Connection lost: the server stops the pipeline of a client that leaves.");
      this.setStatus("Connection lost; the run was stopped", "error");
      this.setState("idle");
    } else this.setState(this.state);
  }

  isCurrent(pipelineId) {
    if (this.state === "idle") return false;
    if (this.pipelineId === null) return true; // events may come before the ack answer
    return pipelineId === this.pipelineId;
  }

  showTopology(nodes, edges, outputs) {
    this.shown = true;
    const list = (nodes ?? []).map((n) => (typeof n === "string" ? { name: n } : n));
    // The canvas already shows the spec; only a different topology (never expected) redraws it.
    const names = new Set(this.graph.nodeIds.keys());
    if (list.length !== names.size || list.some((n) => !names.has(n.name))) this.graph.setTopology(list, edges ?? []);
    this.table.setTopology(list, edges ?? []);
    for (const name of outputs ?? []) this.log.addNodeOption(name);
  }

  /** Run a parsed spec. */
  async start(spec) {
    if (this.state !== "idle" || !this.connected) return;
    Object.assign(this, { pipelineId: null, outputs: [], lastSeq: -1, shown: false });
    this.setState("starting");
    this.setStatus("Starting…", "running");
    this.els.doneLine.hidden = true;
    this.problems.clearRun();
    this.log.reset();
    this.graph.reset();
    let answer;
    try {
      answer = await request(this.socket, "process_msg", ANSWER_TIMEOUT_MS, spec, RUN_OPTIONS);
    } catch {
      if (this.state === "starting") {
        this.setState("idle");
        this.setStatus("The server did not answer", "error");
      }
      return;
    }
    if (!answer?.ok) {
      this.setState("idle");
      const error = answer?.error ?? { code: "error", message: "no answer" };
      const count = error.errors?.length ?? 1;
      this.setStatus(`Not run: ${count > 1 ? `${count} problems` : error.message ?? error.code} (see below)`, "error");
      this.problems.refused(error, spec);
      return;
    }
    if (this.state === "idle") return; // done already came (a very short run)
    this.pipelineId = answer.pipeline_id;
    this.outputs = answer.outputs ?? [];
    if (this.state === "starting") {
      this.setState("running");
      this.setStatus(`Running ${answer.pipeline_id}…`, "running");
    }
    // pipeline_started may have come first, and metrics after it: do not redraw over them.
    if (!this.shown) this.showTopology(answer.nodes, answer.edges, answer.outputs);
    this.problems.clear();
  }

  async cancel() {
    if (!(this.state === "running" || this.state === "starting")) return;
    this.setState("cancelling");
    this.setStatus("Cancelling…", "running");
    try {
      const answer = await request(this.socket, "cancel", ANSWER_TIMEOUT_MS, this.pipelineId ? { pipeline_id: this.pipelineId } : {});
      if (!answer?.ok && answer?.error?.code === "not_running" && this.state === "cancelling") {
        this.setState("idle");
        this.setStatus("Nothing was running", "");
      }
    } catch {
      if (this.state === "cancelling") this.setStatus("The server did not answer the cancel", "error");
    }
  }

  /** Node states once the run is over (done never leaves a node "running"). */
  finalStates(done) {
    const shown = this.table.statuses();
    const states = {};
    for (const name of Object.keys({ ...shown, ...(done.nodes ?? {}) })) {
      const current = shown[name];
      if (done.error?.node === name) states[name] = "failed";
      else if (["done", "failed", "cancelled"].includes(current)) states[name] = current;
      else states[name] = done.status === "completed" ? "done" : "cancelled";
    }
    return states;
  }

  finish(done) {
    const nodes = done.nodes ?? {};
    const states = this.finalStates(done);
    this.graph.finish(nodes, states);
    this.table.finish(nodes, states);
    // A completed pipeline has nothing left in flight or queued (the last metrics event may
    // predate the end, or a short run may have had none).
    if (done.status === "completed") this.table.drained();
    const errors = Object.values(nodes).reduce((sum, n) => sum + (n.errors ?? 0), 0);
    const count = done.results ?? this.log.received;
    const parts = [`Done: ${done.status}`, `${count} result${count === 1 ? "" : "s"}`, `${Object.keys(nodes).length} nodes`, fmtSeconds(done.elapsed)];
    if (errors) parts.push(`${errors} item error${errors === 1 ? "" : "s"}`);
    if (done.skipped) parts.push(`${done.skipped} result${done.skipped === 1 ? "" : "s"} not sendable`);
    if (done.error) parts.push(`${done.error.code}: ${done.error.message}`);
    const text = parts.join(" · ");
    this.els.doneLine.textContent = text;
    this.els.doneLine.dataset.status = done.status;
    this.els.doneLine.hidden = false;
    this.log.addEvent(done.status === "failed" ? "error" : "event", text);
    if (this.log.received !== count) this.log.addEvent("warning", `This page received ${this.log.received} of the ${count} results.`);
    const label = { completed: "Completed", cancelled: "Cancelled", failed: "Failed" }[done.status] ?? done.status;
    this.setStatus(`${label} in ${fmtSeconds(done.elapsed)}`, done.status);
    this.setState("idle");
  }

  /** Follow the events of the socket. */
  attach(socket) {
    this.socket = socket;
    const { log } = this;
    socket.on("pipeline_started", (info) => {
      if (!this.isCurrent(info.pipeline_id)) return;
      this.pipelineId = info.pipeline_id;
      this.outputs = info.outputs ?? [];
      if (this.state === "starting") this.setState("running");
      if (!this.shown) this.showTopology(info.nodes, info.edges, info.outputs);
      log.addEvent("event", `Pipeline ${info.pipeline_id} started: ${(info.nodes ?? []).length} nodes, outputs ${(info.outputs ?? []).join(", ")}.`);
      if (this.state === "running") this.setStatus(`Running ${info.pipeline_id}…`, "running");
    });
    socket.on("results", (payload, ack) => {
      try {
        if (this.isCurrent(payload?.pipeline_id)) {
          const items = Array.isArray(payload.items) ? payload.items : [];
          for (const item of items) {
            if (typeof item.seq !== "number") continue;
            if (item.seq !== this.lastSeq + 1) log.addEvent("warning", `Gap in results: expected seq ${this.lastSeq + 1}, got ${item.seq}.`);
            this.lastSeq = item.seq;
          }
          log.addResults(items);
        }
      } finally {
        // Acknowledge every batch, current or stale: the server's credit window waits for it.
        ackResults(ack, payload);
      }
    });
    socket.on("recv", (value, ack) => {
      // Only the legacy results mode sends these; this page asks for batches. Keep the window open.
      try {
        if (this.state !== "idle") log.addResults([{ node: "", seq: null, value }]);
      } finally {
        if (typeof ack === "function") ack();
      }
    });
    socket.on("metrics", (metrics) => {
      if (!this.isCurrent(metrics.pipeline_id)) return;
      this.graph.update(metrics);
      this.table.update(metrics);
      if (this.state === "running") this.setStatus(`Running ${this.pipelineId ?? ""} · ${fmtSeconds(metrics.elapsed)} · ${log.received} results`, "running");
    });
    socket.on("pipeline_error", (error) => {
      if (error.event) return; // a refused request: the page asked with an ack, which said so
      const ours = error.pipeline_id ? this.isCurrent(error.pipeline_id) : this.state !== "idle";
      if (!ours) return;
      const where = error.node ? `node ${error.node}: ` : error.path ? `${error.path}: ` : "";
      const text = `${error.terminal ? "Error" : "Warning"} (${error.code}): ${where}${error.message}`;
      log.addEvent(error.terminal ? "error" : "warning", text);
      if (error.terminal) this.setStatus(text, "error");
    });
    socket.on("done", (done) => {
      if (this.isCurrent(done.pipeline_id)) this.finish(done);
    });
  }
}
