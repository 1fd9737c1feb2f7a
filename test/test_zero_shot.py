"""Prompt files and label lists, and the zero-shot classifier: hand-computed logits, caching, run-time label changes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.prompts import (
    DEFAULT_TEMPLATES,
    PROMPT_SETS,
    fill_templates,
    load_labels,
    load_prompts,
    load_templates,
    parse_labels,
    resolve_templates,
    validate_templates,
)
from event_clip_ros.model.zero_shot import LabelScore, ZeroShotClassifier

from shape_scenes import SENSOR, shape_window


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Deterministic standard-normal test vectors."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))


@pytest.fixture
def text_calls(model, monkeypatch):
    """The text batches passed to model.encode_texts while the test runs."""
    calls: list[list[str]] = []
    original = model.encode_texts

    def spy(texts, normalize=True):
        calls.append(list(texts))
        return original(texts, normalize)

    monkeypatch.setattr(model, "encode_texts", spy)
    return calls


# ---------------------------------------------------------------------- prompts
def test_paper_prompts_are_the_official_codes():
    assert PROMPT_SETS["n-imagenet"] == ("a photo of a {}",)
    assert PROMPT_SETS["n-caltech101"] == ("a point cloud image of a {}",)
    assert PROMPT_SETS["n-mnist"] == ("The digit {}",)
    assert DEFAULT_TEMPLATES == PROMPT_SETS["event"] and len(DEFAULT_TEMPLATES) >= 3
    for templates in PROMPT_SETS.values():
        assert validate_templates(templates) == templates


def test_load_templates_text_file_skips_comments_blanks_and_duplicates(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# event prompts\n\n  a photo of a {}.  \n  # indented comment\na sketch of a {}.\na photo of a {}.\n")
    assert load_templates(path) == ("a photo of a {}.", "a sketch of a {}.")


def test_load_templates_yaml_list(tmp_path):
    path = tmp_path / "prompts.yaml"
    path.write_text("- 'a photo of a {}.'\n- 'an event camera image of a {}.'\n")
    assert load_templates(path) == ("a photo of a {}.", "an event camera image of a {}.")
    path.write_text("prompt: 'a photo of a {}.'\n")
    with pytest.raises(ValueError, match="expected a YAML list"):
        load_templates(path)


@pytest.mark.parametrize("bad", ["a photo", "a {} and a {}", "a photo of a {label}"])
def test_template_without_exactly_one_placeholder_is_rejected(tmp_path, bad):
    with pytest.raises(ValueError, match="exactly one") as err:
        validate_templates(["a photo of a {}.", bad])
    assert bad in str(err.value)
    path = tmp_path / "prompts.txt"
    path.write_text(f"a photo of a {{}}.\n{bad}\n")
    with pytest.raises(ValueError, match="prompts.txt"):
        load_templates(path)


def test_empty_prompt_file_and_single_string_are_rejected(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no templates"):
        load_templates(path)
    with pytest.raises(ValueError, match="not one string"):
        validate_templates("a photo of a {}.")
    with pytest.raises(ValueError, match="cannot read"):
        load_templates(tmp_path / "missing.txt")


def test_load_prompts_reads_complete_sentences_and_rejects_templates(tmp_path):
    path = tmp_path / "abnormal.txt"
    path.write_text("# what must not happen\na person falling.\n\na car crash.\n")
    assert load_prompts(path) == ("a person falling.", "a car crash.")
    path.write_text("a person falling.\na photo of a {}.\n")
    with pytest.raises(ValueError, match="look like templates"):
        load_prompts(path)


def test_parse_labels_strips_drops_empties_and_duplicates_keeping_order():
    assert parse_labels(" cat, dog,,car , dog,Cat ") == ("cat", "dog", "car", "Cat")
    with pytest.raises(ValueError, match="no labels"):
        parse_labels(" , ,")


def test_load_labels_one_per_line_keeps_commas(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# classes\nblack grouse, blackcock\n\nptarmigan\nptarmigan\n")
    assert load_labels(path) == ("black grouse, blackcock", "ptarmigan")
    yaml_path = tmp_path / "digits.yml"
    yaml_path.write_text("[0, 1, 'two']\n")
    assert load_labels(yaml_path) == ("0", "1", "two")


def test_resolve_templates_by_name_or_file(tmp_path):
    assert resolve_templates("n-mnist") == ("The digit {}",)
    path = tmp_path / "p.txt"
    path.write_text("a {} seen by an event camera\n")
    assert resolve_templates(path) == ("a {} seen by an event camera",)
    with pytest.raises(ValueError, match="neither a prompt set"):
        resolve_templates("no-such-set")


def test_fill_templates_substitutes_literally():
    assert fill_templates(("a {} here", "The digit {}"), "{x}") == ["a {x} here", "The digit {x}"]


# ---------------------------------------------------------------------- known vectors
@pytest.fixture
def known() -> ZeroShotClassifier:
    return ZeroShotClassifier.from_text_embeddings(["a", "b", "c"], np.eye(3, dtype=np.float32), logit_scale=10.0)


def test_logits_probs_and_ranking_by_hand(known):
    e = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32)  # normalised inside: (2, 1, 0) / sqrt(5)
    s5 = math.sqrt(5.0)
    expected_logits = np.array([[20 / s5, 10 / s5, 0.0], [0.0, 0.0, 10.0]])
    np.testing.assert_allclose(known.logits(e), expected_logits, rtol=1e-6, atol=1e-6)
    z = np.exp(expected_logits[0])
    p0 = z / z.sum()  # (0.9878, 0.0113, 0.0001) for a, b, c
    probs = known.probs(e)
    assert probs.dtype == np.float32 and probs.shape == (2, 3)
    np.testing.assert_allclose(probs[0], p0, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    top = known.classify(e, top_k=2)
    assert [s.label for s in top[0]] == ["a", "b"] and [s.label for s in top[1]] == ["c", "a"]
    assert top[0][0].score == pytest.approx(p0[0], rel=1e-5) and top[0][1].score == pytest.approx(p0[1], rel=1e-5)
    assert isinstance(top[0][0], LabelScore)


def test_classify_top_k_bounds_and_empty_batch(known):
    e = torch.tensor([[0.0, 1.0, 0.1]])
    assert len(known.classify(e, top_k=10)[0]) == 3
    with pytest.raises(ValueError, match="top_k"):
        known.classify(e, top_k=0)
    assert known.classify(np.zeros((0, 3), np.float32)) == []
    assert known.logits(torch.zeros(0, 3)).shape == (0, 3)


def test_torch_and_numpy_inputs_agree(known):
    e = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(known.logits(e), known.logits(torch.from_numpy(e)))
    np.testing.assert_allclose(known.logits(e.astype(np.float64)), known.logits(e), rtol=1e-6)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((2, 4), np.float32), r"shape \(N, 3\)"),
        (np.zeros(3, np.float32), r"shape \(N, 3\)"),
        (np.ones((1, 3), np.int64), "floating point"),
        (np.array([[np.nan, 0.0, 1.0]], np.float32), "NaN"),
    ],
)
def test_bad_embeddings_are_rejected(known, bad, match):
    with pytest.raises(ValueError, match=match):
        known.classify(bad)


def test_weights_without_model_cannot_change_labels(known):
    assert known.model is None and known.labels == ("a", "b", "c")
    with pytest.raises(RuntimeError, match="without a model"):
        known.set_labels(["a", "d"])
    with pytest.raises(RuntimeError, match="without a model"):
        known.classify_windows([], SENSOR)
    with pytest.raises(ValueError, match=r"\(2, D\)"):
        ZeroShotClassifier.from_text_embeddings(["a", "b", "a"], np.eye(3), logit_scale=10.0)
    with pytest.raises(ValueError, match="logit_scale"):
        ZeroShotClassifier.from_text_embeddings(["a", "b"], np.eye(2), logit_scale=0.0)


# ---------------------------------------------------------------------- with the model
def test_class_weights_are_renormalised_mean_of_normalised_prompt_embeddings(model):
    templates = ("a photo of a {}.", "a sketch of a {}.")
    clf = ZeroShotClassifier(model, ["disc", "bar"], templates)
    for row, label in zip(clf.weights, clf.labels):
        emb = model.embed_texts([t.replace("{}", label) for t in templates])
        expected = torch.nn.functional.normalize(emb.mean(dim=0), dim=0)
        torch.testing.assert_close(row, expected, rtol=1e-5, atol=1e-6)
    assert clf.weights.shape == (2, model.embed_dim) and clf.logit_scale == pytest.approx(model.logit_scale)
    np.testing.assert_allclose(torch.linalg.norm(clf.weights, dim=1).numpy(), 1.0, rtol=1e-6)


def test_text_is_encoded_once_and_only_again_for_new_labels_or_templates(model, text_calls):
    templates = ("a photo of a {}.", "a sketch of a {}.")
    clf = ZeroShotClassifier(model, ["disc", "bar", "square"], templates)
    assert len(text_calls) == 1 and len(text_calls[0]) == 6  # all prompts in one batch
    w0 = clf.weights.clone()
    e = randn(4, model.embed_dim)
    for _ in range(3):
        clf.classify(e)
    clf.set_labels(["disc", " bar", "square", "disc"])  # the same labels after cleaning
    clf.set_templates(list(templates))
    assert len(text_calls) == 1

    clf.set_labels(["square", "disc"])  # subset, reordered: no text encoded
    assert len(text_calls) == 1
    torch.testing.assert_close(clf.weights, w0[[2, 0]])

    clf.set_labels(["square", "triangle", "disc"])  # only the new label is encoded
    assert text_calls[1:] == [["a photo of a triangle.", "a sketch of a triangle."]]
    torch.testing.assert_close(clf.weights[[0, 2]], w0[[2, 0]])
    fresh = ZeroShotClassifier(model, ["triangle"], templates)
    torch.testing.assert_close(clf.weights[1], fresh.weights[0], rtol=1e-5, atol=1e-6)
    assert {s.label for s in clf.classify(e, top_k=3)[0]} == {"square", "triangle", "disc"}

    text_calls.clear()
    clf.set_templates(["an event camera image of a {}."])  # every label is re-encoded
    assert text_calls == [[f"an event camera image of a {c}." for c in ("square", "triangle", "disc")]]
    assert clf.templates == ("an event camera image of a {}.",)


def test_logits_follow_label_changes(model):
    clf = ZeroShotClassifier(model, ["disc", "bar", "square"])
    e = randn(3, model.embed_dim)
    before = clf.logits(e)
    clf.set_labels(["square", "disc"])
    np.testing.assert_allclose(clf.logits(e), before[:, [2, 0]], rtol=1e-6)
    assert clf.probs(e).shape == (3, 2)


def test_classify_windows_embeds_then_classifies(model):
    rng = np.random.default_rng(0)
    windows = [shape_window([kind], rng) for kind in ("disc", "bar", "square")]
    clf = ZeroShotClassifier(model, ["disc", "bar", "square"])
    got = clf.classify_windows(windows, SENSOR, top_k=3)
    expected = clf.classify(model.embed_windows(windows, SENSOR), top_k=3)
    assert [[s.label for s in row] for row in got] == [[s.label for s in row] for row in expected]
    for row, row_expected in zip(got, expected):
        assert [s.score for s in row] == pytest.approx([s.score for s in row_expected], rel=1e-5)
        assert sum(s.score for s in row) == pytest.approx(1.0, rel=1e-5)
