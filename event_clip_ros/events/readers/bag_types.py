"""The rosbags typestore that knows the event message types (for reading and writing bags)."""

from __future__ import annotations

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from ..ros_cdr import MSG_DEFINITIONS


def bag_typestore() -> Typestore:
    """rosbags' latest typestore plus the event message types (for the connections' definitions)."""
    store = get_typestore(Stores.LATEST)
    types = {}
    for name, text in MSG_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
