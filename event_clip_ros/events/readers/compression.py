"""Frames of the compressions recordings use (zstd, lz4), decompressed with a bound on the output.

AEDAT 4.0 packets and MCAP chunks are each one zstd or LZ4 frame. The
decompressors are rosbags' dependencies (``backports.zstd`` before Python 3.14,
``lz4``), imported on first use.
"""

from __future__ import annotations

import sys

#: Compression names this module decompresses.
COMPRESSIONS = ("zstd", "lz4")


class CompressionError(ValueError):
    """Data that is not a valid frame of its compression (damaged)."""


def decompress(data: bytes, compression: str, max_bytes: int) -> tuple[bytes, bool]:
    """(output, whether the frame ended) of one ``compression`` frame, at most ``max_bytes`` of output.

    A frame cut short gives what it holds and False; damaged data raises
    :class:`CompressionError`.
    """
    # lazy: the codecs are needed only for compressed bags, and where zstd comes from depends on the Python version
    if compression == "zstd":
        if sys.version_info >= (3, 14):
            from compression.zstd import ZstdDecompressor
        else:
            from backports.zstd import ZstdDecompressor
        decompressor = ZstdDecompressor()
    elif compression == "lz4":
        from lz4.frame import LZ4FrameDecompressor

        decompressor = LZ4FrameDecompressor()
    else:
        raise CompressionError(f"unknown compression {compression[:16]!r}")
    try:
        out = decompressor.decompress(data, max_length=max_bytes)
    except Exception as exc:  # ZstdError, RuntimeError (lz4): the library's own error types
        raise CompressionError(f"{compression} data damaged ({exc})") from None
    return out, decompressor.eof
