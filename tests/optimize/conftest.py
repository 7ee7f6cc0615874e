"""The optimize tests run the simulated task of `benchmarks/simulated_task.py` (a scripted
executor whose right-answer rate depends on the flow's shape, a scripted optimizer)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
