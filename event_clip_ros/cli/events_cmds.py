"""Sub-commands on recordings: inspect, render, simulate."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import cv2

from ..events.frames import FrameConfig, build_frame, frame_to_uint8
from ..events.readers import open_events
from ..events.simulate import SimulatorConfig, frames_to_events, moving_shapes
from ..events.types import SensorSize
from ..events.view import ViewConfig, build_view
from ..events.writers import write_raw_evt3
from ..sim.glyph_scene import glyph_sequence
from .common import (
    MAX_CLAMP,
    MAX_CONTRAST,
    MAX_NOISE_HZ,
    add_input_args,
    add_window_args,
    count_arg,
    float_range,
    int_range,
    ms_arg,
    positive_float,
    print_problems,
    problems,
    progress,
    recording_windows,
    seed_arg,
    size_arg,
)

INSPECT_KEYS = ("format", "width", "height", "events", "on", "off", "t_first_us", "t_last_us")


def cmd_inspect(args: argparse.Namespace) -> int:
    with open_events(args.path, topic=args.topic, size=args.sensor_size) as reader:
        n = on = 0
        t_first = t_last = None
        with progress("reading", "ev", args.json) as bar:
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
        skipped = problems(reader.stats.as_dict())
    if args.json:
        print(json.dumps(info))
    else:
        for key in INSPECT_KEYS:
            print(f"{key:<12} {info[key]}")
        if t_first is not None and t_last is not None:
            print(f"{'duration_s':<12} {(t_last - t_first) / 1e6:.6f}")
        for key, value in skipped.items():
            print(f"{key:<12} {value}  (skipped or dropped)")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    out_size = None if args.frame_size is None else (args.frame_size.height, args.frame_size.width)
    if args.view and (args.keep_aspect or args.clamp is not None or args.representation != "paper"):
        raise ValueError("--view draws its own picture: --representation, --clamp and --keep-aspect are for the model's frame")
    frames = FrameConfig(representation=args.representation, clamp=args.clamp, out_size=out_size, keep_aspect=args.keep_aspect)
    view = ViewConfig(out_size=out_size, percentile=args.view_percentile)

    def render(events, size):
        if args.view:
            return cv2.cvtColor(build_view(events, size, view), cv2.COLOR_RGB2BGR)
        return frame_to_uint8(build_frame(events, size, frames), frames)

    written = 0
    with open_events(args.path, topic=args.topic, size=args.sensor_size) as reader:
        with progress("rendering", "frame") as bar, contextlib.closing(recording_windows(reader, args)) as windows:
            for win in windows:
                img = render(win.events, reader.size)
                name = out / f"frame_{win.index:06d}_{win.t_start_us}us.png"
                if not cv2.imwrite(str(name), img):
                    raise OSError(f"could not write {name}")
                written += 1
                bar.update()
                if args.max_frames and written >= args.max_frames:
                    break
        stats = reader.stats.as_dict()
    what = (f"pictures for people (polarity colours, {args.view_percentile:g}th percentile scaling; not the model's input)"
            if args.view else f"'{args.representation}' frames (the model's input)")
    print(f"wrote {written} {what} to {out}")
    print_problems(stats)
    return 0


#: Default seed of the glyph scene: instances unlike the toy preset's (event data seeds 0-2, teacher 1000).
GLYPH_SCENE_SEED = 7


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.scene == "glyphs":
        return _simulate_glyphs(args)

    size = args.sensor_size or SensorSize(240, 180)
    seed = args.seed or 0
    scene = moving_shapes(size, round(args.duration_ms * 1000), args.frame_interval_us, seed=seed)
    sim = SimulatorConfig(contrast_threshold=args.contrast, noise_rate_hz=args.noise_hz, seed=seed)
    n = write_raw_evt3(args.out, frames_to_events(scene, size, sim), size)
    print(f"wrote {n} events ({size.width}x{size.height}, {args.duration_ms:g} ms) to {args.out}")
    return 0


def _simulate_glyphs(args: argparse.Namespace) -> int:
    """Glyph instances one after another (the toy model's domain) + a ground-truth CSV beside the recording."""
    if args.sensor_size and args.sensor_size.width != args.sensor_size.height:
        raise ValueError("--scene glyphs needs a square --sensor-size (the glyph images are square)")
    side = args.sensor_size.width if args.sensor_size else 48
    seed = GLYPH_SCENE_SEED if args.seed is None else args.seed
    events, size, segments = glyph_sequence(tuple(args.classes.split(",")), side, seed=seed)
    n = write_raw_evt3(args.out, [events], size)
    truth = Path(args.out).with_suffix(".labels.csv")
    truth.write_text("t_start_us,t_end_us,label\n" + "".join(f"{s.t_start_us},{s.t_end_us},{s.label}\n" for s in segments))
    print(f"wrote {n} events ({size.width}x{size.height}, {len(segments)} glyphs of "
          f"{(segments[0].t_end_us - segments[0].t_start_us) / 1000:g} ms) to {args.out}; ground truth: {truth}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="print format, size, counts and time range of a recording")
    add_input_args(p)
    p.add_argument("--json", action="store_true", help=f"print one JSON object with the keys {', '.join(INSPECT_KEYS)}")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("render", help="write the frames of a recording as PNG: the model's input, or --view for people",
                       description="Write one PNG per window: by default the model's input frame (grayscale, its "
                                   "normalisation: one hot pixel can make it nearly black on a real sensor); with "
                                   "--view a picture for people (ON blue, OFF red on white, robust scaling), which the "
                                   "model never sees.")
    add_input_args(p)
    add_window_args(p, default_ms=50.0)
    p.add_argument("--view", action="store_true", help="write pictures for people: polarity colours (ON blue, OFF red on "
                                                       "white), counts scaled by a percentile of the active pixels' "
                                                       "counts, not the model's frame")
    p.add_argument("--view-percentile", type=float_range(1.0, 100.0), default=99.0, metavar="P",
                   help="--view: counts at the P-th percentile of the active pixels and above show at full strength "
                        "(default 99)")
    p.add_argument("--representation", choices=("paper", "official"), default="paper", help="frame normalisation (default paper: "
                                                                                            "counts / (max + 1))")
    p.add_argument("--clamp", type=positive_float(MAX_CLAMP), help="cap per-pixel counts before normalising")
    p.add_argument("--frame-size", type=size_arg, metavar="WxH", help="frame size (default: the sensor size)")
    p.add_argument("--keep-aspect", action="store_true", help="letterbox instead of stretching to --frame-size")
    p.add_argument("--max-frames", type=count_arg, help="stop after N frames")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("simulate", help="write a RAW EVT3 recording of moving shapes or glyphs (simulated DVS)")
    p.add_argument("out", help="output .raw file")
    p.add_argument("--scene", choices=("shapes", "glyphs"), default="shapes",
                   help="shapes: moving shapes (default); glyphs: synthetic glyphs one after another, each seen "
                        "through N-MNIST-like saccades (the toy model's domain), with <out>.labels.csv ground truth")
    p.add_argument("--classes", default="2,4,7,b,e,h,k,n,s,w",
                   help="glyph classes in order, comma-separated (default: the toy split's held-out classes)")
    p.add_argument("--sensor-size", type=size_arg, metavar="WxH", help="sensor size (default 240x180; glyphs: 48x48)")
    p.add_argument("--duration-ms", type=ms_arg, default=500.0, help="length of the shapes scene (default 500)")
    p.add_argument("--frame-interval-us", type=int_range(1, 1_000_000), default=1000, help="scene sampling interval (default 1000)")
    p.add_argument("--contrast", type=positive_float(MAX_CONTRAST), default=0.2, help="log-intensity contrast threshold (default 0.2)")
    p.add_argument("--noise-hz", type=float_range(0.0, MAX_NOISE_HZ), default=0.5, help="background noise events per pixel per "
                                                                                        "second (default 0.5)")
    p.add_argument("--seed", type=seed_arg, help=f"random seed (default: 0 for shapes, {GLYPH_SCENE_SEED} for glyphs)")
    p.set_defaults(func=cmd_simulate)
