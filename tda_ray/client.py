"""Python client of the tda-ray HTTP API.

Needs only ``httpx``, ``numpy`` and ``tqdm`` (no Ray, no server code); diagrams are read with
:mod:`tda_ray.engine.diagrams` (NumPy only) and files told apart by :mod:`tda_ray.io.formats`::

    from tda_ray.client import Client

    with Client("http://127.0.0.1:8000") as c:
        job = c.submit(points, maxdim=1)          # uploads the array, queues a job
        c.wait(job["id"], progress=True)          # progress bar on stderr
        res = c.result(job["id"])
        res.diagrams[1]                           # (k, 2) float64, death = inf for essential classes
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import numpy as np
import numpy.typing as npt
import tenacity

from tda_ray.engine.diagrams import from_json
from tda_ray.io.events import read_csv_events, rfc3339
from tda_ray.io.formats import detect_format

__all__ = ["ApiError", "Client", "JobFailed", "Result"]

FINISHED = ("succeeded", "failed", "cancelled")
_STREAM_TYPES = {"npy": "application/x-npy", "parquet": "application/vnd.apache.parquet"}


def _stream_type(filename: str, head: bytes) -> str | None:
    """Content type of a file the server takes as a streamed body (.npy / Parquet), else None."""
    return _STREAM_TYPES.get(detect_format(filename, head))


def _backoff(attempt: int, retry_after: str | None) -> float:
    """Seconds before the next attempt: the server's Retry-After, else exponential (0.5 s, 1 s, 2 s, ...)."""
    try:
        return min(max(float(retry_after or ""), 0.0), 30.0)
    except ValueError:  # none, or an HTTP date
        return float(min(0.5 * 2**attempt, 8.0))


class ApiError(Exception):
    """The server answered with an error status; ``detail`` is its explanation."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"HTTP {status_code}: {_detail_text(detail)}")


class JobFailed(RuntimeError):
    """A waited-for job ended ``failed`` or ``cancelled``; ``job`` is its final record."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        why = f": {job.get('error')}" if job.get("error") else ""
        super().__init__(f"job {job.get('id')} {job.get('status')}{why}")


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):  # FastAPI validation errors
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", ()) if x != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


@dataclass
class Result:
    """A job's result with diagrams as NumPy arrays (``inf`` where the server sent ``null``)."""

    job_id: str
    diagrams: list[npt.NDArray[np.float64]]
    betti: list[int]
    params: dict[str, Any]
    n_points: int
    elapsed_s: float
    raw: dict[str, Any] = field(repr=False)
    # Landmark jobs: requested, count, eps, bottleneck_bound (2 eps), timings; None for exact jobs.
    landmarks: dict[str, Any] | None = None
    # Jobs with params cocycles: cocycles[d][i], an int64 (k, d + 2) array, represents diagrams[d][i]; else None.
    cocycles: list[list[npt.NDArray[np.int64]]] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(
            job_id=data["job_id"],
            diagrams=from_json(data["diagrams"]),
            betti=list(data["betti"]),
            params=dict(data["params"]),
            n_points=int(data["n_points"]),
            elapsed_s=float(data["elapsed_s"]),
            raw=data,
            landmarks=data.get("landmarks"),
            cocycles=_cocycles(data.get("cocycles")),
        )


def _cocycles(per_dim: list[list[Any]] | None) -> list[list[npt.NDArray[np.int64]]] | None:
    if per_dim is None:
        return None
    return [[np.asarray(c, dtype=np.int64).reshape(-1, d + 2) for c in of_dim] for d, of_dim in enumerate(per_dim)]


