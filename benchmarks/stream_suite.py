"""Synthetic event streams with known anomalies, and how detections are scored against them.

Every stream is sampled at ``RATE_HZ`` events per second of event time and has anomalous segments whose
boundaries the generator knows.  Univariate streams (one value per event: the default spec embeds them
with a delay embedding):

* ``period_change`` — a noisy sine whose period changes for a while (mean and variance unchanged);
* ``shape_change`` — a sine becomes a square wave of the same mean and variance;
* ``new_oscillation`` — a slow sine plus noise gains a fast oscillation, rescaled to the same variance;
* ``noise_burst`` — the noise variance jumps;
* ``level_shift`` — the mean shifts;
* ``flatline`` — the signal freezes at its mean.

Multivariate flow-like events (bytes, packets, duration, port entropy; the default spec takes each event as
a point): ``port_scan`` (many tiny probes to many ports), ``ddos_burst`` (a flood of large flows) and
``beaconing`` (a fraction of the flows become identical periodic check-ins, the marginal mean and variance
kept).  The first three kinds keep mean and variance (per window) — where a windowed-Gaussian detector is
blind — the others do not.

Scoring: a window is anomalous when at least half of it lies in an anomalous segment, normal when none of it
does; windows partly inside, and windows still in warm-up, are left out. Precision, recall and F1 over
windows; the detection delay of a segment is the event time from its start to the end of the first alerting
window that overlaps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

RATE_HZ = 10.0
N_EVENTS = 4000
SEGMENTS = ((1800, 2400), (3200, 3600))  # anomalous event index ranges of every stream


@dataclass(frozen=True)
class Stream:
    kind: str
    values: np.ndarray  # (n,) or (n, d)
    segments: tuple[tuple[int, int], ...]  # event index ranges [a, b)
    keeps_moments: bool

    def times_ms(self, start_ms: int = 1_767_225_600_000) -> np.ndarray:
        return start_ms + np.round(np.arange(len(self.values)) * 1000 / RATE_HZ).astype(np.int64)


def _mask(n: int) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for a, b in SEGMENTS:
        m[a:b] = True
    return m


def _standardise_segments(x: np.ndarray, ref: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Rescale the anomalous part of x to the mean and standard deviation of ref there."""
    out: np.ndarray = x.copy()
    for a, b in SEGMENTS:
        seg = x[a:b]
        out[a:b] = (seg - seg.mean()) / (seg.std() or 1) * ref[a:b].std() + ref[a:b].mean()
    return out


