"""The analysis routes, in this process (the FastAPI app over a job service and a temp store; jobs run by the job
task itself, without Ray): vectors equal the engine's functions on the job's diagrams, distances equal ours and
GUDHI's, bad parameters are 422s naming the parameter, unfinished jobs 409, unknown ids 404; the barcode
pictures; the client methods and the CLI subcommands over the same app."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gudhi
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tda_ray
import tda_ray.client
from tda_ray.cli import main
from tda_ray.engine import vectorize
from tda_ray.engine.diagrams import finite_part
from tda_ray.engine.images import persistence_image
from tda_ray.service.http.app import create_app
from tda_ray.service.jobs import analysis
from tda_ray.service.jobs.service import JobService
from tda_ray.service.jobs.task import JobSpec, run_job
from tda_ray.service.settings import KafkaSettings, Settings


class FakeLink:
    def notify(self) -> None: ...

    def cancel(self, job_id: str) -> None: ...

    def stats(self) -> dict[str, Any] | None:
        return None


class Env:
    a: str
    b: str
    split: str
    queued: str

    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(
            database_url=f"sqlite:///{tmp / 'tda.db'}",
            storage_root=str(tmp / "storage"),
            kafka=KafkaSettings(enabled=False),
        ).resolved()
        self.service = JobService(self.settings)

    def job(self, points: np.ndarray, run: bool = True, **params: Any) -> str:
        pc = self.service.create_pointcloud(points, name=None)
        job = self.service.submit(pc.id, "vietoris_rips", {"maxdim": 1, **params})
        if run:
            (claim,) = [c for c in self.service.store.claim_queued("test", 10) if c.job_id == job.id]
            spec = JobSpec(job.id, claim.attempt, pc.id, claim.blob_key, claim.algorithm, claim.params)
            assert run_job(self.settings, spec)["outcome"] == "succeeded"
        return job.id

    def diagrams(self, job_id: str) -> list[np.ndarray]:
        return self.service.result(job_id).diagrams


def circle(n: int, seed: int, noise: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([np.cos(t), np.sin(t)]) + rng.normal(scale=noise, size=(n, 2))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(tmp_path_factory.mktemp("analysis"))
    e.a = e.job(circle(40, 1))
    e.b = e.job(circle(35, 2, noise=0.2))
    # Two clusters far apart, cut below their gap: two essential H0 classes against one.
    two = np.vstack([circle(15, 3), circle(15, 4) + 10.0])
    e.split = e.job(two, threshold=3.0)
    e.queued = e.job(circle(20, 5), run=False)
    yield e
    e.service.close()


@pytest.fixture(scope="module")
def http(env: Env) -> Iterator[TestClient]:
    with TestClient(create_app(env.service, FakeLink())) as c:
        yield c


def vectors(http: TestClient, job: str, **q: Any) -> dict[str, Any]:
    r = http.get(f"/v1/jobs/{job}/vectors", params=q)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


# --------------------------------------------------------------------------- vectors


def test_betti_curves_equal_the_engines(http: TestClient, env: Env) -> None:
    out = vectors(http, env.a, kind="betti_curve", n_bins=50)
    dgms = env.diagrams(env.a)
    assert [v["dim"] for v in out["vectors"]] == list(range(len(dgms))) == [0, 1]
    assert out["params"] == {"n_bins": 50, "t_min": None, "t_max": None}
    for v, d in zip(out["vectors"], dgms, strict=True):
        grid = vectorize.filtration_grid([d], 50)
        np.testing.assert_allclose(v["grid"], grid)
        np.testing.assert_array_equal(v["values"], vectorize.betti_curve(d, grid))
        assert all(type(x) is int for x in v["values"])
    assert out["vectors"][0]["values"][-1] >= 1  # the essential class counts


def test_landscapes_and_silhouettes_equal_the_engines_on_an_explicit_grid(http: TestClient, env: Env) -> None:
    d1 = finite_part(env.diagrams(env.a)[1])
    assert len(d1) > 0
    grid = np.linspace(0.1, 1.5, 30)
    land = vectors(http, env.a, kind="landscape", dim=1, n_bins=30, t_min=0.1, t_max=1.5, n_layers=3)
    (v,) = land["vectors"]
    np.testing.assert_allclose(v["grid"], grid)
    np.testing.assert_allclose(v["values"], vectorize.landscape(d1, grid, 3))
    assert np.max(v["values"]) > 0
    sil = vectors(http, env.a, kind="silhouette", dim=1, n_bins=30, t_min=0.1, t_max=1.5, power=2.0)
    np.testing.assert_allclose(sil["vectors"][0]["values"], vectorize.silhouette(d1, grid, 2.0))


def test_images_and_entropies_equal_the_engines(http: TestClient, env: Env) -> None:
    d1 = finite_part(env.diagrams(env.b)[1])
    (v,) = vectors(http, env.b, kind="image", dim=1, n_bins=12, sigma=0.05)["vectors"]
    expected = persistence_image(d1, v["birth_grid"], v["persistence_grid"], 0.05)
    assert np.shape(v["values"]) == (12, 12)
    np.testing.assert_allclose(v["values"], expected)
    np.testing.assert_allclose(v["birth_grid"], np.linspace(d1[:, 0].min(), d1[:, 0].max(), 12))
    np.testing.assert_allclose(v["persistence_grid"][-1], np.max(d1[:, 1] - d1[:, 0]))
    ent = vectors(http, env.b, kind="entropy", normalize=True)["vectors"]
    for e, d in zip(ent, env.diagrams(env.b), strict=True):
        assert e["values"] == pytest.approx(vectorize.persistence_entropy(finite_part(d), normalize=True))


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ({"kind": "bars"}, "kind"),
        ({}, "kind"),
        ({"kind": "betti_curve", "n_bins": 0}, "n_bins"),
        ({"kind": "betti_curve", "n_bins": "many"}, "n_bins"),
        ({"kind": "betti_curve", "power": 2}, "power"),
        ({"kind": "entropy", "n_bins": 10}, "n_bins"),
        ({"kind": "image", "n_bins": 1000}, "n_bins"),
        ({"kind": "image", "sigma": 0}, "sigma"),
        ({"kind": "landscape", "t_min": 2, "t_max": 1}, "t_min"),
        ({"kind": "landscape", "t_max": "nan"}, "t_max"),
        ({"kind": "betti_curve", "t_max": -1}, "give both t_min and t_max"),
        ({"kind": "landscape", "dim": 5}, "dim 5"),
        ({"kind": "landscape", "colour": "red"}, "colour"),
    ],
)
def test_bad_vector_parameters_are_422_naming_them(
    http: TestClient, env: Env, query: dict[str, Any], word: str
) -> None:
    r = http.get(f"/v1/jobs/{env.a}/vectors", params=query)
    assert r.status_code == 422, r.text
    assert word in json.dumps(r.json()["detail"])


# --------------------------------------------------------------------------- distances


def test_distances_equal_ours_and_gudhis(http: TestClient, env: Env) -> None:
    a, b = env.diagrams(env.a), env.diagrams(env.b)
    r = http.get(f"/v1/jobs/{env.a}/distance/{env.b}")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["metric"] == "bottleneck" and out["p"] is None
    for row, da, db in zip(out["distances"], a, b, strict=True):
        assert not row["infinite"] and row["essential"] == [np.isinf(da[:, 1]).sum(), np.isinf(db[:, 1]).sum()]
        assert row["distance"] == pytest.approx(tda_ray.bottleneck_distance(da, db))
        assert row["distance"] == pytest.approx(gudhi.bottleneck_distance(da, db, e=0))
        assert row["distance"] > 0
    w = http.get(f"/v1/jobs/{env.a}/distance/{env.b}", params={"metric": "wasserstein", "p": 1, "dim": 1}).json()
    (row,) = w["distances"]
    assert w["internal_p"] == "inf" and w["p"] == 1
    from gudhi.wasserstein import wasserstein_distance as gudhi_wasserstein

    assert row["distance"] == pytest.approx(gudhi_wasserstein(a[1], b[1], order=1, internal_p=np.inf))
    same = http.get(f"/v1/jobs/{env.a}/distance/{env.a}").json()
    assert [x["distance"] for x in same["distances"]] == [0.0, 0.0]


def test_different_essential_counts_are_infinitely_far(http: TestClient, env: Env) -> None:
    out = http.get(f"/v1/jobs/{env.a}/distance/{env.split}", params={"dim": 0}).json()
    assert out["distances"] == [{"dim": 0, "distance": None, "infinite": True, "essential": [1, 2]}]


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ({"metric": "hausdorff"}, "metric"),
        ({"p": 2}, "wasserstein"),
        ({"metric": "wasserstein", "p": 0.5}, "p"),
        ({"metric": "wasserstein", "internal_p": "nan"}, "internal_p"),
        ({"dim": 3}, "dim 3"),
    ],
)
def test_bad_distance_parameters_are_422(http: TestClient, env: Env, query: dict[str, Any], word: str) -> None:
    r = http.get(f"/v1/jobs/{env.a}/distance/{env.b}", params=query)
    assert r.status_code == 422, r.text
    assert word in json.dumps(r.json()["detail"])


# --------------------------------------------------------------------------- states, pictures


def test_unfinished_jobs_are_409_and_unknown_ids_404(http: TestClient, env: Env) -> None:
    q = env.queued
    for url in (f"/v1/jobs/{q}/vectors?kind=entropy", f"/v1/jobs/{env.a}/distance/{q}", f"/v1/jobs/{q}/barcode.svg"):
        r = http.get(url)
        assert r.status_code == 409 and "not ready" in r.json()["detail"], r.text
    unknown = "0" * 32
    for url in (f"/v1/jobs/{unknown}/vectors?kind=entropy", f"/v1/jobs/{unknown}/distance/{env.a}"):
        assert http.get(url).status_code == 404


def test_barcodes_as_svg_and_png(http: TestClient, env: Env) -> None:
    svg = http.get(f"/v1/jobs/{env.a}/barcode.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    png = http.get(f"/v1/jobs/{env.a}/barcode.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert svg.content != http.get(f"/v1/jobs/{env.a}/diagram.svg").content


# --------------------------------------------------------------------------- client and CLI


@pytest.fixture
def client_over_app(http: TestClient, monkeypatch: pytest.MonkeyPatch) -> functools.partial[tda_ray.client.Client]:
    make = functools.partial(tda_ray.client.Client, transport=http._transport)
    monkeypatch.setattr(tda_ray.client, "Client", make)
    return make


def test_client_methods(env: Env, client_over_app: Any) -> None:
    with client_over_app("http://testserver") as c:
        out = c.vectors(env.a, "landscape", dim=1, n_layers=2)
        assert np.shape(out["vectors"][0]["values"]) == (2, 100)
        d = c.distance(env.a, env.b, "wasserstein", internal_p=2)
        assert d["internal_p"] == 2 and len(d["distances"]) == 2
        assert c.diagram_image(env.a, "png", picture="barcode").startswith(b"\x89PNG")
        with pytest.raises(tda_ray.client.ApiError, match="power"):
            c.vectors(env.a, "entropy", power=2)
        with pytest.raises(ValueError, match="picture"):
            c.diagram_image(env.a, "svg", picture="histogram")


def test_cli_subcommands(env: Env, client_over_app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vectors", env.a, "--kind", "betti_curve", "--dim", "0", "--n-bins", "7"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["vectors"][0]["values"]) == 7
    assert main(["distance", env.a, env.b, "--metric", "wasserstein", "--p", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["p"] == 1
    assert main(["vectors", env.a, "--kind", "entropy", "--n-bins", "3"]) == 2
    assert "n_bins" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["vectors", env.a, "--kind", "bars"])
    assert exc.value.code == 2


def test_curves_on_grid_pieces_equal_the_whole(http: TestClient, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Landscapes and silhouettes of many pairs go to the engine a piece of the grid at a time: same numbers."""
    d0 = finite_part(env.diagrams(env.a)[0])
    monkeypatch.setattr(analysis, "PAIRS_X_GRID", 64)
    land = vectors(http, env.a, kind="landscape", dim=0, n_bins=77, n_layers=2)["vectors"][0]
    np.testing.assert_allclose(land["values"], vectorize.landscape(d0, land["grid"], 2))
    sil = vectors(http, env.a, kind="silhouette", dim=0, n_bins=77)["vectors"][0]
    np.testing.assert_allclose(sil["values"], vectorize.silhouette(d0, sil["grid"]))


def test_the_wasserstein_distance_of_many_pairs_is_refused(env: Env) -> None:
    a, b = env.diagrams(env.a), env.diagrams(env.b)
    q = analysis.DistanceQuery(metric="wasserstein")
    with pytest.raises(ValueError, match="limit of 5 for the Wasserstein"):
        analysis.diagram_distances(a, b, q, max_pairs=5)
    (row,) = analysis.diagram_distances(a, b, analysis.DistanceQuery(dim=0), max_pairs=5)  # bottleneck: no limit
    assert row["distance"] == pytest.approx(tda_ray.bottleneck_distance(a[0], b[0]))


_numbers = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["x", ""]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from([*analysis.KIND_PARAMS["power"], "betti_curve", "landscape", "image", "entropy", "bars"]),
    extra=st.dictionaries(st.sampled_from([*analysis.KIND_PARAMS, "dim"]), _numbers, max_size=3),
)
def test_any_vector_query_is_answered_200_or_422(http: TestClient, env: Env, kind: str, extra: dict[str, Any]) -> None:
    """On a finished job, whatever the parameters: a vector or a 422 with a detail, never a 5xx."""
    r = http.get(f"/v1/jobs/{env.a}/vectors", params={"kind": kind, **extra})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.json()["detail"]
