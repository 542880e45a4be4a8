"""Hypothesis strategies for persistence diagrams: float and integer-grid coordinates (ties, repeated pairs,
pairs on the diagonal), empty diagrams, and essential classes (death inf)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

FloatArray = npt.NDArray[np.float64]


@st.composite
def finite_diagrams(draw: st.DrawFn, max_size: int = 12, diagonal: bool = True) -> FloatArray:
    """A ``(k, 2)`` diagram of finite pairs, ``k`` in [0, max_size]; on an integer grid half of the time (ties),
    with pairs on the diagonal when ``diagonal``."""
    k = draw(st.integers(0, max_size))
    if draw(st.booleans()):
        value = st.integers(0, 6).map(lambda v: v / 2)
        lengths = st.integers(0 if diagonal else 1, 6).map(lambda v: v / 2)
    else:
        value = st.floats(-5, 5, allow_nan=False, allow_subnormal=False)
        lengths = st.floats(0.0 if diagonal else 1e-3, 4, allow_nan=False, allow_subnormal=False)
    births = draw(st.lists(value, min_size=k, max_size=k))
    spans = draw(st.lists(lengths, min_size=k, max_size=k))
    return np.array([[b, b + s] for b, s in zip(births, spans, strict=True)], dtype=np.float64).reshape(-1, 2)


@st.composite
def diagrams(draw: st.DrawFn, max_size: int = 12, essential: int = 0, diagonal: bool = True) -> FloatArray:
    """A finite diagram plus ``essential`` classes ``(b, inf)``."""
    finite = draw(finite_diagrams(max_size, diagonal))
    births = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=essential, max_size=essential))
    ess = np.array([[b, np.inf] for b in births], dtype=np.float64).reshape(-1, 2)
    out = np.concatenate([finite, ess])
    return out[draw(st.permutations(range(out.shape[0])))] if out.shape[0] else out


@st.composite
def diagram_pairs(draw: st.DrawFn, max_size: int = 12, diagonal: bool = True) -> tuple[FloatArray, FloatArray]:
    """Two diagrams with the same number (0 to 3) of essential classes."""
    e = draw(st.integers(0, 3))
    return draw(diagrams(max_size, e, diagonal)), draw(diagrams(max_size, e, diagonal))


def off_diagonal(d: FloatArray) -> FloatArray:
    """Hera's input: no pair on the diagonal."""
    out: FloatArray = d[d[:, 0] != d[:, 1]]
    return out
