"""Upload sessions in the store and the jobs layer, without Ray: parts, completion, expiry of idle sessions."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tda_ray.service.jobs import Conflict, InvalidRequest
from tda_ray.service.jobs.dispatcher import Dispatcher
from tda_ray.service.jobs.service import JobService
from tda_ray.service.settings import Settings
from tda_ray.service.store import PointCloudRecord, UploadStatus
from tda_ray.service.store.blobs import BlobWriter


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'tda.db'}", storage_root=str(tmp_path / "storage"), **kw)


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def complete(svc: JobService, upload_id: str) -> PointCloudRecord:
    out = svc.uploads.complete(upload_id)
    assert isinstance(out, PointCloudRecord), out
    return out


def parts_dir(tmp_path: Path, upload_id: str) -> Path:
    return tmp_path / "storage" / "upload-sessions" / upload_id


def test_a_completion_done_before_its_callback_is_added_does_not_deadlock(tmp_path: Path) -> None:
    """A small cloud can finish before complete() registers its clean-up callback, which then runs at once."""
    import threading

    svc = JobService(settings(tmp_path))
    up = svc.uploads.create("quick")
    svc.uploads.put_part(up.id, 0, npy(np.ones((10, 2))))
    pool = svc.uploads._pool
    real_submit = pool.submit

    def submit_and_finish(fn: Any, *args: Any) -> Any:
        future = real_submit(fn, *args)
        future.result()  # done before complete() goes on
        return future

    pool.submit = submit_and_finish  # type: ignore[method-assign,assignment]
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(svc.uploads.complete(up.id)), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "complete() deadlocked"
    assert isinstance(out[0], PointCloudRecord) and out[0].n_points == 10
    assert not svc.uploads._running


def test_parts_join_into_the_cloud(tmp_path: Path) -> None:
    svc = JobService(settings(tmp_path))
    X = np.random.default_rng(0).normal(size=(5000, 4))
    data = npy(X)
    up = svc.uploads.create("four")
    step = 7000  # parts need not align with rows
    for n, i in enumerate(range(0, len(data), step)):
        assert svc.uploads.put_part(up.id, n, data[i : i + step]) == len(data[i : i + step])
    pc = complete(svc, up.id)
    assert (pc.n_points, pc.dim, pc.name) == (5000, 4, "four")
    np.testing.assert_array_equal(svc.store.load_points(pc.id), X)
    assert not parts_dir(tmp_path, up.id).exists()
    assert complete(svc, up.id).id == pc.id  # idempotent


def test_bad_content_keeps_the_session_open(tmp_path: Path) -> None:
    svc = JobService(settings(tmp_path))
    up = svc.uploads.create(None)
    svc.uploads.put_part(up.id, 0, npy(np.array([[1.0, np.nan]])))
    with pytest.raises(InvalidRequest, match="NaN"):
        svc.uploads.complete(up.id)
    assert svc.uploads.get(up.id).status == UploadStatus.OPEN
    svc.uploads.put_part(up.id, 0, npy(np.array([[1.0, 2.0]])))  # replaced
    assert complete(svc, up.id).n_points == 1


def test_idle_sessions_are_expired_and_active_ones_kept(tmp_path: Path) -> None:
    svc = JobService(settings(tmp_path))
    idle = svc.uploads.create("idle")
    svc.uploads.put_part(idle.id, 0, b"abc")
    time.sleep(0.3)
    active = svc.uploads.create("active")
    svc.uploads.put_part(active.id, 0, b"abc")
    assert svc.store.expire_uploads(0.2) == [idle.id]
    assert svc.uploads.get(idle.id).status == UploadStatus.ABORTED
    assert not parts_dir(tmp_path, idle.id).exists()
    assert svc.uploads.get(active.id).status == UploadStatus.OPEN
    with pytest.raises(Conflict):
        svc.uploads.put_part(idle.id, 1, b"late")
    assert not parts_dir(tmp_path, idle.id).exists()  # a late part is not left behind


def test_the_dispatcher_expires_idle_sessions(tmp_path: Path) -> None:
    s = settings(tmp_path, upload_session_idle_s=0.4, dispatch_interval_s=0.05)
    svc = JobService(s)
    up = svc.uploads.create(None)
    svc.uploads.put_part(up.id, 0, b"abc")
    dispatcher = Dispatcher(s)  # no Ray needed while there are no jobs
    try:
        deadline = time.monotonic() + 10
        while svc.uploads.get(up.id).status == UploadStatus.OPEN and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dispatcher.stop()
    assert svc.uploads.get(up.id).status == UploadStatus.ABORTED
    assert not parts_dir(tmp_path, up.id).exists()


def test_a_long_completion_answers_with_the_session_then_finishes(tmp_path: Path) -> None:
    svc = JobService(settings(tmp_path))
    X = np.random.default_rng(3).normal(size=(400_000, 3))
    data = npy(X)
    up = svc.uploads.create("long")
    for n, i in enumerate(range(0, len(data), 1 << 20)):
        svc.uploads.put_part(up.id, n, data[i : i + (1 << 20)])
    first = svc.uploads.complete(up.id, wait_s=0)  # no waiting: the session itself, still completing
    assert not isinstance(first, PointCloudRecord)
    assert first.status == UploadStatus.COMPLETING
    assert svc.uploads.complete(up.id, wait_s=0).status == UploadStatus.COMPLETING  # type: ignore[union-attr]
    deadline = time.monotonic() + 60
    while svc.uploads.get(up.id).status == UploadStatus.COMPLETING and time.monotonic() < deadline:
        time.sleep(0.05)
    done = svc.uploads.get(up.id)
    assert done.status == UploadStatus.COMPLETED and done.pointcloud_id
    np.testing.assert_array_equal(svc.store.load_points(done.pointcloud_id), X)
    assert complete(svc, up.id).id == done.pointcloud_id


def test_a_failed_long_completion_reopens_the_session_with_its_reason(tmp_path: Path) -> None:
    svc = JobService(settings(tmp_path))
    X = np.random.default_rng(4).normal(size=(300_000, 2))
    X[299_999, 1] = np.inf  # found only when the last block is read
    data = npy(X)
    up = svc.uploads.create(None)
    for n, i in enumerate(range(0, len(data), 1 << 20)):
        svc.uploads.put_part(up.id, n, data[i : i + (1 << 20)])
    assert not isinstance(svc.uploads.complete(up.id, wait_s=0), PointCloudRecord)
    deadline = time.monotonic() + 60
    while svc.uploads.get(up.id).status == UploadStatus.COMPLETING and time.monotonic() < deadline:
        time.sleep(0.05)
    rec = svc.uploads.get(up.id)
    assert rec.status == UploadStatus.OPEN
    assert rec.error is not None and "row 299999, column 1" in rec.error


def test_completion_reads_the_parts_in_place(tmp_path: Path) -> None:
    # The parts are read as one file and re-encoded once: nothing else is written under the storage root.
    svc = JobService(settings(tmp_path))
    data = npy(np.random.default_rng(5).normal(size=(20_000, 3)))
    up = svc.uploads.create(None)
    for n, i in enumerate(range(0, len(data), 100_000)):
        svc.uploads.put_part(up.id, n, data[i : i + 100_000])
    written: list[str] = []
    writer = svc.store.blobs.writer

    def spy(key: str) -> BlobWriter:
        written.append(key)
        return writer(key)

    svc.store.blobs.writer = spy  # type: ignore[method-assign]
    pc = complete(svc, up.id)
    assert written == [f"pointclouds/{pc.id}.npy"]


def test_the_client_waits_out_a_202_completion(tmp_path: Path) -> None:
    """The real app in-process (no Serve): with no wait allowed, completing answers 202 and the client polls."""
    from starlette.testclient import TestClient

    from tda_ray.client import Client
    from tda_ray.service.http.app import create_app

    s = settings(tmp_path, upload_complete_wait_s=0)
    svc = JobService(s)
    dispatcher = Dispatcher(s)  # no Ray needed while no job is submitted
    try:
        with TestClient(create_app(svc, dispatcher), base_url="http://testserver") as http:
            X = np.random.default_rng(6).normal(size=(300_000, 3))
            np.save(tmp_path / "big.npy", X)
            r = http.post(f"/v1/uploads/{'0' * 32}/complete")
            assert r.status_code == 404
            client = Client("http://testserver", part_size=1 << 20)
            client._http = http  # the same httpx client API, wired to the app
            answers: list[tuple[str, int]] = []
            http.event_hooks["response"].append(lambda r: answers.append((r.request.url.path, r.status_code)))
            pc = client.upload_file(tmp_path / "big.npy")
            completes = [code for path, code in answers if path.endswith("/complete")]
            assert completes == [202], answers  # then GET /v1/uploads/{id} until the cloud is there
            assert any(path.startswith("/v1/pointclouds/") and code == 200 for path, code in answers)
            assert (pc["n_points"], pc["dim"]) == (300_000, 3)
            np.testing.assert_array_equal(svc.store.load_points(pc["id"]), X)
    finally:
        dispatcher.stop()
