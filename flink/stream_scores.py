"""Plain-Python core of the stream job's scoring stage: one source's window features -> anomaly scores.

No PyFlink import (``stream_job.py`` keeps one :class:`SourceScores` per source in keyed state). Windows
are scored in ``seq`` order whatever order the window workers deliver them in, and each ``seq`` once
(delivery is at least once): a window waits until every earlier one has arrived.

The baseline of a source is its last ``baseline_windows`` windows that scored below ``LEARN_BELOW`` (the
first ``warmup_windows`` of them, after the scale is learned, form it before anything is scored), so it
follows slow drift while an anomaly, even one just under the threshold, does not teach it.  A new spec
version starts a new baseline.  The scored features are the window's topological ones (Betti numbers of
long bars, total persistence, largest lifetime — but in dimension 0 —, entropy, per dimension), its raw
values' mean and standard deviation, and ``vector_distance``: the smaller of the distances of its
vectorization to the previous window's and to the baseline's median one (a change into the unusual shows
in both, the first window back to normal only in the first).  For each, the deviation is a robust z-score
``|x - median| / sigma`` over the baseline with ``sigma = max(1.4826 MAD, std, (q99 - q01) / 4.65, floor)``
(the third term: a heavy-tailed feature is judged by its own tails; the floor: a feature that rarely moves
still gets a finite scale, for Betti numbers at least ``sqrt(median + 1)`` as they move by whole bars).
Its tail probability is the larger of the normal one, ``erfc(z / sqrt 2)``, and the share of baseline
windows that deviated at least as much (what the baseline has already seen is never anomalous).  The
window's score is ``(1 - min p) ^ F`` for F features (Sidak's correction: for a stationary stream
``1 - score`` is about the chance that the most extreme of F features is as extreme), in [0, 1].  An
alert when the score reaches the spec's threshold; its reasons are the features with ``z >= 3``, largest
first.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from feature_stats import format_timestamp_ms as rfc3339

REASON_Z = 3.0
MAX_REASONS = 5
MAX_PENDING = 256  # windows waiting for an earlier one; past this the missing one is given up (logged)
Z_CAP = 40.0


# Reported, not scored: the largest H0 lifetime is how isolated the window's single most outlying event is,
# a record statistic that one unusual event sets for a whole window length (a per-event detector's job).
UNSCORED = frozenset({"max_lifetime_0"})
# Only windows scoring below this join the baseline: an anomaly just under the threshold must not teach
# the baseline (its like would pass as "seen" from then on), while ordinary windows and slow drift do.
LEARN_BELOW = 0.99


@dataclass
class SourceScores:
    """What the scoring stage keeps per source."""

    source_id: str
    next_seq: int = 0
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    baseline: deque[dict[str, float]] = field(default_factory=deque)
    vectors: deque[list[float]] = field(default_factory=deque)  # the baseline windows' vectorizations
    baseline_filled: int = 0  # warm-up windows taken so far (the baseline exists once this reaches warm-up)
    previous_vector: list[float] | None = None
    skipped: int = 0
    spec_version: int = 0

    def add(self, features: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Score records now due (in seq order); an already scored or already waiting seq adds nothing."""
        seq = int(features["seq"])
        if seq < self.next_seq or seq in self.pending:
            return []
        self.pending[seq] = features
        out = []
        if len(self.pending) > MAX_PENDING and self.next_seq not in self.pending:
            self.skipped += 1
            self.next_seq = min(self.pending)  # a window that never came: do not wait for ever
        while self.next_seq in self.pending:
            out.append(self._score(self.pending.pop(self.next_seq), spec))
            self.next_seq += 1
        return out

    def _features(self, msg: dict[str, Any]) -> tuple[dict[str, float], list[float]]:
        f = {k: float(v) for k, v in msg["features"].items()}
        vector = [float(x) for x in msg.get("vector") or []]
        prev = self.previous_vector
        if vector and prev is not None and len(prev) == len(vector):
            v = np.asarray(vector)
            step = float(np.sqrt(np.mean((v - np.asarray(prev)) ** 2)))
            # ... and to the baseline's typical vector: a change into the unusual shows in both, the first
            # window back to normal after an anomaly only in the first.
            typical = np.median(np.asarray(self.vectors), axis=0) if self.vectors else v
            f["vector_distance"] = min(step, float(np.sqrt(np.mean((v - typical) ** 2))))
        else:
            f["vector_distance"] = 0.0
        if vector:
            self.previous_vector = vector
        return f, vector

    def _score(self, msg: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        scoring = spec["scoring"]
        record = {
            "schema_version": 1,
            "source_id": self.source_id,
            "seq": int(msg["seq"]),
            "window_start": rfc3339(int(msg["window_start"])),
            "window_end": rfc3339(int(msg["window_end"])),
            "n_events": int(msg.get("n_events", 0)),
            "spec_version": int(msg["spec_version"]),
            "threshold": float(scoring["threshold"]),
            "error": msg.get("error"),
        }
        if msg.get("error"):
            return {
                **record,
                "score": 0.0,
                "alert": False,
                "warmup": False,
                "reasons": [],
                "features": {},
                "vector": [],
            }
        if int(msg["spec_version"]) != self.spec_version:  # a new spec: a new baseline
            self.spec_version = int(msg["spec_version"])
            self.baseline.clear()
            self.vectors.clear()
            self.baseline_filled = 0
            self.previous_vector = None
        f, vector = self._features(msg)
        ready = self.baseline_filled >= int(scoring["warmup_windows"])
        if not ready or not msg.get("scale_final", True):
            if msg.get("scale_final", True):
                self._learn(f, vector, scoring)
                self.baseline_filled += 1
            return {
                **record,
                "score": 0.0,
                "alert": False,
                "warmup": True,
                "reasons": [],
                "features": f,
                "vector": vector,
            }
        score, reasons = self._deviation(f)
        alert = score >= float(scoring["threshold"])
        if score < LEARN_BELOW:
            self._learn(f, vector, scoring)
        return {
            **record,
            "score": score,
            "alert": alert,
            "warmup": False,
            "reasons": reasons,
            "features": f,
            "vector": vector,
        }

    def _learn(self, f: dict[str, float], vector: list[float], scoring: dict[str, Any]) -> None:
        self.baseline.append(f)
        if vector:
            self.vectors.append(vector)
        while len(self.baseline) > int(scoring["baseline_windows"]):
            self.baseline.popleft()
        while len(self.vectors) > int(scoring["baseline_windows"]):
            self.vectors.popleft()

    def _deviation(self, f: dict[str, float]) -> tuple[float, list[dict[str, Any]]]:
        names = sorted(n for n in f if n not in UNSCORED)
        base = np.asarray([[b.get(n, 0.0) for n in names] for b in self.baseline], dtype=np.float64)
        x = np.asarray([f[n] for n in names])
        med = np.median(base, axis=0)
        mad = np.median(np.abs(base - med), axis=0)
        floor = 1e-3 * (np.abs(med) + 1e-3)
        # Counts (Betti numbers of long bars) move by whole bars: at least a Poisson-like spread.
        counts = np.asarray([n.startswith("betti_") for n in names])
        floor = np.where(counts, np.sqrt(np.abs(med) + 1.0), floor)
        # A heavy-tailed feature is judged by its tails: the spread of its 1 %..99 % quantiles.
        q01, q99 = np.quantile(base, [0.01, 0.99], axis=0)
        sigma = np.maximum.reduce([1.4826 * mad, np.std(base, axis=0), (q99 - q01) / 4.65, floor])
        dev = np.abs(x - med)
        z = np.minimum(dev / sigma, Z_CAP)
        # A deviation the unalarmed baseline has already seen is not anomalous, however it scores
        # in normal terms: the tail probability is at least the baseline's share of such deviations.
        seen = np.mean(np.abs(base - med) >= dev, axis=0)
        p = np.maximum([math.erfc(float(v) / math.sqrt(2)) for v in z], seen)
        p_min = float(p.min())
        score = float((1.0 - p_min) ** len(names))
        order = np.argsort(-z, kind="stable")
        reasons = [
            {"feature": names[i], "value": float(x[i]), "baseline": float(med[i]), "z": float(z[i])}
            for i in order[:MAX_REASONS]
            if z[i] >= REASON_Z
        ]
        return score, reasons
