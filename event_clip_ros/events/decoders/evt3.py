"""Prophesee EVT 3.0 decoder (16-bit little-endian words, type in the 4 high bits).

A compiled state machine (numba) that writes :data:`EVENT_DTYPE` records
directly. It follows event_camera_codecs' ``evt3_decoder.h``: nothing is
emitted until a TIME_HIGH and then a TIME_LOW have been seen; the 24-bit time
base rolls over (+2**24 us) when TIME_HIGH jumps back by more than 10 units;
vector words advance the base column (VECT_12 by 12, VECT_8 by 8); events
outside the sensor are dropped and counted. It differs on purpose in three
places: a backward TIME_HIGH step of 10 units or fewer is a bit error that is
ignored and counted (the codecs apply it, so time would go backwards); ADDR_Y
and VECT_BASE_X update the state before the first valid time (so a stream
joined mid-way gets the right row); unknown word codes are skipped and counted
(the codecs throw).

Why not the PyPI ``evt3`` decoder (the reference in tests and the baseline in
bench/bench_events.py): it decodes at the same rate but returns separate
columns, loses 2**24 us when a wrap is crossed by a TIME_HIGH jump of more than
11 units, lets time go backwards on bit errors, keeps events outside the sensor
and has no counters for skipped words.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .base import OUT_OF_BOUNDS, SKIPPED_WORDS, TIME_HIGH_BIT_ERRORS, UNKNOWN_WORDS, StreamDecoder

# state slots
_HAVE_HIGH, _HAVE_TIME, _T_HIGH, _T_LOW, _EPOCH, _Y, _BASE_X, _POL = range(8)
# counter slots (Evt3Decoder.counter_slots in this order)
_OOB, _UNKNOWN, _SKIPPED, _TIME_ERR = range(4)

_ROLLOVER_US = 1 << 24
_MAX_BACKWARD_HIGH = 10  # TIME_HIGH units a backward jump may span before it counts as rollover


@njit(cache=True, nogil=True)
def _max_events(words):
    n = 0
    for i in range(words.shape[0]):
        code = words[i] >> 12
        if code == 0x2:
            n += 1
        elif code == 0x4:
            n += 12
        elif code == 0x5:
            n += 8
    return n


@njit(cache=True, nogil=True)
def _decode(words, out, state, width, height, counters):
    n = 0
    have_high = state[_HAVE_HIGH]
    have_time = state[_HAVE_TIME]
    t_high = state[_T_HIGH]
    t_low = state[_T_LOW]
    epoch = state[_EPOCH]
    y = state[_Y]
    base_x = state[_BASE_X]
    pol = state[_POL]
    t = epoch + t_high + t_low
    for i in range(words.shape[0]):
        w = np.int64(words[i])
        code = w >> 12
        v = w & 0xFFF
        if code == 0x0:  # EVT_ADDR_Y
            y = v & 0x7FF
        elif code == 0x2:  # EVT_ADDR_X: one event
            if have_time == 0:
                counters[_SKIPPED] += 1
                continue
            x = v & 0x7FF
            if x < width and y < height:
                out[n].t = t
                out[n].x = x
                out[n].y = y
                out[n].p = (v >> 11) & 1
                n += 1
            else:
                counters[_OOB] += 1
        elif code == 0x3:  # VECT_BASE_X
            base_x = v & 0x7FF
            pol = (v >> 11) & 1
        elif code == 0x4 or code == 0x5:  # VECT_12 / VECT_8
            nbits = 12 if code == 0x4 else 8
            if have_time == 0:
                counters[_SKIPPED] += 1
                base_x += nbits
                continue
            if y < height:
                for b in range(nbits):
                    if (v >> b) & 1:
                        x = base_x + b
                        if x < width:
                            out[n].t = t
                            out[n].x = x
                            out[n].y = y
                            out[n].p = pol
                            n += 1
                        else:
                            counters[_OOB] += 1
            else:
                for b in range(nbits):
                    counters[_OOB] += (v >> b) & 1
            base_x += nbits
        elif code == 0x6:  # EVT_TIME_LOW
            t_low = v
            if have_high:
                have_time = 1
            t = epoch + t_high + t_low
        elif code == 0x8:  # EVT_TIME_HIGH
            high = v << 12
            if have_high and high < t_high:
                if t_high - high > (_MAX_BACKWARD_HIGH << 12):
                    epoch += _ROLLOVER_US
                    t_high = high
                else:
                    counters[_TIME_ERR] += 1  # bit error: keep the time we had
            else:
                t_high = high
            have_high = 1
            t = epoch + t_high + t_low
        elif code == 0x7 or code == 0xA or code == 0xE or code == 0xF:
            pass  # CONTINUED_4, EXT_TRIGGER, OTHERS, CONTINUED_12: no CD events
        else:
            counters[_UNKNOWN] += 1
    state[_HAVE_HIGH] = have_high
    state[_HAVE_TIME] = have_time
    state[_T_HIGH] = t_high
    state[_T_LOW] = t_low
    state[_EPOCH] = epoch
    state[_Y] = y
    state[_BASE_X] = base_x
    state[_POL] = pol
    return n


class Evt3Decoder(StreamDecoder):
    """Stateful EVT 3.0 decoder; an odd trailing byte waits for the next packet."""

    encoding = "evt3"
    word_dtype = np.dtype("<u2")
    state_slots = 8
    counter_slots = (OUT_OF_BOUNDS, UNKNOWN_WORDS, SKIPPED_WORDS, TIME_HIGH_BIT_ERRORS)
    max_events = staticmethod(_max_events)
    kernel = staticmethod(_decode)

    @property
    def time_us(self) -> int | None:
        """Current decoded sensor time (us), or None before a valid time was seen."""
        st = self._state
        return int(st[_EPOCH] + st[_T_HIGH] + st[_T_LOW]) if st[_HAVE_TIME] else None
