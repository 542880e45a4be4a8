"""Input formats and how to tell them apart: file extensions and magic bytes, written down once."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "BINARY_FORMATS",
    "DISTANCE_FORMATS",
    "FORMATS",
    "IMAGE_MAGICS",
    "NPY_MAGIC",
    "PARQUET_MAGIC",
    "ZIP_MAGIC",
    "check_format",
    "detect_format",
    "is_distance_format",
    "resolve_format",
    "sniff_binary",
]

FORMATS = ("point-cloud", "lower-distance", "distance", "npy", "parquet", "image")
DISTANCE_FORMATS = frozenset({"lower-distance", "distance"})
# Formats read in blocks (ranged reads, row groups) rather than parsed whole.
BINARY_FORMATS = ("npy", "parquet")

NPY_MAGIC = b"\x93NUMPY"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"  # an .npz archive
PICKLE_MAGIC = b"\x80"  # pickle protocol 2+ header

EXTENSIONS = {
    ".npy": "npy",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".lower_distance_matrix": "lower-distance",
    ".distance_matrix": "distance",
    ".png": "image",
    ".tif": "image",
    ".tiff": "image",
}
# PNG, little- and big-endian TIFF and BigTIFF.
IMAGE_MAGICS = (b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def is_distance_format(fmt: str) -> bool:
    """Whether ``fmt`` yields a distance matrix rather than a point cloud."""
    return fmt in DISTANCE_FORMATS


def sniff_binary(head: bytes) -> str | None:
    """``npy`` or ``parquet`` from a file's first bytes, else None."""
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    return None


def detect_format(name: str, head: bytes = b"") -> str:
    """Format implied by a file name's extension, else by the first bytes, else ``point-cloud``."""
    lower = name.lower()
    for ext, fmt in EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    if head.startswith(IMAGE_MAGICS):
        return "image"
    return sniff_binary(head) or "point-cloud"


def check_format(fmt: str) -> None:
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of: auto, {', '.join(FORMATS)}")


def resolve_format(path: str | os.PathLike[str], format: str = "auto") -> str:
    """``format`` itself, or for ``auto`` the one :func:`detect_format` infers from the file."""
    check_format(format)
    if format != "auto":
        return format
    p = Path(path)
    with p.open("rb") as fh:
        return detect_format(p.name, fh.read(8))
