"""Decoder of the deprecated ``mono`` EventPacket encoding (8 bytes per event).

Semantics of event_camera_codecs ``include/event_camera_codecs/mono_decoder.h``:
one little-endian uint64 per event, bit 63 polarity, bits 48-62 y, bits 32-47 x,
bits 0-31 dt in ns; the event time is ``time_base + dt`` ns (t in us =
``(time_base_ns + dt) // 1000``). Records are independent, so a packet needs no
state from the one before. Unlike the codec, events outside the sensor are
dropped and counted, and trailing bytes that do not make a whole record are
counted in ``truncated_bytes`` and ignored.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..native import PREFETCH_BYTES, prefetch
from .base import OUT_OF_BOUNDS, Allocator, TimeBaseDecoder

#: Records between the one the kernel reads and the one it prefetches.
_AHEAD = PREFETCH_BYTES // 8


@njit(cache=True, nogil=True)
def _decode(words, out, time_base_ns, width, height):
    """Decode int64-viewed records into ``out``; return (events written, dropped outside sensor,
    whether their times never go back)."""
    n = 0
    m = words.shape[0]
    last = -1
    back = False
    for i in range(m):
        if (i & 7) == 0:  # one prefetch per 64-byte line of records
            prefetch(words, min(i + _AHEAD, m - 1))
        w = words[np.uint64(i)]  # unsigned indices: no negative-index fix-ups
        x = (w >> 32) & 0xFFFF
        y = (w >> 48) & 0x7FFF
        if x < width and y < height:
            t = (time_base_ns + (w & 0xFFFFFFFF)) // 1000
            back |= t < last
            last = t
            rec = out[np.uint64(n)]
            rec.t = t
            rec.x = x
            rec.y = y
            rec.p = (w >> 63) & 1
            n += 1
    return n, m - n, not back


class MonoDecoder(TimeBaseDecoder):
    """Stateless ``mono`` decoder (one uint64 record per event)."""

    encoding = "mono"
    record_dtype = np.dtype("<i8")
    out_of_bounds_is_error = True
    counter_slots = (OUT_OF_BOUNDS,)
    max_height = 32768  # 15-bit y (x has 16 bits)

    def _decode_records(self, records: np.ndarray, time_base_ns: int, alloc: Allocator) -> tuple[np.ndarray, tuple[int], bool]:
        out = alloc(records.size)
        n, dropped, ordered = _decode(records, out, time_base_ns, self.size.width, self.size.height)
        return out[:n], (dropped,), ordered
