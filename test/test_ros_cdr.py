"""CDR parsing/building of the event and image messages, checked byte for byte against rosbags' serialiser."""

from __future__ import annotations

import numpy as np
import pytest

from event_clip_ros.events.ros_cdr import (
    EVENT_ARRAY_TYPES,
    EVENT_PACKET_TYPES,
    IMAGE_MSGTYPE,
    MSG_DEFINITIONS,
    CdrError,
    encode_event_array,
    encode_event_packet,
    encode_image,
    parse_event_array,
    parse_event_packet,
    parse_image,
)
from event_clip_ros.events.types import EVENT_DTYPE, make_events

from cdr_helpers import event_typestore

FRAME_IDS = ["", "a", "ab", "abc", "abcd", "camera_optical_frame"]


@pytest.fixture(scope="module")
def typestore():
    return event_typestore()


def random_events(n: int, seed: int = 0, t0_us: int = 1_700_000_000_000_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        t0_us + np.sort(rng.integers(0, 10_000_000, n)),
        rng.integers(0, 65536, n),
        rng.integers(0, 65536, n),
        rng.integers(0, 2, n),
    )


def rosbags_event_array(typestore, msgtype: str, events: np.ndarray, width: int, height: int,
                        stamp_ns: int, frame_id: str) -> bytes:
    """Serialise with rosbags from message objects built field by field."""
    pkg = msgtype.split("/")[0]
    Event = typestore.types[f"{pkg}/msg/Event"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    Header = typestore.types["std_msgs/msg/Header"]
    Msg = typestore.types[msgtype]
    evs = [
        Event(x=int(e["x"]), y=int(e["y"]),
              ts=Time(sec=int(e["t"]) // 1_000_000, nanosec=int(e["t"]) % 1_000_000 * 1000),
              polarity=bool(e["p"]))
        for e in events
    ]
    header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)
    return bytes(typestore.serialize_cdr(Msg(header=header, height=height, width=width, events=evs), msgtype))


@pytest.mark.parametrize("msgtype", EVENT_ARRAY_TYPES)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 101])
@pytest.mark.parametrize("frame_id", FRAME_IDS)
def test_event_array_bytes_equal_rosbags(typestore, msgtype, n, frame_id):
    events = random_events(n, seed=n)
    stamp_ns = 1_700_000_123_456_789_012
    ours = encode_event_array(events, 640, 480, stamp_ns, frame_id)
    assert ours == rosbags_event_array(typestore, msgtype, events, 640, 480, stamp_ns, frame_id)
    msg = parse_event_array(ours)
    assert (msg.stamp_ns, msg.frame_id, msg.width, msg.height) == (stamp_ns, frame_id, 640, 480)
    assert msg.events.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(msg.events, events)
    # and rosbags reads our bytes back to the same values
    back = typestore.deserialize_cdr(ours, msgtype)
    assert [e.x for e in back.events] == events["x"].tolist()
    assert [e.ts.sec * 1_000_000 + e.ts.nanosec // 1000 for e in back.events] == events["t"].tolist()


def test_event_array_layout_by_hand():
    """Two events, empty frame_id: element 0 is packed (14 bytes), element 1 has a 2-byte pad before ts."""
    events = make_events([5_000_001, 6_000_002], [1, 2], [3, 4], [1, 0])
    expected = bytes.fromhex(
        "00010000"  # encapsulation: little-endian CDR
        "07000000" "08000000"  # stamp sec=7, nanosec=8
        "01000000" "00000000"  # frame_id "" (length 1: the NUL) + 3 pad bytes
        "20000000" "10000000"  # height 32, width 16
        "02000000"  # 2 events
        "0100" "0300" "05000000" "e8030000" "01" "00"  # x=1 y=3 sec=5 nanosec=1000 ON, pad
        "0200" "0400" "0000" "06000000" "d0070000" "00"  # x=2 y=4 pad2 sec=6 nanosec=2000 OFF
    )
    assert encode_event_array(events, width=16, height=32, stamp_ns=7_000_000_008) == expected
    np.testing.assert_array_equal(parse_event_array(expected).events, events)


def test_event_array_polarity_byte_other_than_one_is_on():
    raw = bytearray(encode_event_array(make_events([1, 2], [0, 1], [0, 1], [0, 0]), 4, 4))
    raw[-1] = 2  # polarity of the last event
    assert parse_event_array(bytes(raw)).events["p"].tolist() == [0, 1]


def test_event_array_times_before_1970_and_sub_microsecond_truncation(typestore):
    Msg = typestore.types["dvs_msgs/msg/EventArray"]
    Event = typestore.types["dvs_msgs/msg/Event"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    Header = typestore.types["std_msgs/msg/Header"]
    raw = typestore.serialize_cdr(
        Msg(header=Header(stamp=Time(sec=-2, nanosec=5), frame_id=""), height=4, width=4,
            events=[Event(x=1, y=2, ts=Time(sec=-1, nanosec=999_999), polarity=True)]),
        "dvs_msgs/msg/EventArray")
    msg = parse_event_array(raw)
    assert msg.stamp_ns == -2 * 10**9 + 5
    assert msg.events["t"].tolist() == [-1_000_000 + 999]  # nanosec // 1000


@pytest.mark.parametrize("msgtype", EVENT_PACKET_TYPES)
@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("encoding", ["evt3", "mono", "libcaer_cmp", ""])
@pytest.mark.parametrize("n_bytes", [0, 1, 7])
def test_event_packet_bytes_equal_rosbags(typestore, msgtype, frame_id, encoding, n_bytes):
    payload = np.arange(n_bytes, dtype=np.uint8) + 200
    fields = dict(encoding=encoding, width=1280, height=720, seq=2**64 - 3, time_base_ns=1_234_567_890_123,
                  stamp_ns=1_700_000_000_987_654_321, frame_id=frame_id, is_bigendian=n_bytes == 1)
    ours = encode_event_packet(payload, **fields)
    Time = typestore.types["builtin_interfaces/msg/Time"]
    Header = typestore.types["std_msgs/msg/Header"]
    ref = typestore.types[msgtype](
        header=Header(stamp=Time(sec=1_700_000_000, nanosec=987_654_321), frame_id=frame_id),
        height=720, width=1280, seq=2**64 - 3, time_base=1_234_567_890_123, encoding=encoding,
        is_bigendian=n_bytes == 1, events=payload)
    assert ours == bytes(typestore.serialize_cdr(ref, msgtype))
    msg = parse_event_packet(ours)
    assert (msg.stamp_ns, msg.frame_id, msg.width, msg.height, msg.seq, msg.time_base_ns, msg.encoding,
            msg.is_bigendian) == (fields["stamp_ns"], frame_id, 1280, 720, 2**64 - 3, 1_234_567_890_123,
                                  encoding, n_bytes == 1)
    np.testing.assert_array_equal(msg.events, payload)


def test_event_packet_payload_and_image_data_are_zero_copy_views():
    raw = np.frombuffer(encode_event_packet(b"\x01\x02\x03", encoding="evt3", width=4, height=4), np.uint8)
    msg = parse_event_packet(raw)
    assert np.shares_memory(msg.events, raw)
    assert msg.events.tolist() == [1, 2, 3]
    raw = np.frombuffer(encode_image(b"\x04\x05", encoding="mono8", width=2, height=1, step=2), np.uint8)
    image = parse_image(raw)
    assert np.shares_memory(image.data, raw) and image.data.tolist() == [4, 5]


def test_trailing_padding_is_ignored():
    """Fast DDS pads serialised messages to 4 bytes; the padding is not part of the message."""
    raw = encode_event_packet(b"\x09", encoding="mono", width=4, height=4)
    assert parse_event_packet(raw + b"\x00\x00\x00").events.tolist() == [9]
    events = random_events(2)
    np.testing.assert_array_equal(parse_event_array(encode_event_array(events, 4, 4) + b"\x00").events, events)


@pytest.mark.parametrize("frame_id", FRAME_IDS)
@pytest.mark.parametrize("encoding, width, step", [("bgr8", 3, 9), ("rgb8", 2, 8), ("mono8", 5, 5), ("", 0, 0)])
def test_image_bytes_equal_rosbags(typestore, frame_id, encoding, width, step):
    height = 2 if width else 0
    pixels = (np.arange(step * height, dtype=np.uint8) * 7).astype(np.uint8)
    ours = encode_image(pixels, encoding=encoding, width=width, height=height, step=step,
                        stamp_ns=1_700_000_000_987_654_321, frame_id=frame_id)
    Time = typestore.types["builtin_interfaces/msg/Time"]
    Header = typestore.types["std_msgs/msg/Header"]
    ref = typestore.types[IMAGE_MSGTYPE](
        header=Header(stamp=Time(sec=1_700_000_000, nanosec=987_654_321), frame_id=frame_id),
        height=height, width=width, encoding=encoding, is_bigendian=0, step=step, data=pixels)
    assert ours == bytes(typestore.serialize_cdr(ref, IMAGE_MSGTYPE))
    msg = parse_image(ours)
    assert (msg.stamp_ns, msg.frame_id, msg.width, msg.height, msg.encoding, msg.is_bigendian, msg.step) == (
        1_700_000_000_987_654_321, frame_id, width, height, encoding, False, step)
    np.testing.assert_array_equal(msg.data, pixels)


@pytest.mark.parametrize("parse, raw", [
    (parse_image, encode_image(bytes(12), encoding="mono8", width=4, height=3, step=4, frame_id="cam")),
    (parse_event_packet, encode_event_packet(b"\x01\x02\x03\x04\x05", encoding="evt3", width=4, height=4,
                                             frame_id="cam")),
    (parse_event_array, encode_event_array(random_events(3), 8, 8, frame_id="cam")),
])
def test_every_truncation_raises_cdr_error(parse, raw):
    for cut in range(len(raw)):
        with pytest.raises(CdrError):
            parse(raw[:cut])


def test_garbled_messages_raise_cdr_error():
    good = encode_event_packet(b"\x01\x02", encoding="evt3", width=4, height=4, frame_id="cam")
    with pytest.raises(CdrError, match="encapsulation"):
        parse_event_packet(b"\x00\x00" + good[2:])  # big-endian CDR
    huge_count = bytearray(encode_event_array(random_events(1), 4, 4))
    huge_count[28:32] = b"\xff\xff\xff\xff"  # event count of an empty frame_id message
    with pytest.raises(CdrError, match="truncated in 'events'"):
        parse_event_array(bytes(huge_count))
    no_nul = bytearray(good)
    no_nul[19] = ord("x")  # the NUL ending "cam"
    with pytest.raises(CdrError, match="NUL"):
        parse_event_packet(bytes(no_nul))
    bad_utf8 = bytearray(good)
    bad_utf8[16] = 0xFF
    with pytest.raises(CdrError, match="UTF-8"):
        parse_event_packet(bytes(bad_utf8))


def test_random_corruption_never_raises_anything_but_cdr_error():
    rng = np.random.default_rng(1)
    packet = encode_event_packet(bytes(range(40)), encoding="evt3", width=4, height=4, frame_id="cam")
    array = encode_event_array(random_events(5), 8, 8, frame_id="cam")
    image = encode_image(bytes(range(24)), encoding="rgb8", width=4, height=2, step=12, frame_id="cam")
    for parse, raw in ((parse_event_packet, packet), (parse_event_array, array), (parse_image, image)):
        for _ in range(300):
            buf = np.frombuffer(raw, np.uint8).copy()
            idx = rng.integers(0, buf.size, rng.integers(1, 4))
            buf[idx] = rng.integers(0, 256, idx.size)
            try:
                parse(buf.tobytes())
            except CdrError:
                pass


def test_encode_rejects_what_ros_time_cannot_hold():
    with pytest.raises(ValueError, match="int32"):
        encode_event_array(make_events([2**31 * 1_000_000], [0], [0], [1]), 4, 4)
    with pytest.raises(ValueError, match="int32"):
        encode_event_packet(b"", encoding="evt3", width=4, height=4, stamp_ns=2**31 * 10**9)
    with pytest.raises(ValueError, match="EVENT_DTYPE"):
        encode_event_array(np.zeros(3, dtype=np.int64), 4, 4)


def test_msg_definitions_cover_every_type():
    assert set(EVENT_PACKET_TYPES + EVENT_ARRAY_TYPES) <= set(MSG_DEFINITIONS)
    for name in EVENT_ARRAY_TYPES:
        assert name.replace("/EventArray", "/Event") in MSG_DEFINITIONS


def test_million_event_array_parses_without_python_loops():
    events = random_events(1_000_000, seed=3)
    raw = encode_event_array(events, 65535, 65535)
    assert len(raw) == 32 + 16 * 1_000_000 - 3
    np.testing.assert_array_equal(parse_event_array(raw).events, events)
