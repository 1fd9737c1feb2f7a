"""Checkpoints: our .safetensors round trip bit for bit, import of the paper's torch files
(built here in the official layout from real open_clip models), and every error path."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import struct
from pathlib import Path

import numpy as np
import open_clip
import pytest
import safetensors
import safetensors.torch
import torch
from PIL import Image

from event_clip_ros.model.checkpoint import (
    META_KEY,
    PREPROCESS_KEY,
    CheckpointError,
    load_any_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from event_clip_ros.model.clip_weights import registered_arch
from event_clip_ros.model.event_clip import FORMAT_VERSION, EventClip
from event_clip_ros.model.factory import ModelSpec, assemble, create_event_clip, model_config
from event_clip_ros.model.official_checkpoint import OFFICIAL_FRAME, import_official_checkpoint, infer_openai_config

TINY = "EventCLIP-Tiny"
TEXTS = ["a photo of a cat", "the digit 7", "a point cloud image of a chair"]
LOGGER = "event_clip_ros.model.official_checkpoint"


def perturb_(module: torch.nn.Module, seed: int, scale: float = 0.02) -> None:
    """Add seeded noise to every parameter, so towers that started equal differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def tiny_event_clip(seed: int = 0, **meta_changes) -> EventClip:
    """A random EventCLIP-Tiny whose f_E differs from f_I, with ``meta_changes`` applied."""
    torch.manual_seed(seed)
    base = create_event_clip(ModelSpec(arch=TINY, pretrained=None, device="cpu"))
    model = assemble(base.clip, dataclasses.replace(base.meta, **meta_changes), base.event_tower)
    perturb_(model.event_tower, seed + 1)
    return model.eval()


