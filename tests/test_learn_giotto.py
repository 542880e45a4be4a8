"""The transformers equal giotto-tda's (0.6.2, in its own virtualenv: mk/giotto.mk) on the same inputs, so a
giotto-tda pipeline ports by changing its imports.  Diagrams from Vietoris–Rips agree up to the float32 rounding
both engines compute in (and the order of pairs within a dimension); everything downstream, fed the same
diagrams, agrees up to float64 rounding."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from support import giotto_reference

import tda_ray

pytestmark = pytest.mark.skipif(
    giotto_reference.interpreter() is None, reason="giotto-tda's virtualenv is missing (make giotto-venv)"
)

WEIGHTS = {"square": np.square, "sqrt": np.sqrt}


def _ours(name: str, params: dict[str, Any]) -> Any:
    p = dict(params)
    if "weight_function" in p:
        p["weight_function"] = WEIGHTS[p["weight_function"]]
    if isinstance(p.get("metric_params"), dict) and "weight_function" in p["metric_params"]:
        p["metric_params"] = {**p["metric_params"], "weight_function": WEIGHTS[p["metric_params"]["weight_function"]]}
    if p.get("max_edge_length") == "inf":
        p["max_edge_length"] = math.inf
    return getattr(tda_ray, name)(**p)


def canonical(X: np.ndarray) -> np.ndarray:
    """Each sample's triples sorted (dimension, birth, death): the engines list pairs in different orders."""
    return np.stack([s[np.lexsort((s[:, 1], s[:, 0], s[:, 2]))] for s in X])


def clouds(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * math.pi, (6, 35))
    ring = np.stack([np.cos(t), np.sin(t), 0.2 * rng.normal(size=t.shape)], axis=2)
    return np.concatenate([ring + 0.1 * rng.normal(size=ring.shape), rng.random((4, 35, 3))])


VR_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "vr": ("VietorisRipsPersistence", {}),
    "vr_012": ("VietorisRipsPersistence", {"homology_dimensions": [0, 1, 2]}),
    "vr_capped": ("VietorisRipsPersistence", {"homology_dimensions": [1, 0], "max_edge_length": 0.5}),
    "vr_unreduced": ("VietorisRipsPersistence", {"reduced_homology": False, "max_edge_length": 0.4}),
    "vr_coeff3": ("VietorisRipsPersistence", {"coeff": 3, "metric": "manhattan"}),
}
# (params, input): random images, images with many ties (small integers), volumes.
CUBICAL_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "cubical": ({}, "I"),
    "cubical_ties": ({"reduced_homology": False, "infinity_values": 9.0}, "Itied"),
    "cubical_3d": ({"homology_dimensions": [0, 1, 2]}, "V"),
    "cubical_h1": ({"homology_dimensions": [1]}, "Itied"),
}
DIAGRAM_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "betti": ("BettiCurve", {"n_bins": 37}),
    "landscape": ("PersistenceLandscape", {"n_layers": 3, "n_bins": 25}),
    "landscape_many": ("PersistenceLandscape", {"n_layers": 40, "n_bins": 10}),
    "silhouette": ("Silhouette", {"power": 2.0, "n_bins": 30}),
    "silhouette_big_power": ("Silhouette", {"power": 9.0, "n_bins": 30}),
    "image": ("PersistenceImage", {"sigma": 0.05, "n_bins": 20}),
    "image_weighted": ("PersistenceImage", {"sigma": 0.2, "n_bins": 12, "weight_function": "square"}),
    "entropy": ("PersistenceEntropy", {}),
    "entropy_normalized": ("PersistenceEntropy", {"normalize": True, "nan_fill_value": None}),
    "amp_landscape": ("Amplitude", {}),
    "amp_bottleneck": ("Amplitude", {"metric": "bottleneck"}),
    "amp_wasserstein": ("Amplitude", {"metric": "wasserstein", "metric_params": {"p": 3}, "order": 1}),
    "amp_betti": ("Amplitude", {"metric": "betti", "metric_params": {"p": 1, "n_bins": 50}, "order": 2}),
    "amp_silhouette": ("Amplitude", {"metric": "silhouette", "metric_params": {"power": 2, "n_bins": 30}}),
    "amp_image": ("Amplitude", {"metric": "persistence_image", "metric_params": {"sigma": 0.1, "n_bins": 15}}),
    "amp_image_w": (
        "Amplitude",
        {"metric": "persistence_image", "metric_params": {"sigma": 0.1, "n_bins": 15, "weight_function": "sqrt"}},
    ),
}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    X = clouds(0)
    fit = clouds(1)[:5]
    cases = [{"name": k, "steps": [[n, p]], "input": "X"} for k, (n, p) in VR_CASES.items()]
    rng = np.random.default_rng(2)
    inputs: dict[str, np.ndarray] = {
        "X": X,
        "I": rng.random((4, 17, 13)),
        "Itied": rng.integers(0, 5, (4, 15, 15)).astype(np.float64),
        "V": rng.random((3, 7, 6, 5)),
    }
    # giotto-tda's diagrams of X feed both sides of every vectorization; the fit on other diagrams (the grid
    # comes from fit) is checked too.
    first = giotto_reference.run(cases[:1], inputs)["vr"]
    inputs |= {"D": first, "Dfit": giotto_reference.run(cases[:1], {"X": fit})["vr"]}
    cases += [{"name": k, "steps": [[n, p]], "input": "D"} for k, (n, p) in DIAGRAM_CASES.items()]
    cases += [{"name": k, "steps": [["CubicalPersistence", p]], "input": i} for k, (p, i) in CUBICAL_CASES.items()]
    cases += [{"name": "fit_other", "steps": [["PersistenceLandscape", {"n_bins": 20}]], "input": "D"}]
    cases[-1]["fit_input"] = "Dfit"
    series = np.sin(np.linspace(0, 20, 97))[None] * np.array([[1.0], [2.0]])
    inputs |= {"S": series, "s": series[0]}
    cases += [
        {
            "name": "takens",
            "steps": [["TakensEmbedding", {"time_delay": 3, "dimension": 4, "stride": 2}]],
            "input": "S",
        },
        {
            "name": "takens_first",
            "steps": [["TakensEmbedding", {"stride": 3, "ensure_last_value": False}]],
            "input": "S",
        },
        {"name": "window", "steps": [["SlidingWindow", {"size": 9, "stride": 4}]], "input": "s"},
    ]
    out: dict[str, np.ndarray] = giotto_reference.run(cases, inputs)
    out |= inputs
    return out


