"""The ``tda-ray`` command line, run as a user would: in a subprocess."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import tda_ray
from tda_ray.engine import vietoris_rips

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TDA_DATASETS", REPO.parent / "shared" / "datasets"))
SCRIPT = Path(sys.executable).parent / "tda-ray"
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tda_ray.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=REPO,
    )


def circle(n: int = 24, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.c_[np.cos(t), np.sin(t)]
    return np.asarray(pts + noise * np.random.default_rng(seed).standard_normal(pts.shape), dtype=np.float64)


def write_points(path: Path, pts: np.ndarray, sep: str = " ") -> Path:
    path.write_text("\n".join(sep.join(repr(float(v)) for v in row) for row in pts) + "\n")
    return path


_INTERVAL = re.compile(r"^\s+\[(\S+), (\S+)\)$")


def parse_text(out: str) -> list[np.ndarray]:
    """Diagrams back from the human-readable output."""
    dgms: list[list[tuple[float, float]]] = []
    for line in out.splitlines():
        if line.startswith("dim "):
            dgms.append([])
        elif m := _INTERVAL.match(line):
            dgms[-1].append((float(m.group(1)), float(m.group(2))))
    return [np.array(d, dtype=float).reshape(-1, 2) for d in dgms]


def sorted_dgm(dgm: npt.ArrayLike) -> np.ndarray:
    d = np.asarray(dgm, dtype=float).reshape(-1, 2)
    return d[np.lexsort((d[:, 1], d[:, 0]))]


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- output


def test_text_output_matches_engine(tmp_path: Path) -> None:
    pts = circle(20, noise=0.05)
    path = write_points(tmp_path / "circle.txt", pts)
    proc = cli("rips", path, "--maxdim", 1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# 20 points, maxdim 1, coeff 2, threshold inf")
    assert re.search(r"^dim 0: 20 intervals$", proc.stdout, re.M)
    assert re.search(r"^dim 1: \d+ intervals?$", proc.stdout, re.M)
    assert re.search(r"^  \[0\.0, inf\)$", proc.stdout, re.M)
    got = parse_text(proc.stdout)
    ref = vietoris_rips(pts, maxdim=1).diagrams
    assert len(got) == 2
    for g, r in zip(got, ref, strict=True):
        # Printed values are the shortest text that reads back to the same float32 (or float64) value.
        np.testing.assert_array_equal(sorted_dgm(g).astype(np.float32), sorted_dgm(r).astype(np.float32))
        np.testing.assert_allclose(sorted_dgm(g), sorted_dgm(r), rtol=1e-7, atol=0)
    # A circle has one long-lived H1 class.
    h1 = got[1]
    assert (h1[:, 1] - h1[:, 0]).max() > 1.0


def test_json_output(tmp_path: Path) -> None:
    pts = circle(16)
    path = write_points(tmp_path / "c.csv", pts, sep=",")
    proc = cli("rips", path, "--maxdim", 1, "--coeff", 3, "--threshold", 1.5, "--threads", 2, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["maxdim"] == 1 and doc["coeff"] == 3 and doc["threshold"] == 1.5 and doc["n_points"] == 16
    ref = vietoris_rips(pts, maxdim=1, coeff=3, threshold=1.5)
    assert doc == json.loads(json.dumps(ref.to_json_dict()))
    deaths = [d for dgm in doc["diagrams"] for _, d in dgm]
    assert None in deaths  # essential classes are null, never Infinity
    assert "Infinity" not in proc.stdout and "NaN" not in proc.stdout


def test_npy_and_distance_matrix_inputs(tmp_path: Path) -> None:
    pts = circle(12, noise=0.02, seed=3)
    D = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    np.save(tmp_path / "pts.npy", pts)
    np.save(tmp_path / "d.npy", D)
    lower = "\n".join(",".join(repr(float(v)) for v in D[i, :i]) for i in range(len(D)))
    (tmp_path / "d.lower_distance_matrix").write_text(lower + "\n")
    results = [
        json.loads(cli("rips", tmp_path / "pts.npy", "--json").stdout),
        json.loads(cli("rips", tmp_path / "d.npy", "--distance-matrix", "--json").stdout),
        json.loads(cli("rips", tmp_path / "d.lower_distance_matrix", "--json").stdout),
    ]
    for res in results[1:]:
        for a, b in zip(results[0]["diagrams"], res["diagrams"], strict=True):
            fa = sorted_dgm([[x, math.inf if y is None else y] for x, y in a])
            fb = sorted_dgm([[x, math.inf if y is None else y] for x, y in b])
            np.testing.assert_allclose(fa, fb, rtol=1e-9, atol=1e-12)


def test_graph_and_cocycle_options(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    edges = np.array([(i, j) for i in range(12) for j in range(i) if rng.random() < 0.4])
    w = rng.uniform(0.5, 2.0, len(edges)).astype(np.float32).astype(np.float64)
    path = tmp_path / "g.txt"
    np.savetxt(path, np.c_[edges, w])
    for filtration in ("edge", "shortest_path"):
        proc = cli("rips", path, "--graph", filtration, "--cocycles", "--coeff", 3, "--json")
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        ref = tda_ray.vietoris_rips_graph(edges, w, filtration=filtration, coeff=3, cocycles=True)
        assert doc == json.loads(json.dumps(ref.to_json_dict())) and len(doc["cocycles"]) == 2
    text = cli("rips", path, "--graph", "edge", "--cocycles").stdout
    assert "cocycle " in text or "dim 1: 0 intervals" in text
    (tmp_path / "loop.txt").write_text("0 0 1\n")
    bad = cli("rips", tmp_path / "loop.txt", "--graph", "edge")
    assert bad.returncode == 2 and "self-loop at vertex 0" in bad.stderr
    assert_no_traceback(bad)
    forced = cli("rips", path, "--graph", "edge", "--cocycles", "--collapse-edges", "true")
    assert forced.returncode == 2 and "collapse_edges" in forced.stderr


def test_console_script_installed() -> None:
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} not installed (run `make setup`)")
    proc = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, timeout=60, env=ENV)
    assert proc.returncode == 0
    assert re.fullmatch(r"tda-ray \d+\.\d+\.\d+\S*\n", proc.stdout)


def test_help_lists_subcommands() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    assert "rips" in proc.stdout
    proc = cli("rips", "--help")
    assert proc.returncode == 0
    for flag in ("--format", "--maxdim", "--threshold", "--coeff", "--threads", "--json"):
        assert flag in proc.stdout


# --------------------------------------------------------------------------- bad input -> exit 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rips", "{missing}"), r"no such file: .*missing\.txt"),
        (("rips", "{good}", "--format", "xyz"), r"argument --format: invalid choice: 'xyz'"),
        (("rips", "{ragged}"), r"ragged\.txt: line 2: expected 2 values"),
        (("rips", "{nan}"), r"nan\.txt: line 1, column 2: non-finite value nan"),
        (("rips", "{good}", "--coeff", "4"), r"argument --coeff: must be a prime"),
        (("rips", "{good}", "--maxdim", "-1"), r"argument --maxdim: must be >= 0"),
        (("rips", "{good}", "--threshold", "-2"), r"argument --threshold: must be a non-negative number"),
        (("rips", "{good}", "--threads", "0"), r"argument --threads: must be >= 1"),
        (("rips", "{good}", "--format", "distance"), r"must be square"),
        (("rips", "{dir}"), r"is a directory"),
        (("rips", "{good}", "--memory-limit", "1k"), r"memory|budget|limit"),
        (("frobnicate",), r"invalid choice: 'frobnicate'"),
        ((), r"required: COMMAND"),
    ],
    ids=[
        "missing",
        "bad-format",
        "ragged",
        "nan",
        "coeff",
        "maxdim",
        "threshold",
        "threads",
        "not-square",
        "directory",
        "memory-limit",
        "unknown-command",
        "no-command",
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    write_points(tmp_path / "good.txt", circle(30))
    (tmp_path / "ragged.txt").write_text("1 2\n3\n")
    (tmp_path / "nan.txt").write_text("1 nan\n")
    (tmp_path / "sub").mkdir()
    paths = {
        "missing": tmp_path / "missing.txt",
        "good": tmp_path / "good.txt",
        "ragged": tmp_path / "ragged.txt",
        "nan": tmp_path / "nan.txt",
        "dir": tmp_path / "sub",
    }
    proc = cli(*(a.format(**paths) for a in args))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert_no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tda-ray")
    assert re.search(message, lines[0]), lines[0]
    assert proc.stdout == ""


# --------------------------------------------------------------------------- progress and interrupts


def test_progress_bar_only_on_request(tmp_path: Path) -> None:
    path = write_points(tmp_path / "c.txt", circle(40, noise=0.1))
    quiet = cli("rips", path, "--maxdim", 2)  # stderr is a pipe, not a terminal: no bar
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = cli("rips", path, "--maxdim", 2, "--progress")
    assert loud.returncode == 0, loud.stderr
    assert "%" in loud.stderr and "Traceback" not in loud.stderr
    assert loud.stdout == quiet.stdout  # the bar never touches stdout


def test_ctrl_c_cancels_promptly(tmp_path: Path) -> None:
    # Runs ~12 s uncancelled (dense, maxdim 3, no threshold) in ~80 MB; 200 points finish in ~2.5 s now.
    pts = np.random.default_rng(7).random((300, 6))
    path = write_points(tmp_path / "big.txt", pts)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tda_ray.cli", "rips", str(path), "--maxdim", "3", "--progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        # A shell that starts a job in the background ignores SIGINT for it, and the child would
        # inherit that; restore the default so the interpreter installs its KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        time.sleep(2.5)  # past interpreter start-up and loading, into the computation
        if proc.poll() is not None:
            pytest.skip("computation finished before it could be interrupted")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert waited < 10, f"cancellation took {waited:.1f} s"


# --------------------------------------------------------------------------- shared data set


def test_shared_sphere_matches_ripser() -> None:
    path = DATASETS / "sphere_3_192.lower_distance_matrix"
    if not path.exists():
        pytest.skip(f"shared data set {path} not present (set TDA_DATASETS)")
    ripser = pytest.importorskip("ripser")
    proc = cli("rips", path, "--format", "lower-distance", "--maxdim", 2, "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["n_points"] == 192 and len(doc["diagrams"]) == 3

    from tda_ray.io import load

    ref = ripser.ripser(load(path), distance_matrix=True, maxdim=2)["dgms"]
    for dim, (got, want) in enumerate(zip(doc["diagrams"], ref, strict=True)):
        g = sorted_dgm([[b, math.inf if d is None else d] for b, d in got])
        w = sorted_dgm(want)
        # ripser.py computes in float32; drop its zero-length pairs, which engines may or may not report.
        g = g[g[:, 1] - g[:, 0] > 1e-6]
        w = w[w[:, 1] - w[:, 0] > 1e-6]
        assert g.shape == w.shape, f"dim {dim}: {len(g)} vs {len(w)} intervals"
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    # One connected component survives forever.
    assert sum(d is None for _, d in doc["diagrams"][0]) == 1


def test_cli_imports_no_server_code() -> None:
    code = (
        "import sys, tda_ray.cli as c; c.build_parser(); "
        "print(sorted(m for m in ('ray', 'fastapi', 'kafka', 'sqlalchemy') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_closed_pipe_ends_the_output_quietly(tmp_path: Path) -> None:
    """`tda-ray rips FILE | head` exits 0 without a traceback when head stops reading."""
    write_points(tmp_path / "many.txt", np.random.default_rng(0).random((8000, 2)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tda_ray.cli", "rips", str(tmp_path / "many.txt"), "--maxdim", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"# 8000 points")
    proc.stdout.close()  # the reader goes away; the ~200 KB left cannot be written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
