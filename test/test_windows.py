"""Windows on sensor time and event count: boundaries, contents, cut invariance, anomalies."""

from __future__ import annotations

import logging
import weakref

import numpy as np
import pytest

from event_clip_ros.events.types import EVENT_DTYPE, make_events
from event_clip_ros.events.windows import Window, WindowConfig, Windower, iter_windows


def stream(rng: np.random.Generator, n: int, gap_p: float = 0.01) -> np.ndarray:
    """Time-ordered events: bursts (0..40 us steps, repeated times included) and rare long gaps."""
    steps = rng.integers(0, 40, n)
    gaps = rng.random(n) < gap_p
    steps[gaps] = rng.integers(10_000, 300_000, int(gaps.sum()))
    steps[0] = 0
    t = 1_000_000 + np.cumsum(steps)
    return make_events(t, rng.integers(0, 64, n), rng.integers(0, 48, n), rng.integers(0, 2, n))


def random_cuts(rng: np.random.Generator, events: np.ndarray) -> list[np.ndarray]:
    """Cut into pieces of 0 (empty pushes), 1 and up to 500 events."""
    pieces, i = [], 0
    while i < events.shape[0]:
        size = int(rng.choice([0, 1, 1, 2, 7, int(rng.integers(1, 500))]))
        pieces.append(events[i : i + size])
        i += size
    return pieces


def run(config: WindowConfig, pieces: list[np.ndarray]) -> tuple[list[Window], Windower]:
    windower = Windower(config)
    out = []
    for piece in pieces:
        out.extend(windower.push(piece))
    out.extend(windower.flush())
    return out, windower


