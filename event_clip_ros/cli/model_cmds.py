"""Sub-commands that run the event encoder on a recording: classify, anomaly, retrieve.

``classify`` and ``anomaly`` build their head (zero-shot or few-shot classifier, text or reference
scorer) and infer the recording's windows with the node's :class:`~event_clip_ros.apps.detector.Detector`,
so a window gets the result the node would publish for it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..batching import batched
from ..events.readers import open_events
from .common import (
    MAX_BANK,
    MAX_NEIGHBOURS,
    MAX_SHOTS,
    MAX_TOP_K,
    add_input_args,
    add_window_args,
    batch_arg,
    int_range,
    print_problems,
    progress,
    recording_windows,
    size_arg,
    unit_arg,
)

if TYPE_CHECKING:
    from ..apps.detector import DetectionResult, Detector
    from ..apps.event_input import PendingWindow
    from ..events.readers.base import EventReader
    from ..events.windows import Window
    from ..model.anomaly import ReferenceAnomalyScorer, TextAnomalyScorer
    from ..model.event_clip import EventClip

log = logging.getLogger("event_clip_ros.cli")

#: model.backends.BACKENDS and model.onnx_export's opsets, written out: --help must not import torch.
BACKEND_CHOICES = ("torch", "onnxruntime")
ONNX_OPSETS, DEFAULT_OPSET = (14, 20), 17


# ------------------------------------------------------------------ shared
def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--checkpoint", help="our .safetensors checkpoint or the paper's vitb.pt / vitl.pt (overrides --model/--pretrained)")
    g.add_argument("--model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32; ViT-L-14 as in the paper)")
    g.add_argument("--pretrained", default="openai", help="open_clip pretrained tag, a local CLIP weights file, or 'none' (random "
                                                          "weights: outputs are meaningless)")
    g.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    g.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"), help="autocast precision (auto: "
                                                                                                 "bf16/fp16 on GPU, fp32 on CPU)")
    g.add_argument("--batch-size", type=batch_arg, default=32, help="windows per forward pass (default 32)")
    add_backend_args(p)


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """--backend, --onnx and --onnx-providers: what runs the event encoder (the node's backend parameters)."""
    g = p.add_argument_group("encoder backend (the text heads always come from the model above)")
    g.add_argument("--backend", choices=BACKEND_CHOICES, help="what runs the event encoder f_E: torch, or onnxruntime "
                                                              "with --onnx (default: onnxruntime when --onnx is given, "
                                                              "else torch)")
    g.add_argument("--onnx", metavar="FILE", help="f_E of this model exported by `event-clip export --onnx` (checked "
                                                  "against the model: a file of another model is refused)")
    g.add_argument("--onnx-providers", default="auto", metavar="LIST",
                   help="onnxruntime execution providers: auto (on a CUDA device TensorRT, CUDA, then CPU, those present; "
                        "else CPU) or a comma-separated list of tensorrt, cuda, cpu (each must be present). "
                        "--precision fp16 (auto on a GPU provider) runs TensorRT / CUDA in fp16 (default auto)")


def backend_from_args(args: argparse.Namespace) -> dict:
    """ModelSpec's backend fields from --backend / --onnx / --onnx-providers."""
    backend = args.backend or ("onnxruntime" if args.onnx else "torch")
    if backend == "torch" and args.onnx:
        raise ValueError("--onnx runs the encoder on onnxruntime: leave out --backend torch (or --onnx)")
    return {"backend": backend, "onnx": args.onnx, "onnx_providers": args.onnx_providers}


def model_from_args(args: argparse.Namespace) -> "EventClip":
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..model import ModelSpec, create_event_clip

    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    if pretrained is None and not args.checkpoint:
        log.warning("random weights (--pretrained none): the outputs are meaningless")
    model = create_event_clip(
        ModelSpec(arch=args.model, pretrained=pretrained, checkpoint=args.checkpoint, device=args.device,
                  precision=args.precision, **backend_from_args(args))
    )
    log.info("event encoder: %s", model.frame_encoder.describe())
    return model


def reader_windows(reader: "EventReader", args: argparse.Namespace, desc: str) -> Iterator["Window"]:
    """The windows of the opened recording (noise filter and windows as the flags say), counted by a progress bar."""
    with progress(desc, "win") as bar:
        for w in recording_windows(reader, args):
            yield w
            bar.update()


def pending_batches(reader: "EventReader", args: argparse.Namespace, desc: str) -> Iterator[list["PendingWindow"]]:
    """The windows of the opened recording, ready for the detector, in batches of --batch-size."""
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.recording import pending_windows

    return batched(pending_windows(reader_windows(reader, args, desc), reader.size), args.batch_size)


def _result_fields(r: "DetectionResult") -> dict:
    return {"t_start_us": int(r.t_start_us), "t_end_us": int(r.t_end_us), "events": int(r.n_events)}


def _result_text(r: "DetectionResult") -> str:
    return f"{r.t_start_us:>14} {r.t_end_us:>14} {r.n_events:>9}"


def _print_problems(reader: "EventReader", detector: "Detector") -> None:
    """What the reader and the detector skipped (windows whose embedding is not finite are not printed)."""
    print_problems({**reader.stats.as_dict(), **detector.finite.as_dict()})


def _open(args: argparse.Namespace) -> "EventReader":
    return open_events(args.path, topic=args.topic, size=args.sensor_size)


# ------------------------------------------------------------------ classify
def _shot_arg(text: str) -> tuple[str, str]:
    label, sep, path = text.partition("=")
    if not sep or not label.strip() or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=RECORDING, got {text!r}")
    return label.strip(), path


def _few_shot(model: "EventClip", zero_shot, args: argparse.Namespace):
    """The few-shot classifier of --few-shot / --shot, or None for plain zero-shot."""
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..model.few_shot import FewShotClassifier

    if args.few_shot:
        classifier = FewShotClassifier.load(args.few_shot, zero_shot, alpha=args.alpha)
    elif args.shot:
        classifier = FewShotClassifier(zero_shot, alpha=args.alpha)
    else:
        return None
    for label, path in args.shot or []:
        with open_events(path, topic=args.topic, size=args.sensor_size) as reader:
            with contextlib.closing(recording_windows(reader, args)) as all_windows:
                windows = list(itertools.islice(all_windows, args.shots_per_class))
            if not windows:
                raise ValueError(f"{path}: no windows with at least {args.min_events} events for the shots of {label!r}")
            classifier.add_shots(label, model.embed_windows([w.events for w in windows], reader.size))
    if args.save_few_shot:
        classifier.save(args.save_few_shot)
        print(f"saved few-shot prototypes ({classifier.shot_counts}) to {args.save_few_shot}")
    return classifier


def cmd_classify(args: argparse.Namespace) -> int:
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.detector import Detector
    from ..apps.heads import ClassifierHead
    from ..model.prompts import load_labels, parse_labels, resolve_templates
    from ..model.zero_shot import ZeroShotClassifier

    labels = load_labels(args.labels_file) if args.labels_file else parse_labels(args.labels)
    templates = resolve_templates(args.prompts)
    model = model_from_args(args)
    zero_shot = ZeroShotClassifier(model, labels, templates)
    detector = Detector.for_head(model, ClassifierHead(_few_shot(model, zero_shot, args) or zero_shot), top_k=args.top_k)
    with _open(args) as reader:
        if not args.json:
            print(f"{'t_start_us':>14} {'t_end_us':>14} {'events':>9}  top-{args.top_k} labels (probability)")
        for batch in pending_batches(reader, args, "classifying"):
            for r in detector.infer(batch):
                if args.json:
                    labels_json = [{"label": s.label, "score": round(float(s.score), 6)} for s in r.labels]
                    print(json.dumps({**_result_fields(r), "labels": labels_json}))
                else:
                    print(f"{_result_text(r)}  " + ", ".join(f"{s.label} ({s.score:.3f})" for s in r.labels))
        _print_problems(reader, detector)
    return 0


# ------------------------------------------------------------------ anomaly
def _reference_scorer(model: "EventClip", args: argparse.Namespace):
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.embedding import window_embeddings
    from ..model.anomaly import ReferenceAnomalyScorer, ReferenceScorerConfig

    ref = Path(args.reference)
    if ref.suffix == ".npz":
        scorer = ReferenceAnomalyScorer.load(ref, device=model.device)
        if args.threshold is not None:
            scorer.threshold = args.threshold
        return scorer
    config = ReferenceScorerConfig(k=args.k, capacity=args.capacity, **({} if args.threshold is None else {"threshold": args.threshold}))
    scorer = ReferenceAnomalyScorer(config, device=model.device)
    with open_events(ref, topic=args.topic, size=args.sensor_size) as reader:
        for batch in pending_batches(reader, args, "reference"):
            scorer.update(window_embeddings(model, batch)[:, 0])
    return checked_reference_bank(
        scorer, f"{ref}: {len(scorer)} reference window(s) with at least {args.min_events} events", "windows", args.save_reference
    )


def checked_reference_bank(scorer: "ReferenceAnomalyScorer", too_few: str, unit: str, save_path: str | None) -> "ReferenceAnomalyScorer":
    """A filled reference bank: ValueError(``too_few`` ...) with fewer than 2 items; saved to ``save_path`` when given."""
    if len(scorer) < 2:
        raise ValueError(f"{too_few}; at least 2 are needed")
    if save_path:
        scorer.save(save_path)
        print(f"saved the reference bank ({len(scorer)} {unit}) to {save_path}")
    return scorer


def text_scorer(model: "EventClip", args: argparse.Namespace) -> "TextAnomalyScorer":
    """The prompt-based anomaly scorer from --normal-prompts / --abnormal-prompts / --threshold."""
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..model.anomaly import TextAnomalyScorer
    from ..model.prompts import ABNORMAL_PROMPTS, NORMAL_PROMPTS, load_prompts

    normal = load_prompts(args.normal_prompts) if args.normal_prompts else NORMAL_PROMPTS
    abnormal = load_prompts(args.abnormal_prompts) if args.abnormal_prompts else ABNORMAL_PROMPTS
    return TextAnomalyScorer(model, normal, abnormal, **({} if args.threshold is None else {"threshold": args.threshold}))


def cmd_anomaly(args: argparse.Namespace) -> int:
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.detector import Detector
    from ..apps.heads import AnomalyHead

    model = model_from_args(args)
    scorer = _reference_scorer(model, args) if args.reference else text_scorer(model, args)
    detector = Detector.for_head(model, AnomalyHead(scorer))
    n = flagged = 0
    with _open(args) as reader:
        if not args.json:
            print(f"{'t_start_us':>14} {'t_end_us':>14} {'events':>9}  score  (threshold {detector.threshold:g})")
        for batch in pending_batches(reader, args, "scoring"):
            for r in detector.infer(batch):
                score, is_anomaly = r.anomaly_score, r.is_anomaly
                assert score is not None and is_anomaly is not None  # an anomaly head decides every window
                n += 1
                flagged += int(is_anomaly)
                if args.json:
                    print(json.dumps({**_result_fields(r), "score": round(score, 6), "anomaly": is_anomaly}))
                else:
                    print(f"{_result_text(r)}  {score:.3f}{'  ANOMALY' if is_anomaly else ''}")
        _print_problems(reader, detector)
    if not args.json:
        print(f"{flagged} of {n} windows above the threshold")
    return 0


# ------------------------------------------------------------------ retrieve
def cmd_retrieve_build(args: argparse.Namespace) -> int:
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..model.prompts import load_labels, parse_labels
    from ..model.retrieval import EmbeddingIndex

    model = model_from_args(args)
    index_dir = Path(args.index)
    index = EmbeddingIndex.load(index_dir) if (index_dir / "index.json").exists() else EmbeddingIndex.for_model(model)
    before = len(index)
    for path in args.events or []:
        with open_events(path, topic=args.topic, size=args.sensor_size) as reader:
            for batch in batched(reader_windows(reader, args, f"indexing {Path(path).name}"), args.batch_size):
                index.add_events(model, batch, reader.size, source=str(path), batch_size=args.batch_size)
            print_problems(reader.stats.as_dict())
    if args.images:
        index.add_images(model, args.images, batch_size=args.batch_size)
    texts = list(load_labels(args.texts_file)) if args.texts_file else []
    if args.texts:
        texts += parse_labels(args.texts)
    if texts:
        index.add_texts(model, texts)
    index.save(index_dir)
    counts = ", ".join(f"{index.count(m)} {m}" for m in ("event", "image", "text"))
    print(f"index {index_dir}: {len(index)} items ({counts}); {len(index) - before} added")
    return 0


def _print_hits(query: str, hits, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"query": query, "hits": [{"score": round(float(h.score), 6), **h.record.to_dict()} for h in hits]}))
        return
    print(query)
    for rank, h in enumerate(hits, 1):
        r = h.record
        where = f" [{r.t_start_us}, {r.t_end_us}) us" if r.t_start_us is not None else ""
        label = f" label={r.label}" if r.label else ""
        print(f"  {rank:>2}. {h.score:.4f}  {r.modality:<5} {r.key}{where}{label}")


