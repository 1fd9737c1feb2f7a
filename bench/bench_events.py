#!/usr/bin/env python3
"""Event-layer throughput on one core, each figure beside baselines measured in the same run.

All pipelines are run in turn, --repeats times (interleaved, so load that comes and goes on a
shared box touches all of them alike); each figure is the median rate, each ratio the median of
the ratios within one repetition. Rates are per second of this process's CPU time by default
(--clock cpu): everything runs on one core in one thread, so that is the wall time of an idle
core, and time slices other processes take on a shared box do not count (--clock wall counts
them). bench/ci_ratios.py checks the same ratios in CI.

Pipelines (packets -> decode -> windows on sensor time -> 224x224 frames):
  evt3 : ours (Evt3Decoder) vs the bare PyPI ``evt3`` stream decoder (goal: >= 0.7x)
  mono : ours (MonoDecoder) vs the goal of 150 Mev/s
  node input : the detector node's path for the same EVT3 packets as serialised EventPackets
        (EventInput.feed: CDR parse, sequence and time checks, decode into the windower, windows; frames)
Frame builders on the same windows: ours (coordinate rescale + compiled histogram) vs a
plain numpy bincount at sensor size + cv2.resize, and dv-processing's Accumulator.

Input: the real Gen4.1 EVT3 recording (../shared/data) tiled in time to --events events and
re-encoded, so the spatial structure is a real sensor's; without it, the simulated scene.
Results go to stdout and bench/results/bench_events.json.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from results_file import bench_parser, write_results

from event_clip_ros.apps.event_input import EventInput
from event_clip_ros.events.decoders import make_decoder
from event_clip_ros.events.encoders import encode_evt3, encode_mono
from event_clip_ros.events.frames import FrameConfig, build_frame
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.ros_cdr import EVENT_PACKET_TYPES, encode_event_packet
from event_clip_ros.events.simulate import SimulatorConfig, frames_to_events, moving_shapes
from event_clip_ros.events.types import SensorSize, concat_events
from event_clip_ros.events.windows import WindowConfig, Windower

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "evt3_gen41_1280x720.raw"


def load_events(n_target: int, real: bool = True) -> tuple[np.ndarray, SensorSize, str]:
    """Real events tiled in time up to ``n_target`` (simulated ones without the recording, or
    with ``real`` False)."""
    if real and REAL.exists():
        with open_events(REAL) as r:
            base, size, source = concat_events(list(r.chunks())), r.size, f"{REAL.name} tiled"
    else:
        size = SensorSize(1280, 720)
        base = concat_events(list(frames_to_events(moving_shapes(size, 20_000), size, SimulatorConfig(noise_rate_hz=5))))
        source = "simulated moving shapes, tiled"
    span = int(base["t"][-1] - base["t"][0]) + 1
    reps = max(1, -(-n_target // base.size))
    tiles = []
    for k in range(reps):
        tile = base.copy()
        tile["t"] += k * span
        tiles.append(tile)
    return np.concatenate(tiles)[:n_target], size, source


Packet = tuple[bytes, int]  # (payload, EventPacket.time_base in ns)


def evt3_packets(ev: np.ndarray, packet_bytes: int) -> list[Packet]:
    """One EVT3 byte stream cut every ``packet_bytes`` (as a driver cuts it, mid-state)."""
    data = encode_evt3(ev)
    return [(data[i : i + packet_bytes], 0) for i in range(0, len(data), packet_bytes)]


def mono_packets(ev: np.ndarray, packet_bytes: int) -> list[Packet]:
    """mono packets of 8-byte events, each with its own time_base (dt is 32-bit ns)."""
    step = packet_bytes // 8
    out = []
    for i in range(0, ev.size, step):
        part = ev[i : i + step]
        base_ns = int(part["t"][0]) * 1000
        out.append((encode_mono(part, base_ns), base_ns))
    return out


def interleaved_rates(runs: dict[str, Callable[[], int]], repeats: int, clock: str = "cpu") -> dict[str, list[float]]:
    """Items per second (``clock``: "cpu", this process's CPU time, or "wall") of each of ``runs``
    (which return how many items they processed), each run once per repetition, in turn."""
    timer = time.process_time if clock == "cpu" else time.perf_counter
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = timer()
            n = fn()
            rates[name].append(n / max(timer() - t0, 1e-9))
    return rates


def pipeline(encoding: str, pkts: list[Packet], size: SensorSize, windows: WindowConfig, frames: FrameConfig) -> Callable[[], int]:
    def run() -> int:
        dec = make_decoder(encoding, size)
        win = Windower(windows)
        n = 0
        for payload, time_base_ns in pkts:
            ev = dec.decode(payload, time_base_ns, alloc=win.reserve)  # decode into the window buffer
            n += ev.size
            for w in win.push(ev, ordered=True):  # a decoder's output is in time order
                build_frame(w.events, size, frames)
        for w in win.flush():
            build_frame(w.events, size, frames)
        return n

    return run


def node_input(messages: list[bytes], size: SensorSize, windows: WindowConfig, frames: FrameConfig) -> Callable[[], int]:
    """The node's input path over serialised EventPackets, with a frame built per window (EventInput.feed)."""

    def run() -> int:
        source = EventInput(EVENT_PACKET_TYPES[0], windows)
        for raw in messages:
            for pending in source.feed(raw):
                build_frame(pending.window.events, size, frames)
        for pending in source.flush():
            build_frame(pending.window.events, size, frames)
        return source.counters()["events"]

    return run


def evt3_decoders(pkts: list[Packet], size: SensorSize) -> tuple[Callable[[], int], Callable[[], int]]:
    """The bare PyPI ``evt3`` decode (the baseline) and ours over the same EVT3 packets; each returns its event count."""
    import evt3 as pypi_evt3

    def bare() -> int:
        d = pypi_evt3.Decoder(size.width, size.height)
        return sum(len(d.feed(p)) for p, _ in pkts)

    def ours() -> int:
        d = make_decoder("evt3", size)
        return sum(d.decode(p).size for p, _ in pkts)

    return bare, ours


def frame_builder(wins: list[np.ndarray], size: SensorSize, frames: FrameConfig) -> Callable[[], int]:
    """Our frame builder over ``wins``; returns their event count."""
    n_ev = sum(w.size for w in wins)

    def run() -> int:
        for w in wins:
            build_frame(w, size, frames)
        return n_ev

    return run


def numpy_frame_builder(wins: list[np.ndarray], size: SensorSize, frames: FrameConfig) -> Callable[[], int]:
    """The same frames in plain numpy + OpenCV (bincount, INTER_AREA resize, / (max + 1)): the baseline."""
    import cv2

    assert frames.out_size is not None  # FrameConfig(): 224 x 224
    h, wd = frames.out_size
    n_ev = sum(w.size for w in wins)

    def run() -> int:
        for w in wins:
            c = np.bincount(w["y"].astype(np.int64) * size.width + w["x"], minlength=size.width * size.height)
            img = cv2.resize(c.reshape(size.height, size.width).astype(np.float32), (wd, h), interpolation=cv2.INTER_AREA)
            np.divide(img, img.max() + 1, out=img)
        return n_ev

    return run


def main() -> None:
    ap = bench_parser(__doc__, "bench_events")
    ap.add_argument("--events", type=int, default=8_000_000, help="events in the test stream (default 8M)")
    ap.add_argument("--packet-kib", type=int, default=64, help="packet size in KiB (default 64)")
    ap.add_argument("--window-ms", type=float, default=10.0, help="window duration (default 10)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repetitions; medians are reported (default 5)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="time rates by CPU time (default) or wall clock")
    args = ap.parse_args()

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    ev, size, source = load_events(args.events)
    windows = WindowConfig(duration_us=round(args.window_ms * 1000))
    frames = FrameConfig()
    pk = args.packet_kib * 1024
    evt3_pkts = evt3_packets(ev, pk)
    mono_pkts = mono_packets(ev, pk)
    evt3_messages = [encode_event_packet(p, encoding="evt3", width=size.width, height=size.height, seq=i)
                     for i, (p, _) in enumerate(evt3_pkts)]
    print(f"input: {ev.size / 1e6:.1f} Mev from {source}, {size.width}x{size.height}, "
          f"{(ev['t'][-1] - ev['t'][0]) / 1e6:.2f} s, {args.packet_kib} KiB packets, "
          f"{args.window_ms:g} ms windows -> {frames.out_size} '{frames.representation}' frames, one core, "
          f"{args.clock} time")

    # warm up the compiled kernels
    pipeline("evt3", evt3_pkts[:4], size, windows, frames)()
    pipeline("mono", mono_pkts[:4], size, windows, frames)()

    bare_evt3, ours_evt3_decode = evt3_decoders(evt3_pkts, size)

    def ours_mono_decode() -> int:
        d = make_decoder("mono", size)
        return sum(d.decode(p, base).size for p, base in mono_pkts)

    rates = interleaved_rates({
        "bare PyPI evt3 decode (baseline)": bare_evt3,
        "ours evt3 decode": ours_evt3_decode,
        "ours evt3 decode+window+frame": pipeline("evt3", evt3_pkts, size, windows, frames),
        "node input (EventPacket) + frame": node_input(evt3_messages, size, windows, frames),
        "ours mono decode": ours_mono_decode,
        "ours mono decode+window+frame": pipeline("mono", mono_pkts, size, windows, frames),
    }, args.repeats, args.clock)
    r = {name: statistics.median(values) for name, values in rates.items()}
    base = rates["bare PyPI evt3 decode (baseline)"]
    ratio = {name: statistics.median(v / b for v, b in zip(values, base)) for name, values in rates.items()}
    print(f"\n{'pipeline (median of ' + str(args.repeats) + ')':<36} {'Mev/s':>8} {'vs bare evt3':>13}  (min-max)")
    for name, rate in r.items():
        lo, hi = min(rates[name]) / 1e6, max(rates[name]) / 1e6
        print(f"{name:<36} {rate / 1e6:8.1f} {ratio[name]:12.2f}x  ({lo:.0f}-{hi:.0f})")
    evt3_ratio = ratio["ours evt3 decode+window+frame"]
    mono_rate = r["ours mono decode+window+frame"] / 1e6
    print(f"goal evt3 pipeline >= 0.7x bare evt3: {evt3_ratio:.2f}x {'OK' if evt3_ratio >= 0.7 else 'MISSED'}")
    print(f"goal mono pipeline >= 150 Mev/s:      {mono_rate:.0f} Mev/s {'OK' if mono_rate >= 150 else 'MISSED'}")

    # frame builders on identical windows
    wins = [w.events for w in Windower(windows).push(ev)][:200]

    frame_runs = {"ours build_frame": frame_builder(wins, size, frames),
                  "numpy bincount + cv2.resize": numpy_frame_builder(wins, size, frames)}
    try:
        import dv_processing as dv

        stores = []
        for w in wins[:20]:  # building EventStores is per-event Python: keep it small, untimed
            s = dv.EventStore()
            for t, x, y, p in zip(w["t"].tolist(), w["x"].tolist(), w["y"].tolist(), w["p"].tolist()):
                s.push_back(t, x, y, bool(p))
            stores.append(s)
        n_dv = sum(w.size for w in wins[:20])

        def dv_accumulator() -> int:
            for s in stores:
                acc = dv.Accumulator((size.width, size.height))
                acc.accept(s)
                acc.generateFrame()
            return n_dv

        frame_runs["dv-processing Accumulator (EventStore given)"] = dv_accumulator
    except ImportError:
        pass
    f = {name: statistics.median(values) for name, values in interleaved_rates(frame_runs, args.repeats, args.clock).items()}
    ours = f["ours build_frame"]
    print(f"\n{'frame builder (same windows)':<44} {'Mev/s':>8} {'ours is':>9}")
    for name, rate in f.items():
        print(f"{name:<44} {rate / 1e6:8.1f} {ours / rate:8.2f}x")

    write_results({"input": source, "events": int(ev.size), "repeats": args.repeats, "clock": args.clock, "pipelines_ev_per_s": r,
                   "pipelines_vs_bare_evt3": ratio, "frames_ev_per_s": f}, args.out)


if __name__ == "__main__":
    main()
