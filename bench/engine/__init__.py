"""Engine benchmark: ``pipelines`` against hand-written asyncio queues, aiostream and pypeln.

The package behind ``bench/engine_bench.py``: `workloads` (sizes, checks, stage functions),
`handwritten` (the asyncio references), `rivals` (aiostream, pypeln), `ours` (the engine),
`measure` (runs, W4 subprocesses), `report` (tables, targets), `main` (the command line).

Workloads (run interleaved in one process, several rounds, alternating implementations):

- W1  linear chain ``src -> x+1 -> x*2 -> sink`` of 200,000 ints.
- W2  diamond ``src -> a -> (b, c) -> sink``, the sink merging both branches (the original demo's
      shape: ``aggregate_inputs: false``), 100,000 ints, so the sink sees 200,000 items.
- W2z the same diamond with the default zip sink (``aggregate_inputs: true``): one ``(b, c)``
      pair per item.
- W3  three IO-bound stages of ``asyncio.sleep(0.01)``, concurrency 100, 5,000 items; reported as
      a share of the ideal wall time ``N * 0.01 / 100 + 0.02`` s.
- W4  peak RSS growth while 1,000,000 items of 100 bytes go through a slow sink (a fresh
      subprocess per implementation, RSS sampled every 2 ms).

Every run checks the count and the sum of what reached the sink, so nothing wins by dropping
items. Run ``python bench/engine_bench.py`` (``--quick`` for small inputs, ``--help`` for more).
"""


from .main import main

__all__ = ["main"]
