"""Noise filters before windowing (event_clip_ros.events.noise) on the real recordings in ../shared/data.

* background activity: exactly dv-processing's BackgroundActivityNoiseFilter on three real sensors;
* hot pixels: exactly a plain per-event reference of the rule; the real Gen3 sensor's hot pixel is
  masked and its frame no longer black; injected uniform noise on a real recording is removed;
* one packet or many, twice over: identical masks and counts; restarts start afresh;
* windows: filtering never moves a window boundary or a stamp (Windower, iter_windows, EventInput
  fed EventPackets), windows hold the kept events only;
* the detector's parameters and counters (the node's /diagnostics: test_ros_detector.py).
"""

from __future__ import annotations

import dataclasses
import datetime

import numpy as np
import pytest
from real_recordings import DATA, RECORDINGS, needs_data, pixel_counts, recording

from event_clip_ros.apps.detector_params import config_from_parameters
from event_clip_ros.apps.event_input import EventInput
from event_clip_ros.events.encoders import encode_evt3
from event_clip_ros.events.frames import FrameConfig, build_frame
from event_clip_ros.events.noise import NoiseFilter, NoiseFilterConfig
from event_clip_ros.events.ros_cdr import encode_event_packet
from event_clip_ros.events.types import EVENT_DTYPE, SensorSize, concat_events, make_events
from event_clip_ros.events.windows import WindowConfig, Windower, iter_windows

BOTH = NoiseFilterConfig(background_activity_us=2000, hot_pixel_learn_us=100_000)


def random_cuts(n: int, rng: np.random.Generator, pieces: int = 300) -> list[slice]:
    """Cut points at random, a few single events and empty packets among them."""
    cuts = np.unique(np.concatenate([[0, n], rng.integers(0, n, pieces), [1, 2, 3, n - 1]]))
    return [slice(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])] + [slice(n, n)]


# ------------------------------------------------------------------ correctness against references
@needs_data
@pytest.mark.parametrize("name", list(RECORDINGS))
def test_background_activity_is_dv_processings_filter(name):
    dv = pytest.importorskip("dv_processing")
    events, size = recording(name)
    store = dv.EventStore()
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        store.push_back(t, x, y, bool(p))
    reference = dv.noise.BackgroundActivityNoiseFilter((size.width, size.height), datetime.timedelta(microseconds=2000))
    reference.accept(store)
    theirs = reference.generateEvents().numpy()

    noise = NoiseFilter(NoiseFilterConfig(background_activity_us=2000))
    ours = events[noise.keep(events, size)]
    assert ours.size == theirs.size
    for mine, their in (("t", "timestamp"), ("x", "x"), ("y", "y"), ("p", "polarity")):
        assert np.array_equal(ours[mine], theirs[their])
    assert noise.stats.background_removed == events.size - ours.size > 0
    assert noise.stats.hot_pixel_removed == 0


def reference_hot_pixels(events: np.ndarray, learn_us: int, factor: float, min_count: int):
    """The hot-pixel rule of the module doc, event by event in plain Python: (keep, frozen mask as a set)."""
    counts: dict[tuple[int, int], int] = {}
    total = active = 0
    start, frozen = None, None
    keep = np.empty(events.size, dtype=bool)
    for i, (t, x, y) in enumerate(zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist())):
        start = t if start is None else start
        if frozen is None and t - start >= learn_us:
            frozen = {p for p, c in counts.items() if c > min_count and c * active > factor * total}
        if frozen is not None:
            keep[i] = (x, y) not in frozen
            continue
        c = counts[(x, y)] = counts.get((x, y), 0) + 1
        total += 1
        active += c == 1
        keep[i] = not (c > min_count and c * active > factor * total)
    return keep, frozen


