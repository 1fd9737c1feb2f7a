"""Which training state a run keeps (model selection), and the statement the report makes about it.

The test data never selects: a run picks its checkpoint on a validation set that is separate from the
test items (pre-training: seen-class items only, ranked among the seen prompts) or keeps the last epoch,
which is what the official code's ``best.pt`` is (it is rewritten after every epoch). ``runtime.selection``:

``validation``  the best validation value of ``best_metric``; a run without a validation set is an error
``last``        the last epoch, whatever the validation says (validation is still logged when there is a set)
``auto``        validation when there is a validation set, else last (logged as a warning and reported)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """The resolved selection of one run."""

    mode: str  #: "validation" or "last"
    metric: str | None  #: the validation metric (mode "validation")
    validation: str  #: what the validation set is, or "none"
    validation_items: int

    def statement(self) -> str:
        """One sentence for the report."""
        if self.mode == "validation":
            return (f"The checkpoint is selected by validation {self.metric} on {self.validation} "
                    f"({self.validation_items} items); no test item is used for selection.")
        where = ("no validation set" if self.validation_items == 0 else
                 f"validation ({self.validation}, {self.validation_items} items) is logged only")
        return (f"The checkpoint is the last epoch (the official best.pt is the last epoch too); {where}; "
                "no test item is used for selection.")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "statement": self.statement()}


def resolve_selection(requested: str, metric: str, validation: str | None, validation_items: int) -> Selection:
    """The :class:`Selection` of ``runtime.selection`` = ``requested`` given the validation set (None: none)."""
    has_val = validation is not None and validation_items > 0
    if requested not in ("auto", "validation", "last"):
        raise ValueError(f"selection must be auto, validation or last, got {requested!r}")
    if requested == "validation" and not has_val:
        raise ValueError("runtime.selection 'validation' needs a validation set (data.val_list, or "
                         "data.val_samples_per_class > 0); the test list is never used for selection. "
                         "Use runtime.selection=last to keep the last epoch as the official code does")
    mode = "validation" if requested == "validation" or (requested == "auto" and has_val) else "last"
    if requested == "auto" and not has_val:
        log.warning("no validation set: keeping the last epoch as best.safetensors (the official best.pt is the last "
                    "epoch); the test list is not used for selection")
    return Selection(mode=mode, metric=metric if mode == "validation" else None,
                     validation=validation if has_val and validation is not None else "none",
                     validation_items=validation_items if has_val else 0)
