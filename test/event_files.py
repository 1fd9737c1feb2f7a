"""Writers of small event files in every format the readers support (test data only).

Each writer follows the layout its reader's module docstring states, written
independently of the reader (plain numpy packing), so a round trip checks both.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from event_clip_ros.events.encoders.evt3 import encode_evt3
from event_clip_ros.events.types import SensorSize, make_events


def random_events(n: int, size: SensorSize, seed: int = 0, t0: int = 1000, max_step_us: int = 40) -> np.ndarray:
    """``n`` events with non-decreasing t from ``t0``, uniform over the sensor, both polarities."""
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.integers(0, max_step_us, n))
    return make_events(t, rng.integers(0, size.width, n), rng.integers(0, size.height, n), rng.integers(0, 2, n))


# --- Prophesee RAW -----------------------------------------------------------------------------


def percent_header(lines: Sequence[str]) -> bytes:
    return b"".join(f"% {line}\n".encode() for line in lines)


def encode_evt2(events: np.ndarray) -> bytes:
    """EVT 2.0 words: a TIME_HIGH (t >> 6) whenever it changes, then CD_ON/CD_OFF with the 6 low bits.

    As a sensor (which writes a TIME_HIGH every 64 us) a gap between events gets a TIME_HIGH
    at least every :data:`_EVT2_BRIDGE_UNITS` (about 1 s), so decoders see no implausible jump.
    """
    t = events["t"].astype(np.int64)
    high = t >> 6
    words: list[int] = []
    last_high = None
    for ti, hi, x, y, p in zip(t.tolist(), high.tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        if hi != last_high:
            if last_high is not None:
                words.extend((0x8 << 28) | (h & 0xFFFFFFF) for h in range(last_high + _EVT2_BRIDGE_UNITS, hi, _EVT2_BRIDGE_UNITS))
            words.append((0x8 << 28) | (hi & 0xFFFFFFF))
            last_high = hi
        words.append((p << 28) | ((ti & 0x3F) << 22) | (x << 11) | y)
    return np.array(words, dtype="<u4").tobytes()


_EVT2_BRIDGE_UNITS = 1 << 14  # 64 us units: 1.05 s


def write_raw(path: Path, events: np.ndarray, encoding: str, header_lines: Sequence[str]) -> Path:
    body = encode_evt3(events) if encoding == "evt3" else encode_evt2(events)
    path.write_bytes(percent_header(header_lines) + body)
    return path


# --- Prophesee DAT -----------------------------------------------------------------------------


def dat_body(events: np.ndarray, t_bits_mask: int = 0xFFFFFFFF) -> bytes:
    rec = np.empty(events.size, dtype=[("t", "<u4"), ("addr", "<u4")])
    rec["t"] = events["t"].astype(np.int64) & t_bits_mask
    rec["addr"] = (
        events["x"].astype(np.uint32)
        | (events["y"].astype(np.uint32) << 14)
        | (events["p"].astype(np.uint32) << 28)
    )
    return rec.tobytes()


DAT_HEADER = ("Data file containing Event2D events.", "Version 2")


def write_dat(path: Path, events: np.ndarray, header_lines: Sequence[str] | None = DAT_HEADER,
              ev_type: int = 0, ev_size: int = 8) -> Path:
    """A DAT file; ``header_lines=None`` writes the old header-less layout (no type/size bytes)."""
    head = b"" if header_lines is None else percent_header(header_lines) + bytes([ev_type, ev_size])
    path.write_bytes(head + dat_body(events))
    return path


# --- N-MNIST / N-Caltech101 ATIS .bin ----------------------------------------------------------


def write_atis_bin(path: Path, events: np.ndarray) -> Path:
    """5-byte records; t is written modulo 2**23 (the field width)."""
    t = events["t"].astype(np.int64) & 0x7FFFFF
    rec = np.empty((events.size, 5), dtype=np.uint8)
    rec[:, 0] = events["x"]
    rec[:, 1] = events["y"]
    rec[:, 2] = (events["p"].astype(np.int64) << 7) | (t >> 16)
    rec[:, 3] = (t >> 8) & 0xFF
    rec[:, 4] = t & 0xFF
    path.write_bytes(rec.tobytes())
    return path


# --- N-ImageNet .npz ---------------------------------------------------------------------------


def write_nimagenet(path: Path, events: np.ndarray, names: Sequence[str] = ("x", "y", "t", "p"),
                    polarity: str = "bool") -> Path:
    """``event_data`` with fields ``names`` (x, y, t, p order); polarity "bool", "01" or "pm1"."""
    fx, fy, ft, fp = names
    p_dtype = {"bool": "?", "01": "u1", "pm1": "i1"}[polarity]
    data = np.empty(events.size, dtype=[(fx, "<u2"), (fy, "<u2"), (ft, "<i8"), (fp, p_dtype)])
    data[fx], data[fy], data[ft] = events["x"], events["y"], events["t"]
    data[fp] = events["p"] if polarity != "pm1" else events["p"].astype(np.int8) * 2 - 1
    np.savez_compressed(path, event_data=data)
    return path


# --- AEDAT 3.1 ---------------------------------------------------------------------------------

_PACKET = struct.Struct("<HHIIIIII")


def aedat31_packet(ev_type: int, ev_size: int, ts_overflow: int, payload: bytes, number: int, valid: int) -> bytes:
    return _PACKET.pack(ev_type, 1, ev_size, 4, ts_overflow, number, number, valid) + payload


def polarity_packet(events: np.ndarray, ts_overflow: int, invalid_every: int = 0) -> bytes:
    """A polarity packet; with ``invalid_every`` an extra invalidated event follows every n-th event."""
    data = (
        (events["x"].astype(np.uint32) << 17)
        | (events["y"].astype(np.uint32) << 2)
        | (events["p"].astype(np.uint32) << 1)
        | 1
    )
    ts = (events["t"].astype(np.int64) & 0x7FFFFFFF).astype(np.uint32)
    rec = np.empty(events.size, dtype=[("data", "<u4"), ("ts", "<u4")])
    rec["data"], rec["ts"] = data, ts
    valid = events.size
    if invalid_every:
        at = np.arange(invalid_every, events.size + 1, invalid_every)
        junk = rec[at - 1].copy()
        junk["data"] = (junk["data"] & ~np.uint32(1)) ^ np.uint32(5 << 17)  # moved and invalid
        rec = np.insert(rec, at, junk)
    return aedat31_packet(1, 8, ts_overflow, rec.tobytes(), rec.size, valid)


def write_aedat31(path: Path, events: np.ndarray, header_lines: Sequence[str] = ("#Format: RAW", "#Source 1: DVS128"),
                  packet_events: int = 500, invalid_every: int = 0) -> Path:
    """Polarity packets of ``packet_events`` (split where t >> 31 changes), a special-event packet between them."""
    out = [b"#!AER-DAT3.1\r\n", *(f"{line}\r\n".encode() for line in header_lines), b"#!END-HEADER\r\n"]
    overflow = events["t"].astype(np.int64) >> 31
    starts = sorted(set(range(0, events.size, packet_events)) | set(np.flatnonzero(np.diff(overflow)) + 1))
    for a, b in zip(starts, [*starts[1:], events.size]):
        out.append(polarity_packet(events[a:b], int(overflow[a]), invalid_every))
        out.append(aedat31_packet(0, 8, 0, bytes(16), 2, 2))  # two special events: skipped by the reader
    path.write_bytes(b"".join(out))
    return path


# --- AEDAT 4.0 ---------------------------------------------------------------------------------


def write_aedat4(path: Path, events: np.ndarray, size: SensorSize, batch: int = 700) -> Path:
    """An AEDAT 4.0 file written by dv-processing's MonoCameraWriter, ``batch`` events per write."""
    import dv_processing as dv

    config = dv.io.MonoCameraWriter.EventOnlyConfig("test", (size.width, size.height))
    writer = dv.io.MonoCameraWriter(str(path), config)
    for a in range(0, events.size, batch):
        store = dv.EventStore()
        for e in events[a : a + batch]:
            store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
        writer.writeEvents(store)
    del writer  # the file is finalised (index written) when the writer is destroyed
    return path
