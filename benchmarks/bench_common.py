"""Small pieces the benchmark scripts share: loading a repository module by path, percentiles, and
rewriting one marked section of BENCHMARKS.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"


def load_module(name: str, relpath: str) -> ModuleType:
    """A module of the repository that is not in a package (tests/support/service.py, infra/kafka/broker.py)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relpath)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickling look their module up here
    spec.loader.exec_module(mod)
    return mod


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def replace_section(text: str, start: str, end: str, heading: str | None = None) -> None:
    """Put ``text`` between the markers ``start``/``end`` of BENCHMARKS.md; append them (after ``heading``)
    when absent."""
    doc = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip("\n") + ("\n\n" + heading if heading else "") + f"\n\n{block}\n"
    BENCHMARKS_MD.write_text(doc)
