// Distances between persistence diagrams: the bottleneck distance and the
// q-Wasserstein distance, both exact. A diagram is a list of (birth, death)
// pairs of one homology dimension; a pair with death +inf is an essential
// class. The finite parts are matched with the diagonal available, the
// essential parts only among themselves (by birth): diagrams whose numbers of
// essential classes differ are infinitely far apart.
#pragma once

#include <cstddef>
#include <vector>

namespace tda::matching {

using real_t = double;  // diagram coordinates (the engine's float32 values widen exactly)

struct Pair {
  real_t birth;
  real_t death;
};

// A (k, 2) row-major array as the caller holds it; `name` labels messages.
struct DiagramView {
  const real_t* pairs;
  std::size_t size;
  const char* name;
};

// What a matching sees of a diagram: off-diagonal finite pairs, and the
// births of the essential classes. Pairs on the diagonal are dropped (they
// cost nothing). Throws InputError for NaN, infinite births and pairs below
// the diagonal.
struct SplitDiagram {
  std::vector<Pair> finite;
  std::vector<real_t> essential_births;  // sorted
};
SplitDiagram split(const DiagramView& diagram);

// Exact bottleneck distance (L-infinity ground metric).
real_t bottleneck_distance(const DiagramView& a, const DiagramView& b);

// Exact q-Wasserstein distance with an L^p ground metric on the plane
// (`internal_p` >= 1, +inf for L-infinity); `order` q >= 1.
real_t wasserstein_distance(const DiagramView& a, const DiagramView& b, real_t order, real_t internal_p);

// The two on finite off-diagonal parts only (no checks).
real_t bottleneck_finite(const std::vector<Pair>& a, const std::vector<Pair>& b);
real_t wasserstein_finite_cost(const std::vector<Pair>& a, const std::vector<Pair>& b, real_t order, real_t internal_p);

// Minimum-cost assignment of every row of a dense n_rows x n_cols cost
// matrix (row-major, n_rows <= n_cols) to a distinct column: the column of
// each row. Shortest augmenting paths with dual potentials, O(n_rows^2 n_cols).
std::vector<std::size_t> min_cost_assignment(const std::vector<real_t>& cost, std::size_t n_rows, std::size_t n_cols);

}  // namespace tda::matching
