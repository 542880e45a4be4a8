"""Greedy max-min (farthest-point) landmarks of a cloud too large for one process, on Ray.

How the sampling runs (:func:`farthest_point_sample`):

1. Ray Data reads the cloud in blocks from storage (:mod:`tda_ray.distributed.datasource`).
2. The blocks are spread over ``W`` shard actors, each placed, where possible, on the node that holds its
   blocks.  A shard keeps its blocks coordinate-major plus, per point, the squared distance to the nearest
   landmark so far.  No process ever holds the whole cloud; the driver holds landmarks and candidates.
3. Rounds: the driver sends the landmarks chosen in the previous round; each shard folds them into its
   running minima and answers its ``k`` farthest points (candidates) and ``tau``, the largest distance
   among its other points.  The driver then takes candidates greedily — the farthest candidate (its
   distance updated with the landmarks taken so far this round) becomes the next landmark while that
   distance is still ``>= max(tau)``: no point outside the candidate lists can then be farther, so the
   outcome equals sequential greedy max-min while passing over the data far fewer times than ``N``.
4. After the last landmark is folded in, ``eps`` is the square root of the largest running minimum.

The first landmark is the lexicographically smallest point, so the landmark set does not depend on how
the cloud is split into blocks (up to exact ties in distance).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from tda_ray.distributed.datasource import normalise_block, read_blocks
from tda_ray.distributed.session import ray_error_cause
from tda_ray.engine.rips import EngineCancelled
from tda_ray.io.blocks import DEFAULT_ROWS_PER_BLOCK

__all__ = ["DEFAULT_CANDIDATES", "LandmarkSample", "farthest_point_sample"]

FloatArray = npt.NDArray[np.float64]

# Candidates each shard reports per round.  More candidates accept more landmarks per pass but cost more
# driver work; 64 keeps a 1,000-landmark selection to a few dozen passes on ordinary data.
DEFAULT_CANDIDATES = 64


def _sq_dist(coords: FloatArray, point: FloatArray, out: FloatArray, tmp: FloatArray) -> FloatArray:
    """Squared distances from the columns of ``coords`` (d, m) to ``point``, summed coordinate by coordinate.

    Both the shards and the driver compute distances through this function, so equal inputs give
    bit-identical distances wherever they are computed (the driver's acceptance test relies on it).
    """
    np.subtract(coords[0], point[0], out=out)
    np.multiply(out, out, out=out)
    for j in range(1, coords.shape[0]):
        np.subtract(coords[j], point[j], out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        np.add(out, tmp, out=out)
    return out


def _lexmin_column(coords: FloatArray) -> int:
    """Index of the lexicographically smallest column of ``coords`` (d, m)."""
    idx = np.flatnonzero(coords[0] == coords[0].min())
    for j in range(1, coords.shape[0]):
        if idx.size == 1:
            break
        sub = coords[j, idx]
        idx = idx[sub == sub.min()]
    return int(idx[0])


class _Shard:
    """A share of the cloud (coordinate-major blocks) with each point's squared distance to the nearest landmark."""

    def __init__(self) -> None:
        self.blocks: list[FloatArray] = []
        self.mind: list[FloatArray] = []
        self._buf: tuple[FloatArray, FloatArray] | None = None

    def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())

    def load(self, refs: list[Any], columns: list[str] | None) -> dict[str, Any]:
        """Fetch this shard's blocks one at a time, check them and keep them coordinate-major."""
        dims = set()
        for ref in refs:
            table = ray.get(ref)
            if table.num_rows == 0:
                continue
            # Checked here rather than in a Ray Data UDF: errors raised in an actor keep their type and
            # message for the caller, those in a UDF arrive only as text inside a UserCodeException.
            table = normalise_block(table, columns)
            coords = np.stack([table.column(j).to_numpy() for j in range(table.num_columns)]).astype(np.float64)
            del table
            dims.add(coords.shape[0])
            self.blocks.append(np.ascontiguousarray(coords))
            self.mind.append(np.full(coords.shape[1], np.inf))
        if len(dims) > 1:
            raise ValueError(f"point cloud blocks disagree on the number of coordinates: {sorted(dims)}")
        first = None
        if self.blocks:
            mins = [b[:, _lexmin_column(b)] for b in self.blocks]
            first = np.stack(mins, axis=1)[:, _lexmin_column(np.stack(mins, axis=1))].copy()
        largest = max((b.shape[1] for b in self.blocks), default=0)
        self._buf = (np.empty(largest), np.empty(largest))
        return {"n": sum(b.shape[1] for b in self.blocks), "dim": dims.pop() if dims else 0, "first": first}

    def peak_rss(self) -> int:
        """This process's peak resident memory in bytes (Linux reports KiB)."""
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    def fold(self, landmarks: FloatArray, k: int) -> tuple[FloatArray, FloatArray, float, float]:
        """Fold new landmarks (B, d) into the minima; return (candidates (c, d), their d², tau², max d²)."""
        assert self._buf is not None
        out, tmp = self._buf
        top_vals, top_idx = [], []
        for b, (coords, md) in enumerate(zip(self.blocks, self.mind, strict=True)):
            m = coords.shape[1]
            o, t = out[:m], tmp[:m]
            for point in landmarks:
                np.minimum(md, _sq_dist(coords, point, o, t), out=md)
            # This block's k+1 largest: the shard's k+1 largest are among the blocks' k+1 largest.
            idx = np.argpartition(md, m - (k + 1))[m - (k + 1) :] if m > k + 1 else np.arange(m)
            top_vals.append(md[idx])
            top_idx.append(np.stack([np.full(idx.size, b), idx]))
        if not top_vals:
            d = landmarks.shape[1]
            return np.zeros((0, d)), np.zeros(0), -1.0, -1.0
        vals = np.concatenate(top_vals)
        where = np.concatenate(top_idx, axis=1)
        order = np.argsort(-vals, kind="stable")
        chosen = order[:k]
        tau = float(vals[order[k]]) if vals.size > k else -1.0
        cands = np.stack([self.blocks[int(where[0, i])][:, int(where[1, i])] for i in chosen])
        return cands, vals[chosen].copy(), tau, float(vals[order[0]])


