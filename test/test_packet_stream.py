"""EventPacketStream / EventArrayStream: stateful decoding across packets and the counted problems."""

from __future__ import annotations

import numpy as np
import pytest

from event_clip_ros.events.encoders import encode_evt3, encode_mono
from event_clip_ros.events.packet_stream import (
    SUPPORTED_MSGTYPES,
    EventArrayStream,
    EventPacketStream,
    make_stream,
)
from event_clip_ros.events.ros_cdr import encode_event_array, encode_event_packet, parse_event_packet
from event_clip_ros.events.types import SensorSize, concat_events, make_events

from cdr_helpers import evt3_packets

WIDTH, HEIGHT = 640, 480


def sensor_events(n: int, seed: int = 0, t0_us: int = 1000, span_us: int = 2_000_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        t0_us + np.sort(rng.integers(0, span_us, n)),
        rng.integers(0, WIDTH, n),
        rng.integers(0, HEIGHT, n),
        rng.integers(0, 2, n),
    )


def mono_packets(events: np.ndarray, n_packets: int) -> list[tuple[int, bytes]]:
    """(time_base_ns, payload) per packet; time_base is the packet's first event time."""
    out = []
    for part in np.array_split(events, n_packets):
        time_base_ns = int(part["t"][0]) * 1000
        out.append((time_base_ns, encode_mono(part, time_base_ns)))
    return out


def packet(payload: bytes, seq: int, encoding: str = "evt3", time_base_ns: int = 0,
           width: int = WIDTH, height: int = HEIGHT) -> bytes:
    return encode_event_packet(payload, encoding=encoding, width=width, height=height, seq=seq,
                               time_base_ns=time_base_ns, stamp_ns=1_700_000_000 * 10**9 + seq)


def feed_all(stream, raws) -> np.ndarray:
    return concat_events([stream.decode_cdr(raw).events for raw in raws])


def test_evt3_stream_decodes_across_arbitrary_packet_cuts():
    """The whole stream cut at random byte offsets (odd ones too) decodes to the source events."""
    events = sensor_events(20_000)
    data = encode_evt3(events)
    cuts = np.sort(np.random.default_rng(5).choice(np.arange(1, len(data)), 40, replace=False))
    pieces = np.split(np.frombuffer(data, np.uint8), cuts)
    stream = EventPacketStream()
    out = feed_all(stream, [packet(p.tobytes(), seq) for seq, p in enumerate(pieces)])
    np.testing.assert_array_equal(out, events)
    assert (stream.size, stream.encoding) == (SensorSize(WIDTH, HEIGHT), "evt3")
    assert stream.stats.events == events.size and stream.stats.packets == len(pieces)
    assert stream.stats.lost_packets == stream.stats.time_resets == stream.stats.bad_packets == 0


def test_mono_stream_and_parsed_message_feed():
    events = sensor_events(5000, seed=1)
    stream = EventPacketStream()
    out = concat_events([stream.feed(parse_event_packet(packet(p, seq, "mono", tb)))
                         for seq, (tb, p) in enumerate(mono_packets(events, 7))])
    np.testing.assert_array_equal(out, events)
    assert stream.encoding == "mono"


def test_seq_gap_counts_lost_packets_and_decoding_goes_on():
    events = sensor_events(10_000, seed=2)
    parts = np.array_split(events, 10)
    raws = [packet(p, seq) for seq, p in enumerate(evt3_packets(events, 10))]
    stream = EventPacketStream()
    out = feed_all(stream, raws[:3] + raws[6:])  # packets 3, 4, 5 lost
    np.testing.assert_array_equal(out, concat_events(parts[:3] + parts[6:]))
    assert stream.stats.lost_packets == 3
    assert stream.stats.time_resets == 0


