"""Engine benchmark: ``pipelines`` against hand-written asyncio queues, aiostream and pypeln.

The thin entry of the `bench/engine/` package: the workloads are in `engine/workloads.py`, the
hand-written references in `engine/handwritten.py`, the other libraries in `engine/rivals.py`,
our engine's variants in `engine/ours.py`, the runs in `engine/measure.py`, the tables and the
targets in `engine/report.py`. Run ``python bench/engine_bench.py`` (``--quick`` for small
inputs, ``--help`` for more).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine.main import main  # noqa: E402 - after the path the package is found on

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
