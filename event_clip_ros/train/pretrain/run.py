"""A whole pre-training run: (toy teacher,) baselines, event pre-training, ablations, report.

Output folder ``out``:

``config.yaml``                 the resolved configuration
``teacher/``                    toy preset: the teacher's training run and ``teacher.safetensors``
``checkpoints/``, ``metrics.*``, ``summary.json``, ``tensorboard/``   the event pre-training run (engine)
``best.safetensors``            the selected f_E (``runtime.selection``): the best validation
                                ``runtime.best_metric`` on seen-class validation items, or the last epoch
                                (the official best.pt; also when there is no validation set), EventClip format
``final.safetensors``           f_E at the end of this invocation
``ablations/<name>/``           with ``ablations``: the same per loss ablation (L_zs off, L_kl off)
``<name>_report.json`` / ``.md`` zero-shot accuracy on the test set: f_I on the paired images (the upper
                                bound), f_E before pre-training, f_E selected and final (and ablations);
                                headline: held-out items among all class prompts (the official get_acc).
                                Each JSON row also says what it measures: ``stage`` (upper bound, before,
                                after), ``loss`` (full loss or the ablation), ``checkpoint`` (validation /
                                last) and ``selected`` (the checkpoint kept as best.safetensors)

Launched by torchrun every rank trains; rank 0 evaluates and writes. ``resume="auto"``
continues every stage from its newest checkpoint (a finished stage is kept as is).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ...atomic_files import atomic_write_text
from ...model.checkpoint import load_checkpoint, save_checkpoint
from ...model.event_clip import EventClip
from ...model.factory import ModelSpec, create_event_clip
from ..data import FrameAugmentConfig
from ..distributed import DistEnv, barrier, cleanup, init_distributed
from ..engine import BestPolicy, TrainState, build_loader, build_trainer, seed_everything
from ..engine.sampler import resumable_sampler
from ..inputs import event_normalisation
from ..selection import Selection, resolve_selection
from ..threads import apply_threads
from .config import PretrainConfig
from .data import PairedCollate, RunData, build_run_data
from .evaluation import HEADLINE_METRIC, ValidationProbe, ZeroShotProbe, chance_metrics
from .report import deviations, write_report
from .step import PretrainModule, PretrainStep, freeze_parameters, prompt_embeddings
from .teacher import ensure_teacher, use_teacher

log = logging.getLogger(__name__)

#: Loss ablations of the paper's Figure 4: folder name -> (report label, PretrainLossConfig switches).
ABLATIONS: dict[str, tuple[str, dict[str, bool]]] = {
    "no_zs": ("without L_zs", {"use_zs": False}),
    "no_kl": ("without L_kl", {"use_kl": False}),
}
BEST_FILE, FINAL_FILE = "best.safetensors", "final.safetensors"


@dataclass(frozen=True)
class RunOptions:
    """How to run a config (command-line choices that are not part of the experiment)."""

    out_dir: Path
    resume: str | None = None  #: None: fresh; "auto": continue every stage from its newest checkpoint
    max_steps: int | None = None  #: stop event pre-training after this many optimiser steps (the teacher is not cut)
    ablations: bool = False  #: also train the loss ablations
    teacher: Path | None = None  #: toy preset: use this teacher checkpoint (trained by another run with the same
    #: teacher settings, e.g. a sweep's shared teacher; any runtime seed) instead of training or caching one in ``out_dir``


@dataclass
class EventRun:
    """What one event pre-training produced."""

    out_dir: Path
    state: TrainState
    total_steps: int
    selection: Selection

    @property
    def completed(self) -> bool:
        return self.state.step >= self.total_steps


def run(cfg: PretrainConfig, options: RunOptions) -> dict[str, Any] | None:
    """Run ``cfg``; returns the report on rank 0 (None on other ranks)."""
    env = init_distributed(device=cfg.runtime.device)
    try:
        return _run(cfg, options, env)
    finally:
        cleanup()


def _run(cfg: PretrainConfig, options: RunOptions, env: DistEnv) -> dict[str, Any] | None:
    started = time.monotonic()
    threads = apply_threads(cfg.runtime.threads, env)
    out = options.out_dir
    main = env.rank == 0
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if cfg.teacher is None:
        teacher = None
    elif options.teacher is not None:
        teacher = use_teacher(cfg, options.teacher)
    else:
        teacher = ensure_teacher(cfg, out / "teacher", env, options.resume)

    model = base_model(cfg, teacher, env)
    data = build_run_data(cfg.data, model.meta.input_size)
    log.info("%d classes (%d held out); %d training items of the seen classes; validation: %s; test: %d items",
             len(data.classes), len(data.unseen), len(data.train), data.val_source or "none", len(data.test))
    test = ZeroShotProbe(data.test, data.prompts, data.seen, data.unseen, cfg.runtime.eval_batch_size, cfg.runtime.workers)
    rows: list[dict[str, Any]] = []
    if main:
        log.info("evaluating f_I and the untrained f_E on the test set")
        rows.append(_row("f_I on the paired images (upper bound)", "images", test.images(model), stage="upper bound"))
        rows.append(_row("f_E before event pre-training", "events", test.events(model), stage="before"))

    runs = {"full loss": train_event_encoder(cfg, model, data, out, env, options)}
    if options.ablations:
        for name, (label, switches) in ABLATIONS.items():
            # ignore: mypy matches the ** of bools against every LossSection field; the switches are its bool fields
            variant = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, **switches))  # type: ignore[arg-type]
            runs[label] = train_event_encoder(variant, base_model(variant, teacher, env), data, out / "ablations" / name,
                                              env, options)
    if not main:
        barrier()
        return None
    for label, result in runs.items():
        best = result.out_dir / BEST_FILE
        if result.selection.mode == "validation" and best.is_file():
            metrics = test.events(load_checkpoint(best).place(env.device, cfg.runtime.precision))
            rows.append(_row(f"f_E after, {label}, selected by validation (step {result.state.best_step})", "events",
                             metrics, stage="after", loss=label, checkpoint="validation", selected=True,
                             step=result.state.best_step))
        final = load_checkpoint(result.out_dir / FINAL_FILE).place(env.device, cfg.runtime.precision)
        last_selected = result.selection.mode == "last"
        kept = ", selected" if last_selected else ""
        rows.append(_row(f"f_E after, {label}, last epoch{kept} (step {result.state.step})", "events", test.events(final),
                         stage="after", loss=label, checkpoint="last", selected=last_selected, step=result.state.step))
    selection = runs["full loss"].selection
    report = {
        "name": cfg.name,
        "completed": all(r.completed for r in runs.values()),
        "wall_s": time.monotonic() - started,
        "device": str(env.device),
        "world_size": env.world_size,
        "threads": threads,
        "classes": {"count": len(data.classes), "seen": [data.classes[i] for i in data.seen],
                    "unseen": [data.classes[i] for i in data.unseen]},
        "test_items": len(data.test),
        "headline": HEADLINE_METRIC,
        "protocol": ("held-out items ranked among all class prompts (headline, the official get_acc); the N-way "
                     "figure among the held-out prompts only is secondary"),
        "validation_items": 0 if data.val is None else len(data.val),
        "selection": selection.to_dict(),
        "event_normalisation": {"frame": dict(model.meta.frame), "mean": model.meta.event_mean, "std": model.meta.event_std},
        "teacher": (load_checkpoint(teacher).meta.training or {}).get("val") if teacher is not None else None,
        "teacher_file": None if teacher is None else str(teacher),
        "chance": chance_metrics(len(data.classes), data.seen, data.unseen),
        "rows": rows,
        "deviations": deviations(cfg),
        "config": cfg.to_dict(),
    }
    paths = write_report(out, cfg.name, report)
    log.info("report: %s", ", ".join(map(str, paths)))
    barrier()
    return report


def _row(name: str, modality: str, metrics: dict[str, float], *, stage: str, loss: str | None = None,
         checkpoint: str | None = None, selected: bool | None = None, step: int | None = None) -> dict[str, Any]:
    """A report row: its display name, input and metrics, and what it measures (``stage``: "upper bound",
    "before" or "after"; after training: ``loss`` label, ``checkpoint`` "validation" or "last", whether it is the
    ``selected`` checkpoint (best.safetensors), and its optimiser ``step``)."""
    row: dict[str, Any] = {"name": name, "input": modality, "metrics": metrics, "stage": stage}
    if stage == "after":
        row.update(loss=loss, checkpoint=checkpoint, selected=bool(selected), step=step)
    return row


def base_model(cfg: PretrainConfig, teacher: Path | None, env: DistEnv) -> EventClip:
    """The CLIP to pre-train from (teacher, checkpoint, or open_clip arch + weights), f_E = a copy of f_I,
    with the configured frame representation and ``model.frozen`` layers, on this rank's device."""
    checkpoint = str(teacher) if teacher is not None else cfg.model.checkpoint
    spec = ModelSpec(arch=cfg.model.arch, pretrained=cfg.model.pretrained, checkpoint=checkpoint, device=str(env.device),
                     precision=cfg.runtime.precision)
    model = create_event_clip(spec)
    frame = {"representation": cfg.frames.representation, "clamp": cfg.frames.clamp, "keep_aspect": False}
    source = f"toy teacher {teacher.name}" if teacher is not None else model.meta.pretrained
    model.meta = dataclasses.replace(model.meta, pretrained=source)
    model.set_event_input(frame, *event_normalisation(model, cfg.frames.representation, cfg.frames.normalize))
    if cfg.model.frozen:
        frozen = freeze_parameters(model.event_tower, cfg.model.frozen)
        total = sum(p.numel() for p in model.event_tower.parameters())
        log.info("f_E: %s frozen at their initial values (%d of %d parameters, %.0f%%)", ", ".join(cfg.model.frozen),
                 frozen, total, 100 * frozen / total)
    return model


