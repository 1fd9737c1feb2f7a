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

from ..time_guard import IGNORE, JUMP, PENDING, REVERT, judge_time_high
from .base import OUT_OF_BOUNDS, SKIPPED_WORDS, TIME_HIGH_BIT_ERRORS, TIME_JUMPS, UNKNOWN_WORDS, StreamDecoder

# state slots
_HAVE_HIGH, _T_HIGH, _EPOCH, _PREV_HIGH, _PREV_EPOCH, _PROVISIONAL, _CANDIDATE = range(7)
# counter slots (Evt2Decoder.counter_slots in this order)
_OOB, _UNKNOWN, _SKIPPED, _TIME_ERR, _JUMPS = range(5)

_LSB_BITS = 6
_HIGH_RANGE = 1 << 28  # TIME_HIGH units (64 us each) before the counter wraps
_ROLLOVER_US = _HIGH_RANGE << _LSB_BITS


@njit(cache=True, nogil=True)
def _following_high(words, i):
    """The value of the next TIME_HIGH word after index ``i``, or -1 if the packet has none."""
    for j in range(i + 1, words.shape[0]):
        if words[j] >> 28 == 0x8:
            return np.int64(words[j] & 0xFFFFFFF)
    return np.int64(-1)


@njit(cache=True, nogil=True)
def _count_cd(words):
    n = 0
    for i in range(words.shape[0]):
        if (words[i] >> 28) <= 0x1:
            n += 1
    return n


@njit(cache=True, nogil=True)
def _decode(words, out, state, width, height, max_jump_units, counters):
    n = 0
    have_high = state[_HAVE_HIGH]
    t_high = state[_T_HIGH]
    epoch = state[_EPOCH]
    for i in range(words.shape[0]):
        w = np.int64(words[i])
        code = w >> 28
        if code <= 0x1:  # CD_OFF / CD_ON
            if have_high == 0:
                counters[_SKIPPED] += 1
                continue
            x = (w >> 11) & 0x7FF
            y = w & 0x7FF
            if x < width and y < height:
                out[n].t = epoch + ((t_high << _LSB_BITS) | ((w >> 22) & 0x3F))
                out[n].x = x
                out[n].y = y
                out[n].p = code
                n += 1
            else:
                counters[_OOB] += 1
        elif code == 0x8:  # EVT_TIME_HIGH
            high = w & 0xFFFFFFF
            if have_high:
                following = _following_high(words, i)
                verdict, forward = judge_time_high(
                    t_high, high, following, state[_PREV_HIGH], state[_PROVISIONAL] == 1, state[_CANDIDATE] - 1, _HIGH_RANGE, max_jump_units)
                state[_CANDIDATE] = high + 1 if verdict == PENDING else 0  # stored + 1: 0 is none
                if verdict == IGNORE or verdict == PENDING:
                    counters[_TIME_ERR] += 1  # a bit error (or a jump still to confirm): keep the time in force
                    continue
                if verdict == JUMP and state[_PROVISIONAL] == 2:
                    verdict = REVERT  # the stream's first TIME_HIGH was the bit error: start again from this one
                    epoch_now = epoch
                elif verdict == REVERT:  # the provisional step before was the bit error: time goes back
                    epoch_now = state[_PREV_EPOCH] + (_ROLLOVER_US if high < state[_PREV_HIGH] else 0)
                if verdict == REVERT:
                    counters[_TIME_ERR] += 1
                    counters[_JUMPS] += 1
                    was = epoch + (t_high << _LSB_BITS)
                    epoch = epoch_now
                    state[_PROVISIONAL] = 0
                    # this packet's events so far carried the flipped time: give them the repaired one
                    shift = was - (epoch + (high << _LSB_BITS))
                    for k in range(n):
                        out[k].t -= shift
                elif forward == 0:
                    state[_PROVISIONAL] = 0  # a repeat confirms the time in force
                else:
                    # a step or a confirmed jump, taken forward (modulo the counter) so time stays
                    # monotone: after a sensor restart the stream restarts on the jump count
                    state[_PREV_HIGH] = t_high
                    state[_PREV_EPOCH] = epoch
                    state[_PROVISIONAL] = following < 0
                    if high < t_high:
                        epoch += _ROLLOVER_US
                    counters[_JUMPS] += verdict == JUMP
            else:
                state[_PROVISIONAL] = 2  # the stream's first TIME_HIGH: unconfirmed until a repeat or a step
            t_high = high
            have_high = 1
        elif code == 0xA or code == 0xE or code == 0xF:
            pass  # EXT_TRIGGER, OTHERS, CONTINUED: no CD events
        else:
            counters[_UNKNOWN] += 1
    state[_HAVE_HIGH] = have_high
    state[_T_HIGH] = t_high
    state[_EPOCH] = epoch
    return n


class Evt2Decoder(StreamDecoder):
    """Stateful EVT 2.0 decoder; a partial trailing word waits for the next packet.

    ``time_base_ns`` is ignored: EVT 2.0 carries its own sensor clock (us).
    """

    encoding = "evt2"
    word_dtype = np.dtype("<u4")
    state_slots = 7
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
