"""Distributed farthest-point landmarks (tda_ray.landmarks) on a real local Ray.

The selection is checked against a plain sequential greedy max-min in NumPy (same start point, exact
equality), eps against a brute-force covering radius, and Rips on the landmarks against exact diagrams
through the stability bound d_B <= 2 eps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gudhi
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import ray_clusters

from tda_ray.distributed import landmarks as lm
from tda_ray.distributed.sampling import farthest_point_sample
from tda_ray.engine import CancelToken, EngineCancelled, vietoris_rips
from tda_ray.engine.params import AUTO_LANDMARKS, RipsParams
from tda_ray.io.blocks import SourceInfo, probe_source

pytestmark = [pytest.mark.ray]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_clusters.local_ray(num_cpus=2):
        yield


def greedy_reference(X: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Sequential greedy max-min from the lexicographically smallest point, distances summed per coordinate."""
    first = int(np.lexsort(X.T[::-1])[0])

    def sq(p: np.ndarray) -> np.ndarray:
        acc = (X[:, 0] - p[0]) ** 2
        for j in range(1, X.shape[1]):
            acc = acc + (X[:, j] - p[j]) ** 2
        out: np.ndarray = acc
        return out

    chosen = [first]
    d2 = sq(X[first])
    while len(chosen) < n and d2.max() > 0:
        i = int(np.argmax(d2))
        chosen.append(i)
        d2 = np.minimum(d2, sq(X[i]))
    return X[chosen], float(np.sqrt(d2.max()))


def covering_radius(X: np.ndarray, L: np.ndarray, chunk: int = 20_000) -> float:
    worst = 0.0
    for i in range(0, len(X), chunk):
        block = X[i : i + chunk]
        d2 = ((block[:, None, :] - L[None, :, :]) ** 2).sum(-1).min(axis=1)
        worst = max(worst, float(d2.max()))
    return float(np.sqrt(worst))