def inputs(model: EventClip, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random event frames (B, H, W) in [-1, 1) and preprocessed images (B, 3, H, W)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = model.meta.input_size
    return torch.rand(4, h, w, generator=gen) * 2 - 1, torch.randn(4, 3, h, w, generator=gen)


def embeddings(model: EventClip, frames: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {"frames": model.encode_frames(frames), "texts": model.encode_texts(TEXTS), "images": model.encode_images(images)}


def assert_same_embeddings(a: EventClip, b: EventClip) -> None:
    frames, images = inputs(a)
    ea, eb = embeddings(a, frames, images), embeddings(b, frames, images)
    for kind in ea:
        assert torch.equal(ea[kind], eb[kind]), kind


def rewrite(src: Path, dst: Path, tensors=lambda t: t, metadata=lambda m: m) -> Path:
    """Copy a safetensors file, editing its tensors and header metadata on the way."""
    with safetensors.safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        tensors_in = {k: f.get_tensor(k) for k in f.keys()}
    safetensors.torch.save_file(tensors(tensors_in), str(dst), metadata=metadata(meta))
    return dst


def edit_meta(**changes):
    def apply(md: dict[str, str]) -> dict[str, str]:
        meta = json.loads(md[META_KEY])
        meta.update(changes)
        return {**md, META_KEY: json.dumps(meta)}

    return apply


# ------------------------------------------------------------------------------ our format
ROUND_TRIP_META = dict(
    pretrained="test:random",
    frame={"representation": "official", "clamp": 10, "keep_aspect": True},
    event_mean=[0.1, -0.2, 0.3],
    event_std=[0.5, 0.25, 2.0],
)
TRAINING = {"lr": 5e-6, "epochs": 3, "losses": ["ct", "kl", "zs"], "shots": None}


@pytest.fixture(scope="module")
def tiny() -> EventClip:
    model = tiny_event_clip(0, **ROUND_TRIP_META)
    # a non-default image preprocessing must survive the round trip too
    open_clip.set_model_preprocess_cfg(
        model.clip, {**open_clip.get_model_preprocess_cfg(model.clip), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    )
    model.image_preprocess = assemble(model.clip, model.meta, model.event_tower).image_preprocess
    return model


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory) -> Path:
    return save_checkpoint(tiny, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", training=TRAINING)


def test_round_trip_is_bit_exact(tiny, saved):
    loaded = load_checkpoint(saved)
    assert loaded.meta == dataclasses.replace(tiny.meta, training=TRAINING)
    assert tiny.meta.training is None  # save_checkpoint does not change the model
    assert_same_embeddings(tiny, loaded)
    original = tiny.state_dict()
    assert loaded.state_dict().keys() == original.keys()
    assert all(torch.equal(v, original[k]) and v.dtype == torch.float32 for k, v in loaded.state_dict().items())
    assert torch.equal(loaded.event_mean.flatten(), torch.tensor(ROUND_TRIP_META["event_mean"]))
    assert loaded.frame_config.representation == "official" and loaded.frame_config.clamp == 10
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8))
    assert torch.equal(loaded.image_preprocess(image), tiny.image_preprocess(image))
    assert not loaded.training and loaded.device == torch.device("cpu")


def test_round_trip_through_the_factory(tiny, saved):
    model = create_event_clip(ModelSpec(checkpoint=str(saved), device="cpu"))
    assert model.meta.training == TRAINING
    assert_same_embeddings(tiny, model)
    assert all(p.requires_grad for p in model.event_tower.parameters())
    assert not any(p.requires_grad for p in model.clip.parameters())


def test_the_file_holds_every_tensor_and_the_metadata(tiny, saved):
    with safetensors.safe_open(str(saved), "pt") as f:
        keys, meta = set(f.keys()), json.loads(f.metadata()[META_KEY])
    assert keys == set(tiny.state_dict())
    assert any(k.startswith("event_tower.") for k in keys) and any(k.startswith("clip.visual.") for k in keys)
    assert meta["format_version"] == FORMAT_VERSION and meta["arch"] == TINY
    n_params = sum(t.numel() for t in tiny.state_dict().values())
    assert n_params * 4 < saved.stat().st_size < n_params * 4 + 64 * 1024  # fp32 plus a small header


def test_save_is_atomic_and_replaces(tiny, saved, tmp_path, monkeypatch):
    target = tmp_path / "ck.safetensors"
    target.write_bytes(b"previous")
    save_checkpoint(tiny, target)
    assert load_checkpoint(target).meta == tiny.meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    before = target.read_bytes()
    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tiny, target)
    assert target.read_bytes() == before  # the old checkpoint survives a failed save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]  # no temporary file left


def test_shared_tensors_are_saved(tmp_path):
    torch.manual_seed(3)
    base = create_event_clip(ModelSpec(arch=TINY, pretrained=None, device="cpu"))
    shared = assemble(base.clip, base.meta, event_tower=base.clip.visual)  # f_E aliases f_I
    loaded = load_checkpoint(save_checkpoint(shared, tmp_path / "shared.safetensors"))
    assert_same_embeddings(shared, loaded)


def test_half_precision_weights_are_stored_as_is_and_load_as_fp32(tmp_path):
    model = tiny_event_clip(4)
    model.half()
    path = save_checkpoint(model, tmp_path / "half.safetensors")
    with safetensors.safe_open(str(path), "pt") as f:
        assert f.get_tensor("event_tower.conv1.weight").dtype == torch.float16
    loaded = load_checkpoint(path)
    want = model.state_dict()
    assert all(v.dtype == torch.float32 and torch.equal(v, want[k].float()) for k, v in loaded.state_dict().items())


# ----------------------------------------------------------------------- our format: errors
def test_missing_file(tmp_path):
    for load in (load_checkpoint, load_any_checkpoint, import_official_checkpoint):
        with pytest.raises(CheckpointError, match="does not exist"):
            load(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="directory"):
        load_any_checkpoint(tmp_path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="neither a safetensors nor a torch file.*vitb.pt"):
        load_any_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(path)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="neither"):
        load_any_checkpoint(empty)


