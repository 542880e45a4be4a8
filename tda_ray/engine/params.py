"""Typed parameters: the one place a parameter is checked on the Python side.

Each algorithm has a pydantic model of its parameters; the engine's functions, the CLI (one argument per
field), the HTTP job schema, the batch runner and the Kafka message are all derived from it.  Types are
strict — a string or a bool is never taken for a number — and every message says what was expected and
what was given (``maxdim must be >= 0, got -1``), so the same text reaches a Python caller, the CLI and an
HTTP client.  :class:`RunOptions` holds how a run is executed (threads, memory budget): not part of a
result's identity, so not part of the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

__all__ = [
    "AMPLITUDE_METRICS",
    "AUTO_LANDMARKS",
    "MAX_COEFF",
    "NonNegativeInt",
    "OptionalNonNegativeInt",
    "Params",
    "PositiveInt",
    "RIPS_METRICS",
    "RipsParams",
    "RunOptions",
    "Threshold",
    "WassersteinParams",
    "is_prime",
    "split_call",
    "validation_message",
]

# Distances between the points of a cloud the core computes (scikit-learn's names; "minkowski" takes metric_p).
RIPS_METRICS = ("euclidean", "manhattan", "chebyshev", "cosine", "minkowski")

# Largest prime the core packs next to a simplex index; larger fields would leave too few index bits.
MAX_COEFF = (1 << 31) - 1
# Landmarks used for "auto", by maxdim (the last entry for anything higher): Rips on the landmarks then takes
# seconds to a minute on one core for typical data, as the complex grows like N^(maxdim + 2).
AUTO_LANDMARKS = (5000, 1000, 400, 150)


def is_prime(p: int) -> bool:
    if p < 2:
        return False
    if p % 2 == 0:
        return p == 2
    f = 3
    while f * f <= p:
        if p % f == 0:
            return False
        f += 2
    return True


# --------------------------------------------------------------------------- field types


def _integer(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"must be an integer, got {v!r}")
    return int(v)


def _number(v: Any) -> Any:
    if v is None:
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"must be a number, got {v!r}")
    return float(v)


def _at_least(low: int) -> Callable[[int], int]:
    def check(v: int) -> int:
        if v < low:
            raise ValueError(f"must be >= {low}, got {v}")
        return v

    return check


def _non_negative(v: float | None) -> float | None:
    if v is not None and (math.isnan(v) or v < 0):
        raise ValueError(f"must be a non-negative number, got {v!r}")
    return v


def _infinite_is_none(v: float | None) -> float | None:
    # ripser.py's default threshold is inf: it means "no threshold", which JSON spells null.
    return None if v is not None and math.isinf(v) else v


def _prime(v: int) -> int:
    if not (2 <= v <= MAX_COEFF and is_prime(v)):
        raise ValueError(f"must be a prime number below 2^31, got {v}")
    return v


def _landmark_count(v: Any) -> Any:
    if v is None:
        return v
    if isinstance(v, str):
        if v.strip().lower() == "auto":
            return "auto"
    elif not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= 1:
        return int(v)
    raise ValueError(f"must be a positive integer or 'auto', got {v!r}")


def _collapse_mode(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() == "auto":
        return "auto"
    raise ValueError(f"must be true, false or 'auto', got {v!r}")


def _rips_metric(v: Any) -> Any:
    if isinstance(v, str) and v.strip().lower() in RIPS_METRICS:
        return v.strip().lower()
    raise ValueError(f"must be one of {', '.join(repr(n) for n in RIPS_METRICS)}, got {v!r}")


def _minkowski_exponent(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not 1 <= v < math.inf:
        raise ValueError(f"must be a finite number >= 1, got {v!r}")
    return float(v)


def _optional_integer(v: Any) -> Any:
    return v if v is None else _integer(v)


def _positive_bytes(v: int | None) -> int | None:
    if v is not None and v <= 0:
        raise ValueError(f"must be a positive number of bytes, got {v!r}")
    return v


# Strict integers (NumPy integers accepted) with a lower bound.
NonNegativeInt = Annotated[
    int, BeforeValidator(_integer), AfterValidator(_at_least(0)), Field(json_schema_extra={"minimum": 0})
]
# The same, or null (a default that depends on the data, such as "every dimension of the image").
OptionalNonNegativeInt = Annotated[
    int | None,
    BeforeValidator(_optional_integer),
    AfterValidator(lambda v: v if v is None else _at_least(0)(v)),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}),
]
PositiveInt = Annotated[
    int, BeforeValidator(_integer), AfterValidator(_at_least(1)), Field(json_schema_extra={"minimum": 1})
]
Prime = Annotated[
    int,
    BeforeValidator(_integer),
    AfterValidator(_prime),
    Field(json_schema_extra={"minimum": 2, "maximum": MAX_COEFF}),
]
# A non-negative real, or null (or inf) for no limit.
Threshold = Annotated[
    float | None,
    BeforeValidator(_number),
    AfterValidator(_non_negative),
    AfterValidator(_infinite_is_none),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}),
]
CollapseMode = Annotated[
    bool | Literal["auto"],
    BeforeValidator(_collapse_mode),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"const": "auto", "type": "string"}]}),
]
RipsMetric = Annotated[
    Literal["euclidean", "manhattan", "chebyshev", "cosine", "minkowski"], BeforeValidator(_rips_metric)
]
MinkowskiExponent = Annotated[float, BeforeValidator(_minkowski_exponent), Field(json_schema_extra={"minimum": 1})]
LandmarkCount = Annotated[
    int | Literal["auto"] | None,
    BeforeValidator(_landmark_count),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "auto", "type": "string"}, {"type": "null"}]}
    ),
]


# --------------------------------------------------------------------------- models

P = TypeVar("P", bound="Params")


def validation_message(exc: ValidationError) -> str:
    """``field message`` of the first error, without pydantic's decorations."""
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(x) for x in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "is not a parameter"
    return f"{where} {msg}" if where else msg