# The shard as a Ray actor class (the plain class stays usable in-process).
_ShardActor: Any = ray.remote(_Shard)


@dataclass(frozen=True)
class LandmarkSample:
    """Greedy max-min landmarks of a cloud and their covering radius."""

    landmarks: FloatArray  # (N, d), in selection order
    eps: float  # max over all points of the distance to the nearest landmark (exact)
    n_points: int  # points in the whole cloud
    dim: int
    rounds: int  # passes over the data after loading
    n_workers: int
    read_s: float
    select_s: float
    shard_peak_rss: tuple[int, ...] = ()  # bytes, per shard process

    @property
    def n_landmarks(self) -> int:
        return int(self.landmarks.shape[0])


def _accept(pool: FloatArray, d2: FloatArray, tau: float, quota: int) -> list[FloatArray]:
    """Exact greedy picks from the candidate pool (rows of ``pool``, current squared distances ``d2``).

    The first pick is the global farthest point (every shard's farthest points are in the pool).  Later
    picks stay exact while the best updated candidate distance is at least ``tau``, the largest distance
    of any point left out of the pool, which can only have shrunk since.
    """
    picked: list[FloatArray] = []
    if pool.shape[0] == 0:
        return picked
    d2 = d2.copy()
    cols = np.ascontiguousarray(pool.T)
    out, tmp = np.empty(pool.shape[0]), np.empty(pool.shape[0])
    while len(picked) < quota:
        i = int(np.argmax(d2))
        if d2[i] <= 0 or (picked and d2[i] < tau):
            break
        point = pool[i].copy()
        picked.append(point)
        np.minimum(d2, _sq_dist(cols, point, out, tmp), out=d2)
        d2[i] = -1.0
    return picked


