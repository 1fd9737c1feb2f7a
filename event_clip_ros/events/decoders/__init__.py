"""EventPacket payload decoders, one per ``encoding`` string, and their registry."""

from __future__ import annotations

from ..limits import DEFAULT_LIMITS, StreamLimits
from ..types import SensorSize
from .base import Decoder, as_uint8
from .evt3 import Evt3Decoder
from .libcaer import LibcaerDecoder
from .libcaer_cmp import LibcaerCmpDecoder
from .mono import MonoDecoder

#: EventPacket.encoding -> decoder class.
DECODERS: dict[str, type[Decoder]] = {
    cls.encoding: cls for cls in (Evt3Decoder, MonoDecoder, LibcaerDecoder, LibcaerCmpDecoder)
}


class UnknownEncodingError(ValueError):
    """An EventPacket encoding no decoder exists for."""


def make_decoder(encoding: str, size: SensorSize, limits: StreamLimits = DEFAULT_LIMITS) -> Decoder:
    """Return a fresh decoder for ``encoding`` (an EventPacket.encoding string).

    ValueError (:class:`UnknownEncodingError` for the encoding) when there is none or the
    sensor is larger than the encoding can address or ``limits`` accept.
    """
    try:
        cls = DECODERS[encoding]
    except KeyError:
        supported = ", ".join(sorted(DECODERS))
        raise UnknownEncodingError(f"unknown event encoding {encoding!r}; supported: {supported}") from None
    return cls(size, limits)


__all__ = [
    "DECODERS",
    "Decoder",
    "Evt3Decoder",
    "LibcaerCmpDecoder",
    "LibcaerDecoder",
    "MonoDecoder",
    "UnknownEncodingError",
    "as_uint8",
    "make_decoder",
]
