"""Where the benchmarks write their results (bench/results/, git-ignored), and their common command line."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


def write_results(results: object, out: str | Path) -> Path:
    """Write ``results`` as JSON to ``out`` (parents created) and say where."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")
    return out


def bench_parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser: its module docstring as the description, ``--out`` (default
    ``bench/results/<name>.json``); the benchmark adds its own options."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(RESULTS_DIR / f"{name}.json"), help="results file (default: %(default)s)")
    return ap


def best_rate(fn: Callable[[], int], repeats: int) -> float:
    """Best-of-``repeats`` items per second of ``fn`` (which returns how many items it processed)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best
