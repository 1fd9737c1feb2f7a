"""The training losses against plain float64 references, their gradients and switches.

References are written out with loops and explicit softmaxes (numpy, float64), and
the Sinkhorn one transcribes the official ``LPTNMmodel.sinkhorn`` line by line.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from event_clip_ros.train.losses import (
    ZS_LOGIT_SCALE_INIT,
    PretrainLoss,
    PretrainLossConfig,
    contrastive_loss,
    prediction_loss,
    relation_kl_loss,
    sinkhorn_log_targets,
    zero_shot_distill_loss,
)

B, D, C = 6, 16, 5


# ------------------------------------------------------------------ references
def _unit(rows: np.ndarray) -> np.ndarray:
    return np.stack([r / math.sqrt(sum(v * v for v in r)) for r in rows])


def _log_softmax_row(row: np.ndarray) -> np.ndarray:
    top = max(row)
    log_total = top + math.log(sum(math.exp(v - top) for v in row))
    return np.array([v - log_total for v in row])


def ref_contrastive(img: np.ndarray, evt: np.ndarray, tau: float) -> float:
    q, k = _unit(img), _unit(evt)
    total = 0.0
    for i in range(len(q)):
        logits = np.array([q[i] @ k[j] / tau for j in range(len(k))])
        total -= _log_softmax_row(logits)[i]
    return 2 * tau * total / len(q)


def official_sinkhorn(scores: torch.Tensor) -> torch.Tensor:
    """``LPTNMmodel.sinkhorn`` of the official code, one process (all_reduce = identity)."""
    Q = torch.exp(scores).t()
    Bq, K = Q.shape[1], Q.shape[0]
    Q = Q / torch.sum(Q)
    for _ in range(3):
        Q = Q / torch.sum(Q, dim=1, keepdim=True)
        Q = Q / K
        Q = Q / torch.sum(Q, dim=0, keepdim=True)
        Q = Q / Bq
    Q = Q * Bq
    return Q.t()


def ref_log_sinkhorn(scores: np.ndarray, iters: int = 3) -> np.ndarray:
    """Sinkhorn in the log domain with explicit loops (max-shifted log-sum-exp)."""

    def lse(values) -> float:
        top = max(values)
        return top + math.log(sum(math.exp(v - top) for v in values))

    lp = scores.astype(np.float64).copy()
    n_rows, n_cols = lp.shape
    for _ in range(iters):
        for j in range(n_cols):
            lp[:, j] -= lse(lp[:, j])
        for i in range(n_rows):
            lp[i, :] -= lse(lp[i, :])
    return lp


def ref_kl(img_fi: np.ndarray, evt: np.ndarray, log_p: np.ndarray, tau: float) -> float:
    """KLDivLoss(batchmean)(log_softmax(S_ie), P), 0 log 0 = 0."""
    q, e = _unit(img_fi), _unit(evt)
    total = 0.0
    for i in range(len(q)):
        log_pred = _log_softmax_row(np.array([q[i] @ e[j] / tau for j in range(len(e))]))
        for j in range(len(e)):
            p = math.exp(log_p[i, j])
            if p > 0:
                total += p * (log_p[i, j] - log_pred[j])
    return total / len(q)


def ref_distill(teacher: np.ndarray, student: np.ndarray, tau: float) -> float:
    total = 0.0
    for t_row, s_row in zip(teacher, student):
        exp_t = [math.exp(v / tau) for v in t_row]
        p = [v / sum(exp_t) for v in exp_t]
        log_s = _log_softmax_row(s_row / tau)
        total -= sum(pk * lk for pk, lk in zip(p, log_s))
    return total / len(teacher) * tau**2


def ref_zero_shot(img, evt, text, log_scale: float, tau: float, normalize: bool) -> float:
    if normalize:
        img, evt, text = _unit(img), _unit(evt), _unit(text)
    s_ref = math.exp(log_scale) * img @ text.T
    s_cur = math.exp(log_scale) * evt @ text.T
    return ref_distill(s_ref, s_cur, tau) + ref_distill(s_cur.T, s_ref.T, tau)


def ref_prediction(evt: np.ndarray, text: np.ndarray, labels: np.ndarray) -> float:
    e, t = _unit(evt), _unit(text)
    return sum(1 - e[i] @ t[labels[i]] for i in range(len(e))) / len(e)


def _batch(seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    img_fi = torch.randn(B, D, generator=g, dtype=dtype)
    img_ref = img_fi + 0.3 * torch.randn(B, D, generator=g, dtype=dtype)
    evt = img_fi + torch.randn(B, D, generator=g, dtype=dtype)
    text = torch.randn(C, D, generator=g, dtype=dtype)
    labels = torch.randint(0, C, (B,), generator=g)
    return img_fi, img_ref, evt, text, labels


# ------------------------------------------------------------ values vs references
@pytest.mark.parametrize("tau_e", [0.02, 0.2])
def test_contrastive_matches_reference(tau_e: float) -> None:
    img, _, evt, _, _ = _batch()
    got = contrastive_loss(img, evt, tau_e)
    assert got.item() == pytest.approx(ref_contrastive(img.numpy(), evt.numpy(), tau_e), rel=1e-12)


def test_sinkhorn_equals_official_transcription_and_rows_sum_to_one() -> None:
    img_ref = torch.nn.functional.normalize(_batch()[1], dim=1)
    scores = img_ref @ img_ref.T / 0.1
    log_p = sinkhorn_log_targets(scores, iters=3)
    torch.testing.assert_close(log_p.exp(), official_sinkhorn(scores), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(log_p.numpy(), ref_log_sinkhorn(scores.numpy()), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_p.exp().sum(dim=1), torch.ones(B, dtype=torch.float64))


def test_relation_kl_matches_direct_reference_at_tau_0_1() -> None:
    img_fi, img_ref, evt, _, _ = _batch()
    ref = torch.nn.functional.normalize(img_ref, dim=1)
    p_direct = official_sinkhorn(ref @ ref.T / 0.1)
    assert torch.isfinite(p_direct).all()
    expected = ref_kl(img_fi.numpy(), evt.numpy(), p_direct.log().numpy(), 0.1)
    assert relation_kl_loss(img_fi, img_ref, evt, tau_i=0.1).item() == pytest.approx(expected, rel=1e-10)


def test_relation_kl_at_released_tau_0_01_is_finite_where_the_official_overflows() -> None:
    img_fi, img_ref, evt, _, _ = _batch(seed=3, dtype=torch.float32)
    ref = torch.nn.functional.normalize(img_ref, dim=1)
    scores = ref @ ref.T / 0.01  # diagonal 100: exp overflows float32 (max ~ e^88.7)
    official = official_sinkhorn(scores)
    assert not torch.isfinite(official).all()
    official_loss = torch.nn.KLDivLoss(reduction="batchmean")(
        torch.log_softmax(torch.nn.functional.normalize(img_fi, dim=1) @ torch.nn.functional.normalize(evt, dim=1).T / 0.01, dim=1),
        official,
    )
    assert torch.isnan(official_loss)

    ours = relation_kl_loss(img_fi, img_ref, evt, tau_i=0.01)
    assert torch.isfinite(ours)
    log_p64 = ref_log_sinkhorn(_unit(img_ref.double().numpy()) @ _unit(img_ref.double().numpy()).T / 0.01)
    expected = ref_kl(img_fi.double().numpy(), evt.double().numpy(), log_p64, 0.01)
    assert ours.item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("normalize", [False, True])
def test_zero_shot_distill_matches_reference(normalize: bool) -> None:
    img, _, evt, text, _ = _batch()
    scale = torch.tensor(ZS_LOGIT_SCALE_INIT, dtype=torch.float64)
    if not normalize:  # raw features make the official logits huge; shrink them to a useful range
        img, evt, text = img / 4, evt / 4, text / 4
    got = zero_shot_distill_loss(img, evt, text, scale, tau=2.0, normalize=normalize)
    expected = ref_zero_shot(img.numpy(), evt.numpy(), text.numpy(), ZS_LOGIT_SCALE_INIT, 2.0, normalize)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_prediction_loss_matches_reference_and_cosine_embedding_loss() -> None:
    _, _, evt, text, labels = _batch()
    got = prediction_loss(evt, text, labels)
    assert got.item() == pytest.approx(ref_prediction(evt.numpy(), text.numpy(), labels.numpy()), rel=1e-12)
    torch_ref = torch.nn.CosineEmbeddingLoss()(evt, text[labels], torch.ones(B, dtype=torch.float64))
    assert got.item() == pytest.approx(torch_ref.item(), rel=1e-12)


def test_prediction_loss_rejects_bad_labels() -> None:
    _, _, evt, text, labels = _batch()
    with pytest.raises(ValueError, match="labels must lie"):
        prediction_loss(evt, text, torch.full_like(labels, C))
    with pytest.raises(ValueError, match="labels must be"):
        prediction_loss(evt, text, labels[:-1])


def test_shape_mismatch_is_a_clear_error() -> None:
    img, img_ref, evt, text, _ = _batch()
    with pytest.raises(ValueError, match="one shape"):
        contrastive_loss(img, evt[:-1])
    with pytest.raises(ValueError, match="one shape"):
        relation_kl_loss(img, img_ref[:, :-1], evt)
    with pytest.raises(ValueError, match="text must be"):
        zero_shot_distill_loss(img, evt, text[:, :-1], torch.tensor(0.0))


# ------------------------------------------------------------------ combined loss
def test_pretrain_loss_sums_the_weighted_terms() -> None:
    img_fi, img_ref, evt, text, _ = _batch()
    cfg = PretrainLossConfig(tau_i=0.1, w_ct=2.0, w_kl=0.5, alpha_zs=0.1)
    module = PretrainLoss(cfg).double()
    total, parts = module(img_fi, img_ref, evt, text)
    ct = contrastive_loss(img_fi, evt, cfg.tau_e).item()
    kl = relation_kl_loss(img_fi, img_ref, evt, cfg.tau_i).item()
    zs = zero_shot_distill_loss(img_fi, evt, text, module.zs_logit_scale.detach(), cfg.zs_tau).item()
    assert parts["loss_ct"] == pytest.approx(2.0 * ct)
    assert parts["loss_kl"] == pytest.approx(0.5 * kl)
    assert parts["loss_zs"] == pytest.approx(0.1 * zs)
    assert total.item() == pytest.approx(2.0 * ct + 0.5 * kl + 0.1 * zs)
    assert parts["loss"] == pytest.approx(total.item())
    assert parts["zs_logit_scale"] == pytest.approx(1 / 0.07)
    assert all(isinstance(v, float) for v in parts.values())


SWITCHES = {"ct": dict(use_kl=False, use_zs=False), "kl": dict(use_ct=False, use_zs=False), "zs": dict(use_ct=False, use_kl=False)}


@pytest.mark.parametrize("only", sorted(SWITCHES))
def test_switches_drop_terms_and_their_gradients(only: str) -> None:
    img_fi, img_ref, evt, text, _ = _batch()
    module = PretrainLoss(PretrainLossConfig(tau_i=0.1, **SWITCHES[only])).double()
    evt_a = evt.clone().requires_grad_()
    total, parts = module(img_fi, img_ref, evt_a, text)
    total.backward()
    assert {k for k in parts if k.startswith("loss_")} == {f"loss_{only}"}
    assert (module.zs_logit_scale.grad is not None) == (only == "zs")

    evt_b = evt.clone().requires_grad_()
    scale = torch.tensor(ZS_LOGIT_SCALE_INIT, dtype=torch.float64)
    single = {
        "ct": lambda: contrastive_loss(img_fi, evt_b, 0.02),
        "kl": lambda: relation_kl_loss(img_fi, img_ref, evt_b, 0.1),
        "zs": lambda: 0.1 * zero_shot_distill_loss(img_fi, evt_b, text, scale, 2.0),
    }[only]()
    single.backward()
    assert evt_a.grad.abs().sum() > 0
    torch.testing.assert_close(evt_a.grad, evt_b.grad)


def test_config_validation_and_missing_text() -> None:
    with pytest.raises(ValueError, match="at least one"):
        PretrainLossConfig(use_ct=False, use_kl=False, use_zs=False)
    with pytest.raises(ValueError, match="tau_i"):
        PretrainLossConfig(tau_i=0.0)
    with pytest.raises(ValueError, match="sinkhorn_iters"):
        PretrainLossConfig(sinkhorn_iters=0)
    img_fi, img_ref, evt, _, _ = _batch()
    with pytest.raises(ValueError, match="text"):
        PretrainLoss()(img_fi, img_ref, evt, None)


# ------------------------------------------------- gradients through the tiny model
@pytest.fixture(scope="module")
def tiny():
    from event_clip_ros.model import ModelSpec, create_event_clip

    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))
    g = torch.Generator().manual_seed(1)
    h, w = model.meta.input_size
    frames = torch.rand(4, h, w, generator=g) * 2 - 1
    images = torch.randn(4, 3, h, w, generator=g)
    prompts = [f"a photo of a {name}" for name in ("cat", "dog", "car", "tree", "cup")]
    return model, frames, images, prompts


GRADIENT_CASES = {
    "ct": lambda m, img, evt, text, labels: contrastive_loss(img, evt),
    "kl": lambda m, img, evt, text, labels: relation_kl_loss(img, img, evt),
    "zs": lambda m, img, evt, text, labels: zero_shot_distill_loss(img, evt, text, torch.tensor(ZS_LOGIT_SCALE_INIT)),
    "pred": lambda m, img, evt, text, labels: prediction_loss(evt, text, labels),
    "combined": lambda m, img, evt, text, labels: PretrainLoss()(img, img, evt, text)[0],
}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_losses_train_f_E_only(tiny, case: str) -> None:
    model, frames, images, prompts = tiny
    model.zero_grad(set_to_none=True)
    img = model.encode_images(images, normalize=False)
    text = model.encode_texts(prompts, normalize=False)
    evt = model.encode_frames(frames, normalize=False)
    evt.retain_grad()
    loss = GRADIENT_CASES[case](model, img, evt, text, torch.tensor([0, 1, 2, 3]))
    assert torch.isfinite(loss)
    loss.backward()

    assert evt.grad is not None and evt.grad.abs().sum() > 0
    tower_grads = [p.grad for p in model.event_tower.parameters()]
    assert all(g is not None for g in tower_grads)
    assert model.event_tower.proj.grad.abs().sum() > 0
    assert sum(float(g.abs().sum()) for g in tower_grads) > 0
    for p in model.clip.parameters():  # f_I and f_T stay frozen
        assert not p.requires_grad and p.grad is None


# ------------------------------------------------------------------ tau_I: the released value warns once
def test_released_tau_i_stays_selectable_and_warns_once(caplog, monkeypatch) -> None:
    from event_clip_ros.train import losses

    monkeypatch.setattr(losses, "_warned", set())
    with caplog.at_level("WARNING", logger="event_clip_ros.train.losses"):
        PretrainLossConfig(tau_i=0.1)
        assert not caplog.records
        first = PretrainLossConfig(tau_i=0.01)
        PretrainLossConfig(tau_i=0.01)
        PretrainLossConfig(tau_i=0.005)
    assert first.tau_i == 0.01  # still selectable
    warnings = [r for r in caplog.records if "tau_i = 0.01" in r.getMessage()]
    assert len(warnings) == 1 and len(caplog.records) == 1 and "section 6" in warnings[0].getMessage()


# ------------------------------------------------------------------ fp32 under autocast
def test_losses_and_logits_are_float32_under_bf16_autocast(monkeypatch) -> None:
    """The trainer runs the step under autocast: the similarity logits (divided by tau 0.01-0.02) must still be
    float32. bf16 autocast works on the CPU, so this runs anywhere."""
    import torch.nn.functional as F

    seen: list[torch.dtype] = []
    for name in ("cross_entropy", "log_softmax", "kl_div", "softmax", "cosine_similarity"):
        original = getattr(F, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(args[0].dtype)
            return _original(*args, **kwargs)

        monkeypatch.setattr(F, name, spy)
    img_fi, img_ref, evt, text, labels = (t.to(torch.bfloat16) if t.is_floating_point() else t for t in _batch(dtype=torch.float32))
    cases = {
        "ct": lambda: contrastive_loss(img_fi, evt, 0.02),
        "kl": lambda: relation_kl_loss(img_fi, img_ref, evt, 0.01),
        "zs": lambda: zero_shot_distill_loss(img_fi, evt, text, torch.tensor(ZS_LOGIT_SCALE_INIT)),
        "pred": lambda: prediction_loss(evt, text, labels),
        "total": lambda: PretrainLoss(PretrainLossConfig(tau_i=0.1))(img_fi, img_ref, evt, text)[0],
    }
    for name, fn in cases.items():
        seen.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = fn()
            assert torch.is_autocast_enabled("cpu")  # still on for the caller afterwards
        reference = fn()  # the same bf16 inputs, no autocast
        assert under_autocast.dtype == torch.float32, name
        assert seen and all(dtype == torch.float32 for dtype in seen), (name, seen)
        torch.testing.assert_close(under_autocast, reference, rtol=1e-6, atol=1e-7, msg=name)
    # and the logits the matmul makes under autocast are what fp32 makes (bf16 would differ by ~1%)
    g = torch.Generator().manual_seed(3)
    a, b = (torch.randn(B, D, generator=g).to(torch.bfloat16) for _ in range(2))  # unrelated: a loss well above 0
    exact = contrastive_loss(a.double(), b.double(), 0.02)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = contrastive_loss(a, b, 0.02)
    assert float(exact) > 0.01 and abs(float(got) - float(exact)) < 1e-5 * float(exact)
