#!/usr/bin/env python3
"""Noise filters before windowing: speed beside the decoder, removal on the real recordings, pictures.

Speed, one core, on the real Gen4.1 EVT3 recording (../shared/data) tiled in time to --events events
and cut into the packets a driver sends (64 KiB of EVT3: ~16k events), each figure in Mev/s beside
the decoder measured in the same run (bare PyPI ``evt3`` and ours, as bench/bench_events.py):

  background activity (2 ms support), three implementations giving identical masks (checked):
    ours, compiled (numba, event_clip_ros/events/noise.py: what the project uses)
    ours, vectorised numpy (below: per packet, 8 searchsorted look-ups of each neighbour's latest event)
    dv-processing's dv.noise.BackgroundActivityNoiseFilter fed from numpy (EventStore.push_back per event,
      filter, .numpy()), on the first --dv-events events: its Python API has no bulk numpy import;
      and its filter alone on an EventStore built beforehand (untimed)
  hot pixels, both filters (ours, compiled)
  decode + filters + windows + frames against decode + windows + frames (the pipeline's cost of filtering)

Removal: the fraction of events each filter removes on every recording of ../shared/data (settings of
``--denoise``: hot pixels learned over 1 s, 2 ms support); the background filter alone after its
2 ms warm-up (no event can have support before), and with 10 ms support.
Pictures (``--pictures DIR``): per recording, its first window as the model's frame before and after
filtering and as the view for people (event-clip render --view), side by side, small PNGs.
Results go to stdout and bench/results/bench_noise.json.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import cv2
import numpy as np
from bench_events import evt3_decoders, evt3_packets, load_events
from PIL import Image
from results_file import bench_parser, best_rate, write_results

from event_clip_ros.events.decoders import make_decoder
from event_clip_ros.events.frames import FrameConfig, build_frame, frame_to_uint8
from event_clip_ros.events.noise import NoiseFilter, NoiseFilterConfig
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.types import SensorSize, concat_events
from event_clip_ros.events.view import ViewConfig, build_view
from event_clip_ros.events.windows import WindowConfig, Windower

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BA = NoiseFilterConfig(background_activity_us=2000)
HOT = NoiseFilterConfig(hot_pixel_learn_us=1_000_000)
BOTH = NoiseFilterConfig(background_activity_us=2000, hot_pixel_learn_us=1_000_000)  # --denoise
_NEVER = -(1 << 62)
_NEIGHBOURS = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dx or dy]


class NumpyBackgroundActivity:
    """The background-activity filter in vectorised numpy, state carried between packets (the candidate
    the compiled kernel was measured against; same masks as dv-processing and ours)."""

    def __init__(self, size: SensorSize, support_us: int) -> None:
        self.size, self.support_us = size, support_us
        self.surface = np.full(size.width * size.height, _NEVER, dtype=np.int64)

    def keep(self, events: np.ndarray) -> np.ndarray:
        n, width, height = events.shape[0], self.size.width, self.size.height
        t = events["t"]
        x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
        pixel = y * width + x
        order = np.argsort(pixel, kind="stable")  # by pixel, stream order within a pixel
        keys = pixel[order] * n + order
        index = np.arange(n, dtype=np.int64)
        supported = np.zeros(n, dtype=bool)
        for dx, dy in _NEIGHBOURS:
            nx, ny = x + dx, y + dy
            inside = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
            q = np.where(inside, ny * width + nx, 0)
            pos = np.searchsorted(keys, q * n + index) - 1  # the neighbour's latest event before this one
            prior = order[np.maximum(pos, 0)]
            in_packet = (pos >= 0) & (pixel[prior] == q)
            last = np.where(in_packet, t[prior], self.surface[q])
            supported |= inside & (t - last < self.support_us)
        sorted_pixel = pixel[order]
        latest = order[np.append(sorted_pixel[1:] != sorted_pixel[:-1], True)]  # each pixel's last event
        self.surface[pixel[latest]] = t[latest]
        return supported


def dv_background_activity(events: np.ndarray, size: SensorSize, support_us: int) -> np.ndarray:
    """dv-processing's filter fed from numpy: the kept events as dv's numpy array."""
    import dv_processing as dv

    store = dv.EventStore()
    push = store.push_back
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        push(t, x, y, bool(p))
    dv_filter = dv.noise.BackgroundActivityNoiseFilter((size.width, size.height), datetime.timedelta(microseconds=support_us))
    dv_filter.accept(store)
    return dv_filter.generateEvents().numpy()


def read(path: Path) -> tuple[np.ndarray, SensorSize]:
    with open_events(path) as reader:
        return concat_events(list(reader.chunks())), reader.size


def speed(args) -> dict:
    ev, size, source = load_events(args.events)
    pk = evt3_packets(ev, args.packet_kib * 1024)
    decoder = make_decoder("evt3", size)
    packets = [decoder.decode(p) for p, _ in pk]  # the decoded packets the filters see
    print(f"input: {ev.size / 1e6:.1f} Mev from {source}, {size.width}x{size.height}, {len(packets)} packets of "
          f"{args.packet_kib} KiB (~{ev.size // len(packets)} events), one core")
    bare_evt3, ours_decode = evt3_decoders(pk, size)

    def compiled(config: NoiseFilterConfig):
        def run() -> int:
            f = NoiseFilter(config)
            return sum(f.keep(e, size).size for e in packets)
        return run

    def vectorised() -> int:
        f = NumpyBackgroundActivity(size, BA.background_activity_us)
        return sum(f.keep(e).size for e in packets)

    dv_events = ev[: args.dv_events]

    def dv_fed_from_numpy() -> int:
        dv_background_activity(dv_events, size, BA.background_activity_us)
        return dv_events.size

    import dv_processing as dv

    store = dv.EventStore()  # built once, untimed: dv-processing's filter alone, on its own container
    for t, x, y, p in zip(dv_events["t"].tolist(), dv_events["x"].tolist(), dv_events["y"].tolist(), dv_events["p"].tolist()):
        store.push_back(t, x, y, bool(p))

    def dv_filter_only() -> int:
        f = dv.noise.BackgroundActivityNoiseFilter((size.width, size.height),
                                                   datetime.timedelta(microseconds=BA.background_activity_us))
        f.accept(store)
        f.generateEvents()
        return dv_events.size

    windows, frames = WindowConfig(duration_us=10_000), FrameConfig()

    def pipeline(config: NoiseFilterConfig | None):
        def run() -> int:
            d, win = make_decoder("evt3", size), Windower(windows)
            f = NoiseFilter(config) if config is not None else None
            n = 0
            for payload, _ in pk:
                e = d.decode(payload)
                n += e.size
                for w in win.push(e, None if f is None else f.keep(e, size)):
                    build_frame(w.events, size, frames)
            for w in win.flush():
                build_frame(w.events, size, frames)
            return n
        return run

    # warm-up (compiled kernels) and the correctness check: three implementations, one mask
    compiled(BA)()
    ours_filter = NoiseFilter(BA)
    ours_mask = np.concatenate([ours_filter.keep(e, size) for e in packets[:40]])
    numpy_filter = NumpyBackgroundActivity(size, BA.background_activity_us)
    numpy_mask = np.concatenate([numpy_filter.keep(e) for e in packets[:40]])
    head = concat_events(packets[:40])[: args.dv_events]
    theirs = dv_background_activity(head, size, BA.background_activity_us)
    kept = head[ours_mask[: head.size]]
    agree = {"vectorised numpy": bool(np.array_equal(ours_mask, numpy_mask)),
             "dv-processing": bool(theirs.size == kept.size and np.array_equal(theirs["timestamp"], kept["t"])
                                   and np.array_equal(theirs["x"], kept["x"]) and np.array_equal(theirs["y"], kept["y"]))}
    print(f"same kept events as ours (compiled): {agree}")

    r = {
        "bare PyPI evt3 decode (baseline)": best_rate(bare_evt3, args.repeats),
        "ours evt3 decode": best_rate(ours_decode, args.repeats),
        "background activity: ours, compiled": best_rate(compiled(BA), args.repeats),
        "background activity: ours, vectorised numpy": best_rate(vectorised, args.repeats),
        "background activity: dv-processing from numpy": best_rate(dv_fed_from_numpy, max(1, args.repeats - 1)),
        "background activity: dv-processing, EventStore given": best_rate(dv_filter_only, args.repeats),
        "hot pixels: ours, compiled": best_rate(compiled(HOT), args.repeats),
        "both filters: ours, compiled": best_rate(compiled(BOTH), args.repeats),
        "decode + window + frame": best_rate(pipeline(None), args.repeats),
        "decode + both filters + window + frame": best_rate(pipeline(BOTH), args.repeats),
    }
    base, decode = r["bare PyPI evt3 decode (baseline)"], r["ours evt3 decode"]
    print(f"\n{'stage (same packets)':<54} {'Mev/s':>8} {'vs bare evt3':>13} {'vs our decode':>14}")
    for name, rate in r.items():
        print(f"{name:<54} {rate / 1e6:8.1f} {rate / base:12.2f}x {rate / decode:13.2f}x")
    cost = r["decode + window + frame"] / r["decode + both filters + window + frame"] - 1
    print(f"filtering adds {cost:.0%} to the time of decode + window + frame")
    return {"input": source, "events": int(ev.size), "ev_per_s": r, "agree_with_ours": agree, "pipeline_cost": cost}


def removal() -> dict:
    """Per recording: what --denoise removes, and the background filter alone after its warm-up and at 10 ms."""
    out = {}
    print(f"\n{'recording':<26} {'events':>8} {'ms':>5} {'hot px':>6} {'hot rm':>7} {'bg rm':>7} {'removed':>8}"
          f" {'bg rm after 2 ms':>17} {'bg rm, 10 ms':>13}")
    for path in sorted(DATA.glob("*")):
        if path.suffix not in (".raw", ".aedat4", ".dat", ".bin"):
            continue
        events, size = read(path)
        f = NoiseFilter(BOTH)
        f.keep(events, size)
        s = f.stats
        ba_keep = NoiseFilter(BA).keep(events, size)
        settled = events["t"] >= events["t"][0] + BA.background_activity_us  # no support is possible before
        wide_keep = NoiseFilter(NoiseFilterConfig(background_activity_us=10_000)).keep(events, size)
        row = {"events": s.events, "duration_ms": (int(events["t"][-1]) - int(events["t"][0])) / 1000,
               "hot_pixels": s.hot_pixels, "hot_pixel_removed": s.hot_pixel_removed,
               "background_removed": s.background_removed, "removed_share": s.removed / s.events,
               "background_removed_share_after_warm_up": float((~ba_keep[settled]).mean()),
               "background_removed_share_10ms": float((~wide_keep).mean())}
        out[path.name] = row
        print(f"{path.name:<26} {s.events:>8} {row['duration_ms']:>5.0f} {s.hot_pixels:>6} "
              f"{s.hot_pixel_removed / s.events:>7.1%} {s.background_removed / s.events:>7.1%} {row['removed_share']:>8.1%}"
              f" {row['background_removed_share_after_warm_up']:>17.1%} {row['background_removed_share_10ms']:>13.1%}")
    return out


def pictures(out_dir: Path, window_ms: float, tile_width: int) -> None:
    """Per recording: [model frame | model frame, filtered | view | view, filtered] of its first window."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("evt2_gen3_640x480.raw", "evt3_gen41_1280x720.raw", "dvxplorer_320x240.aedat4"):
        events, size = read(DATA / name)
        window = events[events["t"] < events["t"][0] + round(window_ms * 1000)]
        kept = window[NoiseFilter(BOTH).keep(window, size)]
        height = round(size.height * tile_width / size.width)
        model_cfg = FrameConfig(out_size=(height, tile_width))
        view_cfg = ViewConfig(out_size=(height, tile_width))
        tiles = [cv2.cvtColor(frame_to_uint8(build_frame(e, size, model_cfg), model_cfg), cv2.COLOR_GRAY2BGR) for e in (window, kept)]
        tiles += [cv2.cvtColor(build_view(e, size, view_cfg), cv2.COLOR_RGB2BGR) for e in (window, kept)]
        gap = np.full((height, 4, 3), 128, dtype=np.uint8)
        row = np.hstack([tiles[0], gap, tiles[1], gap, tiles[2], gap, tiles[3]])
        target = out_dir / f"noise_{Path(name).stem}.png"
        Image.fromarray(cv2.cvtColor(row, cv2.COLOR_BGR2RGB)).quantize(colors=64).save(target, optimize=True)  # small
        print(f"picture: {target} ({target.stat().st_size // 1024} KiB)")


def main() -> None:
    ap = bench_parser(__doc__, "bench_noise")
    ap.add_argument("--events", type=int, default=4_000_000, help="events in the speed test stream (default 4M)")
    ap.add_argument("--dv-events", type=int, default=300_000, help="events fed to dv-processing (default 300k)")
    ap.add_argument("--packet-kib", type=int, default=64, help="packet size in KiB (default 64)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pictures", metavar="DIR", help="also write the before/after pictures into DIR (e.g. docs)")
    ap.add_argument("--picture-window-ms", type=float, default=50.0, help="window of the pictures (default 50 ms, "
                                                                          "the node's)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    started = time.perf_counter()
    results = {"speed": speed(args), "removal": removal()}
    if args.pictures:
        pictures(Path(args.pictures), args.picture_window_ms, 320)
    print(f"({time.perf_counter() - started:.0f} s)")
    write_results(results, args.out)


if __name__ == "__main__":
    main()
