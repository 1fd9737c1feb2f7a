"""A fine-tuning run (torchrun-aware) and a training-free evaluation, each writing ``eval.json``.

Output folder ``out``:

``config.yaml``                 the resolved configuration
``kshot.json``                  the training subset (shots, seed, items per class; k shots: indices, item names)
``checkpoints/``, ``metrics.*``, ``summary.json``, ``tensorboard/``   the training run (engine; val/top1,
                                val/top5, val/mean_per_class per epoch, train/loss, train/lr)
``best.safetensors``            the selected f_E (``runtime.selection``): the first best validation top-1
                                (among all classes) on the validation split, or the last epoch (the
                                official best.pt; also without a validation split), EventClip format; its
                                training record holds this configuration, the subset and the selection
``eval.json``                   zero_shot / few_shot (starting checkpoint) and fine_tuned (selected) accuracy
                                on the test split (see the package docstring); never used for selection

Launched by torchrun every rank trains; rank 0 evaluates (validation included: its result is broadcast
by the trainer) and writes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ...atomic_files import atomic_write_text
from ...events.frames import build_frames_torch
from ...model.checkpoint import load_any_checkpoint, load_checkpoint, save_checkpoint
from ...model.event_clip import EventClip
from ...model.zero_shot import ensemble_text_weights
from ..data import EpochSubset, FrameAugmentConfig, augment_frames, collate_samples, recommended_frame_config
from ..distributed import DistEnv, barrier, cleanup, init_distributed
from ..engine import BestPolicy, CheckpointDir, Trainer, TrainState, build_loader, build_trainer, seed_everything
from ..engine.sampler import resumable_sampler
from ..inputs import event_normalisation
from ..losses import prediction_loss
from ..selection import Selection, resolve_selection
from ..threads import apply_threads
from .config import FinetuneConfig
from .data import FinetuneData, build_data, requested_batch_size
from .evaluation import MethodComparison

log = logging.getLogger(__name__)

BEST_NAME = "best.safetensors"
EVAL_NAME = "eval.json"
KSHOT_NAME = "kshot.json"
CONFIG_NAME = "config.yaml"


class EventEncoder(nn.Module):
    """f_E as the trainer's module: event frames (B, H, W) -> unnormalised embeddings (B, D).

    It holds the whole :class:`EventClip`; f_I and f_T are frozen, so they stay out of training states and
    of DDP's gradient sync. Calling this module (not the model) lets DDP see the forward pass.
    """

    def __init__(self, model: EventClip) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model.encode_frames(frames, normalize=False)


def load_model(cfg: FinetuneConfig, device: str | torch.device | None = None) -> EventClip:
    """The starting checkpoint, placed, f_E trainable and f_I / f_T frozen, with the frames of ``cfg.frame``."""
    if cfg.checkpoint is None:
        raise ValueError("no checkpoint given: --checkpoint (our .safetensors or the paper's vitb.pt / vitl.pt)")
    model = load_any_checkpoint(cfg.checkpoint)
    if cfg.frame == "dataset":
        frame = recommended_frame_config(cfg.data.kind, model.meta.input_size)
        new = {"representation": frame.representation, "clamp": frame.clamp, "keep_aspect": frame.keep_aspect}
        if new["representation"] == model.meta.frame.get("representation"):  # f_E's input statistics stay
            model.set_event_input(new, model.meta.event_mean, model.meta.event_std)
        else:  # another representation: the statistics that go with it (model.event_clip.event_input_stats)
            model.set_event_input(new, *event_normalisation(model, frame.representation))
    model.clip.requires_grad_(False)
    model.event_tower.requires_grad_(True)
    return model.place(cfg.runtime.device if device is None else device, cfg.runtime.precision)


def run_finetune(cfg: FinetuneConfig, out: str | Path, resume: str | None = None) -> dict[str, Any] | None:
    """Fine-tune f_E, export ``best.safetensors`` and write ``eval.json`` (its content is returned on rank 0).

    ``resume``: None (fresh; an output folder with training states is an error), ``"auto"`` (the newest
    state in ``out``, or fresh) or a training-state file.
    """
    out = Path(out)
    if cfg.k == 0:
        raise ValueError("shots=0 is zero-shot evaluation only: add --eval-only")
    if resume is None and CheckpointDir(out / "checkpoints").step_checkpoints():  # before anything in out is rewritten
        raise FileExistsError(f"{out} holds the training states of an earlier run")
    env = init_distributed(device=cfg.runtime.device)
    main = env.rank == 0
    try:
        threads = apply_threads(cfg.runtime.threads, env)
        seed_everything(cfg.runtime.seed, env.rank)
        model = load_model(cfg, env.device)
        data = build_data(cfg, model.meta.input_size, env.world_size)
        selection = resolve_selection(cfg.runtime.selection, "top1", data.val_source, int(data.val_indices.size))
        comparison = MethodComparison(data, batch_size=cfg.runtime.eval_batch_size, workers=cfg.runtime.workers,
                                      progress=cfg.runtime.progress and main)
        record = _training_record(cfg, data, model, selection)
        if main:
            out.mkdir(parents=True, exist_ok=True)
            _write_config(out, cfg, resuming=resume is not None)
            _write_json(out / KSHOT_NAME, data.kshot_record(cfg))
            requested = requested_batch_size(cfg)
            capped = "" if data.batch_size == requested else f" (capped from {requested}: items per rank)"
            log.info("%s: %d training items (%s shots, %s classes), batch %d per device%s; %d target classes ranked "
                     "among all %d; validation: %s; evaluation on %s (%d items); %s", cfg.data.kind,
                     data.train_indices.size, cfg.shots, data.classes_mode, data.batch_size, capped, len(data.targets),
                     len(data.classes), data.val_source or "none", data.eval_split, data.eval_indices.size,
                     selection.statement())
            baseline = comparison.zero_and_few_shot(model, cfg.few_shot_alpha)
        barrier()

        trainer = _trainer(cfg, out, resume, env, model, data, comparison, record, selection)
        state = trainer.fit()
        if main and selection.mode == "last":
            last = {"selection": "last", "step": state.step, "epoch": state.epoch, "val": dict(trainer.last_eval)}
            save_checkpoint(model, out / BEST_NAME, training={**record, "best": last})
        barrier()
        if not main:
            return None
        best_path = out / BEST_NAME
        if not best_path.is_file():
            raise RuntimeError(f"no {BEST_NAME} in {out}: no validation gave a finite top-1")
        best = load_checkpoint(best_path).place(env.device, cfg.runtime.precision)
        assert best.meta.training is not None  # exported with its training record
        fine_tuned = comparison.zero_shot_report(best)
        report = {**_eval_header(cfg, data, model, selection), "threads": threads, **baseline,
                  "fine_tuned": {**fine_tuned, "checkpoint": str(best_path), "steps_trained": state.step,
                                 "best": best.meta.training["best"]}}
        _write_json(out / EVAL_NAME, report)
        return report
    finally:
        cleanup()


def _trainer(cfg: FinetuneConfig, out: Path, resume: str | None, env: DistEnv, model: EventClip, data: FinetuneData,
             comparison: MethodComparison, record: dict[str, Any], selection: Selection) -> Trainer:
    """The engine's trainer over the k-shot subset with L_pred, validating and exporting on rank 0."""
    o, rt = cfg.optim, cfg.runtime
    main = env.rank == 0
    text = ensemble_text_weights(model, [[p] for p in data.prompts]).clone()  # an inference tensor: cloned to enter autograd
    assert data.train is not None  # built with a training split (shots)
    subset = EpochSubset(data.train, data.train_indices)
    loader = build_loader(subset, batch_size=data.batch_size, collate_fn=collate_samples, shuffle=True, seed=rt.seed,
                          rank=env.rank, world_size=env.world_size, drop_last=True, num_workers=rt.workers)
    subset.follow(resumable_sampler(loader))
    crop_gen = torch.Generator().manual_seed(rt.seed * 1_000_003 + env.rank)
    crop = FrameAugmentConfig() if cfg.data.frame_augment else None

    def step(encoder: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        frames = build_frames_torch(batch["events"], batch["size"], model.frame_config, model.device)
        if crop is not None:
            frames = augment_frames(frames, crop_gen, crop)
        return prediction_loss(encoder(frames), text, batch["label"].to(model.device)), {}

    def validate() -> dict[str, float]:
        if not main:  # the trainer broadcasts rank 0's result
            return {"top1": math.nan}
        return comparison.zero_shot(model, "val", weights=text).as_metrics()

    def export_best(state: TrainState, metrics: Mapping[str, float]) -> None:
        best = {"selection": "validation", "metric": "val/top1", "value": metrics["top1"], "step": state.step,
                "epoch": state.epoch, "val": dict(metrics)}
        save_checkpoint(model, out / BEST_NAME, training={**record, "best": best})

    has_val = data.val is not None
    return build_trainer(
        o, rt, output_dir=out, module=EventEncoder(model), loader=loader, step_fn=step, dist_env=env,
        eval_fn=validate if has_val else None, on_best=export_best, generators={"frame_crop": crop_gen},
        best=BestPolicy("top1", "max") if selection.mode == "validation" else None, resume=resume,
        max_steps=rt.max_steps, eval_every_epochs=rt.eval_every_epochs if has_val else None,
    )


def run_eval_only(cfg: FinetuneConfig, out: str | Path) -> dict[str, Any]:
    """Zero-shot and few-shot-prototype accuracy of ``cfg.checkpoint``, no training; writes ``eval.json``."""
    out = Path(out)
    threads = apply_threads(cfg.runtime.threads)
    model = load_model(cfg)
    data = build_data(cfg, model.meta.input_size)
    comparison = MethodComparison(data, batch_size=cfg.runtime.eval_batch_size, workers=cfg.runtime.workers,
                                  progress=cfg.runtime.progress)
    report = {**_eval_header(cfg, data, model), "threads": threads,
              **comparison.zero_and_few_shot(model, cfg.few_shot_alpha)}
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / KSHOT_NAME, data.kshot_record(cfg))
    _write_json(out / EVAL_NAME, report)
    return report


