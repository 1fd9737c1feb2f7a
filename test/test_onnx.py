"""f_E exported to ONNX and run on onnxruntime (the ``onnxruntime`` backend) against the torch encoder.

Real parts: random-weight open_clip models (EventCLIP-Tiny, EventCLIP-Toy48, ViT-B-32), checkpoints and
ONNX files written by the code under test, real onnxruntime sessions (CPU provider: the one this machine
has), frames of the shipped recordings. The node over DDS with this backend: test/test_replay_live.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from event_clip_ros.apps.detector import Detector
from event_clip_ros.apps.detector_config import DetectorConfig
from event_clip_ros.apps.detector_params import config_from_parameters
from event_clip_ros.apps.event_input import IMAGE_MSGTYPE, make_input
from event_clip_ros.cli import build_parser, main
from event_clip_ros.cli.eval_cmds import detector_parameters
from event_clip_ros.events.frames import build_frames_torch
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.windows import WindowConfig, iter_windows
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.backends import TorchEncoder
from event_clip_ros.model.checkpoint import save_checkpoint
from event_clip_ros.model.onnx_export import (
    META_KEY,
    MIN_COSINE,
    OnnxModelError,
    cosines,
    export_onnx,
    load_onnx_encoder,
)
from event_clip_ros.model.onnx_runtime import (
    OnnxRuntimeEncoder,
    ProviderUnavailableError,
    fp16_graph,
    parse_providers,
    resolve_onnx_precision,
    resolve_providers,
)

REPO = Path(__file__).resolve().parents[1]
SHAPES = REPO / "data" / "samples" / "shapes.raw"
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
ALL_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture(scope="module", autouse=True)
def one_thread(restore_torch_threads):
    """One CPU thread for torch and the sessions (which follow it): on a busy 2-core box two threads can be
    100 times slower per forward."""
    torch.set_num_threads(1)


def random_model(arch: str, seed: int = 0):
    """A random-weight model of ``arch`` whose f_E differs from f_I, with CLIP's input normalisation."""
    torch.manual_seed(seed)
    model = create_event_clip(ModelSpec(arch=arch, pretrained=None, device="cpu"))
    with torch.no_grad():
        for p in model.event_tower.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.set_event_input(model.meta.frame, CLIP_MEAN, CLIP_STD)
    return model


