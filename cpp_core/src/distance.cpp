#include "tda/distance.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <string>
#include <type_traits>

namespace tda {

namespace {

// Row boundaries giving each thread about the same number of pairs of the
// lower triangle (row i holds i pairs).
std::vector<index_t> balanced_rows(index_t n, int parts) {
  std::vector<index_t> bounds(parts + 1, n);
  bounds[0] = 0;
  for (int t = 1; t < parts; ++t)
    bounds[t] = std::min<index_t>(n, static_cast<index_t>(std::llround(n * std::sqrt(double(t) / parts))));
  return bounds;
}

}  // namespace

PointMetric::PointMetric(const double* points, index_t n, index_t d, Metric metric)
    : points_(points), n_(n), d_(d), metric_(metric) {
  if (metric.kind == MetricKind::minkowski && !(metric.p >= 1 && std::isfinite(metric.p)))
    throw InputError("metric_p must be a finite number >= 1, got " + std::to_string(metric.p));
  if (metric.kind != MetricKind::cosine) return;
  norms_.resize(n);
  for (index_t i = 0; i < n; ++i) {
    double s = 0;
    for (index_t k = 0; k < d; ++k) s += coordinate(i, k) * coordinate(i, k);
    if (s == 0) throw InputError("the cosine distance is undefined for a zero vector: row " + std::to_string(i));
    norms_[i] = std::sqrt(s);
  }
}

template <MetricKind K>
double PointMetric::distance(index_t i, index_t j) const {
  const double* a = points_ + std::size_t(i) * d_;
  const double* b = points_ + std::size_t(j) * d_;
  double s = 0;
  if constexpr (K == MetricKind::euclidean) {
    for (index_t k = 0; k < d_; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
    return std::sqrt(s);
  } else if constexpr (K == MetricKind::manhattan) {
    for (index_t k = 0; k < d_; ++k) s += std::abs(a[k] - b[k]);
    return s;
  } else if constexpr (K == MetricKind::chebyshev) {
    for (index_t k = 0; k < d_; ++k) s = std::max(s, std::abs(a[k] - b[k]));
    return s;
  } else if constexpr (K == MetricKind::minkowski) {
    // Scaled by the largest difference: |x|^p alone overflows a double for
    // large p (1e10^40), where the distance itself is modest.
    double top = 0;
    for (index_t k = 0; k < d_; ++k) top = std::max(top, std::abs(a[k] - b[k]));
    if (top == 0) return 0;
    for (index_t k = 0; k < d_; ++k) s += std::pow(std::abs(a[k] - b[k]) / top, metric_.p);
    return top * std::pow(s, 1 / metric_.p);
  } else {
    for (index_t k = 0; k < d_; ++k) s += a[k] * b[k];
    // Rounding can take 1 - cos slightly outside [0, 2]; distances are never negative.
    return std::clamp(1 - s / (norms_[i] * norms_[j]), 0.0, 2.0);
  }
}

namespace {

// Calls f(std::integral_constant<MetricKind, kind>): the metric's loops compiled once per kind.
template <class F>
void with_metric(MetricKind kind, F&& f) {
  switch (kind) {
    case MetricKind::euclidean:
      return f(std::integral_constant<MetricKind, MetricKind::euclidean>());
    case MetricKind::manhattan:
      return f(std::integral_constant<MetricKind, MetricKind::manhattan>());
    case MetricKind::chebyshev:
      return f(std::integral_constant<MetricKind, MetricKind::chebyshev>());
    case MetricKind::cosine:
      return f(std::integral_constant<MetricKind, MetricKind::cosine>());
    case MetricKind::minkowski:
      return f(std::integral_constant<MetricKind, MetricKind::minkowski>());
  }
}

}  // namespace

double PointMetric::operator()(index_t i, index_t j) const {
  double out = 0;
  with_metric(metric_.kind, [&](auto kind) { out = distance<decltype(kind)::value>(i, j); });
  return out;
}

index_t PointMetric::widest_axis() const {
  index_t axis = 0;
  double best = -1;
  for (index_t k = 0; k < d_; ++k) {
    double lo = INFINITY, hi = -INFINITY;
    for (index_t i = 0; i < n_; ++i) lo = std::min(lo, coordinate(i, k)), hi = std::max(hi, coordinate(i, k));
    if (hi - lo > best) best = hi - lo, axis = k;
  }
  return axis;
}

DenseDistanceMatrix dense_from_points(const PointMetric& points, int n_threads, MemoryBudget& budget,
                                      const Monitor& monitor) {
  const index_t n = points.size();
  const std::size_t pairs = std::size_t(n) * (n - 1) / 2;
  budget.charge(pairs * sizeof(value_t), "the distance matrix");
  std::vector<value_t> lower(pairs);
  const int parts = std::max(1, n_threads);
  const auto rows = balanced_rows(n, parts);
  with_metric(points.kind(), [&](auto kind) {
    parallel_for(parts, parts, [&](std::size_t tb, std::size_t te) {
      for (std::size_t t = tb; t < te; ++t) {
        for (index_t i = std::max<index_t>(rows[t], 1); i < rows[t + 1]; ++i) {
          if ((i & 255) == 0 && monitor.cancel_requested()) return;
          value_t* row = lower.data() + std::size_t(i) * (i - 1) / 2;
          for (index_t j = 0; j < i; ++j)
            row[j] = static_cast<value_t>(points.template distance<decltype(kind)::value>(i, j));
        }
      }
    });
  });
  return DenseDistanceMatrix(n, std::move(lower));
}

namespace {

// Builds the symmetric neighbour lists from per-thread edge lists (i > j).
struct Edge {
  std::int32_t i, j;
  value_t distance;
};

SparseDistanceMatrix assemble_sparse(index_t n, std::vector<std::vector<Edge>>& parts, MemoryBudget& budget) {
  std::vector<std::size_t> offsets(n + 1, 0);
  std::size_t edges = 0;
  for (const auto& part : parts)
    for (const Edge& e : part) {
      ++offsets[e.i + 1];
      ++offsets[e.j + 1];
      ++edges;
    }
  budget.charge(2 * edges * sizeof(Neighbor) + offsets.size() * sizeof(std::size_t), "the neighbour lists");
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  std::vector<Neighbor> neighbors(2 * edges);
  std::vector<std::size_t> fill(offsets.begin(), offsets.end() - 1);
  for (auto& part : parts) {
    for (const Edge& e : part) {
      neighbors[fill[e.i]++] = {e.j, e.distance};
      neighbors[fill[e.j]++] = {e.i, e.distance};
    }
    std::vector<Edge>().swap(part);
  }
  for (index_t v = 0; v < n; ++v)
    std::sort(neighbors.begin() + offsets[v], neighbors.begin() + offsets[v + 1],
              [](const Neighbor& a, const Neighbor& b) { return a.vertex < b.vertex; });
  return SparseDistanceMatrix(n, std::move(offsets), std::move(neighbors));
}

}  // namespace

SparseDistanceMatrix sparse_from_points(const PointMetric& points, value_t threshold, int n_threads,
                                        MemoryBudget& budget, const Monitor& monitor) {
  // Sweep along the axis of largest spread: under a metric bounded by
  // coordinates only pairs within `threshold` on that axis can be within
  // `threshold` in space; under another, every later pair is looked at.
  const index_t n = points.size();
  const index_t axis = points.widest_axis();
  const bool bounded = points.bounded_by_coordinates();
  std::vector<index_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](index_t a, index_t b) { return points.coordinate(a, axis) < points.coordinate(b, axis); });
  // Distances in double, compared against the threshold after rounding, so
  // the kept pairs are exactly those a dense matrix would keep.
  const double t = bounded ? double(threshold) : INFINITY;
  const int parts = std::max(1, n_threads);
  std::vector<std::vector<Edge>> found(parts);
  // The pairs are counted against the budget while they are collected (with
  // the neighbour lists they will become), so a threshold that keeps too many
  // pairs is refused before it exhausts memory.
  std::atomic<std::size_t> held{0};
  std::atomic<bool> over{false};
  const std::size_t room = budget.limit() - std::min(budget.limit(), budget.used());
  // Interleaved assignment balances the work: the sweep windows vary in size.
  with_metric(points.kind(), [&](auto kind) {
    auto distance = [&](index_t i, index_t j) { return points.template distance<decltype(kind)::value>(i, j); };
    parallel_for(parts, parts, [&](std::size_t tb, std::size_t te) {
      for (std::size_t part = tb; part < te; ++part) {
        auto& out = found[part];
        std::size_t reported = 0;
        for (index_t a = static_cast<index_t>(part); a < n; a += parts) {
          if ((a & 1023) == static_cast<index_t>(part) && monitor.cancel_requested()) return;
          if (over.load(std::memory_order_relaxed)) return;
          const index_t i = order[a];
          const double reach = points.coordinate(i, axis) + t;
          for (index_t b = a + 1; b < n; ++b) {
            const index_t j = order[b];
            if (points.coordinate(j, axis) > reach) break;
            const value_t dist = static_cast<value_t>(distance(i, j));
            if (dist <= threshold)
              out.push_back(i > j ? Edge{std::int32_t(i), std::int32_t(j), dist}
                                  : Edge{std::int32_t(j), std::int32_t(i), dist});
          }
          const std::size_t now = out.capacity() * sizeof(Edge) + out.size() * 2 * sizeof(Neighbor);
          if (now != reported) {
            if (held.fetch_add(now - reported) + (now - reported) > room) over.store(true);
            reported = now;
          }
        }
      }
    });
  });
  if (over.load())
    throw MemoryLimitExceeded("the pairs within the threshold need more memory than the limit of " +
                              std::to_string(budget.limit() >> 20) + " MiB; lower the threshold or use fewer points");
  return assemble_sparse(n, found, budget);
}

