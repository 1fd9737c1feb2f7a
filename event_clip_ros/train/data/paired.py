"""Real paired datasets: N-ImageNet + ImageNet, N-Caltech101 + Caltech101, N-MNIST + MNIST.

None of them can be downloaded by this project; point the configs at your
copies. Every event file is read with the project's readers
(:func:`event_clip_ros.events.readers.open_events`); images with PIL, as the
official code does.

N-ImageNet (:class:`NImageNetPaired`, the paper's pre-training data)
    * List file: one event ``.npz`` path per line (the official
      ``configs/train_list_*.txt`` / ``val_list_*.txt``); the class is the
      WordNet id of the parent folder (``.../extracted_train/n01440764/x.npz``).
      Entries whose class is not in the label file are left out (counted), as
      the official loader filters them.
    * Labels: the official ``configs/Labels.json``, a JSON object WordNet id ->
      synonym string ("tench, Tinca tinca"); label ``i`` is the i-th key and its
      prompt / caption is ``"a photo of a {whole synonym string}"``.
    * Paired image: the official path rewrite (``extracted_train`` -> ``train``,
      ``extracted_val`` -> ``val``, ``N_ImageNet`` -> ``ImageNet`` as whole path
      components, ``.npz`` -> ``.JPEG``), or ``image_root/<wnid>/<stem>.JPEG``
      when ``image_root`` is set. The image is converted to grayscale ('L')
      and replicated to 3 channels, as the official ``get_image``.
    * Events: a random window of 30,000 consecutive events (the official
      ``slice_method='random'``; drawn per epoch for training, fixed per seed
      for evaluation, where the official code draws anew each time).
      Coordinates stay at the 640 x 480 sensor: the project's frame builder
      maps them to the model input with ``x * 224 // 640``, which is the
      official ``reshape_event_no_sample`` (``x * 224 / 640`` then truncated
      when histogramming) in integer arithmetic.

N-Caltech101 and N-MNIST (:class:`ListPaired`, EventBind-style lists)
    * List file: ``event.bin<TAB>image`` per line; the class is the parent
      folder of the event file: a key of the class file (N-Caltech101,
      ``label_from="name"``) or the class index itself (N-MNIST folders
      ``0``..``9``, ``label_from="index"``).
    * Class file: EventBind's JSON (folder name -> index, e.g.
      ``Caltech101_classnames.json``; underscores become spaces in prompts),
      a JSON object key -> display name, a JSON list, or a text / YAML list.
    * Events: a random window of 30,000 (N-Caltech101) or 2,000 (N-MNIST)
      events; prompts "a point cloud image of a {}" / "The digit {}" (the
      official pycs). Frames clamp counts at 20 / 10
      (:func:`~event_clip_ros.train.data.recommended.recommended_frame_config`).
    * Sensor: one canvas per dataset (240 x 180 for N-Caltech101, 34 x 34 for
      N-MNIST) so that a batch shares a size. The official loaders stretch
      each sample's own extent (max x + 1, max y + 1) to 224 x 224 instead,
      which changes the aspect per sample.

Unreadable items (a missing or corrupt event file or image) are replaced by
the next item, counted in ``stats.unreadable`` and logged once
(``skip_unreadable=False`` raises instead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Literal

import numpy as np
from PIL import Image

from ...events.noise import NoiseFilter, NoiseFilterConfig
from ...events.readers import open_events
from ...events.types import SensorSize, concat_events
from ...model.prompts import fill_templates, load_labels, validate_templates
from .augment import EventAugmentConfig, random_window
from .sample import EventDataset, Sample, log

_WINDOW_STREAM, _AUGMENT_STREAM = 0, 1
_MAX_REPLACEMENTS = 16  #: consecutive unreadable items tolerated before giving up

#: Path components the official code rewrites to go from an N-ImageNet event file to its ImageNet image.
NIMAGENET_TO_IMAGENET = {"extracted_train": "train", "extracted_val": "val", "N_ImageNet": "ImageNet"}


# --- files -------------------------------------------------------------------------------------


def read_list_file(path: str | Path, columns: int, root: str | Path | None = None,
                   path_prefix: tuple[str, str] | None = None) -> list[tuple[Path, ...]]:
    """Rows of ``columns`` paths from a list file (tab-separated when ``columns > 1``).

    Blank lines and lines starting with ``#`` are skipped. ``path_prefix``
    ``(old, new)`` replaces a leading ``old`` of each entry (to move the
    official lists' ``/mnt/Data_3/event`` to your copy). Relative entries
    are taken relative to ``root`` (default: the list file's folder); with a
    ``root``, a leading ``/`` is ignored too, because EventBind's N-MNIST lists
    write data-root-relative paths that way.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read list file {path}: {exc}") from exc
    base = Path(root) if root is not None else path.parent
    rows = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")] if columns > 1 else [line]
        if len(fields) != columns:
            raise ValueError(f"{path}:{number}: expected {columns} tab-separated paths, got {len(fields)}: {line!r}")
        row = []
        for entry in fields:
            if path_prefix is not None and entry.startswith(path_prefix[0]):
                entry = path_prefix[1] + entry[len(path_prefix[0]):]
            row.append(base / entry.lstrip("/") if root is not None else base / entry)
        rows.append(tuple(row))
    if not rows:
        raise ValueError(f"list file {path} has no entries")
    return rows


def read_events(path: str | Path, size: SensorSize | None = None,
                noise: NoiseFilterConfig = NoiseFilterConfig()) -> tuple[np.ndarray, SensorSize]:
    """All events of a file (any format :func:`open_events` knows) and its sensor size; with ``noise``, the
    events the noise filters keep (the recording as one stream, as the node and the CLI filter it)."""
    with open_events(path, size=size) as reader:
        events = concat_events(list(reader.chunks()))
        if noise.enabled:
            events = NoiseFilter(noise).filter(events, reader.size)
        return events, reader.size


def load_image(path: str | Path, grayscale: bool) -> np.ndarray:
    """An image as uint8 (H, W, 3): RGB, or grayscale ('L', ITU-R 601 luma) replicated to 3 channels."""
    with Image.open(path) as img:
        if grayscale:
            return np.repeat(np.asarray(img.convert("L"))[:, :, None], 3, axis=2)
        return np.asarray(img.convert("RGB"))


def nimagenet_image_path(event_path: str | Path, image_root: str | Path | None = None) -> Path:
    """The ImageNet JPEG paired with an N-ImageNet ``.npz`` (see the module docstring)."""
    event_file = PurePath(event_path)
    name = event_file.with_suffix(".JPEG").name
    if image_root is not None:
        return Path(image_root) / event_file.parent.name / name
    parts = [NIMAGENET_TO_IMAGENET.get(p, p) for p in event_file.parent.parts]
    return Path(*parts, name)


@dataclass(frozen=True)
class ClassList:
    """Class keys (folder names / WordNet ids) and the display names prompts use, in label order."""

    keys: tuple[str, ...]
    names: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.keys) != len(self.names) or not self.keys or len(set(self.keys)) != len(self.keys):
            raise ValueError("a class list needs as many names as keys, at least one, and unique keys")
        object.__setattr__(self, "_index", {k: i for i, k in enumerate(self.keys)})

    def index(self, key: str) -> int | None:
        """Label of a class key, or None when it is not in the list."""
        return self._index.get(key)


def load_class_list(path: str | Path) -> ClassList:
    """Classes from a JSON object (key -> index as EventBind, or key -> display name as Labels.json),
    a JSON list, or a text / YAML list (see the module docstring)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        names = load_labels(path)
        return ClassList(names, names)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read class file {path}: {exc}") from exc
    if isinstance(data, list) and all(isinstance(v, str) for v in data):
        return ClassList(tuple(data), tuple(data))
    if isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
        return ClassList(tuple(data), tuple(data.values()))
    if isinstance(data, dict) and data and all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
        if sorted(data.values()) != list(range(len(data))):
            raise ValueError(f"{path}: class indices must be 0..{len(data) - 1}, each once")
        keys = tuple(sorted(data, key=data.__getitem__))
        return ClassList(keys, tuple(k.replace("_", " ") for k in keys))
    raise ValueError(f"{path}: expected a JSON object of name -> index or key -> name, or a list of names")


# --- datasets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    events: Path
    image: Path | None
    label: int


class PairedFiles(EventDataset):
    """Shared loading of event-file / image pairs with a random event window and optional augmentation."""

    def __init__(self, entries: list[_Entry], classes: ClassList, template: str, num_events: int | None,
                 sensor: SensorSize | None, grayscale: bool, seed: int, augment: EventAugmentConfig | None,
                 skip_unreadable: bool, noise: NoiseFilterConfig = NoiseFilterConfig()) -> None:
        super().__init__(seed, augment)
        if not entries:
            raise ValueError("the dataset has no entries")
        if num_events is not None and num_events < 1:
            raise ValueError(f"num_events must be >= 1 or None, got {num_events}")
        self.entries = entries
        self.class_list = classes
        self.classes = list(classes.names)
        self.template = validate_templates((template,))[0]
        self.num_events = num_events
        self.sensor = sensor
        self.grayscale = grayscale
        self.skip_unreadable = skip_unreadable
        self.noise = noise

    def __len__(self) -> int:
        return len(self.entries)

    def prompts(self) -> list[str]:
        """The class prompts, in class order."""
        return [fill_templates((self.template,), name)[0] for name in self.classes]

    def labels(self) -> np.ndarray:
        """Class index of every item (int64)."""
        return np.array([e.label for e in self.entries], dtype=np.int64)

    def _load(self, index: int) -> Sample:
        entry = self.entries[index]
        events, size = read_events(entry.events, self.sensor, self.noise)
        if self.num_events is not None:
            events = random_window(events, self.num_events, self.item_rng(index, _WINDOW_STREAM))
        events = self.augment_events(events, size, self.item_rng(index, _AUGMENT_STREAM))
        image = load_image(entry.image, self.grayscale) if entry.image is not None else None
        caption = fill_templates((self.template,), self.classes[entry.label])[0]
        return Sample(events=events, size=size, image=image, label=entry.label, caption=caption)

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        first_error: Exception | None = None
        for attempt in range(min(_MAX_REPLACEMENTS, len(self))):
            i = (index + attempt) % len(self)
            try:
                return self._load(i)
            except (OSError, ValueError) as exc:  # EventFileError is a ValueError, PIL's errors OSErrors
                if not self.skip_unreadable:
                    raise
                first_error = first_error or exc
                self.stats.unreadable += 1
                self.stats.warn_once("unreadable", f"{type(self).__name__}: skipping an unreadable item ({exc})")
                log.debug("unreadable item %d (%s): %s", i, self.entries[i].events, exc)
        raise RuntimeError(f"{type(self).__name__}: {_MAX_REPLACEMENTS} consecutive items from {index} on are "
                           f"unreadable; first error: {first_error}")


@dataclass(frozen=True)
class NImageNetConfig:
    """Where the N-ImageNet list, labels and images are, and how windows are drawn."""

    list_file: str | Path  #: one event .npz path per line
    labels_file: str | Path  #: the official configs/Labels.json (WordNet id -> synonyms)
    root: str | Path | None = None  #: base of every list entry (None: relative ones from the list's folder)
    path_prefix: tuple[str, str] | None = None  #: (old, new) leading prefix rewrite of list entries
    image_root: str | Path | None = None  #: ImageNet split folder (<wnid>/<stem>.JPEG); None: official rewrite
    with_images: bool = True  #: load the paired images (False: image None)
    num_events: int = 30_000  #: events per window
    template: str = "a photo of a {}"
    seed: int = 0
    augment: EventAugmentConfig | None = None  #: training augmentation (recommended: EventAugmentConfig())
    skip_unreadable: bool = True
    noise: NoiseFilterConfig = NoiseFilterConfig()  #: noise filters on each recording before windows are drawn


class NImageNetPaired(PairedFiles):
    """N-ImageNet events paired with grayscale ImageNet images (the official pre-training data)."""

    kind = "n-imagenet"

    def __init__(self, config: NImageNetConfig) -> None:
        classes = load_class_list(config.labels_file)
        entries = []
        unknown = 0
        for (event_path,) in read_list_file(config.list_file, 1, config.root, config.path_prefix):
            label = classes.index(event_path.parent.name)
            if label is None:
                unknown += 1
                continue
            image = nimagenet_image_path(event_path, config.image_root) if config.with_images else None
            entries.append(_Entry(event_path, image, label))
        super().__init__(entries, classes, config.template, config.num_events, None, True, config.seed,
                         config.augment, config.skip_unreadable, config.noise)
        self.config = config
        if unknown:
            self.stats.unknown_class += unknown
            self.stats.warn_once("unknown_class", f"{config.list_file}: left out {unknown} entries whose "
                                                  f"class is not in {config.labels_file}")


ListKind = Literal["n-caltech101", "n-mnist"]

#: Per kind: sensor canvas, how the folder gives the label, the official prompt, events per window.
_LIST_KINDS: dict[str, tuple[SensorSize, str, str, int]] = {
    "n-caltech101": (SensorSize(240, 180), "name", "a point cloud image of a {}", 30_000),
    "n-mnist": (SensorSize(34, 34), "index", "The digit {}", 2_000),
}


@dataclass(frozen=True)
class ListPairedConfig:
    """An EventBind-style ``event<TAB>image`` list; fields left None take the kind's official value."""

    kind: ListKind
    list_file: str | Path
    classes_file: str | Path
    root: str | Path | None = None  #: base of every list entry (None: relative ones from the list's folder)
    path_prefix: tuple[str, str] | None = None  #: (old, new) leading prefix rewrite of list entries
    sensor: SensorSize | None = None  #: canvas (None: 240x180 / 34x34)
    num_events: int | None = None  #: events per window (None: 30,000 / 2,000)
    label_from: Literal["name", "index"] | None = None  #: parent folder is a class key or the index itself
    template: str | None = None  #: prompt template (None: the official one)
    grayscale_image: bool = False  #: convert the image to 'L' and replicate it to 3 channels
    with_images: bool = True
    seed: int = 0
    augment: EventAugmentConfig | None = None
    skip_unreadable: bool = True
    noise: NoiseFilterConfig = NoiseFilterConfig()  #: noise filters on each recording before windows are drawn

    def __post_init__(self) -> None:
        if self.kind not in _LIST_KINDS:
            raise ValueError(f"kind must be one of {', '.join(_LIST_KINDS)}, got {self.kind!r}")
        sensor, label_from, template, num_events = _LIST_KINDS[self.kind]
        for name, default in (("sensor", sensor), ("label_from", label_from), ("template", template),
                              ("num_events", num_events)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        if self.label_from not in ("name", "index"):
            raise ValueError(f"label_from must be 'name' or 'index', got {self.label_from!r}")


class ListPaired(PairedFiles):
    """N-Caltech101 / N-MNIST ``.bin`` events paired with Caltech101 / MNIST images."""

    def __init__(self, config: ListPairedConfig) -> None:
        assert config.label_from is not None and config.template is not None  # the config fills them in
        classes = load_class_list(config.classes_file)
        entries = []
        unknown = 0
        for event_path, image_path in read_list_file(config.list_file, 2, config.root, config.path_prefix):
            label = self._label(event_path.parent.name, config.label_from, classes)
            if label is None:
                unknown += 1
                continue
            entries.append(_Entry(event_path, image_path if config.with_images else None, label))
        super().__init__(entries, classes, config.template, config.num_events, config.sensor,
                         config.grayscale_image, config.seed, config.augment, config.skip_unreadable, config.noise)
        self.kind = config.kind
        self.config = config
        if unknown:
            self.stats.unknown_class += unknown
            self.stats.warn_once("unknown_class", f"{config.list_file}: left out {unknown} entries whose "
                                                  f"folder is not a class of {config.classes_file}")

    @staticmethod
    def _label(folder: str, label_from: str, classes: ClassList) -> int | None:
        if label_from == "name":
            return classes.index(folder)
        if folder.isdigit() and int(folder) < len(classes.keys):
            return int(folder)
        return None
