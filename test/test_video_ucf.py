"""UCF-Crime protocol on videos: 10-crop views, frame-level truth and metrics, the evaluation report from the CLI.

Videos are synthesised with OpenCV (a disc sliding over a texture; in the
anomalous frames a dark square also crosses the scene) and written losslessly.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from event_clip_ros.apps.evaluation.metrics import average_precision, roc_auc
from event_clip_ros.apps.evaluation.report import (
    METRICS_FILE,
    PR_PNG,
    REPORT_FILE,
    ROC_PNG,
    WINDOWS_FILE,
)
from event_clip_ros.apps.evaluation.truth import GroundTruthError
from event_clip_ros.apps.evaluation.ucf import (
    ScoredVideo,
    evaluate_videos,
    find_annotated_videos,
    frame_truth,
    video_truth,
)
from event_clip_ros.apps.video_anomaly import SegmentScore
from event_clip_ros.cli import video_cmds
from event_clip_ros.video.crops import crop_origins, ten_crop
from event_clip_ros.video.extraction import (
    ExtractionConfig,
    extract_event_frames,
    normalise_counts,
)

from video_scenes import FPS, H, W, as_frames, scene, write_video

torch.set_num_threads(1)



# ---------------------------------------------------------------------- 10-crop
def test_crop_origins_are_the_centre_and_the_corners():
    assert crop_origins((72, 96), (48, 64)) == [(12, 16), (0, 0), (0, 32), (24, 0), (24, 32)]
    assert crop_origins((4, 4), (4, 4)) == [(0, 0)] * 5
    with pytest.raises(ValueError, match="64x80 crop"):
        crop_origins((72, 96), (80, 64))


def test_ten_crop_cuts_before_clamp_and_normalisation():
    """A peak of 20 outside the centre crop: the centre view is normalised by its own peak (3), after the clamp (10)."""
    counts = np.zeros((6, 8), np.uint16)
    counts[0, 0] = 20  # top-left corner only
    counts[2, 3], counts[3, 5] = 3, 1  # inside the centre 4x4 crop [1:5, 2:6]
    config = ExtractionConfig(clamp=10.0)
    views = ten_crop(counts, (4, 4), lambda c: normalise_counts(c, config))
    assert views.shape == (10, 4, 4) and views.dtype == np.float32
    centre = np.zeros((4, 4), np.float32)
    centre[1, 1], centre[2, 3] = 1.0, 1 / 3
    np.testing.assert_allclose(views[0], centre)
    np.testing.assert_allclose(views[5], centre[:, ::-1])  # its mirror
    top_left = np.zeros((4, 4), np.float32)
    top_left[0, 0], top_left[2, 3] = 1.0, 0.3  # 20 clamped to 10 is the peak: 3 -> 0.3
    np.testing.assert_allclose(views[1], top_left)
    np.testing.assert_allclose(views[6], views[1][:, ::-1])
    for k in range(5):
        np.testing.assert_array_equal(views[5 + k], views[k][:, ::-1])


def test_ten_crop_extraction_equals_a_direct_computation():
    images = scene(9, seed=4, anomaly=range(0, 9))
    config = ExtractionConfig(stack=9, ten_crop=(48, 64), out_size=(24, 32))
    (ef,) = list(extract_event_frames(as_frames(images), config))
    counts = np.zeros((H, W), np.float32)
    for a, b in zip(images[:-1], images[1:]):
        d = cv2.cvtColor(cv2.absdiff(b, a), cv2.COLOR_BGR2GRAY)
        counts += d > 10
    expected = []
    for top, left in [(12, 16), (0, 0), (0, 32), (24, 0), (24, 32)]:
        crop = np.minimum(counts[top : top + 48, left : left + 64], 10.0)
        crop = crop / crop.max()
        expected.append(cv2.resize(crop, (32, 24), interpolation=cv2.INTER_AREA))
    expected += [e[:, ::-1] for e in expected]
    assert ef.frame.shape == (10, 24, 32)
    np.testing.assert_allclose(ef.frame, np.stack(expected), atol=1e-6)


def test_ten_crop_larger_than_the_video_fails_at_the_first_frame():
    with pytest.raises(ValueError, match="does not fit"):
        next(extract_event_frames(as_frames(scene(3, seed=0)), ExtractionConfig(ten_crop=(H + 1, W))))
    with pytest.raises(ValueError, match="ten_crop"):
        ExtractionConfig(ten_crop=(0, 4))


# ---------------------------------------------------------------------- truth and metrics
def test_frame_truth_follows_the_annotation_inclusive_frames(tmp_path):
    ann = tmp_path / "ann.txt"
    ann.write_text("a.mp4  Arson  2 4  7 7\nb.mp4  Normal  -1 -1  -1 -1\n")
    truth = frame_truth(video_truth(ann, "videos/a.mp4", FPS), FPS, 10)
    np.testing.assert_array_equal(np.flatnonzero(truth), [2, 3, 4, 7])
    assert not frame_truth(video_truth(ann, "b.avi", 30.0), 30.0, 10).any()
    with pytest.raises(GroundTruthError, match="no annotation line for 'c'"):
        video_truth(ann, "c.mp4", FPS)


def test_evaluation_concatenates_the_frames_of_all_videos(tmp_path):
    """Hand-made segments of two videos: frame metrics over the 12 concatenated frames, window truth by majority."""
    ann = tmp_path / "ann.txt"
    ann.write_text("a.mp4 Fighting 4 7 -1 -1\nb.mp4 Normal -1 -1 -1 -1\n")
    a = ScoredVideo(Path("a.mp4"), FPS, 8, (SegmentScore(0, 0, 4, 0, 120_000, 0.2, False),
                                            SegmentScore(1, 4, 4, 160_000, 280_000, 0.9, True)), video_truth(ann, "a.mp4", FPS))
    b = ScoredVideo(Path("b.mp4"), FPS, 5, (SegmentScore(0, 0, 4, 0, 120_000, 0.95, True),), video_truth(ann, "b.mp4", FPS))
    evaluation, summaries = evaluate_videos([a, b], threshold=0.5)
    y = np.array([0] * 4 + [1] * 4 + [0] * 5, bool)
    scores = np.array([0.2] * 4 + [0.9] * 4 + [0.95] * 5)  # b's trailing frame takes its last segment's score
    frame = evaluation.frame_anomaly
    assert (frame.samples, frame.positives) == (13, 4)
    assert frame.roc_auc == pytest.approx(roc_auc(y, scores)) and frame.roc_auc == pytest.approx(4 / 9 * 1.0)
    assert frame.average_precision == pytest.approx(average_precision(y, scores))
    assert frame.accuracy == pytest.approx(8 / 13)
    assert [w.truth for w in evaluation.windows] == ["normal", "anomaly", "normal"]
    assert [w.correct for w in evaluation.windows] == [True, True, False]
    assert [(w.result.frame_id, w.result.t_end_us) for w in evaluation.windows] == [
        ("a.mp4", 160_000),
        ("a.mp4", 320_000),
        ("b.mp4", 160_000),
    ]
    assert evaluation.window_anomaly.roc_auc == pytest.approx(0.5)
    assert [(s.name, s.frames, s.anomalous_frames, s.roc_auc) for s in summaries] == [("a.mp4", 8, 4, 1.0), ("b.mp4", 5, 0, None)]


def test_find_annotated_videos_by_name_then_stem(tmp_path):
    (tmp_path / "Arson011_x264.avi").write_bytes(b"x")
    (tmp_path / "Normal_1.mp4").write_bytes(b"x")
    (tmp_path / "other.mkv").write_bytes(b"x")
    ann = tmp_path / "ann.txt"
    ann.write_text("Normal_1.mp4 Normal -1 -1 -1 -1\n\nArson011_x264.mp4 Arson 1 2 -1 -1\nGone.mp4 Abuse 1 2 -1 -1\n")
    found, missing = find_annotated_videos(ann, tmp_path)
    assert found == [tmp_path / "Normal_1.mp4", tmp_path / "Arson011_x264.avi"] and missing == ["Gone.mp4"]
    with pytest.raises(FileNotFoundError):
        find_annotated_videos(ann, tmp_path / "nope")


# ---------------------------------------------------------------------- CLI end to end
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="event-clip")
    video_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


MODEL_ARGS = ["--model", "EventCLIP-Tiny", "--pretrained", "none", "--device", "cpu", "--stack", "8", "--batch-size", "16"]


@pytest.fixture(scope="module")
def ucf_folder(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(videos dir with 2 test videos, annotation file listing them and a missing one, a normal reference video)."""
    root = tmp_path_factory.mktemp("ucf")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "Fight001_x264.mkv", scene(96, seed=3, anomaly=range(48, 96)))
    write_video(videos / "Normal_Videos_002_x264.mkv", scene(48, seed=4))
    ann = root / "Temporal_Anomaly_Annotation.txt"
    ann.write_text(
        "Fight001_x264.mp4  Fighting  48  95  -1  -1\n"
        "Normal_Videos_002_x264.mp4  Normal  -1  -1  -1  -1\n"
        "Robbery009_x264.mp4  Robbery  10  20  -1  -1\n"
    )
    reference = write_video(root / "normal_ref.mkv", scene(160, seed=1))
    return videos, ann, reference


