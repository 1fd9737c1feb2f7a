"""Mutated copies of recordings and the invariants every reader must hold on them (used by test_reader_faults).

``python reader_fuzz.py FILE...`` reads each file in a fresh process and prints one
JSON line per file (the verdict of :func:`check_file`), so that a reader that
hangs inside C++ (where no Python signal reaches) cannot hang the test run: the
caller kills the process after a time limit and knows which file it was on
(a ``start`` line precedes each verdict).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

KINDS = ("truncate", "header", "splice", "duplicate", "delete", "bitflip", "garbage")


def mutate(data: bytes, rng: np.random.Generator, kind: str) -> bytes:
    """``data`` damaged the way real files are: cut, header bytes overwritten, spans inserted, repeated or
    deleted, bits flipped, a span overwritten with garbage."""
    n = len(data)
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[: int(rng.integers(0, n))])
    if kind == "header":
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(0, min(n, 512)))] = int(rng.integers(256))
        return bytes(b)
    span = int(rng.integers(1, max(2, n // 10)))
    src = int(rng.integers(0, n - span))
    if kind == "splice":
        dst = int(rng.integers(0, n))
        return bytes(b[:dst] + b[src : src + span] + b[dst:])
    if kind == "duplicate":
        return bytes(b[: src + span] + b[src : src + span] + b[src + span :])
    if kind == "delete":
        return bytes(b[:src] + b[src + span :])
    if kind == "bitflip":
        for _ in range(int(rng.integers(1, 21))):
            b[int(rng.integers(0, n))] ^= 1 << int(rng.integers(8))
        return bytes(b)
    g = min(span, 4096)  # garbage
    b[src : src + g] = rng.integers(0, 256, g, dtype=np.uint8).tobytes()
    return bytes(b)


def mutated_copies(source: Path, out_dir: Path, n: int, seed: int) -> list[Path]:
    """``n`` damaged copies of ``source`` in ``out_dir`` (kinds in turn, offsets from ``seed``)."""
    rng = np.random.default_rng(seed)
    data = source.read_bytes()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        path = out_dir / f"{i:03d}_{kind}{source.suffix}"
        path.write_bytes(mutate(data, rng, kind))
        paths.append(path)
    return paths


def check_file(path: Path) -> dict:
    """Read ``path`` with ``open_events`` and judge it: {"file", "status": "ok" | "error" | "crash",
    "problems": [invariant violations], "events", "seconds", "message"}."""
    from event_clip_ros.events.readers import open_events
    from event_clip_ros.events.readers.base import EventFileError

    start = time.monotonic()
    verdict: dict = {"file": str(path), "status": "ok", "problems": [], "events": 0, "message": ""}
    try:
        with open_events(path) as reader:
            width, height = reader.size.width, reader.size.height
            last = None
            n = 0
            for chunk in reader.chunks():
                if not chunk.size:
                    continue
                n += chunk.size
                t = chunk["t"]
                problems = verdict["problems"]
                if (chunk["x"] >= width).any() or (chunk["y"] >= height).any():
                    problems.append("x/y outside the sensor")
                if (chunk["p"] > 1).any():
                    problems.append("p not in {0, 1}")
                if (np.diff(t) < 0).any() or (last is not None and t[0] < last):
                    problems.append("time goes back")
                last = int(t[-1])
            if reader.stats.events != n:
                verdict["problems"].append(f"stats.events {reader.stats.events} != {n} yielded")
            verdict["events"] = n
    except EventFileError as exc:
        verdict.update(status="error", message=str(exc))
    except ValueError as exc:  # allowed when it is one clear line
        verdict.update(status="error", message=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 -- any other exception is what the fuzz looks for
        verdict.update(status="crash", message=f"{type(exc).__name__}: {exc}")
    if verdict["status"] == "error" and ("\n" in verdict["message"] or len(verdict["message"]) > 600):
        verdict["problems"].append("error message is not one clear line")
    verdict["problems"] = sorted(set(verdict["problems"]))
    verdict["seconds"] = round(time.monotonic() - start, 3)
    return verdict


def main(paths: list[str]) -> None:
    logging.disable(logging.WARNING)  # each reader warns once per damage kind: not wanted here
    for path in paths:
        print(json.dumps({"start": path}), flush=True)
        print(json.dumps(check_file(Path(path))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
