"""Seeded fuzz of every EventPacket decoder and every CDR parser with mutated real-shaped data.

Each round builds a clean stream (the real Gen4.1 EVT3 recording where ../shared/data has it,
else an encoded synthetic one; mono, libcaer and libcaer_cmp packets; dvs_msgs-layout EventArray
messages), mutates messages the way links and files break them (bit flips, overwritten spans,
truncation, duplication, random payloads, garbage header fields) and feeds them through the
stream layer, asserting after every message:

* x < width, y < height, p in {0, 1} for the message's declared, accepted geometry;
* time never runs backwards within a stream, except across a counted restart (``time_resets``);
* nothing raises (bad input is counted), and no call takes longer than CALL_LIMIT_S.

``FUZZ_ROUNDS`` (environment) scales the run; the default keeps the module under ~30 s.
``FUZZ_REPORT=1`` prints the figures (inputs, crashes, hangs, wrong results) per stream kind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from event_clip_ros.events.encoders import encode_evt3, encode_libcaer, encode_libcaer_cmp, encode_mono
from event_clip_ros.events.packet_stream import EventStream, make_stream
from event_clip_ros.events.readers.percent_header import read_percent_header
from event_clip_ros.events.ros_cdr import encode_event_array, encode_event_packet
from event_clip_ros.events.types import make_events

ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "12"))
CALL_LIMIT_S = 1.0  # generous for a loaded 2-core CI box; the slowest call measured is ~0.1 s
REAL_EVT3 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "evt3_gen41_1280x720.raw"
WIDTH, HEIGHT = 1280, 720
T0_US = 1_700_000_000_000_000


@dataclass
class Tally:
    inputs: int = 0
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)


def synthetic_events(rng: np.random.Generator, n: int, t0_us: int) -> np.ndarray:
    return make_events(t0_us + np.sort(rng.integers(0, 200_000, n)), rng.integers(0, WIDTH, n),
                       rng.integers(0, HEIGHT, n), rng.integers(0, 2, n))


def evt3_stream(rng: np.random.Generator) -> list[bytes]:
    if REAL_EVT3.exists():
        header = read_percent_header(REAL_EVT3)
        body = REAL_EVT3.read_bytes()[header.data_offset :]
        cuts = np.sort(rng.choice(np.arange(2, len(body), 2), 30, replace=False))
        payloads = [bytes(p) for p in np.split(np.frombuffer(body, np.uint8), cuts)]
    else:
        events = synthetic_events(rng, 20_000, 1_000)
        payloads, prev = [], None
        for part in np.array_split(events, 30):
            payloads.append(encode_evt3(part, prev))
            prev = int(part["t"][-1])
    return [packet(p, seq, "evt3", 0) for seq, p in enumerate(payloads)]


def time_base_stream(encoding: str) -> Callable[[np.random.Generator], list[bytes]]:
    encode = {"mono": encode_mono, "libcaer": encode_libcaer, "libcaer_cmp": encode_libcaer_cmp}[encoding]

    def build(rng: np.random.Generator) -> list[bytes]:
        events = synthetic_events(rng, 8_000, T0_US)
        out = []
        for seq, part in enumerate(np.array_split(events, 30)):
            tb = int(part["t"][0]) * 1000
            out.append(packet(encode(part, tb), seq, encoding, tb))
        return out

    return build


def array_stream(rng: np.random.Generator) -> list[bytes]:
    events = synthetic_events(rng, 6_000, T0_US)
    return [encode_event_array(p, WIDTH, HEIGHT, stamp_ns=1_700_000_000 * 10**9 + i)
            for i, p in enumerate(np.array_split(events, 30))]


def packet(payload: bytes, seq: int, encoding: str, time_base_ns: int) -> bytes:
    return encode_event_packet(payload, encoding=encoding, width=WIDTH, height=HEIGHT, seq=seq,
                               time_base_ns=time_base_ns, stamp_ns=1_700_000_000 * 10**9 + seq)


STREAMS: dict[str, tuple[str, Callable[[np.random.Generator], list[bytes]]]] = {
    "evt3": ("event_camera_msgs/msg/EventPacket", evt3_stream),
    "mono": ("event_camera_msgs/msg/EventPacket", time_base_stream("mono")),
    "libcaer": ("event_camera_msgs/msg/EventPacket", time_base_stream("libcaer")),
    "libcaer_cmp": ("event_camera_msgs/msg/EventPacket", time_base_stream("libcaer_cmp")),
    "dvs_msgs": ("dvs_msgs/msg/EventArray", array_stream),
}


def mutate(rng: np.random.Generator, messages: list[bytes]) -> list[bytes]:
    """The stream with a few messages damaged the ways real links and files damage them."""
    out = list(messages)
    for _ in range(int(rng.integers(1, 6))):
        i = int(rng.integers(0, len(out)))
        raw = bytearray(out[i])
        kind = int(rng.integers(0, 7))
        if kind == 0:  # bit flips anywhere, header fields included
            for _ in range(int(rng.integers(1, 9))):
                pos = int(rng.integers(0, len(raw)))
                raw[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # a span overwritten with garbage
            a = int(rng.integers(0, len(raw)))
            b = min(len(raw), a + int(rng.integers(1, 512)))
            raw[a:b] = rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()
        elif kind == 2:  # truncated
            raw = raw[: int(rng.integers(0, len(raw)))]
        elif kind == 3:  # duplicated
            out.insert(i, bytes(raw))
        elif kind == 4:  # the payload replaced by random bytes, header kept
            keep = min(len(raw), 80)
            raw = raw[:keep] + bytearray(rng.integers(0, 256, len(raw) - keep, dtype=np.uint8).tobytes())
        elif kind == 5:  # dropped
            del out[i]
            continue
        else:  # spliced: the head of one message, the tail of another
            other = out[int(rng.integers(0, len(out)))]
            cut = int(rng.integers(0, min(len(raw), len(other)) + 1))
            raw = raw[:cut] + bytearray(other[cut:])
        out[i] = bytes(raw)
    return out


def check_stream(stream: EventStream, messages: list[bytes], label: str, tally: Tally) -> None:
    last_t: int | None = None
    resets = 0
    for k, raw in enumerate(messages):
        tally.inputs += 1
        start = time.perf_counter()
        try:
            events = stream.decode_cdr(raw).events
        except Exception as exc:  # noqa: BLE001 - a crash is what the fuzz looks for
            tally.crashes.append(f"{label} message {k}: {type(exc).__name__}: {exc}")
            return
        took = time.perf_counter() - start
        if took > CALL_LIMIT_S:
            tally.hangs.append(f"{label} message {k}: {took:.2f} s")
        if events.size == 0:
            continue
        size = stream.size
        problems = []
        if size is None:
            problems.append("events without an accepted geometry")
        elif events["x"].max() >= size.width or events["y"].max() >= size.height:
            problems.append(f"event outside {size}")
        if events["p"].max() > 1:
            problems.append("polarity > 1")
        t = events["t"]
        if np.any(np.diff(t) < 0):
            problems.append("time runs backwards inside a message")
        if stream.stats.time_resets != resets:
            resets, last_t = stream.stats.time_resets, None
        if last_t is not None and t[0] < last_t:
            problems.append(f"time went back from {last_t} to {int(t[0])} us without a counted restart")
        if t.min() < 0:
            problems.append("negative time")
        last_t = int(t[-1])
        if problems:
            tally.wrong.append(f"{label} message {k}: {'; '.join(problems)}")


@pytest.mark.parametrize("kind", sorted(STREAMS))
def test_fuzz_stream(kind):
    msgtype, build = STREAMS[kind]
    tally = Tally()
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    clean = build(rng)
    for r in range(ROUNDS):
        check_stream(make_stream(msgtype), mutate(rng, clean), f"{kind} round {r}", tally)
        # the raw payload bytes alone: random messages of plausible length
        junk = [bytes(rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8)) for _ in range(20)]
        check_stream(make_stream(msgtype), junk, f"{kind} junk {r}", tally)
    if os.environ.get("FUZZ_REPORT"):
        print(f"\n{kind}: {tally.inputs} messages, {len(tally.crashes)} crashes, {len(tally.hangs)} over "
              f"{CALL_LIMIT_S} s, {len(tally.wrong)} wrong results")
    assert not tally.crashes, tally.crashes[:5]
    assert not tally.hangs, tally.hangs[:5]
    assert not tally.wrong, tally.wrong[:5]
