"""Labelled event datasets in their distributed layouts, for zero-shot and k-shot evaluation (no paired images).

Each class is one ``EventDataset`` of one split; items have ``image`` None. Point ``root`` at your copy; the
files are read with the project's readers (:mod:`event_clip_ros.events.readers`).

N-Cars (:class:`NCars`; Sironi et al. 2018, Prophesee)
    Layout of the download: ``<root>/n-cars_train/{cars,background}/obj_*_td.dat`` and ``n-cars_test/...``
    (``train`` / ``test`` folders, or ``root`` being one split folder, are accepted too). Two classes in the
    order ``car``, ``background`` (folders ``cars`` and ``background``). Files are 100 ms samples of a
    120 x 100 ATIS crop in Prophesee DAT without a header, read at that fixed canvas. Events: the whole
    sample (a few thousand events; ``num_events`` caps it with a random window).

DVS128 Gesture (:class:`DVSGesture`; Amir et al. 2017, IBM)
    Layout of ``DvsGesture.tar.gz``: ``<root>/userNN_<lighting>.aedat`` (AEDAT 3.1, DVS128) with
    ``userNN_<lighting>_labels.csv`` (``class,startTime_usec,endTime_usec``; classes 1-11) and
    ``trials_to_train.txt`` / ``trials_to_test.txt``. Official split: users 1-23 train, 24-29 test (the
    trial lists when present, else by the user number). An item is one labelled gesture segment of a
    recording; its events are a window of ``num_events`` (30,000) consecutive events of the segment (random
    per epoch in training, fixed per seed otherwise; the whole segment when shorter). The 11 class names
    become prompts with CLIP's action template, "a photo of a person {}." ("clapping hands", "waving the
    right hand", ...), :data:`DVS_GESTURE_CLASSES`.

N-Caltech101 (:class:`NCaltech101Folders`; Orchard et al. 2015)
    Layout of the download: ``<root>/<class>/image_NNNN.bin`` (ATIS .bin, 101 folders with
    ``BACKGROUND_Google``), read at the 240 x 180 canvas. Classes: the folders in sorted order, named as
    EventCLIP / CoOp clean them ("Faces_easy" -> "face", "airplanes" -> "airplane", underscores -> spaces,
    :func:`caltech_class_name`), or the keys and order of a class file (EventBind's
    ``Caltech101_classnames.json``) when given. Split: a seeded ``test_fraction`` of each class (0.2, as
    EventBind's 6,968 / 1,741 files); the published zero-shot figures (EventCLIP 58.82, EventBind 61.80,
    ViT-L/14, all 101 classes) use EventBind's list files, which :class:`~.paired.ListPaired` reads.
    Prompt: "a point cloud image of a {}" (the official and EventCLIP's).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ...events.noise import NoiseFilterConfig
from ...events.types import SensorSize
from .augment import EventAugmentConfig, random_window
from .paired import ClassList, PairedFiles, _Entry, load_class_list, read_events
from .sample import Sample

Split = Literal["train", "test"]

_WINDOW_STREAM, _AUGMENT_STREAM = 0, 1

# ------------------------------------------------------------------------------------------- N-Cars
NCARS_SENSOR = SensorSize(120, 100)
#: (folder, class name) in label order.
NCARS_CLASSES = (("cars", "car"), ("background", "background"))
NCARS_TEMPLATE = "a point cloud image of a {}"


def _split_folder(root: Path, split: str, names: tuple[str, ...], has: tuple[str, ...]) -> Path:
    """The folder of ``split`` under ``root`` (the first of ``names`` that holds the ``has`` sub-folders), or
    ``root`` itself when it holds them."""
    for name in names:
        folder = root / name
        if all((folder / sub).is_dir() for sub in has):
            return folder
    if all((root / sub).is_dir() for sub in has):
        return root
    raise ValueError(f"{root}: no {split} split with folders {', '.join(has)} (looked for "
                     f"{', '.join(str(root / n) for n in names)})")


@dataclass(frozen=True)
class NCarsConfig:
    root: str | Path  #: the N-Cars folder (with n-cars_train / n-cars_test)
    split: Split = "train"
    num_events: int | None = None  #: events per window (None: the whole 100 ms sample)
    template: str = NCARS_TEMPLATE
    seed: int = 0
    augment: EventAugmentConfig | None = None
    skip_unreadable: bool = True
    noise: NoiseFilterConfig = NoiseFilterConfig()  #: noise filters on each recording before windows are drawn


class NCars(PairedFiles):
    """N-Cars: car / background samples (see the module docstring)."""

    kind = "n-cars"

    def __init__(self, config: NCarsConfig) -> None:
        root = Path(config.root).expanduser()
        folders = tuple(f for f, _ in NCARS_CLASSES)
        base = _split_folder(root, config.split, (f"n-cars_{config.split}", config.split), folders)
        classes = ClassList(folders, tuple(n for _, n in NCARS_CLASSES))
        entries = [_Entry(path, None, label) for label, folder in enumerate(folders)
                   for path in sorted((base / folder).glob("*.dat"))]
        if not entries:
            raise ValueError(f"{base}: no .dat files in {', '.join(folders)}")
        super().__init__(entries, classes, config.template, config.num_events, NCARS_SENSOR, False, config.seed,
                         config.augment, config.skip_unreadable, config.noise)
        self.config = config


# ------------------------------------------------------------------------------------------- DVS Gesture
DVS_GESTURE_SENSOR = SensorSize(128, 128)
#: (official name, prompt phrase) of classes 1-11, in label order.
DVS_GESTURE_CLASSES = (
    ("hand_clapping", "clapping hands"),
    ("right_hand_wave", "waving the right hand"),
    ("left_hand_wave", "waving the left hand"),
    ("right_arm_clockwise", "rotating the right arm clockwise"),
    ("right_arm_counter_clockwise", "rotating the right arm counter-clockwise"),
    ("left_arm_clockwise", "rotating the left arm clockwise"),
    ("left_arm_counter_clockwise", "rotating the left arm counter-clockwise"),
    ("arm_roll", "rolling the arms"),
    ("air_drums", "playing air drums"),
    ("air_guitar", "playing air guitar"),
    ("other_gestures", "doing another gesture"),
)
DVS_GESTURE_TEMPLATE = "a photo of a person {}."
DVS_GESTURE_TRAIN_USERS = range(1, 24)  #: users 1-23 train, 24-29 test (official)
_USER = re.compile(r"user(\d+)_", re.IGNORECASE)


@dataclass(frozen=True)
class DVSGestureConfig:
    root: str | Path  #: the DvsGesture folder (.aedat recordings, *_labels.csv, trials_to_*.txt)
    split: Split = "train"
    num_events: int | None = 30_000  #: events per window of a gesture segment (None: the whole segment)
    template: str = DVS_GESTURE_TEMPLATE
    seed: int = 0
    augment: EventAugmentConfig | None = None
    skip_unreadable: bool = True
    noise: NoiseFilterConfig = NoiseFilterConfig()  #: noise filters on each recording before windows are drawn


@dataclass(frozen=True)
class _Segment(_Entry):
    start_us: int = 0
    end_us: int = 0


def dvs_gesture_recordings(root: Path, split: Split) -> list[Path]:
    """The split's recordings: ``trials_to_<split>.txt`` when present, else users 1-23 (train) / 24-29 (test)."""
    listed = root / f"trials_to_{split}.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [root / name for name in names]
    out = []
    for path in sorted(root.glob("*.aedat")):
        user = _USER.match(path.name)
        if user is None:
            continue
        if (int(user.group(1)) in DVS_GESTURE_TRAIN_USERS) == (split == "train"):
            out.append(path)
    return out


