"""The architecture's dependency rules (import-linter contracts in pyproject.toml) hold, and break when a
module breaks them; the Flink job's defaults are the service's; module and function sizes stay small."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tda_ray.service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
# `lint-imports`, with the editable install's import hook removed first: it resolves `tda_ray` to the
# checkout whatever the path says, and the tree to analyse is the one in the working directory.
LINT = (
    "import sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith('_editable')]; "
    "from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def _copy_tree(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.so", ".venv")
    shutil.copytree(REPO_ROOT / "tda_ray", dst / "tda_ray", ignore=ignore)
    shutil.copytree(REPO_ROOT / "flink", dst / "flink", ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", dst / "pyproject.toml")


def test_the_contracts_hold() -> None:
    proc = lint_imports(REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("tda_ray/engine/rips.py", "import ray", "know nothing of Ray"),
        ("tda_ray/io/npy.py", "import sqlalchemy", "know nothing of Ray"),
        ("tda_ray/service/http/routes/jobs.py", "from tda_ray.service.store import Store", "only through the jobs"),
        ("tda_ray/service/jobs/service.py", "import kafka", "Kafka only inside the streaming package"),
        ("tda_ray/service/streaming/sink.py", "from tda_ray.service.store import Store", "never the store"),
        ("tda_ray/client.py", "from tda_ray.service.jobs import JobService", "client imports no server code"),
        ("flink/feature_stats.py", "import tda_ray.engine", "flink/ imports nothing from tda_ray"),
        ("tda_ray/engine/result.py", "from tda_ray.distributed import landmarks", "Top level"),
        ("tda_ray/service/store/store.py", "from tda_ray.service.jobs import errors", "Service layers"),
    ],
    ids=["engine-ray", "io-sql", "http-store", "jobs-kafka", "sink-store", "client-server", "flink", "layers", "svc"],
)
def test_a_violation_fails_the_check(tmp_path: Path, module: str, line: str, contract: str) -> None:
    _copy_tree(tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # deliberate violation\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0, proc.stdout[-3000:]
    broken = " ".join(proc.stdout.split("Broken contracts", 1)[-1].split())
    assert contract in broken, proc.stdout[-3000:]


def _load_flink_module(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"tda_flink_{name}", REPO_ROOT / "flink" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(("module", "at_least"), [("feature_stats", 15), ("streams", 24)])
def test_the_flink_jobs_defaults_are_the_services(monkeypatch: pytest.MonkeyPatch, module: str, at_least: int) -> None:
    for name in [n for n in os.environ if n.startswith("TDA_")]:
        monkeypatch.delenv(name)
    monkeypatch.syspath_prepend(str(REPO_ROOT / "flink"))  # the stream job's modules import each other
    settings = Settings()
    fs = _load_flink_module(module)
    checked = 0
    for flag, env_var, default, kind, _help in fs.OPTIONS:  # type: ignore[attr-defined]
        name = env_var.removeprefix("TDA_").lower()
        group, _, field = name.partition("_")
        sub = getattr(settings, group, None)
        if name in Settings.model_fields:  # a setting of the service itself (TDA_LOOPBACK_ONLY)
            sub, field = settings, name
        elif sub is None or field not in type(sub).model_fields:
            continue  # paths of this checkout (schema, jars, interpreter)
        assert kind(default) == getattr(sub, field), f"{flag} ({env_var}): {default!r} vs {getattr(sub, field)!r}"
        checked += 1
    assert checked >= at_least


def _sizes(path: Path) -> tuple[int, list[tuple[str, int]]]:
    text = path.read_text()
    tree = ast.parse(text)
    funcs = [
        (f"{path.name}:{node.name}", node.end_lineno - node.lineno + 1)  # type: ignore[operator]
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    return len(text.splitlines()), funcs


def test_modules_and_functions_stay_small() -> None:
    too_long, long_funcs = [], []
    for path in sorted((REPO_ROOT / "tda_ray").rglob("*.py")):
        lines, funcs = _sizes(path)
        if lines > 500:
            too_long.append((str(path.relative_to(REPO_ROOT)), lines))
        long_funcs += [(name, n) for name, n in funcs if n > 80]
    assert not too_long, too_long
    assert not long_funcs, long_funcs