@pytest.mark.parametrize("case", list(VR_CASES))
def test_vietoris_rips_equals_giottos(reference: dict[str, np.ndarray], case: str) -> None:
    name, params = VR_CASES[case]
    ours = _ours(name, params).fit_transform(reference["X"])
    theirs = reference[case]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(canonical(ours), canonical(theirs), rtol=2e-7, atol=1e-7)


@pytest.mark.parametrize("case", list(CUBICAL_CASES))
def test_cubical_equals_giottos(reference: dict[str, np.ndarray], case: str) -> None:
    params, key = CUBICAL_CASES[case]
    ours = tda_ray.CubicalPersistence(**params).fit_transform(reference[key])
    theirs = reference[case]
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(canonical(ours), canonical(theirs))


@pytest.mark.parametrize("case", list(DIAGRAM_CASES))
def test_vectorizations_equal_giottos(reference: dict[str, np.ndarray], case: str) -> None:
    name, params = DIAGRAM_CASES[case]
    ours = _ours(name, params).fit_transform(reference["D"])
    theirs = reference[case]
    assert ours.shape == theirs.shape and ours.dtype.kind == theirs.dtype.kind
    scale = max(float(np.max(np.abs(theirs[np.isfinite(theirs)]), initial=0.0)), 1.0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12 * scale)


def test_grids_come_from_the_fit_data(reference: dict[str, np.ndarray]) -> None:
    ours = tda_ray.PersistenceLandscape(n_bins=20).fit(reference["Dfit"]).transform(reference["D"])
    np.testing.assert_allclose(ours, reference["fit_other"], rtol=1e-12, atol=1e-14)


def test_time_series_equal_giottos(reference: dict[str, np.ndarray]) -> None:
    ours = tda_ray.TakensEmbedding(time_delay=3, dimension=4, stride=2).fit_transform(reference["S"])
    np.testing.assert_array_equal(ours, reference["takens"])
    first = tda_ray.TakensEmbedding(stride=3, ensure_last_value=False).fit_transform(reference["S"])
    np.testing.assert_array_equal(first, reference["takens_first"])
    np.testing.assert_array_equal(
        tda_ray.SlidingWindow(size=9, stride=4).fit_transform(reference["s"]), reference["window"]
    )
