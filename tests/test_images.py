"""PNG and TIFF images: read as their pixel values, run as cubical persistence on the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tda_ray import cubical_persistence
from tda_ray.io import load, load_bytes


def png(arr: np.ndarray[Any, Any], mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def tiff(frames: list[np.ndarray[Any, Any]]) -> bytes:
    buf = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(buf, format="TIFF", save_all=True, append_images=images[1:])
    return buf.getvalue()


def test_gray_16_bit_float_and_colour_pixels() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    np.testing.assert_array_equal(load_bytes(png(gray), name="g.png"), gray.astype(np.float64))
    deep = rng.integers(0, 65536, (5, 6)).astype(np.uint16)
    np.testing.assert_array_equal(load_bytes(png(deep), name="d.png"), deep.astype(np.float64))
    real = rng.normal(size=(4, 8)).astype(np.float32)
    np.testing.assert_array_equal(load_bytes(tiff([real]), name="f.tif"), real.astype(np.float64))
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(load_bytes(png(rgb), name="c.png"), luma, rtol=1e-12)
    rgba = np.concatenate([rgb, np.full((6, 5, 1), 7, np.uint8)], axis=2)
    np.testing.assert_allclose(load_bytes(png(rgba), name="a.png"), luma, rtol=1e-12)
    # By magic bytes too, whatever the name says.
    np.testing.assert_array_equal(load_bytes(png(gray), name="upload"), gray.astype(np.float64))


def test_a_tiff_stack_is_a_volume() -> None:
    rng = np.random.default_rng(1)
    pages = [rng.random((5, 4)).astype(np.float32) for _ in range(3)]
    vol = load_bytes(tiff(pages), name="v.tiff")
    assert vol.shape == (3, 5, 4)
    np.testing.assert_array_equal(vol, np.stack(pages).astype(np.float64))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\nnot really", "not a readable PNG or TIFF image"),
        (b"II*\x00garbage", "not a readable PNG or TIFF image"),
        (tiff([np.zeros((3, 3), np.float32), np.zeros((4, 3), np.float32)]), "differ in size"),
        (tiff([np.array([[0.0, np.nan]], np.float32)]), "NaN or infinite"),
    ],
)
def test_bad_images_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_bytes(data, name="x.tif")


def test_other_image_formats_are_named() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buf, format="BMP")
    with pytest.raises(ValueError, match="a BMP image; PNG and TIFF are read"):
        load_bytes(buf.getvalue(), format="image", name="x.bmp")


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tda_ray.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_cubical_command_on_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 50, (20, 17), dtype=np.uint8)
    (tmp_path / "i.png").write_bytes(png(img))
    (tmp_path / "s.tif").write_bytes(tiff([img.astype(np.float32)] * 3))
    np.save(tmp_path / "i.npy", img.astype(np.float64))
    for construction in ("V", "T"):
        ref = cubical_persistence(img.astype(np.float64), construction=construction).to_json_dict()
        for name in ("i.png", "i.npy"):
            proc = cli("cubical", tmp_path / name, "--construction", construction, "--json")
            assert proc.returncode == 0, proc.stderr
            doc = json.loads(proc.stdout)
            assert doc["diagrams"] == ref["diagrams"] and doc["shape"] == [20, 17]
    vol = json.loads(cli("cubical", tmp_path / "s.tif", "--json").stdout)
    assert vol["shape"] == [3, 20, 17] and len(vol["diagrams"]) == 3
    assert load(tmp_path / "s.tif").shape == (3, 20, 17)
    text = cli("cubical", tmp_path / "i.png").stdout
    assert text.startswith("# 340 pixels (20, 17), maxdim 1")
    wrong = cli("rips", tmp_path / "i.png")
    assert wrong.returncode == 2 and "use tda-ray cubical" in wrong.stderr
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    bad = cli("cubical", tmp_path / "bad.png")
    assert bad.returncode == 2 and "not a readable PNG or TIFF image" in bad.stderr and "Traceback" not in bad.stderr