def sample_frames(model, n: int = 5) -> torch.Tensor:
    """(n, H, W) frames of the shapes recording, as the node builds them for ``model``."""
    with open_events(SHAPES) as reader:
        windows = [w.events for _, w in zip(range(n), iter_windows(reader.chunks(), WindowConfig.by_duration_ms(50)))]
        return build_frames_torch(windows, reader.size, model.frame_config, torch.device("cpu"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint, its ONNX export, another checkpoint of the same architecture) of EventCLIP-Tiny."""
    d = tmp_path_factory.mktemp("onnx")
    checkpoint = save_checkpoint(random_model("EventCLIP-Tiny"), d / "tiny.safetensors")
    other = save_checkpoint(random_model("EventCLIP-Tiny", seed=1), d / "other.safetensors")
    assert main(["export", "--onnx", str(d / "tiny.onnx"), "--checkpoint", str(checkpoint)]) == 0
    return checkpoint, d / "tiny.onnx", other


def onnx_spec(checkpoint: Path, onnx_file: Path, **kw) -> ModelSpec:
    return ModelSpec(checkpoint=str(checkpoint), device="cpu", backend="onnxruntime", onnx=str(onnx_file), **kw)


# ------------------------------------------------------------------ agreement
@pytest.mark.parametrize("arch", ["EventCLIP-Tiny", "EventCLIP-Toy48",
                                  pytest.param("ViT-B-32", marks=pytest.mark.slow)])  # ViT-B/32: ~30 s on 2 cores
def test_onnx_embeddings_agree_with_torch(arch, tmp_path):
    model = random_model(arch)
    done = export_onnx(model, tmp_path / "f_e.onnx")
    assert done.min_cosine >= MIN_COSINE and done.path.stat().st_size == done.size_bytes
    encoder = OnnxRuntimeEncoder.open(done.path, model, source=arch)
    assert encoder.active_providers == ("CPUExecutionProvider",) and encoder.precision == "fp32"
    frames = sample_frames(model)
    assert frames.abs().sum() > 0
    for batch in (frames[:1], frames):  # the batch axis is dynamic
        want = TorchEncoder(model)(batch)
        got = encoder(batch)
        assert got.shape == want.shape == (len(batch), model.embed_dim) and got.dtype == torch.float32
        assert cosines(got.numpy(), want.numpy()).min() >= 0.9999
        assert torch.linalg.vector_norm(got, dim=-1) == pytest.approx(1.0, abs=1e-5)  # L2-normalised out
        assert cosines(encoder(batch.numpy()).numpy(), want.numpy()).min() >= 0.9999  # arrays in too


def test_export_records_the_model_and_the_cli_runs_it_like_torch(tiny, tmp_path, capsys):
    checkpoint, onnx_file, _ = tiny
    proto, info = load_onnx_encoder(onnx_file)
    assert (info.checkpoint, info.arch, info.input_size, info.embed_dim, info.opset) == \
           ("tiny.safetensors", "EventCLIP-Tiny", (64, 64), 64, 17)
    assert info.event_mean == pytest.approx(CLIP_MEAN) and info.frame["representation"] == "paper"
    assert [i.name for i in proto.graph.input] == ["frames"] and [o.name for o in proto.graph.output] == ["embeddings"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    common = [str(SHAPES), "--labels", "circle,square,triangle,person", "--top-k", "3", "--json", "--checkpoint",
              str(checkpoint), "--window-ms", "50", "--batch-size", "4"]
    assert main(["classify", *common]) == 0
    torch_rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["classify", *common, "--onnx", str(onnx_file)]) == 0  # --backend onnxruntime implied
    onnx_rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(onnx_rows) == len(torch_rows) == 10
    for a, b in zip(onnx_rows, torch_rows):
        assert [s["label"] for s in a["labels"]] == [s["label"] for s in b["labels"]]
        assert [s["score"] for s in a["labels"]] == pytest.approx([s["score"] for s in b["labels"]], abs=1e-4)


def test_the_detector_config_runs_the_onnx_backend(tiny):
    checkpoint, onnx_file, _ = tiny
    config, _ = config_from_parameters({"checkpoint": str(checkpoint), "labels": ["a", "b"], "device": "cpu",
                                        "backend": "onnxruntime", "onnx_file": str(onnx_file)})
    model = create_event_clip(config.model)
    assert isinstance(model.frame_encoder, OnnxRuntimeEncoder)
    assert "CPUExecutionProvider" in model.frame_encoder.describe()
    with pytest.raises(ValueError, match="backend onnxruntime needs the exported encoder"):
        config_from_parameters({"labels": ["a"], "backend": "onnxruntime"})
    args = build_parser().parse_args(["evaluate", "bag", "--out", "x", "--backend", "onnxruntime", "--onnx",
                                      str(onnx_file), "--onnx-providers", "cpu"])  # evaluate's flags: the same parameters
    assert detector_parameters(args) == {"backend": "onnxruntime", "onnx_file": str(onnx_file), "onnx_providers": "cpu"}
    with pytest.raises(ValueError, match="backend must be one of torch, onnxruntime"):
        config_from_parameters({"labels": ["a"], "backend": "tensorrt"})


def test_an_image_detector_on_onnxruntime_gives_the_labels_of_torch(tiny):
    """Image input (frame differences) through Detector: its frames reach the encoder through the same seam."""
    checkpoint, onnx_file, _ = tiny
    rng = np.random.default_rng(0)
    background = rng.integers(30, 200, (60, 80), dtype=np.uint8)
    images = []
    for i in range(2 * 16):  # two stacks: two windows
        image = background.copy()
        image[10 + i % 30:30 + i % 30, 5 + 2 * i:25 + 2 * i] = 250
        images.append(image)
    results = {}
    for backend, spec in (("torch", ModelSpec(checkpoint=str(checkpoint), device="cpu")),
                          ("onnxruntime", onnx_spec(checkpoint, onnx_file))):
        config = DetectorConfig(labels=("a", "b", "c", "d"), top_k=4, model=spec)
        detector, source = Detector(config), make_input(IMAGE_MSGTYPE, config)
        detector.load()
        pending = [w for i, image in enumerate(images) for w in source.feed_image(image, 10**9 + i * 10**7)]
        results[backend] = detector.infer(pending)
    assert len(results["onnxruntime"]) == len(results["torch"]) == 2
    for a, b in zip(results["onnxruntime"], results["torch"]):
        assert [s.label for s in a.labels] == [s.label for s in b.labels]
        assert [s.score for s in a.labels] == pytest.approx([s.score for s in b.labels], abs=1e-4)


# ------------------------------------------------------------------ refusals
def test_an_onnx_file_of_another_model_is_refused(tiny, tmp_path):
    checkpoint, onnx_file, other = tiny
    with pytest.raises(OnnxModelError, match=r"exported from checkpoint tiny.safetensors and does not match the model "
                                             r"loaded from .*other.safetensors: the encoder's weights differ"):
        create_event_clip(onnx_spec(other, onnx_file))
    toy = save_checkpoint(random_model("EventCLIP-Toy48"), tmp_path / "toy.safetensors")
    with pytest.raises(OnnxModelError, match=r"architecture EventCLIP-Tiny vs EventCLIP-Toy48; input 64x64 vs 48x48"):
        create_event_clip(onnx_spec(toy, onnx_file))
    model = create_event_clip(ModelSpec(checkpoint=str(checkpoint), device="cpu"))
    model.set_event_input(model.meta.frame, None, None)  # the same weights without the input normalisation
    with pytest.raises(OnnxModelError, match=r"normalisation mean \[0.48.*vs mean None std None"):
        OnnxRuntimeEncoder.open(onnx_file, model)
    # and through the CLI: exit 2 with the reason on one line
    assert main(["classify", str(SHAPES), "--labels", "a,b", "--checkpoint", str(other), "--onnx", str(onnx_file)]) == 2


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "weights", "no_metadata", "foreign_metadata"])
def test_a_damaged_or_foreign_onnx_file_gives_a_clear_error(damage, tiny, tmp_path, capsys):
    checkpoint, onnx_file, _ = tiny
    bad = tmp_path / "bad.onnx"
    data = onnx_file.read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
        expected = r"is not a readable ONNX file|has no event_clip_ros metadata"
    elif damage == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
        expected = r"is not a readable ONNX file|has no event_clip_ros metadata"
    elif damage in ("weights", "no_metadata", "foreign_metadata"):
        proto = onnx.load(str(onnx_file))
        if damage == "weights":  # one weight changed, the file still parses
            biggest = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
            raw = bytearray(biggest.raw_data)
            raw[len(raw) // 2] ^= 0x40
            biggest.raw_data = bytes(raw)
            expected = r"is damaged: its weights do not match"
        elif damage == "no_metadata":  # e.g. re-saved by a tool that drops metadata_props
            del proto.metadata_props[:]
            expected = r"has no event_clip_ros metadata: it was not written by event-clip export --onnx"
        else:
            onnx.helper.set_model_props(proto, {META_KEY: json.dumps({"arch": "x"})})
            expected = r"its event_clip_ros metadata is damaged"
        onnx.save(proto, str(bad))
    else:
        expected = r"ONNX file .*bad.onnx does not exist"
    with pytest.raises(OnnxModelError, match=expected):
        create_event_clip(onnx_spec(checkpoint, bad))
    if damage == "truncated":  # and on the command line: one line, exit 2
        assert main(["classify", str(SHAPES), "--labels", "a,b", "--checkpoint", str(checkpoint), "--onnx", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "event-clip classify: error:" in err and "Traceback" not in err


def test_export_refuses_bad_arguments_and_leaves_no_file(tiny, tmp_path, capsys):
    checkpoint, _, _ = tiny
    cases = [
        ([], "nothing to export"),
        ([str(checkpoint)], "no output"),
        ([str(checkpoint), "--checkpoint", str(checkpoint), "--onnx", "x.onnx"], "give the checkpoint once"),
        (["--checkpoint", str(checkpoint), "--onnx", str(tmp_path / "x.onnx"), "--fp16"], "--fp16 applies to the .safetensors"),
        (["--checkpoint", str(tmp_path / "missing.safetensors"), "--onnx", str(tmp_path / "x.onnx")], "missing.safetensors"),
    ]
    for args, message in cases:
        assert main(["export", *args]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", str(checkpoint), "--onnx", "x.onnx", "--opset", "9"])
    assert not list(tmp_path.iterdir())


def test_export_from_an_architecture_and_its_cli_message(tmp_path, capsys):
    out = tmp_path / "toy.onnx"
    assert main(["export", "--onnx", str(out), "--model", "EventCLIP-Toy48", "--pretrained", "none", "--opset", "18"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "EventCLIP-Toy48 (none weights)" in printed and "(batch, 48, 48)" in printed
    _, info = load_onnx_encoder(out)
    assert (info.checkpoint, info.opset, info.pretrained) == (None, 18, "none")
    assert [p.name for p in tmp_path.iterdir()] == ["toy.onnx"]  # the atomic write left no temporary


# ------------------------------------------------------------------ providers and precision
def test_providers_are_chosen_in_order_and_a_missing_one_is_refused(tiny):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_providers("auto", cpu, ALL_PROVIDERS) == (("cpu",), False)
    assert resolve_providers("auto", cuda, ALL_PROVIDERS) == (("tensorrt", "cuda", "cpu"), False)
    assert resolve_providers("auto", cuda, ALL_PROVIDERS[1:]) == (("cuda", "cpu"), False)
    assert resolve_providers("auto", cuda, ALL_PROVIDERS[2:]) == (("cpu",), False)  # warned, not refused
    assert resolve_providers("CUDA, cpu", cuda, ALL_PROVIDERS) == (("cuda", "cpu"), True)
    assert parse_providers("TensorrtExecutionProvider,cuda") == ("tensorrt", "cuda")
    with pytest.raises(ValueError, match="comma-separated list of tensorrt, cuda, cpu"):
        parse_providers("gpu")
    with pytest.raises(ProviderUnavailableError, match=r"tensorrt requested, but this onnxruntime .* has only "
                                                       r"CPUExecutionProvider.*onnxruntime-gpu"):
        resolve_providers("tensorrt,cpu", cuda, ALL_PROVIDERS[2:])
    assert resolve_onnx_precision("auto", ("tensorrt", "cpu")) == "fp16"
    assert resolve_onnx_precision("auto", ("cpu",)) == "fp32"
    with pytest.raises(ValueError, match="fp16 with the onnxruntime backend needs the CUDA or TensorRT provider"):
        resolve_onnx_precision("fp16", ("cpu", "cuda"))
    with pytest.raises(ValueError, match="use backend torch for bf16"):
        resolve_onnx_precision("bf16", ("cuda",))
    # this machine's onnxruntime (the CPU package): asking for CUDA is a clear error, not a silent CPU run
    checkpoint, onnx_file, _ = tiny
    with pytest.raises(ProviderUnavailableError, match="onnx provider.*cuda requested"):
        create_event_clip(onnx_spec(checkpoint, onnx_file, onnx_providers="cuda"))


def test_the_fp16_graph_for_the_cuda_provider_keeps_float32_io_and_agrees(tiny):
    """What the CUDA provider runs with precision fp16, checked on the CPU provider (which runs fp16 graphs too:
    the backend itself refuses fp16 on the CPU, where it would be no faster)."""
    import onnxruntime as ort

    checkpoint, onnx_file, _ = tiny  # a ViT, as the paper's encoders
    model = create_event_clip(ModelSpec(checkpoint=str(checkpoint), device="cpu"))
    proto, _ = load_onnx_encoder(onnx_file)
    half = fp16_graph(proto)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in half.graph.initializer)
    options = ort.SessionOptions()  # the CPU provider's layout optimisations crash on fp16 ViTs (onnxruntime 1.32)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    session = ort.InferenceSession(half.SerializeToString(), options, providers=["CPUExecutionProvider"])
    frames = sample_frames(model)
    got = session.run(["embeddings"], {"frames": frames.numpy()})[0]
    assert got.dtype == np.float32
    assert cosines(got, TorchEncoder(model)(frames).numpy()).min() >= 0.999