def test_truncated_safetensors(saved, tmp_path):
    data = saved.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:-1000])
    with pytest.raises(CheckpointError, match=f"truncated: its tensors need {len(data)} bytes, the file has {len(data) - 1000}"):
        load_any_checkpoint(path)
    path.write_bytes(data[:200])  # inside the header
    with pytest.raises(CheckpointError, match="truncated: its safetensors header needs"):
        load_any_checkpoint(path)


def test_corrupt_header(tmp_path):
    path = tmp_path / "bad.safetensors"
    body = b"{not json at all}"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        load_any_checkpoint(path)


def test_plain_open_clip_safetensors(tmp_path):
    clip = open_clip.create_model(TINY, pretrained=None)
    path = tmp_path / "open_clip_model.safetensors"
    safetensors.torch.save_file(clip.state_dict(), str(path))
    with pytest.raises(CheckpointError, match=r"plain open_clip.*--pretrained"):
        load_any_checkpoint(path)


def test_newer_format_version(saved, tmp_path):
    path = rewrite(saved, tmp_path / "v99.safetensors", metadata=edit_meta(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}, newer.*update event_clip_ros"):
        load_checkpoint(path)


def test_unreadable_metadata(saved, tmp_path):
    path = rewrite(saved, tmp_path / "badmeta.safetensors", metadata=lambda md: {**md, META_KEY: "{oops"})
    with pytest.raises(CheckpointError, match="unreadable event_clip metadata"):
        load_checkpoint(path)
    path = rewrite(saved, tmp_path / "nocfg.safetensors", metadata=lambda md: {**md, META_KEY: json.dumps({"arch": TINY})})
    with pytest.raises(CheckpointError, match="lacks model_cfg"):
        load_checkpoint(path)
    path = rewrite(saved, tmp_path / "strcfg.safetensors", metadata=edit_meta(model_cfg="ViT-B-32"))
    with pytest.raises(CheckpointError, match="model_cfg must be an open_clip config"):
        load_checkpoint(path)
    path = rewrite(saved, tmp_path / "frame.safetensors", metadata=edit_meta(frame={"representation": "voxel"}))
    with pytest.raises(CheckpointError, match="invalid frame settings in the metadata.*voxel"):
        load_checkpoint(path)
    path = rewrite(saved, tmp_path / "pp.safetensors", metadata=lambda md: {**md, PREPROCESS_KEY: json.dumps({"size": 64})})
    with pytest.raises(CheckpointError, match=f"unreadable {PREPROCESS_KEY} metadata.*mean"):
        load_checkpoint(path)


def test_metadata_that_does_not_match_the_tensors(saved, tmp_path):
    cfg = model_config(TINY)
    cfg["vision_cfg"]["layers"] = 3
    path = rewrite(saved, tmp_path / "layers.safetensors", metadata=edit_meta(model_cfg=cfg))
    with pytest.raises(
        CheckpointError, match=r"do not fit the model its metadata describes.*missing \(\d+\): clip\.visual\.transformer\.resblocks\.2\."
    ):
        load_checkpoint(path)
    cfg = model_config(TINY)
    cfg["embed_dim"] = 32
    path = rewrite(saved, tmp_path / "embed.safetensors", metadata=edit_meta(model_cfg=cfg))
    with pytest.raises(CheckpointError, match=r"shape file vs model \(\d+\): .*\(128, 64\) vs \(128, 32\)"):
        load_checkpoint(path)


def test_wrong_missing_and_unexpected_tensors(saved, tmp_path):
    def damage(t):
        t = dict(t)
        t["event_tower.proj"] = torch.zeros(128, 65)
        del t["clip.ln_final.bias"]
        t["extra.weight"] = torch.zeros(2)
        return t

    path = rewrite(saved, tmp_path / "damaged.safetensors", tensors=damage)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "missing (1): clip.ln_final.bias" in msg
    assert "unexpected (1): extra.weight" in msg
    assert "event_tower.proj (128, 65) vs (128, 64)" in msg


def test_factory_reports_a_bad_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        create_event_clip(ModelSpec(checkpoint=str(tmp_path / "none.safetensors"), device="cpu"))


# ------------------------------------------------------------------------ the paper's files
def openai_clip(seed: int, cfg: dict | None = None) -> torch.nn.Module:
    """A random open_clip CLIP (OpenAI state-dict layout, QuickGELU) of ``cfg`` (default: EventCLIP-Tiny)."""
    torch.manual_seed(seed)
    return open_clip.model.CLIP(**(cfg or model_config(TINY))).eval()


def official_towers(cfg: dict | None = None) -> dict[str, torch.nn.Module]:
    """Three CLIPs as the paper's training leaves them: one original CLIP (foundation_model),
    encoder_k with a trained image tower, and encoder_q (here made to differ from foundation_model
    too, so a test can tell which one became f_I). The text towers are the original one."""
    foundation = openai_clip(10, cfg)
    encoder_k, encoder_q = copy.deepcopy(foundation), copy.deepcopy(foundation)
    perturb_(encoder_k.visual, 11)
    perturb_(encoder_q.visual, 12)
    return {"encoder_k": encoder_k, "encoder_q": encoder_q, "foundation_model": foundation}


def write_official(path: Path, towers: dict[str, torch.nn.Module], **torch_save_kwargs) -> Path:
    """``{"checkpoint": LPTNMmodel.state_dict(), "optimizer": AdamW state}`` as trainer.py saves it."""
    state = {f"{name}.{k}": v for name, tower in towers.items() for k, v in tower.state_dict().items()}
    trained = [p.detach().clone().requires_grad_() for p in towers["encoder_k"].visual.parameters()]
    optimizer = torch.optim.AdamW(trained, lr=1e-6, weight_decay=0.03)  # state for f_E, as training leaves it
    sum(p.sum() for p in trained).backward()
    optimizer.step()
    torch.save({"checkpoint": state, "optimizer": optimizer.state_dict()}, path, **torch_save_kwargs)
    return path


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple[dict[str, torch.nn.Module], Path]:
    towers = official_towers()
    return towers, write_official(tmp_path_factory.mktemp("official") / "vitb.pt", towers)


def frozen_copy(module: torch.nn.Module) -> torch.nn.Module:
    module = copy.deepcopy(module)
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def reference_embeddings(
    towers: dict[str, torch.nn.Module], model: EventClip, text_tower: str = "encoder_k", image_tower: str = "encoder_q"
):
    """Embeddings computed directly with open_clip from the source towers.

    The text and image references run frozen, like f_T and f_I in the model: PyTorch picks
    its attention kernel by ``requires_grad``, and kernels differ in the last bits.
    """
    frames, images = inputs(model, seed=5)
    tokenizer = open_clip.get_tokenizer(TINY)
    frozen = {name: frozen_copy(tower) for name, tower in towers.items()}
    with torch.no_grad():
        x = frames.unsqueeze(1).expand(-1, 3, -1, -1)  # official: replicated, no mean/std
        ref = {
            "frames": towers["encoder_k"].encode_image(x, normalize=True),
            "texts": frozen[text_tower].encode_text(tokenizer(TEXTS), normalize=True),
            "images": frozen[image_tower].encode_image(images, normalize=True),
        }
    return ref, embeddings(model, frames, images)


def test_official_import_maps_the_towers(official, caplog):
    towers, path = official
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model = import_official_checkpoint(path)
    assert not caplog.records  # a well-formed file imports silently, with weights_only=True
    ref, got = reference_embeddings(towers, model)
    for kind in ref:
        assert torch.equal(got[kind], ref[kind]), kind
    assert model.logit_scale == pytest.approx(float(towers["encoder_k"].logit_scale.detach().exp()))
    # f_E is really encoder_k's tower, not encoder_q's
    assert not torch.equal(model.event_tower.conv1.weight, model.clip.visual.conv1.weight)


def test_official_import_meta(official):
    _, path = official
    model = load_any_checkpoint(path)
    meta = model.meta
    assert meta.arch == TINY and meta.model_cfg == model_config(TINY)
    assert meta.pretrained == "official:vitb.pt"
    assert meta.frame == OFFICIAL_FRAME and meta.event_mean is None and meta.event_std is None
    assert model.frame_config.representation == "official"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.requires_grad for p in model.event_tower.parameters())
    assert not any(p.requires_grad for p in model.clip.parameters())


