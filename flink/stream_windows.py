"""Plain-Python core of the stream job's first stage: one source's events -> sliding windows -> point clouds.

No PyFlink import, so the logic is testable anywhere NumPy and jsonschema are; ``stream_job.py`` keeps one
:class:`SourceWindows` per source (Flink keyed state) and feeds it.  Nothing comes from ``tda_ray``: the
contracts are the JSON Schemas in ``schemas/`` (stream_spec, raw_data_event, window_cloud).

Event time is per source: a source's watermark is its latest event time minus the spec's
``out_of_orderness_s``, so sources whose clocks differ (a replay of last year's data next to a live
sensor) never hold each other back.  A window is emitted once the watermark has passed its end by the
allowed lateness; an event that would belong to a window already emitted is *late*: counted, reported in
the next window and dead-lettered, never silently mixed in.  Windows are numbered per source (``seq``) and
every emitted window depends only on the source's events and spec, not on arrival timing within the
out-of-orderness, so a replay of the same events yields the same windows.

Windows of ``unit: seconds`` are ``[k * slide, k * slide + size)`` in event time (ms since the epoch);
empty ones are skipped.  Windows of ``unit: events`` are ``size`` consecutive events in (event time,
event id) order, every ``slide`` events.  A quiet source (no event for the idle time) has the windows
it already completely covers emitted by a wall-clock timer.

Embeddings. ``vectors``: each event's values is a point, standardised with the source's mean and standard
deviation (Welford, over the events of its first ``SCALE_WINDOWS`` windows, then fixed: an anomaly must not
rescale the windows after it). ``delay``: a Takens delay embedding of one value, standardised the same way;
``dimension``/``delay`` ``auto`` are chosen once, from the source's first window, and kept: the delay is the
first lag at which the autocorrelation falls below 1/e (at most a quarter of the window), the dimension the
smallest one (2 to 8) with fewer than 10 % false nearest neighbours (Kennel, Brown, Abarbanel 1992: distance
ratio 15, attractor size 2), keeping at least half of the window's values as points.

Scale.  Every window carries the source's filtration scale: the median enclosing radius of its clouds
over the first ``SCALE_WINDOWS`` windows (``scale_final`` false until then), fixed afterwards; the window
workers vectorise on ``[0, scale]`` and compare lifetimes with it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCALE_WINDOWS = 5
MAX_AUTO_DIMENSION = 8
FNN_RATIO = 15.0
FNN_ATTRACTOR = 2.0
FNN_FRACTION = 0.1


# --------------------------------------------------------------------------- embeddings


def autocorrelation_delay(values: np.ndarray) -> int:
    """First lag whose autocorrelation is below 1/e (at most a quarter of the series; at least 1)."""
    x = np.asarray(values, dtype=np.float64) - np.mean(values)
    n = x.size
    var = float(np.dot(x, x))
    if n < 4 or var <= 0:
        return 1
    for lag in range(1, max(2, n // 4) + 1):
        if float(np.dot(x[:-lag], x[lag:])) / var < 1 / math.e:
            return lag
    return max(1, n // 4)


def delay_points(values: np.ndarray, dimension: int, delay: int) -> np.ndarray:
    """Rows (v_i, v_{i+delay}, ..., v_{i+(dimension-1) delay})."""
    n = values.size - (dimension - 1) * delay
    if n <= 0:
        return np.zeros((0, dimension))
    return np.stack([values[j * delay : j * delay + n] for j in range(dimension)], axis=1)


def false_neighbour_dimension(values: np.ndarray, delay: int) -> int:
    """Smallest dimension (2..8) with under 10 % false nearest neighbours; half the values stay points."""
    x = np.asarray(values, dtype=np.float64)
    spread = float(np.std(x)) or 1.0
    best = 2
    for d in range(1, MAX_AUTO_DIMENSION):
        n = x.size - d * delay  # points that have a (d + 1)-th coordinate
        if n < max(8, x.size // 2):
            break
        emb = delay_points(x, d, delay)[:n]
        dist = np.sqrt(((emb[:, None, :] - emb[None, :, :]) ** 2).sum(axis=2))
        np.fill_diagonal(dist, np.inf)
        nn = np.argmin(dist, axis=1)
        r = dist[np.arange(n), nn]
        extra = np.abs(x[np.arange(n) + d * delay] - x[nn + d * delay])
        false = (extra > FNN_RATIO * np.maximum(r, 1e-12)) | (np.sqrt(r**2 + extra**2) > FNN_ATTRACTOR * spread)
        best = d + 1
        if d >= 2 and float(np.mean(false)) < FNN_FRACTION:
            return d
    return max(2, min(best, MAX_AUTO_DIMENSION))


def enclosing_radius(points: np.ndarray) -> float:
    """min over points of the largest distance to another point (where every Rips complex is a cone)."""
    if points.shape[0] < 2:
        return 0.0
    sq = ((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
    return float(np.sqrt(np.min(np.max(sq, axis=1))))


# --------------------------------------------------------------------------- per-source state


@dataclass
class Welford:
    """Running mean and variance per coordinate."""

    n: int = 0
    mean: list[float] = field(default_factory=list)
    m2: list[float] = field(default_factory=list)

    def add(self, rows: np.ndarray) -> None:
        for row in rows:
            if not self.mean:
                self.mean, self.m2 = [0.0] * row.size, [0.0] * row.size
            self.n += 1
            for j, v in enumerate(row.tolist()):
                delta = v - self.mean[j]
                self.mean[j] += delta / self.n
                self.m2[j] += delta * (v - self.mean[j])

    def standardise(self, rows: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean)
        std = np.sqrt(np.asarray(self.m2) / max(self.n - 1, 1))
        return (rows - mean) / np.where(std > 0, std, 1.0)


@dataclass(order=True)
class Event:
    ts: int
    event_id: str
    values: list[float] = field(default_factory=list, compare=False)


@dataclass
class Window:
    start: int  # ms, event time
    end: int  # ms, exclusive
    events: list[Event]
    new: list[Event]  # the events no earlier window of the source held


@dataclass
class SourceWindows:
    """Everything the stream job keeps per source (Flink keyed state holds it pickled)."""

    source_id: str
    max_ts: int | None = None
    buffer: list[Event] = field(default_factory=list)  # sorted; not yet in an emitted window (or still needed)
    ids: dict[str, int] = field(default_factory=dict)  # event id -> ts of the events not yet final
    next_window: int | None = None  # seconds: index k of the next window; events: stream index of its start
    stream_index: int = 0  # events: stream index of buffer[0]
    final_key: tuple[int, str] | None = None  # events: (ts, id) of the last event of the last emitted window
    seq: int = 0
    late: int = 0  # late events since the last emitted window
    duplicates: int = 0
    stats: Welford = field(default_factory=Welford)
    counted_upto: int | None = None  # seconds: end of the last emitted window; events: stream index past it
    dimension: int | None = None
    delay: int | None = None
    radii: list[float] = field(default_factory=list)
    scale: float | None = None
    spec_version: int = 0

    # Flink pickles this state on every event: the event buffer goes as three flat lists (a third of the
    # time of pickling the Event objects), and the id index, which mirrors the buffer, is rebuilt.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        buffer, ids = state.pop("buffer"), state.pop("ids")
        assert len(ids) == len(buffer), "the id index mirrors the buffer"
        state["buffer_columns"] = ([e.ts for e in buffer], [e.event_id for e in buffer], [e.values for e in buffer])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "buffer_columns" in state:
            ts, event_ids, values = state.pop("buffer_columns")
            state["buffer"] = [Event(t, i, v) for t, i, v in zip(ts, event_ids, values, strict=True)]
            state["ids"] = {e.event_id: e.ts for e in state["buffer"]}
        self.__dict__.update(state)

    def reconfigure(self, spec: dict[str, Any]) -> None:
        """A new spec version: windows restart from the events not yet emitted; embedding and scale are
        chosen and learned again (the scoring stage starts a new warm-up); ``seq`` keeps counting."""
        version = int(spec.get("version", 0))
        if version == self.spec_version:
            return
        self.spec_version = version
        self.next_window, self.final_key, self.stream_index, self.counted_upto = None, None, 0, None
        self.dimension, self.delay, self.radii, self.scale = None, None, [], None

    # --- events ---------------------------------------------------------------------------------
    def add(self, event: Event, spec: dict[str, Any]) -> str:
        """``accepted``, ``duplicate`` or ``late``."""
        self.reconfigure(spec)
        if event.event_id in self.ids:
            self.duplicates += 1
            return "duplicate"
        if self._is_late(event, spec["window"]):
            self.late += 1
            return "late"
        bisect.insort(self.buffer, event)
        self.ids[event.event_id] = event.ts
        self.max_ts = event.ts if self.max_ts is None else max(self.max_ts, event.ts)
        return "accepted"

    def _is_late(self, event: Event, window: dict[str, Any]) -> bool:
        if window["unit"] == "events":
            return self.final_key is not None and (event.ts, event.event_id) <= self.final_key
        if self.next_window is None:
            return False
        size, slide = _ms(window["size"]), _ms(window["slide"])
        first = (event.ts - size) // slide + 1  # the earliest window holding ts
        return first < self.next_window

    def watermark(self, spec: dict[str, Any]) -> int | None:
        if self.max_ts is None:
            return None
        return self.max_ts - _ms(spec["window"]["out_of_orderness_s"])

    # --- windows ----------------------------------------------------------------------------------
    def due(self, spec: dict[str, Any], idle: bool = False) -> list[Window]:
        """Windows now closed, in order; removes what no later window needs.

        ``idle`` (the source has been quiet): also the windows its events so far cover completely.
        """
        if self.max_ts is None or not self.buffer:
            return []
        if spec["window"]["unit"] == "events":
            return self._due_counts(spec, idle)
        return self._due_times(spec, idle)

    def _due_times(self, spec: dict[str, Any], idle: bool) -> list[Window]:
        w = spec["window"]
        size, slide, lateness = _ms(w["size"]), _ms(w["slide"]), _ms(w["allowed_lateness_s"])
        assert self.max_ts is not None
        limit = self.max_ts + 1 if idle else (self.watermark(spec) or 0) - lateness
        if self.next_window is None:
            self.next_window = (self.buffer[0].ts - size) // slide + 1
        out = []
        while self.next_window * slide + size <= limit:
            start = self.next_window * slide
            lo = bisect.bisect_left(self.buffer, Event(start, ""))
            if lo == len(self.buffer):  # every window up to the limit is empty
                self.next_window = (limit - size) // slide + 1
                break
            first = (self.buffer[lo].ts - size) // slide + 1  # the earliest window holding the next event
            if first > self.next_window:
                self.next_window = first
                continue
            end = start + size
            hi = bisect.bisect_left(self.buffer, Event(end, ""))
            events = self.buffer[lo:hi]
            new = [e for e in events if self.counted_upto is None or e.ts >= self.counted_upto]
            self.counted_upto = end
            out.append(Window(start, end, events, new))
            self.next_window += 1
        self._drop(bisect.bisect_left(self.buffer, Event(self.next_window * slide, "")))
        return out

    def _due_counts(self, spec: dict[str, Any], idle: bool) -> list[Window]:
        w = spec["window"]
        size, slide = int(w["size"]), int(w["slide"])
        limit = None if idle else (self.watermark(spec) or 0) - _ms(w["allowed_lateness_s"])
        if self.next_window is None:
            self.next_window = 0
        out = []
        while True:
            lo = self.next_window - self.stream_index
            hi = lo + size
            if hi > len(self.buffer) or (limit is not None and self.buffer[hi - 1].ts > limit):
                break
            events = self.buffer[lo:hi]
            done = self.counted_upto if self.counted_upto is not None else self.next_window
            new = events[max(0, done - self.next_window) :]
            self.counted_upto = self.next_window + size
            last = events[-1]
            out.append(Window(events[0].ts, last.ts + 1, events, new))
            self.final_key = (last.ts, last.event_id)
            self.next_window += slide
        drop = max(0, min(self.next_window - self.stream_index, len(self.buffer)))
        self._drop(drop)
        self.stream_index += drop
        return out

    def _drop(self, n: int) -> None:
        for e in self.buffer[:n]:
            self.ids.pop(e.event_id, None)
        del self.buffer[:n]

    # --- clouds -------------------------------------------------------------------------------------
    def cloud(self, spec: dict[str, Any], window: Window) -> dict[str, Any]:
        """The window's point cloud message body (window_cloud v1, without the wall-clock field)."""
        emb = spec["embedding"]
        values = np.asarray([e.values for e in window.events], dtype=np.float64)
        if window.new and self.scale is None:  # learning: the events no earlier window held join the statistics
            self.stats.add(np.asarray([e.values for e in window.new], dtype=np.float64))
        if emb["kind"] == "vectors":
            points = self.stats.standardise(values)
            dimension, delay = points.shape[1], 1
        else:
            j = int(emb.get("value_index", 0))
            if j >= values.shape[1]:
                raise ValueError(f"value_index {j} but events of {self.source_id} have {values.shape[1]} values")
            series = (values[:, j] - self.stats.mean[j]) / (self._std(j) or 1.0)
            dimension, delay = self._embedding(emb, series)
            points = delay_points(series, dimension, delay)
        if self.scale is None:
            self.radii.append(enclosing_radius(points))
        scale = self.scale if self.scale is not None else float(np.median(self.radii))
        if self.scale is None and len(self.radii) >= SCALE_WINDOWS:
            self.scale = scale
        body = {
            "schema_version": 1,
            "source_id": self.source_id,
            "seq": self.seq,
            "window_start": int(window.start),
            "window_end": int(window.end),
            "spec_version": int(spec.get("version", 0)),
            "events": len(window.events),
            "embedding": {"kind": emb["kind"], "dimension": int(dimension), "delay": int(delay)},
            "maxdim": int(spec["maxdim"]),
            "vector": dict(spec["vector"]),
            "scale": scale if scale > 0 else 1.0,
            "scale_final": self.scale is not None and len(self.radii) > SCALE_WINDOWS - 1,
            "moments": {"mean": values.mean(axis=0).tolist(), "std": values.std(axis=0).tolist()},
            "points": np.round(points, 9).tolist(),
            "late_events": self.late,
        }
        self.seq += 1
        self.late = 0
        return body

    def _std(self, j: int) -> float:
        return math.sqrt(self.stats.m2[j] / max(self.stats.n - 1, 1))

    def _embedding(self, emb: dict[str, Any], series: np.ndarray) -> tuple[int, int]:
        if self.delay is None:
            self.delay = autocorrelation_delay(series) if emb.get("delay", "auto") == "auto" else int(emb["delay"])
        if self.dimension is None:
            d = emb.get("dimension", "auto")
            self.dimension = false_neighbour_dimension(series, self.delay) if d == "auto" else int(d)
        # An explicit spec wins over what was chosen for an earlier one.
        delay = self.delay if emb.get("delay", "auto") == "auto" else int(emb["delay"])
        dimension = self.dimension if emb.get("dimension", "auto") == "auto" else int(emb["dimension"])
        return dimension, delay


def _ms(seconds: float) -> int:
    return round(float(seconds) * 1000)
