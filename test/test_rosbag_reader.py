"""RosbagReader on bags written here with rosbags (MCAP and SQLite3 storage)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer

from event_clip_ros.events.encoders import encode_evt3, encode_mono
from event_clip_ros.events.readers import rosbag as rosbag_module
from event_clip_ros.events.readers.base import EventFileError
from event_clip_ros.events.readers.rosbag import EventTopic, RosbagReader, list_event_topics
from event_clip_ros.events.ros_cdr import encode_event_array, encode_event_packet
from event_clip_ros.events.types import DecodeStats, SensorSize, concat_events, make_events

from cdr_helpers import event_typestore

EVT3_SIZE = SensorSize(1280, 720)
MONO_SIZE = SensorSize(640, 480)
DVS_SIZE = SensorSize(346, 260)
STORAGES = [StoragePlugin.MCAP, StoragePlugin.SQLITE3]


@pytest.fixture(scope="module")
def typestore():
    return event_typestore()


def make_source(n: int, size: SensorSize, seed: int, t0_us: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(t0_us + np.sort(rng.integers(0, 3_000_000, n)), rng.integers(0, size.width, n),
                       rng.integers(0, size.height, n), rng.integers(0, 2, n))


SOURCES = {
    "/event_camera/events": make_source(30_000, EVT3_SIZE, 0, 12_345),
    "/mono/events": make_source(10_000, MONO_SIZE, 1, 2_000_000),
    "/dvs/events": make_source(5_000, DVS_SIZE, 2, 1_700_000_000_000_000),
}


def evt3_messages(events: np.ndarray, n: int) -> list[bytes]:
    out, prev = [], None
    for seq, part in enumerate(np.array_split(events, n)):
        out.append(encode_event_packet(encode_evt3(part, prev_t_us=prev), encoding="evt3", seq=seq,
                                       width=EVT3_SIZE.width, height=EVT3_SIZE.height, frame_id="camera"))
        prev = int(part["t"][-1])
    return out


def mono_messages(events: np.ndarray, n: int) -> list[bytes]:
    out = []
    for seq, part in enumerate(np.array_split(events, n)):
        tb = int(part["t"][0]) * 1000
        out.append(encode_event_packet(encode_mono(part, tb), encoding="mono", seq=seq, time_base_ns=tb,
                                       width=MONO_SIZE.width, height=MONO_SIZE.height))
    return out


def dvs_messages(events: np.ndarray, n: int) -> list[bytes]:
    return [encode_event_array(part, DVS_SIZE.width, DVS_SIZE.height, stamp_ns=int(part["t"][0]) * 1000,
                               frame_id="dvs") for part in np.array_split(events, n)]


def write_bag(path: Path, typestore, topics: dict[str, tuple[str, list[bytes]]],
              storage: StoragePlugin = StoragePlugin.MCAP) -> Path:
    """Write topic -> (msgtype, raw messages); messages of all topics interleave in log time."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        for topic, (msgtype, raws) in topics.items():
            conn = writer.add_connection(topic, msgtype, typestore=typestore)
            for i, raw in enumerate(raws):
                writer.write(conn, 1_000_000_000 + i * 1_000_000 + len(topic), raw)
    return path


@pytest.fixture(scope="module", params=STORAGES, ids=lambda p: p.name.lower())
def full_bag(request, tmp_path_factory, typestore) -> Path:
    path = tmp_path_factory.mktemp("bags") / "full"
    String = typestore.types["std_msgs/msg/String"]
    return write_bag(path, typestore, {
        "/event_camera/events": ("event_camera_msgs/msg/EventPacket",
                                 evt3_messages(SOURCES["/event_camera/events"], 30)),
        "/mono/events": ("event_camera_msgs/msg/EventPacket", mono_messages(SOURCES["/mono/events"], 10)),
        "/dvs/events": ("dvs_msgs/msg/EventArray", dvs_messages(SOURCES["/dvs/events"], 20)),
        "/chatter": ("std_msgs/msg/String",
                     [bytes(typestore.serialize_cdr(String(data="hi"), "std_msgs/msg/String"))]),
    }, request.param)


def read_all(reader: RosbagReader) -> np.ndarray:
    return concat_events(list(reader.chunks()))


