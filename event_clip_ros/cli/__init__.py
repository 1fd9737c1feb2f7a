"""``event-clip``: the command-line front end of the ROS-free core.

Recordings:
  inspect   print format, geometry, event counts and time range of a recording
  render    cut a recording into windows on sensor time and write the frames as PNG
  simulate  write a RAW EVT3 recording of a moving-shapes scene (the shipped sample)

Event encoder (CLIP-based; --checkpoint FILE or --model ARCH --pretrained TAG|FILE):
  classify  zero-shot labels for each window
  anomaly   anomaly score for each window (text prompts or a reference recording)
  retrieve  build an index of event windows, images and texts; query it in any direction
  export    a checkpoint in our .safetensors format, or its event encoder as ONNX (--onnx) for
            --backend onnxruntime (CPU, CUDA, TensorRT)

Bags (replay, record and evaluate --live need rclpy):
  evaluate  accuracy or anomaly metrics of the detector on a bag: report.md, metrics.json, windows.csv, plots
  to-bag    convert any recording into a bag of EventPackets, with an optional label topic
  replay    publish a bag's messages into ROS at their recorded timing
  record    record topics into a bag through raw subscriptions

Video (the paper's video path):
  video2events   ordinary video to event frames (the paper's frame differences) or a RAW EVT3 event stream
  video-anomaly  anomaly score for each stack of frames of a video (reference videos or text prompts)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..events.readers.base import EventFileError
from . import eval_cmds, events_cmds, model_cmds, video_cmds
from .events_cmds import INSPECT_KEYS

__all__ = ["INSPECT_KEYS", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """A parser that takes ``-v/--verbose`` itself: the program and every (sub-)command accept it.

    A sub-command's ``-v`` defaults to SUPPRESS, so leaving it out there keeps what was given before the
    sub-command (``event-clip -v inspect PATH`` and ``event-clip inspect -v PATH`` are the same).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="log debug messages; on an error, show the traceback")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="event-clip", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(verbose=False)
    sub = parser.add_subparsers(dest="command", required=True)  # sub-parsers are _Parser too
    events_cmds.register(sub)
    model_cmds.register(sub)
    eval_cmds.register(sub)
    video_cmds.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM in the ROS commands) where a command does not stop by itself
        print(f"event-clip {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (EventFileError, ValueError, OSError) as exc:
        if args.verbose:
            raise
        print(f"event-clip {args.command}: error: {exc} (-v shows the traceback)", file=sys.stderr)
        return 2
