// The two kinds of distance matrix the engine runs on: a compressed lower
// triangle for the full (or dense) filtration, and sorted neighbour lists for
// a thresholded (sparse) one.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tda/core.hpp"

namespace tda {

// Lower triangle, row by row: d(1,0), d(2,0), d(2,1), d(3,0), ...
class DenseDistanceMatrix {
 public:
  DenseDistanceMatrix() = default;
  DenseDistanceMatrix(index_t n, std::vector<value_t>&& lower) : n_(n), lower_(std::move(lower)) {}

  index_t size() const { return n_; }
  std::size_t bytes() const { return lower_.capacity() * sizeof(value_t); }
  const std::vector<value_t>& lower() const { return lower_; }
  void free_storage() { std::vector<value_t>().swap(lower_); }

  // d(i, j) for i > j.
  value_t below(index_t i, index_t j) const { return lower_[std::size_t(i) * (i - 1) / 2 + j]; }
  value_t operator()(index_t i, index_t j) const {
    if (i == j) return 0;
    return i > j ? below(i, j) : below(j, i);
  }

 private:
  index_t n_ = 0;
  std::vector<value_t> lower_;
};

struct Neighbor {
  std::int32_t vertex;  // 32 bits halve the lists; n < 2^31 is checked up front
  value_t distance;
};

// Neighbour lists sorted by vertex, holding every pair within the threshold.
class SparseDistanceMatrix {
 public:
  SparseDistanceMatrix() = default;
  SparseDistanceMatrix(index_t n, std::vector<std::size_t>&& offsets, std::vector<Neighbor>&& neighbors)
      : n_(n), offsets_(std::move(offsets)), neighbors_(std::move(neighbors)) {}

  index_t size() const { return n_; }
  std::size_t bytes() const {
    return offsets_.capacity() * sizeof(std::size_t) + neighbors_.capacity() * sizeof(Neighbor);
  }
  std::size_t edge_count() const { return neighbors_.size() / 2; }
  const Neighbor* begin(index_t v) const { return neighbors_.data() + offsets_[v]; }
  const Neighbor* end(index_t v) const { return neighbors_.data() + offsets_[v + 1]; }
  std::size_t degree(index_t v) const { return offsets_[v + 1] - offsets_[v]; }

  // d(i, j), or +inf when the pair is beyond the threshold.
  value_t operator()(index_t i, index_t j) const {
    if (i == j) return 0;
    if (degree(i) > degree(j)) std::swap(i, j);
    const Neighbor* lo = begin(i);
    const Neighbor* hi = end(i);
    while (lo < hi) {
      const Neighbor* mid = lo + (hi - lo) / 2;
      if (mid->vertex < j)
        lo = mid + 1;
      else
        hi = mid;
    }
    return (lo != end(i) && lo->vertex == j) ? lo->distance : infinity;
  }

 private:
  index_t n_ = 0;
  std::vector<std::size_t> offsets_;
  std::vector<Neighbor> neighbors_;
};

// --- metrics on point clouds --------------------------------------------------

// minkowski: (sum |x_k - y_k|^p)^(1/p), p >= 1; cosine: 1 - <x, y> / (|x| |y|).
enum class MetricKind { euclidean, manhattan, chebyshev, cosine, minkowski };

struct Metric {
  MetricKind kind = MetricKind::euclidean;
  double p = 2;  // minkowski's exponent
};

// The distances of an n x d row-major point cloud under a metric, in double
// (every construction rounds them once to value_t). Throws InputError for a
// bad exponent, or, under cosine, for a zero row (its angle is undefined).
class PointMetric {
 public:
  PointMetric(const double* points, index_t n, index_t d, Metric metric);

  index_t size() const { return n_; }
  index_t dimension() const { return d_; }
  double coordinate(index_t i, index_t k) const { return points_[std::size_t(i) * d_ + k]; }
  double operator()(index_t i, index_t j) const;
  // The same for a metric known at compile time (no dispatch per pair).
  template <MetricKind K>
  double distance(index_t i, index_t j) const;
  MetricKind kind() const { return metric_.kind; }
  // Whether |x_k - y_k| <= d(x, y) for every coordinate k (the Minkowski
  // family): then a sweep along one axis finds all pairs within a threshold.
  bool bounded_by_coordinates() const { return metric_.kind != MetricKind::cosine; }
  // The coordinate of largest spread, the one to sweep along.
  index_t widest_axis() const;

 private:
  const double* points_;
  index_t n_, d_;
  Metric metric_;
  std::vector<double> norms_;  // cosine only
};

// --- construction -----------------------------------------------------------

// The distances of a point cloud, rounded once to value_t.
DenseDistanceMatrix dense_from_points(const PointMetric& points, int n_threads, MemoryBudget& budget,
                                      const Monitor& monitor);

// Neighbour lists of every pair of points within `threshold`, found by a sweep
// along the coordinate of largest spread (over all pairs for a metric not
// bounded by coordinates), with no n x n storage.
SparseDistanceMatrix sparse_from_points(const PointMetric& points, value_t threshold, int n_threads,
                                        MemoryBudget& budget, const Monitor& monitor);

// Neighbour lists of a sparse symmetric matrix given by its stored entries
// (rows[k], cols[k], values[k]), k < count:
// each off-diagonal entry within `threshold` is an edge, absent ones are not.
// A pair may be stored in either triangle or both (then the values must agree
// up to rounding); the diagonal must be zero. Throws InputError naming the entry.
SparseDistanceMatrix sparse_from_triplets(const std::int64_t* rows, const std::int64_t* cols, const double* values,
                                          std::size_t count, index_t n, value_t threshold, MemoryBudget& budget);

// Neighbour lists of the pairs of a dense matrix within `threshold`.
SparseDistanceMatrix sparse_from_dense(const DenseDistanceMatrix& dist, value_t threshold, MemoryBudget& budget);

// min over i of max over j of d(i, j): beyond it the complex is a cone.
value_t enclosing_radius(const DenseDistanceMatrix& dist);

// Number of pairs within `threshold`.
std::size_t count_edges(const DenseDistanceMatrix& dist, value_t threshold);

}  // namespace tda
