"""``event-clip``: the command-line front end of the ROS-free core.

Sub-commands:
  inspect   print format, geometry, event counts and time range of a recording
  render    cut a recording into windows on sensor time and write the frames as PNG
  simulate  write a RAW EVT3 recording of a moving-shapes scene (the shipped sample)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from .events.readers import open_events
from .events.readers.base import EventFileError
from .events.types import SensorSize

INSPECT_KEYS = ("format", "width", "height", "events", "on", "off", "t_first_us", "t_last_us")


def _progress(desc: str, unit: str, quiet: bool = False) -> tqdm:
    """A progress bar on stderr, shown only on a terminal."""
    return tqdm(desc=desc, unit=unit, unit_scale=True, disable=True if quiet else None, file=sys.stderr, leave=False)


def _size_arg(text: str) -> SensorSize:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        return SensorSize(w, h)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from exc


def _problems(stats: dict[str, int]) -> dict[str, int]:
    """The non-zero counters that mean something was skipped or dropped."""
    quiet = {"events", "packets"}
    return {k: v for k, v in stats.items() if v and k not in quiet}


def cmd_inspect(args: argparse.Namespace) -> int:
    with open_events(args.path, topic=args.topic, size=args.sensor_size) as reader:
        n = on = 0
        t_first = t_last = None
        with _progress("reading", "ev", args.json) as bar:
            for ev in reader.chunks():
                if not ev.size:
                    continue
                n += ev.size
                on += int(ev["p"].sum(dtype="int64"))
                if t_first is None:
                    t_first = int(ev["t"][0])
                t_last = int(ev["t"][-1])
                bar.update(ev.size)
        info = {
            "format": reader.format,
            "width": reader.size.width,
            "height": reader.size.height,
            "events": n,
            "on": on,
            "off": n - on,
            "t_first_us": t_first,
            "t_last_us": t_last,
        }
        problems = _problems(reader.stats.as_dict())
    if args.json:
        print(json.dumps(info))
    else:
        for key in INSPECT_KEYS:
            print(f"{key:<12} {info[key]}")
        if t_first is not None:
            print(f"{'duration_s':<12} {(t_last - t_first) / 1e6:.6f}")
        for key, value in problems.items():
            print(f"{key:<12} {value}  (skipped or dropped)")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import cv2

    from .events.frames import FrameConfig, build_frame, frame_to_uint8
    from .events.windows import WindowConfig, iter_windows

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.event_count:
        windows = WindowConfig.by_count(args.event_count, min_events=args.min_events)
    else:
        windows = WindowConfig.by_duration_ms(args.window_ms, args.hop_ms, min_events=args.min_events)
    frames = FrameConfig(
        representation=args.representation,
        clamp=args.clamp,
        out_size=None if args.frame_size is None else (args.frame_size.height, args.frame_size.width),
        keep_aspect=args.keep_aspect,
    )
    written = 0
    with open_events(args.path, topic=args.topic, size=args.sensor_size) as reader:
        with _progress("rendering", "frame") as bar:
            for win in iter_windows(reader.chunks(), windows):
                img = frame_to_uint8(build_frame(win.events, reader.size, frames), frames)
                name = out / f"frame_{win.index:06d}_{win.t_start_us}us.png"
                if not cv2.imwrite(str(name), img):
                    raise OSError(f"could not write {name}")
                written += 1
                bar.update()
                if args.max_frames and written >= args.max_frames:
                    break
        problems = _problems(reader.stats.as_dict())
    print(f"wrote {written} frames to {out}")
    for key, value in problems.items():
        print(f"{key}: {value} (skipped or dropped)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from .events.simulate import SimulatorConfig, frames_to_events, moving_shapes
    from .events.writers import write_raw_evt3

    size = args.sensor_size or SensorSize(240, 180)
    scene = moving_shapes(size, round(args.duration_ms * 1000), args.frame_interval_us, seed=args.seed)
    sim = SimulatorConfig(contrast_threshold=args.contrast, noise_rate_hz=args.noise_hz, seed=args.seed)
    n = write_raw_evt3(args.out, frames_to_events(scene, size, sim), size)
    print(f"wrote {n} events ({size.width}x{size.height}, {args.duration_ms:g} ms) to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="event-clip", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_input(p: argparse.ArgumentParser) -> None:
        p.add_argument("path", help="recording: Prophesee RAW (EVT3/EVT2) or DAT, AEDAT4, AEDAT 3.1, N-MNIST .bin, N-ImageNet .npz, rosbag2 (dir, .mcap, .db3)")
        p.add_argument("--topic", help="event topic in a rosbag (default: the only event topic)")
        p.add_argument("--sensor-size", type=_size_arg, metavar="WxH", help="override the sensor size read from the file")

    p = sub.add_parser("inspect", help="print format, size, counts and time range of a recording")
    add_input(p)
    p.add_argument("--json", action="store_true", help=f"print one JSON object with the keys {', '.join(INSPECT_KEYS)}")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("render", help="write the frames of a recording as PNG")
    add_input(p)
    p.add_argument("--window-ms", type=float, default=50.0, help="window duration on sensor time (default 50)")
    p.add_argument("--hop-ms", type=float, help="sliding windows: start a window every HOP ms (default: no overlap)")
    p.add_argument("--event-count", type=int, help="fixed-count windows of N events instead of fixed duration")
    p.add_argument("--min-events", type=int, default=1, help="skip windows with fewer events (default 1)")
    p.add_argument("--representation", choices=("paper", "official"), default="paper", help="frame normalisation (default paper: counts / (max + 1))")
    p.add_argument("--clamp", type=float, help="cap per-pixel counts before normalising")
    p.add_argument("--frame-size", type=_size_arg, metavar="WxH", help="frame size (default: the sensor size)")
    p.add_argument("--keep-aspect", action="store_true", help="letterbox instead of stretching to --frame-size")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("simulate", help="write a RAW EVT3 recording of moving shapes (simulated DVS)")
    p.add_argument("out", help="output .raw file")
    p.add_argument("--sensor-size", type=_size_arg, metavar="WxH", help="sensor size (default 240x180)")
    p.add_argument("--duration-ms", type=float, default=500.0, help="length (default 500)")
    p.add_argument("--frame-interval-us", type=int, default=1000, help="scene sampling interval (default 1000)")
    p.add_argument("--contrast", type=float, default=0.2, help="log-intensity contrast threshold (default 0.2)")
    p.add_argument("--noise-hz", type=float, default=0.5, help="background noise events per pixel per second (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (EventFileError, ValueError, OSError) as exc:
        print(f"event-clip {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
