"""The DVS simulator and the RAW EVT3 writer."""

from __future__ import annotations

import numpy as np
import pytest

from event_clip_ros.events.readers import open_events
from event_clip_ros.events.simulate import EventSimulator, SimulatorConfig, frames_to_events, moving_shapes
from event_clip_ros.events.types import SensorSize, concat_events, make_events
from event_clip_ros.events.writers import write_raw_evt3

SIZE = SensorSize(8, 6)


def test_static_scene_fires_nothing():
    frame = np.full((6, 8), 0.5, np.float32)
    assert sum(ev.size for ev in frames_to_events(((t, frame) for t in range(0, 10_000, 1000)), SIZE)) == 0


def test_brightness_step_fires_the_expected_crossings():
    c = 0.2
    sim = EventSimulator(SIZE, SimulatorConfig(contrast_threshold=c))
    a = np.full((6, 8), 0.2, np.float32)
    b = a.copy()
    b[2, 3] = 0.6  # ON: log ratio / c crossings
    b[4, 5] = 0.05  # OFF
    assert sim.push(0, a).size == 0
    ev = sim.push(1000, b)
    eps = SimulatorConfig().log_eps
    n_on = int(np.floor(np.log((eps + 0.6) / (eps + 0.2)) / c))
    n_off = int(np.floor(np.log((eps + 0.2) / (eps + 0.05)) / c))
    on, off = ev[ev["p"] == 1], ev[ev["p"] == 0]
    assert on.size == n_on and off.size == n_off
    assert set(zip(on["x"].tolist(), on["y"].tolist())) == {(3, 2)}
    assert set(zip(off["x"].tolist(), off["y"].tolist())) == {(5, 4)}
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"].min() >= 0 and ev["t"].max() <= 1000
    # crossings are spread over the interval in order: the k-th at k*c/|d| of it
    assert np.all(np.diff(on["t"]) > 0)
    # the same step again fires nothing more (the reference moved with the crossings)
    assert sim.push(2000, b).size == 0


def test_frames_must_advance_and_match_the_sensor():
    sim = EventSimulator(SIZE)
    sim.push(0, np.zeros((6, 8), np.float32))
    with pytest.raises(ValueError, match="increase"):
        sim.push(0, np.zeros((6, 8), np.float32))
    with pytest.raises(ValueError, match="shape"):
        sim.push(10, np.zeros((5, 8), np.float32))


def test_noise_rate_matches_the_configuration():
    size = SensorSize(100, 100)
    frame = np.full((100, 100), 0.5, np.float32)
    cfg = SimulatorConfig(noise_rate_hz=10.0, seed=1)
    n = sum(ev.size for ev in frames_to_events(((t, frame) for t in range(0, 1_000_001, 10_000)), size, cfg))
    expected = 10.0 * 100 * 100 * 1.0
    assert abs(n - expected) < 5 * np.sqrt(expected)


def test_moving_shapes_is_deterministic_and_moves():
    size = SensorSize(64, 48)
    a = concat_events(list(frames_to_events(moving_shapes(size, 50_000, seed=2), size)))
    b = concat_events(list(frames_to_events(moving_shapes(size, 50_000, seed=2), size)))
    assert a.size > 500 and np.array_equal(a, b)


def test_raw_writer_round_trip_over_rollovers_and_gaps(tmp_path):
    rng = np.random.default_rng(0)
    chunks = []
    t = 5_000_000
    for _ in range(6):  # chunks separated by gaps of up to 20 s: several 24-bit wraps
        n = 2000
        ts = t + np.sort(rng.integers(0, 100_000, n))
        chunks.append(make_events(ts, rng.integers(0, 300, n), rng.integers(0, 200, n), rng.integers(0, 2, n)))
        t = int(ts[-1]) + int(rng.integers(0, 20_000_000))
    path = tmp_path / "long.raw"
    assert write_raw_evt3(path, chunks, SensorSize(300, 200)) == 12000
    assert not (tmp_path / "long.raw.tmp").exists()
    with open_events(path) as reader:
        assert reader.format == "evt3" and reader.size == SensorSize(300, 200)
        back = concat_events(list(reader.chunks()))
    src = concat_events(chunks)
    offset = int(src["t"][0]) >> 24 << 24  # a decoder starts its 24-bit epoch at 0
    assert np.array_equal(back["t"], src["t"] - offset)
    for f in "xyp":
        assert np.array_equal(back[f], src[f])
