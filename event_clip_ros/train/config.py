"""Typed run configurations: dataclass trees read from YAML presets, with ``--set key=value`` overrides.

A run's configuration (``training/pretrain.py``, ``training/finetune.py``) is a root dataclass
(a :class:`RunConfig`) whose fields are values or sections, each section a dataclass. One way
builds it, for every run type:

1. :func:`read_preset` reads a YAML file into a raw nested mapping. A preset may name another with
   ``extends:`` (a file relative to it; the extending preset wins key by key), and a relative value
   of a path field (declared with :func:`path_field`) is made absolute against the folder of the file
   that states it.
2. :func:`parse_override` turns ``--set key.path=value`` text into ``(key, value)``, the value read as
   YAML (``null``, ``true``, ``5``, ``[a, b]``); paths given this way stay relative to the working
   directory.
3. :func:`load` applies ``(key, value)`` overrides in order (:func:`set_key`: an unknown key is an
   error listing the known ones) and :func:`build` makes the dataclass tree, checking keys against the
   fields and values against the field types (``1e-4`` is accepted for a float although YAML reads it
   as a string); the dataclasses' own ``__post_init__`` checks become :class:`ConfigError`\\s naming
   the section.

:class:`OptimSection` and :class:`RuntimeSection` are the sections every run shares (AdamW with the
warmup + half-cosine schedule; device, data loading and the loop's cadence); a run type subclasses
them only for the fields and defaults that differ. Its ``data`` section is its own (the files a run
reads differ), checked by :func:`check_data_section`.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml

T = TypeVar("T")

EXTENDS_KEY = "extends"  #: preset key naming the preset it extends

DataKind = Literal["synthetic", "n-imagenet", "n-caltech101", "n-mnist", "n-cars", "dvs-gesture"]
DATA_KINDS: tuple[str, ...] = get_args(DataKind)


class ConfigError(ValueError):
    """A config file, preset name or override is invalid; the message says which key and why."""


def path_field(default: str | None = None) -> Any:
    """A dataclass field holding a file system path: relative in a preset means relative to the preset's folder."""
    return field(default=default, metadata={"path": True})


# ------------------------------------------------------------------------------------ shared sections
@dataclass
class OptimSection:
    """AdamW and the warmup + half-cosine schedule; defaults: official pre-training (base_lr 1e-6 x batch / 256)."""

    base_lr: float = 1e-6  #: LR per 256 samples of global batch
    weight_decay: float = 0.03
    exclude_from_decay: bool = False  #: no decay on biases, norms, embeddings, logit scales (official: decay all)
    warmup_epochs: float = 40.0
    min_lr_ratio: float = 0.0
    epochs: int = 200
    batch_size: int | None = 32  #: per device; None: chosen by the run (fine-tuning), refused by pre-training
    grad_accum_steps: int = 1
    grad_clip_norm: float | None = None

    def __post_init__(self) -> None:
        if not self.base_lr > 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("need base_lr > 0, weight_decay >= 0 and warmup_epochs >= 0")
        if self.epochs < 1 or self.grad_accum_steps < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ValueError("epochs, batch_size and grad_accum_steps must be >= 1")


