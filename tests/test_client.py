"""tda_ray.client.Client and the `tda-ray submit` CLI against a real running service (local Ray + Serve)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support.service import REPO_ROOT, ServiceProcess, free_port, wait_for

from tda_ray.client import ApiError, Client, JobFailed, Result
from tda_ray.engine import vietoris_rips

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path_factory.mktemp("client-service"))
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[Client]:
    with Client(service.base_url) as c:
        yield c


def cloud(n: int, seed: int, d: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def assert_matches_engine(res: Result, X: np.ndarray, maxdim: int) -> None:
    want = vietoris_rips(X, maxdim=maxdim).diagrams
    assert len(res.diagrams) == len(want)
    for got, ref in zip(res.diagrams, want, strict=True):
        assert got.dtype == np.float64 and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)  # inf where the server sent null


def test_client_imports_no_server_code() -> None:
    code = (
        "import sys, tda_ray.client; "
        "server = ('ray', 'fastapi', 'sqlalchemy', 'kafka', 'tda_ray.service', 'tda_ray.distributed', "
        "'tda_ray._core'); "
        "bad = [m for m in server if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_compute_with_progress_bar(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    assert client.health()["status"] == "ok"
    X = cloud(200, seed=1)
    job = client.submit(X, maxdim=2)
    assert job["status"] == "queued"
    final = client.wait(job["id"], timeout=120, progress=True)
    assert final["status"] == "succeeded" and final["progress"] == 1.0
    assert "%" in capsys.readouterr().err  # the tqdm bar went to stderr
    res = client.result(job["id"])
    assert res.job_id == job["id"] and res.n_points == 200 and res.params["maxdim"] == 2
    assert_matches_engine(res, X, maxdim=2)
    assert res.betti == [int(np.isinf(d[:, 1]).sum()) for d in res.diagrams]
    assert client.diagram_image(job["id"], "svg").lstrip().startswith(b"<")
    assert client.diagram_image(job["id"], "png").startswith(b"\x89PNG")
    assert job["id"] in {j["id"] for j in client.jobs(status="succeeded", limit=500)["items"]}


def test_cocycles_through_the_service_equal_the_engine(client: Client) -> None:
    X = cloud(60, seed=4)
    job = client.submit(X, maxdim=2, coeff=3, cocycles=True)
    client.wait(job["id"], timeout=120)
    res = client.result(job["id"])
    ref = vietoris_rips(X, maxdim=2, coeff=3, cocycles=True)
    assert res.cocycles is not None and ref.cocycles is not None and res.cocycles[0] == []
    for d in (1, 2):
        assert len(res.cocycles[d]) == len(ref.cocycles[d]) == len(res.diagrams[d]) > 0
        for ours, theirs in zip(res.cocycles[d], ref.cocycles[d], strict=True):
            assert ours.dtype == np.int64 and np.array_equal(ours, theirs)
    plain = client.submit(X, maxdim=1)
    client.wait(plain["id"], timeout=120)
    assert client.result(plain["id"]).cocycles is None
    with pytest.raises(ApiError) as err:
        client.submit(X, maxdim=1, cocycles=True, collapse_edges=True)
    assert err.value.status_code == 422 and "collapse_edges" in str(err.value)


def test_a_volume_uploaded_as_an_image_gets_its_cubical_diagrams(client: Client) -> None:
    from tda_ray import cubical_persistence

    volume = np.random.default_rng(5).normal(size=(4, 6, 5))
    pc = client.upload(volume, kind="image")
    assert (pc["kind"], pc["shape"], pc["n_points"], pc["dim"]) == ("image", [4, 6, 5], 24, 5)
    job = client.submit(pc["id"], algorithm="cubical", maxdim=2, construction="T")
    client.wait(job["id"], timeout=120)
    ref = cubical_persistence(volume, maxdim=2, construction="T")
    got = client.result(job["id"]).diagrams
    assert len(got) == 3 and all(np.array_equal(a, b) for a, b in zip(got, ref.diagrams, strict=True))


def test_upload_files_and_reuse_the_cloud(client: Client, tmp_path: Path) -> None:
    X = cloud(70, seed=2, d=2)
    npy, csv = tmp_path / "c.npy", tmp_path / "c.csv"
    np.save(npy, X)
    np.savetxt(csv, X, delimiter=",")
    a, b = client.upload(npy), client.upload_file(csv, name="csv cloud")
    assert (a["n_points"], a["dim"], b["name"]) == (70, 2, "csv cloud")
    assert client.pointcloud(a["id"])["id"] == a["id"]
    res = client.compute(X, maxdim=1, timeout=120)
    assert_matches_engine(res, X, maxdim=1)
    j = client.submit(b["id"], maxdim=1)  # an uploaded id, not uploaded again
    client.wait(j["id"], timeout=120)
    np.testing.assert_allclose(
        np.nan_to_num(client.result(j["id"]).diagrams[1], posinf=-1), np.nan_to_num(res.diagrams[1], posinf=-1)
    )


def test_errors_carry_status_and_detail(client: Client) -> None:
    with pytest.raises(ApiError) as e:
        client.upload(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    assert e.value.status_code == 422 and "non-finite" in str(e.value)
    pc = client.upload(cloud(10, seed=3))
    with pytest.raises(ApiError) as e:
        client.submit(pc["id"], maxdim=99)
    assert e.value.status_code == 422 and "maxdim" in str(e.value)
    with pytest.raises(ApiError) as e:
        client.submit(pc["id"], coeff=6)
    assert e.value.status_code == 422 and "prime" in str(e.value)
    with pytest.raises(ApiError) as e:
        client.result("0" * 32)
    assert e.value.status_code == 404
    with pytest.raises(ValueError, match="numeric"):
        client.upload(np.array([["a", "b"]]))


def test_wait_raises_for_cancelled_jobs_and_times_out(client: Client) -> None:
    job = client.submit(cloud(3000, seed=4), maxdim=1)
    with pytest.raises(TimeoutError):
        client.wait(job["id"], timeout=0.3)
    with pytest.raises(ApiError) as e:
        client.result(job["id"])
    assert e.value.status_code == 409
    assert client.cancel(job["id"])["status"] == "cancelled"
    with pytest.raises(JobFailed) as failed:
        client.wait(job["id"], timeout=30)
    assert failed.value.job["status"] == "cancelled"
    assert client.wait(job["id"], timeout=30, raise_on_failure=False)["status"] == "cancelled"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tda_ray.cli", *args], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )


def test_cli_submit(service: ServiceProcess, tmp_path: Path) -> None:
    X = cloud(90, seed=5)
    path = tmp_path / "points.csv"
    np.savetxt(path, X, delimiter=",", fmt="%.17g")
    # Without --wait: the queued job as JSON.
    out = _cli("submit", str(path), "--server", service.base_url, "--maxdim", "1")
    assert out.returncode == 0, out.stderr
    queued = json.loads(out.stdout)
    assert queued["status"] == "queued" and queued["params"]["maxdim"] == 1
    # With --wait: the result as JSON, death null for essential classes.
    out = _cli("submit", str(path), "--server", service.base_url, "--maxdim", "2", "--wait")
    assert out.returncode == 0, out.stderr
    res = Result.from_json(json.loads(out.stdout))
    assert_matches_engine(res, X, maxdim=2)
    with Client(service.base_url) as c:
        wait_for(lambda: c.job(queued["id"])["status"] == "succeeded", 60, "the first CLI job")


def test_cli_submit_errors(service: ServiceProcess, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,nan\n")
    out = _cli("submit", str(bad), "--server", service.base_url, "--maxdim", "1")
    assert out.returncode == 2 and "non-finite" in out.stderr and "Traceback" not in out.stderr
    good = tmp_path / "good.csv"
    good.write_text("1,2\n3,4\n")
    out = _cli("submit", str(good), "--server", service.base_url, "--maxdim", "9")
    assert out.returncode == 2 and "maxdim" in out.stderr
    out = _cli("submit", str(good), "--server", f"http://127.0.0.1:{free_port()}", "--maxdim", "1")
    assert out.returncode == 1 and "cannot reach" in out.stderr and "Traceback" not in out.stderr
    out = _cli("submit", str(tmp_path / "missing.csv"), "--server", service.base_url)
    assert out.returncode == 2 and "no such file" in out.stderr
