"""event-clip to-bag: recordings written here converted into bags of EventPackets (mcap and sqlite3), read back."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from event_clip_ros.apps.bag_writer import BagWriteConfig, cut_packets, label_messages, write_event_bag
from event_clip_ros.apps.evaluation.truth import Range, TimeRanges
from event_clip_ros.cli import main as cli_main
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.ros_cdr import parse_event_packet
from event_clip_ros.events.types import SensorSize, concat_events, make_events
from event_clip_ros.events.writers import write_raw_evt3

SIZE = SensorSize(320, 240)
ORIGIN_NS = 1_700_000_000_000_000_000


def scene(n: int = 20_000, seed: int = 0, t0_us: int = 5_000, span_us: int = 400_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = t0_us + np.sort(rng.integers(0, span_us, n))
    t[n // 2:] += 50_000  # a 50 ms gap: slots without events are skipped
    return make_events(t, rng.integers(0, SIZE.width, n), rng.integers(0, SIZE.height, n), rng.integers(0, 2, n))


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    events = scene()
    path = tmp_path_factory.mktemp("to_bag") / "scene.raw"
    write_raw_evt3(path, np.array_split(events, 7), SIZE)
    return path, events


def read_bag(path):
    """(topic, log time, raw) of every message."""
    with Reader(path) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def test_cut_packets_is_independent_of_chunking():
    events = scene(n=5_000)
    whole = list(cut_packets([events], SIZE, 2_000))
    split = list(cut_packets(np.array_split(events, 13), SIZE, 2_000))
    assert [p.end_us for p in whole] == [p.end_us for p in split]
    for a, b in zip(whole, split):
        np.testing.assert_array_equal(a.events, b.events)
    t0 = int(events["t"][0])
    for p in whole:  # each packet lies in its slot [end - 2 ms, end) of the grid from the first event
        assert (p.end_us - t0) % 2_000 == 0
        assert p.end_us - 2_000 <= p.events["t"][0] and p.events["t"][-1] < p.end_us
    np.testing.assert_array_equal(concat_events([p.events for p in whole]), events)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("encoding", ["evt3", "mono"])
def test_bag_gives_back_the_recording(tmp_path, recording, storage, encoding):
    path, events = recording
    config = BagWriteConfig(encoding=encoding, packet_ms=2.5, storage=storage, stamp_origin_ns=ORIGIN_NS, frame_id="cam")
    summary = write_event_bag(path, tmp_path / "bag", config)
    t = events["t"]
    slots = np.unique((t - t[0]) // 2_500)
    assert summary.packets == slots.size and summary.events == events.size and summary.size == SIZE
    messages = read_bag(tmp_path / "bag")
    assert [topic for topic, _, _ in messages] == ["/event_camera/events"] * slots.size
    for seq, ((_, log_ns, raw), slot) in enumerate(zip(messages, slots)):
        msg = parse_event_packet(raw)
        first_us = int(t[np.searchsorted((t - t[0]) // 2_500, slot)])
        assert (msg.seq, msg.encoding, msg.width, msg.height, msg.frame_id) == (seq, encoding, 320, 240, "cam")
        assert msg.stamp_ns == ORIGIN_NS + first_us * 1000  # header: the first event's time
        assert log_ns == ORIGIN_NS + (int(t[0]) + (int(slot) + 1) * 2_500) * 1000  # log: the slot's end
        assert msg.time_base_ns == (first_us * 1000 if encoding == "mono" else 0)
    with open_events(tmp_path / "bag") as reader:
        assert reader.size == SIZE
        np.testing.assert_array_equal(concat_events(list(reader.chunks())), events)


def test_label_topic_marks_ranges_and_gaps(tmp_path, recording):
    path, _ = recording
    truth = TimeRanges((Range(0, 100_000_000, "cat"), Range(100_000_000, 200_000_000, "dog"),
                        Range(300_000_000, 350_000_000, "cat")), "sensor")
    assert label_messages(truth, 7) == [(7, "cat"), (100_000_007, "dog"), (200_000_007, ""), (300_000_007, "cat"),
                                        (350_000_007, "")]
    write_event_bag(path, tmp_path / "bag", BagWriteConfig(storage="sqlite3"), truth)
    store = get_typestore(Stores.LATEST)
    labels = [(t, store.deserialize_cdr(raw, "std_msgs/msg/String").data)
              for topic, t, raw in read_bag(tmp_path / "bag") if topic == "/labels"]
    assert labels == label_messages(truth, 0)


def test_bad_requests_are_refused_and_leave_no_bag(tmp_path, recording):
    path, _ = recording
    with pytest.raises(ValueError, match="mono packets hold at most"):
        BagWriteConfig(encoding="mono", packet_ms=5_000)
    with pytest.raises(ValueError, match="encoding must be one of"):
        BagWriteConfig(encoding="libcaer")
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        write_event_bag(path, tmp_path / "taken")
    empty = tmp_path / "empty.raw"
    write_raw_evt3(empty, [], SIZE)
    with pytest.raises(Exception, match="no events"):
        write_event_bag(empty, tmp_path / "from_empty")
    assert not (tmp_path / "from_empty").exists()


def test_cli_to_bag_with_labels_csv(tmp_path, recording, capsys):
    path, events = recording
    csv_path = tmp_path / "truth.csv"
    csv_path.write_text("t_start_us,t_end_us,label\n0,200000,cat\n200000,600000,dog\n")
    assert cli_main(["to-bag", str(path), str(tmp_path / "bag"), "--packet-ms", "10", "--labels", str(csv_path),
                     "--storage", "sqlite3"]) == 0
    assert "3 labels on /labels" in capsys.readouterr().out
    topics = [topic for topic, _, _ in read_bag(tmp_path / "bag")]
    assert topics.count("/labels") == 3 and topics.count("/event_camera/events") > 0
    per_window = tmp_path / "windows.csv"
    per_window.write_text("window,label\n0,cat\n")
    assert cli_main(["to-bag", str(path), str(tmp_path / "bag2"), "--labels", str(per_window)]) == 2
    assert "time ranges" in capsys.readouterr().err
