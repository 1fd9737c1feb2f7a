"""Encoder of the compressed ``libcaer_cmp`` EventPacket encoding (16-bit words).

Word layout from event_camera_codecs ``libcaer_cmp_types.h`` (code in bits
12-15): TIME_HIGH=0 and TIME_LOW=1 hold bits 12-23 and 0-11 of the event time in
us after the packet's ``time_base``; ADDR_X=2 sets the column; ADDR_Y=3 (y, and
polarity in bit 11) emits one event at that column; VECT_BASE_Y=4 sets base row
and polarity; VECT_8=5 emits events at base row + bit for each set bit of its
8-bit mask, after which the decoder advances the base row by 8.

Like libcaer_driver's ``convert_polarity_packet_compressed`` the packet starts
with ADDR_X and writes TIME_HIGH / TIME_LOW / ADDR_X only when they change
(TIME_HIGH is always followed by TIME_LOW). Events of the same time, column and
polarity in one 8-row block become VECT_BASE_Y + VECT_8; VECT_BASE_Y is left out
when the decoder's advanced base row already points at the block. Decoded events
equal the input events in the same order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .validate import validate_events

_TIME_HIGH, _TIME_LOW, _ADDR_X, _ADDR_Y, _VECT_BASE_Y, _VECT_8 = (
    0x0000, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000,
)
_MAX_COORD = 2047  # x and y are 11-bit fields
_MAX_REL_US = (1 << 24) - 1  # 24-bit time offset per packet


@njit(cache=True, nogil=True)
def _encode(ev, tb_us, out):
    n = ev.shape[0]
    w = 0
    cur_high = np.int64(0)  # the decoder starts each packet at time offset 0
    cur_low = np.int64(0)
    base_y = np.int64(-1)  # decoder's vector base row and polarity (-1: unknown)
    base_p = np.int64(-1)
    cur_x = np.int64(ev[0].x)  # a packet starts with ADDR_X, as the driver writes it
    out[w] = _ADDR_X | cur_x
    w += 1
    i = 0
    while i < n:
        t = ev[i].t
        rel = t - tb_us
        high = rel >> 12
        low = rel & 0xFFF
        if high != cur_high:
            out[w] = _TIME_HIGH | high
            out[w + 1] = _TIME_LOW | low
            w += 2
            cur_high = high
            cur_low = low
        elif low != cur_low:
            out[w] = _TIME_LOW | low
            w += 1
            cur_low = low
        x = np.int64(ev[i].x)
        if x != cur_x:
            out[w] = _ADDR_X | x
            w += 1
            cur_x = x
        pol = np.int64(ev[i].p)
        y = np.int64(ev[i].y)
        block = y & ~7
        mask = 1 << (y & 7)
        j = i + 1
        while (
            j < n and ev[j].t == t and ev[j].x == x and ev[j].p == pol
            and (np.int64(ev[j].y) & ~7) == block and ev[j].y > ev[j - 1].y
        ):
            mask |= 1 << (np.int64(ev[j].y) & 7)
            j += 1
        if j - i == 1:
            out[w] = _ADDR_Y | (pol << 11) | y
            w += 1
        else:
            if base_y != block or base_p != pol:
                out[w] = _VECT_BASE_Y | (pol << 11) | block
                w += 1
            out[w] = _VECT_8 | mask
            w += 1
            base_y = block + 8
            base_p = pol
        i = j
    return w


def encode_libcaer_cmp(events: np.ndarray, time_base_ns: int) -> bytes:
    """Encode one packet of time-sorted events (x, y < 2048) relative to ``time_base_ns``.

    Decoding gives back the events exactly. Raises ValueError if an event lies
    before ``time_base_ns`` or 2**24 us (16.77 s) or more after it.
    """
    validate_events(events, "libcaer_cmp", _MAX_COORD, _MAX_COORD)
    if events.size == 0:
        return b""
    tb_us = int(time_base_ns) // 1000
    if int(events["t"][0]) < tb_us or int(events["t"][-1]) - tb_us > _MAX_REL_US:
        raise ValueError("libcaer_cmp: events must lie within [time_base, time_base + 2**24 us)")
    out = np.empty(4 * events.size + 1, dtype="<u2")
    n = _encode(events, tb_us, out)
    return out[:n].tobytes()
