"""Arguments and helpers shared by the event-clip sub-commands."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from ..events.types import SensorSize
from ..events.windows import WindowConfig


def progress(desc: str, unit: str, quiet: bool = False, total: int | None = None) -> tqdm:
    """A progress bar on stderr, shown only on a terminal."""
    return tqdm(desc=desc, unit=unit, unit_scale=True, total=total, disable=True if quiet else None, file=sys.stderr, leave=False)


def size_arg(text: str) -> SensorSize:
    """argparse type for WIDTHxHEIGHT."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        return SensorSize(w, h)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from exc


def problems(stats: dict[str, int]) -> dict[str, int]:
    """The non-zero counters that mean something was skipped or dropped."""
    return {k: v for k, v in stats.items() if v and k not in ("events", "packets")}


def print_problems(stats: dict[str, int], file=sys.stderr) -> None:
    for key, value in problems(stats).items():
        print(f"{key}: {value} (skipped or dropped)", file=file)


def add_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="recording: Prophesee RAW (EVT3/EVT2) or DAT, AEDAT4, AEDAT 3.1, N-MNIST .bin, N-ImageNet .npz, rosbag2 (dir, .mcap, .db3)")
    p.add_argument("--topic", help="event topic in a rosbag (default: the only event topic)")
    p.add_argument("--sensor-size", type=size_arg, metavar="WxH", help="override the sensor size read from the file")


def add_window_args(p: argparse.ArgumentParser, default_ms: float) -> None:
    g = p.add_argument_group("windows (on sensor time)")
    g.add_argument("--window-ms", type=float, default=default_ms, help=f"window duration (default {default_ms:g})")
    g.add_argument("--hop-ms", type=float, help="sliding windows: start a window every HOP ms (default: no overlap)")
    g.add_argument("--event-count", type=int, help="fixed-count windows of N events instead of fixed duration")
    g.add_argument("--min-events", type=int, default=1, help="skip windows with fewer events (default 1)")


def windows_from_args(args: argparse.Namespace) -> WindowConfig:
    if args.event_count:
        return WindowConfig.by_count(args.event_count, min_events=args.min_events)
    return WindowConfig.by_duration_ms(args.window_ms, args.hop_ms, min_events=args.min_events)
