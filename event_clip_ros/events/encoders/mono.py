"""Encoder of the deprecated ``mono`` EventPacket encoding (8 bytes per event).

Layout from event_camera_codecs ``mono_decoder.h``: one little-endian uint64 per
event, bit 63 polarity, bits 48-62 y, bits 32-47 x, bits 0-31 the event time in
ns after the packet's ``time_base``.
"""

from __future__ import annotations

import numpy as np

from .validate import validate_events

_MAX_DT_NS = (1 << 32) - 1


def encode_mono(events: np.ndarray, time_base_ns: int) -> bytes:
    """Encode one packet of time-sorted events relative to ``time_base_ns``.

    Decoding gives back the events exactly (``t = (time_base_ns + dt_ns) // 1000``).
    Raises ValueError if an event lies before ``time_base_ns`` or more than
    2**32 ns (4.29 s) after it.
    """
    validate_events(events, "mono", 0xFFFF, 0x7FFF)
    if events.size == 0:
        return b""
    dt_ns = events["t"] * 1000 - int(time_base_ns)
    if dt_ns[0] < 0 or dt_ns[-1] > _MAX_DT_NS:
        raise ValueError("mono: events must lie within [time_base, time_base + 2**32 ns)")
    words = (
        (events["p"].astype(np.uint64) << np.uint64(63))
        | (events["y"].astype(np.uint64) << np.uint64(48))
        | (events["x"].astype(np.uint64) << np.uint64(32))
        | dt_ns.astype(np.uint64)
    )
    return words.astype("<u8").tobytes()
