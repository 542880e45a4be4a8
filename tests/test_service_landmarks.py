"""Large clouds through the service: streamed .npy/Parquet uploads and landmark jobs (real Ray + Serve + HTTP).

The landmark results are checked against an independent sequential greedy max-min in NumPy: the same
landmarks, the same covering radius eps, and the same diagrams as the engine run on those landmarks.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.service import REPO_ROOT, ServiceProcess, wait_done

from tda_ray.client import Client
from tda_ray.engine import vietoris_rips

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

MAX_UPLOAD = 1_000_000  # JSON/text bodies
MAX_STREAM = 12_000_000  # streamed .npy/Parquet bodies
MAX_POINTS = 50_000  # exact jobs


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        tmp_path_factory.mktemp("landmark-service"),
        max_upload_bytes=MAX_UPLOAD,
        max_stream_upload_bytes=MAX_STREAM,
        max_points=MAX_POINTS,
        memory_limit_bytes=512 * 2**20,
    )
    svc.start()
    yield svc
    code = svc.stop()
    assert code == 0, f"server did not shut down cleanly ({code}):\n{svc.log_text()[-3000:]}"


@pytest.fixture(scope="module")
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def chunked(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def noisy_circles(n: int, seed: int) -> np.ndarray:
    """Two linked-looking circles in R^3 with noise: clear H1 features at a scale landmarks resolve."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    half = n // 2
    X = np.zeros((n, 3))
    X[:half] = np.c_[np.cos(t[:half]), np.sin(t[:half]), np.zeros(half)]
    X[half:] = np.c_[1 + np.cos(t[half:]), np.zeros(n - half), np.sin(t[half:])]
    return X + rng.normal(scale=0.02, size=X.shape)


