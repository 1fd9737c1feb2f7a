"""matplotlib's pyplot on the Agg backend (files only, no display) for the charts of reports; a base module every
layer may use.
"""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` with the Agg backend selected."""
    import matplotlib  # lazy: slow to import (only reports draw), and the backend is chosen before pyplot loads

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
