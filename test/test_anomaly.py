"""Anomaly scorers: hand-computed scores, the reference bank's policies and files, and separation of simulated anomalies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.anomaly import ReferenceAnomalyScorer, ReferenceScorerConfig, TextAnomalyScorer

from shape_scenes import SENSOR, shape_window


def unit(degrees) -> np.ndarray:
    """Unit vectors in the plane at the given angles, (N, 2) float32."""
    rad = np.deg2rad(np.atleast_1d(np.asarray(degrees, dtype=np.float64)))
    return np.column_stack([np.cos(rad), np.sin(rad)]).astype(np.float32)


def roc_auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """ROC-AUC by the Mann-Whitney statistic: P(positive > negative), ties counting one half."""
    diff = np.asarray(positives, np.float64)[:, None] - np.asarray(negatives, np.float64)[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_roc_auc_helper():
    assert roc_auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert roc_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert roc_auc([0.1, 0.5], [0.5, 0.2]) == 0.625  # pairs: 1, 0.5, 1, 0 -> 2.5 / 4


# ---------------------------------------------------------------------- text scorer
def test_text_scorer_by_hand():
    scorer = TextAnomalyScorer.from_text_embeddings(normal=[1.0, 0.0, 0.0], abnormal=[0.0, 2.0, 0.0], logit_scale=10.0)
    e = np.array([[0, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    scores = scorer.score(e)
    sigmoid = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    np.testing.assert_allclose(scores, [sigmoid(10), 0.5, sigmoid(-10), 0.5], rtol=1e-6)
    assert scores.dtype == np.float32 and scores.shape == (4,)
    np.testing.assert_array_equal(scorer.decide(scores), [True, False, False, False])  # strictly above 0.5
    np.testing.assert_array_equal(scorer.decide(scores, threshold=0.4), [True, True, False, True])
    with pytest.raises(ValueError, match="threshold"):
        scorer.decide(scores, threshold=1.5)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))


def test_text_scorer_ensembles_the_prompts(model):
    normal = ["an empty corridor.", "a quiet street."]
    abnormal = ["a person falling.", "a car crash.", "a fire."]
    scorer = TextAnomalyScorer(model, normal, abnormal)
    for row, prompts in zip(scorer.weights, (normal, abnormal)):
        expected = torch.nn.functional.normalize(model.embed_texts(prompts).mean(dim=0), dim=0)
        torch.testing.assert_close(row, expected, rtol=1e-5, atol=1e-6)
    e = torch.randn(8, model.embed_dim, generator=torch.Generator().manual_seed(0))
    cos = torch.nn.functional.normalize(e, dim=1) @ scorer.weights.T
    expected = torch.softmax(model.logit_scale * cos, dim=1)[:, 1]
    np.testing.assert_allclose(scorer.score(e), expected.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="no prompts"):
        TextAnomalyScorer(model, [" "], abnormal)
    with pytest.raises(ValueError, match="look like templates"):
        TextAnomalyScorer(model, ["a photo of a {}."], abnormal)


# ---------------------------------------------------------------------- reference scorer, known vectors
def test_reference_scores_by_hand():
    # bank at 0, 10, 30, 60, 100 degrees, k = 1: leave-one-out nearest-neighbour angles 10, 10, 20, 30, 40
    scorer = ReferenceAnomalyScorer(ReferenceScorerConfig(k=1))
    scorer.fit(unit([0, 10, 30, 60, 100]))
    queries = unit([-5, 45, 125, 180, 10])  # nearest bank angle 5, 15, 25, 80, 0 degrees away
    d = 1 - np.cos(np.deg2rad([5, 15, 25, 80, 0]))
    np.testing.assert_allclose(scorer.knn_distance(queries), d, atol=1e-6)
    # fraction of the leave-one-out distances (10, 10, 20, 30, 40 degrees) strictly below each
    np.testing.assert_allclose(scorer.score(queries), [0.0, 0.4, 0.6, 1.0, 0.0])
    np.testing.assert_array_equal(scorer.decide(scorer.score(queries)), [False, False, False, True, False])


def brute_force_scores(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The documented rule, one entry at a time."""
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    k = min(k, len(bank) - 1)
    loo = []
    for i in range(len(bank)):
        others = np.delete(bank, i, axis=0)
        loo.append(np.mean(1 - np.sort(others @ bank[i])[::-1][:k]))
    d = [np.mean(1 - np.sort(bank @ q)[::-1][:k]) for q in queries]
    return np.array([np.mean(np.array(loo) < x) for x in d])


