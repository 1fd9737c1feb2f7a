"""Synthetic videos for the video tests: a disc sliding over a blurred texture, optionally a dark square
crossing it (the anomaly), written losslessly (FFV1) so decoding gives the frames back exactly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from event_clip_ros.video.reader import VideoFrame

W, H, FPS = 96, 72, 25.0


def scene(n_frames: int, seed: int, anomaly: range = range(0)) -> list[np.ndarray]:
    """Gray frames (BGR with equal channels) of a disc sliding back and forth over a static texture;
    during ``anomaly`` a dark square also crosses the scene vertically."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.uniform(60, 160, (H, W)).astype(np.float32), (0, 0), 2)
    phase, speed = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.35)
    frames = []
    for i in range(n_frames):
        img = bg.copy()
        cx = W / 2 + 0.3 * W * np.sin(phase + speed * i)
        cv2.circle(img, (int(round(cx * 16)), int(round(H / 2 * 16))), 10 * 16, 235.0, -1, cv2.LINE_AA, shift=4)
        if i in anomaly:
            sy = (4 * (i - anomaly.start)) % (H + 20) - 10
            cv2.rectangle(img, (W // 4 - 8, sy - 8), (W // 4 + 8, sy + 8), 15.0, -1)
        frames.append(cv2.cvtColor(np.rint(img).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = FPS) -> Path:
    """A lossless FFV1 video, so decoded frames equal the written ones."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (frames[0].shape[1], frames[0].shape[0]))
    assert writer.isOpened(), "this OpenCV build cannot write FFV1"
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def as_frames(images: list[np.ndarray], fps: float = FPS) -> list[VideoFrame]:
    return [VideoFrame(i, round(i * 1e6 / fps), im) for i, im in enumerate(images)]
