"""The hardened HTTP surface, in this process (the FastAPI app over a job service and a temp store; no Ray):
the API key before the body, health without the key, strict job parameters, Idempotency-Key, admission at
submit, /v1/events limits and timestamps, decompression bombs and byte-bounded blocks.

Each test is a request the independent probe of `make run` sent (README "Hardening"); before the changes
they got a 422 instead of a 401, internals, a 500, a 503 after publishing, or a job that failed later.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from tda_ray.io.blocks import BLOCK_BYTES, iter_file_blocks
from tda_ray.service.http.app import create_app
from tda_ray.service.jobs.service import JobService
from tda_ray.service.settings import Settings

KEY = "s3cret-key"


class FakeLink:
    def notify(self) -> None: ...

    def cancel(self, job_id: str) -> None: ...

    def stats(self) -> dict[str, Any] | None:
        return {"name": "dispatcher-test", "alive": True, "in_flight": 0}


def make_service(tmp_path: Path, **kw: Any) -> JobService:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'tda.db'}",
        storage_root=str(tmp_path / "storage"),
        api_key=KEY,
        memory_limit_bytes=2 << 30,
        **kw,
    )
    return JobService(settings)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[JobService]:
    svc = make_service(tmp_path)
    yield svc
    svc.close()


@pytest.fixture
def http(service: JobService) -> Iterator[TestClient]:
    with TestClient(create_app(service, FakeLink()), headers={"X-API-Key": KEY}) as c:
        yield c


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def upload(http: TestClient, X: np.ndarray) -> str:
    r = http.post("/v1/pointclouds", json={"points": X.tolist()})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def job_count(service: JobService) -> int:
    return service.store.list_jobs(limit=1)[1]


# --------------------------------------------------------------------------- the API key, health


def test_the_key_is_checked_before_the_body_is_read(http: TestClient) -> None:
    anon = {"X-API-Key": ""}
    for path in ("/v1/jobs", "/v1/events", "/v1/pointclouds"):
        r = http.post(path, content=b"{not json", headers={**anon, "content-type": "application/json"})
        assert r.status_code == 401, (path, r.text)
        assert "API key" in r.json()["detail"]
    # Not even the size limit looks at the body first.
    huge = {"content-type": "application/json", "content-length": str(10**12)}
    assert http.post("/v1/events", content=b"{}", headers={**huge, "X-API-Key": "wrong"}).status_code == 401
    # With the key the same malformed body is a 422.
    r = http.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_health_without_the_key_says_only_status(http: TestClient) -> None:
    anon = http.get("/v1/health", headers={"X-API-Key": ""})
    assert anon.status_code == 200 and anon.json() == {"status": "ok"}
    full = http.get("/v1/health").json()
    assert full["status"] == "ok" and full["dispatcher"]["name"] == "dispatcher-test"
    assert "kafka" in full["components"]


# --------------------------------------------------------------------------- jobs: types, admission


@pytest.mark.parametrize("params", [{"maxdim": "1"}, {"maxdim": True}, {"maxdim": 1.0}, {"coeff": "2"}])
def test_job_parameters_are_never_coerced(http: TestClient, params: dict[str, Any]) -> None:
    pc = upload(http, np.eye(3))
    r = http.post("/v1/jobs", json={"pointcloud_id": pc, "params": params})
    assert r.status_code == 422, r.text
    assert next(iter(params)) in json.dumps(r.json()["detail"])


def test_work_that_can_never_fit_is_refused_at_submit(http: TestClient, service: JobService) -> None:
    # The probe's job: 3000 points, maxdim 3, no threshold -- accepted, then failed 5 s later.
    pc = upload(http, np.random.default_rng(0).normal(size=(3000, 3)))
    t0 = time.perf_counter()
    r = http.post("/v1/jobs", json={"pointcloud_id": pc, "params": {"maxdim": 3}})
    assert r.status_code == 422 and "too many simplices" in r.json()["detail"], r.text
    assert time.perf_counter() - t0 < 5.0
    assert job_count(service) == 0


def test_an_admitted_job_records_its_reservation(http: TestClient, service: JobService) -> None:
    small = upload(http, np.random.default_rng(1).normal(size=(50, 2)))
    r = http.post("/v1/jobs", json={"pointcloud_id": small, "params": {"maxdim": 1}})
    assert r.status_code == 202, r.text
    assert service.store.get_job(r.json()["id"]).memory_bytes == service.settings.job_memory_min_bytes
    big = upload(http, np.random.default_rng(2).normal(size=(6000, 3)))  # ~18M edges in the filtration
    r = http.post("/v1/jobs", json={"pointcloud_id": big, "params": {"maxdim": 1}})
    assert r.status_code == 202, r.text
    reserved = service.store.get_job(r.json()["id"]).memory_bytes
    assert reserved is not None and service.settings.job_memory_min_bytes < reserved <= 2 << 30


# --------------------------------------------------------------------------- Idempotency-Key


def test_a_retried_submit_returns_the_first_answer(http: TestClient, service: JobService) -> None:
    pc = upload(http, np.random.default_rng(3).normal(size=(30, 2)))
    body = {"pointcloud_id": pc, "params": {"maxdim": 1}}
    first = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "submit-1"})
    again = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "submit-1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert job_count(service) == 1
    other = http.post("/v1/jobs", json={**body, "params": {"maxdim": 0}}, headers={"Idempotency-Key": "submit-1"})
    assert other.status_code == 422 and "different request" in other.json()["detail"]
    assert http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "has space"}).status_code == 422
    assert http.post("/v1/jobs", json=body).json()["id"] != first.json()["id"]  # no key: a new job
    assert job_count(service) == 2


def test_a_failed_request_leaves_its_key_free(http: TestClient, service: JobService) -> None:
    body = {"pointcloud_id": "f" * 32, "params": {"maxdim": 1}}
    assert http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k404"}).status_code == 404
    # Only answers that succeeded are kept: the key runs the next request it comes with.
    pc = upload(http, np.eye(2))
    first = http.post("/v1/jobs", json={**body, "pointcloud_id": pc}, headers={"Idempotency-Key": "k404"})
    again = http.post("/v1/jobs", json={**body, "pointcloud_id": pc}, headers={"Idempotency-Key": "k404"})
    assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
    assert job_count(service) == 1


@pytest.mark.parametrize("kind", ["json", "npy"])
def test_a_retried_upload_stores_one_cloud(http: TestClient, service: JobService, kind: str) -> None:
    X = np.random.default_rng(4).normal(size=(40, 3))
    kwargs: dict[str, Any] = (
        {"json": {"points": X.tolist()}}
        if kind == "json"
        else {"content": npy(X), "headers": {"content-type": "application/x-npy"}}
    )
    headers = {**kwargs.pop("headers", {}), "Idempotency-Key": f"upload-{kind}"}
    first = http.post("/v1/pointclouds", headers=headers, **kwargs)
    again = http.post("/v1/pointclouds", headers=headers, **kwargs)
    assert first.status_code == again.status_code == 201, first.text
    assert first.json()["id"] == again.json()["id"]
    stored = list((Path(service.settings.storage_root) / "pointclouds").glob("*.npy"))
    assert len(stored) == 1


# --------------------------------------------------------------------------- /v1/events


def _event(i: int, **kw: Any) -> dict[str, Any]:
    return {"source_id": f"s-{i % 3}", "values": [float(i), 1.0], "event_id": f"e-{i}", **kw}


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z"])
def test_event_times_outside_the_range_are_422(http: TestClient, when: str) -> None:
    r = http.post("/v1/events", json={"events": [_event(0, event_time=when)]})
    assert r.status_code == 422, r.text
    assert "event_time" in json.dumps(r.json()["detail"])


def test_oversized_events_are_refused_by_their_limit(tmp_path: Path) -> None:
    svc = make_service(tmp_path, events_max_request_bytes=100_000, events_max_event_bytes=4_000)
    with TestClient(create_app(svc, FakeLink()), headers={"X-API-Key": KEY}) as http:
        # A 2 MiB attribute: refused by the attribute limit (it used to be a Kafka "outage").
        big_attr = [_event(0), _event(1, attributes={"blob": "x" * (2 << 20)})]
        r = http.post("/v1/events", json={"events": big_attr})
        assert r.status_code in (413, 422), r.text
        # One event over its encoded limit, every attribute within its own.
        wide = [_event(0), _event(1, values=[0.5] * 1500)]
        r = http.post("/v1/events", json={"events": wide})
        assert r.status_code == 413 and "TDA_EVENTS_MAX_EVENT_BYTES" in r.json()["detail"], r.text
        # Many small events over the batch limit (the 40 MB batch of the probe, scaled down).
        many = [_event(i, values=[0.25] * 15) for i in range(800)]
        r = http.post("/v1/events", json={"events": many})
        assert r.status_code == 413 and "TDA_EVENTS_MAX_REQUEST_BYTES" in r.json()["detail"], r.text
        # A body far over it is refused by its size alone.
        r = http.post("/v1/events", content=b"[" + b" " * 300_000 + b"]", headers={"content-type": "application/json"})
        assert r.status_code == 413
        # Within every limit, Kafka being off is a 503 naming the events, none published.
        ok = http.post("/v1/events", json={"events": [_event(0), _event(1)]})
        assert ok.status_code == 503 and ok.headers["Retry-After"] == "1"
        assert ok.json()["published"] == [] and ok.json()["not_published"] == ["e-0", "e-1"]
    svc.close()


# --------------------------------------------------------------------------- decoding


def test_a_parquet_bomb_is_refused(http: TestClient, service: JobService) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": np.zeros(10_000_000)}), buf, compression="zstd")
    assert len(buf.getvalue()) < 1_000_000  # ~80 MB of zeros in a small file
    r = http.post("/v1/pointclouds", content=buf.getvalue(), headers={"content-type": "application/vnd.apache.parquet"})
    assert r.status_code == 413 and "TDA_MAX_DECODED_RATIO" in r.json()["detail"], r.text
    assert not list((Path(service.settings.storage_root) / "pointclouds").glob("*"))


def test_blocks_are_bounded_in_bytes_not_rows(tmp_path: Path) -> None:
    wide = np.random.default_rng(5).integers(-100, 100, size=(3000, 2048), dtype=np.int8)  # 6 MiB of int8
    path = tmp_path / "wide.npy"
    np.save(path, wide)
    with path.open("rb") as fh:
        blocks = list(iter_file_blocks(fh, "npy", "wide"))
    assert len(blocks) > 1 and all(b.nbytes <= BLOCK_BYTES for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), wide)
