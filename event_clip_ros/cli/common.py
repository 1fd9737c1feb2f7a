"""Arguments and helpers shared by the event-clip sub-commands."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable, Generator
from typing import TypeVar

from tqdm import tqdm

from ..events.noise import MAX_NOISE_US, MAX_SUPPORT_US, NoiseFilter, NoiseFilterConfig
from ..events.readers.base import EventReader
from ..events.types import SensorSize
from ..events.windows import MAX_WINDOW_EVENTS, MAX_WINDOW_US, Window, WindowConfig, iter_windows

#: Longest span of sensor time a window, hop, packet or scene may be given in (ms): one hour.
MAX_SPAN_MS = MAX_WINDOW_US / 1000
#: Largest sensor or frame side accepted (pixels; the event dtype's coordinates are uint16).
MAX_SIDE = 65_535
#: Largest batch of windows, frames or texts per forward pass.
MAX_BATCH = 65_536
#: Largest signed 64-bit integer (ROS times in ns); numpy and torch take any seed up to it.
MAX_INT64 = 2**63 - 1
#: Most labels per result (the node's top_k range).
MAX_TOP_K = 1000
#: Largest reference bank (its k-NN distances take 4 * capacity**2 bytes: 40 GB here) and most neighbours or hits.
MAX_BANK = 100_000
MAX_NEIGHBOURS = MAX_BANK
#: Most few-shot windows taken per class.
MAX_SHOTS = 10_000
#: Largest cap on per-pixel counts or sums before a frame is normalised (the node's image_clamp range).
MAX_CLAMP = 1_000_000.0
#: Largest log-intensity contrast threshold of the DVS simulation (a step of e**10 in intensity).
MAX_CONTRAST = 10.0
#: Most background noise events per pixel per second of the DVS simulation.
MAX_NOISE_HZ = 100_000.0
#: Highest frame rate of a video or its annotations (high-speed cameras included).
MAX_FPS = 100_000.0
#: Most video frames per event frame (the node's image_stack range).
MAX_STACK = 4096


def progress(desc: str, unit: str, quiet: bool = False, total: int | None = None) -> tqdm:
    """A progress bar on stderr, shown only on a terminal."""
    return tqdm(desc=desc, unit=unit, unit_scale=True, total=total, disable=True if quiet else None, file=sys.stderr, leave=False)


# ------------------------------------------------------------------ argument types
Number = TypeVar("Number", int, float)


def _bound(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:g}"


def _range_text(kind: type, lo: float | None, hi: float | None, lo_open: bool) -> str:
    noun = "an integer" if kind is int else "a finite number"
    if hi is None:
        return noun if lo is None else f"{noun} {'>' if lo_open else '>='} {_bound(lo)}"
    if lo is None:
        return f"{noun} <= {_bound(hi)}"
    return f"{noun} in {'(' if lo_open else '['}{_bound(lo)}, {_bound(hi)}]"


def number_arg(kind: type[Number], lo: float | None = None, hi: float | None = None, *,
               lo_open: bool = False) -> Callable[[str], Number]:
    """argparse type: an int (``kind=int``) or a finite float in [lo, hi] (``(lo, hi]`` with ``lo_open``).

    Anything else, NaN and infinities included, is a one-line argparse error naming the range.
    """
    expected = _range_text(kind, lo, hi, lo_open)

    def parse(text: str) -> Number:
        value: Number | None
        try:
            value = kind(text)
        except (TypeError, ValueError):
            value = None
        if (value is None or (kind is float and not math.isfinite(value))
                or (lo is not None and (value <= lo if lo_open else value < lo))
                or (hi is not None and value > hi)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type by it
    return parse


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in [lo, hi] (None: unbounded on that side)."""
    return number_arg(int, lo, hi)


def float_range(lo: float | None = None, hi: float | None = None) -> Callable[[str], float]:
    """argparse type: a finite number in [lo, hi] (None: unbounded on that side)."""
    return number_arg(float, lo, hi)


def positive_float(hi: float | None = None) -> Callable[[str], float]:
    """argparse type: a finite number in (0, hi]."""
    return number_arg(float, 0.0, hi, lo_open=True)


#: A duration of sensor time in ms: at least one microsecond, at most MAX_SPAN_MS.
ms_arg = float_range(0.001, MAX_SPAN_MS)
#: A probability or a score threshold in [0, 1].
unit_arg = float_range(0.0, 1.0)
#: Windows (or frames, texts) per forward pass.
batch_arg = int_range(1, MAX_BATCH)
#: A random seed.
seed_arg = int_range(0, MAX_INT64)
#: A count of something there must be at least one of (frames, messages, results).
count_arg = int_range(1)
#: Events per window (--event-count, --min-events).
events_arg = int_range(1, MAX_WINDOW_EVENTS)