def bottleneck(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Bottleneck distance, max over dimensions; essential classes are matched among themselves."""
    worst = 0.0
    for da, db in zip(a, b, strict=True):
        ia, ib = np.isinf(da[:, 1]), np.isinf(db[:, 1])
        assert ia.sum() == ib.sum(), "different numbers of essential classes"
        births = np.abs(np.sort(da[ia, 0]) - np.sort(db[ib, 0]))
        worst = max(worst, float(births.max()) if births.size else 0.0, gudhi.bottleneck_distance(da[~ia], db[~ib]))
    return worst


def torus_cloud(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 2 * np.pi, (2, n))
    X = np.c_[(2 + np.cos(v)) * np.cos(u), (2 + np.cos(v)) * np.sin(u), np.sin(v)]
    out: np.ndarray = X + rng.normal(scale=0.02, size=X.shape)
    return out


# --------------------------------------------------------------------------- parameters


def test_landmark_counts() -> None:
    auto = [RipsParams.parse(landmarks="auto", maxdim=k).landmark_count() for k in range(5)]
    assert auto == [*AUTO_LANDMARKS, AUTO_LANDMARKS[-1]]
    assert RipsParams.parse(landmarks=" AUTO ", maxdim=1).landmark_count() == AUTO_LANDMARKS[1]
    assert RipsParams.parse(landmarks=np.int64(7)).landmark_count() == 7
    assert RipsParams.parse(landmarks=700).landmark_count(n_points=300) == 300
    assert RipsParams.parse().landmark_count() is None
    for bad in (0, -3, 2.5, True, "many"):
        with pytest.raises(ValueError, match="landmarks must be a positive integer or 'auto'"):
            RipsParams.parse(landmarks=bad)


# --------------------------------------------------------------------------- exactness of the selection


@pytest.mark.parametrize(("n", "dim", "k", "candidates", "workers"), [(3000, 2, 120, 2, 2), (2500, 5, 60, 16, 3)])
def test_selection_equals_sequential_greedy(
    local_ray: None, n: int, dim: int, k: int, candidates: int, workers: int
) -> None:
    X = np.random.default_rng(n).normal(size=(n, dim))
    sample = farthest_point_sample(X, k, candidates=candidates, n_workers=workers, rows_per_block=400)
    ref, ref_eps = greedy_reference(X, k)
    np.testing.assert_array_equal(sample.landmarks, ref)
    assert sample.eps == ref_eps
    assert sample.n_points == n and sample.dim == dim and sample.n_landmarks == k
    assert sample.n_workers == workers
    # Batched acceptance: fewer passes than landmarks (only with few candidates can it approach k).
    assert sample.rounds <= k


def test_duplicates_stop_when_everything_is_covered(local_ray: None) -> None:
    base = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    X = np.repeat(base, 50, axis=0)
    sample = farthest_point_sample(X, 10, n_workers=2, rows_per_block=30)
    assert sample.n_landmarks == 4 and sample.eps == 0.0
    np.testing.assert_array_equal(np.unique(sample.landmarks, axis=0), np.unique(base, axis=0))


# --------------------------------------------------------------------------- sources


def test_sources_give_the_same_landmarks(local_ray: None, tmp_path: Path) -> None:
    X = np.random.default_rng(11).uniform(-5, 5, size=(5000, 3))
    ref, ref_eps = greedy_reference(X, 50)

    np.save(tmp_path / "c.npy", X)
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    np.save(tmp_path / "f32.npy", X.astype(np.float32))
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, part in enumerate(np.array_split(X, 3)):
        np.save(shards / f"part-{i}.npy", part)
    pq.write_table(pa.table({"x": X[:, 0], "y": X[:, 1], "z": X[:, 2], "label": ["p"] * len(X)}), tmp_path / "cols.pq")
    pq.write_table(pa.table({"xyz": X.tolist()}), tmp_path / "list.parquet")

    for source, cols in [
        (str(tmp_path / "c.npy"), None),
        (tmp_path / "f.npy", None),
        (str(shards), None),
        (str(tmp_path / "cols.pq"), ["x", "y", "z"]),
        (str(tmp_path / "list.parquet"), None),
    ]:
        s = farthest_point_sample(source, 50, columns=cols, rows_per_block=700)
        np.testing.assert_array_equal(s.landmarks, ref, err_msg=str(source))
        assert s.eps == ref_eps and s.n_points == 5000

    s32 = farthest_point_sample(str(tmp_path / "f32.npy"), 50)
    np.testing.assert_array_equal(s32.landmarks, greedy_reference(X.astype(np.float32).astype(np.float64), 50)[0])


def test_probe_source_reads_headers_only(tmp_path: Path) -> None:
    X = np.zeros((1234, 4))
    np.save(tmp_path / "a.npy", X)
    assert probe_source(tmp_path / "a.npy") == SourceInfo(1234, 4, "npy", 1)
    pq.write_table(pa.table({"p": X.tolist()}), tmp_path / "l.parquet")
    assert probe_source(tmp_path / "l.parquet") == SourceInfo(1234, 4, "parquet", 1)
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1]}), tmp_path / "c.parquet")
    assert probe_source(tmp_path / "c.parquet").dim == 2
    (tmp_path / "t.txt").write_text("1 2\n")
    with pytest.raises(ValueError, match=r"expected \.npy or Parquet"):
        probe_source(tmp_path / "t.txt")


def test_bad_sources_fail_clearly(local_ray: None, tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(300, 2))
    X[217, 1] = np.nan
    np.save(tmp_path / "nan.npy", X)
    with pytest.raises(ValueError, match="NaN or inf"):
        farthest_point_sample(str(tmp_path / "nan.npy"), 10, rows_per_block=100)
    np.save(tmp_path / "cube.npy", np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="2-D array"):
        farthest_point_sample(str(tmp_path / "cube.npy"), 10)
    with pytest.raises(FileNotFoundError):
        farthest_point_sample(str(tmp_path / "missing.npy"), 10)
    (tmp_path / "d.lower_distance_matrix").write_text("\n1\n2,3\n")
    with pytest.raises(ValueError, match="distance matrix"):
        farthest_point_sample(str(tmp_path / "d.lower_distance_matrix"), 2)
    pq.write_table(pa.table({"x": [1.0], "name": ["a"]}), tmp_path / "mixed.parquet")
    with pytest.raises(ValueError, match="type string"):
        farthest_point_sample(str(tmp_path / "mixed.parquet"), 2)
    with pytest.raises(ValueError, match="no column"):
        farthest_point_sample(str(tmp_path / "mixed.parquet"), 2, columns=["y"])
    with pytest.raises(ValueError, match="non-empty"):
        farthest_point_sample(np.zeros((0, 3)), 2)
    with pytest.raises(ValueError, match="maxdim"):
        lm.landmark_rips(np.zeros((5, 2)), 3, maxdim=-1)


def test_progress_and_cancel(local_ray: None) -> None:
    X = np.random.default_rng(1).normal(size=(4000, 2))
    seen: list[float] = []
    res = lm.landmark_rips(X, 100, maxdim=1, progress=seen.append)
    assert seen and seen == sorted(seen) and seen[0] >= 0.0 and seen[-1] == pytest.approx(1.0)
    assert res.n_landmarks == 100
    token = CancelToken()
    token.cancel()
    with pytest.raises(EngineCancelled):
        lm.landmark_rips(X, 100, maxdim=1, cancel=token)


def test_progress_of_the_rips_task_reaches_the_caller(local_ray: None) -> None:
    """With ``rips_cpus`` (the service's landmark jobs) Rips runs as its own task; its progress streams back."""
    X = np.random.default_rng(2).normal(size=(3000, 4))
    # Without edge collapse, so that the Rips step runs long enough to report on the way (collapsed, it is
    # over before its first report).
    params = RipsParams.parse(landmarks=400, maxdim=2, collapse_edges=False)
    seen: list[float] = []
    res = lm.run_landmark_rips(X, params, n_workers=1, rips_cpus=1, progress=seen.append)
    assert res.n_landmarks == 400
    rips_phase = [f for f in seen if 0.5 < f < 1.0]
    assert rips_phase, seen  # the Rips step (about a second here) reported while it ran
    assert seen == sorted(seen) and seen[-1] == 1.0
    ref = vietoris_rips(res.sample.landmarks, maxdim=2).diagrams
    for got, want in zip(res.diagrams, ref, strict=True):
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- diagrams within 2 eps


def test_landmark_diagram_within_two_eps_of_the_exact_one(local_ray: None) -> None:
    X = torus_cloud(900, seed=3)
    exact = vietoris_rips(X, maxdim=1).diagrams
    for k in (60, 200):
        res = lm.landmark_rips(X, k, maxdim=1, n_workers=2)
        assert res.n_landmarks == k and res.eps == pytest.approx(covering_radius(X, res.sample.landmarks))
        d = bottleneck(res.diagrams, exact)
        assert d <= res.bottleneck_bound + 1e-5, (k, d, res.eps)
        body = res.to_json_dict()
        assert body["n_points"] == 900 and body["landmarks"]["count"] == k
        assert body["landmarks"]["bottleneck_bound"] == pytest.approx(2 * res.eps)
        assert res.result.extras["landmarks"].eps == res.eps


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_200k_point_landmark_job(local_ray: None, tmp_path: Path) -> None:
    X = torus_cloud(200_000, seed=5)
    np.save(tmp_path / "torus.npy", X)
    res = lm.landmark_rips(str(tmp_path / "torus.npy"), 300, maxdim=1)
    assert res.sample.n_points == 200_000 and res.n_landmarks == 300
    L = res.sample.landmarks
    # eps is the exact covering radius of the landmarks over all 200,000 points.
    assert res.eps == pytest.approx(covering_radius(X, L), rel=1e-12)
    # The torus has two independent 1-cycles; on the landmarks they are the only bars longer than 2 eps.
    h1 = res.diagrams[1]
    assert np.sum((h1[:, 1] - h1[:, 0]) > res.bottleneck_bound) == 2
    # Subsample check: S = landmarks + 700 random points holds L, so L covers S within eps too and
    # the landmark diagram must lie within 2 eps of S's exact diagram.
    rng = np.random.default_rng(0)
    S = np.vstack([L, X[rng.choice(len(X), 700, replace=False)]])
    assert covering_radius(S, L) <= res.eps
    exact = vietoris_rips(S, maxdim=1).diagrams
    assert bottleneck(res.diagrams, exact) <= res.bottleneck_bound + 1e-5


def test_cli_rips_with_landmarks(local_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tda_ray import cli

    X = torus_cloud(3000, seed=8)
    np.save(tmp_path / "t.npy", X)
    assert cli.main(["rips", str(tmp_path / "t.npy"), "--landmarks", "80", "--maxdim", "1", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["n_points"] == 3000 and body["landmarks"]["count"] == 80
    _, eps = greedy_reference(X, 80)
    assert body["landmarks"]["eps"] == pytest.approx(eps)
    assert len(body["diagrams"]) == 2 and len(body["diagrams"][0]) == 80

    assert cli.main(["rips", str(tmp_path / "t.npy"), "--landmarks", "auto", "--maxdim", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {min(3000, AUTO_LANDMARKS[0])} landmarks of 3000 points, covering radius eps")

    (tmp_path / "d.distance_matrix").write_text("0 1\n1 0\n")
    assert cli.main(["rips", str(tmp_path / "d.distance_matrix"), "--landmarks", "5"]) == 2
    assert "not a distance matrix" in capsys.readouterr().err
