"""Point clouds that arrive in pieces: streamed ``.npy``/Parquet bodies and upload sessions of parts.

Neither is ever held whole in memory.  A streamed body is written to a temporary blob as it arrives, then
described from its header (:func:`tda_ray.io.blocks.probe_file`) and re-encoded block by block into the
cloud's float64 ``.npy``.  An upload session's parts are read in place, in order, as one file
(:class:`tda_ray.io.concat.ConcatenatedFile`) and re-encoded the same way: each byte is written once more,
into the final blob.  A long completion runs in a thread of its own; the request answers ``202`` once
``upload_complete_wait_s`` has passed and the client polls the session.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from pyarrow import ArrowException

from tda_ray.io.arrays import FloatArray
from tda_ray.io.blocks import iter_file_blocks, parquet_decoded_bytes, probe_file
from tda_ray.io.concat import ConcatenatedFile
from tda_ray.io.formats import PICKLE_MAGIC, sniff_binary
from tda_ray.service.jobs.errors import Conflict, InvalidRequest, PayloadTooLarge
from tda_ray.service.settings import Settings
from tda_ray.service.store import PointCloudRecord, Store, UploadRecord, UploadStatus, new_id

__all__ = ["MAX_UPLOAD_PARTS", "StreamedUpload", "UploadService"]

log = logging.getLogger("tda_ray.jobs")

MAX_UPLOAD_PARTS = 100_000
# Below this, a cloud may decode to any multiple of its upload (a tiny file of a few points).
DECODE_RATIO_FLOOR_BYTES = 64 * 1024 * 1024
# Whatever fails while decoding uploaded bytes is a verdict on them (422), not a server fault.
UNDECODABLE = (ValueError, TypeError, ArrowException)
# Completions touch their session at least this often (seconds), so that a dead replica's is reopened.
COMPLETION_HEARTBEAT_S = 5.0


class StreamedUpload:
    """A point cloud body written to a temporary blob as it arrives."""

    def __init__(self, store: Store, max_bytes: int) -> None:
        self.key = f"uploads/{new_id()}"
        self._writer = store.blobs.writer(self.key)
        self._max_bytes = max_bytes

    @property
    def size(self) -> int:
        return self._writer.size

    @property
    def head(self) -> bytes:
        return self._writer.head

    def write(self, data: bytes) -> None:
        if self._writer.size + len(data) > self._max_bytes:
            self.abort()
            raise PayloadTooLarge(f"upload is larger than the limit of {self._max_bytes} bytes")
        self._writer.write(data)

    def commit(self) -> None:
        self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()


def binary_format(head: bytes, expected: str | None) -> str:
    """``npy``/``parquet`` from a body's first bytes; InvalidRequest when it is neither (or not ``expected``)."""
    fmt = sniff_binary(head)
    if fmt is None or (expected is not None and fmt != expected):
        want = f"a {expected} file" if expected else "a .npy or Parquet file"
        # A pickle protocol header: say so, it is a common mistake (np.save(allow_pickle=True) of objects).
        hint = "; pickled data is never loaded" if head[:1] == PICKLE_MAGIC else ""
        raise InvalidRequest(f"the body is not {want} (its first bytes are {head[:8]!r}){hint}")
    return fmt


