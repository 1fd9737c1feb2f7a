#!/usr/bin/env python3
"""Fine-tune f_E with L_pred, or evaluate a checkpoint: ``event-clip-finetune`` run as a script. It needs the package
importable (scripts/setup_env.sh installs it into .venv; from the repository root ``python -m
event_clip_ros.train.finetune`` needs nothing installed). Options: --help; training/README.md."""

import sys

from event_clip_ros.train.finetune.cli import main

if __name__ == "__main__":
    sys.exit(main())
