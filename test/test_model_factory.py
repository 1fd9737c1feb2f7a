"""The model factory: clear errors for bad specs and missing weights (fast, offline), local
weights files, devices and precisions, and which towers train."""

from __future__ import annotations

import copy
import time

import open_clip
import pytest
import safetensors.torch
import torch

from event_clip_ros.model.factory import (
    ModelSpec,
    PretrainedUnavailableError,
    _hub_reachable,
    create_event_clip,
    model_config,
)

TINY = "EventCLIP-Tiny"
TEXTS = ["a photo of a dog", "the digit 3"]


def tiny_spec(**changes) -> ModelSpec:
    return ModelSpec(**{"arch": TINY, "pretrained": None, "device": "cpu", **changes})


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_event_clip(tiny_spec())


@pytest.mark.parametrize("pretrained", [None, "openai"])
def test_unknown_arch(pretrained):
    with pytest.raises(ValueError, match="unknown open_clip architecture 'NoSuchArch'.*ViT-B-32"):
        create_event_clip(ModelSpec(arch="NoSuchArch", pretrained=pretrained, device="cpu"))


def test_unknown_pretrained_tag():
    with pytest.raises(ValueError, match=r"no pretrained tag 'no-such-tag' for ViT-B-32 \(known tags: openai, .*laion2b"):
        create_event_clip(ModelSpec(arch="ViT-B-32", pretrained="no-such-tag", device="cpu"))


def test_missing_pretrained_file(tmp_path):
    missing = tmp_path / "weights.safetensors"
    with pytest.raises(FileNotFoundError, match=f"pretrained weights file {missing} does not exist"):
        create_event_clip(tiny_spec(pretrained=str(missing)))


def test_uncached_pretrained_weights_fail_fast_offline(tmp_path, monkeypatch):
    if _hub_reachable():
        pytest.skip("huggingface.co is reachable: this test checks the offline path (it would download ViT-B-32)")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError) as err:
        create_event_clip(ModelSpec(arch="ViT-B-32", pretrained="openai", device="cpu", cache_dir=str(tmp_path / "hf" / "hub")))
    assert time.monotonic() - start < 5.0
    msg = str(err.value)
    assert "ViT-B-32/openai" in msg and "--pretrained /path/to/" in msg and "--checkpoint" in msg


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_pretrained_weights_file(tmp_path, fmt):
    torch.manual_seed(7)
    clip = open_clip.create_model(TINY, pretrained=None).eval()
    path = tmp_path / f"tiny_weights.{fmt}"
    if fmt == "pt":
        torch.save(clip.state_dict(), path)
    else:
        safetensors.torch.save_file(clip.state_dict(), str(path))
    model = create_event_clip(tiny_spec(pretrained=str(path))).eval()  # f_E is built in train mode
    assert model.meta.pretrained == str(path) and model.meta.arch == TINY and model.meta.model_cfg == model_config(TINY)
    # references with requires_grad as in the model (f_E trainable, f_I and f_T frozen): PyTorch picks
    # its attention kernel by requires_grad, and kernels differ in the last bits
    trainable = copy.deepcopy(clip)
    for p in clip.parameters():
        p.requires_grad_(False)
    h, w = model.meta.input_size
    frames = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1))
    images = torch.randn(3, 3, h, w, generator=torch.Generator().manual_seed(2))
    tokens = open_clip.get_tokenizer(TINY)(TEXTS)
    with torch.no_grad():
        assert torch.equal(model.encode_texts(TEXTS), clip.encode_text(tokens, normalize=True))
        assert torch.equal(model.encode_images(images), clip.encode_image(images, normalize=True))
        # f_E starts as a copy of f_I: the frame replicated to 3 channels, no mean/std by default
        assert torch.equal(model.encode_frames(frames), trainable.encode_image(frames.unsqueeze(1).expand(-1, 3, -1, -1), normalize=True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_gpu():
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        create_event_clip(tiny_spec(device="cuda"))


def test_half_precision_on_cpu():
    for precision in ("fp16", "bf16"):
        with pytest.raises(ValueError, match=f"precision {precision} needs a CUDA device"):
            create_event_clip(tiny_spec(precision=precision))
    with pytest.raises(ValueError, match="precision must be"):
        create_event_clip(tiny_spec(precision="fp8"))


def test_auto_on_cpu(tiny):
    if torch.cuda.is_available():
        pytest.skip("auto picks the GPU here")
    model = create_event_clip(tiny_spec(device="auto", precision="auto"))
    assert model.device == torch.device("cpu") and model.precision == "fp32"


def test_only_the_event_tower_trains(tiny):
    assert all(p.requires_grad for p in tiny.event_tower.parameters())
    assert not any(p.requires_grad for p in tiny.clip.visual.parameters())  # f_I
    text_params = [p for name, p in tiny.clip.named_parameters() if not name.startswith("visual.")]
    assert text_params and not any(p.requires_grad for p in text_params)  # f_T (and logit_scale)


def test_gradients_reach_the_event_tower_only(tiny):
    tiny.zero_grad(set_to_none=True)
    h, w = tiny.meta.input_size
    frames = torch.rand(4, h, w, generator=torch.Generator().manual_seed(3))
    texts = tiny.encode_texts(TEXTS)
    loss = (1 - tiny.encode_frames(frames) @ texts.T).mean()
    loss.backward()
    grads = [p.grad for p in tiny.event_tower.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in tiny.clip.parameters())
    tiny.zero_grad(set_to_none=True)


def test_embeddings_are_unit_float32(tiny):
    h, w = tiny.meta.input_size
    with torch.no_grad():
        z = tiny.encode_frames(torch.rand(2, h, w))
        t = tiny.encode_texts(TEXTS)
    for emb, n in ((z, 2), (t, len(TEXTS))):
        assert emb.shape == (n, tiny.embed_dim) and emb.dtype == torch.float32
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(n), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected frames of shape \(B, 64, 64\)"):
        tiny.encode_frames(torch.rand(2, 32, 32))