def greedy_maxmin(X: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Sequential farthest-point sampling from the lexicographically smallest point; (indices, eps)."""
    first = int(np.lexsort(X.T[::-1])[0])
    idx = [first]
    d2 = ((X - X[first]) ** 2).sum(axis=1)
    while len(idx) < k and d2.max() > 0:
        nxt = int(np.argmax(d2))
        idx.append(nxt)
        np.minimum(d2, ((X - X[nxt]) ** 2).sum(axis=1), out=d2)
    return np.array(idx), math.sqrt(float(d2.max()))


def as_arrays(diagrams: list[list[list[float | None]]]) -> list[np.ndarray]:
    return [
        np.array([[b, math.inf if d is None else d] for b, d in dgm], dtype=np.float64).reshape(-1, 2)
        for dgm in diagrams
    ]


def sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])] if a.size else a


def submit(http: httpx.Client, pc_id: str, **params: Any) -> dict[str, Any]:
    r = http.post("/v1/jobs", json={"pointcloud_id": pc_id, "params": params})
    assert r.status_code == 202, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def big_cloud() -> np.ndarray:
    return noisy_circles(200_000, seed=3)  # 4.8 MB as .npy: over MAX_UPLOAD, under MAX_STREAM


@pytest.fixture(scope="module")
def big_pc(http: httpx.Client, big_cloud: np.ndarray) -> str:
    # Sent chunked (no Content-Length): the ingress writes it to storage as it arrives.
    r = http.post(
        "/v1/pointclouds",
        params={"name": "circles"},
        content=chunked(npy(big_cloud)),
        headers={"content-type": "application/x-npy"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["n_points"], body["dim"], body["source"], body["name"]) == (200_000, 3, "npy", "circles")
    return str(body["id"])


def test_landmark_job_equals_sequential_greedy_maxmin(http: httpx.Client, big_cloud: np.ndarray, big_pc: str) -> None:
    job = submit(http, big_pc, maxdim=1, landmarks=400)
    assert job["params"]["landmarks"] == 400
    done = wait_done(http, job["id"], 300)
    assert done["status"] == "succeeded", done
    res = http.get(f"/v1/jobs/{job['id']}/result").json()
    lm = res["landmarks"]
    idx, eps = greedy_maxmin(big_cloud, 400)
    assert lm["count"] == 400 and lm["requested"] == 400 and lm["n_points"] == 200_000
    assert lm["eps"] == pytest.approx(eps, rel=1e-9)
    assert lm["bottleneck_bound"] == pytest.approx(2 * eps, rel=1e-9)
    assert res["n_points"] == 200_000 and res["dim"] == 3
    want = vietoris_rips(big_cloud[idx], maxdim=1).diagrams
    for got, ref in zip(as_arrays(res["diagrams"]), want, strict=True):
        np.testing.assert_allclose(sorted_rows(got), sorted_rows(ref), rtol=1e-6)
    # Two circles: two long-lived H1 classes survive the landmark approximation.
    h1 = as_arrays(res["diagrams"])[1]
    assert int(((h1[:, 1] - h1[:, 0]) > 0.5).sum()) == 2


def test_exact_job_on_a_cloud_over_max_points_is_refused(http: httpx.Client, big_pc: str) -> None:
    r = http.post("/v1/jobs", json={"pointcloud_id": big_pc, "params": {"maxdim": 1}})
    assert r.status_code == 422, r.text
    assert "landmarks" in r.json()["detail"]


@pytest.mark.parametrize("bad", [0, -3, "many", 1.5, True, [10]])
def test_bad_landmarks_parameter_is_422(http: httpx.Client, big_pc: str, bad: Any) -> None:
    r = http.post("/v1/jobs", json={"pointcloud_id": big_pc, "params": {"maxdim": 1, "landmarks": bad}})
    assert r.status_code == 422, r.text
    assert "landmarks" in json.dumps(r.json()["detail"])


def test_parquet_stream_and_auto_landmarks_on_a_small_cloud_equal_exact(http: httpx.Client) -> None:
    X = np.random.default_rng(5).normal(size=(300, 2)).astype(np.float32)
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": X[:, 0], "y": X[:, 1]}), buf, row_group_size=64)
    r = http.post("/v1/pointclouds", content=buf.getvalue(), headers={"content-type": "application/vnd.apache.parquet"})
    assert r.status_code == 201, r.text
    assert (r.json()["n_points"], r.json()["dim"], r.json()["source"]) == (300, 2, "parquet")
    # "auto" asks for more landmarks than there are points: every point is one, eps = 0, diagrams exact.
    job = submit(http, r.json()["id"], maxdim=1, landmarks="auto")
    assert wait_done(http, job["id"], 300)["status"] == "succeeded"
    res = http.get(f"/v1/jobs/{job['id']}/result").json()
    assert res["landmarks"]["count"] == 300 and res["landmarks"]["eps"] == 0.0
    assert res["landmarks"]["requested"] == 1000  # auto for maxdim 1
    want = vietoris_rips(X.astype(np.float64), maxdim=1).diagrams
    for got, ref in zip(as_arrays(res["diagrams"]), want, strict=True):
        np.testing.assert_allclose(sorted_rows(got), sorted_rows(ref), rtol=1e-6)
    # The same cloud through an exact job gives the same diagrams, and no landmarks object.
    exact = submit(http, r.json()["id"], maxdim=1)
    assert wait_done(http, exact["id"])["status"] == "succeeded"
    res2 = http.get(f"/v1/jobs/{exact['id']}/result").json()
    assert res2["landmarks"] is None and res2["diagrams"] == res["diagrams"]


def test_multipart_npy_over_the_text_limit_streams_but_csv_is_413(http: httpx.Client) -> None:
    X = np.random.default_rng(6).normal(size=(60_000, 3))  # 1.44 MB
    r = http.post("/v1/pointclouds", files={"file": ("big.npy", npy(X))})
    assert r.status_code == 201, r.text
    assert r.json()["n_points"] == 60_000
    csv = "\n".join(",".join(f"{v:.6f}" for v in row) for row in X).encode()
    r = http.post("/v1/pointclouds", files={"file": ("big.csv", csv)})
    assert r.status_code == 413, r.text
    assert "text uploads" in r.json()["detail"]


BAD_STREAMS = [
    ("random bytes", b"\x00\x01garbage" * 100, "application/octet-stream", 422, "not a .npy or parquet"),
    ("parquet announced, npy sent", npy(np.zeros((3, 2))), "application/vnd.apache.parquet", 422, "parquet"),
    ("npy announced, parquet sent", b"PAR1" + b"\x00" * 50, "application/x-npy", 422, "npy"),
    ("NaN", npy(np.array([[0.0, 1.0], [np.nan, 2.0]])), "application/x-npy", 422, "nan"),
    ("inf", npy(np.array([[0.0, np.inf]])), "application/x-npy", 422, "inf"),
    ("1-D", npy(np.arange(5.0)), "application/x-npy", 422, "2-d"),
    ("strings", npy(np.array([["a", "b"]])), "application/x-npy", 422, "numeric"),
    ("truncated", npy(np.zeros((100, 3)))[:-40], "application/x-npy", 422, "truncated"),
    ("empty", npy(np.zeros((0, 3))), "application/x-npy", 422, "empty"),
    ("corrupt parquet", b"PAR1" + b"\x07" * 200 + b"PAR1", "application/octet-stream", 422, "parquet"),
    ("text parquet column", None, "application/vnd.apache.parquet", 422, "numeric"),
    ("empty body", b"", "application/x-npy", 422, "npy"),
]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "word"), [c[1:] for c in BAD_STREAMS], ids=[c[0] for c in BAD_STREAMS]
)
def test_bad_streamed_uploads(
    http: httpx.Client, service: ServiceProcess, body: bytes | None, ctype: str, status: int, word: str
) -> None:
    if body is None:
        buf = io.BytesIO()
        pq.write_table(pa.table({"label": ["a", "b"]}), buf)
        body = buf.getvalue()
    r = http.post("/v1/pointclouds", content=body, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert word in json.dumps(r.json()["detail"]).lower(), r.text
    # Nothing is left behind in storage by a refused upload.
    leftovers = list((service.state_dir / "storage" / "uploads").glob("*"))
    assert not leftovers, leftovers


def test_stream_over_the_stream_limit_is_413(http: httpx.Client) -> None:
    body = npy(np.zeros((MAX_STREAM // 24 + 100, 3)))
    r = http.post("/v1/pointclouds", content=body, headers={"content-type": "application/x-npy"})
    assert r.status_code == 413, r.text
    # Without Content-Length the body is counted as it arrives.
    r = http.post("/v1/pointclouds", content=chunked(body), headers={"content-type": "application/x-npy"})
    assert r.status_code == 413, r.text


def test_cancel_a_running_landmark_job(http: httpx.Client, big_pc: str) -> None:
    # 6000 landmarks, then Rips H1 on them: several seconds, long enough to cancel in flight.
    job = submit(http, big_pc, maxdim=1, landmarks=6000)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = http.get(f"/v1/jobs/{job['id']}").json()
        if state["status"] == "running" and state["progress"] > 0:
            break
        assert state["status"] in ("queued", "running"), state
        time.sleep(0.05)
    r = http.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # The service keeps working: a small landmark job afterwards succeeds.
    after = submit(http, big_pc, maxdim=0, landmarks=50)
    assert wait_done(http, after["id"])["status"] == "succeeded"
    assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_two_landmark_jobs_at_once_both_finish(http: httpx.Client, big_pc: str) -> None:
    # Each job's shards are reserved as one placement group: two selections never deadlock on 2 CPUs.
    jobs = [submit(http, big_pc, maxdim=1, landmarks=n) for n in (150, 250, 100)]
    for j in jobs:
        assert wait_done(http, j["id"], 300)["status"] == "succeeded"
    counts = [http.get(f"/v1/jobs/{j['id']}/result").json()["landmarks"]["count"] for j in jobs]
    assert counts == [150, 250, 100]


def test_client_and_cli_stream_files_and_ask_for_landmarks(
    service: ServiceProcess, big_cloud: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "cloud.parquet"
    pq.write_table(pa.table({"x0": big_cloud[:, 0], "x1": big_cloud[:, 1], "x2": big_cloud[:, 2]}), path)
    # part_size 1 MiB (capped by the server's 1 MB part limit): the file goes as an upload session of parts.
    with Client(service.base_url, part_size=2**20) as c:
        pc = c.upload_file(path)
        assert pc["n_points"] == 200_000 and pc["source"] == "parquet"
        res = c.compute(pc["id"], maxdim=1, landmarks=120, timeout=300)
    _, eps = greedy_maxmin(big_cloud, 120)
    assert res.landmarks is not None and res.landmarks["count"] == 120
    assert res.landmarks["eps"] == pytest.approx(eps, rel=1e-9)
    assert res.n_points == 200_000

    npy_path = tmp_path / "cloud.npy"
    np.save(npy_path, big_cloud)
    cli = [sys.executable, "-m", "tda_ray.cli", "submit", str(npy_path), "--server", service.base_url]
    out = subprocess.run(
        [*cli, "--maxdim", "1", "--landmarks", "80", "--wait", "--timeout", "300"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=400,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["landmarks"]["count"] == 80 and got["n_points"] == 200_000
    assert got["landmarks"]["eps"] == pytest.approx(greedy_maxmin(big_cloud, 80)[1], rel=1e-9)
    bad = subprocess.run(
        [*cli, "--landmarks", "zero"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert bad.returncode == 2 and "landmarks" in bad.stderr


# --------------------------------------------------------------------------- upload sessions (parts)


def test_upload_session_parts_in_any_order_retried_and_completed_once(
    http: httpx.Client, service: ServiceProcess
) -> None:
    X = noisy_circles(30_000, seed=8)
    data = npy(X)  # 720 kB: three parts
    step = -(-len(data) // 3)
    cut = [data[i : i + step] for i in range(0, len(data), step)]
    assert len(cut) == 3
    r = http.post("/v1/uploads", json={"name": "in parts"})
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["status"] == "open" and up["parts"] == [] and up["max_part_bytes"] == MAX_UPLOAD
    for n in (2, 0, 1):
        r = http.put(f"/v1/uploads/{up['id']}/parts/{n}", content=cut[n])
        assert r.status_code == 200 and r.json() == {"part": n, "size": len(cut[n])}, r.text
    # A retried part replaces the earlier copy.
    assert http.put(f"/v1/uploads/{up['id']}/parts/1", content=cut[1]).status_code == 200
    state = http.get(f"/v1/uploads/{up['id']}").json()
    assert [p["part"] for p in state["parts"]] == [0, 1, 2] and state["received_bytes"] == len(data)
    r = http.post(f"/v1/uploads/{up['id']}/complete")
    assert r.status_code == 201, r.text
    pc = r.json()
    assert (pc["n_points"], pc["dim"], pc["name"], pc["source"]) == (30_000, 3, "in parts", "npy")
    # Completing again answers the same cloud; the parts are gone; no more parts are taken.
    again = http.post(f"/v1/uploads/{up['id']}/complete")
    assert again.status_code == 201 and again.json()["id"] == pc["id"]
    state = http.get(f"/v1/uploads/{up['id']}").json()
    assert state["status"] == "completed" and state["pointcloud_id"] == pc["id"] and state["parts"] == []
    assert http.put(f"/v1/uploads/{up['id']}/parts/3", content=b"x").status_code == 409
    assert not list((service.state_dir / "storage" / "upload-sessions").glob(f"{up['id']}*"))
    # The stored cloud is the uploaded one: an exact job on it equals the engine on X.
    job = submit(http, pc["id"], maxdim=0, threshold=0.05)
    assert wait_done(http, job["id"], 300)["status"] == "succeeded"
    got = as_arrays(http.get(f"/v1/jobs/{job['id']}/result").json()["diagrams"])[0]
    np.testing.assert_array_equal(got, vietoris_rips(X, maxdim=0, threshold=0.05).diagrams[0])


def test_upload_session_errors(http: httpx.Client) -> None:
    up = http.post("/v1/uploads", json={}).json()
    base = f"/v1/uploads/{up['id']}"
    data = npy(noisy_circles(1000, seed=9))
    half = len(data) // 2
    assert http.put(f"{base}/parts/0", content=data[:half]).status_code == 200
    assert http.put(f"{base}/parts/2", content=b"tail").status_code == 200
    r = http.post(f"{base}/complete")
    assert r.status_code == 422 and "missing part(s) [1]" in r.json()["detail"]
    # Bad content is refused at completion and the session stays open for a corrected part.
    assert http.put(f"{base}/parts/1", content=b"garbage").status_code == 200
    r = http.post(f"{base}/complete")
    assert r.status_code == 422 and "truncated" in r.json()["detail"], r.text
    assert http.get(base).json()["status"] == "open"
    assert http.put(f"{base}/parts/2", content=b"").status_code == 422  # empty part
    assert http.put(f"{base}/parts/-1", content=b"x").status_code == 422
    assert http.put(f"{base}/parts/100000", content=b"x").status_code == 422
    assert http.put(f"{base}/parts/3", content=b"x" * (MAX_UPLOAD + 1)).status_code == 413
    r = http.delete(base)
    assert r.status_code == 200 and r.json()["status"] == "aborted"
    assert http.delete(base).status_code == 409
    assert http.post(f"{base}/complete").status_code == 409
    assert http.get(f"/v1/uploads/{'0' * 32}").status_code == 404
    assert http.put(f"/v1/uploads/{'0' * 32}/parts/0", content=b"x").status_code == 404
    assert http.post("/v1/uploads", json={"name": "x" * 201}).status_code == 422
    assert http.post("/v1/uploads", json={"other": 1}).status_code == 422
