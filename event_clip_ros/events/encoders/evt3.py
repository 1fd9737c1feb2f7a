"""Prophesee EVT 3.0 encoder (16-bit little-endian words, type in the 4 high bits).

Word layout as in event_camera_codecs ``evt3_types.h`` and the Prophesee EVT 3.0
documentation. The encoder writes what a sensor writes:

* EVT_TIME_HIGH (bits 12-23 of the 24-bit us time) when it changes, always
  followed by EVT_TIME_LOW (bits 0-11); EVT_TIME_LOW alone when only it changes.
  Time is written modulo 2**24 us and decoders infer each rollover from TIME_HIGH
  stepping back. They differ in what counts as one: event_camera_codecs need a
  step back of more than 10 units, the PyPI ``evt3`` decoder a wrap of at most
  11 units (as in a stream with a TIME_HIGH in every 4096 us period), ours a
  small forward step across the top. A sensor writes TIME_HIGH all the time; so
  across a gap between events the encoder writes a TIME_HIGH at least every
  :data:`_BRIDGE_UNITS` (about 1 s: a step every decoder takes as plausible) and
  0xFFF then 0x000 at every wrap, which every decoder reads as exactly one rollover.
* EVT_ADDR_Y when the row changes.
* For a run of same-time, same-row, same-polarity events with increasing x,
  VECT_BASE_X then VECT_12 / VECT_8 masks (the decoder advances the base column
  by 12 / 8 after each); a lone event is one EVT_ADDR_X word.

Decoded events equal the input events in the same order, with times shifted by
the whole 2**24 us periods before the first event (a decoder starts its epoch at
0): ``t_decoded = t - (t[0] >> 24 << 24)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .validate import validate_events

_ADDR_Y, _ADDR_X, _VECT_BASE_X, _VECT_12, _VECT_8, _TIME_LOW, _TIME_HIGH = (
    0x0000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x8000,
)
_HIGH_PER_ROLLOVER = 1 << 12  # TIME_HIGH units (4096 us) per 2**24 us
_MAX_COORD = 2047  # x and y are 11-bit fields
_BRIDGE_UNITS = 256  # longest TIME_HIGH step written across a gap (256 * 4096 us = 1.05 s)


@njit(cache=True, nogil=True)
def _encode(ev, prev_t, out):
    """Write the words of ``ev`` into ``out``; return the word count.

    ``prev_t`` is the last time already encoded in this stream (-1: none).
    """
    n = ev.shape[0]
    w = 0
    cur_high = prev_t >> 12 if prev_t >= 0 else np.int64(-1)
    cur_t = np.int64(-1)  # force TIME_HIGH + TIME_LOW before the first event
    cur_y = np.int64(-1)
    i = 0
    while i < n:
        t = ev[i].t
        if t != cur_t:
            high = t >> 12
            if high != cur_high or cur_t < 0:
                if cur_high >= 0:  # bridge the gap: short steps, and 0xFFF, 0x000 at each rollover
                    h = cur_high
                    while h < high:
                        wrap = (h // _HIGH_PER_ROLLOVER + 1) * _HIGH_PER_ROLLOVER
                        if wrap <= min(h + _BRIDGE_UNITS, high):
                            if wrap - 1 > h:
                                out[w] = _TIME_HIGH | 0xFFF
                                w += 1
                            h = wrap
                        else:
                            h = min(h + _BRIDGE_UNITS, high)
                        if h < high:
                            out[w] = _TIME_HIGH | (h & 0xFFF)
                            w += 1
                out[w] = _TIME_HIGH | (high & 0xFFF)
                out[w + 1] = _TIME_LOW | (t & 0xFFF)
                w += 2
            else:
                out[w] = _TIME_LOW | (t & 0xFFF)
                w += 1
            cur_high = high
            cur_t = t
        y = np.int64(ev[i].y)
        if y != cur_y:
            out[w] = _ADDR_Y | y
            w += 1
            cur_y = y
        pol = np.int64(ev[i].p)
        # run of events sharing time, row and polarity with strictly increasing x
        j = i + 1
        while j < n and ev[j].t == t and ev[j].y == y and ev[j].p == pol and ev[j].x > ev[j - 1].x:
            j += 1
        k = i
        while k < j:
            base = np.int64(ev[k].x)
            if k + 1 == j or ev[k + 1].x >= base + 12:  # alone in its 12-pixel window
                out[w] = _ADDR_X | (pol << 11) | base
                w += 1
                k += 1
                continue
            out[w] = _VECT_BASE_X | (pol << 11) | base
            w += 1
            while k < j and ev[k].x < base + 12:
                mask = np.int64(0)
                while k < j and ev[k].x < base + 12:
                    mask |= 1 << (np.int64(ev[k].x) - base)
                    k += 1
                if mask < 256:
                    out[w] = _VECT_8 | mask
                    base += 8
                else:
                    out[w] = _VECT_12 | mask
                    base += 12
                w += 1
        i = j
    return w


def encode_evt3(events: np.ndarray, prev_t_us: int | None = None) -> bytes:
    """Encode time-sorted :data:`EVENT_DTYPE` events (x, y < 2048) as EVT 3.0 bytes.

    The result is a self-contained stream start (TIME_HIGH, TIME_LOW, ADDR_Y come
    first). To continue a stream chunk by chunk, pass the time of the last event
    already encoded as ``prev_t_us``: the TIME_HIGH words that carry a decoder
    across the gap (and its 24-bit rollovers) are then written first.
    """
    validate_events(events, "evt3", _MAX_COORD, _MAX_COORD)
    if events.size == 0:
        return b""
    prev_t = -1 if prev_t_us is None else int(prev_t_us)
    t0 = int(events["t"][0])
    if prev_t > t0:
        raise ValueError(f"evt3: prev_t_us {prev_t} is after the first event ({t0} us)")
    first = t0 if prev_t < 0 else prev_t
    span_high = (int(events["t"][-1]) >> 12) - (first >> 12)
    bound = 4 * events.size + 2 * (span_high // _HIGH_PER_ROLLOVER) + 2 * (span_high // _BRIDGE_UNITS) + 6
    out = np.empty(bound, dtype="<u2")
    n = _encode(events, prev_t, out)
    return out[:n].tobytes()