class Params(BaseModel):
    """Base of every parameter model: unknown names are refused, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls: type[P], values: dict[str, Any] | None = None, **kwargs: Any) -> P:
        """The model from a mapping and/or keywords; ValueError ``name message`` for a bad value."""
        try:
            return cls.model_validate({**(values or {}), **kwargs})
        except ValidationError as exc:
            raise ValueError(validation_message(exc)) from None

    def landmark_count(self, n_points: int | None = None) -> int | None:
        """Points the engine sees when it runs on a subsample (landmarks) of the data; None: all of it."""
        return None

    @classmethod
    def check_field(cls, name: str, value: Any) -> Any:
        """One field's value checked on its own (the CLI checks each argument as it is parsed)."""
        try:
            return getattr(cls.model_validate({name: value}), name)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise ValueError(str(err["msg"]).removeprefix("Value error, ")) from None


class RipsParams(Params):
    """Parameters of a Vietoris–Rips persistence computation."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"maxdim": 1, "threshold": None, "coeff": 2, "collapse_edges": "auto"}]}
    )

    maxdim: NonNegativeInt = Field(default=1, description="Highest homology dimension.")
    threshold: Threshold = Field(default=None, description="Largest edge length; null = the full filtration.")
    coeff: Prime = Field(default=2, description="Prime field of coefficients Z/p.")
    collapse_edges: CollapseMode = Field(
        default="auto",
        description=(
            "Edge collapse before the reduction (removes or delays dominated edges; the diagrams do not change). "
            '"auto": from maxdim 2 on, when a sample of the edges says enough of them are dominated.'
        ),
    )
    metric: RipsMetric = Field(
        default="euclidean",
        description=(
            "Distance between points (computed by the engine): euclidean, manhattan, chebyshev, cosine "
            "(1 - cosine similarity; no zero rows) or minkowski (with metric_p). Not for a distance matrix."
        ),
    )
    metric_p: MinkowskiExponent = Field(default=2.0, description="Exponent p >= 1 of the minkowski metric.")
    cocycles: StrictBool = Field(
        default=False,
        description=(
            "Also return a representative cocycle of every pair of dimension >= 1: rows of (d + 1 vertex "
            "indices, coefficient in 0..p-1), as ripser.py's do_cocycles. Turns the edge collapse off "
            "(collapse_edges true is refused)."
        ),
    )
    graph_filtration: Literal["edge", "shortest_path"] = Field(
        default="edge",
        description=(
            "How a weighted graph (an edge list upload, kind graph) is read: edge = its flag filtration (an edge "
            "at its weight), shortest_path = Rips of its shortest-path metric. Other data take edge only."
        ),
    )
    landmarks: LandmarkCount = Field(
        default=None,
        description=(
            'null: exact Vietoris–Rips of the whole cloud. A count N (or "auto": 5000/1000/400/150 for maxdim '
            "0/1/2/3+): Rips on N greedy max-min landmarks chosen with Ray Data; the result reports the covering "
            "radius eps, and its diagrams are within bottleneck distance 2 eps of the whole cloud's."
        ),
    )

    @model_validator(mode="after")
    def _metric_consistent(self) -> RipsParams:
        if self.metric_p != 2.0 and self.metric != "minkowski":
            raise ValueError(f"metric_p is used by metric 'minkowski' only, got metric {self.metric!r}")
        if self.landmarks is not None and self.metric != "euclidean":
            raise ValueError(f"landmarks are chosen in Euclidean space, got metric {self.metric!r}")
        if self.cocycles and self.collapse_edges is True:
            raise ValueError(
                'cocycles live on the uncollapsed complex: give collapse_edges false or "auto" (off with cocycles)'
            )
        if self.cocycles and self.landmarks is not None:
            raise ValueError(
                "cocycles are not computed for landmark runs (their vertices would be landmarks the result does "
                "not hold); run Vietoris–Rips with cocycles on the landmarks themselves"
            )
        return self

    def landmark_count(self, n_points: int | None = None) -> int | None:
        """Points the engine will see: the landmarks ("auto" resolved; at most ``n_points``), or None if exact."""
        if self.landmarks is None:
            return None
        count = (
            AUTO_LANDMARKS[min(self.maxdim, len(AUTO_LANDMARKS) - 1)]
            if self.landmarks == "auto"
            else int(self.landmarks)
        )
        return count if n_points is None else min(count, n_points)

    def engine_params(self) -> RipsParams:
        """The same parameters for the engine run itself (landmarks are chosen before it)."""
        return self.model_copy(update={"landmarks": None})


def split_call(model: type[P], kwargs: dict[str, Any]) -> tuple[P, RunOptions]:
    """Keyword arguments of a call split into checked parameters and run options (by field name)."""
    run = {k: kwargs.pop(k) for k in list(kwargs) if k in RunOptions.model_fields}
    return model.parse(kwargs), RunOptions.parse(run)


class RunOptions(Params):
    """How one run executes: threads and memory budget (they never change a result)."""

    n_threads: PositiveInt = Field(default=1, description="Engine threads.")
    memory_limit: Annotated[int | None, BeforeValidator(_optional_integer), AfterValidator(_positive_bytes)] = Field(
        default=None, description="Bytes; work estimated above it is refused. None: a share of available memory."
    )


# --------------------------------------------------------------------------- analysis: distances and vectorizations


def _real(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"must be a number, got {v!r}")
    if math.isnan(v):
        raise ValueError("must be a number, got nan")
    return float(v)


def _finite_at_least(low: float) -> Callable[[float], float]:
    def check(v: float) -> float:
        if not (low <= v < math.inf):
            raise ValueError(f"must be a finite number >= {low:g}, got {v!r}")
        return v

    return check


def _norm_exponent(v: float) -> float:
    if not v >= 1:
        raise ValueError(f"must be >= 1 or inf, got {v!r}")
    return v


def _positive_finite(v: float) -> float:
    if not (0 < v < math.inf):
        raise ValueError(f"must be a positive finite number, got {v!r}")
    return v


# Exponent of a q-Wasserstein distance or of an L^p norm of a vector: finite, >= 1.
Exponent = Annotated[float, BeforeValidator(_real), AfterValidator(_finite_at_least(1.0))]
# Exponent of the ground norm on the plane: >= 1, inf for the L-infinity norm.
NormExponent = Annotated[float, BeforeValidator(_real), AfterValidator(_norm_exponent)]
PositiveReal = Annotated[float, BeforeValidator(_real), AfterValidator(_positive_finite)]
Real = Annotated[float, BeforeValidator(_real)]


class WassersteinParams(Params):
    """The q-Wasserstein distance's exponents."""

    p: Exponent = Field(default=2.0, description="Exponent q of the q-Wasserstein distance (finite, >= 1).")
    internal_p: NormExponent = Field(default=math.inf, description="L^p ground norm on the plane (>= 1, or inf).")


# giotto-tda's amplitudes: a metric's name and the parameters it takes (Amplitude(metric_params=...)).
class _BettiMetric(Params):
    p: NormExponent = 2.0
    n_bins: PositiveInt = 100


class _LandscapeMetric(_BettiMetric):
    n_layers: PositiveInt = 1


class _SilhouetteMetric(_BettiMetric):
    power: PositiveReal = 1.0


class _ImageMetric(_BettiMetric):
    sigma: PositiveReal = 0.1
    weight_function: Callable[..., Any] | None = None


class _BottleneckMetric(Params):
    pass


class _WassersteinMetric(Params):
    p: Exponent = 2.0


AMPLITUDE_METRICS: dict[str, type[Params]] = {
    "bottleneck": _BottleneckMetric,
    "wasserstein": _WassersteinMetric,
    "betti": _BettiMetric,
    "landscape": _LandscapeMetric,
    "silhouette": _SilhouetteMetric,
    "persistence_image": _ImageMetric,
}
