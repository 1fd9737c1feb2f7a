#!/usr/bin/env python3
"""Pre-train the event encoder f_E against frozen CLIP: ``event-clip-pretrain`` run as a script. It needs the package
importable (scripts/setup_env.sh installs it into .venv; from the repository root ``python -m
event_clip_ros.train.pretrain`` needs nothing installed). Options: --help; training/README.md."""

import sys

from event_clip_ros.train.pretrain.cli import main

if __name__ == "__main__":
    sys.exit(main())
