"""Cross-modal retrieval: an index of event, image and text embeddings in CLIP's shared space.

Event windows (f_E), images (f_I) and texts (f_T) embed into one space, so a single
cosine-similarity index answers all four directions: event->text, text->event,
event->image and image->event (:meth:`EmbeddingIndex.search_events`,
:meth:`~EmbeddingIndex.search_text`, :meth:`~EmbeddingIndex.search_image`).

Embeddings are stored L2-normalised (float32, one row per item) beside one
:class:`~.records.Record` per row and searched block by block for the top ``k``
(memory stays bounded for any index size). An index filled through a model is
stamped with that model (:class:`~.stamp.ModelStamp`); adding or searching with
another model is refused, since embeddings of different models are not comparable.
On disk: :mod:`.store`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch

from ...events.types import SensorSize
from ...events.windows import Window
from .inputs import EventWindow, ImageSource, interval, item_labels, open_image
from .records import MODALITIES, Hit, Record
from .stamp import ModelMismatchError, ModelStamp
from .store import load_index, save_index

if TYPE_CHECKING:
    from ..event_clip import EventClip

_SCORE_BLOCK_ELEMENTS = 1 << 22  #: bounds the (queries x rows) score block held at once (16 MiB)
_QUERY_CHUNK = 4096  #: queries scored together (with 1024-row blocks, keeps a score block at 16 MiB)

ArrayLike = Union[np.ndarray, torch.Tensor]


# ---------------------------------------------------------------------- index
class EmbeddingIndex:
    """L2-normalised embeddings (float32, (N, D)) with one :class:`Record` per row, searched by cosine similarity.

    Build it with :meth:`for_model` to fill and search it through an
    :class:`EventClip` (``add_events`` / ``add_images`` / ``add_texts``,
    ``search_*``), or with ``EmbeddingIndex(embed_dim)`` for embeddings computed
    elsewhere (``add`` / ``query``).
    """

    def __init__(self, embed_dim: int, model: ModelStamp | None = None) -> None:
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, (int, np.integer)) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive integer, got {embed_dim!r}")
        if model is not None and model.embed_dim != embed_dim:
            raise ValueError(f"model {model.describe()} does not embed into {embed_dim} dimensions")
        self.embed_dim = int(embed_dim)
        self.model = model
        # Rows live in a base array (what was loaded, possibly memory-mapped) and a
        # tail buffer grown by doubling (what was added since), so appending to a
        # large mapped index neither copies nor loads it.
        self._base = np.empty((0, self.embed_dim), dtype=np.float32)
        self._tail = np.empty((0, self.embed_dim), dtype=np.float32)
        self._tail_rows = 0
        self._records: list[Record] = []
        self._modality_codes = np.empty(0, dtype=np.int8)  #: MODALITIES index per row; capacity grows by doubling

    @classmethod
    def for_model(cls, model: "EventClip") -> "EmbeddingIndex":
        """An empty index stamped with ``model``."""
        stamp = ModelStamp.of(model)
        return cls(stamp.embed_dim, stamp)

    # ------------------------------------------------------------- contents
    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        model = self.model.describe() if self.model is not None else "no model"
        return f"EmbeddingIndex({len(self)} items, dim {self.embed_dim}, {model})"

    @property
    def records(self) -> Sequence[Record]:
        """The records, row by row (read-only)."""
        return tuple(self._records)

    @property
    def embeddings(self) -> np.ndarray:
        """All embeddings (N, D), read-only (a copy when rows were added after loading)."""
        tail = self._tail[: self._tail_rows]
        if len(self._base) and len(tail):
            out = np.concatenate([self._base, tail])
        else:
            out = self._base if len(self._base) else tail.view()
        out = out.view()
        out.flags.writeable = False
        return out

    def count(self, modality: str | None = None) -> int:
        """Number of items, of one modality or of all."""
        if modality is None:
            return len(self)
        return int(np.count_nonzero(self._codes() == _modality_code(modality)))

    # --------------------------------------------------------------- adding
    def add(self, embeddings: ArrayLike, records: Sequence[Record]) -> None:
        """Append rows; embeddings are L2-normalised here (zero or non-finite rows are refused)."""
        emb = self._as_rows(embeddings, "embeddings")
        records = list(records)
        if len(records) != len(emb):
            raise ValueError(f"{len(emb)} embeddings but {len(records)} records")
        for r in records:
            if not isinstance(r, Record):
                raise ValueError(f"records must be Record instances, got {type(r).__name__}")
        n = len(self)
        self._tail = _grown(self._tail, self._tail_rows, len(emb))
        self._tail[self._tail_rows : self._tail_rows + len(emb)] = emb
        self._tail_rows += len(emb)
        self._modality_codes = _grown(self._modality_codes, n, len(records))
        self._modality_codes[n : n + len(records)] = [MODALITIES.index(r.modality) for r in records]
        self._records.extend(records)

    def add_events(
        self,
        model: "EventClip",
        windows: Sequence[EventWindow],
        size: SensorSize,
        source: str,
        labels: Sequence[str | None] | None = None,
        batch_size: int = 64,
    ) -> None:
        """Embed event windows with f_E and add them, keyed by ``source`` (file path or topic).

        A :class:`~event_clip_ros.events.windows.Window` gives its time interval; a
        bare event array gets ``[first t, last t + 1)`` (no interval when empty).
        """
        self._check_model(model)
        windows = list(windows)
        labels = item_labels(labels, len(windows))
        events = [w.events if isinstance(w, Window) else w for w in windows]
        emb = model.embed_windows(events, size, batch_size=batch_size)
        records = [Record("event", str(source), *interval(w), label=lab) for w, lab in zip(windows, labels)]
        self.add(emb, records)

    def add_images(
        self,
        model: "EventClip",
        paths: Sequence[str | os.PathLike],
        labels: Sequence[str | None] | None = None,
        batch_size: int = 64,
    ) -> None:
        """Embed image files with f_I (opened with PIL, CLIP preprocessing) and add them, keyed by path."""
        self._check_model(model)
        paths = list(paths)
        labels = item_labels(labels, len(paths))
        parts = [model.embed_images([open_image(p) for p in paths[i : i + batch_size]]) for i in range(0, len(paths), batch_size)]
        emb = torch.cat(parts) if parts else torch.empty(0, self.embed_dim)
        self.add(emb, [Record("image", os.fspath(p), label=lab) for p, lab in zip(paths, labels)])

    def add_texts(self, model: "EventClip", texts: str | Sequence[str], labels: Sequence[str | None] | None = None) -> None:
        """Embed texts with f_T and add them, keyed by the text."""
        self._check_model(model)
        texts = [texts] if isinstance(texts, str) else list(texts)
        labels = item_labels(labels, len(texts))
        self.add(model.embed_texts(texts), [Record("text", t, label=lab) for t, lab in zip(texts, labels)])

    # ------------------------------------------------------------ searching
    def query(self, embeddings: ArrayLike, k: int = 5, modality: str | None = None) -> list[list[Hit]]:
        """The ``k`` most cosine-similar items for each query embedding, best first.

        ``embeddings``: one (D,) or a batch (Q, D), numpy or torch, normalised here.
        ``modality``: search only items of that modality. Ties rank the earlier row first.
        Returns one list of hits per query (fewer than ``k`` when fewer items match).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        code = None if modality is None else _modality_code(modality)
        if len(self) == 0:
            raise ValueError("the index is empty: add items before querying it")
        if code is not None and not np.any(self._codes() == code):
            raise ValueError(f"the index holds no {modality!r} items (it holds {self._summary()})")
        queries = self._as_rows(embeddings, "query embeddings")
        hits = []
        for start in range(0, len(queries), _QUERY_CHUNK):
            scores, rows = self._top_k(queries[start : start + _QUERY_CHUNK], int(k), code)
            hits += [[Hit(float(s), self._records[r], int(r)) for s, r in zip(q_s, q_r)] for q_s, q_r in zip(scores, rows)]
        return hits

    def search_text(
        self, model: "EventClip", texts: str | Sequence[str], k: int = 5, modality: str | None = "event"
    ) -> list[list[Hit]]:
        """text -> items (event windows by default): one hit list per text."""
        self._check_model(model)
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.query(model.embed_texts(texts), k, modality)

    def search_events(
        self,
        model: "EventClip",
        windows: EventWindow | Sequence[EventWindow],
        size: SensorSize,
        k: int = 5,
        modality: str | None = "text",
    ) -> list[list[Hit]]:
        """event windows -> items (texts by default; ``modality="image"`` for event -> image)."""
        self._check_model(model)
        windows = [windows] if isinstance(windows, (Window, np.ndarray)) else list(windows)
        events = [w.events if isinstance(w, Window) else w for w in windows]
        return self.query(model.embed_windows(events, size), k, modality)

    def search_image(
        self,
        model: "EventClip",
        images: ImageSource | list[ImageSource] | tuple[ImageSource, ...],
        k: int = 5,
        modality: str | None = "event",
    ) -> list[list[Hit]]:
        """images (a PIL image or path, or a list/tuple of them) -> items (event windows by default)."""
        self._check_model(model)
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        return self.query(model.embed_images([open_image(im) for im in images]), k, modality)

    # ---------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to directory ``path`` atomically; returns the path (see :func:`.store.save_index`)."""
        return save_index(path, self.embed_dim, self.model, self._blocks, self._records)

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False) -> "EmbeddingIndex":
        """Read an index saved by :meth:`save`.

        ``mmap``: map the embeddings read-only instead of reading them (large
        indexes; rows added later are held in memory until the next save).
        """
        stored = load_index(path, mmap)
        index = cls(stored.embed_dim, stored.model)
        index._base = stored.embeddings
        index._records = stored.records
        index._modality_codes = np.array([MODALITIES.index(r.modality) for r in stored.records], dtype=np.int8)
        return index

    # ------------------------------------------------------------- internals
    def _check_model(self, model: "EventClip") -> None:
        if self.model is None:
            raise ModelMismatchError("this index records no model; create it with EmbeddingIndex.for_model(model) to use a model with it")
        used = ModelStamp.of(model)
        if used.fingerprint != self.model.fingerprint:
            raise ModelMismatchError(
                f"the index was built with model {self.model.describe()}, but the model given is {used.describe()}; "
                "embeddings of different models are not comparable: use the same model or rebuild the index"
            )

    def _as_rows(self, embeddings: ArrayLike, what: str) -> np.ndarray:
        """(N, D) float32 unit rows from a (D,) or (N, D) numpy array or torch tensor."""
        if isinstance(embeddings, torch.Tensor):
            embeddings = embeddings.detach().to("cpu", torch.float32).numpy()
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.embed_dim:
            raise ValueError(f"{what} must have shape (N, {self.embed_dim}) or ({self.embed_dim},), got {np.shape(embeddings)}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{what} contain NaN or infinite values")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError(f"{what} contain all-zero rows, which have no direction")
        return x / norms

    def _codes(self) -> np.ndarray:
        return self._modality_codes[: len(self)]

    def _summary(self) -> str:
        return ", ".join(f"{self.count(m)} {m}" for m in MODALITIES)

    def _blocks(self, rows_per_block: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) blocks over base then tail."""
        offset = 0
        for part in (self._base, self._tail[: self._tail_rows]):
            for start in range(0, len(part), rows_per_block):
                yield offset + start, part[start : start + rows_per_block]
            offset += len(part)

    def _top_k(self, queries: np.ndarray, k: int, code: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` (scores, rows) per query, sorted (fewer columns when fewer items match).

        Scores are computed block by block and merged, so memory stays bounded
        for any index size (and a mapped index is read once per call).
        """
        n_q = len(queries)
        best_s = np.empty((n_q, 0), dtype=np.float32)
        best_r = np.empty((n_q, 0), dtype=np.int64)
        codes = self._codes()
        rows_per_block = max(1024, _SCORE_BLOCK_ELEMENTS // max(n_q, self.embed_dim))
        for start, block in self._blocks(rows_per_block):
            rows = np.arange(start, start + len(block))
            if code is not None:
                keep = np.flatnonzero(codes[start : start + len(block)] == code)
                if not keep.size:
                    continue
                block, rows = block[keep], rows[keep]
            scores = queries @ block.T
            if scores.shape[1] > k:
                cols = _top_k_columns(scores, k)
                scores, cand = np.take_along_axis(scores, cols, 1), rows[cols]
            else:
                cand = np.broadcast_to(rows, scores.shape)
            best_s = np.concatenate([best_s, scores], axis=1)
            best_r = np.concatenate([best_r, cand], axis=1)
            order = np.lexsort((best_r, -best_s), axis=1)[:, :k]
            best_s, best_r = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_r, order, 1)
        return best_s, best_r


# ------------------------------------------------------------------- helpers
def _modality_code(modality: str) -> int:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)} (or None for all)")
    return MODALITIES.index(modality)


def _top_k_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """Columns (Q, k) of the ``k`` best scores per row; of columns tied at the k-th score, the first ones."""
    cols = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, cols, 1).min(axis=1, keepdims=True)
    if np.all(np.count_nonzero(scores >= kth, axis=1) == k):
        return cols  # no tie across the k-th place: argpartition's choice is the only one
    above, tied = scores > kth, scores == kth
    take = above | (tied & (np.cumsum(tied, axis=1) <= k - np.count_nonzero(above, axis=1, keepdims=True)))
    return np.nonzero(take)[1].reshape(len(scores), k)


def _grown(buffer: np.ndarray, used: int, extra: int) -> np.ndarray:
    """``buffer`` (first ``used`` entries kept) with room for ``extra`` more; capacity at least doubles."""
    need = used + extra
    if need <= len(buffer):
        return buffer
    out = np.empty((max(need, 2 * len(buffer), 256), *buffer.shape[1:]), dtype=buffer.dtype)
    out[:used] = buffer[:used]
    return out
