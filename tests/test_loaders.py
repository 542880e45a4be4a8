"""Loaders: every format on generated files, malformed input, and the shared benchmark data sets."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tda_ray import io as tio

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TDA_DATASETS", REPO.parent / "shared" / "datasets"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8", newline="")
    return p


def lower_text(d: np.ndarray, sep: str = ",", first_empty: bool = True, trailing: str = ",") -> str:
    rows = [sep.join(repr(float(v)) for v in d[i, :i]) + (trailing if i else "") for i in range(len(d))]
    return "\n".join(rows if first_empty else rows[1:]) + "\n"


def random_distances(n: int, seed: int = 0) -> np.ndarray:
    pts = np.random.default_rng(seed).random((n, 3))
    return np.asarray(np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)), dtype=np.float64)


# --------------------------------------------------------------------------- point clouds


@pytest.mark.parametrize(
    "text",
    [
        "1 2 3\n4 5 6\n",
        "1\t2\t3\n4\t5\t6",
        "1,2,3\n4,5,6\n",
        "1, 2 ,3\n 4 ,5, 6\n",
        "1,2,3,\n4,5,6,\n",
        "# header comment\n\n1 2 3\n\n4   5 6\n# trailing\n",
        "1 2 3\r\n4 5 6\r\n",
        "\ufeff1 2 3\n4 5 6\n",
    ],
    ids=["spaces", "tabs", "commas", "comma-spaces", "trailing-commas", "comments-blank", "crlf", "bom"],
)
def test_point_cloud_separators(tmp_path: Path, text: str) -> None:
    arr = tio.load_point_cloud(write(tmp_path, "pc.txt", text))
    assert arr.dtype == np.float64 and arr.flags.c_contiguous
    np.testing.assert_array_equal(arr, [[1, 2, 3], [4, 5, 6]])


def test_point_cloud_single_column_is_one_dimensional_points(tmp_path: Path) -> None:
    arr = tio.load_point_cloud(write(tmp_path, "pc.txt", "0.5\n1.5\n-2\n"))
    assert arr.shape == (3, 1)


@settings(max_examples=30, deadline=None)
@given(
    arr=arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 6)), elements=st.floats(-1e6, 1e6, width=64)),
    sep=st.sampled_from([" ", "\t", ",", ", "]),
)
def test_point_cloud_round_trip(tmp_path_factory: pytest.TempPathFactory, arr: np.ndarray, sep: str) -> None:
    path = tmp_path_factory.mktemp("rt") / "pc.txt"
    path.write_text("\n".join(sep.join(repr(float(v)) for v in row) for row in arr) + "\n")
    np.testing.assert_array_equal(tio.load(path, "point-cloud"), arr)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3\n4 5 6\n7 8\n", r"line 3: expected 3 values .* found 2"),
        ("# c\n1 2\n\n3 abc\n", r"line 4, column 2: 'abc' is not a number"),
        ("1,2,3\n4,,6\n", r"line 2, column 2: empty field"),
        ("1 2\n3 nan\n", r"line 2, column 2: non-finite value nan"),
        ("# c\n\n1 2\ninf 3\n", r"line 4, column 1: non-finite value inf"),
        ("", r"no data"),
        ("# only a comment\n\n", r"no data"),
        ("x,y,z\n1,2,3\n", r"line 1, column 1: 'x' is not a number"),
    ],
    ids=["ragged", "not-a-number", "empty-field", "nan", "inf", "empty", "comment-only", "header"],
)
def test_point_cloud_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(ValueError, match=message) as info:
        tio.load_point_cloud(path)
    assert str(path) in str(info.value)


def test_binary_file_as_text_is_rejected(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_bytes(b"\x00\xff\xfe\x80 binary")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        tio.load_point_cloud(p)
    np.save(tmp_path / "a.npy", np.ones((2, 2)))
    with pytest.raises(ValueError, match="binary file"):
        tio.load(tmp_path / "a.npy", "point-cloud")


# --------------------------------------------------------------------------- lower-triangular distances


@pytest.mark.parametrize(
    ("sep", "first_empty", "trailing"),
    [(",", True, ","), (",", False, ","), (" ", True, ""), (", ", False, ""), ("\t", True, "")],
)
def test_lower_distance_variants(tmp_path: Path, sep: str, first_empty: bool, trailing: str) -> None:
    d = random_distances(7)
    path = write(tmp_path, "m.lower_distance_matrix", lower_text(d, sep, first_empty, trailing))
    out = tio.load_lower_distance_matrix(path)
    assert out.shape == (7, 7)
    np.testing.assert_array_equal(out, out.T)
    np.testing.assert_array_equal(np.diag(out), 0)
    np.testing.assert_array_equal(out, np.tril(d, -1) + np.tril(d, -1).T)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\n1\n2,3\n4,5\n", r"line 4: expected 3 distances .* found 2"),
        ("1\n2,3\n4,5,6,7\n", r"line 3: expected 3 distances .* found 4"),
        ("\n1\n\n2,3,4\n", r"line 3: expected 2 distances .* found 0"),
        ("\n1\n2,x\n", r"line 3, value 2: 'x' is not a number"),
        ("\n1\n2,,3\n", r"line 3: empty field"),
        ("\n1\n2,-3\n", r"line 3: negative distance -3"),
        ("1\n2,3\n4,5,nan\n", r"line 3: non-finite distance nan"),
        ("", r"no data"),
        ("\n", r"no data"),
    ],
    ids=["short-row", "long-row", "blank-middle", "not-a-number", "empty-field", "negative", "nan", "empty", "blank"],
)
def test_lower_distance_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.lower_distance_matrix", text)
    with pytest.raises(ValueError, match=message) as info:
        tio.load_lower_distance_matrix(path)
    assert str(path) in str(info.value)


def test_lower_distance_row_located_for_late_negative(tmp_path: Path) -> None:
    d = random_distances(30)
    d[20, 13] = d[13, 20] = -1.0
    path = write(tmp_path, "m.txt", lower_text(d, first_empty=False))
    with pytest.raises(ValueError, match=r"line 20: negative distance"):
        tio.load(path, "lower-distance")


# --------------------------------------------------------------------------- full distance matrices


def test_full_distance_matrix_reads_lower_triangle(tmp_path: Path) -> None:
    d = random_distances(6)
    noisy = d.copy()
    noisy[np.triu_indices(6, 1)] += 1e-6  # Ripser ignores the upper half; so do we
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in noisy)
    out = tio.load_distance_matrix(write(tmp_path, "m.distance_matrix", text))
    np.testing.assert_array_equal(out, np.tril(d, -1) + np.tril(d, -1).T)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 1 2\n1 0 3\n", r"must be square, got 2 rows of 3 values"),
        ("0 1\n-1 0\n", r"line 2: negative distance"),
        ("0 1 2\n1 0\n2 3 0\n", r"line 2: expected 3 values"),
    ],
)
def test_full_distance_malformed(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tio.load(write(tmp_path, "m.txt", text), "distance")


# --------------------------------------------------------------------------- npy


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.uint8])
def test_npy_numeric(tmp_path: Path, dtype: type) -> None:
    arr: np.ndarray = (np.arange(12).reshape(4, 3) % 7).astype(dtype)
    np.save(tmp_path / "a.npy", arr)
    out = tio.load_npy(tmp_path / "a.npy")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, arr.astype(np.float64))


def test_npy_fortran_order(tmp_path: Path) -> None:
    arr = np.asfortranarray(np.random.default_rng(1).random((5, 3)))
    np.save(tmp_path / "a.npy", arr)
    out = tio.load(tmp_path / "a.npy")
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, arr)


def test_npy_object_dtype_rejected(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([[1, "a"], [2, None]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"dtype object"):
        tio.load_npy(tmp_path / "obj.npy")


class _Payload:
    """Unpickling this would create a marker file: proves the loader never unpickles."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_pickle_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = np.empty((1, 1), dtype=object)
    evil[0, 0] = _Payload(str(marker))
    np.save(tmp_path / "evil.npy", evil, allow_pickle=True)
    (tmp_path / "raw.npy").write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ValueError, match="dtype object"):
        tio.load(tmp_path / "evil.npy")
    with pytest.raises(ValueError, match=r"not a \.npy file"):
        tio.load(tmp_path / "raw.npy")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("arr", "message"),
    [
        (np.arange(5.0), r"2-D array .* shape \(5,\)"),
        (np.ones((2, 2, 2)), r"2-D array"),
        (np.array([["a", "b"]]), r"not a real numeric type"),
        (np.ones((2, 2), dtype=complex), r"not a real numeric type"),
        (np.zeros((0, 3)), r"empty array"),
        (np.array([[1.0, np.nan]]), r"non-finite value nan at row 0, column 1"),
    ],
    ids=["1d", "3d", "strings", "complex", "empty", "nan"],
)
def test_npy_bad_arrays(tmp_path: Path, arr: np.ndarray, message: str) -> None:
    np.save(tmp_path / "a.npy", arr)
    with pytest.raises(ValueError, match=message):
        tio.load_npy(tmp_path / "a.npy")


