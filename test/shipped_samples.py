"""The shipped glyph recording and toy model the end-to-end tests play (data/samples/, models/)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GLYPHS = REPO / "data" / "samples" / "glyphs.raw"  #: EVT3 recording of the glyph scene
GLYPH_TRUTH = REPO / "data" / "samples" / "glyphs.labels.csv"  #: its per-window truth
TOY = REPO / "models" / "event_clip_toy48.safetensors"  #: the shipped toy model
#: The toy model's held-out classes as labels (the recording shows them).
CLASSES = ("digit 2", "digit 4", "digit 7", "letter b", "letter e", "letter h", "letter k", "letter n", "letter s",
           "letter w")
