"""Where the training presets and split configs are, and what the training command lines are called.

In a source checkout (also an editable install, as scripts/setup_env.sh makes) they are ``training/``
beside the package; an installed package (``pip install .``, ``colcon build``) has them as data files in
``<prefix>/share/event_clip_ros/training`` (setup.py), laid out alike so that a preset's relative
``../configs/...`` paths still resolve.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: share/event_clip_ros/training below an install prefix.
_INSTALLED = Path("share") / "event_clip_ros" / "training"


def training_dir(package_dir: Path = PACKAGE_DIR) -> Path:
    """The folder holding ``presets/`` and ``configs/``: the checkout's ``training/``, else the installed copy."""
    candidates = [package_dir.parent / "training"]  # source checkout
    if len(package_dir.parents) > 3:  # <prefix>/lib/pythonX.Y/site-packages/event_clip_ros
        candidates.append(package_dir.parents[3] / _INSTALLED)
    candidates.append(Path(sys.prefix) / _INSTALLED)
    return next((c for c in candidates if (c / "presets").is_dir()), candidates[0])


def program_name(script: str) -> str:
    """The name a training command line reports itself by: the console script's (``event-clip-pretrain``)
    when started as one, else ``script`` (``python training/pretrain.py``, ``python -m ...``)."""
    name = Path(sys.argv[0]).name
    return name if name.startswith("event-clip-") else script
