"""Time plausibility of one event stream: what keeps a bit error from shifting every later window.

Sensor time in a stream only moves forward, in small steps. Real links and files
break that in three ways, and :class:`TimeGuard` handles each after a packet is
decoded (every decoder, EventArray stream and file reader goes through one):

* a **negative** time (a garbage stamp): the event is dropped;
* time **running backwards inside a packet** (a flipped time word or stamp): the
  fewest events are dropped that leave the packet in time order (the longest
  non-decreasing run, so one bad event costs one event, not the rest of the
  packet), and events before the stream's latest time are dropped;
* a **jump far ahead** (beyond :attr:`~event_clip_ros.events.limits.StreamLimits.max_jump_us`) or **back**: for
  encodings timed per packet (``time_base``, EventArray stamps) the packet is
  dropped, unless :attr:`~.limits.StreamLimits.confirm_packets` consecutive packets agree on
  the new time, which is then a counted restart (``time_resets``); a bag loop or
  a driver restart is therefore followed, a garbage time base is not. The
  EVT 2.0 / 3.0 word streams carry their own clock: their decoders judge each
  TIME_HIGH step themselves (:func:`judge_time_high`), so the guard only keeps
  their order.

Everything dropped is counted in :class:`~event_clip_ros.events.types.DecodeStats`
(``time_dropped`` events, ``time_errors`` incidents) and logged once per kind:
no event with an implausible time reaches a window.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .limits import DEFAULT_LIMITS, StreamLimits
from .types import DecodeStats

_INT64_MAX = np.iinfo(np.int64).max

#: judge_time_high verdicts
STEP, IGNORE, JUMP, REVERT, PENDING = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True)
def judge_time_high(current, new, following, previous, provisional, candidate, period, max_jump):
    """Judge a TIME_HIGH step of a wrapping counter (all values in counter units).

    ``current`` is the time high in force and ``new`` the one just read;
    ``following`` is the next TIME_HIGH of the packet (-1: none left);
    ``previous`` the value before ``current`` and ``provisional`` whether
    ``current`` was taken with no following word to check it (it ended its
    packet); ``candidate`` a large move left pending at the end of the last
    packet (-1: none); ``period`` is the counter range and ``max_jump`` the
    largest forward step that is not a jump. Verdicts:

    * STEP: forward by at most ``max_jump`` (modulo ``period``: a rollover is a
      small step across the top of the counter);
    * JUMP: a larger move that the following word (or, at the start of a
      packet, the pending ``candidate``) confirms;
    * IGNORE: the following word lies nearer ahead of ``current`` than of
      ``new``: ``new`` is a bit error and the time in force stays;
    * REVERT: ``new`` lies between ``previous`` and a provisional ``current``,
      which was therefore the bit error (the events since carried its time);
    * PENDING: a large move with nothing to confirm it yet: ignored for now and
      kept as the candidate the next TIME_HIGH may confirm.

    Clean streams whose TIME_HIGH steps stay within ``max_jump`` (a sensor
    writes one every 4096 us) never IGNORE, REVERT or wait, so their decoding
    does not depend on where they were cut into packets. Returns (verdict,
    forward distance in units).
    """
    forward = (new - current) % period
    if forward == 0:
        return STEP, forward
    if provisional and (new - previous) % period < (current - previous) % period:
        return REVERT, forward
    if following >= 0:
        if (following - current) % period < (following - new) % period:
            return IGNORE, forward
        return (STEP if forward <= max_jump else JUMP), forward
    if forward <= max_jump:
        return STEP, forward
    if candidate >= 0 and (new - candidate) % period <= forward:
        return JUMP, forward
    return PENDING, forward


#: Slots of the TIME_HIGH tracker a word-stream decoder keeps in its state array (from an offset):
#: the time high before the one in force and its epoch, whether the one in force is provisional
#: (1: it ended its packet, 2: the stream's first) and a pending large move (+ 1; 0: none).
TH_PREV_HIGH, TH_PREV_EPOCH, TH_PROVISIONAL, TH_CANDIDATE = range(4)
TIME_HIGH_SLOTS = 4


@njit(cache=True, nogil=True)
def following_time_high(words, i, code_shift, code, value_mask):
    """The value of the next TIME_HIGH word (``word >> code_shift == code``) after index ``i``
    of a packet's ``words``, or -1 if the packet has none."""
    for j in range(i + 1, words.shape[0]):
        if words[j] >> code_shift == code:
            return np.int64(words[j] & value_mask)
    return np.int64(-1)


