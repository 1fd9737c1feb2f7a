"""The pre-training configuration: dataclass sections read from YAML, with ``--set key=value`` overrides.

A config file (``training/presets/*.yaml``) is a mapping of sections, each a
dataclass below: ``model``, ``data``, ``frames``, ``loss``, ``optim``,
``runtime`` and, for the toy preset, ``teacher``. Keys are checked against the
dataclass fields (an unknown key is an error that lists the known ones) and
values against the field types (``1e-4`` is accepted for a float although YAML
reads it as a string). Relative paths in a config file are taken relative to
that file's folder; paths given with ``--set`` relative to the working directory.

The defaults are the official pre-training settings (paper-method.md 1.6) where
the paper has them; presets only state what differs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..losses import PretrainLossConfig

DatasetKind = Literal["synthetic", "n-imagenet", "n-caltech101", "n-mnist"]

_PATH = {"path": True}  #: field metadata: a file system path (resolved against the config file's folder)


class ConfigError(ValueError):
    """A config file, preset name or override is invalid; the message says which key and why."""


@dataclass
class ModelSection:
    """The CLIP whose image tower initialises f_E and whose frozen towers are f_I and f_T."""

    arch: str = "ViT-B-32"  #: open_clip architecture (with a teacher: the architecture the teacher is trained as)
    pretrained: str | None = "openai"  #: open_clip pretrained tag or a weights file; None: random init (unused with a teacher)
    checkpoint: str | None = field(default=None, metadata=_PATH)  #: start from an EventClip checkpoint (ours or vitb.pt)


@dataclass
class DataSection:
    """Paired events and images; which classes are held out of pre-training."""

    kind: DatasetKind = "n-imagenet"
    split: str | None = field(default=None, metadata=_PATH)  #: YAML class split (``unseen`` names); None: none held out
    event_augment: bool = True  #: the dataset's official event augmentation on training windows (none for synthetic)
    num_events: int | None = None  #: events per window (None: the dataset's official number)
    # real datasets (event files and images on disk)
    train_list: str | None = field(default=None, metadata=_PATH)  #: training list file
    val_list: str | None = field(default=None, metadata=_PATH)  #: validation list (model selection; also the report)
    test_list: str | None = field(default=None, metadata=_PATH)  #: report list (None: ``val_list``)
    labels_file: str | None = field(default=None, metadata=_PATH)  #: class file: Labels.json / EventBind JSON
    root: str | None = field(default=None, metadata=_PATH)  #: base of relative list entries
    path_prefix: tuple[str, str] | None = None  #: (old, new) rewrite of list entries' leading prefix
    image_root: str | None = field(default=None, metadata=_PATH)  #: N-ImageNet: ImageNet split folder
    # synthetic glyphs (generated, no files)
    classes: str | list[str] = "glyphs"  #: class group (all, glyphs, digits, letters, shapes) or names
    train_samples_per_class: int = 100
    val_samples_per_class: int = 20
    test_samples_per_class: int = 50
    seed: int = 0  #: training instances (validation and test use seed + 1 and seed + 2)

    def __post_init__(self) -> None:
        if self.kind != "synthetic":
            missing = [n for n in ("train_list", "val_list", "labels_file") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"data.kind {self.kind!r} needs {', '.join('data.' + m for m in missing)} "
                                 "(the dataset's list and class files; see training/configs/README.md)")
        for name in ("train_samples_per_class", "val_samples_per_class", "test_samples_per_class"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclass
class FramesSection:
    """How a window's events become f_E's input frame (events.frames.FrameConfig at the model's size)."""

    representation: Literal["paper", "official"] = "official"
    clamp: float | None = None  #: cap on per-pixel counts (official: N-Caltech101 20, N-MNIST 10)
    augment: bool = True  #: official RandomResizedCrop + horizontal flip of training frames
    crop_scale: tuple[float, float] = (0.45, 1.0)  #: area range of the crop (official crop_min 0.45)
    hflip_p: float = 0.5


@dataclass
class LossSection(PretrainLossConfig):
    """PretrainLossConfig (weights, temperatures, switches) plus which prompts enter L_zs."""

    zs_prompts: Literal["seen", "all"] = "seen"  #: "all" feeds the held-out classes' prompts too, as the official code


@dataclass
class OptimSection:
    """AdamW and the warmup + half-cosine schedule (official: base_lr 1e-6 x global batch / 256)."""

    base_lr: float = 1e-6  #: LR per 256 samples of global batch
    weight_decay: float = 0.03
    exclude_from_decay: bool = False  #: no decay on biases, norms, embeddings, logit scales (official: decay all)
    warmup_epochs: float = 40.0
    min_lr_ratio: float = 0.0
    epochs: int = 200
    batch_size: int = 32  #: per device
    grad_accum_steps: int = 1
    grad_clip_norm: float | None = None

    def __post_init__(self) -> None:
        if not self.base_lr > 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("need base_lr > 0, weight_decay >= 0 and warmup_epochs >= 0")
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum_steps < 1:
            raise ValueError("epochs, batch_size and grad_accum_steps must be >= 1")


@dataclass
class RuntimeSection:
    """Device, precision, data loading, seeding, and the cadence of validation, logging and checkpoints."""

    device: str = "auto"  #: auto | cpu | cuda (each torchrun rank takes cuda:LOCAL_RANK)
    precision: str = "fp32"  #: fp32 (official) | bf16 | fp16 | auto
    threads: int | None = None  #: torch CPU threads (None: torch's default)
    workers: int = 4  #: DataLoader worker processes (0: load in the training process)
    seed: int = 0
    eval_every_epochs: int | None = 1
    eval_every_steps: int | None = None
    eval_batch_size: int = 64
    best_metric: str = "unseen_top1"  #: validation metric that picks best.safetensors (higher is better)
    log_every_steps: int = 10
    checkpoint_every_steps: int | None = None  #: training states between epoch ends (always at epoch ends)
    keep_last: int = 2
    progress: bool = True  #: tqdm bars
    tensorboard: bool = True


@dataclass
class TeacherConfig:
    """The toy preset's stand-in for pretrained CLIP: a tiny CLIP trained here on glyph images and captions.

    ``classes``: "all" trains it on every class, the held-out ones included, as
    CLIP's own pre-training covered the classes the paper holds out of *event*
    pre-training (its held-out birds are ImageNet classes); "seen" leaves them
    out, which makes every zero-shot number on them chance level (the text tower
    never learnt their names).

    Captions: attribute captions keep the instances of a class apart (the paper's
    instance-level losses need that), but with them the contrastive task is
    mostly solved by size, position and font, and the tiny ViT learns glyph
    identity slowly (26% image zero-shot on 36 classes after 1,000 steps of 128).
    Captioning ``plain_caption_p`` of the items with the bare class prompt, and
    more, smaller steps (2,000 of 64), reached 67% at the same compute.
    """

    classes: Literal["all", "seen"] = "all"
    samples_per_class: int = 600  #: image-caption pairs per class (drawn with ``seed``)
    plain_caption_p: float = 0.3  #: fraction of items captioned with the plain class prompt instead
    val_samples_per_class: int = 10  #: for the image zero-shot accuracy logged per epoch
    seed: int = 1000  #: instances distinct from the event data's (data.seed, + 1, + 2)
    steps: int = 1000
    batch_size: int = 128  #: global batch (split over ranks)
    lr: float = 1e-3  #: peak AdamW LR (not scaled)
    weight_decay: float = 0.1  #: on weight matrices; none on gains, biases, embeddings, logit scale
    warmup_steps: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.samples_per_class < 1 or self.val_samples_per_class < 1:
            raise ValueError("teacher needs steps >= 1, batch_size >= 2 and samples per class >= 1")
        if not self.lr > 0 or not 0 <= self.warmup_steps <= self.steps:
            raise ValueError("teacher needs lr > 0 and 0 <= warmup_steps <= steps")
        if not 0.0 <= self.plain_caption_p <= 1.0:
            raise ValueError("teacher.plain_caption_p must be in [0, 1]")


@dataclass
class PretrainConfig:
    """Everything one pre-training run needs (see the module docstring)."""

    name: str = "pretrain"  #: run name (the report is <name>_report.json)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    frames: FramesSection = field(default_factory=FramesSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    runtime: RuntimeSection = field(default_factory=RuntimeSection)
    teacher: TeacherConfig | None = None  #: train a tiny CLIP first and use it as f_I / f_T (toy preset)

    def __post_init__(self) -> None:
        if self.teacher is not None and self.data.kind != "synthetic":
            raise ValueError("a teacher (tiny CLIP trained here) needs data.kind 'synthetic': it is trained on glyph captions")
        if self.teacher is not None and self.model.checkpoint is not None:
            raise ValueError("give either a teacher or model.checkpoint, not both: both define f_I and f_T")
        if self.data.split is None and self.runtime.best_metric.startswith("unseen"):
            raise ValueError(f"runtime.best_metric {self.runtime.best_metric!r} needs held-out classes (data.split); "
                             "without a split use seen_vs_all_top1")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), as written to config.yaml and into checkpoints."""
        return _plain(dataclasses.asdict(self))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ------------------------------------------------------------------------------------ loading
def load_config(path: str | Path, overrides: list[str] = ()) -> PretrainConfig:
    """A :class:`PretrainConfig` from a YAML file and ``key.path=value`` overrides (applied in order)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of sections, got {type(raw).__name__}")
    _resolve_paths(raw, PretrainConfig, path.resolve().parent)
    for item in overrides:
        apply_override(raw, item)
    try:
        return build(PretrainConfig, raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``key.path=value`` in the raw config mapping; the value is parsed as YAML ("null" is None)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value (e.g. optim.epochs=5), got {item!r}")
    parts = key.strip().split(".")
    cls: Any = PretrainConfig
    node = raw
    for depth, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            where = ".".join(parts[:depth]) or "the config"
            raise ConfigError(f"--set {key}: {where} has no key {part!r}; known: {', '.join(fields)}")
        if depth == len(parts) - 1:
            try:
                node[part] = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f"--set {key}: cannot parse value {text!r} ({exc})") from exc
            return
        sub = _dataclass_in(_hints(cls)[part])
        if sub is None:
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth + 1])} is a value, not a section")
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node, cls = child, sub


def build(cls: type, raw: Any, where: str) -> Any:
    """An instance of dataclass ``cls`` from a mapping, with key and type checks (ConfigError on failure).

    ``where``: the dotted key of the mapping in the config ("" for the whole config), for messages.
    """
    section = where or "the config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{section}: expected a mapping, got {raw!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    hints = _hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}" if where else name) for name, value in raw.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}: {exc}") from exc


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass a field holds (``X`` or ``X | None``), or None for a plain value."""
    for candidate in (tp, *typing.get_args(tp)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build(tp, {} if value is None else value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _resolve_paths(raw: dict[str, Any], cls: type, base: Path) -> None:
    """Make relative path values of a config file's mapping absolute against its folder (in place)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        value = raw.get(f.name)
        if value is None:
            continue
        sub = _dataclass_in(hints[f.name])
        if sub is not None and isinstance(value, dict):
            _resolve_paths(value, sub, base)
        elif f.metadata.get("path") and isinstance(value, str) and not Path(value).expanduser().is_absolute():
            raw[f.name] = str((base / value).resolve())
