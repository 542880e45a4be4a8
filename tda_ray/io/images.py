"""PNG and TIFF images as float64 arrays of pixel values, read with Pillow (imported on first use).

One channel is read as it is stored (8- or 16-bit integers, 32-bit floats); colour images become their
luminance (ITU-R 601-2 weights, as Pillow's "L" mode, but kept in float64 rather than rounded to 8 bits), an
alpha channel is dropped.  A TIFF of several pages (a stack) is a 3-D volume, pages first.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from tda_ray.io.arrays import FloatArray

__all__ = ["load_image_bytes"]
_LUMA = np.array([0.299, 0.587, 0.114])
# Pillow refuses images above this many pixels by default (a decompression bomb guard); ours is explicit.
MAX_PIXELS = 1 << 28


def _frame(img: Any, name: str) -> FloatArray:
    mode = img.mode
    if mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        return np.asarray(img, dtype=np.float64)
    if mode in ("LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "HSV", "LAB"):
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
        out: FloatArray = rgb @ _LUMA
        return out
    raise ValueError(f"{name}: images of mode {mode!r} are not supported; save it with one channel")


def load_image_bytes(data: bytes, name: str = "<image>") -> FloatArray:
    """A PNG or TIFF as a C-contiguous float64 array: ``(height, width)``, or ``(pages, height, width)``."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with the server and learn extras
        raise ValueError(f"{name}: reading images needs Pillow (pip install pillow)") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns of corrupt metadata it then reads past
        return _decode(Image, data, name)


def _decode(image_module: Any, data: bytes, name: str) -> FloatArray:
    from PIL import UnidentifiedImageError
    from PIL.Image import DecompressionBombError

    try:
        img = image_module.open(io.BytesIO(data))
    except DecompressionBombError as exc:
        raise ValueError(f"{name}: {exc}") from None
    except (UnidentifiedImageError, OSError):
        raise ValueError(f"{name}: not a readable PNG or TIFF image") from None
    with img:
        if img.format not in ("PNG", "TIFF"):
            raise ValueError(f"{name}: a {img.format} image; PNG and TIFF are read")
        pages = int(getattr(img, "n_frames", 1))
        width, height = img.size
        if width * height * pages > MAX_PIXELS:
            raise ValueError(f"{name}: {width} x {height} x {pages} pixels is above the limit of {MAX_PIXELS}")
        try:
            frames = []
            for k in range(pages):
                img.seek(k)
                frames.append(_frame(img, name))
        except (OSError, ValueError, SyntaxError) as exc:
            raise ValueError(f"{name}: the image data cannot be decoded ({exc})") from None
    if len({f.shape for f in frames}) > 1:
        raise ValueError(f"{name}: the pages of the TIFF differ in size; a volume needs pages of one size")
    arr = frames[0] if pages == 1 else np.stack(frames)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: the image holds NaN or infinite values")
    return np.ascontiguousarray(arr)