def test_official_import_through_the_factory_then_our_format(official, tmp_path):
    towers, path = official
    model = create_event_clip(ModelSpec(checkpoint=str(path), device="cpu"))
    again = load_any_checkpoint(save_checkpoint(model, tmp_path / "converted.safetensors"))
    assert again.meta == model.meta
    assert_same_embeddings(model, again)


@pytest.mark.parametrize("arch", ["ViT-B-32-quickgelu", "ViT-L-14-quickgelu"])
def test_the_papers_backbones_are_recognised(arch):
    """vitb.pt / vitl.pt: shapes of OpenAI ViT-B/32 and ViT-L/14 (meta tensors, no weights)."""
    with torch.device("meta"):
        state = open_clip.model.CLIP(**model_config(arch)).state_dict()
    cfg = infer_openai_config(state)
    assert registered_arch(cfg) == arch
    assert registered_arch({**cfg, "quick_gelu": False}) == arch.removesuffix("-quickgelu")


def test_unregistered_architecture_is_inferred(tmp_path):
    cfg = model_config(TINY)
    cfg["vision_cfg"].update(layers=3, image_size=48)
    cfg["text_cfg"].update(context_length=24, layers=1)
    cfg["embed_dim"] = 48
    towers = official_towers(cfg)
    model = import_official_checkpoint(write_official(tmp_path / "custom.pt", towers))
    assert model.meta.arch is None and model.meta.model_cfg == cfg
    frames, _ = inputs(model)
    with torch.no_grad():
        want = towers["encoder_k"].encode_image(frames.unsqueeze(1).expand(-1, 3, -1, -1), normalize=True)
        assert torch.equal(model.encode_frames(frames), want)
        tokens = open_clip.tokenizer.SimpleTokenizer(context_length=24)(TEXTS)
        assert torch.equal(model.encode_texts(TEXTS), frozen_copy(towers["encoder_k"]).encode_text(tokens, normalize=True))


