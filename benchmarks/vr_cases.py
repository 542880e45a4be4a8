"""The shared Vietoris–Rips data sets and their parameters (from ../shared/README.md: the Ripser paper's
and Otter et al.'s roadmap benchmarks), read by the benchmark suite and by tests/test_engine_datasets.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    maxdim: int
    threshold: float | None = None
    coeff: int = 2
    distance_matrix: bool = False


CASES = {
    c.name: c
    for c in [
        Case("sphere_3_192", "sphere_3_192.lower_distance_matrix", 2, distance_matrix=True),
        Case("o3_1024", "o3_1024.txt", 3, threshold=1.8),
        Case("dragon_2000", "dragon_2000.txt", 1),
        Case("fractal_r", "fractal_r.distance_matrix", 2, distance_matrix=True),
        Case("random_50_16", "random_50_16.txt", 7),
        Case("klein_bottle_400", "klein_bottle_400.txt", 2, coeff=2),
        Case("klein_bottle_400_z3", "klein_bottle_400.txt", 2, coeff=3),
        Case("o3_4096", "o3_4096.txt", 3, threshold=1.4),
        Case("clifford_torus_50000", "clifford_torus_50000.txt", 2, threshold=0.15),
    ]
}
# Minutes for the slowest peers: left out of the default benchmark run and of CI's tests (TDA_SLOW=1).
LARGE = ("o3_4096", "clifford_torus_50000")
