#include "tda/distance.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <string>

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

double squared_distance(const double* a, const double* b, index_t d) {
  double s = 0;
  for (index_t k = 0; k < d; ++k) {
    const double diff = a[k] - b[k];
    s += diff * diff;
  }
  return s;
}

}  // namespace

DenseDistanceMatrix dense_from_points(const double* points, index_t n, index_t d, int n_threads, MemoryBudget& budget,
                                      const Monitor& monitor) {
  const std::size_t pairs = std::size_t(n) * (n - 1) / 2;
  budget.charge(pairs * sizeof(value_t), "the distance matrix");
  std::vector<value_t> lower(pairs);
  const int parts = std::max(1, n_threads);
  const auto rows = balanced_rows(n, parts);
  parallel_for(parts, parts, [&](std::size_t tb, std::size_t te) {
    for (std::size_t t = tb; t < te; ++t) {
      for (index_t i = std::max<index_t>(rows[t], 1); i < rows[t + 1]; ++i) {
        if ((i & 255) == 0 && monitor.cancel_requested()) return;
        value_t* row = lower.data() + std::size_t(i) * (i - 1) / 2;
        const double* xi = points + std::size_t(i) * d;
        for (index_t j = 0; j < i; ++j)
          row[j] = static_cast<value_t>(std::sqrt(squared_distance(xi, points + std::size_t(j) * d, d)));
      }
    }
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

SparseDistanceMatrix sparse_from_points(const double* points, index_t n, index_t d, value_t threshold, int n_threads,
                                        MemoryBudget& budget, const Monitor& monitor) {
  // Sweep along the axis of largest spread: only pairs within `threshold` on
  // that axis can be within `threshold` in space.
  index_t axis = 0;
  double best = -1;
  for (index_t k = 0; k < d; ++k) {
    double lo = INFINITY, hi = -INFINITY;
    for (index_t i = 0; i < n; ++i) {
      lo = std::min(lo, points[std::size_t(i) * d + k]);
      hi = std::max(hi, points[std::size_t(i) * d + k]);
    }
    if (hi - lo > best) best = hi - lo, axis = k;
  }
  std::vector<index_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return points[std::size_t(a) * d + axis] < points[std::size_t(b) * d + axis];
  });
  // Distances in double, compared against the threshold after rounding, so
  // the kept pairs are exactly those a dense matrix would keep.
  const double t = threshold;
  const int parts = std::max(1, n_threads);
  std::vector<std::vector<Edge>> found(parts);
  // The pairs are counted against the budget while they are collected (with
  // the neighbour lists they will become), so a threshold that keeps too many
  // pairs is refused before it exhausts memory.
  std::atomic<std::size_t> held{0};
  std::atomic<bool> over{false};
  const std::size_t room = budget.limit() - std::min(budget.limit(), budget.used());
  // Interleaved assignment balances the work: the sweep windows vary in size.
  parallel_for(parts, parts, [&](std::size_t tb, std::size_t te) {
    for (std::size_t part = tb; part < te; ++part) {
      auto& out = found[part];
      std::size_t reported = 0;
      for (index_t a = static_cast<index_t>(part); a < n; a += parts) {
        if ((a & 1023) == static_cast<index_t>(part) && monitor.cancel_requested()) return;
        if (over.load(std::memory_order_relaxed)) return;
        const index_t i = order[a];
        const double* xi = points + std::size_t(i) * d;
        const double reach = xi[axis] + t;
        for (index_t b = a + 1; b < n; ++b) {
          const index_t j = order[b];
          const double* xj = points + std::size_t(j) * d;
          if (xj[axis] > reach) break;
          const value_t dist = static_cast<value_t>(std::sqrt(squared_distance(xi, xj, d)));
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