@pytest.mark.parametrize(("n", "k"), [(2, 5), (3, 5), (12, 3), (40, 5)])
def test_reference_scores_match_brute_force(n, k):
    rng = np.random.default_rng(n)
    bank = rng.normal(size=(n, 8)).astype(np.float32)
    queries = rng.normal(size=(20, 8)).astype(np.float32)
    scorer = ReferenceAnomalyScorer(ReferenceScorerConfig(k=k))
    scorer.fit(bank)
    scores = scorer.score(queries)
    np.testing.assert_allclose(scores, brute_force_scores(bank, queries, k), atol=1e-6)
    assert scores.dtype == np.float32 and np.all((scores >= 0) & (scores <= 1))


def test_empty_and_single_entry_banks_are_clear_errors():
    scorer = ReferenceAnomalyScorer()
    with pytest.raises(RuntimeError, match="empty"):
        scorer.score(unit([0]))
    scorer.update(unit([0]))
    assert len(scorer) == 1
    with pytest.raises(RuntimeError, match="at least 2"):
        scorer.score(unit([0]))
    scorer.update(unit([90]))
    np.testing.assert_allclose(scorer.score(unit([0, 45, 200])), [0.0, 0.0, 1.0])  # k = 1; leave-one-out: 90 degrees
    with pytest.raises(ValueError, match="at least 2"):
        ReferenceAnomalyScorer().fit(unit([0]))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        scorer.update(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError):
        ReferenceScorerConfig(k=0)
    with pytest.raises(ValueError):
        ReferenceScorerConfig(replacement="lifo")


def test_fifo_bank_keeps_the_latest_windows_and_matches_a_fresh_fit():
    rng = np.random.default_rng(5)
    stream = rng.normal(size=(37, 6)).astype(np.float32)
    config = ReferenceScorerConfig(k=3, capacity=8)
    online = ReferenceAnomalyScorer(config)
    start = 0
    for size in (3, 1, 4, 1, 10, 2, 16):  # batches of assorted sizes, one larger than the bank
        online.update(stream[start : start + size])
        start += size
    assert start == stream.shape[0] and len(online) == 8
    fresh = ReferenceAnomalyScorer(config)
    fresh.fit(stream[-8:])
    queries = rng.normal(size=(30, 6)).astype(np.float32)
    np.testing.assert_allclose(online.score(queries), fresh.score(queries), atol=1e-6)
    np.testing.assert_allclose(online.knn_distance(queries), fresh.knn_distance(queries), atol=1e-6)


def test_incremental_calibration_equals_recomputation(tmp_path):
    """Many single-window updates into a full bank: the kept leave-one-out distances stay exact."""
    rng = np.random.default_rng(6)
    for replacement in ("fifo", "reservoir"):
        scorer = ReferenceAnomalyScorer(ReferenceScorerConfig(k=4, capacity=32, replacement=replacement))
        scorer.fit(rng.normal(size=(32, 5)).astype(np.float32))
        queries = rng.normal(size=(50, 5)).astype(np.float32)
        for _ in range(60):
            scorer.update(rng.normal(size=(1, 5)).astype(np.float32))
            scorer.score(queries[:1])
        path = tmp_path / f"{replacement}.npz"
        scorer.save(path)
        bank = np.load(path)["bank"]
        np.testing.assert_allclose(scorer.score(queries), brute_force_scores(bank, queries, 4), atol=1e-6)