def test_bag_loop_resets_the_decoder():
    """seq going back restarts the stream: the second pass decodes exactly like the first."""
    events = sensor_events(8000, seed=3, t0_us=5_000_000)
    raws = [packet(p, seq + 100) for seq, p in enumerate(evt3_packets(events, 8))]
    stream = EventPacketStream()
    first = feed_all(stream, raws)
    second = feed_all(stream, raws)
    np.testing.assert_array_equal(first, events)
    np.testing.assert_array_equal(second, events)  # without a reset the evt3 epoch would jump by 2**24 us
    assert stream.stats.time_resets == 1
    assert stream.stats.lost_packets == 0


def test_repeated_seq_is_not_a_restart():
    """Drivers that leave seq at one value: no resets, no losses, the decoder state carries over."""
    events = sensor_events(3000, seed=4)
    data = np.frombuffer(encode_evt3(events), np.uint8)
    stream = EventPacketStream()
    out = feed_all(stream, [packet(p.tobytes(), 0) for p in np.array_split(data, 9)])
    np.testing.assert_array_equal(out, events)
    assert stream.stats.time_resets == stream.stats.lost_packets == 0


def test_encoding_and_size_switch_start_a_new_decoder():
    a, b = sensor_events(2000, seed=5), sensor_events(2000, seed=6, t0_us=3_000_000)
    (tb, mono_payload), = mono_packets(b, 1)
    stream = EventPacketStream()
    out_a = feed_all(stream, [packet(p, seq) for seq, p in enumerate(evt3_packets(a, 3))])
    out_b = stream.decode_cdr(packet(mono_payload, 3, "mono", tb)).events
    np.testing.assert_array_equal(out_a, a)
    np.testing.assert_array_equal(out_b, b)
    assert stream.encoding == "mono" and stream.stats.time_resets == 1
    # the sensor shrinks: a new decoder that drops (and counts) what lies outside
    small = SensorSize(320, 240)
    out_c = stream.decode_cdr(packet(encode_evt3(a), 4, width=small.width, height=small.height)).events
    inside = (a["x"] < small.width) & (a["y"] < small.height)
    np.testing.assert_array_equal(out_c, a[inside])
    assert stream.size == small and stream.encoding == "evt3"
    assert stream.stats.time_resets == 2
    assert stream.stats.out_of_bounds == int((~inside).sum())
    assert stream.stats.events == a.size + b.size + int(inside.sum())


def test_unknown_encoding_and_bad_geometry_are_counted_not_raised():
    events = sensor_events(500, seed=7)
    stream = EventPacketStream()
    assert stream.decode_cdr(packet(b"\x00" * 16, 0, "evt4")).events.size == 0
    assert stream.decode_cdr(packet(b"\x00" * 16, 1, "evt4")).events.size == 0
    assert stream.stats.bad_packets == 2 and stream.size is None
    assert "evt4" in stream.last_error
    assert stream.decode_cdr(packet(b"", 2, width=0)).events.size == 0
    assert stream.stats.bad_packets == 3
    np.testing.assert_array_equal(stream.decode_cdr(packet(encode_evt3(events), 3)).events, events)
    assert stream.stats.packets == 4 and stream.size == SensorSize(WIDTH, HEIGHT)


def test_unparsable_cdr_is_a_bad_packet():
    events = sensor_events(300, seed=8)
    raws = [packet(p, seq) for seq, p in enumerate(evt3_packets(events, 2))]
    stream = EventPacketStream()
    assert stream.decode_cdr(raws[0][:20]).events.size == 0
    assert "truncated" in stream.last_error
    assert stream.decode_cdr(b"garbage").events.size == 0
    np.testing.assert_array_equal(feed_all(stream, raws), events)
    assert stream.stats.bad_packets == 2 and stream.stats.packets == 4


