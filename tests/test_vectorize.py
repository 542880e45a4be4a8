"""Vectorizations against gudhi.representations and persim on hypothesis diagrams, with the conventions the
module docstrings state (grids, factors, weights, bandwidths, layouts); giotto-tda's are in
test_learn_giotto.py."""

from __future__ import annotations

import math

import gudhi.representations as gr
import numpy as np
import pytest
from diagram_strategies import FloatArray, diagrams, finite_diagrams
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from persim import PersistenceImager
from persim.persistent_entropy import persistent_entropy

from tda_ray.engine import images
from tda_ray.engine import vectorize as vz
from tda_ray.engine.diagrams import cap_essential, finite_part

HYPOTHESIS = settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
collections = st.lists(finite_diagrams(max_size=10).filter(lambda d: d.shape[0] > 0), min_size=1, max_size=4)


def assert_close(ours: np.ndarray, theirs: np.ndarray, rel: float = 1e-12) -> None:
    scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-300)
    np.testing.assert_allclose(ours, theirs, rtol=rel, atol=rel * scale)


@HYPOTHESIS
@given(collections, st.integers(1, 40))
def test_gudhis_default_grid(dgms: list[FloatArray], resolution: int) -> None:
    fitted = gr.Landscape(resolution=resolution).fit(dgms)
    np.testing.assert_array_equal(vz.filtration_grid(dgms, resolution, endpoints=False), fitted.grid_)


@HYPOTHESIS
@given(collections, st.integers(1, 6), st.integers(2, 40))
def test_landscapes_equal_gudhis_over_sqrt2(dgms: list[FloatArray], layers: int, resolution: int) -> None:
    theirs = gr.Landscape(num_landscapes=layers, resolution=resolution).fit_transform(dgms)
    grid = vz.filtration_grid(dgms, resolution, endpoints=False)
    ours = np.stack([math.sqrt(2) * vz.landscape(d, grid, layers).ravel() for d in dgms])
    assert_close(ours, theirs)
    np.testing.assert_array_equal(vz.landscapes(dgms, grid, layers)[-1], vz.landscape(dgms[-1], grid, layers))


@HYPOTHESIS
@given(collections, st.sampled_from([0.5, 1.0, 2.0, 3.5]))
def test_silhouettes_equal_gudhis_over_sqrt2(dgms: list[FloatArray], power: float) -> None:
    def weight(pt: FloatArray) -> float:
        return float((pt[1] - pt[0]) ** power)

    theirs = gr.Silhouette(weight=weight, resolution=30).fit_transform(dgms)
    grid = vz.filtration_grid(dgms, 30, endpoints=False)
    ours = math.sqrt(2) * vz.silhouettes(dgms, grid, power)
    # Weights summing to zero: GUDHI divides 0 by 0, we give zero (giotto-tda's choice).
    defined = np.isfinite(theirs).all(axis=1)
    assert_close(ours[defined], theirs[defined])
    assert not ours[~defined].any()
    # GUDHI's default weight: 1 per pair.
    unweighted = gr.Silhouette(resolution=30).fit_transform(dgms)
    ours = np.stack([math.sqrt(2) * vz.silhouette(d, grid, weights=np.ones(len(d))) for d in dgms])
    assert_close(ours, unweighted)


def test_silhouette_of_a_tiny_pair_does_not_underflow() -> None:
    # weight (1e-137)^2 times a tent of 1e-137 underflows to 0 unless the weights are normalized first.
    dgms = [np.array([[0.0, 1e-137]])]
    theirs = gr.Silhouette(weight=lambda pt: (pt[1] - pt[0]) ** 2, resolution=30).fit_transform(dgms)
    ours = math.sqrt(2) * vz.silhouettes(dgms, vz.filtration_grid(dgms, 30, endpoints=False), 2.0)
    assert theirs.max() > 0
    assert_close(ours, theirs)


@HYPOTHESIS
@given(st.lists(diagrams(max_size=10, essential=2), min_size=1, max_size=4), st.integers(1, 50))
def test_betti_curves_equal_gudhis_with_essential_classes(dgms: list[FloatArray], resolution: int) -> None:
    grid = vz.filtration_grid(dgms, resolution)
    theirs = gr.BettiCurve(predefined_grid=grid).fit_transform(dgms)
    np.testing.assert_array_equal(np.stack([vz.betti_curve(d, grid) for d in dgms]), theirs)
    np.testing.assert_array_equal(vz.betti_curves(dgms, grid), theirs)


@HYPOTHESIS
@given(st.lists(finite_diagrams(max_size=10, diagonal=False).filter(len), min_size=1, max_size=4))
def test_entropy_equals_gudhis_and_persims(dgms: list[FloatArray]) -> None:
    assert_close(np.array([vz.persistence_entropy(d) for d in dgms]), gr.Entropy().fit_transform(dgms).ravel())
    persim = persistent_entropy(dgms, normalize=True)
    ours = np.array([vz.persistence_entropy(d, normalize=True) for d in dgms])
    assert_close(ours[np.isfinite(persim)], persim[np.isfinite(persim)])  # persim: 0/0 for one bar
    assert_close(
        np.array([vz.persistence_entropy(d, base=2) for d in dgms]),
        gr.Entropy().fit_transform(dgms).ravel() / math.log(2),
    )