@needs_data
def test_hot_pixel_mask_follows_its_rule_on_a_real_sensor():
    events, size = recording("dvxplorer")  # 590 ms: learning ends after 100 ms
    config = NoiseFilterConfig(hot_pixel_learn_us=100_000, hot_pixel_factor=10.0, hot_pixel_min_count=20)
    noise = NoiseFilter(config)
    keep = noise.keep(events, size)
    expected_keep, frozen = reference_hot_pixels(events, 100_000, 10.0, 20)
    assert np.array_equal(keep, expected_keep)
    mask = noise.hot_pixel_mask
    assert {(int(x), int(y)) for y, x in zip(*np.nonzero(mask))} == frozen
    assert noise.stats.hot_pixels == len(frozen) and noise.stats.hot_pixel_removed == int((~keep).sum())
    # the DVXplorer's busiest pixel (x 187, y 105) fires in every window: masked, silent after learning
    assert mask[105, 187]
    late = events["t"] >= events["t"][0] + 100_000
    assert not np.any(keep & late & (events["x"] == 187) & (events["y"] == 105))
    # a few dozen of the ~21,000 pixels that fired, a few percent of the events
    assert 0 < len(frozen) < 0.005 * np.count_nonzero(pixel_counts(events, size))
    assert 0 < noise.stats.hot_pixel_removed < 0.1 * events.size


@needs_data
def test_the_gen3_hot_pixel_is_removed_and_the_frame_is_no_longer_black():
    events, size = recording("gen3_evt2")  # 50 ms; one pixel (x 565, y 296) fires 3323 times, 99.9% fire <= 67
    counts = pixel_counts(events, size)
    assert counts[296, 565] == counts.max() > 40 * np.percentile(counts[counts > 0], 99.9)
    noise = NoiseFilter(NoiseFilterConfig(hot_pixel_learn_us=1_000_000))  # longer than the recording: learning throughout
    kept = events[noise.keep(events, size)]
    after = pixel_counts(kept, size)
    assert after[296, 565] <= 30  # dropped once above 20 events and 10x the mean so far
    assert noise.hot_pixel_mask[296, 565]
    assert noise.stats.hot_pixel_removed < 0.02 * events.size
    assert after.max() < 0.1 * counts.max()
    # the paper's frame (counts / (max + 1)): the scene comes back once the hot pixel stops setting the max
    config = FrameConfig(out_size=None)
    before_frame, after_frame = build_frame(events, size, config), build_frame(kept, size, config)
    active = counts > 0
    assert np.median(after_frame[active]) > 5 * np.median(before_frame[active])


@needs_data
def test_injected_uniform_noise_is_removed_and_the_scene_kept():
    events, size = recording("gen3_evt2")  # a busy real scene, 10.8 Mev/s
    rng = np.random.default_rng(0)
    n_noise = 20_000  # ~1.3 events per pixel per second, uniform over the sensor and the recording
    noise_events = make_events(rng.integers(events["t"][0], events["t"][-1], n_noise), rng.integers(0, size.width, n_noise),
                               rng.integers(0, size.height, n_noise), rng.integers(0, 2, n_noise))
    merged = concat_events([events, noise_events])
    order = np.argsort(merged["t"], kind="stable")
    merged, is_noise = merged[order], (order >= events.size)
    keep = NoiseFilter(NoiseFilterConfig(background_activity_us=2000)).keep(merged, size)
    assert (~keep[is_noise]).mean() > 0.85
    assert keep[~is_noise].mean() > 0.95


def reference_background_activity(events: np.ndarray, size: SensorSize, support_us: int) -> np.ndarray:
    """The background-activity rule in plain Python with int64 times (the kernel keeps int32 times to a base)."""
    last: dict[tuple[int, int], int] = {}
    keep = np.empty(events.size, dtype=bool)
    for i, (t, x, y) in enumerate(zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist())):
        keep[i] = any(t - last[(x + dx, y + dy)] < support_us for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                      if (dx or dy) and (x + dx, y + dy) in last)
        last[(x, y)] = t
    return keep


