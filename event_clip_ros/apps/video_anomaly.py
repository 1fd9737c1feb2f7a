"""Anomaly scores of video segments: the paper's event frames through the detector.

Each stack of frames (:mod:`event_clip_ros.video.extraction`, 16 by default)
is one segment: its event frame, at the model input size, is a window that
carries a ready frame (:func:`segment_windows`), so it goes through f_E exactly
as an image window's frame does (:func:`~event_clip_ros.apps.embedding.window_embeddings`),
and :meth:`Detector.infer <event_clip_ros.apps.detector.Detector.infer>` scores it with the
detector's anomaly head: a :class:`~event_clip_ros.model.anomaly.ReferenceAnomalyScorer`
(a bank of segments of normal videos, :func:`fit_reference`) or a
:class:`~event_clip_ros.model.anomaly.TextAnomalyScorer`.

With ten-crop extraction (``ExtractionConfig.ten_crop``) each segment has 10
views: all of them go into a reference bank, and a segment's score is the mean
of its views' scores (UCF-Crime protocol).

:func:`frame_scores` spreads segment scores over the video's frames the way
the UCF-Crime protocol does (each snippet's score repeated over its frames),
ready for a frame-level ROC-AUC against the temporal annotation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..batching import batched
from ..events.types import SensorSize, empty_events
from ..events.windows import Window
from ..model.anomaly import ReferenceAnomalyScorer, ReferenceScorerConfig
from ..model.event_clip import EventClip
from ..video.extraction import EventFrame, ExtractionConfig, extract_event_frames
from ..video.reader import VideoFrame
from .detector import Detector
from .embedding import window_embeddings
from .event_input import PendingWindow


@dataclass(frozen=True)
class SegmentScore:
    """The anomaly score of one stack of video frames."""

    index: int  #: 0-based segment (stack) number
    first_frame: int  #: first video frame of the segment
    n_frames: int  #: frames in the segment
    t_start_us: int  #: time of its first frame
    t_end_us: int  #: time of its last frame
    score: float  #: in [0, 1], higher = more anomalous
    is_anomaly: bool  #: the detector's decision: score > its threshold


def model_extraction(model: EventClip, config: ExtractionConfig = ExtractionConfig()) -> ExtractionConfig:
    """``config`` with its output size set to the model's input size."""
    return replace(config, out_size=model.meta.input_size)


def segment_window(event_frame: EventFrame) -> PendingWindow:
    """A segment as a window that carries its event frame: times of its first and last frame (the end half-open,
    as the image input's windows), stamped with its end in ns."""
    height, width = event_frame.frame.shape[-2:]
    window = Window(event_frame.index, event_frame.t_start_us, event_frame.t_end_us + 1, empty_events())
    return PendingWindow(window, SensorSize(width, height), (event_frame.t_end_us + 1) * 1_000, "", time.monotonic_ns(),
                         event_frame.frame)


def segment_windows(
    model: EventClip, frames: Iterable[VideoFrame], config: ExtractionConfig = ExtractionConfig()
) -> Iterator[tuple[EventFrame, PendingWindow]]:
    """The segments of a video at the model's input size, each with its window."""
    for event_frame in extract_event_frames(frames, model_extraction(model, config)):
        yield event_frame, segment_window(event_frame)


def embed_video(
    model: EventClip, frames: Iterable[VideoFrame], config: ExtractionConfig = ExtractionConfig(), batch_size: int = 32
) -> Iterator[tuple[list[EventFrame], torch.Tensor]]:
    """(event frames, (B, V, D) normalised f_E embeddings) of a video's segments batch by batch (V = 10 with ten-crop)."""
    for batch in batched(segment_windows(model, frames, config), batch_size):
        yield [ef for ef, _ in batch], window_embeddings(model, [w for _, w in batch])


def fit_reference(
    model: EventClip,
    videos: Iterable[Iterable[VideoFrame]],
    config: ExtractionConfig = ExtractionConfig(),
    scorer_config: ReferenceScorerConfig = ReferenceScorerConfig(),
    batch_size: int = 32,
) -> ReferenceAnomalyScorer:
    """A reference scorer whose bank holds the segments of normal ``videos`` (each an iterable of frames), every view."""
    scorer = ReferenceAnomalyScorer(scorer_config, device=model.device)
    for frames in videos:
        for _, emb in embed_video(model, frames, config, batch_size):
            scorer.update(emb.reshape(-1, emb.shape[-1]))
    if len(scorer) < 2:
        raise ValueError(f"the normal videos gave {len(scorer)} segment(s); the reference bank needs at least 2")
    return scorer


def score_video(
    detector: Detector, frames: Iterable[VideoFrame], config: ExtractionConfig = ExtractionConfig(), batch_size: int = 32
) -> Iterator[SegmentScore]:
    """Yield the anomaly score of each segment of a video, in order, from the (loaded, anomaly mode) detector.

    ValueError for a segment the detector skipped (an embedding with NaN or infinite values: damaged weights, or an
    fp16 overflow), which would leave a gap in the video's frame scores.
    """
    model = detector.model
    if detector.config.mode != "anomaly" or not detector.loaded or model is None:
        raise ValueError("score_video needs a loaded anomaly-mode detector")
    for batch in batched(segment_windows(model, frames, config), batch_size):
        results = {r.index: r for r in detector.infer([w for _, w in batch])}
        for ef, _ in batch:
            result = results.get(ef.index)
            if result is None:
                raise ValueError(f"segment {ef.index} (frames {ef.first_frame}-{ef.first_frame + ef.n_frames - 1}): its "
                                 "embedding holds NaN or infinite values (damaged weights, or an fp16 overflow: try "
                                 "precision fp32)")
            score, is_anomaly = result.anomaly_score, result.is_anomaly
            assert score is not None and is_anomaly is not None  # an anomaly head decides every window
            yield SegmentScore(ef.index, ef.first_frame, ef.n_frames, ef.t_start_us, ef.t_end_us, score, is_anomaly)


def frame_scores(segments: Sequence[SegmentScore], n_frames: int) -> np.ndarray:
    """(n_frames,) float32 per-frame scores: each segment's score over its frames (UCF-Crime protocol).

    Frames after the last segment (a trailing frame too short to make a
    segment) take the last segment's score; a video without segments raises.
    """
    if not segments:
        raise ValueError("no segments to spread over the frames")
    out = np.empty(n_frames, np.float32)
    covered = 0
    for seg in segments:
        if seg.first_frame != covered:
            raise ValueError(f"segment {seg.index} starts at frame {seg.first_frame}, expected {covered}")
        out[covered : covered + seg.n_frames] = seg.score
        covered += seg.n_frames
    if covered > n_frames:
        raise ValueError(f"the segments cover {covered} frames, the video has {n_frames}")
    out[covered:] = segments[-1].score
    return out