@pytest.mark.parametrize("topic, size, encoding", [
    ("/event_camera/events", EVT3_SIZE, "evt3"),
    ("/mono/events", MONO_SIZE, "mono"),
    ("/dvs/events", DVS_SIZE, None),
])
def test_topics_read_back_equal_to_the_source(full_bag, topic, size, encoding):
    with RosbagReader(full_bag, topic=topic) as reader:
        assert (reader.format, reader.size, reader.encoding, reader.topic) == ("rosbag2", size, encoding, topic)
        np.testing.assert_array_equal(read_all(reader), SOURCES[topic])
        assert reader.stats.bad_packets == reader.stats.lost_packets == reader.stats.time_resets == 0
        assert reader.stats.events == SOURCES[topic].size


def test_single_storage_file_is_a_bag(full_bag):
    storage_file = next(p for p in full_bag.iterdir() if p.suffix in (".mcap", ".db3"))
    reader = RosbagReader(storage_file, topic="/dvs/events")
    np.testing.assert_array_equal(read_all(reader), SOURCES["/dvs/events"])


def test_list_event_topics(full_bag):
    assert list_event_topics(full_bag) == [
        EventTopic("/dvs/events", "dvs_msgs/msg/EventArray", 20),
        EventTopic("/event_camera/events", "event_camera_msgs/msg/EventPacket", 30),
        EventTopic("/mono/events", "event_camera_msgs/msg/EventPacket", 10),
    ]


def test_topic_selection_errors(full_bag):
    with pytest.raises(EventFileError, match="several event topics.*/dvs/events.*/event_camera/events"):
        RosbagReader(full_bag)
    with pytest.raises(EventFileError, match="no topic '/nope'.*/mono/events"):
        RosbagReader(full_bag, topic="/nope")
    with pytest.raises(EventFileError, match="std_msgs/msg/String.*not a supported event message"):
        RosbagReader(full_bag, topic="/chatter")


@pytest.mark.parametrize("storage", STORAGES, ids=lambda p: p.name.lower())
def test_only_event_topic_is_picked_and_chunks_are_bounded(tmp_path, typestore, monkeypatch, storage):
    events = SOURCES["/event_camera/events"]
    bag = write_bag(tmp_path / "bag", typestore, {
        "/cam/events": ("event_array_msgs/msg/EventArray", evt3_messages(events, 30)),  # legacy type name
    }, storage)
    monkeypatch.setattr(rosbag_module, "CHUNK_EVENTS", 4096)
    reader = RosbagReader(bag)
    assert (reader.topic, reader.msgtype) == ("/cam/events", "event_array_msgs/msg/EventArray")
    chunks = list(reader.chunks())
    assert [c.size for c in chunks[:-1]] == [4096] * (len(chunks) - 1)
    assert 0 < chunks[-1].size <= 4096
    np.testing.assert_array_equal(concat_events(chunks), events)


def test_no_event_topic(tmp_path, typestore):
    String = typestore.types["std_msgs/msg/String"]
    bag = write_bag(tmp_path / "bag", typestore, {
        "/chatter": ("std_msgs/msg/String", [bytes(typestore.serialize_cdr(String(data="x"), "std_msgs/msg/String"))]),
    })
    assert list_event_topics(bag) == []
    with pytest.raises(EventFileError, match="no event topic.*/chatter"):
        RosbagReader(bag)


def test_topic_without_decodable_message(tmp_path, typestore):
    bag = write_bag(tmp_path / "empty", typestore, {"/ev": ("dvs_msgs/msg/EventArray", [])})
    with pytest.raises(EventFileError, match="no decodable message.*empty"):
        RosbagReader(bag)
    bad = encode_event_packet(b"\x00" * 8, encoding="evt9", width=10, height=10)
    bag = write_bag(tmp_path / "unknown", typestore, {"/ev": ("event_camera_msgs/msg/EventPacket", [bad])})
    with pytest.raises(EventFileError, match="evt9"):
        RosbagReader(bag)


def test_bad_messages_are_counted_and_skipped(tmp_path, typestore):
    events = SOURCES["/dvs/events"]
    raws = dvs_messages(events, 5)
    bag = write_bag(tmp_path / "bag", typestore, {"/ev": ("dvs_msgs/msg/EventArray",
                                                          [b"\x00\x01\x00\x00garbage"] + raws[:3] + [raws[3][:40]])})
    reader = RosbagReader(bag)
    assert reader.size == DVS_SIZE  # from the first message that parses
    np.testing.assert_array_equal(read_all(reader), concat_events(np.array_split(events, 5)[:3]))
    assert reader.stats.bad_packets == 2


