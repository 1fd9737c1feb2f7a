"""``python -m event_clip_ros.train.finetune``: the finetune command line (also ``event-clip-finetune``, ``training/finetune.py``)."""

import sys

from .cli import main

sys.exit(main())
