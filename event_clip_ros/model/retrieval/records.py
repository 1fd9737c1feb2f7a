"""What the rows of an :class:`~.index.EmbeddingIndex` are: one :class:`Record` per item, and the :class:`Hit` a query returns."""

from __future__ import annotations

import json
import operator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Modality = Literal["event", "image", "text"]
MODALITIES: tuple[str, ...] = ("event", "image", "text")


@dataclass(frozen=True)
class Record:
    """What one row of the index is.

    ``key`` names the item: the source file or topic of an event window, an
    image's path, the text itself. Event windows also carry their half-open
    sensor-time interval ``[t_start_us, t_end_us)``.
    """

    modality: Modality
    key: str
    t_start_us: int | None = None
    t_end_us: int | None = None
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  #: free-form, JSON-serialisable

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r}; expected one of {', '.join(MODALITIES)}")
        if not isinstance(self.key, str):
            raise ValueError(f"record key must be a str, got {type(self.key).__name__}")
        if self.label is not None and not isinstance(self.label, str):
            raise ValueError(f"record label must be a str or None, got {type(self.label).__name__}")
        for name in ("t_start_us", "t_end_us"):
            value = getattr(self, name)
            if value is not None:
                try:
                    object.__setattr__(self, name, operator.index(value))  # numpy ints -> int
                except TypeError:
                    raise ValueError(f"{name} must be an integer (microseconds), got {value!r}") from None
        has_time = self.t_start_us is not None or self.t_end_us is not None
        if has_time and self.modality != "event":
            raise ValueError(f"only event records carry a time interval, not {self.modality!r} ones")
        if self.t_start_us is not None and self.t_end_us is not None and self.t_end_us < self.t_start_us:
            raise ValueError(f"t_end_us {self.t_end_us} is before t_start_us {self.t_start_us}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"record extra must be a dict, got {type(self.extra).__name__}")
        try:
            json.dumps(self.extra)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record extra is not JSON-serialisable: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown record fields {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Hit:
    """One query result: cosine similarity, the record, and its row in the index."""

    score: float
    record: Record
    row: int
