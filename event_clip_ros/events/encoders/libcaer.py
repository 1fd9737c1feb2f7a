"""Encoder of the uncompressed ``libcaer`` EventPacket encoding (8 bytes per event).

Layout of libcaer's polarity event as read by event_camera_codecs
``libcaer_decoder.h``: little-endian ``{uint32 data; int32 timestamp_us}`` with
data bit 0 the valid mark (set), bit 1 polarity, bits 2-16 y, bits 17-31 x. The
timestamp holds the low 31 bits of the sensor time in us; the packet's
``time_base`` (ns) carries the rest, and a decoder adds 2**31 us whenever the
timestamp steps back inside a packet.
"""

from __future__ import annotations

import numpy as np

from .validate import validate_events

_TS_BITS = 31


def encode_libcaer(events: np.ndarray, time_base_ns: int) -> bytes:
    """Encode one packet of time-sorted events relative to ``time_base_ns``.

    Decoding gives back the events exactly. Raises ValueError if an event lies
    before ``time_base_ns``, or if the first event or a step between events is
    2**31 us (35.8 min) or more, which the 31-bit timestamps cannot represent.
    """
    validate_events(events, "libcaer", 0x7FFF, 0x7FFF)
    if events.size == 0:
        return b""
    rel_us = events["t"] - int(time_base_ns) // 1000
    if rel_us[0] < 0 or rel_us[0] >> _TS_BITS or np.any(np.diff(rel_us) >> _TS_BITS):
        raise ValueError("libcaer: events must start within 2**31 us after time_base and step < 2**31 us")
    data = (
        (events["x"].astype(np.uint32) << np.uint32(17))
        | (events["y"].astype(np.uint32) << np.uint32(2))
        | (events["p"].astype(np.uint32) << np.uint32(1))
        | np.uint32(1)
    )
    records = np.empty((events.size, 2), dtype="<u4")
    records[:, 0] = data
    records[:, 1] = rel_us & ((1 << _TS_BITS) - 1)
    return records.tobytes()