def expected_duration_windows(events: np.ndarray, config: WindowConfig) -> tuple[list[tuple], int]:
    """Brute force: every window of the grid from the first event, sliced from the whole array by mask."""
    t = events["t"]
    t0, step, d = int(t[0]), config.step_us, config.duration_us
    windows, skipped = [], 0
    for k in range((int(t[-1]) - t0) // step + 1):
        start = t0 + k * step
        inside = events[(t >= start) & (t < start + d)]
        if inside.shape[0] < config.min_events:
            skipped += 1
            continue
        if config.max_events is not None:
            inside = inside[-config.max_events :]
        windows.append((start, start + d, inside))
    return windows, skipped


def assert_same(windows: list[Window], expected: list[tuple]) -> None:
    assert len(windows) == len(expected)
    for i, (w, (start, end, events)) in enumerate(zip(windows, expected)):
        assert (w.index, w.t_start_us, w.t_end_us) == (i, start, end)
        assert w.events.dtype == EVENT_DTYPE
        np.testing.assert_array_equal(w.events, events)


DURATION_CASES = [  # config, number of events, probability of a long gap
    pytest.param(WindowConfig(duration_us=5_000), 3_000, 0.01, id="tumbling"),
    pytest.param(WindowConfig(duration_us=5_000, hop_us=1_000), 3_000, 0.01, id="sliding"),
    pytest.param(WindowConfig(duration_us=3_000, hop_us=7_000), 3_000, 0.01, id="sampled"),
    pytest.param(WindowConfig(duration_us=5_000, hop_us=2_500, min_events=30), 3_000, 0.01, id="min_events"),
    pytest.param(WindowConfig(duration_us=20_000, hop_us=5_000, max_events=50), 3_000, 0.01, id="max_events"),
    pytest.param(WindowConfig(duration_us=1), 500, 0.0, id="1us"),  # a window per time, repeated times
]


@pytest.mark.parametrize("config,n,gap_p", DURATION_CASES)
def test_duration_windows_equal_direct_slices_for_any_cut(config, n, gap_p):
    rng = np.random.default_rng(7)
    events = stream(rng, n, gap_p)
    expected, skipped = expected_duration_windows(events, config)
    assert expected, "the stream must produce windows"
    whole, ref = run(config, [events])
    assert_same(whole, expected)
    assert ref.stats.skipped_windows == skipped
    assert ref.stats.windows == len(expected)
    for seed in range(6):
        cut, windower = run(config, random_cuts(np.random.default_rng(seed), events))
        assert_same(cut, expected)
        assert windower.stats.as_dict() == ref.stats.as_dict()


def test_count_windows_for_any_cut():
    rng = np.random.default_rng(3)
    events = stream(rng, 1_003)
    config = WindowConfig(event_count=100, min_events=3)
    expected = [events[i : i + 100] for i in range(0, 1_000, 100)] + [events[1_000:]]
    for seed in range(8):
        windows, windower = run(config, random_cuts(np.random.default_rng(seed), events))
        assert len(windows) == len(expected)
        for i, (w, ev) in enumerate(zip(windows, expected)):
            np.testing.assert_array_equal(w.events, ev)
            assert (w.index, w.t_start_us, w.t_end_us) == (i, int(ev["t"][0]), int(ev["t"][-1]) + 1)
        assert windower.stats.skipped_windows == 0


def test_count_windows_final_partial_group_needs_min_events():
    events = make_events(np.arange(10) * 10, 0, 0, 1)
    windower = Windower(WindowConfig(event_count=4))
    assert windower.push(events[:3]) == []
    assert len(windower.push(events[3:4])) == 1  # emitted as soon as the 4th event arrives
    windows, windower = run(WindowConfig(event_count=4, min_events=3), [events])
    assert [len(w.events) for w in windows] == [4, 4]  # the last 2 events are too few
    assert windower.stats.skipped_windows == 1
    windows, _ = run(WindowConfig(event_count=4, min_events=2), [events])
    assert [len(w.events) for w in windows] == [4, 4, 2]
    assert (windows[2].t_start_us, windows[2].t_end_us) == (80, 91)


def test_window_completes_only_when_a_later_event_arrives():
    windower = Windower(WindowConfig(duration_us=100))
    assert windower.push(make_events([1_000, 1_050, 1_099], 0, 0, 1)) == []
    assert windower.push(np.empty(0, EVENT_DTYPE)) == []
    (w,) = windower.push(make_events([1_100], 0, 0, 1))  # t >= end closes [1000, 1100)
    assert (w.t_start_us, w.t_end_us, w.events["t"].tolist()) == (1_000, 1_100, [1_000, 1_050, 1_099])
    (last,) = windower.flush()
    assert (last.index, last.t_start_us, last.t_end_us) == (1, 1_100, 1_200)
    assert last.events["t"].tolist() == [1_100]
    assert windower.flush() == []


def test_min_events_skips_sparse_windows():
    t = [0, 10, 20, 100, 200, 210]  # windows of 100 us: 3, 1 and 2 events
    windows, windower = run(WindowConfig(duration_us=100, min_events=2), [make_events(t, 0, 0, 1)])
    assert [(w.t_start_us, len(w.events)) for w in windows] == [(0, 3), (200, 2)]
    assert windower.stats.skipped_windows == 1


def test_long_gap_is_jumped_and_counted():
    t = [0, 5, 10**12, 10**12 + 1]
    config = WindowConfig(duration_us=1_000, hop_us=1)  # 10**12 grid windows in the gap
    windows, windower = run(config, [make_events(t, 0, 0, 1)])
    starts = [w.t_start_us for w in windows]
    assert starts[:6] == [0, 1, 2, 3, 4, 5]  # the grid windows holding t=5
    assert starts[6:] == list(range(10**12 - 999, 10**12 + 2))  # those holding the far events
    assert windower.stats.skipped_windows == (10**12 - 999) - 6  # the empty ones in between


def test_sliding_windows_memory_stays_bounded():
    rng = np.random.default_rng(11)
    events = stream(rng, 20_000, gap_p=0.0)
    config = WindowConfig(duration_us=2_000, hop_us=500)
    windower = Windower(config)
    t0, pushed = int(events["t"][0]), 0
    for piece in np.array_split(events, 400):
        windower.push(piece)
        pushed += piece.shape[0]
        # only the events of windows still open are kept: those from the start of the first open window
        last_complete = (int(events["t"][pushed - 1]) - t0 - config.duration_us) // config.step_us
        oldest_open = t0 + (last_complete + 1) * config.step_us
        assert windower.pending_events == np.count_nonzero(events["t"][:pushed] >= oldest_open)


def test_max_events_keeps_latest_and_bounds_memory():
    n, cap = 10_000, 100
    events = make_events(np.arange(n), np.arange(n) % 64, 0, 1)  # one long window
    windower = Windower(WindowConfig(duration_us=10**9, max_events=cap))
    for piece in np.array_split(events, 1_000):
        assert windower.push(piece) == []
        assert windower.pending_events <= 2 * cap + piece.shape[0]
    (w,) = windower.flush()
    np.testing.assert_array_equal(w.events, events[-cap:])
    assert windower.stats.capped_windows == 1


def test_time_reset_flushes_and_reanchors(caplog):
    t = [1_000, 1_050, 1_120, 1_130, 500, 520, 640]  # back by 630 us > tolerance 100 at index 4
    events = make_events(t, 0, 0, 1)
    config = WindowConfig(duration_us=100, reset_tolerance_us=100)
    with caplog.at_level(logging.WARNING, logger="event_clip_ros.events"):
        cuts = ([events], [events[:4], events[4:]], [events[:5], events[5:]], [e[None] for e in events])
        for pieces in cuts:
            windows, windower = run(config, pieces)
            got = [(w.t_start_us, w.t_end_us, w.events["t"].tolist()) for w in windows]
            assert got == [
                (1_000, 1_100, [1_000, 1_050]),
                (1_100, 1_200, [1_120, 1_130]),  # open window flushed at the reset
                (500, 600, [500, 520]),  # re-anchored at the new time
                (600, 700, [640]),
            ]
            assert [w.index for w in windows] == [0, 1, 2, 3]
            assert windower.stats.time_resets == 1
    assert sum("time went back" in r.message for r in caplog.records) == 4  # once per windower


def test_small_backward_steps_are_clamped_in_a_copy():
    events = make_events([0, 10, 8, 20, 15, 30], 0, 0, 1)
    original = events.copy()
    windows, windower = run(WindowConfig(event_count=6, reset_tolerance_us=5), [events])
    assert windows[0].events["t"].tolist() == [0, 10, 10, 20, 20, 30]
    assert windower.stats.clamped_events == 2 and windower.stats.time_resets == 0
    np.testing.assert_array_equal(events, original)


def test_many_resets_in_one_push_and_across_pushes():
    t = np.tile([1_000_000, 0], 500)  # every other event jumps back a second: 500 restarts
    events = make_events(t, 0, 0, 1)
    config = WindowConfig(event_count=1_000, reset_tolerance_us=10_000)
    whole, ref = run(config, [events])
    cut, windower = run(config, random_cuts(np.random.default_rng(0), events))
    assert ref.stats.time_resets == windower.stats.time_resets == 500
    assert [w.events["t"].tolist() for w in whole] == [w.events["t"].tolist() for w in cut]
    # segments [1e6], [0, 1e6] x 499, [0]: each is flushed as its own window
    assert [w.events["t"].tolist() for w in whole] == [[1_000_000]] + [[0, 1_000_000]] * 499 + [[0]]


def test_flush_ends_the_stream_without_a_reset():
    windower = Windower(WindowConfig(duration_us=100))
    windower.push(make_events([5_000, 5_010], 0, 0, 1))
    assert len(windower.flush()) == 1
    windower.push(make_events([10, 20], 0, 0, 1))  # earlier time: a new stream, not a restart
    (w,) = windower.flush()
    assert (w.index, w.t_start_us) == (1, 10) and windower.stats.time_resets == 0


def test_reset_drops_pending_events():
    windower = Windower(WindowConfig(duration_us=100))
    windower.push(make_events([5_000, 5_010], 0, 0, 1))
    windower.reset()
    assert windower.pending_events == 0 and windower.flush() == []


def test_window_events_are_read_only():
    events = make_events(np.arange(10) * 50, 0, 0, 1)
    windows, _ = run(WindowConfig(duration_us=100, hop_us=50), [events])
    with pytest.raises(ValueError):
        windows[0].events["x"][0] = 3


@pytest.mark.parametrize("config", [WindowConfig(duration_us=2_000), WindowConfig(duration_us=3_000, hop_us=1_000)],
                         ids=["tumbling", "sliding"])
def test_buffer_memory_is_reused_only_once_no_window_refers_to_it(config):
    """Events written through reserve (as decoders do) into memory of windows emitted before, once
    nothing refers to it: windows and views still held keep their events."""
    rng = np.random.default_rng(12)
    events = stream(rng, 60_000, gap_p=0.0)
    expected, _ = expected_duration_windows(events, config)
    windower = Windower(config)
    held: dict[int, np.ndarray] = {}
    seen: list[weakref.ref] = []
    reused = 0

    def check(window: Window) -> None:
        nonlocal reused
        np.testing.assert_array_equal(window.events, expected[window.index][2])
        base = window.events.base
        reused += any(ref() is base for ref in seen)
        seen.append(weakref.ref(base))
        if window.index % 5 == 0:
            held[window.index] = window.events[::3]  # a view of it, held to the end

    for piece in np.array_split(events, 600):
        tail = windower.reserve(piece.shape[0])
        tail[:] = piece
        for window in windower.push(tail):
            check(window)
    for window in windower.flush():
        check(window)
    assert reused > len(seen) // 2
    for index, view in held.items():
        np.testing.assert_array_equal(view, expected[index][2][::3])


def test_iter_windows_matches_push_and_flush():
    rng = np.random.default_rng(5)
    events = stream(rng, 2_000)
    config = WindowConfig.by_duration_ms(4, hop_ms=2)
    pieces = random_cuts(rng, events)
    expected, _ = run(config, pieces)
    got = list(iter_windows(iter(pieces), config))
    assert [(w.index, w.t_start_us, w.t_end_us) for w in got] == [
        (w.index, w.t_start_us, w.t_end_us) for w in expected
    ]


def test_push_rejects_other_arrays():
    windower = Windower(WindowConfig(event_count=3))
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        windower.push(np.zeros(3, dtype=np.int64))


def test_config_constructors_and_validation():
    assert WindowConfig.by_duration_ms(2.5) == WindowConfig(duration_us=2_500)
    assert WindowConfig.by_duration_ms(50, hop_ms=10).step_us == 10_000
    assert WindowConfig.by_count(30_000) == WindowConfig(event_count=30_000)
    assert WindowConfig(duration_us=np.int64(7)).duration_us.__class__ is int
    bad = [
        {},
        {"duration_us": 10, "event_count": 5},
        {"duration_us": 0},
        {"duration_us": 1.5},
        {"duration_us": True},
        {"duration_us": 10, "hop_us": -1},
        {"event_count": 5, "hop_us": 2},
        {"event_count": 5, "max_events": 2},
        {"event_count": 5, "min_events": 6},
        {"duration_us": 10, "min_events": 0},
        {"duration_us": 10, "max_events": 2, "min_events": 3},
        {"duration_us": 10, "reset_tolerance_us": -1},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            WindowConfig(**kwargs)
    with pytest.raises(ValueError):
        WindowConfig.by_duration_ms(0.0001)
    with pytest.raises(ValueError):
        _ = WindowConfig(event_count=5).step_us


@pytest.mark.parametrize(
    "config",
    [
        WindowConfig(duration_us=2_000, hop_us=500, reset_tolerance_us=50),
        WindowConfig(event_count=64, reset_tolerance_us=50),
    ],
    ids=["sliding", "count"],
)
def test_disordered_stream_gives_the_same_windows_for_any_cut(config):
    rng = np.random.default_rng(9)
    events = stream(rng, 4_000)
    t = events["t"]
    jitter = rng.random(t.shape[0]) < 0.05
    t[jitter] -= rng.integers(1, 50, int(jitter.sum()))  # within tolerance: clamped
    for i in rng.choice(t.shape[0], 5, replace=False):
        t[i:] -= 100_000  # restarts
    whole, ref = run(config, [events])
    assert ref.stats.time_resets == 5 and ref.stats.clamped_events > 0
    for w in whole:
        assert np.all(np.diff(w.events["t"]) >= 0)
    for seed in range(5):
        cut, windower = run(config, random_cuts(np.random.default_rng(seed), events))
        assert [(w.t_start_us, w.t_end_us) for w in cut] == [(w.t_start_us, w.t_end_us) for w in whole]
        for a, b in zip(cut, whole):
            np.testing.assert_array_equal(a.events, b.events)
        assert windower.stats.as_dict() == ref.stats.as_dict()


@pytest.mark.parametrize("config", [WindowConfig(duration_us=2_000, hop_us=500, reset_tolerance_us=50),
                                    WindowConfig(event_count=64, reset_tolerance_us=50)], ids=["sliding", "count"])
def test_ordered_chunks_skip_the_scan_but_not_the_step_between_chunks(config):
    """push(ordered=True), as after a decoder: chunks whose times never go back inside, but a chunk may
    start before the last one ended (jitter, a restart): the same windows and counters as a plain push."""
    rng = np.random.default_rng(10)
    events = stream(rng, 4_000)
    pieces = random_cuts(rng, events)
    for k in rng.choice(len(pieces), 12, replace=False):  # some chunks start back in time
        if pieces[k].shape[0]:
            pieces[k] = pieces[k].copy()
            pieces[k]["t"] -= rng.choice([45, 100_000])  # clamped jitter (tolerance 50 us), or a restart
    plain, ref = run(config, pieces)
    windower, ordered = Windower(config), []
    for piece in pieces:
        ordered.extend(windower.push(piece, ordered=True))
    ordered.extend(windower.flush())
    assert ref.stats.time_resets > 0 and ref.stats.clamped_events > 0
    assert [(w.t_start_us, w.t_end_us) for w in ordered] == [(w.t_start_us, w.t_end_us) for w in plain]
    for a, b in zip(ordered, plain):
        np.testing.assert_array_equal(a.events, b.events)
    assert windower.stats.as_dict() == ref.stats.as_dict()