@njit(cache=True, nogil=True)
def take_time_high(state, at, have_high, current, new, following, epoch, period, unit_us, max_jump):
    """Judge a TIME_HIGH word (:func:`judge_time_high`) and update the tracker in ``state[at:]``.

    ``current``, ``new`` and ``following`` are in counter units of ``unit_us``; ``epoch``
    (us) counts the counter's rollovers (``period * unit_us`` each). Returns (taken,
    epoch, shift_us, errors, jumps): whether ``new`` becomes the time in force; the epoch
    to use from here; how far the events decoded since the last packet started must move
    back (a repaired bit error, else 0); and the bit errors and jumps to count.
    """
    if not have_high:
        state[at + TH_PROVISIONAL] = 2  # the stream's first TIME_HIGH: unconfirmed until a repeat or a step
        return True, epoch, 0, 0, 0
    rollover_us = period * unit_us
    verdict, forward = judge_time_high(current, new, following, state[at + TH_PREV_HIGH],
                                       state[at + TH_PROVISIONAL] == 1, state[at + TH_CANDIDATE] - 1, period, max_jump)
    state[at + TH_CANDIDATE] = new + 1 if verdict == PENDING else 0
    if verdict == IGNORE or verdict == PENDING:
        return False, epoch, 0, 1, 0  # a bit error (or a jump still to confirm): the time in force stays
    if verdict == JUMP and state[at + TH_PROVISIONAL] == 2:
        verdict = REVERT  # the stream's first TIME_HIGH was the bit error: start again from this one
        new_epoch = epoch
    else:
        new_epoch = state[at + TH_PREV_EPOCH] + (rollover_us if new < state[at + TH_PREV_HIGH] else 0)
    if verdict == REVERT:  # time goes back to undo the provisional step (the events since carried it)
        state[at + TH_PROVISIONAL] = 0
        shift = (epoch + current * unit_us) - (new_epoch + new * unit_us)
        return True, new_epoch, shift, 1, 1
    if forward == 0:
        state[at + TH_PROVISIONAL] = 0  # a repeat confirms the time in force
        return True, epoch, 0, 0, 0
    # a step or a confirmed jump, taken forward (modulo the counter) so time stays monotone:
    # after a sensor restart the stream restarts on the jump count
    state[at + TH_PREV_HIGH] = current
    state[at + TH_PREV_EPOCH] = epoch
    state[at + TH_PROVISIONAL] = 1 if following < 0 else 0
    return True, epoch + (rollover_us if new < current else 0), 0, 0, 1 if verdict == JUMP else 0


@njit(cache=True, nogil=True)
def take_missed_step(state, at, current, epoch):
    """Record a TIME_HIGH step the decoder inferred (its word was lost or flipped) as provisional,
    so that the next TIME_HIGH can still undo it; returns nothing (the caller takes the step)."""
    state[at + TH_PREV_HIGH] = current
    state[at + TH_PREV_EPOCH] = epoch
    state[at + TH_PROVISIONAL] = 1


@njit(cache=True, nogil=True)
def _in_order_within(t, lo, hi):
    """Whether ``t`` is non-decreasing and inside [lo, hi] (the common case, one pass)."""
    last = lo
    for i in range(t.shape[0]):
        v = t[i]
        if v < last or v > hi:
            return False
        last = v
    return True


@njit(cache=True, nogil=True)
def _longest_ordered_run(t, keep):
    """Mark in ``keep`` a longest non-decreasing subsequence of ``t`` (O(n log n)); return its length."""
    n = t.shape[0]
    tails = np.empty(n, dtype=np.int64)  # index of the last element of the best run of each length
    prev = np.empty(n, dtype=np.int64)
    length = 0
    for i in range(n):
        lo, hi = 0, length
        while lo < hi:  # first run whose last time is > t[i] (upper bound: equal times extend)
            mid = (lo + hi) >> 1
            if t[tails[mid]] <= t[i]:
                lo = mid + 1
            else:
                hi = mid
        prev[i] = tails[lo - 1] if lo > 0 else -1
        tails[lo] = i
        if lo == length:
            length += 1
    keep[:] = False
    k = tails[length - 1] if length else -1
    while k >= 0:
        keep[k] = True
        k = prev[k]
    return length


