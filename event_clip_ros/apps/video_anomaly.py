"""Anomaly scores of video segments: the paper's event frames through f_E, scored by the anomaly scorers.

Each stack of frames (:mod:`.extraction`, 16 by default) is one segment: its
event frame, resized to the model input, goes through f_E exactly as an event
window's frame does (:meth:`EventClip.encode_frames`), and the embedding is
scored by a :class:`~event_clip_ros.model.anomaly.ReferenceAnomalyScorer`
(a bank of segments of normal videos) or a
:class:`~event_clip_ros.model.anomaly.TextAnomalyScorer`.

With ten-crop extraction (``ExtractionConfig.ten_crop``) each segment has 10
views: all of them go into a reference bank, and a segment's score is the mean
of its views' scores (UCF-Crime protocol).

:func:`frame_scores` spreads segment scores over the video's frames the way
the UCF-Crime protocol does (each snippet's score repeated over its frames),
ready for a frame-level ROC-AUC against the temporal annotation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..model.anomaly import AnomalyScorer, ReferenceAnomalyScorer, ReferenceScorerConfig
from ..model.event_clip import EventClip
from ..video.extraction import EventFrame, ExtractionConfig, extract_event_frames
from ..video.reader import VideoFrame


@dataclass(frozen=True)
class SegmentScore:
    """The anomaly score of one stack of video frames."""

    index: int  #: 0-based segment (stack) number
    first_frame: int  #: first video frame of the segment
    n_frames: int  #: frames in the segment
    t_start_us: int  #: time of its first frame
    t_end_us: int  #: time of its last frame
    score: float  #: in [0, 1], higher = more anomalous


def model_extraction(model: EventClip, config: ExtractionConfig = ExtractionConfig()) -> ExtractionConfig:
    """``config`` with its output size set to the model's input size."""
    return replace(config, out_size=model.meta.input_size)


def embed_event_frames(
    model: EventClip, event_frames: Iterable[EventFrame], batch_size: int = 32
) -> Iterator[tuple[list[EventFrame], torch.Tensor]]:
    """Yield (event frames, normalised f_E embeddings) batch by batch: (B, D), or (B, 10, D) for ten-crop frames.

    Frames must be at the model input size; ``batch_size`` counts segments.
    """
    batch: list[EventFrame] = []
    for ef in event_frames:
        batch.append(ef)
        if len(batch) == batch_size:
            yield batch, _embed(model, batch)
            batch = []
    if batch:
        yield batch, _embed(model, batch)


@torch.inference_mode()
def _embed(model: EventClip, batch: Sequence[EventFrame]) -> torch.Tensor:
    frames = np.stack([ef.frame for ef in batch])  # (B, H, W) or (B, views, H, W)
    emb = model.embed_frames(frames.reshape(-1, *frames.shape[-2:]))
    return emb.reshape(*frames.shape[:-2], emb.shape[-1])


def embed_video(
    model: EventClip, frames: Iterable[VideoFrame], config: ExtractionConfig = ExtractionConfig(), batch_size: int = 32
) -> Iterator[tuple[list[EventFrame], torch.Tensor]]:
    """Extract the event frames of a video at the model's input size and embed them batch by batch."""
    return embed_event_frames(model, extract_event_frames(frames, model_extraction(model, config)), batch_size)


def fit_reference(
    model: EventClip,
    videos: Iterable[Iterable[VideoFrame]],
    config: ExtractionConfig = ExtractionConfig(),
    scorer_config: ReferenceScorerConfig = ReferenceScorerConfig(),
    batch_size: int = 32,
) -> ReferenceAnomalyScorer:
    """A reference scorer whose bank holds the segments of normal ``videos`` (each an iterable of frames)."""
    scorer = ReferenceAnomalyScorer(scorer_config, device=model.device)
    for frames in videos:
        for _, emb in embed_video(model, frames, config, batch_size):
            scorer.update(emb.reshape(-1, emb.shape[-1]))
    if len(scorer) < 2:
        raise ValueError(f"the normal videos gave {len(scorer)} segment(s); the reference bank needs at least 2")
    return scorer


def score_video(
    model: EventClip,
    scorer: AnomalyScorer,
    frames: Iterable[VideoFrame],
    config: ExtractionConfig = ExtractionConfig(),
    batch_size: int = 32,
) -> Iterator[SegmentScore]:
    """Yield the anomaly score of each segment of a video (the mean over its views with ten-crop), in order."""
    for batch, emb in embed_video(model, frames, config, batch_size):
        scores = np.asarray(scorer.score(emb.reshape(-1, emb.shape[-1])), np.float64).reshape(len(batch), -1).mean(axis=1)
        for ef, s in zip(batch, scores):
            yield SegmentScore(ef.index, ef.first_frame, ef.n_frames, ef.t_start_us, ef.t_end_us, float(s))


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
