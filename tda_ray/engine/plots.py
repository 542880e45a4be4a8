"""Pictures of diagrams with matplotlib: the persistence diagram and the barcode.

Both draw on a :class:`matplotlib.figure.Figure` (never pyplot: no global state, safe in server threads and
headless processes) and return it; pass ``ax`` to draw into an axes of your own figure instead.  ``diagrams``
is what the package hands out: a list of ``(k, 2)`` arrays (index = homology dimension), one ``(k, 2)`` array, a
:class:`~tda_ray.engine.result.PersistenceResult`, or one sample of a padded giotto-tda collection (``(k, 3)``
triples; its padding is left out).  Essential classes (death ``inf``) sit on a dashed line marked ∞ (diagram)
or run to the right edge under ∞ (barcode), as in persim's ``plot_diagrams``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tda_ray.engine.diagrams import as_pairs

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]

__all__ = ["as_diagram_list", "plot_barcode", "plot_diagrams"]


def as_diagram_list(diagrams: Any) -> list[tuple[str, FloatArray]]:
    """(label, pairs) per homology dimension from any of the accepted forms."""
    if hasattr(diagrams, "diagrams"):
        diagrams = diagrams.diagrams
    if isinstance(diagrams, np.ndarray) and diagrams.ndim == 2 and diagrams.shape[1] == 3:
        keep = diagrams[diagrams[:, 0] < diagrams[:, 1]]
        return [(f"H{int(d)}", keep[keep[:, 2] == d, :2]) for d in np.unique(diagrams[:, 2])]
    if isinstance(diagrams, np.ndarray) and diagrams.ndim == 2:
        return [("H0", as_pairs(diagrams))]
    if not isinstance(diagrams, Sequence):
        raise ValueError("diagrams must be a list of (k, 2) arrays, one (k, 2) array or a PersistenceResult")
    return [(f"H{k}", as_pairs(d, f"diagrams[{k}]")) for k, d in enumerate(diagrams)]


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    return fig, fig.add_subplot()


def _top(dgms: list[tuple[str, FloatArray]]) -> float:
    """Largest finite value drawn (1 for nothing), so the infinity line sits just above it."""
    values = np.concatenate([d[np.isfinite(d)] for _, d in dgms] + [np.zeros(1)])
    hi = float(np.max(np.abs(values)))
    return hi if hi > 0 else 1.0


def plot_diagrams(
    diagrams: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    labels: Sequence[str] | None = None,
    lifetime: bool = False,
    size: float = 14,
    legend: bool = True,
    figsize: tuple[float, float] = (5.0, 5.0),
) -> Figure:
    """The persistence diagram: one scatter per homology dimension, the diagonal, essential classes on the ∞
    line.  ``lifetime`` draws (birth, death - birth) instead, the diagonal becoming the axis."""
    dgms = as_diagram_list(diagrams)
    if labels is not None:
        dgms = [(str(lab), d) for lab, (_, d) in zip(labels, dgms, strict=False)]
    fig, axes = _axes(ax, figsize)
    lows = np.concatenate([d[:, 0] for _, d in dgms] + [np.zeros(1)])
    lo, top = min(0.0, float(lows.min())), _top(dgms) * 1.1
    pad = 0.02 * (top - lo)
    axes.plot([lo, top + pad], [0, 0] if lifetime else [lo, top + pad], color="0.4", lw=0.8)
    if any(np.isinf(d[:, 1]).any() for _, d in dgms):
        axes.axhline(top, color="0.4", lw=0.8, ls="--")
        axes.text(lo, top, " ∞", va="bottom", ha="left")
    for k, (label, d) in enumerate(dgms):  # colour Ck for dimension k, in both pictures
        if d.size:
            deaths = np.where(np.isinf(d[:, 1]), top, d[:, 1])
            y = np.where(np.isinf(d[:, 1]), top, deaths - d[:, 0] if lifetime else deaths)
            axes.scatter(d[:, 0], y, s=size, alpha=0.8, color=f"C{k}", label=f"{label} ({len(d)})")
    axes.set_xlim(lo - pad, top + pad)
    axes.set_ylim((0 if lifetime else lo) - pad, top + 2 * pad)
    axes.set_xlabel("birth")
    axes.set_ylabel("lifetime" if lifetime else "death")
    if title:
        axes.set_title(title, fontsize=9)
    if legend and any(d.size for _, d in dgms):
        axes.legend(loc="lower right")
    return fig


def plot_barcode(
    diagrams: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    order: str = "birth",
    figsize: tuple[float, float] = (6.0, 4.0),
) -> Figure:
    """The barcode: one horizontal bar per pair, the dimensions stacked from H0 at the top, each sorted by birth
    (``order="birth"``) or longest first (``order="length"``); essential bars run to the ∞ edge."""
    if order not in ("birth", "length"):
        raise ValueError(f"order must be 'birth' or 'length', got {order!r}")
    dgms = as_diagram_list(diagrams)
    fig, axes = _axes(ax, figsize)
    top = _top(dgms) * 1.1
    row, ticks = 0, []
    for k, (label, d) in enumerate(dgms):
        if not d.size:
            continue
        deaths = np.where(np.isinf(d[:, 1]), top, d[:, 1])
        key = d[:, 0] if order == "birth" else -(deaths - d[:, 0])
        idx = np.argsort(key, kind="stable")
        rows = row + np.arange(idx.size)
        axes.hlines(rows, d[idx, 0], deaths[idx], colors=f"C{k}", lw=1.5, label=f"{label} ({len(d)})")
        ticks.append((row + (idx.size - 1) / 2, label))
        row += idx.size + 1
    if any(np.isinf(d[:, 1]).any() for _, d in dgms):
        axes.axvline(top, color="0.4", lw=0.8, ls="--")
        axes.text(top, 1.0, "∞", transform=axes.get_xaxis_transform(), va="bottom", ha="center")
    axes.set_ylim(max(row - 1, 1), -1)
    axes.set_yticks([t for t, _ in ticks], [lab for _, lab in ticks])
    axes.set_xlabel("filtration value")
    if title:
        axes.set_title(title, fontsize=9)
    return fig