class Client:
    """Talks to one tda-ray server; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        part_size: int = 4 * 1024 * 1024,
        retries: int = 3,
    ) -> None:
        if part_size < 1:
            raise ValueError(f"part_size must be positive, got {part_size}")
        if retries < 0:
            raise ValueError(f"retries must be at least 0, got {retries}")
        # Attempts after the first on a connection error or a 5xx (POSTs under an Idempotency-Key).
        self.retries = retries
        # .npy/Parquet files above this go as an upload session of parts this large.
        self.part_size = part_size
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, *, key: bool | str = False, **kwargs: Any) -> httpx.Response:
        """One call, retried on a connection error or a 5xx when that is safe: GET, PUT and DELETE are
        idempotent, and a POST with ``key=True`` carries an ``Idempotency-Key`` (the same on every attempt:
        the server answers a retry with the first answer and does nothing twice); a text ``key`` is that key."""
        if key:
            given = key if isinstance(key, str) else uuid.uuid4().hex
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Idempotency-Key": given}
        safe = bool(key) or method in ("GET", "PUT", "DELETE")
        for attempt in range(self.retries + 1):
            last = attempt == self.retries or not safe
            try:
                resp = self._http.request(method, url, **kwargs)
            except httpx.TransportError:
                if last:
                    raise
                time.sleep(_backoff(attempt, None))
                continue
            # 409 under a key: the first attempt still runs on the server; its answer comes on a retry.
            again = resp.status_code >= 500 or (key and resp.status_code == 409 and "Retry-After" in resp.headers)
            if again and not last:
                time.sleep(_backoff(attempt, resp.headers.get("Retry-After")))
                continue
            break
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise ApiError(resp.status_code, detail)
        return resp

    # --- service -------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/v1/health")

    # --- point clouds --------------------------------------------------------
    def upload(
        self, points: Any, name: str | None = None, progress: bool = False, kind: str | None = None
    ) -> dict[str, Any]:
        """Upload an ``(n, d)`` array (as ``.npy``) or a file (.npy, .csv/.txt, .parquet); ``kind``: "distance_matrix"
        (a square matrix of distances), "image" (a 2-D image or 3-D volume, for cubical jobs)."""
        if isinstance(points, (str, os.PathLike)):
            return self.upload_file(points, name=name, progress=progress, kind=kind)
        arr = np.asarray(points)
        if arr.dtype == object or arr.dtype.kind not in "iuf":
            raise ValueError(f"points must be a numeric array, got dtype {arr.dtype}")
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr, dtype=np.float64), allow_pickle=False)
        size, ctype = buf.getbuffer().nbytes, _STREAM_TYPES["npy"]
        return self._send_binary(buf, size, ctype, name or "points.npy", progress, kind)

    def upload_file(
        self, path: str | os.PathLike[str], name: str | None = None, progress: bool = False, kind: str | None = None
    ) -> dict[str, Any]:
        """Upload a file.  ``.npy`` and Parquet go as binary (one request, or an upload session of parts
        for files over ``part_size``: the server never holds such a cloud whole, and a failed part is
        retried); text formats go as a multipart form and are parsed by the server."""
        p = Path(path)
        with p.open("rb") as fh:
            ctype = _stream_type(p.name, fh.read(8))
            if ctype is not None:
                return self._send_binary(fh, p.stat().st_size, ctype, name or p.name, progress, kind)
        form, files = {"name": name or p.name}, {"file": (p.name, p.read_bytes())}
        query = {"kind": kind} if kind else None
        return self._json("POST", "/v1/pointclouds", key=True, files=files, data=form, params=query)

    def _send_binary(
        self, fh: BinaryIO, size: int, ctype: str, name: str, progress: bool, kind: str | None = None
    ) -> dict[str, Any]:
        from tqdm import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, disable=not progress, file=sys.stderr, leave=False)
        # Joining, checking and re-encoding a large cloud takes the server a while after the last byte.
        slow = httpx.Timeout(self._http.timeout.connect, read=max(self._http.timeout.read or 0, 600.0))
        try:
            fh.seek(0)
            if size <= self.part_size or kind:  # a distance matrix is checked whole: one request
                data = fh.read()
                resp = self._request(
                    "POST",
                    "/v1/pointclouds",
                    key=True,
                    params={"name": name[:200], **({"kind": kind} if kind else {})},
                    content=data,
                    headers={"Content-Type": ctype},
                    timeout=slow,
                )
                bar.update(len(data))
            else:
                session = self._request("POST", "/v1/uploads", json={"name": name[:200]}).json()
                step = min(self.part_size, int(session["max_part_bytes"]))
                try:
                    part = 0
                    while chunk := fh.read(step):
                        self._put_part(session["id"], part, chunk)
                        bar.update(len(chunk))
                        part += 1
                    resp = self._complete(session["id"], slow)
                except BaseException:
                    with contextlib.suppress(Exception):  # best effort: free the parts on the server
                        self._request("DELETE", f"/v1/uploads/{session['id']}")
                    raise
        finally:
            bar.close()
        return dict(resp.json())

    def _complete(self, upload_id: str, timeout: httpx.Timeout) -> httpx.Response:
        """Complete a session; a large cloud answers 202 (still completing): poll until it is a point cloud."""
        resp = self._request("POST", f"/v1/uploads/{upload_id}/complete", timeout=timeout)
        while resp.status_code == 202:
            time.sleep(0.5)
            session = self._request("GET", f"/v1/uploads/{upload_id}").json()
            if session.get("pointcloud_id"):
                return self._request("GET", f"/v1/pointclouds/{session['pointcloud_id']}")
            if session["status"] == "open":  # the completion failed; the session says why
                raise ApiError(422, session.get("error") or "the upload could not be completed")
        return resp

    def _put_part(self, upload_id: str, part: int, chunk: bytes) -> None:
        # A part is idempotent (sending it again replaces it): PUT is retried like every safe call.
        self._request(
            "PUT",
            f"/v1/uploads/{upload_id}/parts/{part}",
            content=chunk,
            headers={"Content-Type": "application/octet-stream"},
        )

    def pointcloud(self, pointcloud_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/pointclouds/{pointcloud_id}")

    # --- jobs ------------------------------------------------------------------
    def submit(self, pointcloud: Any, *, algorithm: str = "vietoris_rips", **params: Any) -> dict[str, Any]:
        """Queue a job on an uploaded cloud (its id) or on an array / file, which is uploaded first.

        ``params`` are the algorithm's parameters, checked by the server (see ``GET /docs``); for
        ``vietoris_rips``: ``maxdim``, ``threshold``, ``coeff`` and ``landmarks`` (None for the exact
        computation, or a count / ``"auto"`` for Rips on greedy max-min landmarks: the result's ``landmarks``
        reports the covering radius eps; bottleneck error <= 2 eps).
        """
        if isinstance(pointcloud, str) and not os.path.exists(pointcloud):
            pc_id = pointcloud
        else:
            pc_id = self.upload(pointcloud)["id"]
        body = {"pointcloud_id": pc_id, "algorithm": algorithm, "params": params}
        return self._json("POST", "/v1/jobs", key=True, json=body)

    def job(self, job_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The job record; ``wait`` > 0 long-polls up to that many seconds for it to finish."""
        params = {"wait": wait} if wait > 0 else None
        timeout = self._http.timeout.read
        data: dict[str, Any] = self._request(
            "GET", f"/v1/jobs/{job_id}", params=params, timeout=httpx.Timeout(timeout, read=(timeout or 0) + wait)
        ).json()
        return data

    def jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._json("GET", "/v1/jobs", params=params)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/v1/jobs/{job_id}")

    def wait(
        self, job_id: str, timeout: float | None = None, progress: bool = False, raise_on_failure: bool = True
    ) -> dict[str, Any]:
        """Block until the job finishes; returns its final record.

        ``progress=True`` shows a tqdm bar on stderr.  Raises :class:`JobFailed`
        for failed or cancelled jobs (unless ``raise_on_failure=False``) and
        :class:`TimeoutError` after ``timeout`` seconds.
        """
        from tqdm import tqdm

        deadline = None if timeout is None else time.monotonic() + timeout
        bar = tqdm(
            total=100,
            unit="%",
            disable=not progress,
            file=sys.stderr,
            leave=False,
            bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
        )
        try:
            while True:
                left = 10.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {job_id} did not finish within {timeout} s")
                # Long poll: returns as soon as the job finishes; shorter slices keep the bar moving.
                job = self.job(job_id, wait=min(1.0 if progress else 10.0, max(left, 0.01)))
                bar.set_postfix_str(job["status"], refresh=False)
                target = 100.0 * float(job.get("progress") or 0.0)
                if target > bar.n:
                    bar.update(target - bar.n)
                if job["status"] in FINISHED:
                    break
        finally:
            bar.close()
        if raise_on_failure and job["status"] != "succeeded":
            raise JobFailed(job)
        return job

    def result(self, job_id: str) -> Result:
        return Result.from_json(self._request("GET", f"/v1/jobs/{job_id}/result").json())

    def result_json(self, job_id: str) -> dict[str, Any]:
        return self._get_json(f"/v1/jobs/{job_id}/result", {})

    def diagram_image(self, job_id: str, fmt: str = "svg", picture: str = "diagram") -> bytes:
        """The persistence diagram (``picture="barcode"``: the barcode) as SVG or PNG bytes."""
        if fmt not in ("svg", "png") or picture not in ("diagram", "barcode"):
            raise ValueError(f"fmt must be 'svg' or 'png' and picture 'diagram' or 'barcode', got {fmt!r}, {picture!r}")
        return self._request("GET", f"/v1/jobs/{job_id}/{picture}.{fmt}").content

    def vectors(self, job_id: str, kind: str, **params: Any) -> dict[str, Any]:
        """A vectorization of a finished job's diagrams (``params``: dim, n_bins, t_min, ...: README "Analysis")."""
        return self._get_json(f"/v1/jobs/{job_id}/vectors", {"kind": kind, **params})

    def distance(self, job_a: str, job_b: str, metric: str = "bottleneck", **params: Any) -> dict[str, Any]:
        """Per-dimension distance between two finished jobs' diagrams (``params``: dim, p, internal_p)."""
        return self._get_json(f"/v1/jobs/{job_a}/distance/{job_b}", {"metric": metric, **params})

    def _get_json(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._json("GET", url, params=params)

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = self._request(method, url, **kwargs).json()
        return data

    def compute(
        self,
        points: Any,
        *,
        algorithm: str = "vietoris_rips",
        timeout: float | None = None,
        progress: bool = False,
        **params: Any,
    ) -> Result:
        """Upload, submit, wait and fetch in one call (``params`` as for :meth:`submit`)."""
        job = self.submit(points, algorithm=algorithm, **params)
        self.wait(job["id"], timeout=timeout, progress=progress)
        return self.result(job["id"])

    # --- events and streams ----------------------------------------------------------------------
    def post_events(self, events: list[dict[str, Any]], retry_s: float = 0.0) -> dict[str, Any]:
        """POST /v1/events (``source_id``, ``values``, optional ``event_time``, ``event_id``, ``attributes``
        each): ``{"accepted", "topic", "event_ids"}``.

        Retried under one Idempotency-Key (so it publishes once) ``retries`` times; with ``retry_s``, a post
        the server cannot take for now (503: the broker is away; or no connection) is tried again, backing
        off, for up to that long, under the same key."""
        body = [{**e, "event_time": rfc3339(e["event_time"])} if "event_time" in e else e for e in events]
        key = uuid.uuid4().hex

        def post() -> dict[str, Any]:
            return self._json("POST", "/v1/events", key=key, json={"events": body})

        if retry_s <= 0:
            return post()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_transient),
            wait=tenacity.wait_exponential(multiplier=0.2, max=5.0),
            stop=tenacity.stop_after_delay(retry_s),
            reraise=True,
        )
        return retrying(post)

    def replay_csv(
        self,
        path: str | os.PathLike[str],
        source: str,
        *,
        time_column: str,
        value_columns: list[str],
        rate: float | None = None,
        batch: int = 500,
        progress: bool = False,
        retry_s: float = 120.0,
    ) -> int:
        """Post a CSV's rows as events of ``source`` in batches (at most ``rate`` events per second).

        Each row's event id is ``<source>-<row>``, so replaying a file again adds nothing twice. Times are
        RFC 3339 text or epoch seconds (milliseconds above 1e11). A batch the server cannot take for now is
        retried for up to ``retry_s``. Returns the number of events accepted.
        """
        from tqdm import tqdm

        rows = list(read_csv_events(path, source, time_column, value_columns))
        sent = 0
        t0 = time.monotonic()
        with tqdm(total=len(rows), unit="event", disable=not progress, file=sys.stderr, leave=False) as bar:
            for i in range(0, len(rows), max(1, batch)):
                chunk = rows[i : i + batch]
                sent += int(self.post_events(chunk, retry_s=retry_s)["accepted"])
                bar.update(len(chunk))
                if rate:
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        return sent

    def put_stream(self, source_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self._json("PUT", f"/v1/streams/{source_id}", json=spec)

    def stream(self, source_id: str) -> dict[str, Any]:
        return self._get_json(f"/v1/streams/{source_id}", {})

    def streams(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._get_json("/v1/streams", {})["items"]
        return items

    def scores(self, source_id: str, since: Any = None, limit: int = 500) -> dict[str, Any]:
        """A page of the source's scores: ``{"items", "next_since"}`` (pass ``next_since`` back for more)."""
        return self._get_json(f"/v1/streams/{source_id}/scores", _page(since, limit))

    def alerts(self, since: Any = None, limit: int = 500) -> dict[str, Any]:
        return self._get_json("/v1/alerts", _page(since, limit))

    def follow_scores(self, source_id: str, since: Any = None, poll_s: float = 1.0) -> Iterator[dict[str, Any]]:
        """Every score of the source from ``since`` on, as they arrive (an endless iterator)."""
        seen: set[int] = set()
        while True:
            page = self.scores(source_id, since=since)
            for record in page["items"]:
                if record["seq"] not in seen:
                    seen.add(record["seq"])
                    yield record
            if page["next_since"] is not None:
                since = page["next_since"]
                continue
            if page["items"]:
                since = page["items"][-1]["window_end"]
            time.sleep(poll_s)


def _page(since: Any, limit: int) -> dict[str, Any]:
    return {"limit": limit} if since is None else {"limit": limit, "since": rfc3339(since)}


def _transient(exc: BaseException) -> bool:
    """A refusal that may pass: the server is there but cannot take it now, or is not reachable now."""
    if isinstance(exc, ApiError):
        return exc.status_code in (502, 503, 504)
    return isinstance(exc, (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.TimeoutException))
