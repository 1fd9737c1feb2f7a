"""event-clip classify / anomaly / retrieve end to end with a tiny checkpoint written by the test.

The CLI must print what the Python API computes for the same windows, and what the node's path
(its input and Detector.infer) gives for them, window by window (one path for everything).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from event_clip_ros.apps.detector import Detector
from event_clip_ros.apps.detector_config import AnomalyConfig, DetectorConfig
from event_clip_ros.apps.event_input import EventInput
from event_clip_ros.cli import main
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.windows import WindowConfig, iter_windows
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.checkpoint import save_checkpoint
from event_clip_ros.model.zero_shot import ZeroShotClassifier

LABELS = ("circle", "square", "triangle")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_model")
    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))
    save_checkpoint(model, d / "tiny.safetensors")
    for name, seed in (("a.raw", 1), ("b.raw", 2)):
        assert main(["simulate", str(d / name), "--sensor-size", "96x72", "--duration-ms", "200", "--seed", str(seed)]) == 0
    return d


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def model_args(files) -> list[str]:
    return ["--checkpoint", str(files / "tiny.safetensors"), "--window-ms", "25"]


def test_classify_json_equals_the_python_api(files, capsys):
    assert main(["classify", str(files / "a.raw"), "--labels", ",".join(LABELS), "--top-k", "2", "--json", *model_args(files)]) == 0
    rows = _json_lines(capsys.readouterr().out)
    model = create_event_clip(ModelSpec(checkpoint=str(files / "tiny.safetensors"), device="cpu"))
    clf = ZeroShotClassifier(model, LABELS)
    with open_events(files / "a.raw") as reader:
        windows = list(iter_windows(reader.chunks(), WindowConfig.by_duration_ms(25)))
        emb = model.embed_windows([w.events for w in windows], reader.size)
    expected = [(w.t_start_us, w.t_end_us, w.events.size, [(s.label, s.score) for s in top])
                for w, top in zip(windows, clf.classify(emb, top_k=2))]
    assert len(rows) == len(expected) >= 7
    for row, (t0, t1, n, top) in zip(rows, expected):
        assert list(row) == ["t_start_us", "t_end_us", "events", "labels"]
        assert (row["t_start_us"], row["t_end_us"], row["events"]) == (t0, t1, n)
        assert [d["label"] for d in row["labels"]] == [label for label, _ in top]
        assert [d["score"] for d in row["labels"]] == pytest.approx([s for _, s in top], abs=1e-6)
        assert row["labels"][0]["score"] >= row["labels"][1]["score"]


def node_path_results(files, recording: str, **config) -> list:
    """The node's path on a recording: its events into the node's input (EventInput, as decoded messages),
    every window it completes through Detector.infer in batches of 32 (the CLI's default), nothing dropped."""
    config = DetectorConfig(window=WindowConfig.by_duration_ms(25),
                            model=ModelSpec(checkpoint=str(files / "tiny.safetensors"), device="cpu"), **config)
    detector = Detector(config)
    detector.load()
    source = EventInput("event_camera_msgs/msg/EventPacket", config.window)
    with open_events(files / recording) as reader:
        pending = [w for chunk in reader.chunks() for w in source.feed_events(chunk, reader.size)] + source.flush()
    return detector.infer_all(pending, batch_size=32)


def test_classify_and_anomaly_print_what_the_node_path_gives_window_by_window(files, capsys):
    assert main(["classify", str(files / "a.raw"), "--labels", ",".join(LABELS), "--top-k", "2", "--json",
                 *model_args(files)]) == 0
    rows = _json_lines(capsys.readouterr().out)
    results = node_path_results(files, "a.raw", labels=LABELS, top_k=2)
    assert len(rows) == len(results) >= 7
    assert rows == [{"t_start_us": r.t_start_us, "t_end_us": r.t_end_us, "events": r.n_events,
                     "labels": [{"label": s.label, "score": round(s.score, 6)} for s in r.labels]} for r in results]

    scores = sorted(r.anomaly_score for r in node_path_results(files, "b.raw", mode="anomaly"))
    threshold = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2  # half the windows above it
    assert main(["anomaly", str(files / "b.raw"), "--threshold", repr(threshold), "--json", *model_args(files)]) == 0
    rows = _json_lines(capsys.readouterr().out)
    results = node_path_results(files, "b.raw", mode="anomaly", anomaly=AnomalyConfig(threshold=threshold))
    assert len(rows) == len(results) >= 7
    assert rows == [{"t_start_us": r.t_start_us, "t_end_us": r.t_end_us, "events": r.n_events,
                     "score": round(r.anomaly_score, 6), "anomaly": r.is_anomaly} for r in results]
    assert {r.is_anomaly for r in results} == {True, False}  # the threshold splits the windows: decisions compared


def test_classify_text_output(files, capsys):
    assert main(["classify", str(files / "a.raw"), "--labels", ",".join(LABELS), *model_args(files)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "labels" in out[0] and all(label in out[1] for label in LABELS)


def test_few_shot_from_recordings_and_saved_prototypes_agree(files, capsys, tmp_path):
    proto = tmp_path / "shots.npz"
    common = ["classify", str(files / "a.raw"), "--labels", "a,b", "--json", *model_args(files)]
    assert (
        main(
            [
                *common,
                "--shot",
                f"a={files / 'a.raw'}",
                "--shot",
                f"b={files / 'b.raw'}",
                "--shots-per-class",
                "3",
                "--save-few-shot",
                str(proto),
            ]
        )
        == 0
    )
    fitted = _json_lines(capsys.readouterr().out)
    assert main([*common, "--few-shot", str(proto)]) == 0
    loaded = _json_lines(capsys.readouterr().out)
    assert fitted == loaded
    assert main(common) == 0
    zero = _json_lines(capsys.readouterr().out)
    assert [r["labels"] for r in zero] != [r["labels"] for r in fitted]  # the prototypes changed the answer


def test_anomaly_text_and_reference(files, capsys, tmp_path):
    assert main(["anomaly", str(files / "a.raw"), "--json", *model_args(files)]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert rows and all(0.0 <= r["score"] <= 1.0 and r["anomaly"] == (r["score"] > 0.5) for r in rows)

    bank = tmp_path / "bank.npz"
    args = [
        "anomaly",
        str(files / "b.raw"),
        "--reference",
        str(files / "a.raw"),
        "--save-reference",
        str(bank),
        "--json",
        *model_args(files),
    ]
    assert main(args) == 0
    built = _json_lines(capsys.readouterr().out)
    assert main(["anomaly", str(files / "b.raw"), "--reference", str(bank), "--json", *model_args(files)]) == 0
    assert _json_lines(capsys.readouterr().out) == built
    assert all(0.0 <= r["score"] <= 1.0 for r in built)


def test_anomaly_reference_too_short_is_a_clear_error(files, capsys):
    args = [
        "anomaly",
        str(files / "b.raw"),
        "--reference",
        str(files / "a.raw"),
        "--window-ms",
        "500",
        "--checkpoint",
        str(files / "tiny.safetensors"),
    ]
    assert main(args) == 2
    assert "at least 2" in capsys.readouterr().err


def test_retrieve_build_append_and_query_all_directions(files, capsys, tmp_path):
    index = tmp_path / "index"
    image = tmp_path / "disc.png"
    img = np.zeros((64, 64, 3), np.uint8)
    cv2.circle(img, (32, 32), 16, (255, 255, 255), -1)
    cv2.imwrite(str(image), img)
    assert main(["retrieve", "build", str(index), "--events", str(files / "a.raw"), "--texts", "a disc,a bar", *model_args(files)]) == 0
    first = capsys.readouterr().out
    assert main(["retrieve", "build", str(index), "--images", str(image), *model_args(files)]) == 0
    assert "1 added" in capsys.readouterr().out and "1 image" not in first

    assert main(["retrieve", "query", str(index), "--text", "a disc", "--k", "3", "--json", *model_args(files)]) == 0
    (res,) = _json_lines(capsys.readouterr().out)
    scores = [h["score"] for h in res["hits"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert all(h["modality"] == "event" and h["key"] == str(files / "a.raw") for h in res["hits"])

    assert (
        main(["retrieve", "query", str(index), "--image", str(image), "--modality", "event", "--k", "1", "--json", *model_args(files)]) == 0
    )
    assert _json_lines(capsys.readouterr().out)[0]["hits"][0]["modality"] == "event"

    assert main(["retrieve", "query", str(index), "--events", str(files / "a.raw"), "--k", "1", "--json", *model_args(files)]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert len(rows) >= 7 and all(r["hits"][0]["modality"] == "text" for r in rows)

    assert (
        main(
            [
                "retrieve",
                "query",
                str(index),
                "--events",
                str(files / "a.raw"),
                "--modality",
                "event",
                "--k",
                "1",
                "--json",
                *model_args(files),
            ]
        )
        == 0
    )
    rows = _json_lines(capsys.readouterr().out)
    # each window finds itself: the index holds exactly these windows
    assert all(r["hits"][0]["score"] > 0.9999 and f"[{r['hits'][0]['t_start_us']}," in r["query"] for r in rows)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["classify", "{a}", "--labels", "x,y", "--checkpoint", "{d}/missing.safetensors"], "missing"),
        (["classify", "{a}", "--labels-file", "{d}/nope.txt", "--checkpoint", "{d}/tiny.safetensors"], "nope.txt"),
        (["classify", "{a}", "--labels", "x", "--prompts", "no-such-set", "--checkpoint", "{d}/tiny.safetensors"], "no-such-set"),
        (["classify", "{a}", "--labels", "x", "--model", "NoSuchArch", "--pretrained", "none"], "NoSuchArch"),
    ],
)
def test_bad_arguments_are_clear_errors(files, capsys, argv, message):
    argv = [a.format(a=files / "a.raw", d=files) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_shot_syntax_is_rejected_by_the_parser(files):
    with pytest.raises(SystemExit):
        main(["classify", str(files / "a.raw"), "--labels", "x,y", "--shot", "no-equals-sign"])


def test_export_fp16_halves_the_file_and_loads_back_as_fp32(files, tmp_path, capsys):
    from event_clip_ros.model.checkpoint import load_checkpoint

    source = files / "tiny.safetensors"
    out = tmp_path / "tiny16.safetensors"
    assert main(["export", str(source), str(out), "--fp16"]) == 0
    assert "fp16" in capsys.readouterr().out
    assert 0.45 < out.stat().st_size / source.stat().st_size < 0.55
    full, half = load_checkpoint(source), load_checkpoint(out)
    assert half.meta == full.meta
    for (name, a), (_, b) in zip(full.state_dict().items(), half.state_dict().items()):
        assert b.dtype == a.dtype
        assert torch.equal(b, a.half().to(a.dtype) if a.is_floating_point() else a), name