def _training_record(cfg: FinetuneConfig, data: FinetuneData, model: EventClip, selection: Selection) -> dict[str, Any]:
    """The exported checkpoint's training record (the ``best`` entry is added on export)."""
    return {
        "stage": "finetune",
        "loss": "L_pred",
        "base_checkpoint": str(cfg.checkpoint),
        "base_training": model.meta.training,
        "config": cfg.to_dict(),
        "classes": data.target_names,
        "kshot": data.kshot_record(cfg),
        "selection": selection.to_dict(),
    }


def _eval_header(cfg: FinetuneConfig, data: FinetuneData, model: EventClip,
                 selection: Selection | None = None) -> dict[str, Any]:
    header = {
        "checkpoint": str(cfg.checkpoint),
        "data": cfg.data.kind,
        "split": data.eval_split,
        "shots": cfg.shots,
        "kshot_seed": cfg.kshot_seed if cfg.k else None,
        "classes": data.classes_mode,
        "class_names": data.target_names,
        "ranked_among": len(data.classes),
        "protocol": (f"each test item of the {len(data.targets)} target classes is ranked among all {len(data.classes)} "
                     "class prompts (top1 / top5, the official get_acc)"
                     + ("; 'nway' ranks it among the targets only (easier, not the paper's protocol)" if data.nway else "")),
        "chance_top1": 1.0 / len(data.classes),
        "eval_items": int(data.eval_indices.size),
        "train_items": int(data.train_indices.size),
        "val_items": int(data.val_indices.size),
        "frame": dict(model.meta.frame),
        "event_normalisation": {"mean": model.meta.event_mean, "std": model.meta.event_std},
    }
    if data.nway:
        header["chance_top1_nway"] = 1.0 / len(data.targets)
    if selection is not None:
        header["selection"] = selection.to_dict()
    return header


def _write_config(out: Path, cfg: FinetuneConfig, resuming: bool) -> None:
    """config.yaml; a resumed run whose configuration differs from the one there gets a warning listing the keys."""
    path = out / CONFIG_NAME
    new = _flatten(cfg.to_dict())
    if resuming and path.is_file():
        try:
            old = _flatten(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError):
            old = {}
        changed = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k))
        if changed:
            log.warning("resuming with settings that differ from %s: %s", path, ", ".join(changed))
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
