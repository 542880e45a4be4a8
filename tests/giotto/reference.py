"""giotto-tda's outputs for tests/test_learn_giotto.py, run in giotto-tda's own virtualenv (mk/giotto.mk).

    python reference.py CASES.json INPUTS.npz OUTPUTS.npz

CASES.json: a list of {"name", "steps": [[class name, params], ...], "input", "fit_input" (optional)}; each case
fits the steps' pipeline on ``fit_input`` (default ``input``), transforms ``input`` and stores the result under
``name``.  Inputs whose key ends in ``__list`` are stacks to split into a list of arrays along axis 0 (their
``__lengths`` entry gives each one's length).  ``weight_function`` names one of WEIGHTS.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import numpy as np
from gtda import diagrams, homology, time_series
from sklearn.pipeline import make_pipeline

CLASSES = {
    "VietorisRipsPersistence": homology.VietorisRipsPersistence,
    "CubicalPersistence": homology.CubicalPersistence,
    "BettiCurve": diagrams.BettiCurve,
    "PersistenceLandscape": diagrams.PersistenceLandscape,
    "PersistenceImage": diagrams.PersistenceImage,
    "Silhouette": diagrams.Silhouette,
    "Amplitude": diagrams.Amplitude,
    "PersistenceEntropy": diagrams.PersistenceEntropy,
    "SlidingWindow": time_series.SlidingWindow,
    "TakensEmbedding": time_series.TakensEmbedding,
}
WEIGHTS = {"square": np.square, "sqrt": np.sqrt}


def _params(params: dict) -> dict:
    out = dict(params)
    if "weight_function" in out:
        out["weight_function"] = WEIGHTS[out["weight_function"]]
    if isinstance(out.get("metric_params"), dict) and "weight_function" in out["metric_params"]:
        out["metric_params"] = _params(out["metric_params"])
    if out.get("max_edge_length") == "inf":
        out["max_edge_length"] = np.inf
    return out


def _input(data: dict, key: str):
    if key.endswith("__list"):
        stacked, lengths = data[key], data[key + "__lengths"]
        return [stacked[i, :n] for i, n in enumerate(lengths)]
    return data[key]


def main() -> None:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    data = dict(np.load(sys.argv[2]))
    out = {}
    warnings.simplefilter("ignore")
    for case in cases:
        steps = [CLASSES[name](**_params(params)) for name, params in case["steps"]]
        pipe = make_pipeline(*steps)
        pipe.fit(_input(data, case.get("fit_input", case["input"])))
        result = pipe.transform(_input(data, case["input"]))
        if isinstance(result, list):
            for i, r in enumerate(result):
                out[f"{case['name']}__{i}"] = np.asarray(r)
        else:
            out[case["name"]] = np.asarray(result)
    savez: Any = np.savez  # its stubs take the arrays' names for its keyword options
    savez(sys.argv[3], **out)


if __name__ == "__main__":
    main()
