"""A rosbags typestore that knows every event message type (for the CDR and bag tests)."""

from __future__ import annotations

from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

from event_clip_ros.events.ros_cdr import MSG_DEFINITIONS


def event_typestore() -> Typestore:
    """rosbags' latest typestore plus every type in :data:`MSG_DEFINITIONS`."""
    store = get_typestore(Stores.LATEST)
    types = {}
    for name, text in MSG_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