def test_npz_and_truncated_npy(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"\.npz archive"):
        tio.load(tmp_path / "a.npz", "npy")
    np.save(tmp_path / "t.npy", np.ones((100, 3)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-50])
    with pytest.raises(ValueError, match=r"unreadable \.npy data"):
        tio.load_npy(tmp_path / "t.npy")


# --------------------------------------------------------------------------- parquet


def test_parquet_numeric_columns(tmp_path: Path) -> None:
    table = pa.table(
        {"x": [1.0, 2.0, 3.0], "y": pa.array([4, 5, 6], pa.int32()), "z": pa.array([7, 8, 9], pa.float32())}
    )
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=2)  # several chunks
    np.testing.assert_array_equal(tio.load_parquet(tmp_path / "p.parquet"), [[1, 4, 7], [2, 5, 8], [3, 6, 9]])
    np.testing.assert_array_equal(
        tio.load_parquet(tmp_path / "p.parquet", columns=["z", "x"]), [[7, 1], [8, 2], [9, 3]]
    )


@pytest.mark.parametrize("kind", ["list", "large_list", "fixed"])
def test_parquet_list_column(tmp_path: Path, kind: str) -> None:
    pts = np.random.default_rng(2).random((5, 3))
    if kind == "fixed":
        col = pa.FixedSizeListArray.from_arrays(pa.array(pts.ravel()), 3)
    else:
        col = pa.array(pts.tolist(), type=pa.list_(pa.float64()) if kind == "list" else pa.large_list(pa.float64()))
    pq.write_table(pa.table({"coords": col}), tmp_path / "p.parquet")
    np.testing.assert_array_equal(tio.load(tmp_path / "p.parquet"), pts)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"coords": pa.array([[1.0, 2.0], [3.0]])}), r"column 'coords' row 1 has 1 coordinates, row 0 has 2"),
        (pa.table({"x": [1.0, 2.0], "label": ["a", "b"]}), r"column 'label' has type string"),
        (pa.table({"x": [1.0, None, 3.0]}), r"column 'x' has a null at row 1"),
        (pa.table({"coords": pa.array([[1.0], None])}), r"column 'coords' has a null at row 1"),
        (pa.table({"coords": pa.array([[1.0, None]])}), r"null coordinates"),
        (pa.table({"coords": pa.array([["a"]])}), r"holds string, expected numbers"),
        (pa.table({"x": pa.array([], pa.float64())}), r"empty"),
        (pa.table({"x": [1.0, float("inf")]}), r"non-finite value inf at row 1"),
    ],
    ids=["ragged", "string-column", "null", "null-list", "null-coordinate", "string-list", "empty", "inf"],
)
def test_parquet_malformed(tmp_path: Path, table: pa.Table, message: str) -> None:
    pq.write_table(table, tmp_path / "p.parquet")
    with pytest.raises(ValueError, match=message):
        tio.load_parquet(tmp_path / "p.parquet")


