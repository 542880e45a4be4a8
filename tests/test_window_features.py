"""One window's features (what the Ray window workers compute): equal to ripser.py's diagrams read the same
way, and the same whether the engine collapses the window's edges first or not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import ripser

from tda_ray.engine import windows
from tda_ray.engine.windows import FILTRATION_CAP, LONG_BAR, window_features


def cloud(points: np.ndarray, scale: float, maxdim: int = 1, kind: str = "betti_curve") -> dict[str, Any]:
    return {"points": points.tolist(), "maxdim": maxdim, "scale": scale, "vector": {"kind": kind, "bins": 16}}


def delay_window(n: int, seed: int, dim: int = 2, delay: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n + dim * delay)
    x = np.sin(2 * np.pi * t / 40) + rng.normal(scale=0.1, size=t.size)
    return np.column_stack([x[i * delay : i * delay + n] for i in range(dim)])


WINDOWS = [
    ("delay-2d", delay_window(114, 1), 1.2),
    ("delay-3d", delay_window(90, 2, dim=3), 1.5),
    ("ties", np.round(np.random.default_rng(3).normal(size=(60, 2)), 1), 0.8),
    ("duplicates", np.repeat(np.random.default_rng(4).normal(size=(20, 2)), 3, axis=0), 1.0),
    ("5-d", np.random.default_rng(5).normal(size=(70, 5)), 2.0),
    ("one point", np.zeros((1, 2)), 1.0),
]


@pytest.mark.parametrize(("name", "points", "scale"), WINDOWS, ids=[w[0] for w in WINDOWS])
@pytest.mark.parametrize("kind", ["betti_curve", "landscape"])
def test_collapsing_the_edges_changes_no_feature(
    name: str, points: np.ndarray, scale: float, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = window_features(cloud(points, scale, kind=kind))
    monkeypatch.setattr(windows, "COLLAPSE_MAX_AMBIENT_DIM", 0)  # "auto": no collapse in H0+H1
    plain = window_features(cloud(points, scale, kind=kind))
    assert fast["n_points"] == plain["n_points"] == len(points)
    assert fast["features"] == pytest.approx(plain["features"], rel=1e-12, abs=1e-12)
    assert fast["vector"] == pytest.approx(plain["vector"], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("name", "points", "scale"), WINDOWS[:5], ids=[w[0] for w in WINDOWS[:5]])
def test_features_are_ripsers_diagrams_cut_at_the_scale(name: str, points: np.ndarray, scale: float) -> None:
    cap = FILTRATION_CAP * scale  # ripser.py rounds distances to float32: agreement to about 1e-7
    dgms = ripser.ripser(points, maxdim=1, thresh=cap)["dgms"]
    got = window_features(cloud(points, scale))["features"]
    for k, d in enumerate(dgms):
        essential = ~np.isfinite(d[:, 1])
        life = np.where(essential, cap - d[:, 0], d[:, 1] - d[:, 0])
        if k == 0:
            life[np.flatnonzero(essential)[:1]] = np.inf  # the component that never dies
        finite = life[np.isfinite(life)]
        assert got[f"betti_{k}"] == np.count_nonzero(life >= LONG_BAR * scale)
        assert got[f"total_persistence_{k}"] == pytest.approx(finite.sum() / scale, rel=1e-6, abs=1e-9)
        assert got[f"max_lifetime_{k}"] == pytest.approx(finite.max() / scale if finite.size else 0.0, rel=1e-6)
