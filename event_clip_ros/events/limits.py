"""What a live event stream may plausibly do: the bounds every decoder and stream checks input against."""

from __future__ import annotations

from dataclasses import dataclass

from .types import SensorSize


@dataclass(frozen=True)
class StreamLimits:
    """Plausibility bounds of one event stream (sensor time in us, sizes in pixels).

    Input beyond them is counted and skipped, never passed on (see
    :mod:`event_clip_ros.events.time_guard` and :mod:`event_clip_ros.events.packet_stream`).
    """

    #: largest forward step of sensor time (us) between consecutive packets (for the EVT
    #: word streams: between TIME_HIGH words) taken without confirmation
    max_jump_us: int = 4_000_000
    #: consecutive packets that must agree on a new time before a jump is taken as a restart
    confirm_packets: int = 2
    #: largest sensor the streams accept (encodings with narrower address fields accept less:
    #: 2048x2048 for EVT 2.0 / 3.0 and libcaer_cmp)
    max_width: int = 4096
    max_height: int = 4096
    #: largest forward sequence-number gap counted as lost packets; a larger one is an
    #: implausible seq (``seq_resets``)
    max_seq_gap: int = 100_000

    def __post_init__(self) -> None:
        checks = {
            "max_jump_us": (self.max_jump_us, 1, 3_600_000_000),
            "confirm_packets": (self.confirm_packets, 1, 1000),
            "max_width": (self.max_width, 1, 65535),
            "max_height": (self.max_height, 1, 65535),
            "max_seq_gap": (self.max_seq_gap, 1, 1 << 40),
        }
        for name, (value, low, high) in checks.items():
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"StreamLimits.{name} must be an integer in [{low}, {high}], got {value!r}")

    def check_size(self, size: SensorSize, what: str, max_width: int = 65535, max_height: int = 65535) -> None:
        """Raise ValueError unless ``size`` fits these limits and the encoding's own (``max_width`` x ``max_height``)."""
        width, height = min(self.max_width, max_width), min(self.max_height, max_height)
        if size.width > width or size.height > height:
            raise ValueError(f"{what}: a {size.width}x{size.height} sensor is beyond the {width}x{height} accepted")


DEFAULT_LIMITS = StreamLimits()
