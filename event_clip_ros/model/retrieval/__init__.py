"""Cross-modal retrieval: an index of event, image and text embeddings in CLIP's shared space.

==========  ==================================================================
module      what it holds
==========  ==================================================================
``index``   :class:`EmbeddingIndex`: adding through a model, top-k search
``records`` :class:`Record` (what a row is), :class:`Hit` (a search result)
``stamp``   :class:`ModelStamp`: which model filled an index
``inputs``  event windows, images and texts as an index takes them in
``store``   the on-disk format: a directory written all or nothing
==========  ==================================================================
"""

from .index import EmbeddingIndex
from .records import MODALITIES, Hit, Modality, Record
from .stamp import ModelMismatchError, ModelStamp, model_fingerprint
from .store import (
    EMBEDDINGS_FILE,
    INDEX_FILE,
    INDEX_FORMAT,
    INDEX_FORMAT_VERSION,
    PREVIOUS_SUFFIX,
    RECORDS_FILE,
    IndexFormatError,
)

__all__ = [
    "EMBEDDINGS_FILE", "INDEX_FILE", "INDEX_FORMAT", "INDEX_FORMAT_VERSION", "MODALITIES", "PREVIOUS_SUFFIX",
    "RECORDS_FILE", "EmbeddingIndex", "Hit", "IndexFormatError", "Modality", "ModelMismatchError", "ModelStamp",
    "Record", "model_fingerprint",
]
