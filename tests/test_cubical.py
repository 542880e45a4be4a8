"""Cubical persistence: diagrams equal GUDHI's and cripser's (CubicalRipser) on random, tied, constant, tiny and
thresholded images and volumes, in both constructions; input checks; progress, cancellation, the memory limit.

Births and deaths are pixel values read back from the same float64 array by every engine, so the diagrams are
compared exactly (as sorted lists of pairs), zero-length pairs dropped from the peers. A threshold is checked
against the peers' full diagrams truncated at it: pairs born above it dropped, deaths above it made infinite.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from typing import Any

import cripser
import gudhi
import numpy as np
import numpy.typing as npt
import pytest

import tda_ray
from tda_ray import _core
from tda_ray.engine import CancelToken, EngineCancelled, MemoryLimitError
from tda_ray.engine.cubical import CubicalParams, check_memory, cubical_persistence
from tda_ray.engine.registry import get_algorithm

Array = npt.NDArray[np.float64]
Pairs = list[tuple[float, float]]


# --------------------------------------------------------------------------- peers


def _truncate(pairs: Any, threshold: float | None) -> Pairs:
    out = []
    for b, d in np.asarray(pairs, dtype=np.float64).reshape(-1, 2):
        if threshold is not None:
            if b > threshold:
                continue
            d = d if d <= threshold else math.inf
        if b != d:
            out.append((float(b), float(d)))
    return sorted(out)


def gudhi_pairs(a: Array, construction: str, threshold: float | None = None) -> list[Pairs]:
    cc = gudhi.CubicalComplex(vertices=a) if construction == "V" else gudhi.CubicalComplex(top_dimensional_cells=a)
    cc.persistence(homology_coeff_field=2, min_persistence=-1)
    return [_truncate(cc.persistence_intervals_in_dimension(k), threshold) for k in range(a.ndim)]


def cripser_pairs(a: Array, construction: str, threshold: float | None = None) -> list[Pairs]:
    # cripser's 2-D V-construction treats an image with a single row or column as isolated pixels; its 1-D
    # input is the same complex (a path) and is computed right.
    arg = a.reshape(-1) if construction == "V" and a.ndim == 2 and 1 in a.shape else a
    rows = np.asarray(cripser.compute_ph(arg, filtration=construction, maxdim=a.ndim - 1))
    return [_truncate(rows[rows[:, 0] == k][:, 1:3], threshold) for k in range(a.ndim)]


def our_pairs(a: npt.NDArray[Any], construction: str, threshold: float | None = None, **kwargs: Any) -> list[Pairs]:
    res = cubical_persistence(a, construction=construction, threshold=threshold, **kwargs)
    return [sorted((float(b), float(d)) for b, d in dgm) for dgm in res.diagrams]


def assert_equal_to_peers(a: Array, construction: str, threshold: float | None = None) -> None:
    ours = our_pairs(a, construction, threshold)
    assert ours == gudhi_pairs(a, construction, threshold), "differs from GUDHI"
    assert ours == cripser_pairs(a, construction, threshold), "differs from cripser"


# --------------------------------------------------------------------------- inputs

SHAPES_2D: list[tuple[int, ...]] = [(7, 9), (16, 16), (1, 1), (1, 9), (9, 1), (2, 2), (3, 40)]
SHAPES_3D: list[tuple[int, ...]] = [
    (5, 6, 7),
    (8, 8, 8),
    (1, 1, 1),
    (1, 1, 6),
    (1, 5, 4),
    (3, 1, 4),
    (2, 2, 2),
    (4, 9, 3),
]


def image(shape: tuple[int, ...], kind: str, seed: int = 0) -> Array:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.random(shape)
    if kind == "tied":  # three distinct values: long runs of equal cells
        return rng.integers(0, 3, shape).astype(np.float64)
    if kind == "binary":
        return (rng.random(shape) < 0.4).astype(np.float64)
    if kind == "constant":
        return np.full(shape, 2.5)
    if kind == "signed":  # negative values, -0.0 next to 0.0, a wide range
        return rng.choice([-1e300, -3.0, -0.0, 0.0, 1.5, 1e300], size=shape)
    raise AssertionError(kind)


KINDS = ["random", "tied", "binary", "constant", "signed"]


@pytest.mark.parametrize("construction", ["V", "T"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES_2D + SHAPES_3D, ids=lambda s: "x".join(map(str, s)))
def test_equal_to_gudhi_and_cripser(shape: tuple[int, ...], kind: str, construction: str) -> None:
    assert_equal_to_peers(image(shape, kind), construction)


@pytest.mark.parametrize("construction", ["V", "T"])
@pytest.mark.parametrize("seed", range(12))
def test_random_shapes_and_values(seed: int, construction: str) -> None:
    rng = np.random.default_rng(100 + seed)
    ndim = 2 + seed % 2
    shape = tuple(int(n) for n in rng.integers(1, 30 if ndim == 2 else 11, ndim))
    a = rng.random(shape) if seed % 3 else rng.integers(0, 4, shape).astype(np.float64)
    assert_equal_to_peers(a, construction)


@pytest.mark.parametrize("construction", ["V", "T"])
@pytest.mark.parametrize("shape", [(64, 64), (16, 16, 16)], ids=["64x64", "16^3"])
def test_larger_inputs(shape: tuple[int, ...], construction: str) -> None:
    assert_equal_to_peers(image(shape, "random", seed=7), construction)


@pytest.mark.parametrize("construction", ["V", "T"])
@pytest.mark.parametrize("kind", ["random", "tied"])
@pytest.mark.parametrize("shape", [(12, 15), (6, 7, 8)], ids=["2d", "3d"])
@pytest.mark.parametrize("quantile", [0.0, 0.3, 0.7, 1.0])
def test_thresholds(shape: tuple[int, ...], kind: str, construction: str, quantile: float) -> None:
    a = image(shape, kind, seed=3)
    assert_equal_to_peers(a, construction, float(np.quantile(a, quantile)))


def test_threshold_below_every_value_leaves_nothing() -> None:
    res = cubical_persistence(image((5, 5), "random"), threshold=-1.0)
    assert [len(d) for d in res.diagrams] == [0, 0]


def test_essential_classes_below_a_threshold() -> None:
    # A ring of low pixels around a high centre: below the centre's value the ring's cycle never dies.
    a = np.ones((5, 5))
    a[1:4, 1:4] = 0.0
    a[2, 2] = 1.0
    for construction in ("V", "T"):
        full = cubical_persistence(a, construction=construction)
        cut = cubical_persistence(a, construction=construction, threshold=0.5)
        assert full.betti_numbers(2.0).tolist() == [1, 0]
        assert cut.diagrams[1].tolist() == [[0.0, math.inf]]
        assert cut.diagrams[0].tolist() == [[0.0, math.inf]]


# --------------------------------------------------------------------------- what a result holds


def test_result_fields_and_pixels() -> None:
    a = image((9, 11), "random", seed=5)
    res = tda_ray.cubical_persistence(a, construction="T")
    assert res.n_points == a.size and res.coeff == 2 and res.maxdim == 1
    assert res.extras["shape"] == (9, 11) and res.extras["construction"] == "T"
    flat = a.reshape(-1)
    for dgm, pixels in zip(res.diagrams, res.extras["pixels"], strict=True):
        assert pixels.shape == dgm.shape
        assert np.array_equal(flat[pixels[:, 0]], dgm[:, 0])
        finite = pixels[:, 1] >= 0
        assert np.array_equal(flat[pixels[finite, 1]], dgm[finite, 1])
        assert np.all(np.isinf(dgm[~finite, 1]))


def test_maxdim() -> None:
    a = image((6, 6, 6), "random", seed=2)
    full = cubical_persistence(a)
    for maxdim in (0, 1):
        part = cubical_persistence(a, maxdim=maxdim)
        assert len(part.diagrams) == maxdim + 1
        for k in range(maxdim + 1):
            assert np.array_equal(part.diagrams[k], full.diagrams[k])
    beyond = cubical_persistence(a, maxdim=4)
    assert [len(d) for d in beyond.diagrams[3:]] == [0, 0]


def test_integer_and_bool_inputs_are_read_as_numbers() -> None:
    a = np.random.default_rng(1).integers(0, 5, (8, 8))
    assert our_pairs(a, "V") == our_pairs(a.astype(np.float64), "V")
    b = a > 2
    assert our_pairs(b, "T") == our_pairs(b.astype(np.float64), "T")


def test_deterministic_and_threads_agree() -> None:
    a = image((12, 12, 12), "tied", seed=4)
    one = cubical_persistence(a, n_threads=1)
    two = cubical_persistence(a, n_threads=2)
    again = cubical_persistence(a, n_threads=1)
    for x, y, z in zip(one.diagrams, two.diagrams, again.diagrams, strict=True):
        assert np.array_equal(x, y) and np.array_equal(x, z)


def test_registry_entry_runs_and_summarizes() -> None:
    alg = get_algorithm("cubical")
    assert alg.data == "grid" and alg.params is CubicalParams
    params = alg.parse({"construction": "T", "maxdim": 1})
    a = image((10, 12), "random")
    res = alg.execute(a, params)
    summary = alg.summarize(res, a.shape, 0.5)
    assert summary.model_dump()["shape"] == [10, 12]
    assert summary.model_dump()["n_points"] == 120
    assert summary.betti == [1, 0]
    assert summary.n_pairs == [len(d) for d in res.diagrams]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros(5), "2-D image or a 3-D volume, got 1 dimensions"),
        (np.zeros((2, 2, 2, 2)), "got 4 dimensions"),
        (np.zeros((0, 4)), "empty"),
        (np.zeros((3, 0, 2)), "empty"),
        (np.array([[1.0, 2.0], [np.nan, 0.0]]), r"non-finite value nan at index \(1, 0\)"),
        (np.array([[[0.0, np.inf]]]), r"non-finite value inf at index \(0, 0, 1\)"),
        (np.array([["a", "b"]]), "must be numeric"),
        (np.array([[1 + 2j]]), "must be numeric"),
        ([[1.0, 2.0], [3.0]], "ragged"),
        (7.0, "got 0 dimensions"),
    ],
    ids=["1d", "4d", "empty-2d", "empty-3d", "nan", "inf", "strings", "complex", "ragged", "scalar"],
)
def test_bad_images_are_named(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cubical_persistence(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"construction": "X"}, "construction must be 'V' .* or 'T'"),
        ({"construction": 1}, "construction must be"),
        ({"maxdim": -1}, "maxdim must be >= 0, got -1"),
        ({"maxdim": 1.0}, "maxdim must be an integer"),
        ({"maxdim": 10**30}, "maxdim must be <= 30"),
        ({"threshold": "1"}, "threshold must be a number"),
        ({"threshold": math.nan}, "threshold must be a number"),
        ({"n_threads": 0}, "n_threads must be >= 1"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cubical_persistence(np.zeros((3, 3)), **kwargs)


def test_the_engine_checks_maxdim_too() -> None:
    with pytest.raises(ValueError, match="maxdim 1000000000 is above the supported 30"):
        _core.cubical_persistence(np.zeros((3, 3)), 10**9, _core.CubicalConstruction.vertex, math.inf, 1, 0)


def test_parameters_accept_negative_thresholds_and_lower_case() -> None:
    p = CubicalParams.parse(threshold=-2, construction="t")
    assert (p.threshold, p.construction) == (-2.0, "T")
    assert CubicalParams.parse(threshold=math.inf).threshold is None


# --------------------------------------------------------------------------- run time: progress, cancel, memory


@pytest.fixture(scope="module")
def volume() -> Array:
    # Long enough (~1 s and more on the 2-core machine) for cancellation and periodic progress to be seen.
    return image((96, 96, 96), "random", seed=9)


def test_progress_is_monotone_and_ends_at_one(volume: Array) -> None:
    values: list[float] = []
    callers: set[int] = set()

    def progress(fraction: float) -> None:
        values.append(fraction)
        callers.add(threading.get_ident())

    cubical_persistence(volume, progress=progress)
    assert len(values) >= 3 and values[0] < 1.0
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a <= b for a, b in itertools.pairwise(values)), values
    assert values[-1] == 1.0
    assert callers == {threading.get_ident()}


@pytest.mark.parametrize("delay", [0.05, 0.5])
def test_cancel_from_another_thread(volume: Array, delay: float) -> None:
    token = CancelToken()
    stamp: dict[str, float] = {}

    def fire() -> None:
        time.sleep(delay)
        stamp["at"] = time.monotonic()
        token.cancel()

    timer = threading.Thread(target=fire, daemon=True)
    timer.start()
    with pytest.raises(EngineCancelled):
        cubical_persistence(volume, cancel=token, n_threads=2)
    timer.join()
    assert time.monotonic() - stamp["at"] < 1.0


def test_cancelled_token_stops_before_work(volume: Array) -> None:
    token = CancelToken()
    token.cancel()
    start = time.monotonic()
    with pytest.raises(EngineCancelled):
        cubical_persistence(volume, cancel=token)
    assert time.monotonic() - start < 0.5


def test_gil_is_released(volume: Array) -> None:
    done = threading.Event()
    ticks = 0

    def work() -> None:
        cubical_persistence(volume[:64, :64, :64])
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    assert ticks > 20, "the Python thread was starved while the engine ran"


def test_memory_limit_refuses_up_front() -> None:
    a = image((256, 256), "random")
    with pytest.raises(MemoryLimitError, match=r"256 x 256 image needs about .* MiB, above the memory limit of 1\.0"):
        cubical_persistence(a, memory_limit=1 << 20)
    # The same image within a sufficient limit runs, and agrees with an unlimited run.
    limited = cubical_persistence(a, memory_limit=256 << 20)
    assert limited.extras["estimated_bytes"] < 256 << 20
    assert our_pairs(a, "V") == [sorted(map(tuple, d.tolist())) for d in limited.diagrams]


def test_memory_limit_during_the_reduction(volume: Array) -> None:
    # Above the up-front estimate but below what the reduced columns of dimension 1 grow to.
    upfront = _core.cubical_estimate_bytes(list(volume.shape), _core.CubicalConstruction.vertex)
    with pytest.raises(MemoryLimitError, match="reduced columns of dimension 1"):
        cubical_persistence(volume, memory_limit=int(upfront * 1.05))


def test_check_memory_before_reading_the_image() -> None:
    check_memory(1000, CubicalParams(), 1 << 30)
    with pytest.raises(MemoryLimitError, match=r"10000000000 pixels needs about"):
        check_memory(10**10, CubicalParams(), 1 << 30)


# --------------------------------------------------------------------------- through the job service


def test_a_cubical_job_through_the_job_service(tmp_path: Any) -> None:
    """Admission, the job task (in-process, no Ray), the stored summary and the Kafka message of an image job."""
    from tda_ray.service.jobs.service import JobService
    from tda_ray.service.jobs.task import JobSpec, run_job
    from tda_ray.service.settings import KafkaSettings, Settings
    from tda_ray.service.streaming import messages

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'tda.db'}",
        storage_root=str(tmp_path / "storage"),
        kafka=KafkaSettings(enabled=False),
    ).resolved()
    service = JobService(settings)
    try:
        a = np.random.default_rng(3).normal(size=(40, 30))
        pc = service.create_pointcloud(a, name="image")
        job = service.submit(pc.id, "cubical", {"construction": "T", "threshold": -0.25})
        (claim,) = [c for c in service.store.claim_queued("test", 10) if c.job_id == job.id]
        spec = JobSpec(job.id, claim.attempt, pc.id, claim.blob_key, claim.algorithm, claim.params)
        assert run_job(settings, spec)["outcome"] == "succeeded"
        result = service.result(job.id)
        expected = cubical_persistence(a, construction="T", threshold=-0.25)
        assert result.summary.model_dump()["shape"] == [40, 30]
        assert result.summary.n_pairs == [len(d) for d in expected.diagrams]
        message = messages.build_result_message(
            job_id=job.id,
            pointcloud_id=pc.id,
            algorithm="cubical",
            params=claim.params,
            summary=result.summary.model_dump(),
            diagrams=expected.diagrams,
            finished_at="2026-01-02T03:04:05+00:00",
        )
        messages.validate_result_message(message)
        assert message["params"]["maxdim"] == 1 and message["n_points"] == a.size
    finally:
        service.close()


def test_service_admission_counts_pixels(tmp_path: Any) -> None:
    from tda_ray.service.jobs.errors import InvalidRequest
    from tda_ray.service.jobs.service import JobService
    from tda_ray.service.settings import KafkaSettings, Settings

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'tda.db'}",
        storage_root=str(tmp_path / "storage"),
        kafka=KafkaSettings(enabled=False),
        max_points=10,
        memory_limit_bytes=1 << 20,
    ).resolved()
    service = JobService(settings)
    try:
        # Stored as a streamed upload would be (above max_points, which applies to exact Rips only).
        small = service.store.create_pointcloud(np.zeros((20, 5)), name=None, source="npy")
        service.submit(small.id, "cubical", {})
        with pytest.raises(InvalidRequest, match="above the limit of 10 for exact"):
            service.submit(small.id, "vietoris_rips", {})
        large = service.store.create_pointcloud(np.zeros((400, 100)), name=None, source="npy")
        with pytest.raises(InvalidRequest, match="40000 pixels needs about"):
            service.submit(large.id, "cubical", {})
    finally:
        service.close()
