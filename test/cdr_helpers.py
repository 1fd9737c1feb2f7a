"""Helpers shared by the CDR, stream and bag tests: the bag writer's typestore (every event
message type) and EVT3 packet streams as a driver sends them."""

from __future__ import annotations

import numpy as np

from event_clip_ros.events.encoders import encode_evt3
from event_clip_ros.events.readers.bag_types import bag_typestore as event_typestore

__all__ = ["event_typestore", "evt3_packets"]


def evt3_packets(events: np.ndarray, n_packets: int) -> list[bytes]:
    """One encoded EVT3 payload per packet, each continuing the previous one (as a driver sends them)."""
    payloads, prev = [], None
    for part in np.array_split(events, n_packets):
        payloads.append(encode_evt3(part, prev_t_us=prev))
        prev = int(part["t"][-1])
    return payloads
