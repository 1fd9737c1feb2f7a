"""One input topic turned into windows stamped in ROS time: the detector's input side.

Both inputs take the serialised messages of one topic in arrival order with
``feed(raw) -> completed windows`` (the node calls it from its raw subscription
callback for *every* message, since decoding is stateful), ``flush()`` at the end
of a stream and report ``counters()``; :func:`make_input` picks the one a message
type needs.

:class:`EventInput` takes event messages (``feed``) or already decoded events
(``feed_events``, for recordings). It decodes them with the event layer's stream
(:func:`~event_clip_ros.events.packet_stream.make_stream`), cuts windows on
decoded sensor time with a :class:`~event_clip_ros.events.windows.Windower` and
returns the windows each message completes as :class:`PendingWindow`.

Sensor time to ROS time
    One offset per stream: ``offset_ns = header.stamp - sensor time of that
    stamp`` of the first message with events, and a window's stamp is
    ``offset_ns + t_end_us * 1000``. For the EventPacket encodings timed from
    ``time_base`` (mono, libcaer, libcaer_cmp) the header stamp belongs to
    ``time_base``; for evt3 (``time_base`` unused, 0) and the EventArray types it
    belongs to the first event of the message. Clock drift between sensor and
    host is not corrected; the offset is learned again whenever the stream
    restarts.

Stream restarts
    A restart the stream reports (sequence number going back, a new encoding or
    sensor size, a confirmed time jump; its time guard drops every other event
    that goes back in time) closes the open windows (emitted with the old size
    and offset, as ``flush`` would) and starts windowing, the noise filter and
    the clock offset afresh. Decoded events (``feed_events``) have no stream to
    tell: there a new sensor size, or time going back more than the windower's
    ``reset_tolerance_us``, is the restart. Bad messages are counted by the
    stream and give no events; nothing here raises on bad input.

Noise filtering
    With a :class:`~event_clip_ros.events.noise.NoiseFilterConfig` that enables a
    filter, each message's events go through a
    :class:`~event_clip_ros.events.noise.NoiseFilter` before windowing. The
    windower takes its mask: windows hold the kept events, while their
    boundaries, completion and stamps still come from every decoded event, so
    enabling the filter never moves a window. Its counters (``noise_*``) join
    :meth:`EventInput.counters`.

Images (RGB-only robots)
    :class:`ImageInput` takes sensor_msgs/Image messages (bgr8, rgb8, mono8;
    ``feed``) or decoded images (``feed_image``) and
    turns each stack of frames into the paper's frame-difference event frame
    (:class:`~event_clip_ros.video.extraction.FrameDiffExtractor`, one frame at
    a time). Its windows carry that ready frame at image resolution
    (``PendingWindow.frame``) and no events; the detector resizes it to the
    model input, exactly as the offline video path does. Times are the header
    stamps: a window spans its stack's first to last frame and is stamped with
    the last one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..events.decoders.base import Payload, as_uint8
from ..events.limits import DEFAULT_LIMITS, StreamLimits
from ..events.noise import NoiseFilter, NoiseFilterConfig
from ..events.packet_stream import make_stream
from ..events.ros_cdr import IMAGE_MSGTYPE, CdrError, parse_image
from ..events.types import EVENT_DTYPE, SensorSize, empty_events
from ..events.windows import Window, WindowConfig, Windower
from ..video.extraction import EventFrame, ExtractionConfig, FrameDiffExtractor
from ..video.reader import VideoFrame
from .detector_config import DetectorConfig

log = logging.getLogger(__name__)

_NS_PER_US = 1_000
__all__ = ["IMAGE_ENCODINGS", "IMAGE_MSGTYPE", "EventInput", "ImageInput", "PendingWindow", "decode_image", "make_input"]
#: sensor_msgs/Image encodings the image input decodes, with their channel count.
IMAGE_ENCODINGS: dict[str, int] = {"bgr8": 3, "rgb8": 3, "mono8": 1}


@dataclass(frozen=True)
class PendingWindow:
    """A completed window waiting for inference, with what its result needs."""

    window: Window
    size: SensorSize  #: sensor geometry of the window's events
    stamp_ns: int  #: the window's end (t_end_us) mapped to ROS time, ns
    frame_id: str  #: header.frame_id of the messages the events came in
    ready_ns: int  #: time.monotonic_ns() when the window completed (latency origin)
    #: a ready event frame instead of events (the window has none): image input's (H, W) float32 in [0, 1]
    #: at image resolution; a video segment's at the model input, (views, H, W) with ten crops
    frame: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        return int(self.window.events.shape[0])


class EventInput:
    """Decode one topic's messages in order and cut windows on sensor time (see module doc)."""

    def __init__(self, msgtype: str, window: WindowConfig, limits: StreamLimits = DEFAULT_LIMITS,
                 noise: NoiseFilterConfig = NoiseFilterConfig()) -> None:
        self.msgtype = msgtype
        self.stream = make_stream(msgtype, limits)  # ValueError for an unsupported type
        self.windower = Windower(window)
        #: the noise filter before windowing (None when off); its mask leaves window boundaries and stamps as they are
        self.noise = NoiseFilter(noise, window.reset_tolerance_us) if noise.enabled else None
        self._size: SensorSize | None = None
        self._frame_id = ""
        self._offset_ns: int | None = None
        self._last_t_us: int | None = None  # feed_events: the latest event time pushed since the last restart
        self.restarts = 0  #: stream restarts that closed the open windows and relearned the clock offset

    def feed(self, raw: Payload) -> list[PendingWindow]:
        """Decode one serialised message (in stream order); return the windows it completes."""
        # decoded straight into the windower's buffer: no copy of the events (a restart below moves them)
        msg = self.stream.decode_cdr(raw, alloc=self.windower.reserve)
        out = self._restart() if msg.restarted else []
        if msg.events.shape[0] == 0:
            return out
        assert msg.size is not None
        return out + self._push(msg.events, msg.size, msg.stamp_ns - msg.reference_us * _NS_PER_US, msg.frame_id,
                                ordered=True)  # a stream's events are in time order (its time guard)

    def feed_events(
        self, events: np.ndarray, size: SensorSize, stamp_ns: int | None = None, frame_id: str = ""
    ) -> list[PendingWindow]:
        """Push decoded events (EVENT_DTYPE, time-ordered); return the windows they complete.

        ``stamp_ns``: ROS time of the first event, which fixes the clock offset
        when none is known yet; without it window stamps are sensor time in ns.
        A new sensor size, or a first event more than ``reset_tolerance_us``
        before the latest one pushed (a camera restart, a recording played
        again), restarts the stream (see module doc).
        """
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            raise ValueError("feed_events expects a 1-D EVENT_DTYPE array")
        empty = events.shape[0] == 0
        went_back = not empty and self._last_t_us is not None and \
            int(events["t"][0]) < self._last_t_us - self.windower.config.reset_tolerance_us
        out = self._restart() if went_back or (self._size is not None and size != self._size) else []
        if empty:
            return out
        last_us = int(events["t"][-1])
        self._last_t_us = last_us if self._last_t_us is None else max(last_us, self._last_t_us)
        offset = 0 if stamp_ns is None else stamp_ns - int(events["t"][0]) * _NS_PER_US
        return out + self._push(events, size, offset, frame_id)

    def flush(self) -> list[PendingWindow]:
        """End of the stream: emit the open windows that hold enough events, then start afresh."""
        return self._restart(count=False)

    def _push(self, events: np.ndarray, size: SensorSize, offset_ns: int, frame_id: str,
              ordered: bool = False) -> list[PendingWindow]:
        self._size = size
        self._frame_id = frame_id
        if self._offset_ns is None:
            self._offset_ns = offset_ns
        keep = self.noise.keep(events, size) if self.noise is not None else None
        return self._pending(self.windower.push(events, keep, ordered=ordered))

    def _restart(self, count: bool = True) -> list[PendingWindow]:
        """Close the open windows with the old size and offset; forget the stream's clock."""
        out = self._pending(self.windower.flush())
        self._offset_ns = None
        self._last_t_us = None
        if self.noise is not None:
            self.noise.reset()
        if count:
            self.restarts += 1
        return out

    def _pending(self, windows: list[Window]) -> list[PendingWindow]:
        if not windows:
            return []
        assert self._size is not None and self._offset_ns is not None
        ready = time.monotonic_ns()
        return [
            PendingWindow(w, self._size, self._offset_ns + w.t_end_us * _NS_PER_US, self._frame_id, ready)
            for w in windows
        ]

    def counters(self) -> dict[str, int]:
        """Decode and window counters (cumulative), with names that say where they come from."""
        decode = self.stream.stats.as_dict()
        window = self.windower.stats.as_dict()
        return {
            "packets": decode["packets"],
            "events": decode["events"],
            "bad_packets": decode["bad_packets"],
            "lost_packets": decode["lost_packets"],
            "seq_resets": decode["seq_resets"],
            "decode_errors": decode["bad_packets"] + decode["unknown_words"] + decode["time_errors"],
            "time_dropped_events": decode["time_dropped"],
            "truncated_bytes": decode["truncated_bytes"],
            "out_of_bounds_events": decode["out_of_bounds"],
            "stream_restarts": self.restarts,
            "windows": window["windows"],
            "skipped_windows": window["skipped_windows"],
            "capped_windows": window["capped_windows"],
            **(self.noise.counters() if self.noise is not None else {}),
        }