SparseDistanceMatrix sparse_from_dense(const DenseDistanceMatrix& dist, value_t threshold, MemoryBudget& budget) {
  std::vector<std::vector<Edge>> found(1);
  const auto& lower = dist.lower();
  std::size_t k = 0;
  for (index_t i = 1; i < dist.size(); ++i)
    for (index_t j = 0; j < i; ++j, ++k)
      if (lower[k] <= threshold) found[0].push_back({std::int32_t(i), std::int32_t(j), lower[k]});
  return assemble_sparse(dist.size(), found, budget);
}

namespace {

// Relative disagreement accepted between the two stored values of a pair
// (rounding in text files), as for a dense matrix on the Python side.
constexpr double kSymmetryTolerance = 1e-4;

struct StoredEntry {
  std::int32_t i, j;  // i > j
  bool lower;         // stored below the diagonal (row > col)
  value_t distance;
};

std::string entry_name(std::size_t k, std::int64_t row, std::int64_t col) {
  return "entry " + std::to_string(k) + " at (" + std::to_string(row) + ", " + std::to_string(col) + ")";
}

}  // namespace

SparseDistanceMatrix sparse_from_triplets(const std::int64_t* rows, const std::int64_t* cols, const double* values,
                                          std::size_t count, index_t n, value_t threshold, MemoryBudget& budget) {
  const std::size_t held = count * sizeof(StoredEntry);
  budget.charge(held, "the entries of the sparse matrix");
  std::vector<StoredEntry> entries;
  entries.reserve(count);
  double largest = 0;
  for (std::size_t k = 0; k < count; ++k) {
    const std::int64_t row = rows[k], col = cols[k];
    const double v = values[k];
    if (row < 0 || col < 0 || row >= n || col >= n)
      throw InputError(entry_name(k, row, col) + " is outside the " + std::to_string(n) + " x " + std::to_string(n) +
                       " matrix");
    if (!(v >= 0) || std::isinf(v))
      throw InputError("distances must be finite and non-negative (" + entry_name(k, row, col) + ")");
    if (row == col) {
      if (v != 0)
        throw InputError("the diagonal of a distance matrix must be zero (" + entry_name(k, row, col) + " holds " +
                         std::to_string(v) + "; vertex births are not supported)");
      continue;
    }
    largest = std::max(largest, v);
    entries.push_back({std::int32_t(std::max(row, col)), std::int32_t(std::min(row, col)), row > col,
                       static_cast<value_t>(v) + value_t(0)});  // -0.0 -> +0.0: orders by bit pattern
  }
  // The upper triangle first within a pair: its value is the one kept, as
  // ripser.py reads the entries with row < col.
  std::sort(entries.begin(), entries.end(), [](const StoredEntry& a, const StoredEntry& b) {
    return a.i != b.i ? a.i < b.i : a.j != b.j ? a.j < b.j : a.lower < b.lower;
  });
  std::vector<std::vector<Edge>> found(1);
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const StoredEntry& e = entries[k];
    if (k > 0 && entries[k - 1].i == e.i && entries[k - 1].j == e.j) {
      if (std::abs(double(e.distance) - double(entries[k - 1].distance)) > kSymmetryTolerance * largest)
        throw InputError("the sparse distance matrix is not symmetric: (" + std::to_string(e.i) + ", " +
                         std::to_string(e.j) + ") holds " + std::to_string(e.distance) + " and " +
                         std::to_string(entries[k - 1].distance));
      continue;
    }
    if (e.distance <= threshold) found[0].push_back({e.i, e.j, e.distance});
  }
  std::vector<StoredEntry>().swap(entries);
  budget.release(held);
  return assemble_sparse(n, found, budget);
}

value_t enclosing_radius(const DenseDistanceMatrix& dist) {
  const index_t n = dist.size();
  if (n < 2) return 0;
  std::vector<value_t> row_max(n, 0);
  const auto& lower = dist.lower();
  std::size_t k = 0;
  for (index_t i = 1; i < n; ++i)
    for (index_t j = 0; j < i; ++j, ++k) {
      const value_t d = lower[k];
      row_max[i] = std::max(row_max[i], d);
      row_max[j] = std::max(row_max[j], d);
    }
  return *std::min_element(row_max.begin(), row_max.end());
}

std::size_t count_edges(const DenseDistanceMatrix& dist, value_t threshold) {
  std::size_t count = 0;
  for (value_t d : dist.lower()) count += (d <= threshold);
  return count;
}

}  // namespace tda