def test_background_activity_over_hours_of_sensor_time():
    """Bursts over 5 hours (the int32 time surface is rebased every ~18 minutes): exactly the plain rule."""
    rng = np.random.default_rng(7)
    size = SensorSize(8, 6)
    bursts = np.sort(rng.integers(0, 5 * 3600 * 10**6, 1500))
    t = (bursts[:, None] + np.sort(rng.integers(0, 3000, (1500, 6)), axis=1)).ravel()
    cx, cy = rng.integers(0, 8, 1500), rng.integers(0, 6, 1500)
    x = np.clip(cx[:, None] + rng.integers(-1, 2, (1500, 6)), 0, 7).ravel()
    y = np.clip(cy[:, None] + rng.integers(-1, 2, (1500, 6)), 0, 5).ravel()
    events = make_events(t, x, y, np.ones(t.size))
    config = NoiseFilterConfig(background_activity_us=2000)
    expected = reference_background_activity(events, size, 2000)
    noise = NoiseFilter(config)
    got = np.concatenate([noise.keep(events[s], size) for s in random_cuts(events.size, rng)])
    assert np.array_equal(got, expected)
    assert 0.2 < expected.mean() < 0.9 and noise.stats.resets == 0


# ------------------------------------------------------------------ streams
@needs_data
@pytest.mark.parametrize("name", list(RECORDINGS))
def test_one_packet_or_many_give_the_same_result(name):
    events, size = recording(name)
    whole = NoiseFilter(BOTH)
    expected = whole.keep(events, size)
    for seed in (1, 2):
        packets = NoiseFilter(BOTH)
        got = np.concatenate([packets.keep(events[s], size) for s in random_cuts(events.size, np.random.default_rng(seed))])
        assert np.array_equal(got, expected)
        assert packets.stats == whole.stats
    stats = whole.stats
    assert stats.events == events.size and stats.removed == events.size - int(expected.sum())
    assert stats.hot_pixel_removed > 0 and stats.background_removed > 0 and stats.resets == 0


