"""Image input of the detector (RGB-only robots): sensor_msgs/Image through the paper's frame differences.

* ROS-free: the image input (ImageInput.feed of serialised sensor_msgs/Image, feed_image of decoded
  images) and Detector.infer give, window by window, what the offline video computation gives for
  the same frames (extract_event_frames at the model input + encode_frames + the zero-shot
  classifier); stamps are the stacks' last header stamps; rgb8, bgr8 (row padding too) and mono8
  decode to what the extractor expects; other encodings, short data and unparsable messages are
  counted skips; a size change or a stamp going back closes the open stack; parameters build the config.
* Real DDS: the node with input_type sensor_msgs/msg/Image publishes Classifications equal to the
  offline results window by window (labels, scores, stamps, frame_id).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from event_clip_ros.apps.detector import Detector
from event_clip_ros.apps.detector_config import DetectorConfig
from event_clip_ros.apps.detector_params import (
    config_from_parameters,
    normalise_input_type,
    normalise_msgtype,
)
from event_clip_ros.apps.event_input import IMAGE_MSGTYPE, ImageInput, decode_image, make_input
from event_clip_ros.apps.video_anomaly import model_extraction
from event_clip_ros.events.ros_cdr import encode_image
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.checkpoint import save_checkpoint
from event_clip_ros.model.zero_shot import ZeroShotClassifier
from event_clip_ros.video.extraction import ExtractionConfig, extract_event_frames
from event_clip_ros.video.reader import VideoFrame

W, H = 64, 48
LABELS = ("disc", "bar", "square")
STACK = 8
STAMP0_NS = 1_700_000_000_000_000_000
PERIOD_NS = 33_333_333  # 30 fps


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("detector_image") / "tiny.safetensors"
    save_checkpoint(create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu")), path)
    return path


def colour_scene(n_frames: int, seed: int = 0) -> list[np.ndarray]:
    """BGR frames: a red disc sliding over a coloured texture, a green bar blinking every third frame, and a
    patch whose blue channel alone toggles by 60 (gray change 0.114 * 60 < 10: no change; read as red it
    would be 0.299 * 60 > 10, so a channel-order mistake changes the event frames)."""
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.uniform(40, 200, (H, W, 3)).astype(np.float32), (0, 0), 2)
    frames = []
    for i in range(n_frames):
        img = bg.copy()
        cx = W / 2 + 0.35 * W * np.sin(0.3 * i)
        cv2.circle(img, (int(round(cx * 16)), int(round(H / 2 * 16))), 9 * 16, (30.0, 40.0, 230.0), -1, cv2.LINE_AA, shift=4)
        if i % 3 == 0:
            cv2.rectangle(img, (6, 4 + i % 20), (14, 24 + i % 20), (20.0, 220.0, 30.0), -1)
        img[30:46, 40:62, 0] = 60.0 + 60.0 * (i % 2)
        frames.append(np.rint(img).astype(np.uint8))
    return frames


def stamps(n: int) -> list[int]:
    return [STAMP0_NS + i * PERIOD_NS for i in range(n)]


def offline_results(model, frames: list[np.ndarray], extraction: ExtractionConfig, top_k: int = 3):
    """The offline video computation on the same frames: (stack last frame index, top-k LabelScores) per event frame."""
    video = [VideoFrame(i, s // 1000, f) for i, (f, s) in enumerate(zip(frames, stamps(len(frames))))]
    classifier = ZeroShotClassifier(model, LABELS)
    event_frames = list(extract_event_frames(video, model_extraction(model, extraction)))
    with torch.inference_mode():
        emb = model.encode_frames(torch.from_numpy(np.stack([ef.frame for ef in event_frames])))
    return [(ef.first_frame + ef.n_frames - 1, tuple(top)) for ef, top in zip(event_frames, classifier.classify(emb, top_k))]


def image_detector(checkpoint: Path, extraction: ExtractionConfig = ExtractionConfig(stack=STACK)
                   ) -> tuple[ImageInput, Detector]:
    """The node's data path for images: its image input and a loaded detector."""
    config = DetectorConfig(labels=LABELS, top_k=3, extraction=extraction, model=ModelSpec(checkpoint=str(checkpoint), device="cpu"))
    det = Detector(config)
    det.load()
    return make_input(IMAGE_MSGTYPE, config), det


def image_cdr(image: np.ndarray, stamp: int, encoding: str = "rgb8", frame_id: str = "cam") -> bytes:
    """A serialised sensor_msgs/Image of a BGR ``image`` (rgb8: channels swapped) as the node receives it."""
    data = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if encoding == "rgb8" else image
    return encode_image(data.tobytes(), encoding=encoding, width=image.shape[1], height=image.shape[0],
                        step=image.shape[1] * (3 if image.ndim == 3 else 1), stamp_ns=stamp, frame_id=frame_id)