def test_not_parquet(tmp_path: Path) -> None:
    p = write(tmp_path, "x.parquet", "1 2 3\n")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        tio.load(p)


# --------------------------------------------------------------------------- dispatch


def test_auto_detection(tmp_path: Path) -> None:
    d = random_distances(4)
    write(tmp_path, "a.lower_distance_matrix", lower_text(d))
    write(tmp_path, "a.distance_matrix", "\n".join(" ".join(map(repr, r)) for r in d.tolist()))
    write(tmp_path, "a.csv", "1,2\n3,4\n")
    np.save(tmp_path / "a.npy", np.ones((2, 2)))
    (tmp_path / "a.npy").rename(tmp_path / "npy.bin")  # no telling extension: sniffed from the magic bytes
    pq.write_table(pa.table({"x": [1.0], "y": [2.0]}), tmp_path / "p.dat")
    assert tio.resolve_format(tmp_path / "a.lower_distance_matrix") == "lower-distance"
    assert tio.resolve_format(tmp_path / "a.distance_matrix") == "distance"
    assert tio.resolve_format(tmp_path / "a.csv") == "point-cloud"
    assert tio.resolve_format(tmp_path / "npy.bin") == "npy"
    assert tio.resolve_format(tmp_path / "p.dat") == "parquet"
    assert tio.resolve_format(tmp_path / "a.csv", "distance") == "distance"
    np.testing.assert_array_equal(tio.load(tmp_path / "a.lower_distance_matrix"), np.tril(d, -1) + np.tril(d, -1).T)
    np.testing.assert_array_equal(tio.load(tmp_path / "p.dat"), [[1.0, 2.0]])
    assert tio.is_distance_format("distance") and not tio.is_distance_format("npy")


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        tio.load(write(tmp_path, "a.txt", "1\n"), "csv")
    with pytest.raises(FileNotFoundError):
        tio.load(tmp_path / "missing.txt")


