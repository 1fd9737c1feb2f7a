"""Encoders of the EventPacket payload encodings (tests and the bag converter use them).

Each takes time-sorted :data:`~event_clip_ros.events.types.EVENT_DTYPE` events
and returns the payload bytes that the matching decoder in
:mod:`event_clip_ros.events.decoders` turns back into the same events. Inputs an
encoding cannot represent raise ValueError.
"""

from .evt3 import encode_evt3
from .libcaer import encode_libcaer
from .libcaer_cmp import encode_libcaer_cmp
from .mono import encode_mono

__all__ = ["encode_evt3", "encode_libcaer", "encode_libcaer_cmp", "encode_mono"]