def test_bag_directory_without_metadata_reads_its_storage_file(tmp_path, typestore, caplog):
    bag = write_bag(tmp_path / "bag", typestore, {"/ev": ("dvs_msgs/msg/EventArray", dvs_messages(SOURCES["/dvs/events"], 3))})
    (bag / "metadata.yaml").unlink()
    with caplog.at_level(logging.WARNING):
        reader = RosbagReader(bag)
    assert "no metadata.yaml" in caplog.text
    np.testing.assert_array_equal(read_all(reader), SOURCES["/dvs/events"])


def test_events_outside_the_first_sensor_size_are_dropped(tmp_path, typestore):
    """size comes from the first message; a later, larger geometry must not leak events outside it."""
    small, large = SensorSize(320, 240), EVT3_SIZE
    first, second = make_source(2000, small, 3, 1000), make_source(2000, large, 4, 4_000_000)
    raws = [encode_event_packet(encode_evt3(first), encoding="evt3", seq=0, width=small.width, height=small.height),
            encode_event_packet(encode_evt3(second), encoding="evt3", seq=1, width=large.width, height=large.height)]
    reader = RosbagReader(write_bag(tmp_path / "bag", typestore, {"/ev": ("event_camera_msgs/msg/EventPacket", raws)}))
    assert reader.size == small
    inside = (second["x"] < small.width) & (second["y"] < small.height)
    np.testing.assert_array_equal(read_all(reader), concat_events([first, second[inside]]))
    assert reader.stats.out_of_bounds == int((~inside).sum())
    assert reader.stats.time_resets == 1  # the geometry change


def test_unreadable_paths(tmp_path, typestore):
    with pytest.raises(EventFileError, match="no such bag"):
        RosbagReader(tmp_path / "missing")
    with pytest.raises(EventFileError, match="not a rosbag2 directory"):
        RosbagReader(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EventFileError, match="cannot open"):
        RosbagReader(tmp_path / "notes.txt")
    bag = write_bag(tmp_path / "bag", typestore, {"/ev": ("dvs_msgs/msg/EventArray", dvs_messages(SOURCES["/dvs/events"], 3))})
    storage_file = next(bag.glob("*.mcap"))
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(storage_file.read_bytes()[: storage_file.stat().st_size // 2])
    # an MCAP cut short (no summary, no footer) gives the events before the cut, read sequentially
    got = read_all(RosbagReader(cut))
    source = SOURCES["/dvs/events"]
    assert 0 < got.size < source.size
    np.testing.assert_array_equal(got, source[: got.size])


def test_storage_damage_mid_read_ends_the_read_counted():
    """What rosbags raises while iterating a damaged file stops the read, counted as one bad packet."""

    class DamagedBag:
        connections = []

        def messages(self, connections):
            yield None, 1, b"first"
            raise ReaderError("Invalid chunk record length")

    stats = DecodeStats()
    assert list(rosbag_module._topic_messages(DamagedBag(), "/ev", stats)) == [b"first"]
    assert stats.bad_packets == 1


REAL_EVT3 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "evt3_gen41_1280x720.raw"


@pytest.mark.skipif(not REAL_EVT3.exists(), reason="../shared/data/evt3_gen41_1280x720.raw not present")
def test_real_evt3_recording_through_a_bag_equals_the_raw_reader(tmp_path, typestore):
    """Real sensor words cut into EventPackets at odd byte offsets decode like the RAW file reader."""
    from event_clip_ros.events.readers.percent_header import read_percent_header
    from event_clip_ros.events.readers.raw import RawReader

    expected = concat_events(list(RawReader(REAL_EVT3).chunks()))
    assert expected.size == 219_596
    data = REAL_EVT3.read_bytes()[read_percent_header(REAL_EVT3).data_offset:]
    cuts = range(0, len(data), 4097)
    raws = [encode_event_packet(data[c:c + 4097], encoding="evt3", seq=seq, width=1280, height=720)
            for seq, c in enumerate(cuts)]
    reader = RosbagReader(write_bag(tmp_path / "bag", typestore, {"/ev": ("event_camera_msgs/msg/EventPacket", raws)}))
    np.testing.assert_array_equal(read_all(reader), expected)