@needs_data
def test_a_restart_starts_the_filter_afresh():
    events, size = recording("dvxplorer")  # 590 ms: replayed, time goes back far beyond the tolerance
    noise = NoiseFilter(BOTH)
    first = noise.keep(events, size)
    replay = noise.keep(events, size)  # a bag loop: same stream again
    assert np.array_equal(replay, first) and noise.stats.resets == 1
    loop = NoiseFilter(BOTH).keep(concat_events([events, events]), size)  # the loop inside one packet
    assert np.array_equal(loop, np.concatenate([first, first]))
    noise.reset()  # what the input side does on a stream restart
    assert np.array_equal(noise.keep(events[: events.size // 2], size), first[: events.size // 2])
    other = SensorSize(size.width + 1, size.height)  # a new sensor: learnt again
    assert np.array_equal(noise.keep(events, other)[:10], NoiseFilter(BOTH).keep(events, other)[:10])
    assert noise.stats.resets == 3


def test_small_backward_steps_are_jitter_and_off_filters_keep_everything():
    size = SensorSize(8, 8)
    events = make_events([100, 200, 150, 300], [1, 2, 2, 3], [1, 1, 1, 1], [1, 0, 1, 1])  # 150: 50 us back, jitter
    noise = NoiseFilter(NoiseFilterConfig(background_activity_us=1000))
    assert noise.keep(events, size).tolist() == [False, True, True, True] and noise.stats.resets == 0
    off = NoiseFilter(NoiseFilterConfig())
    assert off.keep(events, size).all() and off.filter(events, size) is events
    assert not NoiseFilterConfig().enabled and NoiseFilterConfig().describe() == "off"
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        noise.keep(np.zeros(3), size)


@pytest.mark.parametrize("kwargs", [{"background_activity_us": -1}, {"background_activity_us": 1.5},
                                    {"hot_pixel_learn_us": 10**13}, {"background_activity_us": 2_000_000}, {"hot_pixel_factor": 0.5},
                                    {"hot_pixel_factor": float("nan")}, {"hot_pixel_min_count": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        NoiseFilterConfig(**kwargs)
    with pytest.raises(ValueError, match="finite"):
        NoiseFilterConfig.from_ms(background_activity_ms=float("inf"))


# ------------------------------------------------------------------ windows keep their boundaries
def window_key(w) -> tuple[int, int]:
    return w.t_start_us, w.t_end_us


@needs_data
@pytest.mark.parametrize("window", [WindowConfig(duration_us=20_000), WindowConfig(duration_us=30_000, hop_us=10_000),
                                    WindowConfig(duration_us=20_000, max_events=2_000)])
def test_windows_keep_the_unfiltered_boundaries(window):
    events, size = recording("dvxplorer")
    plain = list(iter_windows([events], window))
    noise = NoiseFilter(BOTH)
    filtered = list(iter_windows([events[s] for s in random_cuts(events.size, np.random.default_rng(3))], window,
                                 noise, size))
    keep = NoiseFilter(BOTH).keep(events, size)
    assert not keep[0]  # the stream's first event has no neighbour support: the grid must not move with it
    assert [window_key(w) for w in filtered] == [window_key(w) for w in plain]
    t0 = int(events["t"][0])
    assert all((w.t_start_us - t0) % window.step_us == 0 for w in filtered)
    kept = events[keep]
    for w in filtered:  # each holds exactly the kept events of its interval (the latest max_events)
        inside = kept[(kept["t"] >= w.t_start_us) & (kept["t"] < w.t_end_us)]
        if window.max_events is not None:
            inside = inside[-window.max_events :]
        assert np.array_equal(w.events, inside)
    assert sum(w.events.size for w in filtered) < sum(w.events.size for w in plain)


def test_count_windows_count_kept_events_and_time_still_comes_from_every_event():
    events = make_events(np.arange(0, 1000, 10), np.arange(100) % 8, np.zeros(100), np.ones(100))
    keep = np.arange(100) % 2 == 0
    windows = Windower(WindowConfig(event_count=10)).push(events, keep)
    assert [w.events.size for w in windows] == [10] * 5
    assert np.array_equal(concat_events([w.events for w in windows]), events[keep])
    duration = Windower(WindowConfig(duration_us=100))
    assert duration.push(events[:5], np.zeros(5, dtype=bool)) == []  # nothing kept, but the grid starts at t=0
    out = duration.push(events[5:], keep[5:]) + duration.flush()
    assert [window_key(w) for w in out] == [(100 * k, 100 * (k + 1)) for k in range(10)]  # not at t=60
    assert [w.events["t"].tolist() for w in out[:2]] == [[60, 80], [100, 120, 140, 160, 180]]
    with pytest.raises(ValueError, match="keep"):
        Windower(WindowConfig(duration_us=100)).push(events, keep[:5])


@needs_data
def test_event_input_stamps_are_the_same_with_and_without_the_filter():
    """The node's input path: real events as EVT3 EventPackets of 2 ms, 20 ms windows."""
    events, size = recording("dvxplorer")
    t = events["t"]
    edges = np.searchsorted(t, np.arange(int(t[0]), int(t[-1]) + 2000, 2000))
    stamp0 = 1_700_000_000_000_000_000
    packets, prev = [], None
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        if b > a:
            chunk = events[a:b]
            packets.append(encode_event_packet(encode_evt3(chunk, prev), encoding="evt3", width=size.width,
                                               height=size.height, seq=i, stamp_ns=stamp0 + (int(chunk["t"][0]) - int(t[0])) * 1000,
                                               frame_id="cam"))
            prev = int(chunk["t"][-1])
    window = WindowConfig(duration_us=20_000, min_events=1)
    plain, filtered = EventInput("event_camera_msgs/msg/EventPacket", window), EventInput(
        "event_camera_msgs/msg/EventPacket", window, noise=BOTH)
    got_plain = [w for raw in packets for w in plain.feed(raw)]
    got_filtered = [w for raw in packets for w in filtered.feed(raw)]
    assert len(got_filtered) == len(got_plain) > 20
    for a, b in zip(got_plain, got_filtered):
        assert (a.window.t_start_us, a.window.t_end_us, a.stamp_ns, a.frame_id) == \
            (b.window.t_start_us, b.window.t_end_us, b.stamp_ns, b.frame_id)
        assert b.n_events < a.n_events
    counters = filtered.counters()
    assert counters["noise_events_in"] == counters["events"] == events.size
    removed = counters["noise_hot_pixel_removed"] + counters["noise_background_removed"]
    assert removed == events.size - sum(w.n_events for w in got_filtered) - filtered.windower.pending_events
    assert counters["noise_hot_pixels"] > 0 and "noise_events_in" not in plain.counters()


def test_detector_parameters_configure_the_filter_and_the_frame_mode():
    config, _ = config_from_parameters({"labels": ["a"], "noise_background_activity_us": 1500,
                                        "noise_hot_pixel_learn_ms": 250.0, "noise_hot_pixel_factor": 8.0,
                                        "noise_hot_pixel_min_count": 30, "frame_mode": "view"})
    assert config.noise == NoiseFilterConfig(background_activity_us=1500, hot_pixel_learn_us=250_000,
                                             hot_pixel_factor=8.0, hot_pixel_min_count=30)
    assert config.frame_mode == "view"
    assert not config_from_parameters({"labels": ["a"]})[0].noise.enabled
    with pytest.raises(ValueError, match="noise_"):
        config_from_parameters({"labels": ["a"], "noise_hot_pixel_factor": 0.1})
    with pytest.raises(ValueError, match="frame_mode"):
        config_from_parameters({"labels": ["a"], "frame_mode": "pretty"})


def test_events_outside_the_sensor_are_left_to_the_later_checks():
    size = SensorSize(4, 4)
    events = np.zeros(3, dtype=EVENT_DTYPE)
    events["t"] = [1, 2, 3]
    events["x"] = [1, 9, 1]
    keep = NoiseFilter(NoiseFilterConfig(background_activity_us=10)).keep(events, size)
    assert keep.tolist() == [False, True, False]


# ------------------------------------------------------------------ command line
@needs_data
def test_render_denoise_and_view_on_a_real_recording(tmp_path, capsys):
    import cv2

    from event_clip_ros.cli import main

    path = str(DATA / RECORDINGS["gen3_evt2"])
    assert main(["render", path, "--window-ms", "20", "--max-frames", "1", "--out", str(tmp_path / "model")]) == 0
    assert "noise filter" not in capsys.readouterr().err
    assert main(["render", path, "--window-ms", "20", "--max-frames", "1", "--denoise", "--out", str(tmp_path / "clean")]) == 0
    out = capsys.readouterr()
    assert "hot pixels" in out.err and "(the model's input)" in out.out
    assert main(["render", path, "--window-ms", "20", "--max-frames", "1", "--view", "--out", str(tmp_path / "view")]) == 0
    assert "pictures for people" in capsys.readouterr().out
    (model,), (clean,), (view,) = (sorted((tmp_path / d).glob("*.png")) for d in ("model", "clean", "view"))
    assert model.name == clean.name == view.name  # same window, same start: filtering moved nothing
    model_img, clean_img = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (model, clean))
    assert model_img.ndim == 2 and clean_img.mean() > 5 * model_img.mean()  # the hot pixel no longer sets the scale
    assert cv2.imread(str(view), cv2.IMREAD_UNCHANGED).shape == (480, 640, 3)
    assert main(["render", path, "--view", "--clamp", "5", "--out", str(tmp_path / "x")]) == 2


def test_noise_flags_of_the_commands_that_read_events():
    from event_clip_ros.cli import build_parser
    from event_clip_ros.cli.common import DENOISE, noise_from_args
    from event_clip_ros.cli.eval_cmds import detector_parameters

    parser = build_parser()
    args = parser.parse_args(["classify", "rec.raw", "--labels", "a,b", "--denoise", "--noise-background-us", "500"])
    assert noise_from_args(args) == NoiseFilterConfig(background_activity_us=500, hot_pixel_learn_us=DENOISE.hot_pixel_learn_us)
    args = parser.parse_args(["anomaly", "rec.raw", "--noise-hot-pixel-ms", "250", "--noise-hot-pixel-factor", "5"])
    assert noise_from_args(args) == NoiseFilterConfig(hot_pixel_learn_us=250_000, hot_pixel_factor=5.0)
    assert not noise_from_args(parser.parse_args(["retrieve", "build", "idx", "--events", "r.raw"])).enabled
    args = parser.parse_args(["evaluate", "bag", "--labels", "a", "--out", "o", "--denoise", "--noise-hot-pixel-min-count", "7"])
    values = detector_parameters(args)
    config, _ = config_from_parameters(values)
    assert config.noise == dataclasses.replace(DENOISE, hot_pixel_min_count=7)
    with pytest.raises(SystemExit):
        parser.parse_args(["render", "r.raw", "--out", "o", "--noise-background-us", "-1"])
