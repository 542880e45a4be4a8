"""Events from a CSV file for ``tda-ray events replay`` and :meth:`tda_ray.client.Client.replay_csv`
(standard library only, so the client stays light)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

__all__ = ["read_csv_events", "rfc3339"]


def rfc3339(when: Any) -> str:
    """RFC 3339 text of a datetime, of epoch milliseconds (an int), or the text itself."""
    if isinstance(when, datetime):
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(when, (int, float)):
        return datetime.fromtimestamp(when / 1000, tz=timezone.utc).isoformat()
    return str(when)


def _event_time(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return text.strip()  # RFC 3339 text: the server checks it
    return rfc3339(value if value > 1e11 else value * 1000)


def read_csv_events(
    path: str | os.PathLike[str], source: str, time_column: str, value_columns: list[str]
) -> Iterator[dict[str, Any]]:
    """The rows of a CSV file as events of ``source`` (ValueError naming the row of a bad value)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in [time_column, *value_columns] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; columns are {reader.fieldnames}")
        for row_no, row in enumerate(reader):
            try:
                values = [float(row[c]) for c in value_columns]
            except (TypeError, ValueError):
                raise ValueError(f"{path}: row {row_no + 1}: a value column is not a number") from None
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{path}: row {row_no + 1}: a value is not finite")
            yield {
                "source_id": source,
                "event_id": f"{source}-{row_no}",
                "event_time": _event_time(row[time_column]),
                "values": values,
            }