def test_load_bytes_matches_files(tmp_path: Path) -> None:
    arr = np.random.default_rng(3).random((6, 2))
    np.save(tmp_path / "a.npy", arr)
    pq.write_table(pa.table({"a": arr[:, 0], "b": arr[:, 1]}), tmp_path / "a.parquet")
    text = "\n".join(" ".join(map(repr, r)) for r in arr.tolist())
    np.testing.assert_array_equal(tio.load_bytes((tmp_path / "a.npy").read_bytes()), arr)
    np.testing.assert_array_equal(tio.load_bytes((tmp_path / "a.parquet").read_bytes(), name="up.parquet"), arr)
    np.testing.assert_array_equal(tio.load_bytes(text.encode(), "point-cloud"), arr)
    with pytest.raises(ValueError, match=r"upload.txt: line 1, column 1"):
        tio.load_bytes(b"a b\n", name="upload.txt")


# --------------------------------------------------------------------------- shared benchmark data

SHARED = [
    ("sphere_3_192.lower_distance_matrix", "lower-distance", (192, 192)),
    ("o3_1024.txt", "point-cloud", (1024, 9)),
    ("o3_4096.txt", "point-cloud", (4096, 9)),
    ("clifford_torus_50000.txt", "point-cloud", (50000, 4)),
    ("dragon_2000.txt", "point-cloud", (2000, 3)),
    ("fractal_r.distance_matrix", "distance", (512, 512)),
    ("random_50_16.txt", "point-cloud", (50, 16)),
    ("klein_bottle_400.txt", "point-cloud", (400, None)),
]


@pytest.mark.parametrize(("name", "fmt", "shape"), SHARED, ids=[s[0] for s in SHARED])
def test_shared_datasets_load(name: str, fmt: str, shape: tuple[int, int | None]) -> None:
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"shared data set {path} not present (set TDA_DATASETS)")
    assert tio.resolve_format(path) == fmt
    arr = tio.load(path)
    assert arr.shape[0] == shape[0]
    if shape[1] is not None:
        assert arr.shape[1] == shape[1]
    assert np.isfinite(arr).all()
    if tio.is_distance_format(fmt):
        np.testing.assert_array_equal(arr, arr.T)
        assert (arr >= 0).all()


def test_large_point_cloud_is_fast() -> None:
    path = DATASETS / "clifford_torus_50000.txt"
    if not path.exists():
        pytest.skip(f"shared data set {path} not present (set TDA_DATASETS)")
    start = time.perf_counter()
    arr = tio.load(path)
    elapsed = time.perf_counter() - start
    # NumPy's C parser reads this in ~0.05 s; a per-value Python loop would take seconds.
    assert elapsed < 1.5, f"loading 50,000 x 4 took {elapsed:.2f} s"
    # The Clifford torus lies on x1^2 + x2^2 = x3^2 + x4^2 = 1.
    np.testing.assert_allclose(arr[:, 0] ** 2 + arr[:, 1] ** 2, 1.0, atol=1e-9)
