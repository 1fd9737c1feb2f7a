"""EmbeddingIndex: rankings, modality filters, the four retrieval directions, model stamps and crash-safe saving."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from event_clip_ros.events.simulate import frames_to_events, moving_shapes
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.events.windows import WindowConfig, iter_windows
from event_clip_ros.model.factory import ModelSpec, create_event_clip
from event_clip_ros.model.retrieval import (
    EmbeddingIndex,
    IndexFormatError,
    ModelMismatchError,
    ModelStamp,
    Record,
)
from event_clip_ros.model.retrieval import index as retrieval_index
from event_clip_ros.model.retrieval import store as retrieval_store

SIZE = SensorSize(64, 48)
TEXTS = ["a bright disc", "a dark square", "a spinning triangle"]


def tiny_model(seed: int):
    torch.manual_seed(seed)
    return create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))


@pytest.fixture(scope="module")
def model():
    return tiny_model(0)


@pytest.fixture(scope="module")
def windows():
    """Ten 20 ms windows of the simulated moving-shapes scene."""
    chunks = frames_to_events(moving_shapes(SIZE, 200_000, frame_interval_us=2000, seed=1), SIZE)
    out = list(iter_windows(chunks, WindowConfig.by_duration_ms(20)))
    assert len(out) >= 8 and all(len(w.events) > 0 for w in out)
    return out


@pytest.fixture
def image_paths(tmp_path: Path) -> list[Path]:
    """Three small distinct PNGs: red, a green gradient, a blue/white checkerboard."""
    yy, xx = np.mgrid[0:40, 0:48]
    arrays = [
        np.broadcast_to(np.array([220, 30, 30], np.uint8), (40, 48, 3)),
        np.stack([np.zeros_like(xx), xx * 5, np.zeros_like(xx)], -1).astype(np.uint8),
        np.where(((xx // 8 + yy // 8) % 2 == 0)[..., None], [30, 30, 220], [255, 255, 255]).astype(np.uint8),
    ]
    paths = []
    for i, a in enumerate(arrays):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.ascontiguousarray(a)).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def filled(model, windows, image_paths) -> EmbeddingIndex:
    index = EmbeddingIndex.for_model(model)
    index.add_events(model, windows, SIZE, "sim/scene.raw", labels=[f"w{i}" for i in range(len(windows))])
    index.add_images(model, image_paths, labels=["red", "green", "checker"])
    index.add_texts(model, TEXTS)
    return index


def vector_index() -> EmbeddingIndex:
    """Rows (normalised on add): e0=[1,0,0], e1=[1,1,0]/sqrt2, e2=[0,1,0], t3=[0,0,1], t4=[1,0,1]/sqrt2."""
    index = EmbeddingIndex(3)
    vectors = np.array([[2, 0, 0], [1, 1, 0], [0, 3, 0], [0, 0, 1], [1, 0, 1]], np.float32)
    records = [Record("event", f"e{i}", t_start_us=10 * i, t_end_us=10 * i + 10) for i in range(3)]
    records += [Record("text", "t3"), Record("text", "t4", label="four", extra={"n": 4})]
    index.add(vectors, records)
    return index


# ----------------------------------------------------------------- rankings
def test_known_vectors_rank_as_computed_by_hand():
    index = vector_index()
    np.testing.assert_allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, rtol=1e-6)
    # q = [1, 0.2, 0] / |q|, |q| = sqrt(1.04): cos with e0, e1, e2, t3, t4
    norm = np.sqrt(1.04)
    expected = {"e0": 1 / norm, "e1": 1.2 / norm / np.sqrt(2), "e2": 0.2 / norm, "t3": 0.0, "t4": 1 / norm / np.sqrt(2)}
    (hits,) = index.query(np.array([1, 0.2, 0]), k=5)
    assert [h.record.key for h in hits] == ["e0", "e1", "t4", "e2", "t3"]
    for h in hits:
        assert h.score == pytest.approx(expected[h.record.key], abs=1e-6)
        assert index.records[h.row] is h.record
    (top2,) = index.query(torch.tensor([1.0, 0.2, 0.0]), k=2)
    assert [h.record.key for h in top2] == ["e0", "e1"]


def test_batched_queries_and_k_beyond_size():
    index = vector_index()
    hits = index.query(np.array([[0, 0, 1], [0, 1, 0]], np.float32), k=10)
    assert len(hits) == 2 and all(len(h) == 5 for h in hits)
    assert [h.record.key for h in hits[0]][:2] == ["t3", "t4"] and hits[0][0].score == pytest.approx(1.0)
    assert [h.record.key for h in hits[1]][:2] == ["e2", "e1"]


def test_modality_filter():
    index = vector_index()
    (texts,) = index.query(np.array([1, 0.2, 0]), k=5, modality="text")
    assert [h.record.key for h in texts] == ["t4", "t3"]
    (events,) = index.query(np.array([0, 0, 1]), k=1, modality="event")
    assert len(events) == 1 and events[0].record.modality == "event"
    assert index.count("event") == 3 and index.count("text") == 2 and index.count("image") == 0


def test_ties_rank_earlier_rows_first_across_blocks_and_chunks(monkeypatch):
    monkeypatch.setattr(retrieval_index, "_SCORE_BLOCK_ELEMENTS", 1)  # the smallest blocks: 1024 rows
    monkeypatch.setattr(retrieval_index, "_QUERY_CHUNK", 3)  # the 4 queries below go in two chunks
    dim, n = 16, 3000
    index = EmbeddingIndex(dim)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors[[2999, 5, 1500]] = np.eye(dim)[0]  # three exact ties, in three blocks
    tied_rows = rng.choice(n, 200, replace=False)
    vectors[tied_rows] = np.eye(dim)[1]  # 200 exact ties, more than k in every block
    index.add(vectors, [Record("text", str(i)) for i in range(n)])
    (hits,) = index.query(np.eye(dim)[0], k=3)
    assert [h.row for h in hits] == [5, 1500, 2999] and [h.score for h in hits] == [1.0] * 3
    (hits,) = index.query(np.eye(dim)[1], k=10)
    assert [h.row for h in hits] == sorted(tied_rows)[:10]
    # blockwise merge equals a full sort
    q = rng.normal(size=(4, dim)).astype(np.float32)
    got = [[h.row for h in row] for row in index.query(q, k=20)]
    scores = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ index.embeddings.T
    want = [list(np.lexsort((np.arange(n), -s))[:20]) for s in scores]
    assert got == want


# --------------------------------------------------------------- validation
def test_validation_errors():
    index = EmbeddingIndex(3)
    with pytest.raises(ValueError, match="empty"):
        index.query(np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        index.add(np.ones((2, 4)), [Record("text", "a"), Record("text", "b")])
    with pytest.raises(ValueError, match="2 embeddings but 1 records"):
        index.add(np.ones((2, 3)), [Record("text", "a")])
    with pytest.raises(ValueError, match="all-zero"):
        index.add(np.zeros((1, 3)), [Record("text", "a")])
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.array([[np.nan, 1, 0]]), [Record("text", "a")])
    assert len(index) == 0  # nothing half-added
    index = vector_index()
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        index.query(np.ones(4))
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        index.query(np.ones(3), modality="audio")
    with pytest.raises(ValueError, match="no 'image' items"):
        index.query(np.ones(3), modality="image")
    with pytest.raises(ValueError, match="k must be"):
        index.query(np.ones(3), k=0)
    with pytest.raises(ValueError, match="embed_dim"):
        EmbeddingIndex(0)


def test_record_validation():
    with pytest.raises(ValueError, match="unknown modality"):
        Record("video", "x")
    with pytest.raises(ValueError, match="only event records"):
        Record("text", "x", t_start_us=0)
    with pytest.raises(ValueError, match="before t_start_us"):
        Record("event", "x", t_start_us=10, t_end_us=5)
    with pytest.raises(ValueError, match="JSON"):
        Record("image", "x", extra={"a": object()})
    assert Record("event", "x", t_start_us=np.int64(3)).t_start_us == 3
    assert type(Record("event", "x", t_start_us=np.int64(3)).t_start_us) is int


# ------------------------------------------------------- model end to end
def test_event_windows_retrieve_themselves(model, windows):
    index = EmbeddingIndex.for_model(model)
    index.add_events(model, windows, SIZE, "sim/scene.raw")
    assert [(r.t_start_us, r.t_end_us) for r in index.records] == [(w.t_start_us, w.t_end_us) for w in windows]
    hits = index.search_events(model, windows, SIZE, k=2, modality="event")
    for i, row_hits in enumerate(hits):
        assert row_hits[0].row == i
        assert row_hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert row_hits[1].score < row_hits[0].score


def test_bare_event_arrays_get_their_time_span(model):
    events = make_events([100, 250, 900], [1, 2, 3], [4, 5, 6], [1, 0, 1])
    index = EmbeddingIndex.for_model(model)
    index.add_events(model, [events, events[:0]], SIZE, "live/topic")
    assert [(r.t_start_us, r.t_end_us) for r in index.records] == [(100, 901), (None, None)]
    (hits,) = index.search_events(model, events, SIZE, k=1, modality="event")
    assert hits[0].row == 0 and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_all_four_directions(model, windows, image_paths, filled):
    ev = model.embed_windows([w.events for w in windows], SIZE).numpy()
    tx = model.embed_texts(TEXTS).numpy()
    im = model.embed_images([Image.open(p).convert("RGB") for p in image_paths]).numpy()

    def check(hits, queries, targets, keys, modality):
        for q, row_hits in zip(queries, hits):
            assert [h.record.modality for h in row_hits] == [modality] * len(targets)
            scores = targets @ q
            want = [keys[j] for j in np.argsort(-scores, kind="stable")]
            assert [h.record.key if modality != "event" else h.record.label for h in row_hits] == want
            np.testing.assert_allclose([h.score for h in row_hits], np.sort(scores)[::-1], atol=1e-5)

    n = len(windows)
    window_labels = [f"w{i}" for i in range(n)]
    image_keys = [os.fspath(p) for p in image_paths]
    check(filled.search_events(model, windows, SIZE, k=3), ev, tx, TEXTS, "text")  # event -> text
    check(filled.search_text(model, TEXTS, k=n), tx, ev, window_labels, "event")  # text -> event
    check(filled.search_events(model, windows, SIZE, k=3, modality="image"), ev, im, image_keys, "image")  # event -> image
    check(filled.search_image(model, image_paths, k=n), im, ev, window_labels, "event")  # image -> event
    # single-query forms: a str, a PIL image, one Window
    assert filled.search_text(model, TEXTS[1], k=n) == filled.search_text(model, [TEXTS[1]], k=n)
    pil_hits = filled.search_image(model, Image.open(image_paths[2]), k=1, modality="image")
    assert pil_hits[0][0].record.label == "checker" and pil_hits[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert filled.search_events(model, windows[0], SIZE, k=1, modality=None)[0][0].row == 0


def test_model_fingerprint_mismatch_is_refused(model, filled):
    assert ModelStamp.of(tiny_model(0)).fingerprint == filled.model.fingerprint  # same weights, same stamp
    other = tiny_model(1)
    with pytest.raises(ModelMismatchError, match="not comparable"):
        filled.search_text(other, "a disc")
    with pytest.raises(ModelMismatchError):
        filled.add_texts(other, ["more"])
    with pytest.raises(ModelMismatchError, match="records no model"):
        EmbeddingIndex(model.embed_dim).add_texts(model, ["x"])


# ------------------------------------------------------------- persistence
def test_save_load_round_trip(tmp_path, model, filled):
    path = filled.save(tmp_path / "idx")
    assert sorted(p.name for p in path.iterdir()) == ["embeddings.npy", "index.json", "records.jsonl"]
    header = json.loads((path / "index.json").read_text())
    assert header["count"] == len(filled) and header["embed_dim"] == 64
    assert header["model"]["arch"] == "EventCLIP-Tiny" and header["model"]["fingerprint"] == filled.model.fingerprint
    for mmap in (False, True):
        loaded = EmbeddingIndex.load(path, mmap=mmap)
        assert isinstance(loaded._base, np.memmap) == mmap
        np.testing.assert_array_equal(loaded.embeddings, filled.embeddings)
        assert loaded.records == filled.records and loaded.model == filled.model
        assert loaded.search_text(model, TEXTS, k=5) == filled.search_text(model, TEXTS, k=5)
    with pytest.raises(ModelMismatchError):
        EmbeddingIndex.load(path).search_text(tiny_model(1), "a disc")


def test_append_keeps_saved_entries(tmp_path, model, filled):
    path = filled.save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(path, mmap=True)
    loaded.add_texts(model, ["a new caption"])
    extra = np.zeros((1, 64), np.float32)
    extra[0, 3] = 1
    loaded.add(extra, [Record("image", "synthetic", extra={"note": "added by hand"})])
    loaded.save(path)  # over the file it is mapped from
    again = EmbeddingIndex.load(path)
    assert len(again) == len(filled) + 2
    np.testing.assert_array_equal(again.embeddings[: len(filled)], filled.embeddings)
    assert again.records[: len(filled)] == filled.records
    assert again.records[-1].extra == {"note": "added by hand"}
    (hits,) = again.search_text(model, "a new caption", k=1, modality="text")
    assert hits[0].record.key == "a new caption" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "img0.png", "img1.png", "img2.png"]


def assert_intact(path: Path, original: EmbeddingIndex) -> None:
    loaded = EmbeddingIndex.load(path)
    np.testing.assert_array_equal(loaded.embeddings, original.embeddings)
    assert loaded.records == original.records
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith((".", "idx"))) == ["idx"]


def test_crash_while_writing_keeps_saved_index(tmp_path, model, filled, monkeypatch):
    path = filled.save(tmp_path / "idx")
    bigger = EmbeddingIndex.load(path)
    bigger.add_texts(model, ["appended"])

    def disk_full(f):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(retrieval_store, "fsync_file_object", disk_full)
    with pytest.raises(OSError, match="No space"):
        bigger.save(path)
    assert_intact(path, filled)


def test_failed_rename_keeps_saved_index(tmp_path, model, filled, monkeypatch):
    path = filled.save(tmp_path / "idx")
    bigger = EmbeddingIndex.load(path)
    bigger.add_texts(model, ["appended"])
    real_rename, calls = os.rename, []

    def rename_fails_moving_new_in(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:  # old -> idx.previous worked; new -> idx fails
            raise OSError(5, "I/O error")
        real_rename(src, dst)

    monkeypatch.setattr(retrieval_store.os, "rename", rename_fails_moving_new_in)
    with pytest.raises(OSError, match="I/O error"):
        bigger.save(path)
    assert calls[0] == ("idx", "idx.previous") and calls[2] == ("idx.previous", "idx")  # rolled back
    monkeypatch.undo()
    assert_intact(path, filled)


def test_death_between_renames_is_recovered(tmp_path, model, filled):
    path = filled.save(tmp_path / "idx")
    os.rename(path, tmp_path / "idx.previous")  # what a process killed between the two renames leaves
    recovered = EmbeddingIndex.load(path)
    np.testing.assert_array_equal(recovered.embeddings, filled.embeddings)
    recovered.add_texts(model, ["appended"])
    recovered.save(path)
    assert not (tmp_path / "idx.previous").exists()
    assert len(EmbeddingIndex.load(path)) == len(filled) + 1


def test_save_refuses_to_replace_other_directories(tmp_path, filled):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not an embedding index"):
        filled.save(other)
    assert (other / "keep.jpg").read_bytes() == b"x"


def test_load_rejects_damaged_indexes(tmp_path, filled):
    with pytest.raises(FileNotFoundError, match="no embedding index"):
        EmbeddingIndex.load(tmp_path / "missing")
    path = filled.save(tmp_path / "idx")
    lines = (path / "records.jsonl").read_text().splitlines()
    (path / "records.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IndexFormatError, match="records, expected"):
        EmbeddingIndex.load(path)
    (path / "records.jsonl").write_text('{"modality": "smell", "key": "x"}\n' * len(lines))
    with pytest.raises(IndexFormatError, match="records.jsonl:1: bad record"):
        EmbeddingIndex.load(path)
    header = json.loads((path / "index.json").read_text())
    (path / "index.json").write_text(json.dumps({**header, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="format version 99"):
        EmbeddingIndex.load(path)
    np.save(path / "embeddings.npy", np.zeros((len(filled), 64), np.float64))
    (path / "index.json").write_text(json.dumps(header))
    with pytest.raises(IndexFormatError, match="float64"):
        EmbeddingIndex.load(path)
