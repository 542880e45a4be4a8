"""The scikit-learn transformers: pipelines and grid searches, scikit-learn's estimator checks where they apply,
giotto-tda's padding, the engine under VietorisRipsPersistence, n_jobs, and the parameter checks at fit.
(Equality with giotto-tda itself: test_learn_giotto.py.)"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator,
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)
from support.engine_compare import ripser_py

import tda_ray
from tda_ray import (
    Amplitude,
    BettiCurve,
    CubicalPersistence,
    PersistenceEntropy,
    PersistenceImage,
    PersistenceLandscape,
    Silhouette,
    SlidingWindow,
    TakensEmbedding,
    VietorisRipsPersistence,
)
from tda_ray.engine.learn.padded import pad, subdiagrams, unpad

DIAGRAM_TRANSFORMERS = [
    BettiCurve(),
    PersistenceLandscape(n_layers=2),
    Silhouette(),
    PersistenceImage(n_bins=10),
    PersistenceEntropy(),
    Amplitude(),
]
ALL = [VietorisRipsPersistence(), CubicalPersistence(), *DIAGRAM_TRANSFORMERS, SlidingWindow(), TakensEmbedding()]
API_CHECKS = [
    check_parameters_default_constructible,
    check_no_attributes_set_in_init,
    check_get_params_invariance,
    check_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_do_not_raise_errors_in_init_or_set_params,
]


def circles(n: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * math.pi, (n, 40))
    return np.stack([np.cos(t), np.sin(t)], axis=2) + noise * rng.normal(size=(n, 40, 2))


def blobs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 40, 2)) * 0.4


@pytest.mark.parametrize("estimator", ALL, ids=lambda e: type(e).__name__)
def test_scikit_learn_api_checks(estimator: Any) -> None:
    name = type(estimator).__name__
    for check in API_CHECKS:
        check(name, estimator)


def test_takens_embedding_passes_the_estimator_checks() -> None:
    # A 2-D collection of series in, (n_samples, n_points, dimension) out: every check of a 2-D transformer but
    # those that fix the number of features at fit (giotto-tda embeds series of any length) and read a list
    # as an array (a list is a collection of series of different lengths: a list comes back).
    any_length = "transform embeds series of any length (giotto-tda's semantics): no n_features_in_"
    check_estimator(
        TakensEmbedding(),
        expected_failed_checks={
            "check_n_features_in": any_length,
            "check_n_features_in_after_fitting": any_length,
            "check_transformer_general": any_length,
            "check_transformer_data_not_an_array": "a list is a collection of series: a list of arrays comes back",
        },
    )


def test_cubical_persistence_in_a_pipeline_and_its_refusals() -> None:
    rng = np.random.default_rng(0)
    # Images with one dark ring (an H1 class) against plain noise.
    yy, xx = np.mgrid[:24, :24]
    ring = np.abs(np.hypot(yy - 12, xx - 12) - 7) < 1.5
    X = np.stack(
        [np.where(ring, 0.0, 1.0) + 0.1 * rng.random((24, 24)) for _ in range(6)]
        + [rng.random((24, 24)) * 0.2 for _ in range(6)]
    )
    y = np.array([1] * 6 + [0] * 6)
    pipe = make_pipeline(CubicalPersistence(homology_dimensions=(1,)), Amplitude(metric="bottleneck"))
    scores = pipe.fit_transform(X)
    assert scores.shape == (12, 1) and scores[y == 1].min() > 3 * scores[y == 0].max()
    direct = tda_ray.cubical_persistence(X[0], construction="T").diagrams[1]
    ours = CubicalPersistence(homology_dimensions=(1,), infinity_values=1.0).fit_transform(X[:1])[0]
    assert sorted(map(tuple, ours[ours[:, 0] < ours[:, 1], :2])) == sorted(map(tuple, direct))
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"coeff": 3}, "Z/2"),
        ({"periodic_dimensions": [True, False]}, "periodic"),
        ({"homology_dimensions": []}, "non-empty"),
    ]
    for bad, message in refusals:
        with pytest.raises(ValueError, match=message):
            CubicalPersistence(**bad).fit(X)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        CubicalPersistence().fit(np.zeros((2, 3)))


def test_a_giotto_pipeline_classifies_circles_from_blobs() -> None:
    X = np.concatenate([circles(12, 0.05, 0), blobs(12, 1)])
    y = np.array([1] * 12 + [0] * 12)
    pipe = Pipeline(
        [
            ("diagrams", VietorisRipsPersistence(homology_dimensions=(0, 1))),
            ("features", make_union(Amplitude(metric="bottleneck"), PersistenceEntropy(), Amplitude())),
            ("forest", RandomForestClassifier(n_estimators=30, random_state=0)),
        ]
    )
    pipe.fit(X[::2], y[::2])
    assert pipe.score(X[1::2], y[1::2]) >= 0.9  # a circle's H1 amplitude is large, a blob's tiny
    search = GridSearchCV(pipe, {"features__amplitude-2__metric": ["landscape", "betti"]}, cv=2)
    search.fit(X, y)
    assert search.best_score_ >= 0.9
    clone(pipe).fit(X, y)


def test_vietoris_rips_runs_the_engine_with_giottos_padding() -> None:
    X = circles(3, 0.1, 2)
    Xt = VietorisRipsPersistence(homology_dimensions=(0, 1)).fit_transform(X)
    n0 = [int(np.sum((s[:, 2] == 0) & (s[:, 0] < s[:, 1]))) for s in Xt]
    assert Xt.shape[0] == 3 and Xt.shape[2] == 3
    for i, x in enumerate(X):
        want = ripser_py(cdist(x, x), 1, None, 2)
        got = unpad(Xt)[i]
        # Reduced homology: ripser's one infinite H0 bar is dropped; the rest equal up to float32 rounding.
        h0 = want[0][np.isfinite(want[0][:, 1])]
        np.testing.assert_allclose(np.sort(got[0], axis=0), np.sort(h0, axis=0), rtol=1e-6)
        np.testing.assert_allclose(np.sort(got[1], axis=0), np.sort(want[1], axis=0), rtol=1e-6)
        assert n0[i] == len(h0)
    # Padding: dimension blocks in order, each as wide as its fullest sample, filled on the diagonal.
    dims = Xt[0, :, 2]
    assert np.all(np.diff(dims) >= 0)
    block1 = subdiagrams(Xt, 1)
    pads = block1[:, :, 0] == block1[:, :, 1]
    assert pads.any() and np.allclose(block1[pads][:, 0], block1[~pads][:, 0].min())


def test_unreduced_homology_and_thresholds_give_infinity_values() -> None:
    X = circles(2, 0.05, 3)
    full = VietorisRipsPersistence(homology_dimensions=(0,), reduced_homology=False).fit_transform(X)
    assert np.isinf(full[:, :, 1]).sum() == 2  # one infinite bar per sample
    capped = VietorisRipsPersistence(homology_dimensions=(0, 1), max_edge_length=0.3).fit(X)
    assert capped.infinity_values_ == 0.3
    out = capped.transform(X)
    assert np.isfinite(out).all() and out[:, :, 1].max() <= 0.3 + 1e-7
    other = VietorisRipsPersistence(max_edge_length=0.3, infinity_values=5.0).fit_transform(X)
    assert other[:, :, 1].max() == 5.0


def test_precomputed_and_other_metrics() -> None:
    X = circles(2, 0.05, 4)
    D = np.stack([cdist(x, x) for x in X])
    a = VietorisRipsPersistence().fit_transform(X)
    b = VietorisRipsPersistence(metric="precomputed").fit_transform(D)
    np.testing.assert_allclose(np.sort(a, axis=1), np.sort(b, axis=1), rtol=1e-6)
    m = VietorisRipsPersistence(metric="manhattan").fit_transform(X)
    D1 = np.stack([cdist(x, x, "cityblock") for x in X])
    np.testing.assert_allclose(m, VietorisRipsPersistence(metric="precomputed").fit_transform(D1))
    with pytest.raises(ValueError, match="must be square"):
        VietorisRipsPersistence(metric="precomputed").fit(X)


def test_lists_of_clouds_of_different_sizes_and_n_jobs() -> None:
    X = [circles(1, 0.05, s)[0][: 20 + 5 * s] for s in range(5)]
    one = VietorisRipsPersistence().fit_transform(X)
    two = VietorisRipsPersistence(n_jobs=2).fit_transform(X)
    np.testing.assert_array_equal(one, two)
    land = PersistenceLandscape(n_jobs=2).fit(one)
    np.testing.assert_array_equal(land.transform(one), PersistenceLandscape().fit_transform(one))


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (VietorisRipsPersistence(homology_dimensions=(0, 0)), "homology_dimensions must not repeat"),
        (VietorisRipsPersistence(coeff=4), "coeff must be a prime"),
        (VietorisRipsPersistence(max_edge_length=-1), "max_edge_length must be a non-negative number"),
        (VietorisRipsPersistence(reduced_homology="yes"), "reduced_homology must be True or False"),  # type: ignore[arg-type]
        (BettiCurve(n_bins=0), "n_bins must be >= 1, got 0"),
        (PersistenceLandscape(n_layers=1.5), "n_layers must be an integer"),  # type: ignore[arg-type]
        (PersistenceImage(sigma=0), "sigma must be a positive finite number"),
        (Amplitude(metric="heat"), "metric must be one of"),
        (Amplitude(metric="landscape", metric_params={"sigma": 1}), "sigma is not a parameter"),
        (Amplitude(order=-1), "order must be a positive finite number"),
        (TakensEmbedding(dimension=0), "dimension must be >= 1"),
        (SlidingWindow(size=0), "size must be >= 1"),
    ],
)
def test_hyperparameters_are_checked_at_fit(estimator: Any, message: str) -> None:
    data = circles(1, 0.0, 0) if isinstance(estimator, VietorisRipsPersistence) else None
    if data is None:
        data = np.arange(20.0)[None] if isinstance(estimator, (TakensEmbedding, SlidingWindow)) else _diagrams()
    with pytest.raises(ValueError, match=message):
        estimator.fit(data)


def _diagrams() -> np.ndarray:
    return pad([{0: np.array([[0.0, 1.0]]), 1: np.array([[0.2, 0.5]])}, {0: np.array([[0.0, 2.0]])}], (0, 1))


def test_diagram_input_is_checked() -> None:
    good = _diagrams()
    for bad, message in [
        (good[:, :, :2], r"\(n_samples, n_points, 3\)"),
        (good[0], r"\(n_samples, n_points, 3\)"),
        (np.where(good == 2.0, np.nan, good), "NaN"),
        (good[:, :, [1, 0, 2]], "below the diagonal"),
        (np.concatenate([good[:, :, :2], np.full((*good.shape[:2], 1), 0.5)], axis=2), "non-negative integers"),
    ]:
        with pytest.raises(ValueError, match=message):
            BettiCurve().fit(bad)
    infinite = good.copy()
    infinite[0, 0, 1] = np.inf
    with pytest.raises(ValueError, match="infinite deaths"):
        PersistenceLandscape().fit(infinite)
    with pytest.raises(ValueError, match="3-D array or a list of 2-D arrays"):
        VietorisRipsPersistence().fit(np.zeros((5, 2)))


def test_sliding_window_and_resample() -> None:
    x = np.arange(23.0)
    sw = SlidingWindow(size=5, stride=3).fit(x)
    windows = sw.transform(x)
    assert windows.shape == (7, 5) and windows[-1, -1] == 22 and np.all(np.diff(windows, axis=1) == 1)
    np.testing.assert_array_equal(sw.resample(x * 10), windows[:, -1] * 10)
    Xt, yt = sw.transform_resample(x, x)
    assert Xt.shape[0] == yt.shape[0]
    pipe = make_pipeline(SlidingWindow(size=12, stride=2), TakensEmbedding(dimension=3), VietorisRipsPersistence())
    out = pipe.fit_transform(np.sin(np.linspace(0, 12, 60)))
    assert out.ndim == 3 and out.shape[0] == 25


def test_takens_embedding_shapes() -> None:
    X = np.arange(20.0).reshape(2, 10)
    out = TakensEmbedding(time_delay=2, dimension=3, stride=2).fit_transform(X)
    # The last point ends at the last timestamp: starts 1, 3, 5 (span 5, offset 1).
    np.testing.assert_array_equal(out[0], [[1, 3, 5], [3, 5, 7], [5, 7, 9]])
    ragged = TakensEmbedding().fit_transform([np.arange(5.0), np.arange(8.0)])
    assert [r.shape for r in ragged] == [(4, 2), (7, 2)]
    multi = TakensEmbedding(dimension=2).fit_transform(np.arange(24.0).reshape(2, 2, 6))
    assert multi.shape == (2, 5, 4)
    with pytest.raises(ValueError, match="cannot give a point of dimension"):
        TakensEmbedding(dimension=30).fit_transform(X)


def test_everything_is_importable_from_the_package() -> None:
    for name in ("VietorisRipsPersistence", "Amplitude", "bottleneck_distance", "plot_diagrams", "plot_barcode"):
        assert getattr(tda_ray, name) is not None