def read_gesture_labels(path: Path) -> list[tuple[int, int, int]]:
    """(class index 0-10, start us, end us) rows of a ``*_labels.csv``."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if not row or not row[0].strip() or not row[0].strip().lstrip("-").isdigit():
                continue  # the header
            try:
                label, start, end = (int(v) for v in row[:3])
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: expected class,startTime_usec,endTime_usec, got {row}") from exc
            if not 1 <= label <= len(DVS_GESTURE_CLASSES) or end <= start:
                raise ValueError(f"{path}:{number}: class {label} must be 1-{len(DVS_GESTURE_CLASSES)} and end > start")
            rows.append((label - 1, start, end))
    return rows


class DVSGesture(PairedFiles):
    """DVS128 Gesture: one item per labelled gesture segment (see the module docstring)."""

    kind = "dvs-gesture"

    def __init__(self, config: DVSGestureConfig) -> None:
        root = Path(config.root).expanduser()
        recordings = dvs_gesture_recordings(root, config.split)
        if not recordings:
            raise ValueError(f"{root}: no {config.split} recordings (userNN_*.aedat or trials_to_{config.split}.txt)")
        entries: list[_Entry] = []
        for path in recordings:
            labels = path.with_name(path.stem + "_labels.csv")
            if not labels.is_file():
                raise ValueError(f"{path}: no labels file {labels.name}")
            entries += [_Segment(path, None, label, start, end) for label, start, end in read_gesture_labels(labels)]
        classes = ClassList(tuple(k for k, _ in DVS_GESTURE_CLASSES), tuple(n for _, n in DVS_GESTURE_CLASSES))
        super().__init__(entries, classes, config.template, config.num_events, DVS_GESTURE_SENSOR, False, config.seed,
                         config.augment, config.skip_unreadable, config.noise)
        self.config = config
        self._recording: tuple[Path, np.ndarray] | None = None  # the last recording read (items come in file order)

    def _events_of(self, path: Path) -> np.ndarray:
        if self._recording is None or self._recording[0] != path:
            self._recording = (path, read_events(path, self.sensor, self.noise)[0])
        return self._recording[1]

    def _load(self, index: int) -> Sample:
        entry = self.entries[index]
        assert isinstance(entry, _Segment)
        events = self._events_of(entry.events)
        lo, hi = np.searchsorted(events["t"], [entry.start_us, entry.end_us])
        segment = events[lo:hi]
        if segment.size == 0:
            raise ValueError(f"{entry.events}: no events in the labelled segment {entry.start_us}-{entry.end_us} us")
        if self.num_events is not None:
            segment = random_window(segment, self.num_events, self.item_rng(index, _WINDOW_STREAM))
        segment = self.augment_events(segment, DVS_GESTURE_SENSOR, self.item_rng(index, _AUGMENT_STREAM))
        caption = self.prompts()[entry.label]
        return Sample(events=segment, size=DVS_GESTURE_SENSOR, image=None, label=entry.label, caption=caption)


# ------------------------------------------------------------------------------------------- N-Caltech101
NCALTECH101_SENSOR = SensorSize(240, 180)
NCALTECH101_TEMPLATE = "a point cloud image of a {}"
#: Folder names renamed as EventCLIP (after CoOp) does; the others only lose their underscores.
CALTECH_RENAMES = {"Faces_easy": "face", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike",
                   "airplanes": "airplane", "BACKGROUND_Google": "background"}


def caltech_class_name(folder: str) -> str:
    """The prompt name of a Caltech101 folder: "Faces_easy" -> "face", "car_side" -> "car side"."""
    return CALTECH_RENAMES.get(folder, folder.replace("_", " "))


@dataclass(frozen=True)
class NCaltech101FoldersConfig:
    root: str | Path  #: the N-Caltech101 folder (<class>/image_NNNN.bin)
    split: Split = "test"
    test_fraction: float = 0.2  #: per class, drawn with ``split_seed``
    split_seed: int = 0
    classes_file: str | Path | None = None  #: class order and keys (EventBind's JSON); None: sorted folders
    num_events: int | None = 30_000
    template: str = NCALTECH101_TEMPLATE
    seed: int = 0
    augment: EventAugmentConfig | None = None
    skip_unreadable: bool = True
    noise: NoiseFilterConfig = NoiseFilterConfig()  #: noise filters on each recording before windows are drawn

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


class NCaltech101Folders(PairedFiles):
    """N-Caltech101 from its class folders, with a seeded per-class train / test split (module docstring)."""

    kind = "n-caltech101"

    def __init__(self, config: NCaltech101FoldersConfig) -> None:
        root = Path(config.root).expanduser()
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.bin"))) if root.is_dir() else []
        if not folders:
            raise ValueError(f"{root}: no class folders with .bin files")
        if config.classes_file is not None:
            classes = load_class_list(config.classes_file)
        else:
            classes = ClassList(tuple(folders), tuple(caltech_class_name(f) for f in folders))
        entries: list[_Entry] = []
        rng = np.random.default_rng([config.split_seed, 0xCA17EC])
        for folder in folders:
            label = classes.index(folder)
            if label is None:
                continue
            files = sorted((root / folder).glob("*.bin"))
            test = np.zeros(len(files), bool)
            n_test = min(len(files) - 1, max(1, round(config.test_fraction * len(files)))) if len(files) > 1 else 0
            test[rng.choice(len(files), size=n_test, replace=False)] = True
            entries += [_Entry(path, None, label) for path, is_test in zip(files, test)
                        if is_test == (config.split == "test")]
        super().__init__(entries, classes, config.template, config.num_events, NCALTECH101_SENSOR, False, config.seed,
                         config.augment, config.skip_unreadable, config.noise)
        self.config = config
