"""Few-shot classifier: hand-computed logits, shots and files, and accuracy against zero-shot on simulated shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.few_shot import FewShotClassifier
from event_clip_ros.model.zero_shot import ZeroShotClassifier

from shape_scenes import SENSOR, SHAPES, shape_window


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Deterministic standard-normal test vectors."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


E1, E2, E3 = np.eye(3, dtype=np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))


@pytest.fixture
def text() -> ZeroShotClassifier:
    """Labels a, b, c with text weights e1, e2, e3 and logit scale 10."""
    return ZeroShotClassifier.from_text_embeddings(["a", "b", "c"], np.eye(3, dtype=np.float32), logit_scale=10.0)


# ---------------------------------------------------------------------- known vectors
def test_centred_prototype_blend_by_hand(text):
    # shots: a = e1, b = e2 -> centre mu = (e1 + e2) / 2, prototypes (e1 - e2) / sqrt2 and (e2 - e1) / sqrt2; c has none
    few = FewShotClassifier(text, alpha=0.5)
    few.add_shots("a", E1[None])
    few.add_shots("b", E2[None])
    assert few.prototypes_active and few.shot_counts == {"a": 1, "b": 1}
    queries = np.stack([E1, E3, (E1 + E2) / math.sqrt(2)])
    expected = np.array(
        [
            [10 * (0.5 * 1 + 0.5 * 1), 10 * (0.5 * 0 + 0.5 * -1), 0.0],  # q = (e1 - e2)/sqrt2: +1 to a, -1 to b
            [0.0, 0.0, 10.0],  # q orthogonal to both prototypes; text picks c
            [10 * 0.5 / math.sqrt(2), 10 * 0.5 / math.sqrt(2), 0.0],  # q = (e1 + e2)/sqrt2, orthogonal to both
        ]
    )
    np.testing.assert_allclose(few.logits(queries), expected, atol=1e-5)
    top = few.classify(queries[:2], top_k=3)
    assert [s.label for s in top[0]] == ["a", "c", "b"] and top[1][0].label == "c"
    z = np.exp(expected[0] - expected[0].max())
    assert [s.score for s in top[0]] == pytest.approx([z[0] / z.sum(), z[2] / z.sum(), z[1] / z.sum()], rel=1e-5)


def test_alpha_extremes(text):
    queries = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    zero = FewShotClassifier(text, alpha=0.0)
    only = FewShotClassifier(text, alpha=1.0)
    for few in (zero, only):
        few.fit(np.stack([E1, E1 + 0.1 * E3, E2]), ["a", "a", "b"])
    np.testing.assert_allclose(zero.logits(queries), text.logits(queries), rtol=1e-6)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    m_a = (E1 + (E1 + 0.1 * E3) / np.linalg.norm(E1 + 0.1 * E3)) / 2
    mu = (m_a + E2) / 2
    p = np.stack([m_a - mu, E2 - mu])
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    qc = q - mu
    qc /= np.linalg.norm(qc, axis=1, keepdims=True)
    expected = np.column_stack([10 * qc @ p.T, 10 * q[:, 2]])  # a, b: prototypes only; c: text only
    np.testing.assert_allclose(only.logits(queries), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        FewShotClassifier(text, alpha=1.5)


def test_shots_of_one_label_leave_it_zero_shot(text, caplog):
    few = FewShotClassifier(text)
    few.add_shots("b", np.stack([E1, E2]))
    queries = np.stack([E1, E2, E3])
    assert not few.prototypes_active
    with caplog.at_level("WARNING"):
        np.testing.assert_allclose(few.logits(queries), text.logits(queries))
    assert "at least two labels" in caplog.text


def test_add_shots_accumulates_and_fit_replaces(text):
    rng = np.random.default_rng(1)
    shots = rng.normal(size=(6, 3)).astype(np.float32)
    labels = ["a", "b", "a", "c", "b", "a"]
    once = FewShotClassifier(text)
    once.fit(shots, labels)
    assert once.shot_counts == {"a": 3, "b": 2, "c": 1}
    piecewise = FewShotClassifier(text)
    for i, label in enumerate(labels):
        piecewise.add_shots(label, torch.from_numpy(shots[i : i + 1]))
    queries = rng.normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(piecewise.logits(queries), once.logits(queries), rtol=1e-5, atol=1e-6)
    once.fit(shots[:2], ["c", "b"])
    assert once.shot_counts == {"c": 1, "b": 1}
    once.clear("c")
    assert once.shot_counts == {"b": 1} and not once.prototypes_active


def test_bad_shots_are_rejected(text):
    few = FewShotClassifier(text)
    with pytest.raises(ValueError, match="not one of the classifier's labels"):
        few.add_shots("d", E1[None])
    with pytest.raises(ValueError, match="no embeddings"):
        few.add_shots("a", np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        few.add_shots("a", np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="2 embeddings but 1 labels"):
        few.fit(np.stack([E1, E2]), ["a"])
    with pytest.raises(ValueError, match=r"\['d'\]"):
        few.fit(np.stack([E1, E2]), ["a", "d"])
    assert few.shot_counts == {}


def test_prototypes_follow_label_changes(model):
    zs = ZeroShotClassifier(model, ["disc", "bar", "square"])
    few = FewShotClassifier(zs)
    shots = randn(6, model.embed_dim)
    few.fit(shots, ["disc", "bar", "square"] * 2)
    e = randn(4, model.embed_dim, seed=1)
    before = few.logits(e)
    zs.set_labels(["square", "disc"])  # bar's shots are kept but unused (and leave the centre)
    assert few.labels == ("square", "disc") and few.shot_counts["bar"] == 2
    reference = FewShotClassifier(zs)
    reference.fit(shots[[0, 2, 3, 5]], ["disc", "square"] * 2)
    np.testing.assert_allclose(few.logits(e), reference.logits(e), rtol=1e-5, atol=1e-5)
    zs.set_labels(["disc", "bar", "square"])
    np.testing.assert_allclose(few.logits(e), before, rtol=1e-5, atol=1e-5)


def test_save_and_load_resume_exactly(text, tmp_path):
    rng = np.random.default_rng(3)
    shots = rng.normal(size=(5, 3)).astype(np.float32)
    few = FewShotClassifier(text, alpha=0.3)
    few.fit(shots[:4], ["a", "b", "a", "c"])
    path = tmp_path / "prototypes"  # written to exactly this name, no ".npz" appended
    few.save(path)
    back = FewShotClassifier.load(path, text)
    queries = rng.normal(size=(4, 3)).astype(np.float32)
    assert back.alpha == 0.3 and back.shot_counts == few.shot_counts
    np.testing.assert_array_equal(back.logits(queries), few.logits(queries))
    for clf in (few, back):
        clf.add_shots("b", shots[4:])
    np.testing.assert_allclose(back.logits(queries), few.logits(queries), rtol=1e-6)
    assert FewShotClassifier.load(path, text, alpha=0.9).alpha == 0.9


def test_load_rejects_foreign_labels_sizes_and_files(text, tmp_path):
    few = FewShotClassifier(text)
    few.fit(np.stack([E1, E2]), ["a", "b"])
    path = tmp_path / "p.npz"
    few.save(path)
    other = ZeroShotClassifier.from_text_embeddings(["a", "c"], np.eye(3)[:2], logit_scale=10.0)
    with pytest.raises(ValueError, match=r"\['b'\]"):
        FewShotClassifier.load(path, other)
    wider = ZeroShotClassifier.from_text_embeddings(["a", "b"], np.eye(4)[:2], logit_scale=10.0)
    with pytest.raises(ValueError, match="D=4"):
        FewShotClassifier.load(path, wider)
    junk = tmp_path / "junk.npz"
    np.savez(junk, x=np.zeros(2))
    with pytest.raises(ValueError, match="not a few-shot prototype file"):
        FewShotClassifier.load(junk, text)


# ---------------------------------------------------------------------- accuracy on simulated shapes
@pytest.fixture(scope="module")
def shapes_task(model):
    """30 simulated windows per shape, their embeddings and class indices."""
    rng = np.random.default_rng(0)
    kinds = [kind for kind in SHAPES for _ in range(30)]
    windows = [shape_window([kind], rng) for kind in kinds]
    return model.embed_windows(windows, SENSOR), np.array([SHAPES.index(k) for k in kinds])


def test_few_shot_beats_zero_shot_on_simulated_shapes(model, shapes_task):
    """k in {1, 2, 5} shots per class, the rest held out; mean accuracy over 10 draws of the shots.

    The random-init text tower knows nothing, so zero-shot is at chance
    (1/3); the prototypes come from f_E's embeddings of the shots.
    """
    emb, y = shapes_task
    zs = ZeroShotClassifier(model, SHAPES)
    zero_shot_acc = float((zs.logits(emb).argmax(axis=1) == y).mean())
    rng = np.random.default_rng(0)
    accuracy = {}
    for k in (1, 2, 5):
        runs = []
        for _ in range(10):
            shots = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False) for c in range(len(SHAPES))])
            held_out = np.setdiff1d(np.arange(y.size), shots)
            few = FewShotClassifier(zs, alpha=0.5)
            few.fit(emb[shots], [SHAPES[c] for c in y[shots]])
            runs.append((few.logits(emb[held_out]).argmax(axis=1) == y[held_out]).mean())
        accuracy[k] = float(np.mean(runs))
    print(f"zero-shot {zero_shot_acc:.3f}; few-shot (alpha 0.5) " + ", ".join(f"{k}-shot {a:.3f}" for k, a in accuracy.items()))
    chance = 1 / len(SHAPES)
    for k, acc in accuracy.items():
        assert acc > max(zero_shot_acc, chance) + 0.15, (k, acc, zero_shot_acc)
    assert accuracy[5] > accuracy[1]