def test_image_tower_fallbacks(tmp_path, caplog):
    towers = official_towers()
    no_q = {k: v for k, v in towers.items() if k != "encoder_q"}
    model = import_official_checkpoint(write_official(tmp_path / "no_q.pt", no_q))
    ref, got = reference_embeddings(towers, model, image_tower="foundation_model")
    assert torch.equal(got["images"], ref["images"])

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model = import_official_checkpoint(write_official(tmp_path / "only_k.pt", {"encoder_k": towers["encoder_k"]}))
    assert any("f_I is encoder_k's" in r.message for r in caplog.records)
    assert torch.equal(model.clip.visual.conv1.weight, model.event_tower.conv1.weight)


def test_differing_teacher_text_tower_warns_and_keeps_encoder_k(tmp_path, caplog):
    towers = official_towers()
    perturb_(towers["foundation_model"].transformer, 13)
    path = write_official(tmp_path / "teacher.pt", towers)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model = import_official_checkpoint(path)
    assert any("text tower differs" in r.message for r in caplog.records)
    ref, got = reference_embeddings(towers, model, text_tower="encoder_k")
    assert torch.equal(got["texts"], ref["texts"])


def test_legacy_torch_format(official, tmp_path):
    towers, _ = official
    path = write_official(tmp_path / "legacy.pt", towers, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"
    model = load_any_checkpoint(path)
    ref, got = reference_embeddings(towers, model)
    assert torch.equal(got["frames"], ref["frames"])


def test_a_pickle_with_training_arguments_loads_with_weights_only(official, tmp_path, caplog):
    """The paper's layout with an argparse.Namespace beside it: allowed (SAFE_GLOBALS), no fallback, no warning."""
    towers, _ = official
    state = {f"{name}.{k}": v for name, tower in towers.items() for k, v in tower.state_dict().items()}
    path = tmp_path / "with_args.pt"
    torch.save({"checkpoint": state, "args": argparse.Namespace(lr=1e-6, dataset="N-imagenet", shots=[1, 2, 5])}, path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model = import_official_checkpoint(path)
    assert not caplog.records
    ref, got = reference_embeddings(towers, model)
    assert torch.equal(got["frames"], ref["frames"])
    assert model.meta.arch == TINY


# ------------------------------------------------------------------------- paper files: errors
def test_torch_file_without_checkpoint_entry(official, tmp_path):
    towers, _ = official
    path = tmp_path / "plain.pt"
    torch.save(towers["encoder_k"].state_dict(), path)
    with pytest.raises(CheckpointError, match=r"without a 'checkpoint' entry \(has: positional_embedding.*--pretrained FILE"):
        load_any_checkpoint(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match=r"without a 'checkpoint' entry \(has: list\)"):
        load_any_checkpoint(path)


def test_torch_file_without_encoder_k(official, tmp_path):
    towers, _ = official
    state = {f"encoder_q.{k}": v for k, v in towers["encoder_q"].state_dict().items()}
    path = tmp_path / "no_k.pt"
    torch.save({"checkpoint": state}, path)
    with pytest.raises(CheckpointError, match=r"no 'encoder_k\.' weights \(top-level prefixes: encoder_q\)"):
        load_any_checkpoint(path)
    torch.save({"checkpoint": {"encoder_k.weight": "not a tensor"}}, path)
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        load_any_checkpoint(path)


def test_torch_file_with_wrong_shapes(official, tmp_path):
    towers, _ = official
    narrow = model_config(TINY)
    narrow["vision_cfg"]["width"] = 64  # encoder_q's image tower no longer fits encoder_k's architecture
    bad = dict(towers, encoder_q=openai_clip(20, narrow))
    with pytest.raises(
        CheckpointError,
        match=r"encoder_q image\) do not fit the inferred architecture: shape file vs model .*visual\.class_embedding \(64,\) vs \(128,\)",
    ):
        import_official_checkpoint(write_official(tmp_path / "narrow.pt", bad))


def test_torch_file_missing_weights(official, tmp_path):
    towers, _ = official
    state = {f"encoder_k.{k}": v for k, v in towers["encoder_k"].state_dict().items() if k != "ln_final.weight"}
    path = tmp_path / "partial.pt"
    torch.save({"checkpoint": state}, path)
    with pytest.raises(CheckpointError, match="lacks OpenAI CLIP weights.*ln_final.weight"):
        import_official_checkpoint(path)
    state = {k: v for k, v in state.items() if k != "encoder_k.visual.proj"}
    torch.save({"checkpoint": state}, path)
    with pytest.raises(CheckpointError, match="not an OpenAI-layout ViT CLIP"):
        import_official_checkpoint(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the garbage protocol bytes
def test_truncated_and_corrupt_torch_files(official, tmp_path):
    _, path = official
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        load_any_checkpoint(cut)
    bad = tmp_path / "bad.pt"
    rng = np.random.default_rng(2)
    for size in range(8, 400, 8):  # legacy pickles with damaged bodies fail in many ways
        bad.write_bytes(b"\x80\x02" + rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        with pytest.raises(CheckpointError, match="not a readable torch file"):
            load_any_checkpoint(bad)
