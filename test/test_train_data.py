"""Training datasets: synthetic glyphs in saccades, real paired layouts on fake trees, augmentations, batching."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from event_clip_ros.events.frames import FrameConfig, build_frame, build_frames_torch
from event_clip_ros.events.types import EVENT_DTYPE, SensorSize, make_events
from event_clip_ros.sim.glyph_scene import glyph_sequence
from event_clip_ros.sim.glyphs import ALL_CLASSES, SHAPES, GlyphParams, caption, class_prompt, render
from event_clip_ros.sim.saccades import saccade_events
from event_clip_ros.train.data import (
    ClassSplit,
    EventAugmentConfig,
    FrameAugmentConfig,
    ListPaired,
    ListPairedConfig,
    NImageNetConfig,
    NImageNetPaired,
    SaccadeConfig,
    SyntheticConfig,
    SyntheticGlyphs,
    augment_events,
    augment_frames,
    collate_samples,
    kshot_indices,
    match_classes,
    random_window,
    recommended_frame_config,
    seed_worker,
)
from event_clip_ros.train.data.augment import (
    add_correlated_events,
    random_resized_crop_boxes,
    random_shift,
    time_flip,
)
from event_clip_ros.train.data.paired import load_class_list, nimagenet_image_path, read_list_file

from event_files import random_events, write_atis_bin, write_nimagenet

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"


def _same_sample(a: dict, b: dict) -> bool:
    return (np.array_equal(a["events"], b["events"]) and np.array_equal(a["image"], b["image"])
            and a["caption"] == b["caption"] and a["label"] == b["label"] and a["size"] == b["size"])


def _edge_correlation(sample: dict) -> float:
    """Correlation of the event frame with the Sobel edge magnitude of the paired image."""
    frame = build_frame(sample["events"], sample["size"], FrameConfig(out_size=None))
    img = sample["image"].astype(np.float32)
    mag = np.hypot(cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1))
    return float(np.corrcoef(frame.ravel(), mag.ravel())[0, 1])


# --- synthetic glyphs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def glyphs() -> SyntheticGlyphs:
    return SyntheticGlyphs(SyntheticConfig(image_size=48, samples_per_class=3, seed=7))


def test_synthetic_is_deterministic_per_seed_and_index(glyphs):
    again = SyntheticGlyphs(SyntheticConfig(image_size=48, samples_per_class=3, seed=7))
    order = [40, 3, 0, 131, 77]
    for i in order:  # any order, any instance: item i is a function of (seed, i)
        assert _same_sample(glyphs[i], again[i])
    other = SyntheticGlyphs(SyntheticConfig(image_size=48, samples_per_class=3, seed=8))
    assert not np.array_equal(glyphs[3]["events"], other[3]["events"])
    assert glyphs[3]["caption"] != other[3]["caption"] or not np.array_equal(glyphs[3]["image"], other[3]["image"])


def test_synthetic_class_subset_keeps_instances(glyphs):
    subset = SyntheticGlyphs(SyntheticConfig(image_size=48, samples_per_class=3, seed=7, classes=("k", "3")))
    assert subset.classes == ["k", "3"] and len(subset) == 6
    # instance 1 of "k": index 1 * 2 + 0 in the subset, 1 * 44 + 20 in the full set
    full_k1 = glyphs[len(glyphs.classes) + glyphs.classes.index("k")]
    sub_k1 = subset[2]
    assert sub_k1["label"] == 0 and full_k1["label"] == glyphs.classes.index("k")
    assert np.array_equal(sub_k1["events"], full_k1["events"]) and sub_k1["caption"] == full_k1["caption"]


def test_glyph_sequence_shows_the_training_instances_one_after_another(glyphs):
    """``event-clip simulate --scene glyphs`` (sim.glyph_scene) draws instance 0 of each class as the training set does."""
    events, size, segments = glyph_sequence(("k", "3", "star"), 48, seed=7)
    duration_us = SyntheticConfig().saccades.duration_us
    assert size == glyphs.size and [s.label for s in segments] == ["k", "3", "star"]
    start = 0
    for k, segment in enumerate(segments):
        assert (segment.t_start_us, segment.t_end_us) == (k * duration_us, (k + 1) * duration_us)
        item = glyphs[glyphs.classes.index(segment.label)]["events"]
        shown = events[start : start + len(item)].copy()
        shown["t"] -= segment.t_start_us
        assert np.array_equal(shown, item)
        start += len(item)
    assert start == len(events)
    with pytest.raises(ValueError, match="image_size"):
        glyph_sequence(("k",), 8)


def test_synthetic_classes_are_balanced_and_labels_match(glyphs):
    n = len(ALL_CLASSES)
    assert glyphs.classes == list(ALL_CLASSES) and len(glyphs) == 3 * n
    assert Counter(glyphs.labels().tolist()) == {c: 3 for c in range(n)}
    for i in (0, 5, n + 1, 2 * n + 43):
        assert glyphs[i]["label"] == glyphs.label(i) == glyphs.labels()[i]
    assert glyphs.prompts()[:1] == ["the digit 0"] and glyphs.prompts()[10] == "the letter a"
    assert class_prompt("k") == "the letter k" and class_prompt("3") == "the digit 3"
    assert class_prompt("star") == "a star shape"
    with pytest.raises(IndexError):
        glyphs[len(glyphs)]
    with pytest.raises(ValueError, match="unknown classes"):
        SyntheticConfig(classes=("K",))
    assert SyntheticConfig(classes="shapes").classes == SHAPES


def test_synthetic_events_are_sane_and_frames_show_the_glyph(glyphs):
    sat = SaccadeConfig()
    correlations = []
    for i in range(len(ALL_CLASSES)):  # one instance of every class
        s = glyphs[i]
        ev = s["events"]
        assert ev.dtype == EVENT_DTYPE and s["size"] == SensorSize(48, 48)
        assert 500 < ev.size < 30_000, (s["caption"], ev.size)
        assert np.all(np.diff(ev["t"]) >= 0) and ev["t"][0] >= 0 and ev["t"][-1] <= sat.duration_us
        assert ev["x"].max() < 48 and ev["y"].max() < 48
        assert 0.2 < ev["p"].mean() < 0.8  # edges pass both ways: ON and OFF
        assert s["image"].dtype == np.uint8 and s["image"].shape == (48, 48)
        correlations.append(_edge_correlation(s))
    assert min(correlations) > 0.3, min(correlations)


def test_saccade_pixel_model_refractory_and_no_motion():
    cfg = SaccadeConfig(read_noise_sigma=0.0, noise_rate_hz=0.0, refractory_us=3000)
    flat = np.full((32, 32), 0.5, dtype=np.float32)
    assert saccade_events(flat, cfg, np.random.default_rng(0)).size == 0  # nothing moves, nothing fires
    disc = flat.copy()
    cv2.circle(disc, (16, 16), 8, 1.0, -1, cv2.LINE_AA)
    ev = saccade_events(disc, cfg, np.random.default_rng(0))
    assert ev.size > 100
    order = np.lexsort((ev["t"], ev["y"].astype(np.int64) * 32 + ev["x"]))
    pix = ev["y"][order].astype(np.int64) * 32 + ev["x"][order]
    gaps = np.diff(ev["t"][order])[pix[1:] == pix[:-1]]
    assert gaps.size and gaps.min() >= 3000  # no pixel fires twice within its refractory period
    noisy = saccade_events(flat, SaccadeConfig(read_noise_sigma=0.0, noise_rate_hz=50.0), np.random.default_rng(0))
    expected = 50.0 * 32 * 32 * 0.3  # background events only: Poisson mean of rate x pixels x 0.3 s
    assert abs(noisy.size - expected) < 5 * np.sqrt(expected)
    with pytest.raises(ValueError, match="saccades"):
        SaccadeConfig(saccades=1)


def test_synthetic_captions_describe_instances(glyphs):
    per_class = SyntheticGlyphs(SyntheticConfig(image_size=48, samples_per_class=12, classes=("k", "star")))
    captions = [per_class[i]["caption"] for i in range(0, len(per_class), 2)]  # the 12 instances of "k"
    assert all("letter k" in c for c in captions)
    assert len(set(captions)) >= 10  # attributes keep instances apart
    assert all("star shape" in per_class[i]["caption"] for i in range(1, len(per_class), 2))
    params = GlyphParams("k", "complex", True, 3, False, 0.3, 15.0, 0.2, 0.2, 0.9, 0.1)
    assert caption(params) == "a small bold italic letter k, tilted left, at the top left, in a serif font"
    shape = GlyphParams("star", "simplex", False, 1, False, 0.7, -20.0, 0.5, 0.8, 0.9, 0.1)
    assert caption(shape) == "a large thin outlined star shape, tilted right, at the bottom"
    img = render(params, 48)
    assert img.dtype == np.float32 and abs(float(img.min()) - 0.1) < 1e-6 and float(img.max()) > 0.85
    ink = img - np.float32(0.1)
    ys, xs = np.mgrid[:48, :48]
    centre = ((xs * ink).sum() / ink.sum(), (ys * ink).sum() / ink.sum())
    assert np.allclose(centre, (0.2 * 48 - 0.5, 0.2 * 48 - 0.5), atol=2.0)  # drawn at the top left


def test_synthetic_cache_and_epoch_keyed_augmentation():
    cached = SyntheticGlyphs(SyntheticConfig(samples_per_class=1, classes=("a",), cache=True))
    first = cached[0]
    assert cached[0] is first and not first["events"].flags.writeable
    aug = SyntheticGlyphs(SyntheticConfig(samples_per_class=1, classes=("a",), augment=EventAugmentConfig(
        reference_size=None, max_shift_px=3.0)))
    e0 = aug[0]["events"]
    assert np.array_equal(e0, aug[0]["events"])  # same epoch, same augmentation
    aug.set_epoch(1)
    assert not np.array_equal(e0, aug[0]["events"])
    assert np.array_equal(aug[0]["image"], first["image"])  # the paired image is not augmented


def test_synthetic_generation_speed():
    """A few ms per sample at 48 x 48 and 64 x 64 (the numbers are printed with -s)."""
    for side, budget_ms in ((48, 25.0), (64, 40.0)):
        ds = SyntheticGlyphs(SyntheticConfig(image_size=side, samples_per_class=2, seed=1))
        ds[0]  # compile / load the numba kernel
        start = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        ms = (time.perf_counter() - start) / len(ds) * 1e3
        print(f"synthetic {side}x{side}: {ms:.2f} ms/sample")
        assert ms < budget_ms


# --- augmentations ------------------------------------------------------------------------------


SENSOR = SensorSize(64, 48)


def test_random_window_takes_consecutive_events():
    ev = random_events(1000, SENSOR, seed=1)
    rng = np.random.default_rng(0)
    win = random_window(ev, 100, rng)
    start = int(np.flatnonzero(ev["t"] == win["t"][0])[0])
    assert win.size == 100 and np.array_equal(win, ev[start:start + 100])
    starts = {int(np.flatnonzero(ev == random_window(ev, 100, rng)[0])[0]) for _ in range(20)}
    assert len(starts) > 10
    assert random_window(ev[:50], 100, rng).size == 50


def test_time_flip_keeps_order_span_and_flips_polarity():
    ev = random_events(500, SENSOR, seed=2)
    flipped = time_flip(ev)
    assert np.all(np.diff(flipped["t"]) >= 0)
    assert flipped["t"][0] == ev["t"][0] and flipped["t"][-1] == ev["t"][-1]
    assert np.array_equal(flipped["p"], 1 - ev["p"][::-1]) and np.array_equal(flipped["x"], ev["x"][::-1])
    assert np.array_equal(time_flip(flipped), ev)


def test_random_shift_moves_everything_by_one_offset_within_bounds():
    ev = random_events(2000, SENSOR, seed=3)
    ev["t"] = np.arange(ev.size)  # unique times identify events
    for seed in range(5):
        out = random_shift(ev, SENSOR, np.random.default_rng(seed), (5, 4))
        src = ev[out["t"]]
        dx = out["x"].astype(int) - src["x"]
        dy = out["y"].astype(int) - src["y"]
        assert np.unique(dx).size == 1 and np.unique(dy).size == 1
        assert abs(dx[0]) <= 5 and abs(dy[0]) <= 4
        assert out["x"].max() < SENSOR.width and out["y"].max() < SENSOR.height
        inside = ((ev["x"] + dx[0] >= 0) & (ev["x"] + dx[0] < 64) & (ev["y"] + dy[0] >= 0) & (ev["y"] + dy[0] < 48))
        assert out.size == int(inside.sum())  # exactly the events that stay on the sensor


def test_add_correlated_events_count_bounds_and_order():
    ev = random_events(3000, SENSOR, seed=4)
    for seed in range(5):
        out = add_correlated_events(ev, SENSOR, np.random.default_rng(seed))
        assert 100 <= out.size - ev.size < 3000  # [min(100, n-1), min(5000, n))
        assert np.all(np.diff(out["t"]) >= 0)
        assert out["x"].max() < 64 and out["y"].max() < 48
        assert out["t"][0] >= ev["t"][0] and out["t"][-1] <= ev["t"][-1]
    big = random_events(20_000, SENSOR, seed=5)
    added = [add_correlated_events(big, SENSOR, np.random.default_rng(s)).size - big.size for s in range(10)]
    assert all(100 <= a < 5000 for a in added) and len(set(added)) > 5
    few = ev[:999]
    assert add_correlated_events(few, SENSOR, np.random.default_rng(0)) is few


def test_augment_events_is_reproducible_and_scales_to_the_sensor():
    cfg = EventAugmentConfig()
    size = SensorSize(640, 480)
    assert cfg.sensor_scale(size) == (640 / 224, 480 / 224)
    ev = random_events(5000, size, seed=6)
    a = augment_events(ev, size, np.random.default_rng(3), cfg)
    b = augment_events(ev, size, np.random.default_rng(3), cfg)
    assert np.array_equal(a, b) and np.all(np.diff(a["t"]) >= 0)
    assert not np.array_equal(a, augment_events(ev, size, np.random.default_rng(4), cfg))
    with pytest.raises(ValueError):
        EventAugmentConfig(time_flip_p=1.5)


def test_crop_boxes_follow_scale_and_ratio():
    gen = torch.Generator().manual_seed(0)
    boxes = random_resized_crop_boxes(500, 224, 224, gen)
    top, left, h, w = boxes.T
    assert torch.all(top >= 0) and torch.all(left >= 0) and torch.all(top + h <= 224) and torch.all(left + w <= 224)
    area = (h * w).double() / 224**2
    assert area.min() > 0.43 and area.max() <= 1.0
    aspect = w.double() / h.double()
    assert aspect.min() > 0.72 and aspect.max() < 1.39
    assert area.std() > 0.1  # sizes vary per sample


def test_augment_frames_crop_and_flip():
    b, hgt, wid = 6, 20, 24
    frames = torch.arange(b * hgt * wid, dtype=torch.float32).view(b, hgt, wid)
    out = augment_frames(frames, torch.Generator().manual_seed(1))
    assert out.shape == frames.shape
    again = augment_frames(frames, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    for k in range(b):  # each output is a nearest resize of a rectangle of its own frame (maybe mirrored)
        src = out[k] - k * hgt * wid
        rows, cols = torch.div(src, wid, rounding_mode="floor"), src % wid
        assert torch.all(rows[:, :1] == rows) and torch.all(cols[:1, :] == cols)
        assert torch.all(torch.diff(rows[:, 0]) >= 0)
        c = cols[0]
        assert torch.all(torch.diff(c) >= 0) or torch.all(torch.diff(c) <= 0)
    whole = FrameAugmentConfig(scale=(1.0, 1.0), ratio=(wid / hgt, wid / hgt), hflip_p=1.0)
    assert torch.equal(augment_frames(frames, torch.Generator(), whole), frames.flip(dims=[2]))
    keep = FrameAugmentConfig(scale=(1.0, 1.0), ratio=(wid / hgt, wid / hgt), hflip_p=0.0)
    assert torch.equal(augment_frames(frames, torch.Generator(), keep), frames)


# --- real layouts on fake trees -----------------------------------------------------------------


def _write_jpeg(path: Path, value: int, shape=(30, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((*shape, 3), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = value, 255 - value, 128  # BGR, not gray
    assert cv2.imwrite(str(path), img)


@pytest.fixture
def nimagenet_tree(tmp_path: Path) -> Path:
    """root/N_ImageNet/extracted_train/<wnid>/*.npz, root/ImageNet/train/<wnid>/*.JPEG, Labels.json, a list."""
    labels = {"n01440764": "tench, Tinca tinca", "n01443537": "goldfish, Carassius auratus"}
    (tmp_path / "Labels.json").write_text(json.dumps(labels))
    lines = ["# official list, absolute paths"]
    for k, wnid in enumerate([*labels, "n09999999"]):
        for j in range(2):
            npz = tmp_path / "N_ImageNet" / "extracted_train" / wnid / f"{wnid}_{j}.npz"
            npz.parent.mkdir(parents=True, exist_ok=True)
            write_nimagenet(npz, random_events(2000, SensorSize(640, 480), seed=10 * k + j))
            _write_jpeg(tmp_path / "ImageNet" / "train" / wnid / f"{wnid}_{j}.JPEG", 40 * k + j)
            lines.append(f"/mnt/Data_3/event/N_ImageNet/extracted_train/{wnid}/{wnid}_{j}.npz")
    (tmp_path / "train_list.txt").write_text("\n".join(lines) + "\n\n")
    return tmp_path


def _nimagenet(root: Path, **kw) -> NImageNetPaired:
    return NImageNetPaired(NImageNetConfig(list_file=root / "train_list.txt", labels_file=root / "Labels.json",
                                           path_prefix=("/mnt/Data_3/event", str(root)), num_events=500, **kw))


def test_nimagenet_paths_labels_windows_and_images(nimagenet_tree):
    ds = _nimagenet(nimagenet_tree)
    assert len(ds) == 4 and ds.stats.unknown_class == 2  # the class missing from Labels.json is left out
    assert ds.classes == ["tench, Tinca tinca", "goldfish, Carassius auratus"]
    assert ds.prompts() == ["a photo of a tench, Tinca tinca", "a photo of a goldfish, Carassius auratus"]
    assert ds.labels().tolist() == [0, 0, 1, 1]
    s = ds[2]
    assert s["label"] == 1 and s["caption"] == "a photo of a goldfish, Carassius auratus"
    assert s["size"] == SensorSize(640, 480)
    full = random_events(2000, SensorSize(640, 480), seed=10)
    start = int(np.flatnonzero(full["t"] == s["events"]["t"][0])[0])
    assert s["events"].size == 500 and np.array_equal(s["events"], full[start:start + 500])  # sensor coordinates
    img = s["image"]
    assert img.shape == (30, 40, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2])  # 'L' x 3
    assert _same_sample(s, _nimagenet(nimagenet_tree)[2])  # fixed per (seed, epoch, index)
    ds.set_epoch(3)
    assert not np.array_equal(ds[2]["events"], s["events"])  # a new window per epoch
    assert _nimagenet(nimagenet_tree, with_images=False)[0]["image"] is None


def test_nimagenet_image_path_rewrite():
    assert nimagenet_image_path("/d/N_ImageNet/extracted_train/n01/x_1.npz") == Path("/d/ImageNet/train/n01/x_1.JPEG")
    assert nimagenet_image_path("/d/N_ImageNet/extracted_val/n01/v.npz") == Path("/d/ImageNet/val/n01/v.JPEG")
    assert nimagenet_image_path("/e/N_ImageNet/extracted_val/n01/v.npz", "/img/val") == Path("/img/val/n01/v.JPEG")


def test_nimagenet_unreadable_items_are_replaced_and_counted(nimagenet_tree):
    (nimagenet_tree / "ImageNet" / "train" / "n01440764" / "n01440764_1.JPEG").unlink()
    ds = _nimagenet(nimagenet_tree)
    s = ds[1]  # its image is gone: the next item stands in
    assert ds.stats.unreadable == 1 and s["label"] == 1
    assert _same_sample(s, ds[2])
    strict = _nimagenet(nimagenet_tree, skip_unreadable=False)
    with pytest.raises(OSError):
        strict[1]


def test_read_list_file_formats(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text("# comment\n\na/b.bin\tc/d.jpg\n/N-MNIST/Train/5/1.bin\t/MNIST/5/1.png\n")
    rows = read_list_file(lst, 2)
    assert rows[0] == (tmp_path / "a/b.bin", tmp_path / "c/d.jpg")
    rows = read_list_file(lst, 2, root="/data")
    assert rows[1] == (Path("/data/N-MNIST/Train/5/1.bin"), Path("/data/MNIST/5/1.png"))
    lst.write_text("a.bin\tb.jpg\nonly_one.bin\n")
    with pytest.raises(ValueError, match=r"l.txt:2: expected 2"):
        read_list_file(lst, 2)
    lst.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no entries"):
        read_list_file(lst, 1)


def test_class_list_formats(tmp_path):
    (tmp_path / "eb.json").write_text(json.dumps({"trilobite": 1, "Faces_easy": 0}))
    cl = load_class_list(tmp_path / "eb.json")
    assert cl.keys == ("Faces_easy", "trilobite") and cl.names == ("Faces easy", "trilobite")
    assert cl.index("trilobite") == 1 and cl.index("nope") is None
    (tmp_path / "names.json").write_text(json.dumps(["cat", "dog"]))
    assert load_class_list(tmp_path / "names.json").names == ("cat", "dog")
    (tmp_path / "names.txt").write_text("# classes\ncat\ndog\n")
    assert load_class_list(tmp_path / "names.txt").keys == ("cat", "dog")
    (tmp_path / "bad.json").write_text(json.dumps({"a": 0, "b": 2}))
    with pytest.raises(ValueError, match="0..1"):
        load_class_list(tmp_path / "bad.json")


def test_ncaltech101_list_dataset(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({"Faces_easy": 0, "trilobite": 1}))
    lines = []
    for k, cls in enumerate(["trilobite", "Faces_easy"]):
        ev_path = tmp_path / "N_Caltech101" / cls / "image_0001.bin"
        ev_path.parent.mkdir(parents=True)
        write_atis_bin(ev_path, random_events(40_000, SensorSize(200, 150), seed=k, max_step_us=5))
        _write_jpeg(tmp_path / "Caltech-101" / cls / "image_0001.jpg", 50 * k)
        lines.append(f"N_Caltech101/{cls}/image_0001.bin\tCaltech-101/{cls}/image_0001.jpg")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    ds = ListPaired(ListPairedConfig(kind="n-caltech101", list_file=tmp_path / "train.txt",
                                     classes_file=tmp_path / "classes.json"))
    assert ds.kind == "n-caltech101" and ds.classes == ["Faces easy", "trilobite"]
    s = ds[0]
    assert s["label"] == 1 and s["caption"] == "a point cloud image of a trilobite"
    assert s["size"] == SensorSize(240, 180) and s["events"].size == 30_000
    assert s["image"].shape == (30, 40, 3) and not np.array_equal(s["image"][..., 0], s["image"][..., 2])  # RGB
    assert ds[1]["caption"] == "a point cloud image of a Faces easy"
    assert recommended_frame_config("n-caltech101") == FrameConfig("official", clamp=20.0, out_size=(224, 224))


def test_nmnist_list_dataset_labels_from_folder_index(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({w: i for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])}))
    lines = []
    for digit in (5, 0):
        ev_path = tmp_path / "N-MNIST" / "Train" / str(digit) / "00001.bin"
        ev_path.parent.mkdir(parents=True)
        write_atis_bin(ev_path, random_events(3000, SensorSize(34, 34), seed=digit))
        png = tmp_path / "MNIST" / "Train" / str(digit) / "mnist_train_1.png"
        png.parent.mkdir(parents=True)
        cv2.imwrite(str(png), np.full((28, 28), 30 * digit, dtype=np.uint8))
        lines.append(f"/N-MNIST/Train/{digit}/00001.bin\t/MNIST/Train/{digit}/mnist_train_1.png")
    lines.append("/N-MNIST/Train/x/00001.bin\t/MNIST/Train/x/1.png")  # not a class folder: left out
    (tmp_path / "train.txt").write_text("\n".join(lines))
    ds = ListPaired(ListPairedConfig(kind="n-mnist", list_file=tmp_path / "train.txt",
                                     classes_file=tmp_path / "classes.json", root=tmp_path))
    assert len(ds) == 2 and ds.stats.unknown_class == 1
    s = ds[0]
    assert s["label"] == 5 and s["caption"] == "The digit five"
    assert s["size"] == SensorSize(34, 34) and s["events"].size == 2000
    assert s["image"].shape == (28, 28, 3) and int(s["image"][0, 0, 0]) == 150
    assert recommended_frame_config("n-mnist", (64, 64)).clamp == 10.0


# --- splits -------------------------------------------------------------------------------------


def test_shipped_splits_match_class_names():
    birds = ClassSplit.from_yaml(CONFIGS / "n_imagenet_100_split.yaml")
    assert len(birds.unseen) == 20 and "ruffed grouse" in birds.unseen and "partridge" in birds.unseen
    classes = ["tench, Tinca tinca", "ruffed grouse, partridge, Bonasa umbellus", "partridge",
               *[f"{n}, synonym" for n in birds.unseen if n not in ("ruffed grouse", "partridge")]]
    seen, unseen = birds.indices(classes)
    assert seen == [0] and sorted(unseen) == list(range(1, 21))
    assert match_classes(["partridge", "ruffed grouse"], classes) == [2, 1]
    glyph_split = ClassSplit.from_yaml(CONFIGS / "synthetic_glyphs_split.yaml")
    seen, unseen = glyph_split.indices(list(ALL_CLASSES))
    assert len(unseen) == 10 and len(seen) == len(ALL_CLASSES) - 10
    with pytest.raises(ValueError, match="not one of"):
        match_classes(["zebra"], classes)
    with pytest.raises(ValueError, match="ambiguous"):
        match_classes(["a"], ["a, x", "a, y"])


def test_kshot_indices():
    labels = np.repeat(np.arange(5), 8)
    idx = kshot_indices(labels, 2, seed=0, classes=[1, 3])
    assert Counter(labels[idx].tolist()) == {1: 2, 3: 2}
    assert np.array_equal(idx, kshot_indices(labels, 2, seed=0, classes=[1, 3]))
    assert Counter(labels[kshot_indices(labels, 5, seed=1)].tolist()) == {c: 5 for c in range(5)}
    with pytest.raises(ValueError, match="fewer than k"):
        kshot_indices(labels, 9, seed=0)


# --- batching -----------------------------------------------------------------------------------


def test_collate_samples_and_frames_of_a_batch(glyphs):
    items = [glyphs[i] for i in range(4)]
    batch = collate_samples(items)
    assert batch["label"].dtype == torch.long and batch["label"].tolist() == [0, 1, 2, 3]
    assert batch["size"] == SensorSize(48, 48) and len(batch["events"]) == 4 and len(batch["image"]) == 4
    assert batch["caption"] == [s["caption"] for s in items]
    frames = build_frames_torch(batch["events"], batch["size"], FrameConfig(out_size=(64, 64)))
    assert frames.shape == (4, 64, 64)
    other = {**items[0], "size": SensorSize(34, 34), "events": make_events([0], [1], [1], [1])}
    with pytest.raises(ValueError, match="share a sensor size"):
        collate_samples([items[0], other])
    with pytest.raises(ValueError, match="empty"):
        collate_samples([])


def test_dataloader_workers_give_the_same_items(glyphs):
    loader = DataLoader(glyphs, batch_size=8, num_workers=2, collate_fn=collate_samples, worker_init_fn=seed_worker)
    batch = next(iter(loader))
    for k in range(8):
        assert np.array_equal(batch["events"][k], glyphs[k]["events"]) and batch["caption"][k] == glyphs[k]["caption"]
