"""``vietoris_rips`` refuses bad input with a ValueError that names the problem."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tda_ray.engine import MemoryLimitError, vietoris_rips

GOOD = np.random.default_rng(0).random((8, 3))


def dist(points: np.ndarray) -> np.ndarray:
    return np.asarray(np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)), dtype=np.float64)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.array([[0.0, 1.0], [np.nan, 2.0]]), r"NaN or inf.*row 1, column 0"),
        (np.array([[0.0, 1.0], [2.0, np.inf]]), r"NaN or inf.*row 1, column 1"),
        (np.array([[0.0, -np.inf]]), r"NaN or inf.*row 0, column 1"),
        (np.empty((0, 3)), r"empty"),
        ([], r"empty"),
        ([[1.0, 2.0], [3.0]], r"ragged"),
        (np.array([["a", "b"]]), r"numeric"),
        (np.arange(5.0), r"2-dimensional"),
        (np.ones((2, 2, 2)), r"2-dimensional"),
        (np.empty((3, 0)), r"zero coordinates"),
    ],
    ids=["nan", "inf", "-inf", "empty", "empty-list", "ragged", "strings", "1d", "3d", "no-coordinates"],
)
def test_bad_point_clouds(X: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vietoris_rips(X, maxdim=1)


@pytest.mark.parametrize(
    ("D", "message"),
    [
        (np.zeros((3, 4)), r"square"),
        (np.array([[0.0, 1.0], [2.0, 0.0]]), r"not symmetric"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), r"negative"),
        (np.array([[1.0, 1.0], [1.0, 0.0]]), r"zero diagonal"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), r"NaN or inf"),
        (np.empty((0, 0)), r"empty"),
    ],
    ids=["non-square", "asymmetric", "negative", "diagonal", "nan", "empty"],
)
def test_bad_distance_matrices(D: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        vietoris_rips(D, maxdim=1, distance_matrix=True)
    assert "distance matrix" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maxdim": -1}, r"maxdim"),
        ({"maxdim": 1.5}, r"maxdim"),
        ({"maxdim": True}, r"maxdim"),
        ({"coeff": 4}, r"coeff.*prime"),
        ({"coeff": 1}, r"coeff.*prime"),
        ({"coeff": 0}, r"coeff.*prime"),
        ({"coeff": -3}, r"coeff.*prime"),
        ({"coeff": 2**31 + 11}, r"coeff"),
        ({"threshold": -0.5}, r"threshold"),
        ({"threshold": math.nan}, r"threshold"),
        ({"n_threads": 0}, r"n_threads"),
        ({"memory_limit": 0}, r"memory_limit"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vietoris_rips(GOOD, **kwargs)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 12),
    d=st.integers(1, 4),
    data=st.data(),
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_first_non_finite_value_is_located(n: int, d: int, data: st.DataObject, bad: float) -> None:
    X = np.random.default_rng(n * 10 + d).random((n, d))
    row = data.draw(st.integers(0, n - 1), label="row")
    col = data.draw(st.integers(0, d - 1), label="col")
    X[row, col] = bad
    with pytest.raises(ValueError, match=rf"row {row}, column {col}\b"):
        vietoris_rips(X, maxdim=0)


@pytest.mark.parametrize(
    "X",
    [
        np.array([[0.0, 0.0]]),  # one point
        [[0, 0], [1, 0], [0, 1]],  # nested lists of ints
        np.array([[0, 0], [3, 4]], dtype=np.int32),
        np.random.default_rng(1).random((6, 2)).astype(np.float32),
        np.asfortranarray(np.random.default_rng(2).random((6, 3))),
        np.random.default_rng(3).random((12, 4))[::2, ::2],  # non-contiguous view
    ],
    ids=["single-point", "int-lists", "int32", "float32", "fortran", "strided"],
)
def test_valid_inputs_accepted(X: object) -> None:
    res = vietoris_rips(X, maxdim=1)
    n = np.asarray(X).shape[0]
    assert res.n_points == n
    assert len(res.diagrams) == 2
    # Exactly one essential H0 class for a full (unthresholded) filtration.
    h0 = res.diagrams[0]
    assert h0.shape == (n, 2)
    assert np.count_nonzero(np.isinf(h0[:, 1])) == 1


def test_read_only_input_accepted() -> None:
    X = np.random.default_rng(4).random((10, 2))
    X.setflags(write=False)  # Ray hands tasks read-only views
    assert vietoris_rips(X, maxdim=1).n_points == 10


def test_edge_parameter_values_accepted() -> None:
    assert vietoris_rips(GOOD, maxdim=0).maxdim == 0
    assert vietoris_rips(GOOD, threshold=0.0).threshold == 0.0
    assert vietoris_rips(GOOD, coeff=3).coeff == 3
    assert vietoris_rips(GOOD, coeff=np.int64(5)).coeff == 5
    assert vietoris_rips(dist(GOOD), distance_matrix=True, maxdim=1).n_points == 8


def test_tiny_memory_limit_is_refused() -> None:
    X = np.random.default_rng(5).random((400, 3))
    with pytest.raises(MemoryLimitError) as info:
        vietoris_rips(X, maxdim=2, memory_limit=4096)
    assert isinstance(info.value, ValueError)
