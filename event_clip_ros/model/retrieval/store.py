"""An :class:`~.index.EmbeddingIndex` on disk: a directory written all or nothing.

Layout::

    index.json      format, version, embedding dim, item count, model stamp
    embeddings.npy  float32 (N, D), loadable memory-mapped (``load_index(path, mmap=True)``)
    records.jsonl   one JSON record per row

:func:`save_index` writes a complete new directory beside the target and renames
it into place (:func:`~event_clip_ros.atomic_files.atomic_replace_dir`), so a crash
mid-write leaves the last saved index intact. Replacing an existing index takes two
renames (old -> ``<name>.previous``, new -> ``<name>``); should the process die
between them, :func:`load_index` finds the old index under ``<name>.previous`` and
the next save removes it. One process at a time may save to a path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic_files import atomic_replace_dir, fsync_dir, fsync_file_object
from .records import Record
from .stamp import ModelStamp

log = logging.getLogger(__name__)

INDEX_FORMAT = "event_clip_ros.embedding_index"
INDEX_FORMAT_VERSION = 1
INDEX_FILE, EMBEDDINGS_FILE, RECORDS_FILE = "index.json", "embeddings.npy", "records.jsonl"
PREVIOUS_SUFFIX = ".previous"
_WRITE_BLOCK_BYTES = 64 << 20  #: embeddings are written in blocks of this size


class IndexFormatError(ValueError):
    """An index directory is missing, incomplete or of an unknown format."""


@dataclass(frozen=True)
class StoredIndex:
    """What an index directory holds."""

    embed_dim: int
    model: ModelStamp | None
    embeddings: np.ndarray  #: float32 (N, D), C-ordered; read-only when memory-mapped
    records: list[Record]


def save_index(path: str | os.PathLike, embed_dim: int, model: ModelStamp | None,
               row_blocks: Callable[[int], Iterable[tuple[int, np.ndarray]]], records: Sequence[Record]) -> Path:
    """Write an index to directory ``path`` atomically; returns the path.

    ``row_blocks(n)`` yields (first row, rows) blocks of at most ``n`` embeddings, in row order.
    The new index is written and fsynced in a temporary sibling directory,
    then renamed into place; an existing index at ``path`` stays intact until
    the new one is complete. A directory at ``path`` that is not an index is
    never replaced.
    """
    path = Path(path)
    if path.exists() and not (path / INDEX_FILE).is_file():
        raise FileExistsError(f"{path} exists and is not an embedding index; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        _write_files(tmp, embed_dim, model, row_blocks, records)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_replace_dir(tmp, path, PREVIOUS_SUFFIX)
    return path


def load_index(path: str | os.PathLike, mmap: bool = False) -> StoredIndex:
    """Read an index saved by :func:`save_index` (``mmap``: map the embeddings read-only instead of reading them)."""
    path = Path(path)
    previous = path.with_name(path.name + PREVIOUS_SUFFIX)
    if not path.exists() and (previous / INDEX_FILE).is_file():
        log.warning("%s is missing but %s exists (a save was interrupted); loading the previous index", path, previous)
        path = previous
    if not (path / INDEX_FILE).is_file():
        raise FileNotFoundError(f"no embedding index at {path} ({INDEX_FILE} not found)")
    header = _read_header(path / INDEX_FILE)
    stamp = ModelStamp(**header["model"]) if header["model"] is not None else None
    try:
        emb = np.load(path / EMBEDDINGS_FILE, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read {path / EMBEDDINGS_FILE}: {exc}") from exc
    expected = (header["count"], header["embed_dim"])
    if emb.dtype != np.float32 or emb.shape != expected or not emb.flags.c_contiguous:
        raise IndexFormatError(f"{path / EMBEDDINGS_FILE} holds {emb.dtype} {emb.shape}, expected C-ordered float32 {expected}")
    records = _read_records(path / RECORDS_FILE)
    if len(records) != header["count"]:
        raise IndexFormatError(f"{path / RECORDS_FILE} holds {len(records)} records, expected {header['count']}")
    return StoredIndex(header["embed_dim"], stamp, emb, records)


def _write_files(directory: Path, embed_dim: int, model: ModelStamp | None,
                 row_blocks: Callable[[int], Iterable[tuple[int, np.ndarray]]], records: Sequence[Record]) -> None:
    n, d = len(records), embed_dim
    with open(directory / EMBEDDINGS_FILE, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.dtype("<f4").str, "fortran_order": False, "shape": (n, d)})
        for _, block in row_blocks(max(1, _WRITE_BLOCK_BYTES // (4 * d))):
            f.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
        fsync_file_object(f)
    with open(directory / RECORDS_FILE, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
        fsync_file_object(f)
    header = {
        "format": INDEX_FORMAT,
        "format_version": INDEX_FORMAT_VERSION,
        "embed_dim": d,
        "count": n,
        "model": asdict(model) if model is not None else None,
    }
    with open(directory / INDEX_FILE, "w", encoding="utf-8") as f:
        json.dump(header, f, indent=2)
        f.write("\n")
        fsync_file_object(f)
    fsync_dir(directory)


def _read_header(file: Path) -> dict[str, Any]:
    try:
        header = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read {file}: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
        raise IndexFormatError(f"{file} is not an event_clip_ros embedding index")
    if header.get("format_version") != INDEX_FORMAT_VERSION:
        version = header.get("format_version")
        raise IndexFormatError(f"{file} has format version {version!r}; this code reads version {INDEX_FORMAT_VERSION}")
    for name in ("embed_dim", "count"):
        if not isinstance(header.get(name), int) or header[name] < 0:
            raise IndexFormatError(f"{file}: {name} must be a non-negative integer, got {header.get(name)!r}")
    model = header.get("model")
    if model is not None and (not isinstance(model, dict) or set(model) != set(ModelStamp.__dataclass_fields__)):
        raise IndexFormatError(f"{file}: malformed model stamp {model!r}")
    if model is not None and model["embed_dim"] != header["embed_dim"]:
        raise IndexFormatError(f"{file}: model stamp dim {model['embed_dim']} differs from the index dim {header['embed_dim']}")
    return header


def _read_records(file: Path) -> list[Record]:
    records = []
    try:
        with open(file, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                try:
                    records.append(Record.from_dict(json.loads(line)))
                except (ValueError, TypeError) as exc:
                    raise IndexFormatError(f"{file}:{line_no}: bad record: {exc}") from exc
    except OSError as exc:
        raise IndexFormatError(f"cannot read {file}: {exc}") from exc
    return records
