"""Pictures of results (matplotlib, headless): the persistence diagram and the barcode as SVG or PNG, drawn by
:mod:`tda_ray.engine.plots` (the package's one diagram plot)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["render_barcode", "render_diagram"]

Format = Literal["svg", "png"]


def _encode(fig: Figure, fmt: Format) -> bytes:
    buf = io.BytesIO()
    # No creation date in SVGs: the same result gives the same bytes.
    fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def render_diagram(diagrams: list[npt.NDArray[np.float64]], fmt: Format, title: str) -> bytes:
    """The persistence diagram as a picture; essential classes sit on a dashed line marked ∞."""
    from tda_ray.engine.plots import plot_diagrams

    return _encode(plot_diagrams(diagrams, title=title), fmt)


def render_barcode(diagrams: list[npt.NDArray[np.float64]], fmt: Format, title: str) -> bytes:
    """The barcode as a picture: one bar per pair, H0 at the top; essential bars run to the ∞ edge."""
    from tda_ray.engine.plots import plot_barcode

    return _encode(plot_barcode(diagrams, title=title), fmt)
