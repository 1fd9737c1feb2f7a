"""Video path: streaming reader, the paper's frame-difference extraction, simulated event streams,
anomaly scores of video segments and the video CLI, on videos the tests write with OpenCV."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from event_clip_ros.apps.detector import Detector
from event_clip_ros.apps.heads import AnomalyHead
from event_clip_ros.apps.video_anomaly import (
    SegmentScore,
    fit_reference,
    frame_scores,
    score_video,
)
from event_clip_ros.cli import video_cmds
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.simulate import SimulatorConfig
from event_clip_ros.events.types import SensorSize, concat_events
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.anomaly import ReferenceScorerConfig
from event_clip_ros.video.extraction import (
    ExtractionConfig,
    FrameDiffExtractor,
    extract_event_frames,
)
from event_clip_ros.video.reader import VideoFileError, VideoFrame, VideoReader
from event_clip_ros.video.to_events import EVT3_MAX_SIDE, video_events, write_video_evt3

from video_scenes import FPS, H, W, as_frames, scene, write_video

torch.set_num_threads(1)



# ---------------------------------------------------------------------- synthetic videos
def decode_all(path: Path) -> list[np.ndarray]:
    """Plain OpenCV decoding, independent of VideoReader."""
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(f)


@pytest.fixture(scope="module")
def shapes_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "shapes.mkv", scene(40, seed=0, anomaly=range(20, 40)))


# ---------------------------------------------------------------------- reader
def test_reader_streams_frames_with_times(shapes_video):
    with VideoReader(shapes_video) as reader:
        assert reader.size == (W, H) and reader.fps == FPS and reader.frame_count_hint == 40
        frames = list(reader.frames())
    assert [f.index for f in frames] == list(range(40))
    assert [f.t_us for f in frames] == [i * 40_000 for i in range(40)]
    assert all(np.array_equal(f.image, g) for f, g in zip(frames, decode_all(shapes_video)))
    with VideoReader(shapes_video, fps=10.0, resize=(48, 36)) as reader:
        frames = list(reader.frames(max_frames=3))
    assert [f.t_us for f in frames] == [0, 100_000, 200_000]
    assert frames[0].image.shape == (36, 48, 3) and frames[0].image.dtype == np.uint8


def test_reader_rejects_bad_input_clearly(tmp_path):
    with pytest.raises(VideoFileError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 64)
    with pytest.raises(VideoFileError, match="not a video|no decodable"):
        VideoReader(junk)
    empty = tmp_path / "empty.mkv"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"FFV1"), FPS, (W, H)).release()  # zero frames
    with pytest.raises(VideoFileError, match="not a video|no decodable"):
        VideoReader(empty)
    with pytest.raises(ValueError, match="fps"):
        VideoReader(junk, fps=0.0)
    with pytest.raises(ValueError, match="resize"):
        VideoReader(junk, resize=(0, 10))


# ---------------------------------------------------------------------- extraction
def direct_event_frame(images: list[np.ndarray], threshold: int, clamp: float | None) -> np.ndarray:
    """The formula on gray frames, in plain numpy: sum over pairs of [|F_i - F_{i-1}| > thr], clamped, / max."""
    gray = np.stack([im[..., 0].astype(np.int32) for im in images])
    s = (np.abs(np.diff(gray, axis=0)) > threshold).sum(axis=0).astype(np.float64)
    if clamp is not None:
        s = np.minimum(s, clamp)
    return (s / s.max() if s.max() > 0 else s).astype(np.float32)


@pytest.mark.parametrize("threshold, stack, clamp", [(10, 16, 10.0), (25, 8, None), (3, 5, 2.0)])
def test_extraction_equals_the_formula(shapes_video, threshold, stack, clamp):
    decoded = decode_all(shapes_video)
    assert all(np.array_equal(im[..., 0], im[..., 2]) for im in decoded)  # gray video: luma == any channel
    with VideoReader(shapes_video) as reader:
        out = list(extract_event_frames(reader.frames(), ExtractionConfig(threshold, stack, clamp)))
    starts = list(range(0, 40, stack))
    if 40 - starts[-1] < 2:  # a single trailing frame makes no event frame
        starts.pop()
    assert [ef.first_frame for ef in out] == starts
    for k, ef in enumerate(out):
        part = decoded[ef.first_frame : ef.first_frame + stack]
        assert ef.index == k and ef.n_frames == len(part)
        assert (ef.t_start_us, ef.t_end_us) == (ef.first_frame * 40_000, (ef.first_frame + len(part) - 1) * 40_000)
        np.testing.assert_array_equal(ef.frame, direct_event_frame(part, threshold, clamp))
    assert max(float(ef.frame.max()) for ef in out) == 1.0


def test_extraction_by_hand_pins_diff_then_gray_and_strict_threshold():
    a = np.zeros((1, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (200, 0, 0)  # blue 200: luma of the difference 0.114 * 200 ~ 23 > 10
    b[0, 1] = (0, 15, 0)  # green 15: 0.587 * 15 ~ 9 <= 10
    b[0, 2] = (0, 0, 76)  # red 76: luma ~ 23 > 10
    c = b.copy()
    c[0, 2] = (200, 0, 0)  # same luma as (0, 0, 76), but |c - b| = (200, 0, 76) has luma ~ 45: diff first, then gray
    c[0, 3] = (0, 0, 0)
    ex = FrameDiffExtractor(ExtractionConfig(threshold=10, stack=3, clamp=None))
    assert ex.push(VideoFrame(0, 0, a)) is None and ex.push(VideoFrame(1, 10, b)) is None
    ef = ex.push(VideoFrame(2, 20, c))
    # pair (a, b): pixels 0, 2 changed; pair (b, c): pixels 0 (200 -> 200: no), 2 changed -> sums 1, 0, 2, 0
    np.testing.assert_array_equal(ef.frame, np.array([[0.5, 0.0, 1.0, 0.0]], np.float32))
    assert ex.flush() is None  # nothing pending after a full stack
    gray = np.full((2, 2), 100, np.uint8)
    ex = FrameDiffExtractor(ExtractionConfig(threshold=10, stack=3))
    ex.push(VideoFrame(0, 0, gray))
    ex.push(VideoFrame(1, 10, gray + 10))  # exactly the threshold: not changed
    np.testing.assert_array_equal(ex.flush().frame, np.zeros((2, 2), np.float32))  # static: zeros, never NaN


def test_readme_on_value_gives_a_binary_mask_and_out_size_resizes(shapes_video):
    with VideoReader(shapes_video) as reader:
        frames = list(reader.frames())
    counted = next(extract_event_frames(frames, ExtractionConfig()))
    readme = next(extract_event_frames(frames, ExtractionConfig(on_value=255)))
    np.testing.assert_array_equal(readme.frame, (counted.frame > 0).astype(np.float32))
    small = next(extract_event_frames(frames, ExtractionConfig(out_size=(36, 48))))
    assert small.frame.shape == (36, 48) and 0.0 <= small.frame.min() and small.frame.max() <= 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [({"threshold": 256}, "threshold"), ({"stack": 1}, "stack"), ({"clamp": 0.0}, "clamp"),
     ({"on_value": 0}, "on_value"), ({"on_value": 255, "stack": 300}, "overflows"), ({"out_size": (0, 4)}, "out_size")],
)
def test_extraction_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExtractionConfig(**kwargs)


def test_extractor_rejects_inconsistent_frames():
    ex = FrameDiffExtractor()
    ex.push(VideoFrame(0, 0, np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ValueError, match="stack started"):
        ex.push(VideoFrame(1, 1, np.zeros((4, 5, 3), np.uint8)))
    with pytest.raises(ValueError, match="uint8"):
        ex.push(VideoFrame(1, 1, np.zeros((4, 4, 3), np.float32)))


# ---------------------------------------------------------------------- event-stream mode
def test_event_stream_round_trips_through_evt3(shapes_video, tmp_path):
    config = SimulatorConfig(contrast_threshold=0.15, noise_rate_hz=2.0, seed=3)
    with VideoReader(shapes_video) as reader:
        frames = list(reader.frames())
    expected = concat_events(list(video_events(frames, SensorSize(W, H), config)))
    n = write_video_evt3(iter(frames), SensorSize(W, H), tmp_path / "v.raw", config)
    assert n == expected.size > 1000
    with open_events(tmp_path / "v.raw") as reader:
        assert (reader.format, reader.size) == ("evt3", SensorSize(W, H))
        got = concat_events(list(reader.chunks()))
    for field in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(got[field], expected[field])
    assert 0 < got["t"][0] and got["t"][-1] <= 39 * 40_000  # the first frame only sets the reference
    assert set(np.unique(got["p"]).tolist()) == {0, 1}


def test_event_stream_refuses_sizes_evt3_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="EVT3 holds at most"):
        write_video_evt3(iter([]), SensorSize(EVT3_MAX_SIDE + 1, 8), tmp_path / "big.raw")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------- anomaly scores
@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))


def roc_auc(negatives, positives) -> float:
    """ROC-AUC by the Mann-Whitney statistic: P(positive > negative), ties counting one half."""
    diff = np.asarray(positives, np.float64)[:, None] - np.asarray(negatives, np.float64)[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_reference_scorer_separates_the_anomalous_segment(model):
    """Bank: segments of two normal videos; scored: a video whose second half has an extra crossing square."""
    config = ExtractionConfig(stack=8)
    normal = [as_frames(scene(160, seed=s)) for s in (1, 2)]
    scorer = fit_reference(model, normal, config, ReferenceScorerConfig(k=3))
    assert len(scorer) == 40
    test_frames = as_frames(scene(160, seed=3, anomaly=range(80, 160)))
    segments = list(score_video(Detector.for_head(model, AnomalyHead(scorer)), test_frames, config, batch_size=8))
    assert [s.first_frame for s in segments] == list(range(0, 160, 8))
    truth = np.arange(160) >= 80
    per_frame = frame_scores(segments, 160)
    auc = roc_auc(per_frame[~truth], per_frame[truth])
    print(f"frame-level ROC-AUC {auc:.3f}")
    assert auc > 0.8


def test_frame_scores_spread_segments_over_their_frames():
    segs = [SegmentScore(0, 0, 3, 0, 2, 0.25, False), SegmentScore(1, 3, 2, 3, 4, 0.75, True)]
    np.testing.assert_array_equal(frame_scores(segs, 6), np.array([0.25] * 3 + [0.75] * 3, np.float32))
    with pytest.raises(ValueError, match="cover 5 frames"):
        frame_scores(segs, 4)
    with pytest.raises(ValueError, match="expected 0"):
        frame_scores(segs[1:], 6)
    with pytest.raises(ValueError, match="no segments"):
        frame_scores([], 6)


# ---------------------------------------------------------------------- CLI
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="event-clip")
    video_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_video2events_both_modes(shapes_video, tmp_path, capsys):
    assert run_cli(["video2events", str(shapes_video), str(tmp_path / "frames"), "--stack", "16", "--frame-size", "48x36"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "frames" / "frames.csv")))
    assert [int(r["first_frame"]) for r in rows] == [0, 16, 32] and [int(r["n_frames"]) for r in rows] == [16, 16, 8]
    png = cv2.imread(str(tmp_path / "frames" / rows[0]["file"]), cv2.IMREAD_UNCHANGED)
    assert png.shape == (36, 48) and png.max() == 255
    assert run_cli(["video2events", str(shapes_video), str(tmp_path / "v.raw"), "--mode", "events", "--max-frames", "10"]) == 0
    with open_events(tmp_path / "v.raw") as reader:
        ev = concat_events(list(reader.chunks()))
    assert ev.size > 0 and ev["t"][-1] <= 9 * 40_000
    assert "events" in capsys.readouterr().out
    for storage in ("mcap", "sqlite3"):  # any other name: a bag of EventPackets with the same events
        bag = tmp_path / f"v_{storage}"
        assert run_cli(["video2events", str(shapes_video), str(bag), "--mode", "events", "--max-frames", "10",
                        "--packet-ms", "5", "--storage", storage]) == 0
        with open_events(bag) as reader:
            assert reader.format.startswith("rosbag") and np.array_equal(concat_events(list(reader.chunks())), ev)
    assert "as a bag of 5 ms EventPackets" in capsys.readouterr().out


def test_cli_video_anomaly_with_a_reference_video_and_a_saved_bank(shapes_video, tmp_path, capsys):
    normal = write_video(tmp_path / "normal.mkv", scene(64, seed=5))
    model_args = ["--model", "EventCLIP-Tiny", "--pretrained", "none", "--device", "cpu", "--stack", "8"]
    torch.manual_seed(0)
    bank = tmp_path / "bank.npz"
    assert run_cli(["video-anomaly", str(shapes_video), "--reference", str(normal), "--save-reference", str(bank),
                    "--json", "--frame-scores", str(tmp_path / "scores.csv"), *model_args]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["first_frame"] for r in lines] == list(range(0, 40, 8)) and bank.exists()
    scores = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert len(scores) == 40 and float(scores[39]["score"]) == pytest.approx(lines[-1]["score"], abs=1e-6)
    torch.manual_seed(0)  # the same random weights, so the saved bank matches the model
    assert run_cli(["video-anomaly", str(shapes_video), "--reference", str(bank), "--json", *model_args]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["score"] for r in again] == [r["score"] for r in lines]
    assert run_cli(["video-anomaly", str(shapes_video), "--json", *model_args]) == 0  # text prompts, no reference
    text = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(text) == 5 and all(0.0 <= r["score"] <= 1.0 and r["anomaly"] == (r["score"] > 0.5) for r in text)


def test_cli_reports_an_unreadable_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(VideoFileError):
        run_cli(["video2events", str(bad), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