@HYPOTHESIS
@given(collections, st.floats(0.05, 2.0), st.integers(1, 12), st.integers(1, 12))
def test_density_image_equals_gudhis(dgms: list[FloatArray], sigma: float, nb: int, npers: int) -> None:
    def gudhi_weight(pt: FloatArray) -> float:
        return float(pt[1] ** 2)

    fitted = gr.PersistenceImage(bandwidth=sigma, weight=gudhi_weight, resolution=[nb, npers]).fit(dgms)
    b0, b1, p0, p1 = fitted.im_range_fixed_
    theirs = fitted.transform(dgms)
    ours = np.stack(
        [
            images.persistence_image(
                d, np.linspace(b0, b1, nb), np.linspace(p0, p1, npers), sigma, weight=lambda b, p: p**2
            ).ravel()
            for d in dgms
        ]
    )
    assert_close(ours, theirs, 1e-10)


@HYPOTHESIS
@given(collections, st.floats(0.05, 1.0), st.sampled_from([0.1, 0.25, 0.5]))
def test_pixel_image_equals_persims(dgms: list[FloatArray], sigma: float, pixel: float) -> None:
    imager = PersistenceImager(pixel_size=pixel, kernel_params={"sigma": [[sigma**2, 0.0], [0.0, sigma**2]]})
    imager.fit(dgms)
    assume(min(imager.resolution) > 0)  # persim makes 0 pixels of a range of one value
    theirs = np.stack(imager.transform(dgms))  # persim: [birth, persistence], weight = persistence
    edges_b, edges_p = imager._bpnts, imager._ppnts
    ours = np.stack(
        [images.persistence_image_pixels(d, edges_b, edges_p, sigma, weight=lambda b, p: p).T for d in dgms]
    )
    # persim takes 2-D differences of CDF products (cancellation far from a pair): compare at its precision.
    assert_close(ours, theirs, 1e-9)


# --------------------------------------------------------------------------- conventions and refusals


@HYPOTHESIS
@given(finite_diagrams(), finite_diagrams())
def test_pairs_on_the_diagonal_add_nothing(d: FloatArray, extra: FloatArray) -> None:
    padded = np.concatenate([d, np.column_stack([extra[:, 0], extra[:, 0]])])
    grid = np.linspace(-5, 9, 25)
    np.testing.assert_array_equal(vz.betti_curve(padded, grid), vz.betti_curve(d, grid))
    np.testing.assert_array_equal(vz.landscape(padded, grid, 3), vz.landscape(d, grid, 3))
    np.testing.assert_allclose(vz.silhouette(padded, grid, 2.0), vz.silhouette(d, grid, 2.0), rtol=1e-12, atol=1e-15)
    stacked = vz.stack([d, padded])
    assert stacked.shape == (2, max(len(d), len(padded)), 2)


def test_essential_classes_are_counted_or_refused() -> None:
    d = np.array([[0.0, 1.0], [0.5, np.inf]])
    grid = np.array([0.0, 0.5, 1.0, 5.0])
    np.testing.assert_array_equal(vz.betti_curve(d, grid), [1, 2, 1, 1])
    for call in (
        lambda: vz.landscape(d, grid),
        lambda: vz.silhouette(d, grid),
        lambda: vz.persistence_entropy(d),
        lambda: images.persistence_image(d, grid, grid, 0.1),
        lambda: images.persistence_image_histogram(d, (0, 1), (0, 1), 4, 0.1),
    ):
        with pytest.raises(ValueError, match="1 essential classes"):
            call()
    np.testing.assert_array_equal(vz.landscape(finite_part(d), grid), vz.landscape(d[:1], grid))
    np.testing.assert_array_equal(vz.landscape(cap_essential(d, 2.0), grid), vz.landscape([[0, 1], [0.5, 2]], grid))


def test_empty_diagrams_and_bad_input() -> None:
    grid = np.linspace(0, 1, 5)
    assert not vz.betti_curve([], grid).any() and not vz.landscape([], grid, 2).any()
    assert not vz.silhouette(np.zeros((0, 2)), grid).any() and vz.persistence_entropy([]) == 0.0
    assert not images.persistence_image([], grid, grid, 0.1).any()
    with pytest.raises(ValueError, match="below the diagonal"):
        vz.landscape([[1.0, 0.0]], grid)
    with pytest.raises(ValueError, match="NaN"):
        vz.betti_curve([[0.0, np.nan]], grid)
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        vz.landscape([[0, 1]], grid, 0)
    with pytest.raises(ValueError, match="power must be a positive number"):
        vz.silhouette([[0, 1]], grid, -1.0)
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        images.persistence_image([[0, 1]], grid, grid, 0)
    with pytest.raises(ValueError, match="no pairs to place a grid"):
        vz.filtration_grid([np.zeros((0, 2))], 10)
    np.testing.assert_array_equal(vz.filtration_grid([[[0.5, 0.5]]], 3), [0.5, 0.5, 0.5])