def train_event_encoder(cfg: PretrainConfig, model: EventClip, data: RunData, out_dir: Path, env: DistEnv,
                        options: RunOptions) -> EventRun:
    """Pre-train ``model.event_tower`` on ``data.train`` with the engine; exports best and final checkpoints."""
    seed_everything(cfg.runtime.seed, env.rank)
    opt, rt = cfg.optim, cfg.runtime
    assert opt.batch_size is not None  # PretrainConfig requires it
    module = PretrainModule(model.event_tower, cfg.loss).to(env.device)
    loader = build_loader(data.train, batch_size=opt.batch_size, collate_fn=PairedCollate(model.image_preprocess),
                          seed=rt.seed, rank=env.rank, world_size=env.world_size, num_workers=rt.workers,
                          pin_memory=env.device.type == "cuda")
    data.train.follow(resumable_sampler(loader))
    text = None
    if cfg.loss.use_zs:
        text = prompt_embeddings(model, data.prompts if cfg.loss.zs_prompts == "all" else data.seen_prompts())
    frame_augment = FrameAugmentConfig(scale=cfg.frames.crop_scale, hflip_p=cfg.frames.hflip_p) if cfg.frames.augment else None
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence([rt.seed, env.rank, 1]).generate_state(1)[0]))
    selection = resolve_selection(rt.selection, rt.best_metric, data.val_source,
                                  0 if data.val is None else len(data.val))
    val = None if data.val is None else ValidationProbe(data.val, data.prompts, data.seen, rt.eval_batch_size, rt.workers)

    def evaluate() -> dict[str, float]:
        return val.events(model) if val is not None and env.rank == 0 else {}

    def export(path: Path, state: TrainState, metrics: dict[str, float]) -> None:
        record = {**cfg.to_dict(), "export": {"file": path.name, "step": state.step, "epoch": state.epoch, "val": metrics,
                                              "selection": selection.to_dict()}}
        save_checkpoint(model, path, training=record)

    trainer = build_trainer(
        opt, rt, output_dir=out_dir, module=module, loader=loader, dist_env=env,
        step_fn=PretrainStep(model, text, frame_augment, generator), eval_fn=None if val is None else evaluate,
        on_best=lambda state, metrics: export(out_dir / BEST_FILE, state, dict(metrics)),
        generators={"frame_augment": generator},
        best=BestPolicy(rt.best_metric, "max") if selection.mode == "validation" else None, resume=options.resume,
        max_steps=options.max_steps, eval_every_steps=rt.eval_every_steps if val is not None else None,
        checkpoint_every_steps=rt.checkpoint_every_steps,
        eval_every_epochs=rt.eval_every_epochs if val is not None else None,
    )
    state = trainer.fit()
    if env.rank == 0:
        export(out_dir / FINAL_FILE, state, trainer.last_eval)
        if selection.mode == "last":
            export(out_dir / BEST_FILE, state, trainer.last_eval)
    barrier()
    return EventRun(out_dir, state, trainer.total_steps, selection)