def cmd_retrieve_query(args: argparse.Namespace) -> int:
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..model.retrieval import EmbeddingIndex

    index = EmbeddingIndex.load(args.index, mmap=True)
    model = model_from_args(args)
    target = args.modality
    if args.text is not None:
        for hits in index.search_text(model, [args.text], k=args.k, modality=target or "event"):
            _print_hits(f"text: {args.text}", hits, args.json)
    elif args.image is not None:
        for hits in index.search_image(model, [args.image], k=args.k, modality=target or "event"):
            _print_hits(f"image: {args.image}", hits, args.json)
    else:
        with _open(args) as reader:
            for batch in batched(reader_windows(reader, args, "querying"), args.batch_size):
                results = index.search_events(model, batch, reader.size, k=args.k, modality=target or "text")
                for w, hits in zip(batch, results):
                    _print_hits(f"events: {args.path} [{w.t_start_us}, {w.t_end_us}) us", hits, args.json)
    return 0


# ------------------------------------------------------------------ parser
def cmd_export(args: argparse.Namespace) -> int:
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    import torch

    from ..model import ModelSpec, create_event_clip
    from ..model.checkpoint import save_checkpoint

    if args.checkpoint and args.checkpoint_opt:
        raise ValueError("give the checkpoint once: as the first argument or with --checkpoint")
    checkpoint = args.checkpoint or args.checkpoint_opt
    if not checkpoint and not args.model:
        raise ValueError("nothing to export: give a checkpoint (or, for --onnx, --model ARCH [--pretrained TAG])")
    if checkpoint and args.model:
        raise ValueError("--model exports an open_clip model without a checkpoint: give one or the other")
    if not args.out and not args.onnx:
        raise ValueError("no output: give OUT.safetensors and/or --onnx OUT.onnx")
    if args.model and args.out:
        raise ValueError("--model: only --onnx is written (a .safetensors file comes from a checkpoint)")
    if args.fp16 and not args.out:
        raise ValueError("--fp16 applies to the .safetensors output; the ONNX file holds fp32 weights (fp16 is chosen "
                         "where it runs: --precision fp16 with the CUDA or TensorRT provider)")
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    spec = ModelSpec(checkpoint=checkpoint, device="cpu", precision="fp32") if checkpoint else \
        ModelSpec(arch=args.model, pretrained=pretrained, device="cpu", precision="fp32")
    model = create_event_clip(spec)
    if args.out:
        out = save_checkpoint(model, args.out, storage_dtype=torch.float16 if args.fp16 else None)
        print(
            f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {'fp16' if args.fp16 else 'as loaded'}; "
            f"{model.meta.arch or 'custom'} architecture)"
        )
    if args.onnx:
        # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
        from ..model.onnx_export import export_onnx

        if sys.stderr.isatty():
            print(f"exporting the event encoder to {args.onnx} (ViT-B/32: about 20 s on 2 CPU cores)...", file=sys.stderr)
        done = export_onnx(model, args.onnx, opset=args.opset, checkpoint=checkpoint)
        info = done.info
        print(f"wrote {done.path} ({done.size_bytes / 1e6:.1f} MB, fp32, opset {info.opset}): the event encoder of "
              f"{info.source}, frames (batch, {info.input_size[0]}, {info.input_size[1]}) in its {info.frame['representation']} "
              f"representation, normalisation inside -> L2-normalised embeddings (batch, {info.embed_dim}); onnxruntime "
              f"matches torch (cosine {done.min_cosine:.6f}). Run it with the checkpoint: --onnx {done.path} "
              f"(node: backend onnxruntime, onnx_file)")
    return 0


