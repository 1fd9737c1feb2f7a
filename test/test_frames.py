"""Event frames: hand-computed values, properties, resizing, numpy == torch bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from event_clip_ros.events.frames import (
    FrameConfig,
    build_frame,
    build_frames_torch,
    frame_shape,
    frame_to_uint8,
)
from event_clip_ros.events.types import EVENT_DTYPE, SensorSize, make_events

S4 = SensorSize(4, 4)
NATIVE = {"out_size": None}


def ev(*xyp):
    """Events from (x, y, p) triples; times are 0, 1, 2, ..."""
    x, y, p = zip(*xyp) if xyp else ((), (), ())
    return make_events(np.arange(len(x)), x, y, p)


def random_events(rng, n, size):
    t = np.sort(rng.integers(0, 10**6, n))
    return make_events(t, rng.integers(0, size.width, n), rng.integers(0, size.height, n), rng.integers(0, 2, n))


def expected(values: dict[tuple[int, int], float], shape=(4, 4), fill=0.0) -> np.ndarray:
    """Frame of ``shape`` filled with ``fill``, ``values`` keyed by (x, y)."""
    out = np.full(shape, fill, dtype=np.float32)
    for (x, y), v in values.items():
        out[y, x] = v
    return out


def test_paper_three_events_by_hand():
    frame = build_frame(ev((0, 0, 1), (1, 2, 0), (1, 2, 1)), S4, FrameConfig(**NATIVE))
    # counts: (0,0)=1, (1,2)=2 over both polarities; / (max + 1) = / 3
    third = np.float32(1) / np.float32(3)
    np.testing.assert_array_equal(frame, expected({(0, 0): third, (1, 2): np.float32(2) / np.float32(3)}))
    assert frame.dtype == np.float32 and frame.shape == (4, 4)


def test_official_three_events_by_hand():
    events = ev((0, 0, 1), (1, 2, 0), (1, 2, 1), (3, 3, 0), (3, 3, 0))
    frame = build_frame(events, S4, FrameConfig("official", **NATIVE))
    # ON counts: (0,0)=1, (1,2)=1, max 1 -> 1/2 each; OFF counts: (1,2)=1, (3,3)=2, max 2 -> 1/3, 2/3
    # v = mean of the two, then (v - 0.5) * 2 = on + off - 1
    want = expected({(0, 0): 0.5 - 1, (1, 2): 0.5 + 1 / 3 - 1, (3, 3): 2 / 3 - 1}, fill=-1.0)
    np.testing.assert_allclose(frame, want, rtol=0, atol=1e-7)
    assert frame[0, 0] == -0.5 and frame[3, 3] < 0


def test_clamp_caps_counts_before_normalising():
    events = ev(*[(2, 1, 1)] * 5, (0, 3, 0))  # (2,1) x5, (0,3) x1
    paper = build_frame(events, S4, FrameConfig(clamp=2, **NATIVE))
    np.testing.assert_array_equal(paper, expected({(2, 1): np.float32(2 / 3), (0, 3): np.float32(1 / 3)}))
    # official: the clamp applies per polarity: ON (2,1) 5 -> 2, max 2; OFF (0,3) 1, max 1
    official = build_frame(events, S4, FrameConfig("official", clamp=2, **NATIVE))
    np.testing.assert_allclose(official, expected({(2, 1): 2 / 3 - 1, (0, 3): 0.5 - 1}, fill=-1.0), atol=1e-7)
    unclamped = build_frame(events, S4, FrameConfig(**NATIVE))
    assert unclamped[1, 2] == np.float32(5 / 6)


def test_resize_rescales_coordinates_before_counting():
    # 4x4 -> 2x2: x' = x * 2 // 4; (0,0), (1,1) merge, (3,3) alone
    frame = build_frame(ev((0, 0, 1), (1, 1, 0), (3, 3, 1)), S4, FrameConfig(out_size=(2, 2)))
    want = expected({(0, 0): np.float32(2 / 3), (1, 1): np.float32(1 / 3)}, shape=(2, 2))
    np.testing.assert_array_equal(frame, want)
    # 3 wide -> 2 wide (x' = x * 2 // 3: 0->0, 1->0, 2->1) and 2 high -> 4 high (y' = 2y)
    frame = build_frame(ev((0, 0, 1), (1, 1, 1), (2, 1, 1)), SensorSize(3, 2), FrameConfig(out_size=(4, 2)))
    np.testing.assert_array_equal(frame, expected({(0, 0): 0.5, (0, 2): 0.5, (1, 2): 0.5}, shape=(4, 2)))


def test_letterbox_scales_uniformly_and_centres():
    # 8x4 sensor into 4x4: scale 1/2 on both axes, content 4x2 centred: rows 1..2
    size = SensorSize(8, 4)
    events = ev((0, 0, 1), (7, 3, 1), (5, 1, 0))
    frame = build_frame(events, size, FrameConfig("official", out_size=(4, 4), keep_aspect=True))
    # ON: (0,1) 1, (3,2) 1 -> 1/2; OFF: (2,1) 1 -> 1/2; value = on + off - 1
    np.testing.assert_array_equal(frame, expected({(0, 1): -0.5, (3, 2): -0.5, (2, 1): -0.5}, fill=-1.0))
    # tall sensor 2x4 into 4x4: scale 1, content 2 wide centred at columns 1..2
    letterbox = FrameConfig(out_size=(4, 4), keep_aspect=True)
    frame = build_frame(ev((0, 0, 1), (1, 3, 1)), SensorSize(2, 4), letterbox)
    np.testing.assert_array_equal(frame, expected({(1, 0): 0.5, (2, 3): 0.5}))
    # odd padding (3 rows around a 1-row content): the extra row goes below
    frame = build_frame(ev((3, 0, 1)), SensorSize(4, 1), letterbox)
    np.testing.assert_array_equal(frame, expected({(3, 1): 0.5}))
    # 640x480 into 224x224: scale 224/640, content 224x168 at rows 28..195
    size = SensorSize(640, 480)
    frame = build_frame(ev((0, 0, 1), (639, 479, 1)), size, FrameConfig(keep_aspect=True))
    assert frame[28, 0] == frame[195, 223] == 0.5
    assert np.count_nonzero(frame) == 2


def test_empty_window_gives_the_empty_value():
    for representation, value in (("paper", 0.0), ("official", -1.0)):
        config = FrameConfig(representation, clamp=3)
        frame = build_frame(np.empty(0, EVENT_DTYPE), S4, config)
        assert frame.shape == (224, 224) and config.empty_value == value
        assert np.all(frame == value)


@pytest.mark.parametrize("size", [SensorSize(4, 4), SensorSize(34, 34), SensorSize(640, 480)], ids=str)
def test_paper_frame_properties(size):
    rng = np.random.default_rng(1)
    for n in (1, 50, 5_000):
        events = random_events(rng, n, size)
        for out_size in (None, (224, 224), (3, 5)):
            config = FrameConfig(out_size=out_size)
            frame = build_frame(events, size, config)
            out_h, out_w = frame_shape(size, config)
            counts = np.zeros((out_h, out_w), np.int64)  # independent reference: float division rounded once
            rows = events["y"].astype(np.int64) * out_h // size.height
            cols = events["x"].astype(np.int64) * out_w // size.width
            np.add.at(counts, (rows, cols), 1)
            np.testing.assert_array_equal(frame, (counts / (counts.max() + 1)).astype(np.float32))
            assert frame.min() >= 0 and frame.max() < 1
            assert frame.max() == np.float32(counts.max()) / np.float32(counts.max() + 1)


def test_official_frame_range():
    rng = np.random.default_rng(2)
    size = SensorSize(34, 34)
    for n in (1, 3, 10_000):
        frame = build_frame(random_events(rng, n, size), size, FrameConfig("official", clamp=5))
        assert frame.min() >= -1 and frame.max() < 1 and not np.isnan(frame).any()


CONFIGS = [
    FrameConfig(),
    FrameConfig("official"),
    FrameConfig(clamp=2.5),
    FrameConfig("official", clamp=3),
    FrameConfig(out_size=None),
    FrameConfig("official", out_size=(100, 60), keep_aspect=True),
    FrameConfig(out_size=(480, 640), keep_aspect=True),
]


@pytest.mark.parametrize("by_index", [False, True], ids=["histogram", "bincount"])
@pytest.mark.parametrize("config", CONFIGS, ids=repr)
def test_torch_equals_numpy_bit_for_bit(config, by_index):
    """Both ways of counting (the CPU's histogram, the bins a GPU counts) give build_frame's frames."""
    rng = np.random.default_rng(4)
    size = SensorSize(346, 260)
    windows = [random_events(rng, n, size) for n in (0, 1, 7, 2_000, 30_000)]
    windows.append(make_events(np.zeros(300), 10, 20, 1))  # one hot pixel only
    got = build_frames_torch(windows, size, config, by_index=by_index)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert got.shape == (len(windows), *frame_shape(size, config))
    want = torch.from_numpy(np.stack([build_frame(w, size, config) for w in windows]))
    assert torch.equal(got, want)


def test_torch_batch_of_none_and_device_argument():
    frames = build_frames_torch([], S4, FrameConfig(), device=torch.device("cpu"))
    assert frames.shape == (0, 224, 224)


def test_events_outside_the_sensor_are_an_error():
    events = ev((0, 0, 1), (4, 0, 1))
    with pytest.raises(ValueError, match="outside the 4x4 sensor"):
        build_frame(events, S4)
    for by_index in (False, True):
        with pytest.raises(ValueError, match="outside the 4x4 sensor"):
            build_frames_torch([ev((0, 0, 1)), events], S4, by_index=by_index)
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        build_frame(np.zeros((3, 4)), S4)


def test_frame_to_uint8_maps_the_range():
    paper = np.array([0.0, 0.5, 0.25, 0.999], np.float32)
    np.testing.assert_array_equal(frame_to_uint8(paper, FrameConfig()), [0, 128, 64, 255])
    official = np.array([-1.0, 0.0, 0.999], np.float32)
    np.testing.assert_array_equal(frame_to_uint8(official, FrameConfig("official")), [0, 128, 255])


def test_config_validation():
    for kwargs in (
        {"representation": "rgb"},
        {"clamp": 0},
        {"clamp": float("inf")},
        {"out_size": (224,)},
        {"out_size": (0, 224)},
        {"out_size": (224.0, 224)},
    ):
        with pytest.raises(ValueError):
            FrameConfig(**kwargs)
    assert FrameConfig(out_size=[10, 20]).out_size == (10, 20)


REAL_EVT3 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "evt3_gen41_1280x720.raw"


@pytest.mark.skipif(not REAL_EVT3.exists(), reason="../shared/data/evt3_gen41_1280x720.raw not present")
def test_real_recording_windows_and_frames():
    from event_clip_ros.events.decoders.evt3 import Evt3Decoder
    from event_clip_ros.events.windows import WindowConfig, iter_windows

    data = REAL_EVT3.read_bytes()
    pos = 0
    while data.startswith(b"%", pos):  # ASCII header lines
        pos = data.index(b"\n", pos) + 1
    body = data[pos:]
    size = SensorSize(1280, 720)
    decoder = Evt3Decoder(size)
    chunks = [decoder.decode(body[i : i + 4_000]) for i in range(0, len(body), 4_000)]
    windows = list(iter_windows(chunks, WindowConfig(duration_us=1_000)))
    assert sum(len(w.events) for w in windows) == 219_596
    for config in (FrameConfig(), FrameConfig("official", keep_aspect=True)):
        frames = build_frames_torch([w.events for w in windows], size, config)
        for w, frame in zip(windows, frames):
            assert torch.equal(frame, torch.from_numpy(build_frame(w.events, size, config)))
