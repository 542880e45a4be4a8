"""The Flink stream job's per-source windowing (flink/stream_windows.py), in plain Python: what it emits
depends only on a source's events, however they arrive and however often its state is pickled (Flink
keeps it pickled in keyed state and restores it after a failure)."""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FLINK_DIR = Path(__file__).resolve().parents[1] / "flink"


@pytest.fixture(scope="module")
def flink() -> Any:
    sys.path.insert(0, str(FLINK_DIR))
    try:
        yield importlib.import_module("stream_windows"), importlib.import_module("streams")
    finally:
        sys.path.remove(str(FLINK_DIR))


def spec_of(streams: Any, **window: Any) -> dict[str, Any]:
    from tda_ray.service.jobs.streams import default_spec
    from tda_ray.service.settings import StreamSettings

    spec = default_spec("s", StreamSettings())
    spec["window"] = {**spec["window"], **window}
    return dict(streams.resolve_spec(spec, 1))


def run(sw_mod: Any, spec: dict[str, Any], events: list[Any], pickle_every: int = 0) -> list[dict[str, Any]]:
    state = sw_mod.SourceWindows("s")
    out: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        state.add(e, spec)
        out += [state.cloud(spec, w) for w in state.due(spec)]
        if pickle_every and i % pickle_every == 0:
            state = pickle.loads(pickle.dumps(state))
    out += [state.cloud(spec, w) for w in state.due(spec, idle=True)]
    return out


def series(sw_mod: Any, n: int, seed: int = 0) -> list[Any]:
    x = np.sin(np.arange(n) * 2 * np.pi / 30) + 0.1 * np.random.default_rng(seed).normal(size=n)
    return [sw_mod.Event(1_577_836_800_000 + 100 * i, f"e{i}", [float(v)]) for i, v in enumerate(x)]


@pytest.mark.parametrize("unit", ["events", "seconds"])
def test_pickled_state_emits_the_same_windows(flink: Any, unit: str) -> None:
    sw_mod, streams = flink
    spec = spec_of(streams, unit=unit, size=120 if unit == "events" else 12.0, slide=20 if unit == "events" else 2.0)
    evs = series(sw_mod, 1500)
    plain = run(sw_mod, spec, evs)
    assert len(plain) > 50
    assert run(sw_mod, spec, evs, pickle_every=1) == plain
    assert run(sw_mod, spec, evs, pickle_every=37) == plain


def test_duplicates_count_once_and_shuffled_arrival_within_the_bound_changes_nothing(flink: Any) -> None:
    sw_mod, streams = flink
    spec = spec_of(streams)
    evs = series(sw_mod, 1200)
    plain = run(sw_mod, spec, evs)
    rng = np.random.default_rng(1)
    shuffled = []
    for i in range(0, len(evs), 10):  # shuffled within 1 s of event time, each sent twice
        chunk = [evs[j] for j in i + rng.permutation(min(10, len(evs) - i))]
        shuffled += chunk + chunk[:3]
    state = sw_mod.SourceWindows("s")
    got, verdicts = [], []
    for e in shuffled:
        verdicts.append(state.add(e, spec))
        got += [state.cloud(spec, w) for w in state.due(spec)]
    got += [state.cloud(spec, w) for w in state.due(spec, idle=True)]
    assert verdicts.count("duplicate") == len(shuffled) - len(evs)
    assert [{k: v for k, v in c.items() if k != "late_events"} for c in got] == [
        {k: v for k, v in c.items() if k != "late_events"} for c in plain
    ]


def test_an_event_for_an_emitted_window_is_late(flink: Any) -> None:
    sw_mod, streams = flink
    spec = spec_of(streams, unit="seconds", size=12.0, slide=2.0)
    state = sw_mod.SourceWindows("s")
    emitted = []
    for e in series(sw_mod, 600):
        state.add(e, spec)
        emitted += state.due(spec)
    assert emitted
    stale = sw_mod.Event(emitted[0].start + 1, "stale", [0.0])
    assert state.add(stale, spec) == "late"
    assert state.late == 1
