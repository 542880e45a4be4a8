"""`tda-ray batch`: collections of clouds through Ray Data, on a local Ray, a 3-node cluster, a Ray Job and
an autoscaling cluster.  Every result is compared with the engine called directly, in this process."""

from __future__ import annotations

import io
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import ray_clusters

from tda_ray import cli
from tda_ray.distributed import batch, ray_jobs
from tda_ray.engine import vietoris_rips

pytestmark = [pytest.mark.ray]


def _cloud(rng: np.random.Generator, n: int, dim: int = 2) -> np.ndarray:
    # A noisy circle: H1 has one long bar, so diagrams have content in every dimension.
    t = rng.uniform(0, 2 * np.pi, n)
    pts = np.c_[np.cos(t), np.sin(t)] * rng.uniform(0.5, 2.0)
    if dim > 2:
        pts = np.c_[pts, rng.normal(scale=0.1, size=(n, dim - 2))]
    out: np.ndarray = pts + rng.normal(scale=0.05, size=pts.shape)
    return out


def _write_folder(root: Path, n_clouds: int, seed: int, n_points: int = 40) -> dict[str, np.ndarray]:
    """Clouds as .npy and .csv files; returns the good clouds by path."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    clouds: dict[str, np.ndarray] = {}
    for i in range(n_clouds):
        X = _cloud(rng, n_points + i % 7, dim=2 + i % 2)
        if i % 3 == 0:
            path = root / f"cloud_{i:03d}.csv"
            np.savetxt(path, X, delimiter=",", fmt="%.17g")
        else:
            path = root / f"cloud_{i:03d}.npy"
            np.save(path, X)
        clouds[str(path)] = X
    return clouds


def _expected(X: np.ndarray, maxdim: int, threshold: float | None = None) -> list[np.ndarray]:
    return vietoris_rips(X, maxdim=maxdim, threshold=threshold).diagrams


def _assert_rows_match(
    table: pa.Table, clouds: dict[str, np.ndarray], maxdim: int, threshold: float | None = None
) -> None:
    rows = {r["source"]: r for r in table.to_pylist()}
    for source, X in clouds.items():
        row = rows[source]
        assert row["error"] is None, row["error"]
        assert row["n_points"] == X.shape[0]
        want = _expected(X, maxdim, threshold)
        got = [np.array(d, dtype=np.float64).reshape(-1, 2) for d in row["diagrams"]]
        assert len(got) == maxdim + 1
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)  # same engine, same input: bit-identical
        assert row["betti"] == [int(np.isinf(w[:, 1]).sum()) for w in want]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_clusters.local_ray(num_cpus=2):
        yield


# --------------------------------------------------------------------------- local Ray


def test_folder_batch_matches_engine_and_isolates_bad_clouds(local_ray: None, tmp_path: Path) -> None:
    clouds = _write_folder(tmp_path / "in", 10, seed=1)
    (tmp_path / "in" / "zz_nan.csv").write_text("0,0\n1,nan\n2,2\n")
    (tmp_path / "in" / "zz_garbage.npy").write_bytes(b"not an array")
    (tmp_path / "in" / "zz_ragged.csv").write_text("0,0\n1,1,1\n")
    (tmp_path / "in" / "notes.md").write_text("ignored: not a cloud extension")
    out = tmp_path / "out" / "result.parquet"

    summary = batch.run_batch(str(tmp_path / "in"), str(out), maxdim=1, progress=False)

    table = pq.read_table(out)
    assert table.schema.equals(batch.OUTPUT_SCHEMA)
    assert table.num_rows == 13 and summary.n_clouds == 13 and summary.n_failed == 3
    # Input order (sorted paths) is kept.
    assert table.column("source").to_pylist() == sorted(table.column("source").to_pylist())
    _assert_rows_match(table, clouds, maxdim=1)
    bad = {r["source"].rsplit("/", 1)[1]: r for r in table.to_pylist() if r["error"]}
    assert set(bad) == {"zz_nan.csv", "zz_garbage.npy", "zz_ragged.csv"}
    assert "nan" in bad["zz_nan.csv"]["error"].lower()
    assert "not a .npy file" in bad["zz_garbage.npy"]["error"]
    assert all(r["diagrams"] is None and r["betti"] is None for r in bad.values())
    assert all(r["node_id"] for r in table.to_pylist())
    # Essential classes are stored as inf, not null.
    first = table.to_pylist()[0]["diagrams"][0]
    assert any(math.isinf(p[1]) for p in first)
    assert not list(out.parent.glob("*.tmp-*"))  # the temporary file was renamed into place


def test_threshold_and_distance_matrix_files(local_ray: None, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    X = _cloud(rng, 30)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "a.npy", X)
    lines = ["", *(",".join(f"{v:.17g}" for v in D[i, :i]) for i in range(1, len(D)))]
    (folder / "b.lower_distance_matrix").write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.parquet"
    batch.run_batch(str(folder), str(out), maxdim=1, threshold=0.5, progress=False)
    rows = pq.read_table(out).to_pylist()
    assert [r["error"] for r in rows] == [None, None]
    want = vietoris_rips(X, maxdim=1, threshold=0.5).diagrams
    for r in rows:
        got = [np.array(d).reshape(-1, 2) for d in r["diagrams"]]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-6)


def test_parquet_dataset_one_cloud_per_row(local_ray: None, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    clouds = [_cloud(rng, 25 + i) for i in range(6)]
    points = [c.tolist() for c in clouds] + [[[0.0, 0.0], [1.0]], [[0.0, float("nan")]], []]
    folder = tmp_path / "ds"
    folder.mkdir()
    half = 4
    for part, sl in enumerate((slice(0, half), slice(half, None))):
        pq.write_table(
            pa.table({"source": [f"id-{i}" for i in range(len(points))][sl], "points": points[sl]}),
            folder / f"part-{part}.parquet",
        )
    out = tmp_path / "out.parquet"
    summary = batch.run_batch(str(folder), str(out), maxdim=1, progress=False)
    table = pq.read_table(out)
    assert summary.n_clouds == 9 and summary.n_failed == 3
    assert table.column("source").to_pylist() == [f"id-{i}" for i in range(9)]
    _assert_rows_match(table, {f"id-{i}": c for i, c in enumerate(clouds)}, maxdim=1)
    errors = table.column("error").to_pylist()
    assert "ragged" in errors[6] and "nan" in errors[7].lower() and "empty" in errors[8]

    # Without a source column, rows are named by their position in the input.
    single = tmp_path / "single.parquet"
    pq.write_table(pa.table({"cloud": [c.tolist() for c in clouds[:3]]}), single)
    batch.run_batch(str(single), str(out), maxdim=0, progress=False)
    assert pq.read_table(out).column("source").to_pylist() == [f"{single}#{i}" for i in range(3)]


def test_cli_batch(local_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_folder(tmp_path / "in", 3, seed=3)
    out = tmp_path / "cli.parquet"
    code = cli.main(["batch", str(tmp_path / "in"), "--output", str(out), "--maxdim", "1", "--no-progress"])
    assert code == 0
    assert pq.read_table(out).num_rows == 3
    assert "3 clouds, 0 failed" in capsys.readouterr().err

    # Bad input: one line on stderr, exit 2, nothing written.
    (tmp_path / "empty").mkdir()
    for argv, needle in [
        (["batch", str(tmp_path / "missing"), "--output", str(out)], "no such file"),
        (["batch", str(tmp_path / "empty"), "--output", str(out)], "no point clouds found"),
    ]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1
    # Parameters are checked as the arguments are parsed (argparse exits with 2).
    for argv, needle in [
        (["--threshold", "-1"], "argument --threshold: must be a non-negative number"),
        (["--coeff", "4"], "argument --coeff: must be a prime"),
    ]:
        with pytest.raises(SystemExit) as exc:
            cli.main(["batch", str(tmp_path / "in"), "--output", str(out), *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1


def test_bad_input_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "a.npy").write_bytes(b"")
    (tmp_path / "b.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="both Parquet files and cloud files"):
        batch.discover_input(str(tmp_path))
    pq.write_table(pa.table({"x": [1.0, 2.0]}), tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="one cloud per row"):
        batch.discover_input(str(tmp_path / "c.parquet"))
    with pytest.raises(ValueError, match="maxdim"):
        batch.run_batch(str(tmp_path), str(tmp_path / "o.parquet"), maxdim=-1)


def test_entrypoint_quotes_paths() -> None:
    cmd = ray_jobs.batch_entrypoint("/data/my clouds", "s3://b/o.parquet", maxdim=2, threshold=0.5, python="py")
    assert cmd.startswith("py -m tda_ray.cli batch '/data/my clouds' --output s3://b/o.parquet --maxdim 2")
    assert "--threshold 0.5" in cmd and cmd.endswith("--address auto")


# --------------------------------------------------------------------------- clusters


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_node_cluster_spreads_work_and_matches_local(tmp_path: Path) -> None:
    clouds = _write_folder(tmp_path / "in", 24, seed=4, n_points=60)
    out = tmp_path / "cluster.parquet"
    with ray_clusters.three_node_cluster():
        import ray

        assert len(ray_clusters.alive_nodes()) == 3
        summary = batch.run_batch(str(tmp_path / "in"), str(out), maxdim=1, batch_size=2, progress=False)
        node_ids = {n["NodeID"] for n in ray.nodes()}
    table = pq.read_table(out)
    used = set(table.column("node_id").to_pylist())
    assert len(used) >= 2, f"all rows computed on one node: {used}"
    assert used <= node_ids
    assert summary.nodes and sum(summary.nodes.values()) == 24
    _assert_rows_match(table, clouds, maxdim=1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_submit_batch_as_ray_job(tmp_path: Path) -> None:
    clouds = _write_folder(tmp_path / "in", 6, seed=6)
    out = tmp_path / "job.parquet"
    port = ray_clusters.free_port()
    log = io.StringIO()
    with ray_clusters.three_node_cluster(dashboard_port=port):
        submitted = ray_jobs.submit_batch(
            f"http://{ray_clusters.LOOPBACK}:{port}",
            str(tmp_path / "in"),
            str(out),
            maxdim=1,
            python=sys.executable,  # the cluster runs from this virtualenv
            # The job's driver joins the cluster on loopback like this process does.
            runtime_env={"env_vars": {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}},
            log=log,
            timeout_s=240,
        )
    assert submitted.succeeded, log.getvalue()[-3000:]
    assert submitted.job_id.startswith("raysubmit_")
    text = log.getvalue()
    assert "6 clouds, 0 failed" in text  # the job's own summary line, streamed back
    _assert_rows_match(pq.read_table(out), clouds, maxdim=1)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_autoscaler_adds_workers_for_a_queued_batch_and_removes_them_idle(tmp_path: Path) -> None:
    clouds = _write_folder(tmp_path / "in", 30, seed=7, n_points=80)
    out = tmp_path / "auto.parquet"
    with ray_clusters.fake_autoscaling_cluster(worker_cpus=1, max_workers=2, idle_timeout_minutes=0.1) as cluster:
        import ray

        head = ray.get_runtime_context().get_node_id()
        assert len(ray_clusters.alive_nodes()) == 1, "the cluster starts with the head only"
        assert ray.cluster_resources().get("CPU", 0) == 0, "the head takes no compute work"

        summary = batch.run_batch(str(tmp_path / "in"), str(out), maxdim=1, batch_size=2, progress=False)

        used = set(pq.read_table(out).column("node_id").to_pylist())
        assert head not in used and len(used) >= 1, "rows must run on autoscaled worker nodes"
        assert summary.n_failed == 0
        # Idle workers go away again (idle timeout 6 s; the autoscaler polls every second).
        deadline = time.monotonic() + 180
        while len(ray_clusters.alive_nodes()) > 1 and time.monotonic() < deadline:
            time.sleep(2)
        remaining = ray_clusters.alive_nodes()
        assert len(remaining) == 1, f"workers not removed when idle: {remaining}\n{cluster.log_tail()}"
    _assert_rows_match(pq.read_table(out), clouds, maxdim=1)
