"""Prophesee EVT 2.0 decoder (32-bit little-endian words, type in the 4 high bits).

Word layout (OpenEB ``evt2_event_types.h``; docs.prophesee.ai "EVT 2.0 Format"):

====== ============= =====================================================
type   name          payload
====== ============= =====================================================
0x0    CD_OFF        ts_lsb[27:22] (6 bits), x[21:11], y[10:0]: one OFF event
0x1    CD_ON         same as CD_OFF: one ON event
0x8    EVT_TIME_HIGH ts[27:0]: the upper 28 bits of the time, t = high << 6 | lsb
0xA    EXT_TRIGGER   external trigger (no CD event, ignored)
0xE    OTHERS        vendor-specific (ignored)
0xF    CONTINUED     extra payload of the previous word (ignored)
====== ============= =====================================================

A compiled state machine (numba) like :mod:`.evt3`: CD words before the first
TIME_HIGH carry no usable time and are skipped and counted; the 34-bit time
(28 + 6 bits, about 4.8 h) rolls over (+2**34 us) on a small forward step across
the top of the counter; TIME_HIGH steps are judged as in the EVT 3.0 decoder
(:func:`~event_clip_ros.events.time_guard.judge_time_high`: a move beyond the
stream's jump limit counts as a jump only when the next TIME_HIGH confirms it,
else it is a bit error, ignored and counted); events outside the sensor are
dropped and counted; unknown word codes are skipped and counted, never fatal.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..time_guard import TIME_HIGH_SLOTS, following_time_high, take_time_high
from .base import OUT_OF_BOUNDS, SKIPPED_WORDS, TIME_HIGH_BIT_ERRORS, TIME_JUMPS, UNKNOWN_WORDS, StreamDecoder, record_word

# state slots
_HAVE_HIGH, _T_HIGH, _EPOCH = range(3)
_TRACKER = 3  # the TIME_HIGH tracker's slots (time_guard.TIME_HIGH_SLOTS) follow
# counter slots (Evt2Decoder.counter_slots in this order)
_OOB, _UNKNOWN, _SKIPPED, _TIME_ERR, _JUMPS = range(5)

_LSB_BITS = 6
_HIGH_RANGE = 1 << 28  # TIME_HIGH units (64 us each) before the counter wraps
_ROLLOVER_US = _HIGH_RANGE << _LSB_BITS


@njit(cache=True, nogil=True)
def _count_cd(words):
    n = 0
    for i in range(words.shape[0]):
        if (words[i] >> 28) <= 0x1:
            n += 1
    return n


@njit(cache=True, nogil=True)
def _decode(words, start, out, n, state, width, height, max_jump_units, counters):
    """Decode ``words[start:]`` into ``out`` (records as int64 pairs) from record ``n`` on;
    return (records, first word not decoded, False: order not tracked): see :class:`StreamDecoder`."""
    have_high = state[_HAVE_HIGH]
    t_high = state[_T_HIGH]
    epoch = state[_EPOCH]
    room = out.shape[0] // 2  # records out holds
    stop = words.shape[0]
    for i in range(start, words.shape[0]):
        w = np.int64(words[i])
        code = w >> 28
        if code <= 0x1:  # CD_OFF / CD_ON
            if n == room:
                stop = i  # out is full: the caller gives more room
                break
            if have_high == 0:
                counters[_SKIPPED] += 1
                continue
            x = (w >> 11) & 0x7FF
            y = w & 0x7FF
            if x < width and y < height:
                out[2 * n] = epoch + ((t_high << _LSB_BITS) | ((w >> 22) & 0x3F))
                out[2 * n + 1] = record_word(x, y, code)
                n += 1
            else:
                counters[_OOB] += 1
        elif code == 0x8:  # EVT_TIME_HIGH
            high = w & 0xFFFFFFF
            taken, epoch, shift, errors, jumps = take_time_high(
                state, _TRACKER, have_high, t_high, high, following_time_high(words, i, 28, 0x8, 0xFFFFFFF), epoch, _HIGH_RANGE,
                1 << _LSB_BITS, max_jump_units)
            counters[_TIME_ERR] += errors
            counters[_JUMPS] += jumps
            if not taken:
                continue
            for k in range(n if shift else 0):  # a repaired bit error: this packet's events so far
                out[2 * k] -= shift
            t_high = high
            have_high = 1
        elif code == 0xA or code == 0xE or code == 0xF:
            pass  # EXT_TRIGGER, OTHERS, CONTINUED: no CD events
        else:
            counters[_UNKNOWN] += 1
    state[_HAVE_HIGH] = have_high
    state[_T_HIGH] = t_high
    state[_EPOCH] = epoch
    return n, stop, False


class Evt2Decoder(StreamDecoder):
    """Stateful EVT 2.0 decoder; a partial trailing word waits for the next packet.

    ``time_base_ns`` is ignored: EVT 2.0 carries its own sensor clock (us).
    """

    encoding = "evt2"
    word_dtype = np.dtype("<u4")
    state_slots = 3 + TIME_HIGH_SLOTS
    counter_slots = (OUT_OF_BOUNDS, UNKNOWN_WORDS, SKIPPED_WORDS, TIME_HIGH_BIT_ERRORS, TIME_JUMPS)
    time_unit_us = 1 << _LSB_BITS
    max_width = max_height = 2048  # 11-bit x and y
    max_events = staticmethod(_count_cd)
    kernel = staticmethod(_decode)

    @property
    def time_us(self) -> int | None:
        """Start of the current TIME_HIGH period (us), or None before a TIME_HIGH was seen."""
        st = self._state
        return int(st[_EPOCH] + (st[_T_HIGH] << _LSB_BITS)) if st[_HAVE_HIGH] else None