def test_decoder_counters_accumulate_across_decoders():
    events = sensor_events(1000, seed=9)
    small = SensorSize(400, 300)  # over 90% outside would make a mono packet garbage
    expected_oob = int(((events["x"] >= small.width) | (events["y"] >= small.height)).sum())
    stream = EventPacketStream()
    stream.decode_cdr(packet(encode_evt3(events), 0, width=small.width, height=small.height))
    later = events.copy()
    later["t"] += int(events["t"][-1] - events["t"][0]) + 1
    for seq, part in ((1, events), (2, later)):
        (tb, payload), = mono_packets(part, 1)
        stream.decode_cdr(packet(payload, seq, "mono", tb, width=small.width, height=small.height))
    assert stream.stats.out_of_bounds == 3 * expected_oob
    assert stream.stats.events == 3 * (events.size - expected_oob)


def test_event_array_stream():
    events = sensor_events(1000, seed=10)
    stream = EventArrayStream("prophesee_event_msgs/msg/EventArray")
    parts = np.array_split(events, 4)
    out = feed_all(stream, [encode_event_array(p, WIDTH, HEIGHT) for p in parts])
    np.testing.assert_array_equal(out, events)
    assert stream.size == SensorSize(WIDTH, HEIGHT) and stream.encoding is None
    # events outside the message's geometry are dropped and counted
    small = stream.decode_cdr(encode_event_array(parts[0], 320, 240)).events
    inside = (parts[0]["x"] < 320) & (parts[0]["y"] < 240)
    np.testing.assert_array_equal(small, parts[0][inside])
    assert stream.stats.out_of_bounds == int((~inside).sum())
    assert stream.size == SensorSize(320, 240)
    assert stream.stats.time_resets == 1  # the size change
    # time going back between messages (bag loop) is a restart once two messages agree on it;
    # the first is dropped and counted, the second passes
    stream.decode_cdr(encode_event_array(parts[3], 320, 240))
    dropped = stream.stats.time_dropped
    assert stream.decode_cdr(encode_event_array(parts[0], 320, 240)).events.size == 0
    assert stream.stats.time_resets == 1 and stream.stats.time_dropped > dropped
    assert stream.decode_cdr(encode_event_array(parts[1], 320, 240)).events.size > 0
    assert stream.stats.time_resets == 2
    # bad CDR and impossible geometry: counted, no events
    assert stream.decode_cdr(b"\x00\x01\x00\x00\x01").events.size == 0
    assert stream.decode_cdr(encode_event_array(parts[0], 0, 240)).events.size == 0
    assert stream.stats.bad_packets == 2
    assert stream.stats.packets == 10


@pytest.mark.parametrize("msgtype", SUPPORTED_MSGTYPES)
def test_make_stream(msgtype):
    stream = make_stream(msgtype)
    assert stream.msgtype == msgtype
    expected = EventPacketStream if msgtype.endswith("EventPacket") or msgtype.startswith("event_array_msgs") \
        else EventArrayStream
    assert type(stream) is expected


def test_make_stream_rejects_other_types():
    with pytest.raises(ValueError, match="dvs_msgs/msg/EventArray"):
        make_stream("sensor_msgs/msg/Image")


def test_decoded_message_says_what_the_stamp_belongs_to_and_when_the_stream_restarted():
    events = sensor_events(600, seed=12, t0_us=5_000_000)
    parts = np.array_split(events, 3)
    stream = EventPacketStream()
    first = stream.decode_cdr(packet(encode_evt3(parts[0]), 0))
    assert first.reference_us == int(parts[0]["t"][0]) and not first.restarted  # evt3: the first event
    assert first.stamp_ns == 1_700_000_000 * 10**9 and first.size == SensorSize(WIDTH, HEIGHT)
    (tb, payload), = mono_packets(parts[1], 1)
    switched = stream.decode_cdr(packet(payload, 1, "mono", tb))
    assert switched.restarted and switched.reference_us == tb // 1000  # mono: time_base
    again = stream.decode_cdr(packet(payload, 0, "mono", tb))  # seq back: a restart
    assert again.restarted and again.events.size == parts[1].size
    bad = stream.decode_cdr(b"\x00\x01\x00\x00")
    assert bad.events.size == 0 and not bad.restarted and stream.stats.bad_packets == 1