def period_change(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    t = np.arange(n)
    m = _mask(n)
    x = np.sin(2 * np.pi * t / np.where(m, 13.0, 40.0)) + 0.15 * rng.normal(size=n)
    return Stream("period_change", x, SEGMENTS, True)


def shape_change(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    t = np.arange(n)
    m = _mask(n)
    sine = np.sin(2 * np.pi * t / 40.0)
    square = np.sign(sine) / np.sqrt(2)  # the same mean (0) and variance (1/2) as the sine
    x = np.where(m, square, sine) + 0.15 * rng.normal(size=n)
    return Stream("shape_change", x, SEGMENTS, True)


def new_oscillation(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    t = np.arange(n)
    m = _mask(n)
    base = 0.6 * np.sin(2 * np.pi * t / 400.0) + 0.5 * rng.normal(size=n)
    osc = base + 1.0 * np.sin(2 * np.pi * t / 11.0)
    x = np.where(m, _standardise_segments(osc, base, m), base)
    return Stream("new_oscillation", x, SEGMENTS, True)


def noise_burst(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    t = np.arange(n)
    m = _mask(n)
    x = np.sin(2 * np.pi * t / 40.0) + np.where(m, 0.8, 0.15) * rng.normal(size=n)
    return Stream("noise_burst", x, SEGMENTS, False)


def level_shift(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    t = np.arange(n)
    m = _mask(n)
    x = np.sin(2 * np.pi * t / 40.0) + 0.15 * rng.normal(size=n) + np.where(m, 1.5, 0.0)
    return Stream("level_shift", x, SEGMENTS, False)


def flatline(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    t = np.arange(n)
    m = _mask(n)
    x = np.where(m, 0.0, np.sin(2 * np.pi * t / 40.0) + 0.15 * rng.normal(size=n))
    return Stream("flatline", x, SEGMENTS, False)


def _flows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ordinary flows: log bytes, log packets, log duration, port entropy (correlated, lognormal-ish)."""
    size = rng.normal(0.0, 1.0, n)
    return np.asarray(
        np.c_[
            8.0 + 1.2 * size + 0.3 * rng.normal(size=n),
            3.0 + 0.9 * size + 0.3 * rng.normal(size=n),
            1.0 + 0.5 * size + 0.6 * rng.normal(size=n),
            2.0 + 0.4 * rng.normal(size=n),
        ]
    )


def port_scan(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    x = _flows(rng, n)
    m = _mask(n)
    k = int(m.sum())
    probes = np.c_[4.0 + 0.1 * rng.normal(size=k), 0.1 * rng.normal(size=k), -2.0 + 0.1 * rng.normal(size=k),
                   5.5 + 0.2 * rng.normal(size=k)]  # fmt: skip
    scan = m & (rng.random(n) < 0.7)
    x[scan] = probes[: int(scan.sum())]
    return Stream("port_scan", x, SEGMENTS, False)


def ddos_burst(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    x = _flows(rng, n)
    m = _mask(n)
    flood = m & (rng.random(n) < 0.8)
    x[flood] = x[flood] + np.array([3.0, 3.0, 0.5, -1.0])
    return Stream("ddos_burst", x, SEGMENTS, False)


def beaconing(rng: np.random.Generator, n: int = N_EVENTS) -> Stream:
    """Half of the anomalous segments' flows are one implant's identical check-ins (every 5th event at a
    fixed spot in feature space); the rest of the window is scaled so that each coordinate's mean and
    variance over the segment match the ordinary traffic's."""
    x = _flows(rng, n)
    m = _mask(n)
    beacon = np.array([7.2, 2.4, 0.7, 1.9])
    idx = np.flatnonzero(m)
    on = idx[::2]
    ref = _flows(rng, len(idx))
    x[on] = beacon + 0.01 * rng.normal(size=(len(on), 4))
    for a, b in SEGMENTS:
        seg = x[a:b]
        normal = ref[: b - a]
        x[a:b] = (seg - seg.mean(0)) / seg.std(0) * normal.std(0) + normal.mean(0)
    return Stream("beaconing", x, SEGMENTS, True)


KINDS: dict[str, Callable[[np.random.Generator], Stream]] = {
    f.__name__: f
    for f in (period_change, shape_change, new_oscillation, noise_burst, level_shift, flatline, port_scan,
              ddos_burst, beaconing)
}  # fmt: skip


def generate(seed: int = 0) -> list[Stream]:
    return [make(np.random.default_rng(seed * 100 + i)) for i, make in enumerate(KINDS.values())]


# --------------------------------------------------------------------------- evaluation


def event_ms(when: int | str) -> int:
    """Milliseconds since the epoch of a score record's window bound (RFC 3339 text) or of a number."""
    if isinstance(when, str):
        return round(datetime.fromisoformat(when).timestamp() * 1000)
    return int(when)


def window_labels(stream: Stream, records: Sequence[dict[str, Any]]) -> np.ndarray:
    """Per window 1 (at least half inside an anomalous segment, in event time), 0 (outside), or -1 (partly
    inside: left out of the scores, as either answer is defensible)."""
    t = stream.times_ms()
    spans = [(t[a], t[min(b, len(t)) - 1] + 1) for a, b in stream.segments]
    out = []
    for r in records:
        s, e = event_ms(r["window_start"]), event_ms(r["window_end"])
        inside = sum(max(0, min(e, b) - max(s, a)) for a, b in spans)
        out.append(1 if inside >= 0.5 * (e - s) else 0 if inside == 0 else -1)
    return np.asarray(out, dtype=np.int8)


def evaluate(stream: Stream, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Precision, recall, F1 over scored windows and the mean detection delay of the segments (s)."""
    scored = [r for r in records if not r["warmup"]]
    labels = window_labels(stream, scored)
    truth = labels[labels >= 0] == 1
    pred = np.asarray([bool(r["alert"]) for r, k in zip(scored, labels, strict=True) if k >= 0], dtype=bool)
    tp = int(np.sum(truth & pred))
    fp = int(np.sum(~truth & pred))
    fn = int(np.sum(truth & ~pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    t = stream.times_ms()
    delays = []
    for a, b in stream.segments:
        start, end = t[a], t[min(b, len(t)) - 1]
        hits = [
            event_ms(r["window_end"])
            for r in scored
            if r["alert"] and event_ms(r["window_end"]) > start and event_ms(r["window_start"]) < end
        ]
        if hits:
            delays.append((min(hits) - start) / 1000)
    return {
        "kind": stream.kind,
        "windows": len(scored),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alarms": fp,
        "segments_found": len(delays),
        "delay_s": float(np.mean(delays)) if delays else None,
    }