class UploadService:
    """Streamed uploads and upload sessions, for one ingress replica (it owns the completion threads)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="tda-upload")
        self._running: dict[str, concurrent.futures.Future[PointCloudRecord]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- one streamed body -----------------------------------------------------------------
    def begin(self) -> StreamedUpload:
        """Start a streamed ``.npy``/Parquet body; feed it with ``write`` and end with :meth:`finish`."""
        return StreamedUpload(self.store, self.settings.max_stream_upload_bytes)

    def finish(self, upload: StreamedUpload, name: str | None, expected: str | None = None) -> PointCloudRecord:
        """Check and re-encode a streamed body block by block; ``expected`` is the announced format."""
        upload.commit()
        try:
            fmt = binary_format(upload.head, expected)
            with self.store.blobs.open(upload.key) as fh:
                return self._store_cloud(fh, fmt, name, size=upload.size)
        finally:
            self.store.blobs.delete(upload.key)

    def _store_cloud(
        self, fh: Any, fmt: str, name: str | None, size: int, touch: str | None = None
    ) -> PointCloudRecord:
        source = f"uploaded {fmt}"
        try:
            info = probe_file(fh, fmt, source)
            decoded = max(info.n_points * info.dim * 8, parquet_decoded_bytes(fh, source) if fmt == "parquet" else 0)
        except UNDECODABLE as exc:
            raise InvalidRequest(str(exc)) from exc
        if info.n_points == 0 or info.dim == 0:
            raise InvalidRequest(f"point cloud is empty: {info.n_points} points with {info.dim} coordinates")
        if info.n_points > self.settings.max_stream_points:
            limit = self.settings.max_stream_points
            raise PayloadTooLarge(f"point cloud has {info.n_points} points; the limit is {limit}")
        ratio = self.settings.max_decoded_ratio
        if decoded > max(DECODE_RATIO_FLOOR_BYTES, ratio * size):
            raise PayloadTooLarge(
                f"the {size}-byte upload decodes to {decoded} bytes ({decoded / max(size, 1):.0f} times its size); "
                f"the limit is {ratio:g} times (TDA_MAX_DECODED_RATIO)"
            )
        blocks = iter_file_blocks(fh, fmt, source)
        if touch is not None:
            blocks = self._touching(blocks, touch)
        try:
            return self.store.create_pointcloud_from_blocks(
                blocks, n_points=info.n_points, dim=info.dim, name=name, source=fmt
            )
        except UNDECODABLE as exc:
            raise InvalidRequest(str(exc)) from exc

    def _touching(self, blocks: Iterator[FloatArray], upload_id: str) -> Iterator[FloatArray]:
        last = time.monotonic()
        for block in blocks:
            if time.monotonic() - last > COMPLETION_HEARTBEAT_S:
                self.store.touch_upload(upload_id)
                last = time.monotonic()
            yield block

    # --- upload sessions ---------------------------------------------------------------------
    def create(self, name: str | None) -> UploadRecord:
        return self.store.create_upload(name)

    def get(self, upload_id: str) -> UploadRecord:
        return self.store.get_upload(upload_id)

    def put_part(self, upload_id: str, part: int, data: bytes) -> int:
        if not 0 <= part < MAX_UPLOAD_PARTS:
            raise InvalidRequest(f"part numbers run from 0 to {MAX_UPLOAD_PARTS - 1}, got {part}")
        if not data:
            raise InvalidRequest("a part must not be empty")
        rec = self.store.get_upload(upload_id)
        total = sum(size for n, size in rec.parts if n != part) + len(data)
        if total > self.settings.max_session_upload_bytes:
            raise PayloadTooLarge(
                f"upload would hold {total} bytes; the limit is {self.settings.max_session_upload_bytes}"
            )
        self.store.put_upload_part(upload_id, part, data)
        return len(data)

    def complete(self, upload_id: str, wait_s: float | None = None) -> PointCloudRecord | UploadRecord:
        """The point cloud once complete; the session itself (``completing``) if it takes longer than ``wait_s``."""
        rec = self.store.get_upload(upload_id)
        if rec.status == UploadStatus.COMPLETED and rec.pointcloud_id:  # a retried completion
            return self.store.get_pointcloud(rec.pointcloud_id)
        started = False
        with self._lock:
            future = self._running.get(upload_id)
            if future is None:
                if rec.status == UploadStatus.COMPLETING:
                    return rec  # another replica completes it; the client polls the session
                if rec.status != UploadStatus.OPEN:
                    raise Conflict(f"upload {upload_id} is {rec.status.value}")
                numbers = self._check_parts(rec)
                if not self.store.set_upload_status(upload_id, UploadStatus.COMPLETING, expect=(UploadStatus.OPEN,)):
                    raise Conflict(f"upload {upload_id} is already being completed")
                future = self._pool.submit(self._complete, rec, numbers)
                self._running[upload_id] = future
                started = True
        if started:
            # Outside the lock: a future already done runs the callback here and now, and _forget takes the lock.
            future.add_done_callback(lambda _f: self._forget(upload_id))
        wait = self.settings.upload_complete_wait_s if wait_s is None else wait_s
        try:
            return future.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            return self.store.get_upload(upload_id)

    def _forget(self, upload_id: str) -> None:
        with self._lock:
            self._running.pop(upload_id, None)

    @staticmethod
    def _check_parts(rec: UploadRecord) -> list[int]:
        numbers = sorted(n for n, _ in rec.parts)
        if not numbers:
            raise InvalidRequest("upload has no parts")
        missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        if missing:
            raise InvalidRequest(f"upload is missing part(s) {missing[:10]} (parts are numbered from 0)")
        return numbers

    def _complete(self, rec: UploadRecord, numbers: list[int]) -> PointCloudRecord:
        sizes = dict(rec.parts)
        blobs = self.store.blobs
        keys = [self.store.upload_part_key(rec.id, n) for n in numbers]
        parts = [(lambda key=key: blobs.open(key), sizes[n]) for key, n in zip(keys, numbers, strict=True)]
        try:
            with blobs.open(keys[0]) as first:
                fmt = binary_format(first.read(16), None)
            with ConcatenatedFile(parts) as fh:
                pc = self._store_cloud(fh, fmt, rec.name, size=sum(sizes.values()), touch=rec.id)
        except BaseException as exc:
            # Still open: the client may replace a bad part and complete again, or abort.
            why = str(exc) if isinstance(exc, (InvalidRequest, PayloadTooLarge)) else f"{type(exc).__name__}: {exc}"
            self.store.set_upload_status(rec.id, UploadStatus.OPEN, expect=(UploadStatus.COMPLETING,), error=why)
            raise
        self.store.set_upload_status(
            rec.id, UploadStatus.COMPLETED, expect=(UploadStatus.COMPLETING,), pointcloud_id=pc.id
        )
        return pc

    def abort(self, upload_id: str) -> UploadRecord:
        rec = self.store.get_upload(upload_id)
        if not self.store.set_upload_status(upload_id, UploadStatus.ABORTED, expect=(UploadStatus.OPEN,)):
            raise Conflict(f"upload {upload_id} is {rec.status.value}")
        return self.store.get_upload(upload_id)