def assert_same_labels(got, expected) -> None:
    assert [s.label for s in got] == [s.label for s in expected]
    assert [s.score for s in got] == pytest.approx([s.score for s in expected], abs=1e-5)


def test_feed_image_equals_the_offline_video_path_window_by_window(checkpoint):
    frames = colour_scene(5 * STACK + 3)  # 5 full stacks and a partial one of 3 frames
    source, det = image_detector(checkpoint)
    expected = offline_results(det.model, frames, ExtractionConfig(stack=STACK))
    pending = []
    for image, stamp in zip(frames, stamps(len(frames))):
        pending += source.feed_image(image, stamp, "cam")
    assert len(pending) == 5
    pending += source.flush()
    results = det.infer_all(pending)
    assert len(results) == len(expected) == 6
    for r, (last, top) in zip(results, expected):
        assert r.stamp_ns == STAMP0_NS + last * PERIOD_NS and r.frame_id == "cam" and r.n_events == 0
        assert r.t_end_us == (STAMP0_NS + last * PERIOD_NS) // 1000 + 1
        assert_same_labels(r.labels, top)
    assert [r.index for r in results] == list(range(6))
    assert results[1].t_start_us == (STAMP0_NS + STACK * PERIOD_NS) // 1000
    # the frame published on ~/frame: the event frame at image resolution
    frame = det.frame(pending[0])
    assert frame.shape == (H, W) and frame.dtype == np.uint8 and frame.max() == 255
    counters = {**source.counters(), **det.counters()}
    assert counters["images"] == len(frames) and counters["windows"] == 6 and counters["bad_images"] == 0
    assert counters["inferred_windows"] == 6


def test_encodings_decode_to_what_the_extractor_takes():
    bgr = colour_scene(1)[0]
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode_image("rgb8", H, W, 3 * W, rgb.tobytes()), bgr)
    padded = np.zeros((H, 3 * W + 8), np.uint8)
    padded[:, : 3 * W] = bgr.reshape(H, -1)
    assert np.array_equal(decode_image("bgr8", H, W, 3 * W + 8, padded.tobytes()), bgr)
    gray = bgr[:, :, 1].copy()
    assert np.array_equal(decode_image("mono8", H, W, W, memoryview(gray.tobytes())), gray)
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422'"):
        decode_image("yuv422", H, W, 2 * W, bytes(2 * W * H))
    with pytest.raises(ValueError, match="needs"):
        decode_image("bgr8", H, W, 3 * W, bytes(3 * W * H - 1))
    with pytest.raises(ValueError, match="geometry"):
        decode_image("mono8", H, W, W - 1, bytes(W * H))


def test_serialised_images_bad_ones_counted_and_restarts(checkpoint):
    frames = colour_scene(3 * STACK)
    source, det = image_detector(checkpoint)
    reference = ImageInput(ExtractionConfig(stack=STACK))
    pending, expected = [], []
    for i, (image, stamp) in enumerate(zip(frames, stamps(len(frames)))):
        pending += source.feed(image_cdr(image, stamp, "rgb8" if i % 2 else "bgr8"))
        expected += reference.feed_image(image, stamp, "cam")
        if i == 4:  # skipped and counted; the stack goes on as if they had not come
            assert source.feed(encode_image(bytes(2 * W * H), encoding="16UC1", width=W, height=H, step=2 * W,
                                            stamp_ns=stamp)) == []
            assert source.feed(encode_image(bytes(10), encoding="mono8", width=W, height=H, step=W, stamp_ns=stamp)) == []
            assert source.feed(image_cdr(image, stamp)[:-7]) == []  # truncated message
    assert [(w.stamp_ns, w.frame_id) for w in pending] == [(w.stamp_ns, w.frame_id) for w in expected]
    assert [r.labels for r in det.infer_all(pending)] == [r.labels for r in det.infer_all(expected)]
    assert source.counters()["bad_images"] == 3 and source.counters()["decode_errors"] == 3
    assert source.counters()["stream_restarts"] == 0

    # 5 images, then a smaller camera: the open stack (5 frames) is emitted, a new one starts
    source, det = image_detector(checkpoint)
    for image, stamp in zip(frames[:5], stamps(5)):
        assert source.feed_image(image, stamp) == []
    small = cv2.resize(frames[5], (32, 24))
    closed = source.feed_image(small, stamps(6)[5])
    assert len(closed) == 1 and closed[0].size.width == W and closed[0].stamp_ns == stamps(5)[4]
    # a stamp going back (bag loop) closes the stack too; within the tolerance it does not
    assert source.feed_image(small, stamps(6)[5] - 5_000_000) == []
    assert len(source.feed_image(small, STAMP0_NS)) == 1
    assert source.counters()["stream_restarts"] == 2