def test_reservoir_bank_is_a_sample_of_the_whole_stream(tmp_path):
    stream = np.stack([unit([i * 0.1])[0] for i in range(1000)])  # entry i at angle i/10 degrees
    scorer = ReferenceAnomalyScorer(ReferenceScorerConfig(k=2, capacity=50, replacement="reservoir", seed=1))
    for start in range(0, 1000, 100):
        scorer.update(stream[start : start + 100])
    scorer.save(tmp_path / "bank.npz")
    with np.load(tmp_path / "bank.npz") as data:
        angles = np.rad2deg(np.arctan2(data["bank"][:, 1], data["bank"][:, 0]))
        assert int(data["seen"]) == 1000 and data["bank"].shape == (50, 2)
    index = np.round(angles * 10).astype(int)
    assert np.unique(index).size == 50
    assert index.min() < 200 and index.max() > 800  # early and late windows both kept (a FIFO would keep 950..999)
    assert 300 < index.mean() < 700


def test_fit_thins_a_long_recording_evenly(tmp_path):
    scorer = ReferenceAnomalyScorer(ReferenceScorerConfig(k=1, capacity=10))
    scorer.fit(unit(np.arange(100)))
    scorer.save(tmp_path / "bank.npz")
    with np.load(tmp_path / "bank.npz") as data:
        angles = np.rad2deg(np.arctan2(data["bank"][:, 1], data["bank"][:, 0]))
    np.testing.assert_allclose(angles, np.arange(0, 100, 10), atol=1e-4)


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    config = ReferenceScorerConfig(k=2, capacity=6, threshold=0.8)
    scorer = ReferenceAnomalyScorer(config)
    scorer.update(rng.normal(size=(9, 4)).astype(np.float32))  # wrapped around: the oldest entry is not in slot 0
    path = tmp_path / "bank.npz"
    scorer.save(path)
    back = ReferenceAnomalyScorer.load(path)
    assert back.config == config and len(back) == 6 and back.threshold == 0.8
    queries = rng.normal(size=(10, 4)).astype(np.float32)
    np.testing.assert_allclose(back.score(queries), scorer.score(queries), atol=1e-6)
    more = rng.normal(size=(2, 4)).astype(np.float32)
    scorer.update(more)
    back.update(more)  # FIFO order survived the file: the same two oldest entries go
    np.testing.assert_allclose(back.score(queries), scorer.score(queries), atol=1e-6)
    with pytest.raises(RuntimeError, match="empty"):
        ReferenceAnomalyScorer().save(tmp_path / "empty.npz")
    np.savez(tmp_path / "junk.npz", bank=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="not a reference bank file"):
        ReferenceAnomalyScorer.load(tmp_path / "junk.npz")


# ---------------------------------------------------------------------- simulated anomalies
def test_reference_scorer_separates_an_extra_object(model):
    """Bank: 40 windows of a sliding disc; held out: 20 more, and 20 with a second, sliding square."""
    rng = np.random.default_rng(1)
    normal = [shape_window(["disc"], rng) for _ in range(60)]
    anomalous = [shape_window(["disc", "square"], rng) for _ in range(20)]
    emb = model.embed_windows(normal + anomalous, SENSOR)
    scorer = ReferenceAnomalyScorer(ReferenceScorerConfig(k=5))
    scorer.fit(emb[:40])
    scores = scorer.score(emb[40:])
    auc = roc_auc(scores[:20], scores[20:])
    flagged = scorer.decide(scores)
    print(
        f"ROC-AUC {auc:.3f}; at threshold {scorer.threshold}: "
        f"{flagged[:20].mean():.2f} of normal, {flagged[20:].mean():.2f} of anomalous windows flagged"
    )
    assert auc > 0.8
    assert flagged[20:].mean() > flagged[:20].mean()
