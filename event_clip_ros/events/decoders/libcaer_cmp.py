"""Decoder of the compressed ``libcaer_cmp`` EventPacket encoding (16-bit words).

Semantics of event_camera_codecs ``include/event_camera_codecs/libcaer_cmp_decoder.h``
and ``libcaer_cmp_types.h``; little-endian 16-bit words, code in bits 12-15:

==== =========== ==================================================================
code name        action
==== =========== ==================================================================
0    TIME_HIGH   time bits 12-23 = bits 0-11 (no rollover tracking: 24 bits per packet)
1    TIME_LOW    time bits 0-11 = bits 0-11
2    ADDR_X      current column = bits 0-10
3    ADDR_Y      **emits one event** (current column, y = bits 0-10, polarity = bit 11)
4    VECT_BASE_Y base row = bits 0-10, vector polarity = bit 11
5    VECT_8      for each set bit i of bits 0-7 emits (current column, base row + i,
                 vector polarity); then base row += 8
==== =========== ==================================================================

Event time = time_base + ((TIME_HIGH << 12) | TIME_LOW) * 1000 ns, i.e. t in us =
time_base_ns // 1000 + the 24-bit offset. As in the codec the time offset
restarts at 0 with every packet, while the current column, base row and vector
polarity carry over from packet to packet (``reset()`` forgets them).

Departures from the codec, which silently ignores them: events outside the
sensor are dropped and counted; words with other codes (6 = VECT_12, declared but
never written or decoded, and 7-15) are skipped and counted; an odd trailing
byte is counted in ``truncated_bytes`` and ignored.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .base import OUT_OF_BOUNDS, UNKNOWN_WORDS, Allocator, TimeBaseDecoder

# state slots (carried across packets)
_X, _BASE_Y, _POL = range(3)
# counter slots (LibcaerCmpDecoder.counter_slots in this order)
_OOB, _UNKNOWN = range(2)


@njit(cache=True, nogil=True)
def _max_events(words):
    n = 0
    for i in range(words.shape[0]):
        code = words[i] >> 12
        if code == 3:
            n += 1
        elif code == 5:
            n += 8
    return n


@njit(cache=True, nogil=True)
def _decode(words, out, time_base_us, width, height, state, counters):
    n = 0
    t = time_base_us
    t_high = np.int64(0)
    t_low = np.int64(0)
    x = state[_X]
    base_y = state[_BASE_Y]
    pol = state[_POL]
    for i in range(words.shape[0]):
        w = np.int64(words[i])
        code = w >> 12
        if code == 0:  # TIME_HIGH
            t_high = (w & 0xFFF) << 12
            t = time_base_us + (t_high | t_low)
        elif code == 1:  # TIME_LOW
            t_low = w & 0xFFF
            t = time_base_us + (t_high | t_low)
        elif code == 2:  # ADDR_X
            x = w & 0x7FF
        elif code == 3:  # ADDR_Y: one event
            y = w & 0x7FF
            if x < width and y < height:
                rec = out[n]
                rec.t = t
                rec.x = x
                rec.y = y
                rec.p = (w >> 11) & 1
                n += 1
            else:
                counters[_OOB] += 1
        elif code == 4:  # VECT_BASE_Y
            base_y = w & 0x7FF
            pol = (w >> 11) & 1
        elif code == 5:  # VECT_8
            for b in range(8):
                if (w >> b) & 1:
                    y = (base_y + b) & 0xFFFF  # the codec's row is a uint16
                    if x < width and y < height:
                        rec = out[n]
                        rec.t = t
                        rec.x = x
                        rec.y = y
                        rec.p = pol
                        n += 1
                    else:
                        counters[_OOB] += 1
            base_y = (base_y + 8) & 0xFFFF
        else:
            counters[_UNKNOWN] += 1
    state[_X] = x
    state[_BASE_Y] = base_y
    state[_POL] = pol
    return n


class LibcaerCmpDecoder(TimeBaseDecoder):
    """Stateful ``libcaer_cmp`` decoder (column, base row and polarity carry over)."""

    encoding = "libcaer_cmp"
    record_dtype = np.dtype("<u2")
    counter_slots = (OUT_OF_BOUNDS, UNKNOWN_WORDS)
    max_width = max_height = 2048  # 11-bit column and row fields

    def reset(self) -> None:
        super().reset()
        self._state = np.zeros(3, dtype=np.int64)

    def _decode_records(self, records: np.ndarray, time_base_ns: int, alloc: Allocator) -> tuple[np.ndarray, np.ndarray, bool]:
        counts = self._new_counts()
        out = alloc(_max_events(records))
        # (time_base + offset * 1000) // 1000 == time_base // 1000 + offset: work in us
        n = _decode(records, out, time_base_ns // 1000, self.size.width, self.size.height, self._state, counts)
        return out[:n], counts, False
