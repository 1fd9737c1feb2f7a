"""The toy preset's CLIP: a tiny open_clip model trained here on glyph images and their captions.

Pretrained CLIP weights cannot be downloaded in every environment (and a
ViT-B/32 does not train on two CPU cores anyway), so the toy preset first
trains its own f_I and f_T: open_clip's CLIP loss over synthetic glyph images
(:class:`~event_clip_ros.train.data.SyntheticGlyphs`, rendering only, no
events) and their attribute captions ("a small bold letter k, tilted left, at
the top left, in a serif font"). Captions that name only the class would map
every instance of a class to one text embedding, which makes the paper's
instance-level losses ill-posed (paper-method.md section 6).

The teacher is trained with the engine's :class:`~event_clip_ros.train.engine.Trainer`
in ``<out>/teacher`` (resumable, metrics files) and exported as an EventClip
checkpoint ``<out>/teacher/teacher.safetensors`` whose ``training`` metadata
records what defines it. A later run with the same output folder and the same
teacher settings reuses that file (ablations, reruns); different settings are
refused rather than silently mixed. :func:`use_teacher` takes a teacher trained by
another run (a sweep's shared teacher, :mod:`.sweep`): same settings, any runtime seed.

Under DDP each rank computes the CLIP loss of the whole global batch from
features gathered with gradients (:func:`~event_clip_ros.train.distributed.gather_with_grad`):
the gathers' backward sums the ranks' gradients and DDP averages them, which
gives exactly the single-process gradient of the global batch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.loss import ClipLoss
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import Dataset

from ...model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ...model.event_clip import ClipModel, ModelMeta
from ...model.factory import assemble, make_image_preprocess, model_config
from ...sim.glyphs import caption, class_prompt, render, resolve_classes
from ...sim.seeding import keyed_rng
from ..data import ClassSplit, SyntheticConfig, SyntheticGlyphs
from ..distributed import DistEnv, barrier, gather_with_grad
from ..engine import OptimizerConfig, Trainer, TrainerConfig, WarmupCosine, build_loader, build_optimizer, seed_everything
from ..engine.evaluation import zero_shot_accuracy
from .config import ConfigError, PretrainConfig, TeacherConfig
from .data import to_pil

log = logging.getLogger(__name__)

TEACHER_FILE = "teacher.safetensors"
_VAL_SEED_OFFSET = 1
_CAPTION_STREAM = 7  #: keyed-RNG stream of the plain-caption draw


class GlyphCaptions(Dataset):
    """Image-caption pairs of synthetic glyphs: the images :class:`SyntheticGlyphs` pairs with its events.

    The caption describes the instance (:func:`~event_clip_ros.sim.glyphs.caption`), or, for a
    fraction ``plain_caption_p`` of the items (drawn once per item), is the plain class prompt.
    """

    def __init__(self, classes: list[str], image_size: int, samples_per_class: int, seed: int,
                 plain_caption_p: float = 0.0) -> None:
        self.glyphs = SyntheticGlyphs(SyntheticConfig(image_size=image_size, classes=tuple(classes),
                                                      samples_per_class=samples_per_class, seed=seed))
        self.image_size = image_size
        self.plain_caption_p = plain_caption_p

    def __len__(self) -> int:
        return len(self.glyphs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        params = self.glyphs.params(index)
        image = np.rint(render(params, self.image_size) * np.float32(255.0)).astype(np.uint8)
        plain = keyed_rng(self.glyphs.seed, index, _CAPTION_STREAM).random() < self.plain_caption_p
        text = class_prompt(params.name) if plain else caption(params)
        return {"image": image, "caption": text, "label": self.glyphs.label(index)}


class CaptionCollate:
    """Preprocessed images (B, 3, H, W) and tokenised captions (B, context) of a batch."""

    def __init__(self, preprocess, tokenizer) -> None:
        self.preprocess = preprocess
        self.tokenizer = tokenizer

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "pixels": torch.stack([self.preprocess(to_pil(it["image"])) for it in items]),
            "tokens": self.tokenizer([it["caption"] for it in items]),
        }


class TeacherStep:
    """``step_fn`` of the teacher: open_clip's symmetric CLIP loss on the global batch."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss = ClipLoss()

    def __call__(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        img, txt, scale = module(batch["pixels"].to(self.device), batch["tokens"].to(self.device))
        with torch.autocast(device_type=self.device.type, enabled=False):  # logits x 100 in fp32 under any autocast
            loss = self.loss(gather_with_grad(img.float()), gather_with_grad(txt.float()), scale.float())
        return loss, {"logit_scale": scale.detach()}


def _teacher(cfg: PretrainConfig) -> TeacherConfig:
    """``cfg.teacher``: the functions here are for configs with a teacher section."""
    if cfg.teacher is None:
        raise ConfigError("the config has no teacher section")
    return cfg.teacher


def teacher_classes(cfg: PretrainConfig) -> list[str]:
    """The classes the teacher learns: every class of the data, or only the seen ones."""
    classes = list(resolve_classes(cfg.data.classes if isinstance(cfg.data.classes, str) else tuple(cfg.data.classes)))
    if _teacher(cfg).classes == "all" or cfg.data.split is None:
        return classes
    seen, _ = ClassSplit.from_yaml(cfg.data.split).indices(classes)
    return [classes[i] for i in seen]


def teacher_record(cfg: PretrainConfig) -> dict[str, Any]:
    """What defines the teacher (compared with a cached teacher's metadata before reusing it)."""
    return {"stage": "toy-teacher", "arch": cfg.model.arch, "classes": teacher_classes(cfg),
            "teacher": dataclasses.asdict(_teacher(cfg)), "seed": cfg.runtime.seed}


def ensure_teacher(cfg: PretrainConfig, out_dir: Path, env: DistEnv, resume: str | None) -> Path:
    """The teacher checkpoint in ``out_dir``: reused when present and made with the same settings, else trained."""
    path = out_dir / TEACHER_FILE
    record = teacher_record(cfg)
    if path.is_file():
        try:
            found = load_checkpoint(path).meta.training or {}
        except CheckpointError as exc:
            raise ConfigError(f"cannot reuse the cached teacher {path}: {exc}; delete it to train a new one") from exc
        if _json_equal(found.get("teacher_record"), record):
            log.info("reusing the teacher in %s", path)
            return path
        raise ConfigError(f"{path} was trained with other settings ({found.get('teacher_record')}); use another --out "
                         f"or delete {out_dir} to train a teacher with {record}")
    _train_teacher(cfg, record, out_dir, env, resume)
    return path


def use_teacher(cfg: PretrainConfig, path: Path) -> Path:
    """``path``, a teacher checkpoint trained by another run, checked to be the teacher ``cfg`` describes apart from
    the runtime seed that initialised it (a sweep shares one teacher across seeds, as the paper's runs share one
    pretrained CLIP). ConfigError when it is missing or was made with other settings."""
    try:
        found = (load_checkpoint(path).meta.training or {}).get("teacher_record")
    except (CheckpointError, OSError) as exc:
        raise ConfigError(f"cannot use the teacher {path}: {exc}") from exc
    want = teacher_record(cfg)
    if not isinstance(found, dict) or not _json_equal({**found, "seed": None}, {**want, "seed": None}):
        raise ConfigError(f"the teacher {path} was trained with other settings ({found}), not {want}")
    log.info("using the teacher %s (initialised with seed %s)", path, found.get("seed"))
    return path


def _json_equal(a: Any, b: Any) -> bool:
    """Equality after a JSON round trip (tuples become lists)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def _train_teacher(cfg: PretrainConfig, record: dict[str, Any], out_dir: Path, env: DistEnv, resume: str | None) -> None:
    tc = _teacher(cfg)
    if tc.batch_size % env.world_size:
        raise ValueError(f"teacher.batch_size {tc.batch_size} must be divisible by the {env.world_size} processes")
    seed_everything(cfg.runtime.seed, env.rank)
    arch = cfg.model.arch
    clip = open_clip.create_model(arch, pretrained=None).to(env.device)
    meta = ModelMeta(model_cfg=model_config(arch), arch=arch, pretrained="none")
    size = meta.input_size
    if size[0] != size[1]:
        raise ValueError(f"the teacher's glyph images are square; {arch} takes {size[0]} x {size[1]}")
    tokenizer = open_clip.get_tokenizer(arch)
    preprocess = make_image_preprocess(clip)
    classes = record["classes"]
    train_set = GlyphCaptions(classes, size[0], tc.samples_per_class, tc.seed, tc.plain_caption_p)
    loader = build_loader(train_set, batch_size=tc.batch_size // env.world_size, collate_fn=CaptionCollate(preprocess, tokenizer),
                          seed=tc.seed, rank=env.rank, world_size=env.world_size, num_workers=cfg.runtime.workers)
    optimizer = build_optimizer(clip.named_parameters(), OptimizerConfig(base_lr=tc.lr, weight_decay=tc.weight_decay,
                                exclude_from_decay=True, reference_batch=tc.batch_size), global_batch=tc.batch_size)
    scheduler = LambdaLR(optimizer, WarmupCosine(tc.warmup_steps, tc.steps))
    epochs = math.ceil(tc.steps / Trainer.optimizer_steps_per_epoch(loader))
    evaluate = _TeacherEval(clip, cfg, classes, size[0], preprocess, tokenizer, env)
    trainer = Trainer(
        TrainerConfig(output_dir=out_dir, epochs=epochs, max_steps=tc.steps, precision=cfg.runtime.precision,
                      log_every_steps=cfg.runtime.log_every_steps, eval_every_epochs=1, resume=resume,
                      keep_last=cfg.runtime.keep_last, progress=cfg.runtime.progress, tensorboard=cfg.runtime.tensorboard),
        module=clip, optimizer=optimizer, loader=loader, step_fn=TeacherStep(env.device), scheduler=scheduler,
        eval_fn=evaluate, dist_env=env,
    )
    log.info("training the teacher CLIP (%s) on %d classes: %d steps of %d image-caption pairs", arch, len(classes),
             tc.steps, tc.batch_size)
    state = trainer.fit()
    if state.step < tc.steps:
        raise RuntimeError(f"the teacher stopped at step {state.step} of {tc.steps}")
    if env.rank == 0:
        final = evaluate()
        save_checkpoint(assemble(clip.cpu(), meta), out_dir / TEACHER_FILE, training={"teacher_record": record, "val": final})
        log.info("teacher saved to %s (validation %s)", out_dir / TEACHER_FILE,
                 ", ".join(f"{k} {v:.3f}" for k, v in final.items()))
    barrier()


class _TeacherEval:
    """Image zero-shot accuracy of the teacher on new instances of every class (and of the held-out ones)."""

    def __init__(self, clip: ClipModel, cfg: PretrainConfig, trained: list[str], image_size: int, preprocess, tokenizer,
                 env: DistEnv) -> None:
        self.clip, self.env, self.tokenizer = clip, env, tokenizer
        classes = list(resolve_classes(cfg.data.classes if isinstance(cfg.data.classes, str) else tuple(cfg.data.classes)))
        tc = _teacher(cfg)
        items = GlyphCaptions(classes, image_size, tc.val_samples_per_class, tc.seed + _VAL_SEED_OFFSET)
        batch = CaptionCollate(preprocess, tokenizer)([items[i] for i in range(len(items))])
        self.pixels = batch["pixels"]
        self.labels = torch.as_tensor(items.glyphs.labels())
        self.prompts = items.glyphs.prompts()
        _, self.unseen = ClassSplit.from_yaml(cfg.data.split).indices(classes) if cfg.data.split else ([], [])

    @torch.inference_mode()
    def __call__(self) -> dict[str, float]:
        if self.env.rank != 0:
            return {}
        was_training = self.clip.training
        self.clip.eval()
        try:
            device = next(self.clip.parameters()).device
            img = self.clip.encode_image(self.pixels.to(device), normalize=True)
            txt = self.clip.encode_text(self.tokenizer(self.prompts).to(device), normalize=True)
        finally:
            self.clip.train(was_training)
        out = {"image_top1": zero_shot_accuracy(img, txt, self.labels).top1}
        if self.unseen:  # held-out images among all prompts (the headline protocol)
            held_out = torch.isin(self.labels, torch.as_tensor(self.unseen))
            out["unseen_image_top1"] = zero_shot_accuracy(img[held_out.to(img.device)], txt, self.labels[held_out]).top1
        return out
