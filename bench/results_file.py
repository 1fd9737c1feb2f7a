"""Where the benchmarks write their results (bench/results/, git-ignored)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


def write_results(results: object, out: str | Path) -> Path:
    """Write ``results`` as JSON to ``out`` (parents created) and say where."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")
    return out
