"""Decoder of the uncompressed ``libcaer`` EventPacket encoding (8 bytes per event).

Semantics of event_camera_codecs ``include/event_camera_codecs/libcaer_decoder.h``
(the record is libcaer's polarity event, little-endian ``{uint32 data; int32
timestamp}``): polarity = data bit 1, y = data bits 2-16, x = data bits 17-31;
the timestamp is the low 31 bits of the sensor time in us and ``time_base`` (ns)
carries the rest, so t = time_base + timestamp * 1000 ns. Within a packet each
backward timestamp step across the top of the counter is a 31-bit rollover and
adds 2**31 us to the rest of the packet (any other step back is an out-of-order
record, left to the stream's time guard, where the codec would add 35 minutes);
nothing carries over between packets (the codec resets at every packet, the
driver folds the rollovers into the next time_base). The valid mark
(data bit 0) is not checked, as in the codec.

Departures from the codec, which has no geometry and trusts its input: events
outside the sensor are dropped and counted; a record with a negative timestamp
(never written by libcaer) is dropped and counted in ``time_errors`` instead of
faking a rollover; trailing bytes that do not make a whole record are counted in
``truncated_bytes`` and ignored.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .base import OUT_OF_BOUNDS, Allocator, CounterSlot, TimeBaseDecoder

_ROLLOVER_US = 1 << 31
_NEAR_WRAP_US = 1 << 29  # a step back is a wrap only from this close to the top to this close to 0
# counter slots (LibcaerDecoder.counter_slots in this order)
_OOB, _NEG_TS = range(2)
_NEGATIVE_TIMESTAMPS = CounterSlot("time_errors", "time", "dropped records with a negative timestamp")


@njit(cache=True, nogil=True)
def _decode(records, out, time_base_us, width, height, counters):
    """Decode int64-viewed records (data in the low, timestamp in the high half) into ``out``."""
    n = 0
    high_us = time_base_us
    last_ts = 0
    for i in range(records.shape[0]):
        r = records[i]
        ts = r >> 32  # arithmetic shift: the signed int32 timestamp
        if ts < 0:
            counters[_NEG_TS] += 1
            continue
        if ts < last_ts and last_ts >= _ROLLOVER_US - _NEAR_WRAP_US and ts < _NEAR_WRAP_US:
            high_us += _ROLLOVER_US  # the 31-bit counter wrapped (any other step back: see above)
        last_ts = ts
        x = (r >> 17) & 0x7FFF
        y = (r >> 2) & 0x7FFF
        if x < width and y < height:
            rec = out[n]
            rec.t = high_us + ts
            rec.x = x
            rec.y = y
            rec.p = (r >> 1) & 1
            n += 1
        else:
            counters[_OOB] += 1
    return n


class LibcaerDecoder(TimeBaseDecoder):
    """``libcaer`` decoder; packets are independent (time_base carries the high time bits)."""

    encoding = "libcaer"
    record_dtype = np.dtype("<i8")  # data in the low, timestamp in the high half
    out_of_bounds_is_error = True
    counter_slots = (OUT_OF_BOUNDS, _NEGATIVE_TIMESTAMPS)
    max_width = max_height = 32768  # 15-bit x and y

    def _decode_records(self, records: np.ndarray, time_base_ns: int, alloc: Allocator) -> tuple[np.ndarray, np.ndarray, bool]:
        counts = self._new_counts()
        out = alloc(records.size)
        # (time_base + ts * 1000) // 1000 == time_base // 1000 + ts: work in us
        n = _decode(records, out, time_base_ns // 1000, self.size.width, self.size.height, counts)
        return out[:n], counts, False
