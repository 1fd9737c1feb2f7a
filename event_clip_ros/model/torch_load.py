"""What ``torch.load(weights_only=True)`` says when it refuses a file, in one line.

Shared by the model checkpoints and the training states: both load pickles only with
torch's weights_only unpickler, and both report a refusal the same way.
"""

from __future__ import annotations

import pickle
import re

_WEIGHTS_ONLY_FAILED = "Weights only load failed"  # how torch.load(weights_only=True) starts a refusal
_UNPICKLER_PREFIX = "WeightsUnpickler error:"
_TORCH_ADVICE = (_WEIGHTS_ONLY_FAILED, "(1)", "(2)", "Please file an issue", "Check the documentation")
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")  # "Unsupported global: GLOBAL x.y ...", "unsupported GLOBAL x.y whose ..."


def torch_load_reason(err: BaseException) -> str:
    """The informative line of a ``torch.load`` error.

    weights_only refusals bury it among torch's advice, which suggests loading with
    ``weights_only=False`` (running code from the file): that advice is never shown.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if _WEIGHTS_ONLY_FAILED not in str(err):
        return lines[0] if lines else type(err).__name__
    for line in lines:
        reason = line.partition(_UNPICKLER_PREFIX)[2].strip() if _UNPICKLER_PREFIX in line else line
        if reason and not reason.startswith(_TORCH_ADVICE):
            return reason
    return "refused by the weights_only unpickler"


def refused_global(err: BaseException) -> str | None:
    """The class or function a pickle needed that torch's weights_only unpickler refused to import, else None."""
    if not isinstance(err, pickle.UnpicklingError) or _WEIGHTS_ONLY_FAILED not in str(err):
        return None
    found = _REFUSED_GLOBAL.search(str(err))
    return found.group(1) if found else None
