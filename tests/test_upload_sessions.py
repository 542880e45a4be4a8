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