@dataclass
class RuntimeSection:
    """Device, precision, data loading, seeding, and the cadence of validation, logging and checkpoints."""

    device: str = "auto"  #: auto | cpu | cuda (each torchrun rank takes cuda:LOCAL_RANK)
    precision: str = "fp32"  #: fp32 (official) | bf16 | fp16 | auto
    threads: int | Literal["auto"] | None = "auto"  #: torch CPU threads: auto (by cores and load, see threads.py),
    #: a number, or None (torch's default: every core, whatever the load)
    workers: int = 0  #: DataLoader worker processes (0: load in the training process)
    seed: int = 0  #: weights' RNG streams, data order, training windows and augmentation
    selection: Literal["auto", "validation", "last"] = "auto"  #: which state is kept as best.safetensors: the best
    #: validation epoch, the last epoch (the official best.pt), or auto: validation when there is a validation set,
    #: else the last epoch (said in the log and the report). The test data never selects.
    eval_every_epochs: int | None = 1  #: validate after every this many epochs (None: not at epoch ends)
    eval_batch_size: int = 64
    log_every_steps: int = 10
    keep_last: int = 2  #: resumable training states kept (plus the best)
    progress: bool = True  #: tqdm bars
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for name in ("eval_every_epochs", "eval_batch_size", "log_every_steps", "keep_last"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        if isinstance(self.threads, int) and self.threads < 1:
            raise ValueError("threads must be >= 1, 'auto' or null")


def check_data_section(data: Any, files_hint: str, required: tuple[str, ...] = ("train_list", "test_list", "labels_file"),
                       min_test_samples: int = 1) -> None:
    """The checks every run's ``data`` section shares (ValueError): a real dataset (not ``synthetic``) names the
    files in ``required`` (``files_hint``: how to give them), and the synthetic splits have at least one training
    item per class, ``min_test_samples`` test items and none or more validation items (0: no validation set)."""
    if data.kind != "synthetic":
        missing = [n for n in required if getattr(data, n) is None]
        if missing:
            raise ValueError(f"data.kind {data.kind!r} needs {', '.join('data.' + m for m in missing)} "
                             f"({files_hint}; see training/configs/README.md)")
    for name, minimum in (("train_samples_per_class", 1), ("val_samples_per_class", 0),
                          ("test_samples_per_class", min_test_samples)):
        if getattr(data, name) < minimum:
            raise ValueError(f"{name} must be >= {minimum}")


class RunConfig:
    """Base of a run's root config dataclass."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), as written to config.yaml and into checkpoints."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]  # subclasses are dataclasses


# ------------------------------------------------------------------------------------ loading
def read_preset(path: str | Path, cls: type) -> dict[str, Any]:
    """A preset file as a raw nested mapping for config class ``cls``, after its ``extends:`` chain, with
    relative path fields made absolute against the folder of the file that states them."""
    merged: dict[str, Any] = {}
    chain: list[Path] = []
    current: Path | None = Path(path)
    while current is not None:
        current = current.resolve()
        if current in chain:
            raise ConfigError(f"{chain[0]}: {EXTENDS_KEY!r} loops back to {current}")
        chain.append(current)
        try:
            raw = yaml.safe_load(current.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {current}: {exc}") from exc
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ConfigError(f"{current}: expected a YAML mapping of sections, got {type(raw).__name__}")
        parent = raw.pop(EXTENDS_KEY, None)
        _resolve_paths(raw, cls, current.parent)
        merged = _merge(merged, raw)  # the files read so far extend this one: they win
        current = None if parent is None else current.parent / str(parent)
    return merged


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.base_lr=1e-5"`` -> ``("optim.base_lr", "1e-5")``: the value read as YAML (null, true, [a, b], 5)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value (e.g. optim.epochs=5), got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key.strip()}: cannot parse value {value!r} ({exc})") from exc


def set_key(raw: dict[str, Any], cls: type, key: str, value: Any) -> None:
    """Set the dotted ``key`` of config class ``cls`` to ``value`` in ``raw`` (in place; missing sections are made).

    The key path is checked against the dataclass fields; the value is checked later, by :func:`build`.
    """
    parts = key.split(".")
    node, section = raw, cls
    for depth, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(section)]
        if part not in names:
            where = ".".join(parts[:depth]) or "the config"
            raise ConfigError(f"cannot set {key}: unknown key ({where} has no key {part!r}; known: {', '.join(names)})")
        if depth == len(parts) - 1:
            node[part] = value
            return
        dotted = ".".join(parts[:depth + 1])
        sub = _dataclass_in(_hints(section)[part])
        if sub is None:
            raise ConfigError(f"cannot set {key}: {dotted} is a value, not a section")
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {dotted} is {child!r}, not a mapping")
        node, section = child, sub


def load(cls: type[T], raw: Mapping[str, Any], overrides: Iterable[tuple[str, Any]] = (),
         source: str | Path | None = None) -> T:
    """A checked ``cls`` from a raw mapping (left unchanged) and ``(dotted.key, value)`` overrides, applied in order.

    ``source``: the preset file, named in the messages of invalid keys and values.
    """
    tree = copy.deepcopy(dict(raw))
    for key, value in overrides:
        set_key(tree, cls, key, value)
    try:
        return build(cls, tree)
    except ConfigError as exc:
        if source is None:
            raise
        raise ConfigError(f"{source}: {exc}") from exc


def build(cls: type[T], raw: Any, where: str = "") -> T:
    """An instance of dataclass ``cls`` from a mapping, with key and type checks (ConfigError on failure).

    ``where``: the dotted key of the mapping in the config ("" for the whole config), for messages.
    """
    section = where or "the config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{section}: expected a mapping, got {raw!r}")
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    hints = _hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}" if where else name) for name, value in raw.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}: {exc}") from exc


# ------------------------------------------------------------------------------------ helpers
def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _merge(top: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top`` recursively (mappings merged key by key), as new dicts."""
    out = {k: _merge(v, {}) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in top.items():
        if isinstance(value, Mapping):
            out[key] = _merge(value, out[key] if isinstance(out.get(key), Mapping) else {})
        else:
            out[key] = value
    return out


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
    """Make relative path values of a preset's mapping absolute against its folder (in place)."""
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
