"""giotto-tda's outputs for the transformer tests, computed in its own virtualenv (mk/giotto.mk) by
tests/giotto/reference.py; the tests skip with the reason when that interpreter is absent."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tests" / "giotto" / "reference.py"


def interpreter() -> Path | None:
    """giotto-tda's Python: $TDA_GIOTTO_PYTHON or .cache/giotto/venv (`make giotto-venv`)."""
    path = Path(os.environ.get("TDA_GIOTTO_PYTHON", REPO_ROOT / ".cache" / "giotto" / "venv" / "bin" / "python"))
    return path if path.exists() else None


def stack_list(arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """A list of arrays of different lengths as (stack, lengths), the form reference.py splits again."""
    n = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), n, *arrays[0].shape[1:]))
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return {"stack": out, "lengths": np.array([a.shape[0] for a in arrays])}


def run(cases: list[dict[str, Any]], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """giotto-tda's result of each case (see tests/giotto/reference.py)."""
    python = interpreter()
    assert python is not None, "giotto-tda's virtualenv is missing (make giotto-venv)"
    with tempfile.TemporaryDirectory() as tmp:
        spec, data, result = Path(tmp, "cases.json"), Path(tmp, "in.npz"), Path(tmp, "out.npz")
        spec.write_text(json.dumps(cases))
        savez: Any = np.savez  # its stubs take the arrays' names for its keyword options
        savez(data, **inputs)
        proc = subprocess.run(
            [str(python), str(SCRIPT), str(spec), str(data), str(result)], capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        return dict(np.load(result))
