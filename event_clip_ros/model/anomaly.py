"""Anomaly scores in [0, 1] for event windows, from text descriptions or from reference windows.

Both scorers take event embeddings (N, D) and share one interface:
``score(embeddings) -> (N,) float32 in [0, 1]`` (higher = more anomalous) and
``decide(scores, threshold=None) -> (N,) bool``, True where ``score >
threshold`` (the scorer's default threshold when None).

:class:`TextAnomalyScorer`
    Zero-shot: a prompt ensemble describes the normal scene and one the
    abnormal scene (class weights as in :mod:`~event_clip_ros.model.zero_shot`:
    renormalised mean of the normalised prompt embeddings). The score is
    P(abnormal) = softmax over the two classes of ``s * e . w``, i.e.
    ``sigmoid(s * (e . w_abnormal - e . w_normal))`` with ``s`` the model's
    logit scale. Default threshold 0.5: abnormal when that description is the
    more likely one.

:class:`ReferenceAnomalyScorer`
    No text: a bank of embeddings of normal windows (:meth:`~ReferenceAnomalyScorer.fit`
    from a calibration recording, or :meth:`~ReferenceAnomalyScorer.update`
    online). A window's k-NN distance is the mean cosine distance ``1 - cos`` to
    its ``k`` nearest bank entries. It is mapped to [0, 1] by the empirical CDF
    of the bank's own leave-one-out k-NN distances (each entry against the
    others): score = the fraction of normal windows that lie closer to the bank
    than this one, so 0.97 means farther out than 97% of the normal windows.
    With the default threshold 0.95 a window is anomalous when it is farther
    out than more than 95% of the normal windows: about 5% false alarms on
    windows like the bank's. The CDF has steps of 1/n for a bank of ``n``; with
    ``n < 20`` a 0.95 threshold flags only windows farther out than every bank
    entry. Tiny banks use ``k' = min(k, n - 1)`` neighbours for both the bank
    and the queries; a bank needs at least 2 entries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch

from .event_clip import EventClip
from .prompts import ABNORMAL_PROMPTS, NORMAL_PROMPTS, validate_prompts
from .zero_shot import Embeddings, as_embedding_batch, ensemble_text_weights

FORMAT_VERSION = 1


def _check_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return float(threshold)


class AnomalyScorer(ABC):
    """``score`` embeddings into [0, 1] and ``decide`` with a threshold."""

    threshold: float

    @abstractmethod
    def score(self, embeddings: Embeddings) -> np.ndarray:
        """(N,) float32 anomaly scores in [0, 1] of (N, D) embeddings."""

    def decide(self, scores: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """(N,) bool: True (anomalous) where ``scores > threshold`` (default: the scorer's)."""
        return np.asarray(scores) > _check_threshold(self.threshold if threshold is None else threshold)


class TextAnomalyScorer(AnomalyScorer):
    """P(abnormal) between a "normal" and an "abnormal" prompt ensemble (see module doc)."""

    def __init__(
        self,
        model: EventClip,
        normal_prompts: Sequence[str] = NORMAL_PROMPTS,
        abnormal_prompts: Sequence[str] = ABNORMAL_PROMPTS,
        threshold: float = 0.5,
    ) -> None:
        normal, abnormal = validate_prompts(normal_prompts), validate_prompts(abnormal_prompts)
        self.normal_prompts, self.abnormal_prompts = normal, abnormal
        self._init(ensemble_text_weights(model, [normal, abnormal]), model.logit_scale, threshold)

    @classmethod
    def from_text_embeddings(
        cls, normal: Embeddings, abnormal: Embeddings, logit_scale: float, threshold: float = 0.5
    ) -> "TextAnomalyScorer":
        """A scorer from given class weights (D,) each (normalised here), without a model."""
        weights = torch.stack([torch.as_tensor(normal), torch.as_tensor(abnormal)])
        if not (np.isfinite(logit_scale) and logit_scale > 0):
            raise ValueError(f"logit_scale must be positive and finite, got {logit_scale}")
        self = cls.__new__(cls)
        self.normal_prompts = self.abnormal_prompts = ()
        self._init(as_embedding_batch(weights, weights.shape[-1], torch.device("cpu")), float(logit_scale), threshold)
        return self

    def _init(self, weights: torch.Tensor, logit_scale: float, threshold: float) -> None:
        self.weights = weights  #: (2, D): normal, abnormal
        self.logit_scale = logit_scale
        self.threshold = _check_threshold(threshold)

    @torch.inference_mode()
    def score(self, embeddings: Embeddings) -> np.ndarray:
        emb = as_embedding_batch(embeddings, self.weights.shape[1], self.weights.device)
        cos = emb @ self.weights.T
        return torch.sigmoid(self.logit_scale * (cos[:, 1] - cos[:, 0])).cpu().numpy()


#: How a full reference bank makes room: replace the oldest entry, or a random one (reservoir sampling).
Replacement = Literal["fifo", "reservoir"]


@dataclass(frozen=True)
class ReferenceScorerConfig:
    k: int = 5  #: neighbours averaged in the k-NN distance
    capacity: int = 2048  #: most bank entries kept; memory 4 * capacity * (capacity + D) bytes
    #: how update() replaces entries of a full bank: "fifo" keeps the most recent normal windows
    #: (follows slow scene changes); "reservoir" keeps a uniform sample of all windows offered
    replacement: Replacement = "fifo"
    threshold: float = 0.95  #: decide(): anomalous when farther out than this fraction of the bank
    seed: int = 0  #: reservoir sampling

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {self.capacity}")
        if self.replacement not in ("fifo", "reservoir"):
            raise ValueError(f"replacement must be 'fifo' or 'reservoir', got {self.replacement!r}")
        _check_threshold(self.threshold)


class ReferenceAnomalyScorer(AnomalyScorer):
    """k-NN distance to a bank of normal embeddings, calibrated on the bank itself (see module doc).

    Cost of an update of ``m`` entries into a bank of ``n``: the bank's
    pairwise similarities are kept (``O(m * n * D)``), and the leave-one-out
    distances are recomputed only for the rows whose k nearest neighbours can
    have changed (the new rows, and rows where an old or new similarity reaches
    their k-th nearest): about ``m * (2k + 1)`` rows of ``O(n)``, not ``n x n``.
    """

    def __init__(self, config: ReferenceScorerConfig = ReferenceScorerConfig(), device: str | torch.device = "cpu") -> None:
        self.config = config
        self.threshold = config.threshold
        self.device = torch.device(device)
        self._rng = np.random.default_rng(config.seed)
        self._bank: torch.Tensor | None = None  # (capacity, D), rows [:n] valid
        self._sims: torch.Tensor | None = None  # (capacity, capacity) cosine similarities of the bank
        self._n = 0
        self._oldest = 0  # FIFO: slot of the oldest entry once the bank is full
        self._seen = 0  # reservoir: windows offered so far
        self._loo: torch.Tensor | None = None  # (capacity,) leave-one-out k-NN distance of each entry
        self._kth: torch.Tensor | None = None  # (capacity,) similarity of each entry's k-th nearest other entry
        self._loo_k = 0  # the k those were computed with (0: not computed)
        self._calibration: torch.Tensor | None = None  # sorted _loo[:n], None when stale

    def __len__(self) -> int:
        return self._n

    @property
    def embed_dim(self) -> int | None:
        return None if self._bank is None else int(self._bank.shape[1])

    # ------------------------------------------------------------------ bank
    def fit(self, embeddings: Embeddings) -> None:
        """Make the bank from (N, D) embeddings of normal windows (N >= 2).

        More than ``capacity`` windows are thinned to ``capacity`` evenly spaced
        ones (in the order given, so a whole recording stays represented).
        """
        emb = self._as_batch(embeddings, allow_new_dim=True)
        n = emb.shape[0]
        if n < 2:
            raise ValueError(f"the reference bank needs at least 2 normal windows, got {n}")
        if n > self.config.capacity:
            emb = emb[torch.arange(self.config.capacity, device=self.device) * n // self.config.capacity]
        self._bank = self._sims = None
        self._n = self._oldest = 0
        self._store(emb)
        self._seen = n

    def update(self, embeddings: Embeddings) -> None:
        """Add (N, D) embeddings of windows known to be normal; a full bank replaces entries by the config's policy."""
        emb = self._as_batch(embeddings, allow_new_dim=self._n == 0)
        if emb.shape[0]:
            self._store(emb)

    def _as_batch(self, embeddings: Embeddings, allow_new_dim: bool) -> torch.Tensor:
        dim = self.embed_dim
        if dim is None or allow_new_dim:
            shape = torch.as_tensor(embeddings).shape
            if len(shape) != 2:
                raise ValueError(f"expected embeddings of shape (N, D), got {tuple(shape)}")
            dim = shape[1]
        return as_embedding_batch(embeddings, dim, self.device)

    @torch.inference_mode()
    def _store(self, emb: torch.Tensor) -> None:
        cap, m = self.config.capacity, emb.shape[0]
        if self._bank is None or self._bank.shape[1] != emb.shape[1]:
            self._bank = torch.zeros(cap, emb.shape[1], device=self.device)
            self._sims = torch.zeros(cap, cap, device=self.device)
            self._loo = torch.zeros(cap, device=self.device)
            self._kth = torch.zeros(cap, device=self.device)
            self._n = self._oldest = self._seen = self._loo_k = 0
        n_free = min(m, cap - self._n)
        rest = np.arange(n_free, m)  # windows offered to a full bank, in order
        if self.config.replacement == "fifo":
            over = (self._oldest + np.arange(rest.size)) % cap
            self._oldest = int((self._oldest + rest.size) % cap)
        else:  # reservoir (Vitter's algorithm R): the j-th window offered replaces a random slot with probability cap/j
            draw = self._rng.integers(0, self._seen + rest + 1)
            rest, over = rest[draw < cap], draw[draw < cap]
        slots = np.concatenate([np.arange(self._n, self._n + n_free), over])
        sources = np.concatenate([np.arange(n_free), rest])
        # a slot written several times keeps the last window, as one-by-one updates would
        _, last_from_end = np.unique(slots[::-1], return_index=True)
        keep = slots.size - 1 - last_from_end
        slots, sources = slots[keep], sources[keep]
        self._seen += m
        self._n += n_free
        assert self._sims is not None  # allocated with the bank
        index = torch.from_numpy(slots).to(self.device)
        self._bank[index] = emb[torch.from_numpy(sources).to(self.device)]
        old = self._sims[: self._n, index].clone()
        rows = self._bank[index] @ self._bank[: self._n].T
        self._sims[index, : self._n] = rows
        self._sims[: self._n, index] = rows.T
        self._refresh_loo(index, old)

    def _refresh_loo(self, changed: torch.Tensor, old: torch.Tensor) -> None:
        """Recompute the leave-one-out k-NN of the entries whose neighbours ``changed`` can affect."""
        n = self._n
        self._calibration = None
        if n < 2:
            self._loo_k = 0
            return
        assert self._sims is not None and self._loo is not None and self._kth is not None  # allocated by _store
        k = min(self.config.k, n - 1)
        if k != self._loo_k:
            rows = torch.arange(n, device=self.device)
        else:
            kth = self._kth[:n, None]
            hit = ((old >= kth) | (self._sims[:n, changed] >= kth)).any(dim=1)
            hit[changed] = True
            rows = hit.nonzero().squeeze(1)
        sims = self._sims[rows, :n].clone()
        sims[torch.arange(rows.numel(), device=self.device), rows] = -torch.inf  # leave the entry itself out
        top = sims.topk(k, dim=1).values
        self._loo[rows] = 1.0 - top.mean(dim=1)
        self._kth[rows] = top[:, -1]
        self._loo_k = k

    # ------------------------------------------------------------------ scores
    def _neighbours(self) -> int:
        if self._n == 0:
            raise RuntimeError("the reference bank is empty: fit() it with embeddings of normal windows, or update() it")
        if self._n < 2:
            raise RuntimeError(f"the reference bank holds {self._n} window; it needs at least 2 to calibrate scores")
        return min(self.config.k, self._n - 1)

    @torch.inference_mode()
    def _calibrated(self) -> torch.Tensor:
        """Sorted leave-one-out k-NN distances of the bank entries."""
        self._neighbours()
        assert self._loo is not None  # the bank holds entries
        if self._calibration is None:
            self._calibration = self._loo[: self._n].sort().values
        return self._calibration

    @torch.inference_mode()
    def _knn_distance(self, embeddings: Embeddings) -> torch.Tensor:
        k = self._neighbours()
        assert self._bank is not None  # the bank holds entries
        emb = as_embedding_batch(embeddings, self._bank.shape[1], self.device)
        return 1.0 - (emb @ self._bank[: self._n].T).topk(k, dim=1).values.mean(dim=1)

    def knn_distance(self, embeddings: Embeddings) -> np.ndarray:
        """(N,) float32 mean cosine distance of each embedding to its k nearest bank entries."""
        return self._knn_distance(embeddings).cpu().numpy()

    @torch.inference_mode()
    def score(self, embeddings: Embeddings) -> np.ndarray:
        """(N,) float32: fraction of bank entries whose leave-one-out k-NN distance is below the embedding's."""
        calibration = self._calibrated()
        below = torch.searchsorted(calibration, self._knn_distance(embeddings), side="left")
        return (below.float() / calibration.numel()).cpu().numpy()

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write the bank (oldest entry first), its config and the count of windows offered to an npz file."""
        self._neighbours()
        assert self._bank is not None  # the bank holds entries
        order = np.arange(self._n)
        if self._n == self.config.capacity:
            order = (self._oldest + order) % self._n
        cfg = asdict(self.config)
        with open(path, "wb") as file:  # exactly this path (np.savez would append .npz to a bare name)
            np.savez(
                file,
                format_version=np.int64(FORMAT_VERSION),
                bank=self._bank[torch.from_numpy(order).to(self.device)].cpu().numpy(),
                seen=np.int64(self._seen),
                # ignore: mypy matches the ** against savez's ``allow_pickle: bool``; no key here has that name
                **{key: np.asarray(value) for key, value in cfg.items()},  # type: ignore[arg-type]
            )

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "ReferenceAnomalyScorer":
        """The scorer saved by :meth:`save`, with its k, capacity, policy and threshold."""
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["format_version"])
                bank, seen = data["bank"], int(data["seen"])
                config = ReferenceScorerConfig(
                    k=int(data["k"]),
                    capacity=int(data["capacity"]),
                    replacement=cast(Replacement, str(data["replacement"])),  # checked by the config
                    threshold=float(data["threshold"]),
                    seed=int(data["seed"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a reference bank file ({exc})") from exc
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: format version {version}, this code reads {FORMAT_VERSION}")
        if bank.ndim != 2 or not 2 <= bank.shape[0] <= config.capacity or seen < bank.shape[0]:
            raise ValueError(f"{path}: bank of shape {bank.shape} does not fit capacity {config.capacity} (seen {seen})")
        self = cls(config, device)
        self.fit(bank)
        self._seen = seen
        return self