def size_arg(text: str) -> SensorSize:
    """argparse type for WIDTHxHEIGHT, each side in 1..MAX_SIDE pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        w = h = 0
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, each 1 to {MAX_SIDE} pixels, got {text!r}")
    return SensorSize(w, h)


def problems(stats: dict[str, int]) -> dict[str, int]:
    """The non-zero counters that mean something was skipped or dropped."""
    return {k: v for k, v in stats.items() if v and k not in ("events", "packets")}


def print_problems(stats: dict[str, int], file=sys.stderr) -> None:
    for key, value in problems(stats).items():
        print(f"{key}: {value} (skipped or dropped)", file=file)


def add_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="recording: Prophesee RAW (EVT3/EVT2) or DAT, AEDAT4, AEDAT 3.1, N-MNIST .bin, N-ImageNet .npz, "
                                "rosbag2 (dir, .mcap, .db3)")
    p.add_argument("--topic", help="event topic in a rosbag (default: the only event topic)")
    p.add_argument("--sensor-size", type=size_arg, metavar="WxH", help="override the sensor size read from the file")


def add_window_args(p: argparse.ArgumentParser, default_ms: float) -> None:
    """Window flags, and the noise filter's (:func:`add_noise_args`), which apply before windowing."""
    add_noise_args(p)
    g = p.add_argument_group("windows (on sensor time)")
    g.add_argument("--window-ms", type=ms_arg, default=default_ms, help=f"window duration (default {default_ms:g})")
    g.add_argument("--hop-ms", type=ms_arg, help="sliding windows: start a window every HOP ms (default: no overlap)")
    g.add_argument("--event-count", type=events_arg, help="fixed-count windows of N events instead of fixed duration")
    g.add_argument("--min-events", type=events_arg, default=1, help="skip windows with fewer events (default 1)")


def windows_from_args(args: argparse.Namespace) -> WindowConfig:
    if args.event_count:
        return WindowConfig.by_count(args.event_count, min_events=args.min_events)
    return WindowConfig.by_duration_ms(args.window_ms, args.hop_ms, min_events=args.min_events)


#: What --denoise turns on (the flags below override each part): the settings suggested in config/detector.yaml.
DENOISE = NoiseFilterConfig(background_activity_us=2000, hot_pixel_learn_us=1_000_000)
#: Longest noise-filter time a flag takes: one hour, in us and in ms.
MAX_NOISE_MS = MAX_NOISE_US / 1000


def add_noise_args(p: argparse.ArgumentParser) -> None:
    """Flags of the noise filters before windowing (default: off; see event_clip_ros/events/noise.py)."""
    g = p.add_argument_group("noise filters before windowing (window boundaries and times stay those of the unfiltered "
                             "stream)")
    g.add_argument("--denoise", action="store_true",
                   help=f"hot pixels learned over the first {DENOISE.hot_pixel_learn_us / 1000:g} ms and background "
                        f"activity with {DENOISE.background_activity_us} us support (the flags below change either)")
    g.add_argument("--noise-background-us", type=int_range(0, MAX_SUPPORT_US), metavar="US",
                   help="keep an event only when one of its 8 neighbours fired less than US before it; 0: off")
    g.add_argument("--noise-hot-pixel-ms", type=float_range(0.0, MAX_NOISE_MS), metavar="MS",
                   help="learn a hot-pixel mask over the first MS of sensor time and drop those pixels' events; 0: off")
    g.add_argument("--noise-hot-pixel-factor", type=float_range(1.0, 1e6), metavar="F",
                   help=f"hot: more than F times the mean count of the pixels that fired (default "
                        f"{NoiseFilterConfig.hot_pixel_factor:g})")
    g.add_argument("--noise-hot-pixel-min-count", type=int_range(1, 1 << 31), metavar="N",
                   help=f"hot: and more than N events (default {NoiseFilterConfig.hot_pixel_min_count})")


def noise_from_args(args: argparse.Namespace) -> NoiseFilterConfig:
    """The noise filter the flags of :func:`add_noise_args` ask for (all off without any)."""
    base = DENOISE if args.denoise else NoiseFilterConfig()
    changes = {name: value for name, value in (
        ("background_activity_us", args.noise_background_us),
        ("hot_pixel_learn_us", None if args.noise_hot_pixel_ms is None else round(args.noise_hot_pixel_ms * 1000)),
        ("hot_pixel_factor", args.noise_hot_pixel_factor),
        ("hot_pixel_min_count", args.noise_hot_pixel_min_count),
    ) if value is not None}
    return dataclasses.replace(base, **changes)


def recording_windows(reader: EventReader, args: argparse.Namespace) -> Generator[Window, None, None]:
    """The windows of an opened recording as the window and noise flags ask; what the noise filter removed goes to
    stderr when the windows end or the generator is closed (close it to stop early: ``contextlib.closing``)."""
    config = noise_from_args(args)
    noise = NoiseFilter(config) if config.enabled else None
    try:
        yield from iter_windows(reader.chunks(), windows_from_args(args), noise, reader.size)
    finally:
        if noise is not None:
            print_noise(noise, reader.path)


def print_noise(noise: NoiseFilter, source: object = "", file=None) -> None:
    """One line on ``file`` (default: stderr at the time of the call): what the noise filter removed."""
    s = noise.stats
    share = s.removed / s.events if s.events else 0.0
    print(f"noise filter{f' ({source})' if source else ''}: removed {s.removed} of {s.events} events ({share:.1%}): "
          f"{s.hot_pixel_removed} from {s.hot_pixels} hot pixels, {s.background_removed} background activity",
          file=file or sys.stderr)