def test_parameters_select_image_input_and_the_extraction():
    config, msgtype = config_from_parameters({"labels": ["a"], "input_type": "sensor_msgs/Image", "pretrained": "none",
                                              "image_diff_threshold": 20, "image_stack": 4, "image_clamp": 0.0,
                                              "image_on_value": 255})
    assert msgtype == IMAGE_MSGTYPE
    assert config.extraction == ExtractionConfig(threshold=20, stack=4, clamp=None, on_value=255)
    default, _ = config_from_parameters({"labels": ["a"]})
    assert default.extraction == ExtractionConfig(threshold=10, stack=16, clamp=10.0, on_value=1)
    assert normalise_input_type("dvs_msgs/EventArray") == "dvs_msgs/msg/EventArray"
    with pytest.raises(ValueError, match="not supported"):
        normalise_msgtype("sensor_msgs/Image")  # not an event message type
    with pytest.raises(ValueError, match="sensor_msgs/msg/Image"):
        normalise_input_type("sensor_msgs/CompressedImage")
    with pytest.raises(ValueError, match="image_"):
        config_from_parameters({"labels": ["a"], "image_stack": 4096, "image_on_value": 255})
    with pytest.raises(ValueError, match="out_size"):
        DetectorConfig(labels=("a",), extraction=ExtractionConfig(out_size=(224, 224)))


# ---------------------------------------------------------------------- real DDS
def image_msg(image: np.ndarray, stamp: int, encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    from event_clip_ros.ros.messages import header

    data = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if encoding == "rgb8" else image
    return Image(header=header(stamp, "cam"), height=image.shape[0], width=image.shape[1], encoding=encoding,
                 is_bigendian=False, step=data.shape[1] * (data.shape[2] if data.ndim == 3 else 1),
                 data=data.tobytes())


@pytest.mark.ros
def test_node_on_images_publishes_the_offline_results_window_by_window(ros, checkpoint):
    from sensor_msgs.msg import Image
    from test_ros_detector import DetectorClient, stamp_ns

    from event_clip_ros.ros.node import IMAGE_QOS

    client = DetectorClient(ros, "rgb", Image, f"checkpoint:={checkpoint}", f"labels:={list(LABELS)}",
                            f"input_type:={IMAGE_MSGTYPE}", f"image_stack:={STACK}")
    client.pub = ros.node.create_publisher(Image, f"{client.base}/image", IMAGE_QOS)
    frames = colour_scene(4 * STACK)
    probe = image_msg(frames[0], STAMP0_NS, encoding="yuv422")  # counted as a bad image, changes no stack

    client.wait_subscribed()
    ros.spin_until(lambda: client.pub.publish(probe) or int(client.values().get("images", "0")) > 0, "a probe received",
                   timeout_s=30, watch=client.proc)
    model = create_event_clip(ModelSpec(checkpoint=str(checkpoint), device="cpu"))
    expected = offline_results(model, frames, ExtractionConfig(stack=STACK))
    assert len(expected) == 4
    for i, (image, stamp) in enumerate(zip(frames, stamps(len(frames)))):
        client.pub.publish(image_msg(image, stamp))  # lockstep: keep-last-5 best effort must not overflow
        client.wait_diagnostics(lambda v, i=i: int(v["images"]) - int(v["bad_images"]) > i, f"image {i} received")
        if (i + 1) % STACK == 0:
            ros.spin_until(lambda i=i: len(client.results) >= (i + 1) // STACK, "a result", timeout_s=30, watch=client.proc)
    assert len(client.results) == len(expected)
    for msg, (last, top) in zip(client.results, expected):
        assert [h.class_id for h in msg.results] == [s.label for s in top]
        assert [h.score for h in msg.results] == pytest.approx([s.score for s in top], abs=1e-5)
        assert stamp_ns(msg.header) == STAMP0_NS + last * PERIOD_NS and msg.header.frame_id == "cam"
    values = client.wait_diagnostics(lambda v: int(v["inferred_windows"]) == 4, "diagnostics")
    assert int(values["windows"]) == 4 and int(values["images"]) - int(values["bad_images"]) == len(frames)
    assert int(values["bad_images"]) >= 1 and values["dropped_windows"] == "0"
    assert float(values["image_rate_hz"]) >= 0 and values["state"] == "active"
    client.stop()
