"""The check of EventPacket.time_base shared by decoders whose event times are relative to it."""

from __future__ import annotations

from ..types import DecodeStats

#: time_base values (ns) at or above this are rejected: they leave no int64 room for
#: the offsets added to them (2**62 ns is 146 years after the epoch).
MAX_TIME_BASE_NS = 1 << 62


def checked_time_base(stats: DecodeStats, encoding: str, time_base_ns: int) -> int | None:
    """``time_base_ns`` as a Python int (a numpy uint64 from a bag would compile a second
    kernel signature), or None after counting the packet as bad if outside [0, 2**62)."""
    time_base_ns = int(time_base_ns)
    if 0 <= time_base_ns < MAX_TIME_BASE_NS:
        return time_base_ns
    stats.packets += 1
    stats.bad_packets += 1
    stats.warn_once("time_base", f"{encoding}: skipped packets with time_base outside [0, 2**62) ns")
    return None
