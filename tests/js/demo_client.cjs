// The original demo, as a browser page would run it, in node: socket.io-client (from
// node_modules, pinned by package-lock.json) emits `process_msg` with a graph spec and collects
// every `recv`, acknowledging each. Prints {"results": [...], "done": {...}} as JSON on stdout.
// usage: node demo_client.cjs URL TRANSPORT SPEC_FILE [TOKEN]
"use strict";
const fs = require("fs");
const { io } = require("socket.io-client");

const [url, transport, specFile, token] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specFile, "utf8"));
const socket = io(url, {
  transports: [transport],
  reconnection: false,
  auth: token ? { token } : undefined,
});
const results = [];
const timer = setTimeout(() => {
  console.error(`timeout; ${results.length} results so far`);
  process.exit(3);
}, 30000);

socket.on("connect", () => socket.emit("process_msg", spec));
socket.on("recv", (value, ack) => {
  results.push(value);
  if (typeof ack === "function") ack();
});
socket.on("pipeline_error", (err) => console.error("pipeline_error", JSON.stringify(err)));
socket.on("done", (done) => {
  clearTimeout(timer);
  const transportUsed = socket.io.engine.transport.name;
  console.log(JSON.stringify({ results, done, transport: transportUsed }));
  socket.close();
});
socket.on("connect_error", (err) => {
  console.error("connect_error", err.message);
  process.exit(2);
});
