"""Ten-crop views of a stack's summed difference map (the UCF-Crime feature protocol).

The centre and the four corners of the map, each as is and mirrored left-right
(10 views), as torchvision's ``TenCrop`` takes them from 340x256 frames for
224x224 crops. The crops are cut from the per-pixel sums *before* the clamp
and the normalisation, so each view is normalised by its own peak, as if the
crop had been the whole frame. A segment's anomaly score is then the mean of
its views' scores (:func:`event_clip_ros.apps.video_anomaly.score_video`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Views per segment: 5 crops, each also mirrored.
TEN_CROP_VIEWS = 10


def crop_origins(frame_hw: tuple[int, int], crop_hw: tuple[int, int]) -> list[tuple[int, int]]:
    """(top, left) of the centre, top-left, top-right, bottom-left and bottom-right crops, in pixels."""
    (h, w), (ch, cw) = frame_hw, crop_hw
    if ch > h or cw > w:
        raise ValueError(f"the {cw}x{ch} crop (WxH) does not fit in {w}x{h} frames; resize the video or choose a smaller crop")
    return [((h - ch) // 2, (w - cw) // 2), (0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)]


def ten_crop(counts: np.ndarray, crop_hw: tuple[int, int], render: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(10, h, w) views: ``render`` (clamp, normalise, resize) of each crop of ``counts``, then of its mirror."""
    ch, cw = crop_hw
    views = [render(counts[top : top + ch, left : left + cw]) for top, left in crop_origins(counts.shape[:2], crop_hw)]
    return np.stack(views + [np.ascontiguousarray(v[:, ::-1]) for v in views])
