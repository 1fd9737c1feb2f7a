"""``python -m event_clip_ros.train.pretrain``: the pretrain command line (also ``event-clip-pretrain``, ``training/pretrain.py``)."""

import sys

from .cli import main

sys.exit(main())