@pytest.mark.parametrize("ten", [False, True], ids=["single", "ten_crop"])
def test_cli_ucf_protocol_writes_the_bag_report(ucf_folder, tmp_path, capsys, ten):
    videos, ann, reference = ucf_folder
    torch.manual_seed(0)
    out = tmp_path / "eval"
    crop = ["--ten-crop", "--crop-size", "80x60"] if ten else []
    assert (
        run_cli(
            [
                "video-anomaly",
                "--videos-dir",
                str(videos),
                "--annotations",
                str(ann),
                "--out",
                str(out),
                "--reference",
                str(reference),
                "--k",
                "3",
                *crop,
                *MODEL_ARGS,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {REPORT_FILE, METRICS_FILE, WINDOWS_FILE, ROC_PNG, PR_PNG}
    metrics = json.loads((out / METRICS_FILE).read_text())
    frame = metrics["metrics"]["anomaly_frame"]
    print(f"{'10-crop' if ten else 'single'} frame-level ROC-AUC {frame['roc_auc']:.3f}, AP {frame['average_precision']:.3f}")
    assert (frame["samples"], frame["positives"]) == (96 + 48, 48)
    assert frame["roc_auc"] > 0.8 and frame["average_precision"] > 0.6
    assert f"ROC-AUC {frame['roc_auc']:.3f}" in printed
    assert [v["name"] for v in metrics["videos"]] == ["Fight001_x264.mkv", "Normal_Videos_002_x264.mkv"]
    assert metrics["status"] == "incomplete" and "Robbery009_x264.mp4" in metrics["problems"][0]
    assert metrics["settings"]["ten_crop"] == ([60, 80] if ten else None)
    assert metrics["counters"] == {"videos": 2, "frames": 144, "segments": 18}
    rows = list(csv.DictReader(open(out / WINDOWS_FILE)))
    assert [r["video"] for r in rows] == ["Fight001_x264.mkv"] * 12 + ["Normal_Videos_002_x264.mkv"] * 6
    assert [r["truth"] for r in rows[:12]] == ["normal"] * 6 + ["anomaly"] * 6
    # the frame-level numbers are those of the per-segment scores spread over their 8 frames each
    y = np.array([r["truth"] == "anomaly" for r in rows for _ in range(8)])
    s = np.array([float(r["anomaly_score"]) for r in rows for _ in range(8)])
    assert frame["roc_auc"] == pytest.approx(roc_auc(y, s), abs=1e-5)
    report = (out / REPORT_FILE).read_text()
    assert "## Anomaly, frame level" in report and "| Fight001_x264.mkv | 96 | 48 | 12 |" in report


def test_cli_ucf_single_video_and_bad_inputs(ucf_folder, tmp_path, capsys):
    videos, ann, reference = ucf_folder
    torch.manual_seed(0)
    out = tmp_path / "one"
    assert (
        run_cli(["video-anomaly", str(videos / "Fight001_x264.mkv"), "--annotations", str(ann), "--out", str(out), "--json", *MODEL_ARGS])
        == 0
    )  # text prompts
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["metrics"]["anomaly_frame"]["samples"] == 96 and result["problems"] == []
    assert json.loads((out / METRICS_FILE).read_text())["status"] == "complete"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0" * 100)
    ann2 = tmp_path / "ann2.txt"
    ann2.write_text(ann.read_text() + "broken.mp4 Abuse 1 5 -1 -1\n")
    assert (
        run_cli(
            [
                "video-anomaly",
                str(broken),
                str(videos / "Fight001_x264.mkv"),
                "--annotations",
                str(ann2),
                "--out",
                str(tmp_path / "two"),
                "--json",
                *MODEL_ARGS,
            ]
        )
        == 0
    )  # the unreadable video: a listed skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [v["name"] for v in result["videos"]] == ["Fight001_x264.mkv"] and "broken.mp4" in result["problems"][0]
    assert json.loads((tmp_path / "two" / METRICS_FILE).read_text())["status"] == "incomplete"
    stray = write_video(tmp_path / "stray.mkv", scene(8, seed=9))
    with pytest.raises(GroundTruthError, match="no annotation line for 'stray'"):
        run_cli(
            [
                "video-anomaly",
                str(videos / "Fight001_x264.mkv"),
                str(stray),
                "--annotations",
                str(ann),
                "--out",
                str(tmp_path / "x"),
                *MODEL_ARGS,
            ]
        )
    assert not (tmp_path / "x").exists()  # checked before any scoring
    with pytest.raises(SystemExit, match="exactly one VIDEO"):
        run_cli(["video-anomaly", str(stray), str(stray), *MODEL_ARGS])
    with pytest.raises(SystemExit, match="needs VIDEO arguments or --videos-dir"):
        run_cli(["video-anomaly", "--annotations", str(ann), *MODEL_ARGS])


def test_ten_crop_segment_score_is_the_mean_of_its_views():
    from event_clip_ros.apps.detector import Detector
    from event_clip_ros.apps.heads import AnomalyHead
    from event_clip_ros.apps.video_anomaly import (
        fit_reference,
        model_extraction,
        score_video,
    )
    from event_clip_ros.model import ModelSpec, create_event_clip
    from event_clip_ros.model.anomaly import ReferenceScorerConfig

    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))
    config = ExtractionConfig(stack=8, ten_crop=(48, 64))
    scorer = fit_reference(model, [as_frames(scene(16, seed=1))], config, ReferenceScorerConfig(k=3))
    assert len(scorer) == 2 * 10  # every view of the normal segments is in the bank
    frames = as_frames(scene(24, seed=2, anomaly=range(8, 24)))
    segments = list(score_video(Detector.for_head(model, AnomalyHead(scorer)), frames, config, batch_size=2))
    views = [ef.frame for ef in extract_event_frames(frames, model_extraction(model, config))]
    with torch.inference_mode():
        expected = [scorer.score(model.encode_frames(torch.from_numpy(v))).mean() for v in views]
    assert [s.first_frame for s in segments] == [0, 8, 16]
    np.testing.assert_allclose([s.score for s in segments], expected, rtol=1e-6)
    assert len({round(s.score, 6) for s in segments}) > 1