EXPORT_DOC = """\
  event-clip export CHECKPOINT OUT.safetensors [--fp16]
      a checkpoint (ours, or the paper's vitb.pt / vitl.pt) in our format.
  event-clip export --onnx OUT.onnx --checkpoint CHECKPOINT [--opset 17]
  event-clip export --onnx OUT.onnx --model ViT-B-32 [--pretrained openai]
      the event encoder f_E alone, for --backend onnxruntime (the node's backend parameter):
      input 'frames' (batch, H, W) float32, as the frame builder makes them for this model (its
      normalisation is inside the graph); output 'embeddings' (batch, D) float32, L2-normalised;
      the batch axis is dynamic. The text heads stay in the checkpoint, which runs beside the file.
      The file records the model it came from (checkpoint name and SHA-256, architecture, input
      size, normalisation, opset, a fingerprint of f_E), so a run with another model refuses it.
      It is written only after onnxruntime and torch agreed on it.
"""


def add_scorer_args(p: argparse.ArgumentParser, unit: str) -> None:
    """Options of the anomaly scorers (reference bank of ``unit``, e.g. windows, or text prompts)."""
    p.add_argument("--save-reference", help="save the reference bank built from --reference to this .npz")
    p.add_argument("--k", type=int_range(1, MAX_NEIGHBOURS), default=5, help=f"nearest reference {unit} averaged (default 5)")
    p.add_argument("--capacity", type=int_range(2, MAX_BANK), default=2048, help=f"most reference {unit} kept (default 2048)")
    p.add_argument("--normal-prompts", help="file of prompts describing normal scenes (text scorer)")
    p.add_argument("--abnormal-prompts", help="file of prompts describing abnormal scenes (text scorer)")
    p.add_argument("--threshold", type=unit_arg, help="decision threshold on the score in [0, 1] (default: 0.5 text, 0.95 reference)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="convert a checkpoint (ours, or the paper's vitb.pt / vitl.pt) to our .safetensors file, and/or "
                       "write its event encoder as ONNX (--onnx)",
        description=EXPORT_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", nargs="?", help="input checkpoint")
    p.add_argument("out", nargs="?", help="output .safetensors file")
    p.add_argument("--fp16", action="store_true", help="store the .safetensors weights in fp16 (half the size; loaded "
                                                        "back as fp32)")
    o = p.add_argument_group("ONNX")
    o.add_argument("--onnx", metavar="OUT.onnx", help="write the event encoder f_E as ONNX to this file")
    o.add_argument("--checkpoint", dest="checkpoint_opt", metavar="CHECKPOINT", help="input checkpoint (same as the "
                                                                                     "first argument)")
    o.add_argument("--model", help="export an open_clip architecture's untrained f_E (a copy of its image tower) "
                                   "instead of a checkpoint, e.g. ViT-B-32")
    o.add_argument("--pretrained", default="openai", help="with --model: open_clip pretrained tag, weights file or "
                                                          "'none' (default openai)")
    o.add_argument("--opset", type=int_range(*ONNX_OPSETS), default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("classify", help="zero-shot labels for each window of a recording")
    add_input_args(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--labels", help="comma-separated class names")
    g.add_argument("--labels-file", help="file with one class name per line")
    p.add_argument(
        "--prompts",
        default="event",
        help="prompt templates: a set name (event, n-imagenet, n-caltech101, n-mnist) or "
        "a file, one template with {} per line (default event)",
    )
    p.add_argument("--top-k", type=int_range(1, MAX_TOP_K), default=5, help="labels printed per window (default 5)")
    p.add_argument(
        "--json", action="store_true", help="one JSON object per window: t_start_us, t_end_us, events, labels [{label, score}] best first"
    )
    f = p.add_argument_group("few-shot (prototypes of labelled windows blended with the text classifier)")
    f.add_argument(
        "--shot",
        type=_shot_arg,
        action="append",
        metavar="LABEL=RECORDING",
        help="windows of RECORDING are shots of LABEL (repeat per label; at least two labels)",
    )
    f.add_argument(
        "--shots-per-class", type=int_range(1, MAX_SHOTS), default=5, help="windows taken from each --shot recording (default 5)"
    )
    f.add_argument("--few-shot", metavar="FILE", help="load saved prototypes (.npz from --save-few-shot)")
    f.add_argument("--save-few-shot", metavar="FILE", help="save the prototypes to this .npz")
    f.add_argument("--alpha", type=unit_arg, default=0.5, help="weight of the prototypes against the text, in [0, 1] (default 0.5)")
    add_window_args(p, default_ms=50.0)
    add_model_args(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("anomaly", help="anomaly score in [0, 1] for each window of a recording")
    add_input_args(p)
    p.add_argument(
        "--reference",
        help="normal behaviour: a recording (its windows form the reference bank) or a saved bank .npz; "
        "without it, text prompts score P(abnormal)",
    )
    add_scorer_args(p, "windows")
    p.add_argument("--json", action="store_true", help="one JSON object per window: t_start_us, t_end_us, events, score, anomaly")
    add_window_args(p, default_ms=50.0)
    add_model_args(p)
    p.set_defaults(func=cmd_anomaly)

    p = sub.add_parser("retrieve", help="cross-modal retrieval: build an index of events, images and texts, and query it")
    rsub = p.add_subparsers(dest="retrieve_command", required=True)
    b = rsub.add_parser("build", help="create an index directory or add to it")
    b.add_argument("index", help="index directory")
    b.add_argument("--events", nargs="+", metavar="PATH", help="recordings whose windows are added")
    b.add_argument("--images", nargs="+", metavar="FILE", help="image files to add")
    b.add_argument("--texts", help="comma-separated texts to add")
    b.add_argument("--texts-file", help="file with one text per line to add")
    b.add_argument("--topic", help="event topic in rosbags")
    b.add_argument("--sensor-size", type=size_arg, metavar="WxH", help="override the sensor size read from the files")
    add_window_args(b, default_ms=50.0)
    add_model_args(b)
    b.set_defaults(func=cmd_retrieve_build)

    q = rsub.add_parser("query", help="query an index with a text, an image or the windows of a recording")
    q.add_argument("index", help="index directory")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--text", help="text query (default target: event windows)")
    g.add_argument("--image", help="image file query (default target: event windows)")
    g.add_argument("--events", dest="path", metavar="PATH", help="recording: each window is a query (default target: texts)")
    q.add_argument("--modality", choices=("event", "image", "text"), help="what to retrieve")
    q.add_argument("--k", type=int_range(1, MAX_NEIGHBOURS), default=5, help="results per query (default 5)")
    q.add_argument("--json", action="store_true", help="one JSON object per query: query, hits [{score, modality, key, ...}]")
    q.add_argument("--topic", help="event topic in a rosbag")
    q.add_argument("--sensor-size", type=size_arg, metavar="WxH", help="override the sensor size read from the file")
    add_window_args(q, default_ms=50.0)
    add_model_args(q)
    q.set_defaults(func=cmd_retrieve_query)
