// Example graphs, one click away. The first is the original demo (examples/graphs/demo.json).

/** `count` random hex strings of `bytes` bytes, as the original demo client sent. */
export function randomHexStrings(count = 5, bytes = 8) {
  return Array.from({ length: count }, () =>
    Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join(""),
  );
}

/** @typedef {{id: string, title: string, description: string, build: () => object}} Example */

/** @type {Example[]} */
export const EXAMPLES = [
  {
    id: "demo",
    title: "Demo",
    description:
      "The original demo (examples/graphs/demo.json): 5 random hex strings; coro1 fans out to coro2 and coro3, out merges both, so 10 results.",
    build: () => ({
      nodes: {
        inp: { coro: "ProcessFunc.inputcoro", args: { strings_from_client: randomHexStrings(5) } },
        coro1: { coro: "ProcessFunc.coro1" },
        coro2: { coro: "ProcessFunc.coro2" },
        coro3: { coro: "ProcessFunc.coro3" },
        out: { coro: "ProcessFunc.outputcoro", properties: { aggregate_inputs: false } },
      },
      graph: {
        inp: ["coro1"],
        coro1: ["coro2", "coro3"],
        coro2: ["out"],
        coro3: ["out"],
        out: null,
      },
    }),
  },
  {
    id: "zip",
    title: "Zip numbers",
    description: "0..19 squared and plus one, zipped pairwise and summed: n² + n + 1.",
    build: () => ({
      nodes: {
        numbers: { coro: "Source.range", args: { stop: 20 } },
        square: { coro: "Number.square" },
        plus_one: { coro: "Number.add", args: { n: 1 } },
        sum: { coro: "Number.sum" },
      },
      graph: { numbers: ["square", "plus_one"], square: ["sum"], plus_one: ["sum"], sum: null },
    }),
  },
  {
    id: "text",
    title: "Text filter",
    description: "Lines of text, trimmed, kept when they mention 'pipe', upper-cased.",
    build: () => ({
      nodes: {
        lines: {
          coro: "Source.lines",
          args: {
            text: "  a pipeline is a graph  \nof coroutines\n joined by bounded queues \npipes and filters\n",
            skip_empty: true,
          },
        },
        strip: { coro: "Text.strip" },
        keep: { coro: "Filter.contains", args: { substring: "pipe", ignore_case: true } },
        shout: { coro: "Text.upper" },
      },
      graph: { lines: ["strip"], strip: ["keep"], keep: ["shout"], shout: null },
    }),
  },
  {
    id: "slow",
    title: "Slow stream",
    description:
      "2,000 numbers through a slow node (50 ms, 4 at a time): watch its input queue fill up, or Cancel.",
    build: () => ({
      nodes: {
        numbers: { coro: "Source.range", args: { stop: 2000 } },
        slow: {
          coro: "Flow.delay",
          args: { seconds: 0.05 },
          properties: { concurrency: 4, queue_size: 32 },
        },
        square: { coro: "Number.square" },
        out: { coro: "Flow.identity" },
      },
      graph: { numbers: ["slow"], slow: ["square"], square: ["out"], out: null },
    }),
  },
];

/** Registry names a spec uses. */
export function corosOf(spec) {
  return Object.values(spec.nodes ?? {}).map((node) => node.coro);
}