def decode_image(encoding: str, height: int, width: int, step: int, data: Payload) -> np.ndarray:
    """A sensor_msgs/Image's pixels as the extractor takes them: (H, W, 3) BGR or (H, W) gray uint8.

    bgr8 and mono8 without row padding are zero-copy views of ``data``; rgb8 is
    converted to BGR (the extractor's grayscale weights assume BGR). ValueError
    for another encoding or a geometry the data does not hold.
    """
    channels = IMAGE_ENCODINGS.get(encoding)
    if channels is None:
        raise ValueError(f"unsupported image encoding {encoding!r}; use one of {', '.join(IMAGE_ENCODINGS)}")
    row_bytes = width * channels
    if height <= 0 or width <= 0 or step < row_bytes:
        raise ValueError(f"bad {encoding} image geometry: {width}x{height}, step {step}")
    buf = as_uint8(data)
    if buf.size < step * height:
        raise ValueError(f"{encoding} image {width}x{height} with step {step} needs {step * height} bytes, got {buf.size}")
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    if channels == 1:
        return np.ascontiguousarray(rows)
    image = np.ascontiguousarray(rows).reshape(height, width, 3)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if encoding == "rgb8" else image


class ImageInput:
    """Images in stream order -> one frame-difference window per stack of ``extraction.stack`` frames.

    A change of image size or channel count, or a stamp going back more than
    ``reset_tolerance_us`` (camera restart, bag loop), closes the open stack
    (emitted when it holds at least 2 frames, as at the end of a stream) and
    starts a new one; such restarts are counted. Undecodable images are
    counted and logged once per kind, never raised.
    """

    msgtype = IMAGE_MSGTYPE

    def __init__(self, extraction: ExtractionConfig = ExtractionConfig(), reset_tolerance_us: int = 10_000) -> None:
        if extraction.out_size is not None:
            raise ValueError("the image input keeps the image resolution; the detector resizes to the model input")
        self.extraction = extraction
        self.reset_tolerance_ns = reset_tolerance_us * _NS_PER_US
        self._extractor = FrameDiffExtractor(extraction)
        self._shape: tuple[int, ...] | None = None
        self._frame_id = ""
        self._last_stamp_ns: int | None = None
        self._frames = 0
        self.images = 0  #: images received (decodable or not)
        self.bad_images = 0  #: images skipped: unsupported encoding or inconsistent geometry
        self.restarts = 0  #: size changes and stamps going back that closed the open stack
        self.windows = 0  #: windows (event frames) emitted
        self._warned: set[str] = set()

    def feed(self, raw: Payload) -> list[PendingWindow]:
        """Decode one serialised sensor_msgs/Image (see :func:`decode_image`) and push it; bad images are counted."""
        try:
            msg = parse_image(raw)
        except CdrError as exc:
            return self._skip("message", exc)
        try:
            image = decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        except ValueError as exc:
            return self._skip(msg.encoding if msg.encoding not in IMAGE_ENCODINGS else "geometry", exc)
        return self.feed_image(image, msg.stamp_ns, msg.frame_id)

    def _skip(self, kind: str, exc: ValueError) -> list[PendingWindow]:
        """Count a message that gives no image; log the first of each kind."""
        self.images += 1
        self.bad_images += 1
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("skipping image: %s (further occurrences are only counted)", exc)
        return []

    def feed_image(self, image: np.ndarray, stamp_ns: int, frame_id: str = "") -> list[PendingWindow]:
        """Push one decoded image ((H, W, 3) BGR or (H, W) gray uint8, header stamp in ns); return the window it completes."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"expected an (H, W) or (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        self.images += 1
        out: list[PendingWindow] = []
        restart = self._shape is not None and self._last_stamp_ns is not None and (
            image.shape != self._shape or stamp_ns < self._last_stamp_ns - self.reset_tolerance_ns
        )
        if restart:
            out += self.flush()
            self.restarts += 1
        self._shape, self._frame_id, self._last_stamp_ns = image.shape, frame_id, stamp_ns
        event_frame = self._extractor.push(VideoFrame(self._frames, stamp_ns // _NS_PER_US, image))
        self._frames += 1
        if event_frame is not None:
            out.append(self._pending(event_frame))
        return out

    def flush(self) -> list[PendingWindow]:
        """End of the stream: the open stack's window when it holds at least 2 frames; then start afresh."""
        event_frame = self._extractor.flush()
        out = [self._pending(event_frame)] if event_frame is not None else []
        self._extractor = FrameDiffExtractor(self.extraction)
        self._shape = self._last_stamp_ns = None
        return out

    def _pending(self, event_frame: EventFrame) -> PendingWindow:
        assert self._shape is not None and self._last_stamp_ns is not None
        # half-open [first frame, last frame + 1 us), as count windows end after their last event
        window = Window(self.windows, event_frame.t_start_us, event_frame.t_end_us + 1, empty_events())
        self.windows += 1
        size = SensorSize(width=self._shape[1], height=self._shape[0])
        return PendingWindow(window, size, self._last_stamp_ns, self._frame_id, time.monotonic_ns(), event_frame.frame)

    def counters(self) -> dict[str, int]:
        """Image and window counters (cumulative)."""
        return {
            "images": self.images,
            "bad_images": self.bad_images,
            "decode_errors": self.bad_images,
            "stream_restarts": self.restarts,
            "windows": self.windows,
        }


def make_input(msgtype: str, config: DetectorConfig) -> EventInput | ImageInput:
    """The input for messages of ``msgtype``: an :class:`ImageInput` for sensor_msgs/msg/Image (``config.extraction``),
    else an :class:`EventInput` (``config.window``, ``stream_limits``, ``noise``; ValueError for an unsupported type)."""
    if msgtype == IMAGE_MSGTYPE:
        return ImageInput(config.extraction, config.window.reset_tolerance_us)
    return EventInput(msgtype, config.window, config.stream_limits, config.noise)