def _assign_blocks(block_nodes: list[str | None], worker_nodes: list[str], sizes: list[int]) -> list[list[int]]:
    """Blocks per worker: balanced by rows, preferring a worker on the node that already holds the block."""
    n_workers = len(worker_nodes)
    load = [0] * n_workers
    target = sum(sizes) / max(n_workers, 1)
    out: list[list[int]] = [[] for _ in range(n_workers)]
    for b in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        local = [w for w in range(n_workers) if worker_nodes[w] == block_nodes[b]]
        best_local = min(local, key=lambda w: load[w]) if local else None
        if best_local is not None and load[best_local] + sizes[b] <= 1.25 * target:
            w = best_local
        else:
            w = min(range(n_workers), key=lambda w: load[w])
        out[w].append(b)
        load[w] += sizes[b]
    return out


def _plan_workers(n_workers: int | None, worker_cpus: float) -> tuple[int, float]:
    """(shards, CPUs per shard) for the connected cluster.

    By default one shard per ``worker_cpus`` of the cluster.  An explicit count larger than the cluster's
    CPUs allow gets a smaller CPU share per shard, so every shard can be scheduled (otherwise the rounds
    would wait for ever).  A task blocked in ``ray.get`` lends its CPUs, so a job task that calls this
    does not starve its own shards; on an autoscaling cluster with no CPUs yet, one shard starts the
    scale-up.
    """
    if worker_cpus <= 0:
        raise ValueError(f"worker_cpus must be positive, got {worker_cpus}")
    total = float(ray.cluster_resources().get("CPU", 0.0))
    if n_workers is None:
        n = max(1, min(64, int(total // worker_cpus)))
    elif isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    else:
        n = n_workers
    cpus = worker_cpus if total <= 0 or n * worker_cpus <= total else total / n
    return n, cpus


def _block_placement(refs: list[Any]) -> tuple[list[str | None], list[int]]:
    """(node holding each block, its size in bytes)."""
    locations = ray.experimental.get_object_locations(refs)
    nodes: list[str | None] = []
    sizes: list[int] = []
    for r in refs:
        loc = locations.get(r) or {}
        holders = loc.get("node_ids") or []
        nodes.append(holders[0] if holders else None)
        sizes.append(int(loc.get("object_size") or 1))
    return nodes, sizes


def _wait_ready(pg: PlacementGroup, cancel: Any | None) -> None:
    ready = pg.ready()
    while True:  # ray.get (not ray.wait): a job task blocked in it lends its own CPUs to the group
        try:
            ray.get(ready, timeout=0.5)
            return
        except ray.exceptions.GetTimeoutError:
            if cancel is not None and cancel.cancelled:
                raise EngineCancelled("landmark selection cancelled") from None


def _load_shards(workers: list[Any], refs: list[Any], columns: list[str] | None) -> tuple[int, int, FloatArray]:
    """Hand the blocks to the shards; (points, coordinates, first landmark)."""
    block_nodes, sizes = _block_placement(refs)
    worker_nodes = ray.get([w.node_id.remote() for w in workers])
    plan = _assign_blocks(block_nodes, worker_nodes, sizes)
    try:
        infos = ray.get(
            [w.load.remote([refs[b] for b in blocks], columns) for w, blocks in zip(workers, plan, strict=True)]
        )
    except Exception as exc:
        raise ray_error_cause(exc) from None
    n_points = sum(int(i["n"]) for i in infos)
    dims = {int(i["dim"]) for i in infos if i["n"]}
    if n_points == 0:
        raise ValueError("point cloud is empty: at least one point is needed")
    if len(dims) != 1:
        raise ValueError(f"point cloud blocks disagree on the number of coordinates: {sorted(dims)}")
    firsts = np.stack([i["first"] for i in infos if i["n"]], axis=1)
    return n_points, dims.pop(), firsts[:, _lexmin_column(firsts)].copy()


def _select(
    workers: list[Any],
    first: FloatArray,
    n_landmarks: int,
    candidates: int,
    progress: Callable[[float], None] | None,
    cancel: Any | None,
) -> tuple[list[FloatArray], float, int]:
    """The rounds; (landmarks, largest squared distance to them, rounds)."""
    chosen = [first]
    new = [first]
    rounds = 0
    while True:
        if cancel is not None and cancel.cancelled:
            raise EngineCancelled("landmark selection cancelled")
        answers = ray.get([w.fold.remote(np.stack(new), candidates) for w in workers])
        rounds += 1
        max_d2 = max(a[3] for a in answers)
        if progress is not None:
            progress(min(len(chosen) / n_landmarks, 1.0))
        if len(chosen) >= n_landmarks or max_d2 <= 0:
            return chosen, max_d2, rounds
        pool = np.concatenate([a[0] for a in answers if a[0].shape[0]])
        d2 = np.concatenate([a[1] for a in answers if a[0].shape[0]])
        tau = max(a[2] for a in answers)
        new = _accept(pool, d2, tau, n_landmarks - len(chosen))
        chosen.extend(new)


def farthest_point_sample(
    source: Any,
    n_landmarks: int,
    *,
    columns: list[str] | None = None,
    n_workers: int | None = None,
    worker_cpus: float = 1.0,
    candidates: int = DEFAULT_CANDIDATES,
    rows_per_block: int = DEFAULT_ROWS_PER_BLOCK,
    progress: Callable[[float], None] | None = None,
    cancel: Any | None = None,
) -> LandmarkSample:
    """Greedy max-min landmarks of ``source`` (see :func:`~tda_ray.distributed.datasource.read_points`),
    computed on the connected Ray cluster.

    Returns at most ``n_landmarks`` landmarks: fewer only when every point coincides with one (eps = 0).
    ``progress(fraction)`` reports landmarks chosen / requested; ``cancel`` (a ``CancelToken``) stops the
    selection between rounds with ``EngineCancelled``.
    """
    if isinstance(n_landmarks, bool) or not isinstance(n_landmarks, (int, np.integer)) or n_landmarks < 1:
        raise ValueError(f"landmarks must be a positive integer or 'auto', got {n_landmarks!r}")
    if candidates < 1:
        raise ValueError(f"candidates must be positive, got {candidates}")
    workers_n, shard_cpus = _plan_workers(n_workers, worker_cpus)
    t0 = time.perf_counter()
    ds = read_blocks(source, columns, None, rows_per_block)
    try:
        refs = ds.to_arrow_refs()  # the blocks stay in the object store, spread over the cluster
    except Exception as exc:
        raise ray_error_cause(exc) from None
    del ds
    workers_n = max(1, min(workers_n, len(refs)))
    # The shards are reserved together as one placement group, spread over the nodes: all of them or none.
    # Shards started one by one could deadlock two selections running at once (each holding some shards
    # and waiting for CPUs the other holds); a pending group also asks an autoscaler for the whole set.
    pg = placement_group([{"CPU": shard_cpus}] * workers_n, strategy="SPREAD")
    workers: list[Any] = []
    try:
        _wait_ready(pg, cancel)
        for i in range(workers_n):
            strategy = PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=i)
            workers.append(_ShardActor.options(num_cpus=shard_cpus, scheduling_strategy=strategy).remote())
        n_points, dim, first = _load_shards(workers, refs, columns)
        del refs  # the shards own the data now
        read_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        chosen, max_d2, rounds = _select(workers, first, int(n_landmarks), candidates, progress, cancel)
        select_s = time.perf_counter() - t1
        peaks = tuple(int(p) for p in ray.get([w.peak_rss.remote() for w in workers]))
    finally:
        for w in workers:
            ray.kill(w)
        remove_placement_group(pg)
    return LandmarkSample(
        landmarks=np.stack(chosen),
        eps=math.sqrt(max(max_d2, 0.0)),
        n_points=n_points,
        dim=dim,
        rounds=rounds,
        n_workers=len(workers),
        read_s=read_s,
        select_s=select_s,
        shard_peak_rss=peaks,
    )
