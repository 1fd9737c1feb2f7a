"""Faults of real links on event streams: bit errors in time words, garbage payloads, garbage
sequence numbers and stamps, impossible sensor sizes. Each test failed before the time guard.

The bit-flip tests use the real Gen4.1 EVT3 recording in ../shared/data (skipped without it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from event_clip_ros.events.decoders import Evt3Decoder, make_decoder
from event_clip_ros.events.decoders.evt2 import Evt2Decoder
from event_clip_ros.events.encoders import encode_evt3, encode_libcaer, encode_libcaer_cmp, encode_mono
from event_clip_ros.events.limits import StreamLimits
from event_clip_ros.events.packet_stream import EventArrayStream, EventPacketStream
from event_clip_ros.events.readers.percent_header import read_percent_header
from event_clip_ros.events.ros_cdr import EVENT_PACKET_TYPES, encode_event_array, encode_event_packet
from event_clip_ros.events.time_guard import TimeGuard
from event_clip_ros.events.types import DecodeStats, SensorSize, concat_events, make_events

from cdr_helpers import evt3_packets

REAL_EVT3 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "evt3_gen41_1280x720.raw"
GEN4 = SensorSize(1280, 720)
WIDTH, HEIGHT = 640, 480
T0_US = 1_700_000_000_000_000  # a Unix-epoch time base, as drivers send


def real_words() -> np.ndarray:
    if not REAL_EVT3.exists():
        pytest.skip("../shared/data/evt3_gen41_1280x720.raw not present")
    header = read_percent_header(REAL_EVT3)
    return np.fromfile(REAL_EVT3, dtype="<u2", offset=header.data_offset)


def decode_packets(words: np.ndarray, packet_words: int) -> tuple[list[np.ndarray], DecodeStats]:
    decoder = Evt3Decoder(GEN4)
    out = [decoder.decode(words[i : i + packet_words].tobytes()) for i in range(0, words.size, packet_words)]
    return out, decoder.stats


def random_events(n: int, seed: int, t0_us: int = 1_000, span_us: int = 2_000_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(t0_us + np.sort(rng.integers(0, span_us, n)), rng.integers(0, WIDTH, n),
                       rng.integers(0, HEIGHT, n), rng.integers(0, 2, n))


def packet(payload: bytes, seq: int, encoding: str = "evt3", time_base_ns: int = 0, size=(WIDTH, HEIGHT)) -> bytes:
    return encode_event_packet(payload, encoding=encoding, width=size[0], height=size[1], seq=seq,
                               time_base_ns=time_base_ns, stamp_ns=1_700_000_000 * 10**9 + seq % 10**9)


# ------------------------------------------------------------------ EVT3 bit errors (real recording)


def test_issue_example_bit_10_of_one_time_high_shifts_nothing():
    """The issue's case: bit 10 of one TIME_HIGH flipped used to add 2**24 us to every later event."""
    words = real_words()
    clean, _ = decode_packets(words, 4096)
    time_high = np.flatnonzero(words >> 12 == 0x8)
    damaged = words.copy()
    damaged[time_high[len(time_high) // 2]] ^= 1 << 10
    out, stats = decode_packets(damaged, 4096)
    np.testing.assert_array_equal(concat_events(out), concat_events(clean))
    assert stats.time_errors == 1 and stats.time_resets == 0


@pytest.mark.slow
@pytest.mark.parametrize("packet_words", [2048, 32768])
def test_every_time_high_bit_flip_leaves_the_following_packets_unchanged(packet_words):
    """Each bit of each TIME_HIGH word of the real recording, flipped one at a time: every event
    after the damaged packet equals the clean decode (the damage never outlives its packet), and
    inside the damaged packet time never runs backwards except at a counted restart."""
    words = real_words()
    clean, _ = decode_packets(words, packet_words)
    time_high = np.flatnonzero(words >> 12 == 0x8)
    rng = np.random.default_rng(3)
    tried = 0
    for index in rng.choice(time_high, 60, replace=False):
        for bit in range(12):
            damaged = words.copy()
            damaged[index] ^= 1 << bit
            out, stats = decode_packets(damaged, packet_words)
            k = index // packet_words
            after = concat_events(out[k + 1 :])
            np.testing.assert_array_equal(after, concat_events(clean[k + 1 :]), err_msg=f"word {index} bit {bit}")
            t = concat_events(out)["t"]
            assert int((np.diff(t) < 0).sum()) <= stats.time_resets
            tried += 1
    assert tried == 720


def test_time_low_bit_flips_stay_inside_their_packet():
    words = real_words()
    clean, _ = decode_packets(words, 4096)
    time_low = np.flatnonzero(words >> 12 == 0x6)
    rng = np.random.default_rng(4)
    for index in rng.choice(time_low, 40, replace=False):
        damaged = words.copy()
        damaged[index] ^= 1 << int(rng.integers(0, 12))
        out, stats = decode_packets(damaged, 4096)
        k = index // 4096
        np.testing.assert_array_equal(concat_events(out[k + 1 :]), concat_events(clean[k + 1 :]))
        assert np.all(np.diff(concat_events(out)["t"]) >= 0)  # backward steps were dropped, and counted
        assert stats.time_dropped == concat_events(clean).size - concat_events(out).size


def test_pypi_evt3_recovers_after_a_bit_flip_and_we_are_exact():
    """The independent decoder (PyPI evt3) takes the issue's flip for a while and recovers at the
    next TIME_HIGH; ours ignores it: its decode equals the clean one."""
    evt3 = pytest.importorskip("evt3")
    words = real_words()
    time_high = np.flatnonzero(words >> 12 == 0x8)
    damaged = words.copy()
    damaged[time_high[len(time_high) // 2]] ^= 1 << 10
    theirs = evt3.Decoder(GEN4.width, GEN4.height).feed(damaged.tobytes()).t.astype(np.int64)
    ours = Evt3Decoder(GEN4).decode(damaged.tobytes())["t"]
    clean = Evt3Decoder(GEN4).decode(words.tobytes())["t"]
    np.testing.assert_array_equal(ours, clean)  # ours: exact
    wrong = np.flatnonzero(theirs != clean)  # theirs: shifted until the next TIME_HIGH, then right again
    assert 0 < wrong.size < 5000 and np.all(theirs[wrong] - clean[wrong] == 1 << 22)
    np.testing.assert_array_equal(theirs[wrong[-1] + 1 :], clean[wrong[-1] + 1 :])


def test_evt3_rollover_only_across_the_top_of_the_counter():
    """A backward TIME_HIGH step far from the top of the counter is a bit error, not a rollover."""
    events = random_events(3000, seed=1, t0_us=2_000_000, span_us=3_000_000)
    words = np.frombuffer(encode_evt3(events), "<u2").copy()
    time_high = np.flatnonzero(words >> 12 == 0x8)
    words[time_high[len(time_high) // 2]] &= 0xF000  # TIME_HIGH 0: 2-5 s -> 0 looks like a rollover to the codecs
    decoder = Evt3Decoder(SensorSize(WIDTH, HEIGHT))
    out = decoder.decode(words.tobytes())
    assert out["t"].max() <= events["t"].max()  # no event moved 16.78 s ahead
    assert decoder.stats.time_errors >= 1
    # this sparse stream writes each TIME_HIGH once: the events until the next one keep the time
    # in force (at most one 4096 us unit early) or are dropped as out of order, and counted
    assert out.size + decoder.stats.time_dropped == events.size
    assert np.isin(out["t"], events["t"]).mean() > 0.99


def test_evt3_genuine_rollovers_and_long_gaps_decode_whatever_the_packet_cuts():
    events = random_events(4000, seed=2, span_us=40_000_000)
    events["t"][2000:] += 3 * 2**24  # three full counter periods without events
    payload = np.frombuffer(encode_evt3(events), np.uint8)
    for cut in (None, 2, 64, 1000):
        decoder = Evt3Decoder(SensorSize(WIDTH, HEIGHT))
        parts = [payload] if cut is None else np.array_split(payload, payload.size // cut)
        out = concat_events([decoder.decode(p.tobytes()) for p in parts])
        np.testing.assert_array_equal(out, events)
        assert decoder.stats.time_errors == decoder.stats.time_resets == 0


def test_evt3_sensor_restart_is_a_counted_jump():
    a = random_events(500, seed=3, t0_us=9_000_000, span_us=1_000_000)
    b = random_events(500, seed=4, t0_us=100, span_us=1_000_000)  # the sensor clock restarted
    decoder = Evt3Decoder(SensorSize(WIDTH, HEIGHT))
    out = concat_events([decoder.decode(encode_evt3(a)), decoder.decode(encode_evt3(b, prev_t_us=None))])
    assert decoder.stats.time_resets == 1
    assert np.all(np.diff(out["t"]) >= 0)  # taken forward: time stays monotone, the stream restarts
    np.testing.assert_array_equal(np.diff(out["t"][500:]), np.diff(b["t"]))


def test_evt2_time_high_bit_flip_is_ignored():
    t = np.arange(0, 2_000_000, 50, dtype=np.int64)
    high = t >> 6
    words = []
    for ti, hi in zip(t.tolist(), high.tolist()):
        words += [(0x8 << 28) | hi, (1 << 28) | ((ti & 0x3F) << 22) | (5 << 11) | 7]
    words = np.array(words, dtype="<u4")
    clean = Evt2Decoder(SensorSize(WIDTH, HEIGHT)).decode(words.tobytes())
    damaged = words.copy()
    damaged[20_000] ^= 1 << 20  # a TIME_HIGH word: +67 s
    decoder = Evt2Decoder(SensorSize(WIDTH, HEIGHT))
    out = decoder.decode(damaged.tobytes())
    # the one event under the damaged word keeps the time in force (64 us early, out of order:
    # dropped and counted); every other event is exact
    assert decoder.stats.time_errors >= 1 and out.size + decoder.stats.time_dropped == clean.size
    np.testing.assert_array_equal(out[10_000:], clean[clean.size - out.size + 10_000 :])
    assert out.size >= clean.size - 1


# ------------------------------------------------------------------ garbage payloads, time bases, seq


def test_garbage_payload_is_dropped_whole_and_decoding_resumes():
    events = random_events(6000, seed=5)
    raws = evt3_packets(events, 12)
    garbage = np.random.default_rng(6).integers(0, 256, len(raws[5]), dtype=np.uint8).tobytes()
    stream = EventPacketStream()
    out = [stream.decode_cdr(packet(p, seq)).events for seq, p in enumerate(raws[:5])]
    assert stream.decode_cdr(packet(garbage, 5)).events.size == 0  # dropped whole, not decoded into events
    out += [stream.decode_cdr(packet(p, seq)).events for seq, p in enumerate(raws[6:], start=6)]
    got = concat_events(out)
    expected = concat_events(np.array_split(events, 12)[:5] + np.array_split(events, 12)[6:])
    np.testing.assert_array_equal(got, expected)
    assert stream.stats.bad_packets == 1 and stream.stats.time_resets == 0


@pytest.mark.parametrize("encoding", ["mono", "libcaer", "libcaer_cmp"])
def test_garbage_time_base_packet_is_dropped_and_a_real_restart_is_followed(encoding):
    encode = {"mono": encode_mono, "libcaer": encode_libcaer, "libcaer_cmp": encode_libcaer_cmp}[encoding]
    events = random_events(4000, seed=7, t0_us=T0_US, span_us=2_000_000)
    parts = np.array_split(events, 8)
    stream = EventPacketStream()

    def feed(part, seq, time_base_ns=None):
        tb = int(part["t"][0]) * 1000 if time_base_ns is None else time_base_ns
        return stream.decode_cdr(packet(encode(part, tb), seq, encoding, tb)).events

    got = [feed(p, i) for i, p in enumerate(parts[:4])]
    # a garbage time_base 915 s ahead (the issue saw results stamped 14.7 h in the future)
    ahead = parts[4].copy()
    ahead["t"] += 915_000_000
    assert feed(ahead, 4).size == 0
    got += [feed(p, i) for i, p in enumerate(parts[5:], start=5)]
    np.testing.assert_array_equal(concat_events(got), concat_events(parts[:4] + parts[5:]))
    assert stream.stats.time_resets == 0 and stream.stats.time_dropped == parts[4].size
    # the driver restarts its clock 1 h later: two packets agree, the second is taken as a restart
    later = [p.copy() for p in parts[:2]]
    for p in later:
        p["t"] += 3_600_000_000
    assert feed(later[0], 8).size == 0
    np.testing.assert_array_equal(feed(later[1], 9), later[1])
    assert stream.stats.time_resets == 1


def test_garbage_seq_is_not_counted_as_lost_packets():
    events = random_events(3000, seed=8)
    raws = evt3_packets(events, 6)
    stream = EventPacketStream()
    for seq, p in zip([0, 1, 2**63 + 12345, 3, 4, 5], raws):
        stream.decode_cdr(packet(p, seq))
    assert stream.stats.lost_packets == 0
    assert stream.stats.seq_resets == 1
    # a real gap is still counted
    stream.decode_cdr(packet(encode_evt3(events[-1:], prev_t_us=int(events["t"][-1])), 9))
    assert stream.stats.lost_packets == 3


@pytest.mark.parametrize("msgtype", ["dvs_msgs/msg/EventArray", "prophesee_event_msgs/msg/EventArray",
                                     "dv_ros2_msgs/msg/EventArray"])
def test_event_arrays_drop_negative_and_backward_times(msgtype):
    events = random_events(400, seed=9, t0_us=5_000_000)
    bad = events.copy()
    bad["t"][10] = -5  # a negative stamp
    bad["t"][200] = bad["t"][150]  # one event back in time
    bad["t"][300] -= 1_000_000  # far back
    stream = EventArrayStream(msgtype)
    out = stream.decode_cdr(encode_event_array(bad, WIDTH, HEIGHT)).events
    assert np.all(out["t"] >= 0) and np.all(np.diff(out["t"]) >= 0)
    assert out.size == events.size - 3
    assert stream.stats.time_dropped == 3 and stream.stats.time_errors == 2
    # the next message goes on from the last good time
    nxt = random_events(100, seed=10, t0_us=int(events["t"][-1]) + 1, span_us=10_000)
    np.testing.assert_array_equal(stream.decode_cdr(encode_event_array(nxt, WIDTH, HEIGHT)).events, nxt)


def _swap_records(payload: bytes, i: int, j: int, record_bytes: int = 8) -> bytes:
    records = np.frombuffer(payload, dtype=np.uint8).reshape(-1, record_bytes).copy()
    records[[i, j]] = records[[j, i]]
    return records.tobytes()


@pytest.mark.parametrize("encoding", ["mono", "libcaer", "libcaer_cmp", "evt3"])
def test_time_running_backwards_inside_a_packet_is_counted_for_every_encoding(encoding):
    """A packet whose events come out of order (a garbage offset or time word): counted, never passed on."""
    events = random_events(300, seed=11, t0_us=T0_US if encoding != "evt3" else 1_000, span_us=50_000)
    tb = T0_US * 1000 if encoding != "evt3" else 0
    if encoding in ("mono", "libcaer"):
        encode = encode_mono if encoding == "mono" else encode_libcaer
        payload = _swap_records(encode(events, tb), 100, 250)
    else:  # time words: bit 11 of one TIME_LOW word flipped, its events 2048 us late
        code = 0x6 if encoding == "evt3" else 0x1
        words = np.frombuffer(encode_evt3(events) if encoding == "evt3" else encode_libcaer_cmp(events, tb), "<u2").copy()
        time_low = np.flatnonzero((words >> 12 == code) & ((words & 0x800) == 0))
        words[time_low[len(time_low) // 2]] |= 0x800
        payload = words.tobytes()
    decoder = make_decoder(encoding, SensorSize(WIDTH, HEIGHT))
    out = decoder.decode(payload, tb)
    assert np.all(np.diff(out["t"]) >= 0)
    assert decoder.stats.time_dropped >= 1 and decoder.stats.time_errors >= 1
    assert decoder.stats.events == out.size


def test_longest_ordered_run_drops_one_spike_not_the_rest():
    stats = DecodeStats()
    guard = TimeGuard(stats, "test")
    t = np.arange(1000, 2000, dtype=np.int64)
    t[10] = 1_500_000  # one spike far ahead inside the packet
    events = make_events(t, 1, 1, 1)
    out = guard(events)
    assert out.size == 999 and stats.time_dropped == 1
    assert guard.last_t_us == 1999  # the spike does not become the stream's time


# ------------------------------------------------------------------ sizes


@pytest.mark.parametrize("encoding,size", [("evt3", (2049, 720)), ("evt3", (65535, 65535)),
                                           ("libcaer_cmp", (4096, 100)), ("mono", (100, 40000)),
                                           ("libcaer", (40000, 100))])
def test_sensor_sizes_beyond_the_encoding_are_refused(encoding, size):
    with pytest.raises(ValueError, match="beyond"):
        make_decoder(encoding, SensorSize(*size))
    stream = EventPacketStream()
    assert stream.decode_cdr(packet(b"\x00" * 16, 0, encoding, size=size)).events.size == 0
    assert stream.stats.bad_packets == 1 and "beyond" in (stream.last_error or "")


def test_size_limit_is_configurable():
    limits = StreamLimits(max_width=1024, max_height=1024)
    stream = EventArrayStream(limits=limits)
    ev = random_events(10, seed=12)
    assert stream.decode_cdr(encode_event_array(ev, 2000, 1000)).events.size == 0
    assert stream.stats.bad_packets == 1
    assert stream.decode_cdr(encode_event_array(ev, WIDTH, HEIGHT)).events.size == 10
    make_decoder("evt3", SensorSize(2048, 2048))  # the encoding's own limit is the ceiling
    with pytest.raises(ValueError):
        StreamLimits(max_jump_us=0)


def test_node_input_decoding_in_place_equals_the_copied_checked_path_on_damaged_real_packets():
    """EventInput decodes each packet straight into its windower's buffer and pushes it as time-ordered (the
    stream's time guard). On the real recording cut into packets with bit flips, garbage payloads, cut payloads and
    messages, and garbage seqs, its windows and counters equal those of the same stream decoded into an array of its
    own and pushed through the windower's full order check."""
    from event_clip_ros.apps.event_input import EventInput
    from event_clip_ros.events.windows import WindowConfig

    class CopiedChecked(EventInput):
        def feed(self, raw):
            msg = self.stream.decode_cdr(raw)
            out = self._restart() if msg.restarted else []
            if msg.events.shape[0] == 0:
                return out
            return out + self._push(msg.events, msg.size, msg.stamp_ns - msg.reference_us * 1000, msg.frame_id)

    payload = real_words().view(np.uint8)
    rng = np.random.default_rng(0)
    config = WindowConfig(duration_us=500, min_events=1)
    damaged = windows = 0
    for trial in range(20):
        cuts = np.sort(rng.choice(np.arange(2, payload.size, 2), 40, replace=False))
        messages = []
        for i, piece in enumerate(np.split(payload, cuts)):
            piece = piece.copy()
            kind = rng.integers(0, 6) if trial else 5  # trial 0: undamaged
            if kind == 0:  # bit flips
                flips = rng.integers(0, piece.size * 8, max(1, piece.size // 500))
                np.bitwise_xor.at(piece, flips // 8, (1 << (flips % 8)).astype(np.uint8))
            elif kind == 1:  # garbage payload
                piece = rng.integers(0, 256, piece.size, dtype=np.uint8)
            elif kind == 2:  # payload cut short
                piece = piece[: rng.integers(0, piece.size + 1)]
            damaged += int(kind < 3)
            seq = i if trial == 0 or rng.random() > 0.05 else int(rng.integers(0, 2**40))
            raw = encode_event_packet(piece, encoding="evt3", width=GEN4.width, height=GEN4.height, seq=seq,
                                      stamp_ns=T0_US * 1000 + i * 10**6)
            if trial and rng.random() < 0.03:  # the message itself cut short
                raw = raw[: rng.integers(0, len(raw))]
            messages.append(raw)
        results = []
        for cls in (CopiedChecked, EventInput):
            source = cls(EVENT_PACKET_TYPES[0], config)
            pending = [w for raw in messages for w in source.feed(raw)] + source.flush()
            results.append(([(w.window.t_start_us, w.window.t_end_us, w.stamp_ns,
                              *(w.window.events[f].tobytes() for f in ("t", "x", "y", "p"))) for w in pending],
                            source.counters()))
        assert results[1][0] == results[0][0], f"trial {trial}: windows differ"
        assert results[1][1] == results[0][1], f"trial {trial}: counters differ"
        windows += len(results[0][0])
    assert damaged > 300 and windows > 200  # about half the packets damaged, in 19 of the 20 trials
