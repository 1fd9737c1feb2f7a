"""Prophesee EVT 3.0 decoder (16-bit little-endian words, type in the 4 high bits).

A compiled state machine (numba) that writes :data:`EVENT_DTYPE` records
directly. It follows event_camera_codecs' ``evt3_decoder.h``: nothing is
emitted until a TIME_HIGH and then a TIME_LOW have been seen; vector words
advance the base column (VECT_12 by 12, VECT_8 by 8); events outside the sensor
are dropped and counted. It differs on purpose where real links differ from
clean files:

* TIME_HIGH steps are judged by :func:`~event_clip_ros.events.time_guard.judge_time_high`:
  a rollover (+2**24 us) is a small forward step across the top of the 12-bit
  counter, not any step back (the codecs take a backward step of more than 10
  units for a rollover, so one flipped bit shifted every later time by 16.78 s);
  a larger move is checked against the next TIME_HIGH of the packet (sensors
  repeat TIME_HIGH every few hundred words): confirmed, it is a counted jump
  (``time_resets``), else a bit error, counted and ignored, and the time in force
  stays. Time thus never shifts silently.
* ADDR_Y and VECT_BASE_X update the state before the first valid time (a stream
  joined mid-way gets the right row); unknown word codes are skipped and counted
  (the codecs throw).

Why not the PyPI ``evt3`` decoder (the reference in tests and the baseline in
bench/bench_events.py): it decodes at the same rate but returns separate
columns, loses 2**24 us when a wrap is crossed by a TIME_HIGH jump of more than
11 units, keeps events outside the sensor and has no counters for skipped words.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..time_guard import TIME_HIGH_SLOTS, following_time_high, take_missed_step, take_time_high
from .base import OUT_OF_BOUNDS, SKIPPED_WORDS, TIME_HIGH_BIT_ERRORS, TIME_JUMPS, UNKNOWN_WORDS, StreamDecoder, record_word

# state slots
_HAVE_HIGH, _HAVE_TIME, _T_HIGH, _T_LOW, _EPOCH, _Y, _BASE_X, _POL, _LOW_TIME = range(9)
_TRACKER = 9  # the TIME_HIGH tracker's slots (time_guard.TIME_HIGH_SLOTS) follow
# counter slots (Evt3Decoder.counter_slots in this order)
_OOB, _UNKNOWN, _SKIPPED, _TIME_ERR, _JUMPS = range(5)

_HIGH_SHIFT = 12  # TIME_HIGH holds time bits 12-23: one unit is 4096 us
_HIGH_PERIOD = 1 << 12  # TIME_HIGH units before the counter wraps
_ROLLOVER_US = 1 << 24


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
def _decode(words, start, out, n, state, width, height, max_jump_units, counters):
    """Decode ``words[start:]`` into ``out`` (records as int64 pairs) from record ``n`` on;
    return (records, first word not decoded, whether the times of the events decoded never go
    back): see :class:`StreamDecoder`. Events take the time in force when their word comes, so
    their order is checked where that time changes, if events were written since the last change."""
    have_high = state[_HAVE_HIGH]
    have_time = state[_HAVE_TIME]
    t_high = state[_T_HIGH]
    t_low = state[_T_LOW]
    epoch = state[_EPOCH]
    y = state[_Y]
    base_x = state[_BASE_X]
    pol = state[_POL]
    t = epoch + t_high + t_low
    room = out.shape[0] // 2  # records out holds
    oob = np.int64(0)
    skipped = 0
    rising = True  # the times of the events written so far never go back
    last_t = -1  # the time of the events written before the time in force
    n_mark = n  # events written before the time in force took effect
    i = start
    while i < words.shape[0]:
        if have_time:
            # The common words, ADDR_Y (0: the row) and ADDR_X (2: one event at the row), in a loop
            # of their own (few live values: no spills) without a branch on which (they alternate
            # unpredictably): the record is written either way and counted only for an ADDR_X
            # inside the sensor. Unsigned indices spare the negative-index fix-ups.
            while i < words.shape[0]:
                w = np.int64(words[np.uint64(i)])
                code = w >> 12
                if code | 0x2 != 0x2 or n == room:
                    break
                is_x = code >> 1
                a = w & 0x7FF
                y = y if is_x else a
                inside = (a < width) & (y < height)
                j = np.uint64(2 * n)
                out[j] = t
                out[j + np.uint64(1)] = record_word(a, y, (w >> 11) & 1)
                n += is_x & inside
                oob += is_x & (1 - inside)
                i += 1
            if i == words.shape[0]:
                break
        w = np.int64(words[i])
        code = w >> 12
        v = w & 0xFFF
        if code | 0x2 == 0x2:
            if n == room:
                break  # out is full: the caller gives more room
            if code == 0x0:  # EVT_ADDR_Y before a valid time
                y = v & 0x7FF
            else:  # EVT_ADDR_X before a valid time: no event
                skipped += 1
        elif code == 0x3:  # VECT_BASE_X
            base_x = v & 0x7FF
            pol = (v >> 11) & 1
        elif code == 0x4 or code == 0x5:  # VECT_12 / VECT_8
            nbits = 12 if code == 0x4 else 8
            if n + nbits > room:
                break
            if have_time == 0:
                skipped += 1
            elif y < height:
                high = record_word(0, y, pol)
                for b in range(nbits):
                    if (v >> b) & 1:
                        x = base_x + b
                        if x < width:
                            out[2 * n] = t
                            out[2 * n + 1] = x | high
                            n += 1
                        else:
                            oob += 1
            else:
                for b in range(nbits):
                    oob += (v >> b) & 1
            base_x += nbits
        elif code == 0x6:  # EVT_TIME_LOW
            if have_time and epoch + t_high + v + 2048 < state[_LOW_TIME]:
                # time went back more than half a TIME_HIGH period since the last TIME_LOW: the low
                # part wrapped without its TIME_HIGH step (a lost or flipped word). Take the step,
                # provisionally, so that the next TIME_HIGH can still undo it
                counters[_TIME_ERR] += 1
                take_missed_step(state, _TRACKER, t_high >> _HIGH_SHIFT, epoch)
                t_high += 1 << _HIGH_SHIFT
                if t_high >= _ROLLOVER_US:
                    t_high -= _ROLLOVER_US
                    epoch += _ROLLOVER_US
            t_low = v
            if have_high:
                have_time = 1
            if n > n_mark:  # events were written at the time being replaced
                rising = rising and t >= last_t
                last_t = t
                n_mark = n
            t = epoch + t_high + t_low
            state[_LOW_TIME] = t
        elif code == 0x8:  # EVT_TIME_HIGH
            taken, epoch, shift, errors, jumps = take_time_high(
                state, _TRACKER, have_high, t_high >> _HIGH_SHIFT, v, following_time_high(words, i, 12, 0x8, 0xFFF), epoch,
                _HIGH_PERIOD, 1 << _HIGH_SHIFT, max_jump_units)
            counters[_TIME_ERR] += errors
            counters[_JUMPS] += jumps
            if taken:
                if shift:  # a repaired bit error: this packet's events so far carried the flipped time
                    for k in range(n):
                        out[2 * k] -= shift
                    state[_LOW_TIME] -= shift
                    rising = False
                if n > n_mark:
                    rising = rising and t >= last_t
                    last_t = t
                    n_mark = n
                t_high = v << _HIGH_SHIFT
                have_high = 1
                t = epoch + t_high + t_low
        elif code == 0x7 or code == 0xA or code == 0xE or code == 0xF:
            pass  # CONTINUED_4, EXT_TRIGGER, OTHERS, CONTINUED_12: no CD events
        else:
            counters[_UNKNOWN] += 1
        i += 1
    if n > n_mark:
        rising = rising and t >= last_t
    counters[_OOB] += oob
    counters[_SKIPPED] += skipped
    state[_HAVE_HIGH] = have_high
    state[_HAVE_TIME] = have_time
    state[_T_HIGH] = t_high
    state[_T_LOW] = t_low
    state[_EPOCH] = epoch
    state[_Y] = y
    state[_BASE_X] = base_x
    state[_POL] = pol
    return n, i, rising


class Evt3Decoder(StreamDecoder):
    """Stateful EVT 3.0 decoder; an odd trailing byte waits for the next packet."""

    encoding = "evt3"
    word_dtype = np.dtype("<u2")
    state_slots = 9 + TIME_HIGH_SLOTS
    counter_slots = (OUT_OF_BOUNDS, UNKNOWN_WORDS, SKIPPED_WORDS, TIME_HIGH_BIT_ERRORS, TIME_JUMPS)
    time_unit_us = 1 << _HIGH_SHIFT
    max_width = max_height = 2048  # 11-bit x and y
    max_events = staticmethod(_max_events)
    kernel = staticmethod(_decode)
    max_events_per_word = 12  # VECT_12
    spare_records = 1  # ADDR_Y words write a record they do not count

    @property
    def time_us(self) -> int | None:
        """Current decoded sensor time (us), or None before a valid time was seen."""
        st = self._state
        return int(st[_EPOCH] + st[_T_HIGH] + st[_T_LOW]) if st[_HAVE_TIME] else None
