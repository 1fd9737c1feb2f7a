"""Labelled datasets in their distributed layouts (N-Cars, DVS128 Gesture, N-Caltech101 class folders), read from
small fake trees, and their zero-shot / k-shot evaluation through ``training/finetune.py --eval-only``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from real_recordings import DATA, needs_data

from event_clip_ros.events.noise import NoiseFilter, NoiseFilterConfig
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.types import SensorSize, concat_events
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.checkpoint import save_checkpoint
from event_clip_ros.train.data import (
    DVSGesture,
    DVSGestureConfig,
    NCaltech101Folders,
    NCaltech101FoldersConfig,
    NCars,
    NCarsConfig,
    recommended_frame_config,
)
from event_clip_ros.train.data.labelled import DVS_GESTURE_CLASSES, caltech_class_name
from event_clip_ros.train.finetune import cli

from event_files import random_events, write_aedat31, write_atis_bin, write_dat

QUIET = ["--set", "runtime.progress=false", "--set", "runtime.threads=1", "--set", "runtime.tensorboard=false"]


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "toy.safetensors"
    save_checkpoint(create_event_clip(ModelSpec(arch="EventCLIP-Toy48", pretrained=None, device="cpu")), path)
    return path


def _eval(checkpoint: Path, out: Path, *args: str) -> dict:
    assert cli.main(["--checkpoint", str(checkpoint), "--out", str(out), "--eval-only", *args, *QUIET]) == 0
    return json.loads((out / "eval.json").read_text())


# ------------------------------------------------------------------------------------------------ N-Cars
@pytest.fixture(scope="module")
def ncars(tmp_path_factory) -> Path:
    """<root>/n-cars_{train,test}/{cars,background}/obj_*_td.dat, header-less DAT as distributed."""
    root = tmp_path_factory.mktemp("ncars") / "Prophesee_Dataset_n_cars"
    for split, n in (("train", 3), ("test", 2)):
        for c, folder in enumerate(("cars", "background")):
            (root / f"n-cars_{split}" / folder).mkdir(parents=True)
            for i in range(n):
                events = random_events(800 + 100 * i, SensorSize(120, 100), seed=10 * c + i)
                write_dat(root / f"n-cars_{split}" / folder / f"obj_{100 * c + i:06d}_td.dat", events, header_lines=None)
    return root


def test_ncars_layout_classes_and_splits(ncars):
    train = NCars(NCarsConfig(root=ncars, split="train"))
    test = NCars(NCarsConfig(root=ncars / "n-cars_test", split="test"))  # a split folder itself works too
    assert train.classes == ["car", "background"] and train.kind == "n-cars"
    assert len(train) == 6 and len(test) == 4 and train.labels().tolist() == [0, 0, 0, 1, 1, 1]
    item = train[1]
    assert item["size"] == SensorSize(120, 100) and item["events"].size == 900  # the whole sample
    assert item["image"] is None and item["caption"] == "a point cloud image of a car"
    assert train.prompts() == ["a point cloud image of a car", "a point cloud image of a background"]
    assert recommended_frame_config("n-cars").representation == "official"
    with pytest.raises(ValueError, match="no test split"):
        NCars(NCarsConfig(root=ncars / "nope", split="test"))


def test_ncars_zero_and_few_shot_eval(ncars, checkpoint, tmp_path):
    zero = _eval(checkpoint, tmp_path / "zero", "--preset", "n-cars", "--root", str(ncars), "--shots", "0")
    assert zero["class_names"] == ["car", "background"] and zero["ranked_among"] == 2 and zero["chance_top1"] == 0.5
    assert zero["eval_items"] == 4 and zero["train_items"] == 0 and "few_shot" not in zero
    assert zero["zero_shot"]["count"] == 4 and zero["frame"]["representation"] == "official"
    few = _eval(checkpoint, tmp_path / "few", "--preset", "n-cars", "--root", str(ncars), "--shots", "2")
    assert few["train_items"] == 4 and few["few_shot"]["count"] == 4
    kshot = json.loads((tmp_path / "few" / "kshot.json").read_text())
    assert kshot["per_class"] == {"car": 2, "background": 2} and all("n-cars_train" in p for p in kshot["items"])


@needs_data
def test_the_noise_filter_reaches_the_training_items(tmp_path):
    """data.noise of a run: every recording filtered as the node and the CLI filter it (real N-Cars sample)."""
    from event_clip_ros.train.config import load
    from event_clip_ros.train.finetune.config import FinetuneConfig
    from event_clip_ros.train.finetune.data import build_data

    root = tmp_path / "ncars"
    for split in ("train", "test"):
        for folder in ("cars", "background"):
            (root / f"n-cars_{split}" / folder).mkdir(parents=True)
            shutil.copy(DATA / "ncars_sample.dat", root / f"n-cars_{split}" / folder / "obj_000000_td.dat")
    cfg = load(FinetuneConfig, {"data": {"kind": "n-cars", "root": str(root)}, "shots": 1},
               [("data.noise.background_activity_us", 2000), ("data.noise.hot_pixel_learn_us", 50_000)])
    assert cfg.data.noise == NoiseFilterConfig(background_activity_us=2000, hot_pixel_learn_us=50_000)
    assert cfg.to_dict()["data"]["noise"]["background_activity_us"] == 2000  # recorded in config.yaml and checkpoints
    data = build_data(cfg, (224, 224))
    with open_events(DATA / "ncars_sample.dat") as reader:
        raw = concat_events(list(reader.chunks()))
        expected = NoiseFilter(cfg.data.noise).filter(raw, reader.size)
    for dataset in (data.test, data.shots):
        item = dataset[0]
        assert np.array_equal(item["events"], expected) and 0 < item["events"].size < 0.5 * raw.size
    assert NCars(NCarsConfig(root=root, split="test"))[0]["events"].size == raw.size  # off by default


# ------------------------------------------------------------------------------------------- DVS Gesture
def _recording(root: Path, name: str, segments: list[tuple[int, int, int]], seed: int) -> None:
    """A DVS128 recording with events from 0 to 3 s and its labels file (class, start, end in us)."""
    events = random_events(6000, SensorSize(128, 128), seed=seed, t0=0, max_step_us=1000)  # ~3 s
    write_aedat31(root / f"{name}.aedat", events)
    rows = ["class,startTime_usec,endTime_usec"] + [f"{c},{a},{b}" for c, a, b in segments]
    (root / f"{name}_labels.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def gestures(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gesture") / "DvsGesture"
    root.mkdir()
    _recording(root, "user01_fluorescent", [(1, 100_000, 900_000), (4, 1_000_000, 1_800_000), (11, 2_000_000, 2_900_000)], 1)
    _recording(root, "user02_lab", [(1, 50_000, 800_000), (4, 900_000, 1_700_000), (11, 1_800_000, 2_500_000)], 2)
    _recording(root, "user24_led", [(1, 200_000, 1_000_000), (4, 1_100_000, 2_000_000)], 3)
    return root


def test_dvs_gesture_official_split_segments_and_prompts(gestures):
    train = DVSGesture(DVSGestureConfig(root=gestures, split="train", num_events=300))
    test = DVSGesture(DVSGestureConfig(root=gestures, split="test"))
    assert len(train.classes) == 11 and train.classes[0] == "clapping hands" and train.kind == "dvs-gesture"
    assert train.prompts()[3] == "a photo of a person rotating the right arm clockwise."
    assert [k for k, _ in DVS_GESTURE_CLASSES][10] == "other_gestures"
    assert len(train) == 6 and len(test) == 2  # users 1-23 train, 24-29 test
    assert train.labels().tolist() == [0, 3, 10, 0, 3, 10] and test.labels().tolist() == [0, 3]
    item = train[1]
    assert item["size"] == SensorSize(128, 128) and item["events"].size == 300  # a window of the segment
    assert 1_000_000 <= int(item["events"]["t"].min()) and int(item["events"]["t"].max()) < 1_800_000
    whole = test[0]["events"]
    assert whole.size < 30_000 and 200_000 <= int(whole["t"].min()) and int(whole["t"].max()) < 1_000_000
    assert np.array_equal(test[0]["events"], whole)  # evaluation windows are fixed
    (gestures / "trials_to_test.txt").write_text("user02_lab.aedat\n")  # the official trial lists win
    try:
        assert DVSGesture(DVSGestureConfig(root=gestures, split="test")).labels().tolist() == [0, 3, 10]
    finally:
        (gestures / "trials_to_test.txt").unlink()


def test_dvs_gesture_zero_and_few_shot_eval(gestures, checkpoint, tmp_path):
    zero = _eval(checkpoint, tmp_path / "zero", "--preset", "dvs-gesture", "--root", str(gestures), "--shots", "0")
    assert zero["ranked_among"] == 11 and len(zero["class_names"]) == 11 and zero["eval_items"] == 2
    assert zero["chance_top1"] == pytest.approx(1 / 11)
    few = _eval(checkpoint, tmp_path / "few", "--preset", "dvs-gesture", "--root", str(gestures), "--shots", "1",
                "--set", "data.num_events=500")
    # k-shot draws k of each class the training split has (3 of the 11 here)
    assert few["train_items"] == 3 and few["few_shot"]["count"] == 2


# ------------------------------------------------------------------------------------------ N-Caltech101
@pytest.fixture(scope="module")
def caltech(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("caltech") / "Caltech101"
    for c, folder in enumerate(("Faces_easy", "airplanes", "car_side", "BACKGROUND_Google")):
        (root / folder).mkdir(parents=True)
        for i in range(5):
            write_atis_bin(root / folder / f"image_{i + 1:04d}.bin", random_events(500, SensorSize(240, 180), seed=10 * c + i))
    return root


def test_ncaltech101_folders_split_and_clean_names(caltech):
    test = NCaltech101Folders(NCaltech101FoldersConfig(root=caltech, split="test"))
    train = NCaltech101Folders(NCaltech101FoldersConfig(root=caltech, split="train"))
    assert test.classes == ["background", "face", "airplane", "car side"]  # sorted folders (upper case first)
    assert caltech_class_name("Motorbikes") == "motorbike" and caltech_class_name("water_lilly") == "water lilly"
    assert len(test) == 4 and len(train) == 16  # 20% of each class
    assert not {e.events for e in test.entries} & {e.events for e in train.entries}
    again = NCaltech101Folders(NCaltech101FoldersConfig(root=caltech, split="test"))
    assert [e.events for e in again.entries] == [e.events for e in test.entries]  # one fixed split
    assert test[0]["size"] == SensorSize(240, 180) and test.prompts()[1] == "a point cloud image of a face"


def test_ncaltech101_all_class_zero_shot_protocol(caltech, checkpoint, tmp_path):
    report = _eval(checkpoint, tmp_path / "zero", "--preset", "n-caltech101-zeroshot", "--root", str(caltech))
    assert report["shots"] == 0 and report["classes"] == "all" and report["ranked_among"] == 4
    assert report["eval_items"] == 4 and "nway" not in report["zero_shot"]
    assert report["frame"] == {"representation": "official", "clamp": 20.0, "keep_aspect": False}
    assert cli.main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "t"), "--preset", "n-caltech101-zeroshot",
                     "--root", str(caltech), *QUIET]) == 2  # zero shots cannot be trained: --eval-only


def test_pretraining_refuses_datasets_without_paired_images(tmp_path):
    from event_clip_ros.train.pretrain import ConfigError, load_config

    (tmp_path / "p.yaml").write_text("name: p\n")
    with pytest.raises(ConfigError, match="no paired images"):
        load_config(tmp_path / "p.yaml", ["data.kind=n-cars", "data.train_list=t", "data.test_list=t", "data.labels_file=l"])
