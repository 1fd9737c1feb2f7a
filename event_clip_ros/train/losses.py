"""The losses of Jeong et al. (arXiv 2412.03093) on embeddings, DDP-aware.

Pre-training minimises ``L = w_ct L_ct + w_kl L_kl + alpha L_zs`` (paper: w = 1,
alpha = 0.1); fine-tuning minimises ``L_pred``. Each term is computed as the
official code does (EavnJeong/Event_Modality_Application @1e8f538:
``model/model.py``, ``trainer.py``, ``trainer_ft.py``; notes in
shared/specs/paper-method.md 1.5), with these deliberate deviations:

1. L_ct gathers the event keys across ranks *with* gradients. The official
   ``concat_all_gather`` runs under ``no_grad`` and its queries come from the
   frozen f_I, so its L_ct gives no gradient at all.
2. L_kl's Sinkhorn runs in the log domain. The official ``exp(S_ii)`` overflows
   float32 at the released tau_i = 0.01 (the diagonal is 1/tau_i = 100 > 88.7),
   so its targets, and the loss, are NaN.
3. Under DDP every term equals the single-process value on the global batch: L_kl
   compares each local row with the gathered batch (the official code uses the
   local B x B block and all-reduces Sinkhorn row sums of unrelated blocks), and
   the transposed L_zs term softmaxes over the gathered batch (the official one
   over the local batch). With one process all terms equal the official values.

Scaling under DDP: each rank's loss is the mean over its local rows, so the mean
of the ranks' losses is the global-batch loss. The gathers sum every rank's
gradient into the owner's slice, so the gradient on rank r's embeddings is
``world_size`` times that of the global-batch loss, and DDP's averaging of
parameter gradients over ranks gives exactly the single-process gradient.

Inputs are unnormalised (B, D) embeddings as the towers output them
(``EventClip.encode_*(..., normalize=False)``): L_ct, L_kl and L_pred L2-normalise
them, L_zs uses them as given (official) or normalised (ZSCL), see
:func:`zero_shot_distill_loss`.

Precision: every loss runs in float32 with autocast switched off (:func:`fp32`),
whatever the caller's autocast (the trainer runs the step under bf16 / fp16
autocast): similarity logits divided by tau = 0.01-0.02 would otherwise be
computed in bf16 (3 significant digits), and exp / log-sum-exp of them lose the
differences the losses are made of.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import all_reduce_logsumexp, gather_with_grad, get_rank, mean_grad_across_ranks

#: Initial zero-shot distillation logit scale, ln(1/0.07), as CLIP and the official trainer.
ZS_LOGIT_SCALE_INIT = math.log(1 / 0.07)
#: The released L_kl temperature (official T_image); see :func:`warn_released_tau_i`.
RELEASED_TAU_I = 0.01

log = logging.getLogger(__name__)
_warned: set[str] = set()


def warn_released_tau_i(tau_i: float) -> bool:
    """Warn (once per process) that L_kl at tau_I <= 0.01 is the released value known to fail; True if it warned.

    At 0.01 the released L_kl is NaN (its exp(S_ii) overflows float32; our log-domain Sinkhorn avoids that), and in
    the toy reproduction (paper-method.md section 6) L_kl's gradient then dwarfs the other terms: 53% held-out
    10-way accuracy at 0.01 against 90% at 0.1, the value of ECDP and of the official fine-tuning model.
    """
    if tau_i > RELEASED_TAU_I or "tau_i" in _warned:
        return False
    _warned.add("tau_i")
    log.warning("loss.tau_i = %g: the released L_kl temperature, which makes L_kl NaN in the released code and a sharp "
                "instance-matching loss that swamps the others (toy reproduction: 53%% held-out accuracy at 0.01 "
                "against 90%% at 0.1, paper-method.md section 6); the presets use 0.1", tau_i)
    return True


_HALF = (torch.float16, torch.bfloat16)


def fp32(fn):
    """Run ``fn`` with autocast disabled and its half-precision tensor arguments cast to float32 (float64 stays)."""

    def cast(value):
        return value.float() if isinstance(value, torch.Tensor) and value.dtype in _HALF else value

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        tensor = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        device_type = tensor.device.type if tensor is not None else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return fn(*map(cast, args), **{k: cast(v) for k, v in kwargs.items()})

    return wrapper


@fp32
def contrastive_loss(img: torch.Tensor, evt: torch.Tensor, tau_e: float = 0.02) -> torch.Tensor:
    """L_ct: image -> event InfoNCE, one direction, scaled by 2 tau_e (as the official code).

    ``img`` (B, D): frozen f_I embeddings, the queries (this rank's). ``evt`` (B, D):
    f_E embeddings; the keys are all ranks' event embeddings, gathered with gradients,
    and query i's positive is its own event at global index rank * B + i.
    """
    _check_pair(img, evt, "img", "evt")
    queries = F.normalize(img, dim=1)
    keys = gather_with_grad(F.normalize(evt, dim=1))
    logits = queries @ keys.T / tau_e
    targets = torch.arange(queries.shape[0], device=queries.device) + get_rank() * queries.shape[0]
    return F.cross_entropy(logits, targets) * (2 * tau_e)


@torch.no_grad()
@fp32
def sinkhorn_log_targets(scores: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """log P, P = Sinkhorn(exp(scores)), computed in the log domain (no overflow).

    ``scores`` (B, N): this rank's B query rows against all N = world_size * B keys
    (the gathered batch). ECDP's / the official Sinkhorn on Q = exp(scores)^T repeats
    ``iters`` times: normalise each key over all ranks' queries (Q's rows; sums
    all-reduced), then each query over the keys (Q's columns). Its extra scalings
    (divide by the total, by K and B, times B at the end) only rescale before a
    normalisation and cancel, so the result is the same: every row of P sums to 1.
    """
    if iters < 1:
        raise ValueError(f"Sinkhorn needs at least one iteration, got {iters}")
    log_p = scores
    for _ in range(iters):
        log_p = log_p - all_reduce_logsumexp(torch.logsumexp(log_p, dim=0))
        log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)
    return log_p


@fp32
def relation_kl_loss(
    img_fi: torch.Tensor, img_ref: torch.Tensor, evt: torch.Tensor, tau_i: float = 0.01, iters: int = 3
) -> torch.Tensor:
    """L_kl: KL(P || softmax_j S_ie), batch mean (ECDP's relational distillation).

    S_ie = î ê_g^T / tau_i with î from ``img_fi`` (f_I, this rank's rows) and ê_g all
    ranks' event embeddings (gathered with gradients). The targets
    P = Sinkhorn(exp(S_ii)), S_ii = î_ref î_ref,g^T / tau_i from the reference
    (foundation) image embeddings ``img_ref``, carry no gradient; see
    :func:`sinkhorn_log_targets`. Released tau_i: 0.01; ECDP and the official
    fine-tune model use 0.1, which the toy reproduction found far better.
    """
    _check_pair(img_fi, evt, "img_fi", "evt")
    _check_pair(img_fi, img_ref, "img_fi", "img_ref")
    queries = F.normalize(img_fi, dim=1)
    log_pred = F.log_softmax(queries @ gather_with_grad(F.normalize(evt, dim=1)).T / tau_i, dim=1)
    with torch.no_grad():
        ref = F.normalize(img_ref, dim=1)
        log_target = sinkhorn_log_targets(ref @ gather_with_grad(ref).T / tau_i, iters)
    return F.kl_div(log_pred, log_target, reduction="batchmean", log_target=True)


def _soft_distill(teacher: torch.Tensor, student: torch.Tensor, tau: float) -> torch.Tensor:
    """CE(student / tau, softmax(teacher / tau)) * tau^2, rows averaged (the official ``distillation``).

    The teacher is not detached, as in the official code.
    """
    return F.cross_entropy(student / tau, F.softmax(teacher / tau, dim=1)) * tau**2


@fp32
def zero_shot_distill_loss(
    img: torch.Tensor,
    evt: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    tau: float = 2.0,
    normalize: bool = False,
) -> torch.Tensor:
    """L_zs (ZSCL-style, as the official trainer): D(s_ref, s_cur) + D(s_cur^T, s_ref^T).

    s_ref = exp(logit_scale) img T^T and s_cur = exp(logit_scale) evt T^T, (B, C);
    D(t, s) = CE(s / tau, softmax(t / tau)) tau^2. The first term distils, per
    sample, the image's class distribution into the event's; the second, per class,
    the distribution over the (gathered, global) batch, with the event side as the
    teacher as the official code has it.

    ``text`` (C, D): class-prompt embeddings; during pre-training pass only the seen
    classes' prompts (the caller decides). ``logit_scale``: a learnable log scale
    (official: a new parameter initialised to ln(1/0.07), see :class:`PretrainLoss`).
    ``normalize``: False uses the raw features as the official code; True
    L2-normalises img, evt and text first as ZSCL does (cosine logits). The weight
    alpha is applied by the caller.
    """
    _check_pair(img, evt, "img", "evt")
    if text.ndim != 2 or text.shape[1] != img.shape[1]:
        raise ValueError(f"text must be (C, {img.shape[1]}), got {tuple(text.shape)}")
    if normalize:
        img, evt, text = (F.normalize(x, dim=1) for x in (img, evt, text))
    scale = logit_scale.exp()
    s_ref = scale * img @ text.T
    s_cur = scale * evt @ text.T
    return _soft_distill(s_ref, s_cur, tau) + _soft_distill(gather_with_grad(s_cur).T, gather_with_grad(s_ref).T, tau)


@fp32
def prediction_loss(evt: torch.Tensor, text: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_pred (fine-tuning): mean_i (1 - cos(evt_i, text[labels_i])), CosineEmbeddingLoss with target +1.

    ``evt`` (B, D) event embeddings, ``text`` (C, D) class-prompt embeddings, ``labels`` (B,) class indices.
    """
    if labels.shape != evt.shape[:1]:
        raise ValueError(f"labels must be ({evt.shape[0]},), got {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= text.shape[0]):
        raise ValueError(f"labels must lie in [0, {text.shape[0]}), got [{int(labels.min())}, {int(labels.max())}]")
    return (1 - F.cosine_similarity(evt, text[labels], dim=1)).mean()


def _check_pair(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must be (B, D) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


@dataclass
class PretrainLossConfig:
    """Weights, temperatures and ablation switches of the pre-training loss (official defaults)."""

    tau_e: float = 0.02  #: L_ct temperature (official T_event)
    tau_i: float = 0.01  #: L_kl temperature (official T_image, warned about; ECDP 0.1, the presets' value)
    alpha_zs: float = 0.1  #: weight of L_zs (official zscl_scale)
    zs_tau: float = 2.0  #: L_zs distillation temperature (official zscl_temperature)
    w_ct: float = 1.0  #: weight of L_ct
    w_kl: float = 1.0  #: weight of L_kl
    use_ct: bool = True
    use_kl: bool = True
    use_zs: bool = True
    sinkhorn_iters: int = 3  #: Sinkhorn iterations of the L_kl targets
    zs_normalize: bool = False  #: L2-normalise the L_zs features (ZSCL) instead of using them raw (official)

    def __post_init__(self) -> None:
        for name in ("tau_e", "tau_i", "zs_tau"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.sinkhorn_iters < 1:
            raise ValueError(f"sinkhorn_iters must be >= 1, got {self.sinkhorn_iters}")
        if not (self.use_ct or self.use_kl or self.use_zs):
            raise ValueError("at least one of use_ct, use_kl, use_zs must be enabled")
        if self.use_kl:
            warn_released_tau_i(self.tau_i)


class PretrainLoss(nn.Module):
    """L = w_ct L_ct + w_kl L_kl + alpha_zs L_zs, with the learnable L_zs logit scale.

    Give :meth:`parameters` to the optimiser beside f_E's (the official AdamW
    optimises the scale with weight decay like every other parameter). Its gradient
    is averaged over ranks in the backward pass (:func:`mean_grad_across_ranks`), as
    DDP does for the model's, so the scale stays identical on every rank whether or
    not this module is wrapped in DDP.
    """

    def __init__(self, config: PretrainLossConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else PretrainLossConfig()
        self.zs_logit_scale = nn.Parameter(torch.tensor(ZS_LOGIT_SCALE_INIT))

    @fp32
    def forward(
        self, img_fi: torch.Tensor, img_ref: torch.Tensor, evt: torch.Tensor, text: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts as floats: each weighted term (``loss_ct``, ``loss_kl``,
        ``loss_zs``; enabled ones only, they sum to ``loss``), ``loss`` and, with L_zs,
        ``zs_logit_scale`` (exp of the parameter).

        ``img_fi``: f_I image embeddings, ``img_ref``: reference (foundation) image
        embeddings for the L_kl targets (the same f_I in this project), ``evt``: f_E
        event embeddings, all (B, D) unnormalised; ``text`` (C, D): the seen classes'
        prompt embeddings, needed when L_zs is on.
        """
        cfg = self.config
        terms: dict[str, torch.Tensor] = {}
        if cfg.use_ct:
            terms["loss_ct"] = cfg.w_ct * contrastive_loss(img_fi, evt, cfg.tau_e)
        if cfg.use_kl:
            terms["loss_kl"] = cfg.w_kl * relation_kl_loss(img_fi, img_ref, evt, cfg.tau_i, cfg.sinkhorn_iters)
        if cfg.use_zs:
            if text is None:
                raise ValueError("L_zs (use_zs) needs the class-prompt text embeddings")
            scale = mean_grad_across_ranks(self.zs_logit_scale)
            terms["loss_zs"] = cfg.alpha_zs * zero_shot_distill_loss(img_fi, evt, text, scale, cfg.zs_tau, cfg.zs_normalize)
        total = torch.stack(list(terms.values())).sum()
        parts = {name: float(value.detach()) for name, value in terms.items()}
        parts["loss"] = float(total.detach())
        if cfg.use_zs:
            parts["zs_logit_scale"] = float(self.zs_logit_scale.detach().exp())
        return total, parts