class TimeGuard:
    """Keeps the sensor time of one stream plausible (see the module doc).

    ``check_jumps`` is False for encodings whose decoder judges jumps itself
    (EVT 2.0 / 3.0); the guard then only keeps negative and backward times out.
    """

    def __init__(self, stats: DecodeStats, label: str, limits: StreamLimits = DEFAULT_LIMITS, check_jumps: bool = True) -> None:
        self.stats = stats
        self.label = label
        self.limits = limits
        self.check_jumps = check_jumps
        self.reset()

    def reset(self) -> None:
        """A new stream starts: any time is accepted next."""
        #: events of the last packet dropped for a negative time or running backwards inside it
        self.disordered = 0
        self.last_t_us: int | None = None
        self._candidate_t_us: int | None = None  # latest time of the packets agreeing on a jump
        self._candidate_packets = 0

    def snapshot(self) -> tuple[int | None, int | None, int]:
        """The guard's state, for :meth:`restore` after a packet that turned out to be garbage."""
        return self.last_t_us, self._candidate_t_us, self._candidate_packets

    def restore(self, state: tuple[int | None, int | None, int]) -> None:
        self.last_t_us, self._candidate_t_us, self._candidate_packets = state

    def __call__(self, events: np.ndarray, ordered: bool = False) -> np.ndarray:
        """The plausible events of one packet, in place (a prefix of ``events``). ``ordered``: the
        caller knows their times never go back (a decoder kernel saw it), so that only the first
        and last need checking against the stream's time."""
        n = events.shape[0]
        if n == 0:
            return events
        t = events["t"]
        last = self.last_t_us
        lo = 0 if last is None else last
        hi = _INT64_MAX if last is None or not self.check_jumps else last + self.limits.max_jump_us
        self.disordered = 0
        if (lo <= t[0] and t[n - 1] <= hi) if ordered else _in_order_within(t, lo, hi):
            self._candidate_t_us = None
            self.last_t_us = int(t[-1])
            return events
        keep = t >= 0
        self.disordered = n - int(keep.sum())
        self._drop(self.disordered, "negative", "dropped events with a negative time")
        if not keep.all():
            events = _compact(events, keep)
            t = events["t"]
        if events.shape[0] and not _in_order_within(t, 0, _INT64_MAX):
            keep = np.empty(events.shape[0], dtype=np.bool_)
            kept = _longest_ordered_run(t, keep)
            self.disordered += events.shape[0] - kept
            self._drop(events.shape[0] - kept, "backward", "dropped events whose time ran backwards inside a packet")
            events = _compact(events, keep)
            t = events["t"]
        if last is None and self.check_jumps and events.shape[0]:
            events = self._keep_longest_plausible_run(events)
            t = events["t"]
        if last is not None and events.shape[0]:
            inside = (t >= lo) & (t <= hi)
            if not inside.any() and self.check_jumps and self._confirms_jump(t):
                return events
            self._drop(events.shape[0] - int(inside.sum()), "implausible",
                       f"dropped events before the stream's latest time or more than {self.limits.max_jump_us} us ahead of it")
            if inside.any():
                self._candidate_t_us = None
            events = _compact(events, inside)
        if events.shape[0]:
            self.last_t_us = int(events["t"][-1])
        return events

    def _keep_longest_plausible_run(self, events: np.ndarray) -> np.ndarray:
        """With no time to compare with (a stream's first packet): split the packet at steps
        beyond ``max_jump_us`` and keep its longest part."""
        big = np.flatnonzero(np.diff(events["t"]) > self.limits.max_jump_us) + 1
        if big.size == 0:
            return events
        bounds = np.concatenate([[0], big, [events.shape[0]]])
        k = int(np.argmax(np.diff(bounds)))
        keep = np.zeros(events.shape[0], dtype=np.bool_)
        keep[bounds[k] : bounds[k + 1]] = True
        self._drop(events.shape[0] - int(keep.sum()), "implausible",
                   f"dropped events more than {self.limits.max_jump_us} us from the rest of their packet")
        return _compact(events, keep)

    def _confirms_jump(self, t: np.ndarray) -> bool:
        """A packet wholly outside the plausible range: count it towards a jump; True once confirmed."""
        cand = self._candidate_t_us
        if cand is not None and cand <= t[0] <= cand + self.limits.max_jump_us:
            self._candidate_packets += 1
        else:
            self._candidate_packets = 1
        self._candidate_t_us = int(t[-1])
        if self._candidate_packets < self.limits.confirm_packets:
            return False
        self.stats.time_resets += 1
        self.stats.warn_once("jump", f"{self.label}: sensor time jumped from {self.last_t_us} to {int(t[0])} us and "
                                     f"{self.limits.confirm_packets} packets agree: taken as a stream restart")
        self.last_t_us = int(t[-1])
        self._candidate_t_us = None
        return True

    def _drop(self, count: int, kind: str, message: str) -> None:
        if count:
            self.stats.time_dropped += count
            self.stats.time_errors += 1
            self.stats.warn_once(f"time:{kind}", f"{self.label}: {message}")


def _compact(events: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The kept events moved to the front of ``events`` (in place, so a reserved buffer stays
    valid; a read-only array gives a copy)."""
    kept = events[keep]
    if not events.flags.writeable:
        return kept
    events[: kept.shape[0]] = kept
    return events[: kept.shape[0]]
