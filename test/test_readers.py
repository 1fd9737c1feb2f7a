"""Event file readers: round trips through independent writers, chunking, bad files, real recordings."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from event_clip_ros.events.decoders.evt2 import Evt2Decoder
from event_clip_ros.events.readers import (
    CHUNK_EVENTS,
    Aedat4Reader,
    Aedat31Reader,
    AtisBinReader,
    DatReader,
    EventFileError,
    NImageNetReader,
    RawReader,
    detect_format,
    open_events,
)
from event_clip_ros.events.readers.streaming import TimeUnwrapper, rechunk, split_chunks
from event_clip_ros.events.types import EVENT_DTYPE, DecodeStats, SensorSize, concat_events, make_events

from event_files import (
    aedat31_packet,
    encode_evt2,
    percent_header,
    random_events,
    write_aedat4,
    write_aedat31,
    write_atis_bin,
    write_dat,
    write_nimagenet,
    write_raw,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def read_all(reader) -> np.ndarray:
    """All events of ``reader``, checking the chunk contract on the way."""
    chunks = list(reader.chunks())
    for c in chunks:
        assert c.dtype == EVENT_DTYPE and 0 < c.size <= CHUNK_EVENTS
    events = concat_events(chunks)
    assert np.all(np.diff(events["t"]) >= 0), "events out of time order"
    return events


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(a, b)


def inside(events: np.ndarray, size: SensorSize) -> np.ndarray:
    return events[(events["x"] < size.width) & (events["y"] < size.height)]


# --- Prophesee RAW -----------------------------------------------------------------------------

RAW_HEADERS = [
    # header lines, expected format, expected size
    (["evt 3.0", "geometry 1280x720"], "evt3", SensorSize(1280, 720)),
    (["format EVT3;height=720;width=1280", "end"], "evt3", SensorSize(1280, 720)),
    (["evt 3.0", "plugin_name hal_plugin_gen41_evk3"], "evt3", SensorSize(1280, 720)),
    (["evt 3.0", "plugin_name hal_plugin_genx320"], "evt3", SensorSize(320, 320)),
    (["evt 3.0", "plugin_name hal_plugin_imx636_evk4"], "evt3", SensorSize(1280, 720)),
    (["evt 3.0", "sensor_generation 4.1"], "evt3", SensorSize(1280, 720)),
    (["evt 2.0", "plugin_name hal_plugin_gen3_fx3"], "evt2", SensorSize(640, 480)),
    (["format EVT2;height=240;width=304"], "evt2", SensorSize(304, 240)),
    (["plugin_name hal_plugin_gen31_fx3", "serial_number 1"], "evt2", SensorSize(640, 480)),  # legacy: no evt key
]


@pytest.mark.parametrize(("lines", "fmt", "size"), RAW_HEADERS)
def test_raw_round_trip_does_not_depend_on_block_size(tmp_path, lines, fmt, size):
    events = random_events(4000, size, seed=len(lines), t0=123_456)
    path = write_raw(tmp_path / "rec.raw", events, fmt, lines)
    reader = open_events(path)
    assert isinstance(reader, RawReader)
    assert (reader.format, reader.size) == (fmt, size)
    assert_same(read_all(reader), events)
    assert reader.stats.events == events.size and reader.stats.truncated_bytes == 0
    for block_bytes in (1, 3, 7, 1000):
        assert_same(read_all(RawReader(path, block_bytes=block_bytes)), events)


def test_raw_evt2_time_high_periods_and_lsb(tmp_path):
    # Events at both ends of 64 us TIME_HIGH periods and a long gap.
    t = np.array([0, 63, 64, 64, 127, 5_000_000, 5_000_001])
    events = make_events(t, [0, 1, 2, 3, 4, 5, 639], [0, 1, 2, 3, 4, 5, 479], [1, 0, 1, 0, 1, 0, 1])
    path = write_raw(tmp_path / "g.raw", events, "evt2", ["evt 2.0", "geometry 640x480"])
    assert_same(read_all(open_events(path)), events)


def test_raw_size_override_drops_and_counts_outside_events(tmp_path):
    events = random_events(3000, SensorSize(1280, 720), seed=4)
    path = write_raw(tmp_path / "o.raw", events, "evt3", ["evt 3.0", "geometry 1280x720"])
    small = SensorSize(320, 200)
    reader = open_events(path, size=small)
    assert reader.size == small
    got = read_all(reader)
    assert_same(got, inside(events, small))
    assert reader.stats.out_of_bounds == events.size - got.size > 0


def test_raw_data_starting_with_percent_byte_is_not_header(tmp_path):
    # TIME_HIGH 0x025 is the word 0x8025, bytes b"%\x80": binary, so the header ends before it.
    events = make_events([0x25 << 12, (0x25 << 12) + 9], [1, 2], [3, 4], [1, 0])
    path = write_raw(tmp_path / "p.raw", events, "evt3", ["evt 3.0", "geometry 64x64"])
    assert path.read_bytes()[len(percent_header(["evt 3.0", "geometry 64x64"]))] == ord("%")
    assert_same(read_all(open_events(path)), events)


@pytest.mark.parametrize("lines", [["evt 2.1", "geometry 640x480"], ["format EVT21;height=480;width=640"], ["evt 4.0"]])
def test_raw_unsupported_encodings_are_refused(tmp_path, lines):
    path = tmp_path / "u.raw"
    path.write_bytes(percent_header(lines) + bytes(64))
    with pytest.raises(EventFileError, match="not supported"):
        open_events(path)


def test_raw_without_geometry_needs_a_size(tmp_path):
    events = random_events(100, SensorSize(50, 40), seed=1)
    path = write_raw(tmp_path / "n.raw", events, "evt3", ["evt 3.0", "integrator_name someone"])
    with pytest.raises(EventFileError, match="size="):
        open_events(path)
    assert_same(read_all(open_events(path, size=SensorSize(50, 40))), events)


def test_raw_without_encoding_is_refused(tmp_path):
    path = tmp_path / "e.raw"
    path.write_bytes(percent_header(["geometry 640x480"]) + bytes(8))
    with pytest.raises(EventFileError, match="no encoding"):
        open_events(path)


@pytest.mark.parametrize(("fmt", "cut", "tail"), [("evt2", 3, 1), ("evt2", 1, 3), ("evt3", 1, 1)])
def test_raw_truncated_file_keeps_whole_words_and_counts_the_tail(tmp_path, caplog, fmt, cut, tail):
    events = random_events(2000, SensorSize(640, 480), seed=7)
    full = write_raw(tmp_path / "full.raw", events, fmt, [f"evt {fmt[-1]}.0", "geometry 640x480"])
    data = full.read_bytes()
    whole = tmp_path / "whole.raw"
    whole.write_bytes(data[: len(data) - cut - tail])
    truncated = tmp_path / "cut.raw"
    truncated.write_bytes(data[: len(data) - cut])
    expected = read_all(RawReader(whole))  # the same file without the partial last word
    with caplog.at_level(logging.WARNING):
        reader = RawReader(truncated, block_bytes=64)
        got = read_all(reader)
    assert_same(got, expected)
    assert got.size < events.size
    assert reader.stats.truncated_bytes == tail
    assert "ends inside a record" in caplog.text


# --- EVT 2.0 decoder ---------------------------------------------------------------------------


def cd(p: int, lsb: int, x: int, y: int) -> int:
    return (p << 28) | (lsb << 22) | (x << 11) | y


def high(v: int) -> int:
    return (0x8 << 28) | v


def test_evt2_decoder_counts_what_it_skips():
    words = [
        cd(1, 0, 1, 1),  # before any TIME_HIGH: skipped
        high(10),
        cd(1, 5, 3, 4),  # t = 10 << 6 | 5
        high(10),  # sensors repeat TIME_HIGH: the repeat confirms the stream's first one
        (0xA << 28) | 0x1F01,  # trigger
        0xE << 28,  # others
        0xF << 28,  # continued
        0x5 << 28,  # unknown code
        cd(0, 6, 700, 4),  # x outside 640
        high(9),  # one unit back: a bit error, time stays at 10
        cd(0, 7, 5, 6),
        high((1 << 28) - 1),
        cd(1, 63, 7, 8),
        high(2),  # far back: rollover, +2**34 us
        cd(0, 1, 9, 10),
    ]
    dec = Evt2Decoder(SensorSize(640, 480))
    got = dec.decode(np.array(words, dtype="<u4").tobytes())
    expected = make_events(
        [10 << 6 | 5, 10 << 6 | 7, ((1 << 28) - 1) << 6 | 63, (1 << 34) + (2 << 6 | 1)],
        [3, 5, 7, 9], [4, 6, 8, 10], [1, 0, 1, 0],
    )
    assert_same(got, expected)
    s = dec.stats
    assert (s.skipped_words, s.unknown_words, s.out_of_bounds, s.time_errors, s.events) == (1, 1, 1, 1, 4)

    # Fed one byte at a time, the stateful decoder gives the same events up to the 4.8 h jump
    # (a jump needs the next TIME_HIGH of its packet to be taken at once).
    dec2 = Evt2Decoder(SensorSize(640, 480))
    data = np.array(words[: words.index(high((1 << 28) - 1))], dtype="<u4").tobytes()
    assert_same(concat_events([dec2.decode(data[i : i + 1]) for i in range(len(data))]), expected[:2])
    dec2.reset()
    assert dec2.time_us is None
    assert dec2.decode(np.array([cd(1, 0, 1, 1)], dtype="<u4")).size == 0


def test_evt2_encoder_of_the_tests_matches_hand_words():
    events = make_events([640 + 5, 640 + 5, 704], [3, 4, 1], [4, 4, 2], [1, 0, 1])
    words = np.frombuffer(encode_evt2(events), dtype="<u4").tolist()
    assert words == [high(10), cd(1, 5, 3, 4), cd(0, 5, 4, 4), high(11), cd(1, 0, 1, 2)]


# --- Prophesee DAT -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size"),
    [
        (["Data file containing Event2D events.", "Version 2", "Height 100", "Width 120"], SensorSize(120, 100)),
        (["Version 2", "geometry 120x100"], SensorSize(120, 100)),
        (["Data file containing Event2D events.", "Version 2"], None),  # N-Cars: size = max + 1
        (None, None),  # old header-less file
    ],
)
def test_dat_round_trip_and_geometry(tmp_path, header, size):
    events = random_events(3000, SensorSize(120, 100), seed=2)
    path = write_dat(tmp_path / "cars.dat", events, header)
    reader = open_events(path)
    assert isinstance(reader, DatReader) and reader.format == "dat"
    fitted = SensorSize(int(events["x"].max()) + 1, int(events["y"].max()) + 1)
    assert reader.size == (size or fitted)
    assert_same(read_all(reader), events)
    for block_bytes in (1, 13, 800):
        assert_same(read_all(DatReader(path, block_bytes=block_bytes)), events)


def test_dat_eventcd_type_and_wrapping_time(tmp_path):
    t = np.array([(1 << 32) - 20, (1 << 32) - 1, 1 << 32, (1 << 32) + 5, (2 << 32) - 100, (2 << 32) + 7])
    events = make_events(t, [1, 2, 3, 4, 5, 6], [5, 4, 3, 2, 1, 0], [0, 1, 0, 1, 0, 1])
    path = write_dat(tmp_path / "w.dat", events, ["Version 2", "Width 8", "Height 8"], ev_type=12)
    reader = open_events(path)
    assert_same(read_all(reader), events)
    assert reader.stats.time_errors == 0


def test_dat_garbage_time_does_not_shift_the_rest_of_the_file(tmp_path):
    """One time 50 min ahead, then the true ones: a 'wrap' to the old rule, +71.6 min for every later event."""
    events = random_events(3000, SensorSize(60, 50), seed=4)
    damaged = events.copy()
    damaged["t"][1000] = 3_000_000_000
    path = write_dat(tmp_path / "g.dat", damaged, ["Version 2", "Width 60", "Height 50"])
    reader = open_events(path)
    got = read_all(reader)
    assert_same(got, np.delete(events, 1000))
    assert reader.stats.time_dropped == 1 and reader.stats.time_resets == 0


@pytest.mark.parametrize(("ev_type", "ev_size", "match"), [(0, 16, "event size 16"), (14, 8, "event type 14")])
def test_dat_other_event_kinds_are_refused(tmp_path, ev_type, ev_size, match):
    path = write_dat(tmp_path / "x.dat", random_events(10, SensorSize(8, 8)), ["Version 2"], ev_type, ev_size)
    with pytest.raises(EventFileError, match=match):
        open_events(path)


def test_dat_truncated(tmp_path, caplog):
    events = random_events(500, SensorSize(60, 50), seed=3)
    path = write_dat(tmp_path / "t.dat", events, ["Version 2", "Width 60", "Height 50"])
    path.write_bytes(path.read_bytes()[:-5])
    with caplog.at_level(logging.WARNING):
        reader = open_events(path)
        got = read_all(reader)
    assert_same(got, events[:-1])
    assert reader.stats.truncated_bytes == 3
    assert "ends inside a record" in caplog.text


def test_dat_header_without_type_bytes_is_an_error(tmp_path):
    path = tmp_path / "h.dat"
    path.write_bytes(percent_header(["Version 2"]))
    with pytest.raises(EventFileError, match="ends after its header"):
        open_events(path)


# --- N-MNIST / N-Caltech101 .bin ---------------------------------------------------------------


def test_atis_bin_round_trip_nmnist_size(tmp_path):
    events = random_events(2500, SensorSize(34, 34), seed=5, t0=654)
    path = write_atis_bin(tmp_path / "00001.bin", events)
    reader = open_events(path)
    assert isinstance(reader, AtisBinReader) and (reader.format, reader.size) == ("atis_bin", SensorSize(34, 34))
    assert_same(read_all(reader), events)
    for block_bytes in (1, 7, 500):
        assert_same(read_all(AtisBinReader(path, block_bytes=block_bytes)), events)


def test_atis_bin_larger_coordinates_grow_the_size_and_time_unwraps(tmp_path):
    # N-Caltech101-like coordinates and a time crossing the 23-bit wrap (8.39 s).
    events = random_events(3000, SensorSize(240, 180), seed=6, t0=(1 << 23) - 30_000, max_step_us=30)
    events["x"][0], events["y"][1] = 239, 179
    path = write_atis_bin(tmp_path / "image_0001.bin", events)
    reader = AtisBinReader(path, block_bytes=64)
    assert reader.size == SensorSize(240, 180)
    assert_same(read_all(reader), events)
    assert reader.stats.time_errors == 0
    assert AtisBinReader(path, size=SensorSize(304, 240)).size == SensorSize(304, 240)


def test_atis_bin_truncated(tmp_path):
    events = random_events(100, SensorSize(34, 34), seed=8)
    path = write_atis_bin(tmp_path / "t.bin", events)
    path.write_bytes(path.read_bytes()[:-2])
    reader = open_events(path)
    assert_same(read_all(reader), events[:-1])
    assert reader.stats.truncated_bytes == 3


# --- N-ImageNet .npz ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "polarity"),
    [
        (("x", "y", "t", "p"), "bool"),
        (("x", "y", "t", "p"), "pm1"),
        (("x_pos", "y_pos", "timestamp", "polarity"), "01"),
    ],
)
def test_nimagenet_round_trip(tmp_path, names, polarity):
    events = random_events(5000, SensorSize(640, 480), seed=9)
    path = write_nimagenet(tmp_path / "n01440764_1.npz", events, names, polarity)
    reader = open_events(path)
    assert isinstance(reader, NImageNetReader) and (reader.format, reader.size) == ("nimagenet", SensorSize(640, 480))
    assert_same(read_all(reader), events)
    chunks = list(NImageNetReader(path, chunk_events=777).chunks())
    assert [c.size for c in chunks] == [777] * 6 + [5000 - 6 * 777]
    assert_same(concat_events(chunks), events)


def test_nimagenet_unsorted_is_sorted_stably_and_outside_events_dropped(tmp_path):
    events = make_events([30, 10, 20, 10, 5], [1, 2, 3, 700, 5], [1, 2, 3, 4, 5], [1, 1, 0, 0, 1])
    path = write_nimagenet(tmp_path / "u.npz", events, polarity="01")
    reader = open_events(path)
    got = read_all(reader)
    assert_same(got, make_events([5, 10, 20, 30], [5, 2, 3, 1], [5, 2, 3, 1], [1, 1, 0, 1]))
    assert reader.stats.out_of_bounds == 1


def test_nimagenet_bad_contents(tmp_path):
    np.savez(tmp_path / "k.npz", events=np.zeros(3))
    with pytest.raises(EventFileError, match="no 'event_data'"):
        open_events(tmp_path / "k.npz")
    data = np.zeros(3, dtype=[("x", "u2"), ("y", "u2"), ("t", "f8"), ("p", "u1")])
    np.savez(tmp_path / "f.npz", event_data=data)
    with pytest.raises(EventFileError, match="integer microseconds"):
        read_all(open_events(tmp_path / "f.npz"))
    np.savez(tmp_path / "w.npz", event_data=np.zeros(3, dtype=[("a", "u2")]))
    with pytest.raises(EventFileError, match="expected x, y, t, p"):
        read_all(open_events(tmp_path / "w.npz"))
    good = write_nimagenet(tmp_path / "g.npz", random_events(1000, SensorSize(64, 64)))
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(EventFileError, match="npz"):
        read_all(open_events(tmp_path / "cut.npz"))


# --- AEDAT 3.1 ---------------------------------------------------------------------------------


def test_aedat31_round_trip_skips_other_packets_and_invalid_events(tmp_path):
    events = random_events(3000, SensorSize(128, 128), seed=10)
    path = write_aedat31(tmp_path / "user01_fluorescent.aedat", events, packet_events=400, invalid_every=7)
    reader = open_events(path)
    assert isinstance(reader, Aedat31Reader) and (reader.format, reader.size) == ("aedat31", SensorSize(128, 128))
    assert_same(read_all(reader), events)
    small = Aedat31Reader(path, block_bytes=24, chunk_events=1000)
    assert [c.size for c in small.chunks()] == [1000, 1000, 1000]
    assert_same(read_all(Aedat31Reader(path, block_bytes=24, chunk_events=1000)), events)


def test_aedat31_timestamp_overflow(tmp_path):
    events = random_events(1000, SensorSize(128, 128), seed=11, t0=(1 << 31) - 20_000, max_step_us=50)
    assert events["t"][-1] >= 1 << 31
    assert_same(read_all(open_events(write_aedat31(tmp_path / "o.aedat", events))), events)


@pytest.mark.parametrize(
    ("lines", "size"),
    [
        (["#Source 1: DAVIS346B"], SensorSize(346, 260)),
        (
            ["#Source 1: Custom", '#<attr key="dvsSizeX" type="short">200</attr>',
             '#<attr key="dvsSizeY" type="short">90</attr>'],
            SensorSize(200, 90),
        ),
        (["#Format: RAW"], SensorSize(128, 128)),
    ],
)
def test_aedat31_size_from_header(tmp_path, lines, size):
    events = random_events(300, size, seed=12)
    reader = open_events(write_aedat31(tmp_path / "s.aedat", events, lines))
    assert reader.size == size
    assert_same(read_all(reader), events)


def test_aedat31_truncated_and_bad_packets(tmp_path):
    events = random_events(1000, SensorSize(128, 128), seed=13)
    path = write_aedat31(tmp_path / "t.aedat", events, packet_events=1000)
    data = path.read_bytes()
    special = 28 + 16  # the trailing special-event packet
    path.write_bytes(data[: len(data) - special - 8 * 10 - 3])  # cut inside the polarity payload
    reader = open_events(path)
    assert_same(read_all(reader), events[:-11])
    assert reader.stats.truncated_bytes == 5
    # a polarity packet with an unexpected event size is skipped and counted
    bad = tmp_path / "b.aedat"
    bad.write_bytes(b"#!AER-DAT3.1\r\n#!END-HEADER\r\n" + aedat31_packet(1, 12, 0, bytes(24), 2, 2) + data[28:])
    reader = open_events(bad)
    read_all(reader)
    assert reader.stats.bad_packets == 1


def test_aedat31_header_must_end(tmp_path):
    path = tmp_path / "h.aedat"
    path.write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n" + bytes(100))
    with pytest.raises(EventFileError, match="END-HEADER"):
        open_events(path)


# --- AEDAT 4.0 ---------------------------------------------------------------------------------


def test_aedat4_round_trip_through_dv_processing_writer(tmp_path):
    pytest.importorskip("dv_processing")
    size = SensorSize(96, 64)
    events = random_events(2000, size, seed=14, t0=1_700_000_000_000_000)
    path = write_aedat4(tmp_path / "rec.aedat4", events, size)
    reader = open_events(path)
    assert isinstance(reader, Aedat4Reader) and (reader.format, reader.size) == ("aedat4", size)
    assert_same(read_all(reader), events)
    chunks = list(Aedat4Reader(path, chunk_events=300).chunks())
    assert max(c.size for c in chunks) == 300
    assert_same(concat_events(chunks), events)
    override = open_events(path, size=SensorSize(40, 30))
    assert_same(read_all(override), inside(events, SensorSize(40, 30)))


def test_aedat4_truncated_or_garbled_is_an_error(tmp_path):
    pytest.importorskip("dv_processing")
    path = write_aedat4(tmp_path / "rec.aedat4", random_events(500, SensorSize(32, 32)), SensorSize(32, 32))
    cut = tmp_path / "cut.aedat4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    garbled = tmp_path / "garbled.aedat4"
    garbled.write_bytes(b"#!AER-DAT4.0\r\n" + bytes(4000))  # (random bytes take dv-processing seconds to refuse)
    for bad in (cut, garbled):
        with pytest.raises(EventFileError, match="AEDAT4"):
            open_events(bad)


# --- open_events: detection and errors ---------------------------------------------------------


def test_detection_uses_content_before_extension(tmp_path):
    events = random_events(50, SensorSize(64, 64))
    raw_named_dat = write_raw(tmp_path / "rec.dat", events, "evt3", ["evt 3.0", "geometry 64x64"])
    dat_named_bin = write_dat(tmp_path / "rec.bin", events, ["Version 2"])
    aedat_named_raw = write_aedat31(tmp_path / "rec.raw", events)
    assert [detect_format(p) for p in (raw_named_dat, dat_named_bin, aedat_named_raw)] == ["raw", "dat", "aedat31"]
    assert_same(read_all(open_events(dat_named_bin)), events)


def test_rosbag_inputs_are_detected(tmp_path):
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    (tmp_path / "x.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(10))
    (tmp_path / "x.db3").write_bytes(b"SQLite format 3\x00" + bytes(10))
    assert [detect_format(p) for p in (bag, tmp_path / "x.mcap", tmp_path / "x.db3")] == ["rosbag"] * 3
    with pytest.raises(ValueError, match="size="):
        open_events(bag, size=SensorSize(10, 10))


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.raw", None, "no such file"),
        ("empty.raw", b"", "empty file"),
        ("noise.xyz", bytes(range(256)) * 4, "unknown event file format"),
        ("noise.raw", bytes(range(1, 256)) * 4, "unknown event file format"),
        ("old.aedat", b"#!AER-DAT2.0\r\n" + bytes(64), "AER-DAT2.0 files are not supported"),
        ("text.txt", b"% just a comment\nhello\n", "neither a Prophesee RAW nor a DAT"),
    ],
)
def test_open_events_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EventFileError, match=match):
        open_events(path)


def test_open_events_refuses_directory_and_topic_for_files(tmp_path):
    with pytest.raises(EventFileError, match="not a rosbag2"):
        open_events(tmp_path)
    path = write_atis_bin(tmp_path / "a.bin", random_events(10, SensorSize(34, 34)))
    with pytest.raises(ValueError, match="topic"):
        open_events(path, topic="/events")


# --- shared building blocks --------------------------------------------------------------------


def test_rechunk_and_split_bound_chunk_sizes():
    parts = [random_events(n, SensorSize(8, 8), seed=n) for n in (3, 5, 0, 9)]
    out = list(rechunk(iter(parts), 4))
    assert [c.size for c in out] == [4, 4, 4, 4, 1]
    assert_same(concat_events(out), concat_events(parts))
    assert [c.size for c in split_chunks(parts[3], 4)] == [4, 4, 1]
    assert list(split_chunks(parts[2], 4)) == []


def test_time_unwrapper_counts_glitches_and_unwraps_across_calls():
    stats = DecodeStats()
    unwrap = TimeUnwrapper(8, stats, "test")
    a = unwrap(np.array([200, 250, 240, 255], dtype=np.uint32))  # 250 -> 240: a glitch, kept in place
    b = unwrap(np.array([3, 10], dtype=np.uint32))  # 255 -> 3: a wrap
    np.testing.assert_array_equal(np.concatenate([a, b]), [200, 250, 240, 255, 259, 266])
    assert stats.time_errors == 1


# --- real recordings (../shared/data) ----------------------------------------------------------


def real(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"real recording {name} not present in ../shared/data")
    return path


def test_real_evt3_gen41():
    path = real("evt3_gen41_1280x720.raw")
    reader = open_events(path)
    assert (reader.format, reader.size) == ("evt3", SensorSize(1280, 720))
    ev = read_all(reader)
    assert (ev.size, ev["t"][0], ev["t"][-1]) == (219596, 11718656, 11727457)
    ref = np.load(real("evt3_gen41_1280x720.xyp_reference.npy"))  # its t column is wrong: compare x, y, p only
    for f in "xyp":
        np.testing.assert_array_equal(ev[f], ref[f])
    assert_same(read_all(RawReader(path, block_bytes=4097)), ev)
    evt3 = pytest.importorskip("evt3")
    other = evt3.decode_bytes(path.read_bytes()[reader.header.data_offset :], 1280, 720)
    np.testing.assert_array_equal(ev["t"], other.t)


def test_real_evt2_gen3():
    path = real("evt2_gen3_640x480.raw")
    reader = open_events(path)
    assert (reader.format, reader.size) == ("evt2", SensorSize(640, 480))
    ev = read_all(reader)
    assert (ev.size, ev["t"][0], ev["t"][-1]) == (539481, 1317888, 1367888)
    assert reader.stats.skipped_words == reader.stats.unknown_words == reader.stats.out_of_bounds == 0
    assert_same(read_all(RawReader(path, block_bytes=10_001)), ev)


def test_real_nmnist():
    reader = open_events(real("nmnist_sample.bin"))
    ev = read_all(reader)
    assert reader.size == SensorSize(34, 34) and ev.size == 4325
    assert tuple(ev[0]) == (654, 7, 15, 1)


def test_real_ncars_dat():
    reader = open_events(real("ncars_sample.dat"))
    ev = read_all(reader)
    assert reader.format == "dat"
    assert (ev.size, ev["t"][0], ev["t"][-1]) == (2009, 0, 99952)
    assert reader.size == SensorSize(int(ev["x"].max()) + 1, int(ev["y"].max()) + 1)


def test_real_dvxplorer_aedat4():
    pytest.importorskip("dv_processing")
    reader = open_events(real("dvxplorer_320x240.aedat4"))
    ev = read_all(reader)
    assert (reader.format, reader.size) == ("aedat4", SensorSize(320, 240))
    assert (ev.size, int(ev["p"].sum()), int((ev["p"] == 0).sum())) == (111954, 55023, 56931)
