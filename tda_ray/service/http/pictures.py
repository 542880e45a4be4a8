"""Pictures of results (matplotlib, headless): the persistence diagram as SVG or PNG."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["render_diagram"]


def render_diagram(diagrams: list[npt.NDArray[np.float64]], fmt: Literal["svg", "png"], title: str) -> bytes:
    """The persistence diagram as a picture; essential classes sit on a dashed line marked ∞."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # Figure, not pyplot: no global state shared between threads

    finite = [d[np.isfinite(d[:, 1])] for d in diagrams]
    values = np.concatenate([f.ravel() for f in finite] + [d[:, 0] for d in diagrams] + [np.zeros(1)])
    hi = float(values.max()) if values.size else 1.0
    hi = hi if hi > 0 else 1.0
    top = hi * 1.1
    fig = Figure(figsize=(5.0, 5.0), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0, top * 1.05], [0, top * 1.05], color="0.4", lw=0.8)
    if any(np.isinf(d[:, 1]).any() for d in diagrams):
        ax.axhline(top, color="0.4", lw=0.8, ls="--")
        ax.text(0, top, " ∞", va="bottom", ha="left")
    for k, d in enumerate(diagrams):
        if d.size:
            deaths = np.where(np.isinf(d[:, 1]), top, d[:, 1])
            ax.scatter(d[:, 0], deaths, s=14, alpha=0.8, label=f"H{k} ({d.shape[0]})")
    ax.set_xlim(-0.02 * top, top * 1.05)
    ax.set_ylim(-0.02 * top, top * 1.08)
    ax.set_xlabel("birth")
    ax.set_ylabel("death")
    ax.set_title(title, fontsize=9)
    if any(d.size for d in diagrams):
        ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()
