"""The interface every payload decoder implements, and the Python side the decoders share.

Each decoder is a numba kernel plus a thin class. The kernel counts what it
drops or skips in an int64 array, one slot per kind (:class:`CounterSlot`); the
classes here cut the payload into the kernel's words or records and fold those
counts into :class:`DecodeStats`. Two kinds of encoding:

* :class:`StreamDecoder`: one continuous word stream (evt3, evt2) cut into
  packets anywhere; kernel state and a partial trailing word carry over.
* :class:`TimeBaseDecoder`: self-contained packets of whole records timed from
  ``EventPacket.time_base`` (mono, libcaer, libcaer_cmp).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Union

import numpy as np
from numba import njit

from ..limits import DEFAULT_LIMITS, StreamLimits
from ..time_guard import TimeGuard
from ..types import EVENT_DTYPE, DecodeStats, SensorSize, empty_events
from .packet_time import checked_time_base

Payload = Union[bytes, bytearray, memoryview, np.ndarray]
#: Gives a writable EVENT_DTYPE array of at least the requested length for a decoder to fill
#: (default: a new array; a Windower's ``reserve`` lets the decoder write into its buffer).
Allocator = Callable[[int], np.ndarray]
#: A kernel's counts, one per counter slot: the int64 array of ``Decoder._new_counts`` or a tuple.
KernelCounts = Union[np.ndarray, Sequence[int]]


# Kernels write a record as two int64 stores, ``t`` and then :func:`record_word`: the layout it needs.
_OFFSETS = {name: spec[1] for name, spec in (EVENT_DTYPE.fields or {}).items()}
if sys.byteorder != "little" or EVENT_DTYPE.itemsize != 16 or [_OFFSETS.get(f) for f in "txyp"] != [0, 8, 10, 12]:
    raise ImportError("the decoders write EVENT_DTYPE records as (t, x | y << 16 | p << 32) int64 pairs: "
                      "they need a little-endian machine and the 16-byte record layout")


@njit(cache=True, nogil=True)
def record_word(x, y, p):
    """The second int64 of an :data:`EVENT_DTYPE` record (the first is ``t``): x, y and p in
    their places, the padding zero."""
    return x | (y << 16) | (p << 32)


def as_uint8(payload: Payload) -> np.ndarray:
    """View a payload (bytes, memoryview, array.array('B'), uint8 array) as uint8, no copy."""
    if isinstance(payload, np.ndarray):
        return payload.view(np.uint8).reshape(-1)
    return np.frombuffer(payload, dtype=np.uint8)


@dataclass(frozen=True)
class CounterSlot:
    """What one slot of a kernel's counter array counts.

    ``field`` is the :class:`DecodeStats` counter it adds to. ``warning`` is
    logged once per ``kind`` (prefixed with the encoding; ``{width}`` and
    ``{height}`` are the sensor size); an empty ``warning`` counts silently.
    """

    field: str
    kind: str = ""
    warning: str = ""


OUT_OF_BOUNDS = CounterSlot("out_of_bounds", "oob", "dropped events outside the {width}x{height} sensor")
UNKNOWN_WORDS = CounterSlot("unknown_words", "unknown", "skipped words with unknown codes")
#: Words before the first valid time: normal when joining a stream, so not warned about.
SKIPPED_WORDS = CounterSlot("skipped_words")
TIME_HIGH_BIT_ERRORS = CounterSlot("time_errors", "time", "ignored TIME_HIGH words that moved time implausibly (bit errors)")
TIME_JUMPS = CounterSlot("time_resets", "jump", "sensor time jumped, or went back to undo a bit error at the end of a packet: a "
                                                "stream restart")
#: Counter fields that mean a word or record was garbage; a packet where they (and the events
#: the time guard dropped as disordered) exceed :data:`GARBAGE_FRACTION` of its words is dropped
#: whole. Random bytes score 0.3 or more in every encoding, clean sensor data 0.
_ERROR_FIELDS = ("unknown_words", "time_errors")
GARBAGE_FRACTION = 0.2
#: In encodings of one record per event (:attr:`Decoder.out_of_bounds_is_error`), a packet with more
#: than this fraction of its records outside the sensor is garbage too (random mono records: 98%).
OUTSIDE_GARBAGE_FRACTION = 0.9
#: Packets shorter than this (words or records) are never judged garbage (too few to tell).
_GARBAGE_MIN_UNITS = 8
_NO_BYTES = np.empty(0, dtype=np.uint8)
_NO_BYTES.flags.writeable = False


class Decoder(ABC):
    """Stateful decoder of one encoding.

    A stream is decoded packet after packet by one instance: state (time base,
    current row, partial words) carries over between calls, so the result does
    not depend on where the stream was cut into packets.
    """

    encoding: ClassVar[str]
    #: What each slot of the kernel's counter array counts, in slot order.
    counter_slots: ClassVar[tuple[CounterSlot, ...]] = ()
    #: Widest and tallest sensor the encoding's address fields can express.
    max_width: ClassVar[int] = 65535
    max_height: ClassVar[int] = 65535
    #: Whether the words carry their own clock and the kernel judges its jumps (EVT 2.0 / 3.0).
    judges_jumps: ClassVar[bool] = False
    #: Whether event times count from EventPacket.time_base, which the header stamp then belongs
    #: to (else the stamp belongs to the packet's first event).
    stamps_time_base: ClassVar[bool] = False
    #: Whether events outside the sensor are evidence of garbage (:data:`OUTSIDE_GARBAGE_FRACTION`):
    #: so in encodings of one record per event, not in word streams, which a reader may crop.
    out_of_bounds_is_error: ClassVar[bool] = False

    def __init__(self, size: SensorSize, limits: StreamLimits = DEFAULT_LIMITS, stats: DecodeStats | None = None) -> None:
        """ValueError for a sensor the encoding cannot address or beyond ``limits``; ``stats``:
        where to count (default: a new :class:`DecodeStats`)."""
        limits.check_size(size, f"{self.encoding} encoding", self.max_width, self.max_height)
        self.size = size
        self.limits = limits
        self.stats = DecodeStats() if stats is None else stats
        self.guard = TimeGuard(self.stats, self.encoding, limits, check_jumps=not self.judges_jumps)
        slots = self.counter_slots
        self._error_slots = [i for i, slot in enumerate(slots) if slot.field in _ERROR_FIELDS]
        self._outside_slots = [i for i, slot in enumerate(slots) if slot is OUT_OF_BOUNDS]
        self._jump_slots = [i for i, slot in enumerate(slots) if slot is TIME_JUMPS]
        self.reset()

    @abstractmethod
    def decode(self, payload: Payload, time_base_ns: int = 0, alloc: Allocator = empty_events) -> np.ndarray:
        """Decode one packet and return its events (:data:`EVENT_DTYPE`, t in us).

        ``time_base_ns`` is EventPacket.time_base; encodings that carry their own
        sensor clock (evt3) ignore it. The events are written into ``alloc(bound)``
        and returned as its first ``n`` records.
        """

    def reset(self) -> None:
        """Forget the stream state (a new stream starts with the next packet)."""
        self.guard.reset()

    def _new_counts(self) -> np.ndarray:
        """A zeroed counter array for one kernel call (one int64 per :attr:`counter_slots`)."""
        return np.zeros(len(self.counter_slots), dtype=np.int64)

    def _account(self, events: np.ndarray, counts: KernelCounts, units: int, ordered: bool = False) -> np.ndarray:
        """Count one decoded packet of ``units`` words or records and the kernel's ``counts``
        into :attr:`stats` (each kind warned about once), keep its events' time plausible
        (:attr:`guard`; ``ordered``: the kernel saw their times never go back, which saves the
        guard a pass) and return them. A packet that is mostly garbage gives no events and
        leaves no trace but ``bad_packets``: the stream state is as before it.
        """
        s = self.stats
        s.packets += 1
        counts = counts.tolist() if isinstance(counts, np.ndarray) else [int(c) for c in counts]
        guard = self.guard
        errors = outside = 0
        if any(counts):
            errors = sum([counts[i] for i in self._error_slots])
            outside = sum([counts[i] for i in self._outside_slots])
            if any([counts[i] for i in self._jump_slots]):
                guard.reset()  # the kernel took a jump: time may move back from here
        guard_state = guard.snapshot()
        guard_counts = (s.time_dropped, s.time_errors, s.time_resets)
        events = guard(events, ordered)
        garbage = errors + guard.disordered > GARBAGE_FRACTION * units or (
            self.out_of_bounds_is_error and outside > OUTSIDE_GARBAGE_FRACTION * units)
        if units >= _GARBAGE_MIN_UNITS and garbage:
            guard.restore(guard_state)
            s.time_dropped, s.time_errors, s.time_resets = guard_counts
            self._forget_packet()
            s.bad_packets += 1
            s.warn_once("garbage", f"{self.encoding}: dropped packets that decode mostly into errors (garbage payload)")
            return events[:0]
        if any(counts):
            for slot, count in zip(self.counter_slots, counts):
                if count:
                    setattr(s, slot.field, getattr(s, slot.field) + count)
                    if slot.warning:
                        text = slot.warning.format(width=self.size.width, height=self.size.height)
                        s.warn_once(slot.kind, f"{self.encoding}: {text}")
        s.events += events.shape[0]
        return events

    def _forget_packet(self) -> None:  # noqa: B027 - an optional hook: nothing to do by default
        """Undo what a garbage packet did to the stream state (stateless decoders: nothing)."""


class StreamDecoder(Decoder):
    """Decoder of one continuous stream of fixed-size words, cut into packets at any byte.

    The kernel state (``state_slots`` int64 values) and a partial trailing word
    carry over to the next packet. The words carry their own sensor clock, so
    ``time_base_ns`` is ignored. Subclasses name two numba kernels:
    ``max_events(words)``, a bound on the events of ``words``, and
    ``kernel(words, start, out, n, state, width, height, max_jump_units, counts)``,
    which decodes ``words[start:]`` into ``out`` from record ``n`` on and returns
    (records in ``out``, index of the first word not decoded, whether time never went
    back on the way: False when not known) (``max_jump_units``:
    :attr:`StreamLimits.max_jump_us` in units of the TIME_HIGH counter). ``out`` is
    the :data:`EVENT_DTYPE` records viewed as int64 pairs (:func:`record_word`), so
    that a record is written in two stores. The kernel stops early, before a word
    that could write past ``out`` (it may write :attr:`spare_records` beyond the
    events it counts); the decoder then gives it room for the exact bound of the
    rest (``max_events``, plus the spare records) to go on. ``out`` is first sized
    from the events per word of the last packet, so a stream is mostly decoded in
    one pass over its words (``max_events`` was a pass of its own, 1.2 ns/event).
    """

    word_dtype: ClassVar[np.dtype]
    state_slots: ClassVar[int]
    max_events: ClassVar[staticmethod[[np.ndarray], int]]
    kernel: ClassVar[Callable[..., tuple[int, int, bool]]]
    #: Most events one word can give (the bound without a pass over the words).
    max_events_per_word: ClassVar[int] = 1
    #: Records beyond the last event the kernel may write (branch-free paths write before they count).
    spare_records: ClassVar[int] = 0

    judges_jumps = True
    #: microseconds per unit of the TIME_HIGH counter (the jump limit is passed to the kernel in units)
    time_unit_us: ClassVar[int]

    def reset(self) -> None:
        super().reset()
        self._state = np.zeros(self.state_slots, dtype=np.int64)
        self._saved_state = self._state.copy()
        self._pending = _NO_BYTES
        self._events_per_word = 1.0  # of the last packet: sizes the next one's output
        self._max_jump_units = max(1, self.limits.max_jump_us // self.time_unit_us)

    def decode(self, payload: Payload, time_base_ns: int = 0, alloc: Allocator = empty_events) -> np.ndarray:
        words = self._whole_words(payload)
        n_words = words.shape[0]
        counts = self._new_counts()
        self._saved_state[:] = self._state
        max_jump_units = self._max_jump_units
        width, height, spare = self.size.width, self.size.height, self.spare_records
        guess = min(n_words * self.max_events_per_word, int(n_words * self._events_per_word * 1.25) + 64)
        out = alloc(guess + spare)
        n, stop, ordered = self.kernel(words, 0, out.view(np.int64), 0, self._state, width, height, max_jump_units, counts)
        while stop < n_words:  # more events than guessed: go on in room for all of them (one more call)
            more = alloc(n + self.max_events(words[stop:]) + spare)
            more.view(np.int64)[: 2 * n] = out.view(np.int64)[: 2 * n]
            out = more
            n, stop, _ = self.kernel(words, stop, out.view(np.int64), n, self._state, width, height, max_jump_units, counts)
            ordered = False  # each call saw its own events only
        if n_words:
            self._events_per_word = n / n_words
        return self._account(out[:n], counts, n_words, ordered)

    def _forget_packet(self) -> None:
        self._state[:] = self._saved_state

    def _whole_words(self, payload: Payload) -> np.ndarray:
        """The whole words of the bytes kept from the last packet plus ``payload``;
        the bytes of a partial trailing word are kept for the next packet."""
        buf = as_uint8(payload)
        if self._pending.size:
            buf = np.concatenate([self._pending, buf])
        usable = buf.size - buf.size % self.word_dtype.itemsize
        self._pending = buf[usable:].copy() if usable < buf.size else _NO_BYTES
        return buf[:usable].view(self.word_dtype)


class TimeBaseDecoder(Decoder):
    """Decoder of self-contained packets of ``record_dtype`` records timed from ``time_base``.

    A packet whose time_base lies outside [0, 2**62) ns is counted as bad and
    gives no events (:func:`checked_time_base`); trailing bytes that do not
    make a whole record are counted in ``truncated_bytes`` and ignored.
    Subclasses decode the whole records in :meth:`_decode_records`.
    """

    record_dtype: ClassVar[np.dtype]
    stamps_time_base = True

    def decode(self, payload: Payload, time_base_ns: int = 0, alloc: Allocator = empty_events) -> np.ndarray:
        checked_ns = checked_time_base(self.stats, self.encoding, time_base_ns)
        if checked_ns is None:
            return empty_events()
        records = self._whole_records(payload)
        events, counts, ordered = self._decode_records(records, checked_ns, alloc)
        return self._account(events, counts, records.shape[0], ordered)

    @abstractmethod
    def _decode_records(self, records: np.ndarray, time_base_ns: int, alloc: Allocator) -> tuple[np.ndarray, KernelCounts, bool]:
        """The events of one packet's whole ``records`` (written into ``alloc(bound)``), the
        kernel's counts (one per counter slot) and whether it saw their times never go back
        (False: not known)."""

    def _whole_records(self, payload: Payload) -> np.ndarray:
        """The whole records of ``payload``; trailing bytes are counted as truncated."""
        buf = as_uint8(payload)
        record_bytes = self.record_dtype.itemsize
        tail = buf.size % record_bytes
        if tail:
            self.stats.truncated_bytes += tail
            self.stats.warn_once(
                "truncated",
                f"{self.encoding}: ignored trailing bytes that do not form a whole {record_bytes}-byte record",
            )
        return buf[: buf.size - tail].view(self.record_dtype)
