#include "tda/matching.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "tda/core.hpp"

namespace tda::matching {

namespace {

constexpr real_t kInf = std::numeric_limits<real_t>::infinity();
constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

std::string problem(const DiagramView& d, std::size_t i, const char* what) {
  std::ostringstream out;
  out << d.name << ": pair " << i << " (" << d.pairs[2 * i] << ", " << d.pairs[2 * i + 1] << ") " << what;
  return out.str();
}

real_t l_inf(const Pair& x, const Pair& y) {
  return std::max(std::abs(x.birth - y.birth), std::abs(x.death - y.death));
}

// L-infinity distance to the diagonal: to the nearest point ((b + d) / 2, (b + d) / 2).
real_t half_life(const Pair& x) { return (x.death - x.birth) / 2; }

// Essential classes can only be matched to each other; on a line the sorted
// order is an optimal matching for the maximum and for any convex cost.
real_t essential_bottleneck(const std::vector<real_t>& a, const std::vector<real_t>& b) {
  if (a.size() != b.size()) return kInf;
  real_t worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

real_t essential_cost(const std::vector<real_t>& a, const std::vector<real_t>& b, real_t order) {
  if (a.size() != b.size()) return kInf;
  real_t total = 0;
  for (std::size_t i = 0; i < a.size(); ++i) total += std::pow(std::abs(a[i] - b[i]), order);
  return total;
}

bool by_death(const Pair& x, const Pair& y) { return x.death < y.death; }

// min(distance to the diagonal, distance to the nearest of `across`), which is sorted by death.
real_t nearest_across(const Pair& p, const std::vector<Pair>& across) {
  real_t best = half_life(p);
  const auto start = std::lower_bound(across.begin(), across.end(), p, by_death);
  for (auto q = start; q != across.end() && q->death - p.death < best; ++q) best = std::min(best, l_inf(p, *q));
  for (auto q = start; q != across.begin() && p.death - (q - 1)->death < best; --q)
    best = std::min(best, l_inf(p, *(q - 1)));
  return best;
}

// Maximum bipartite matching (Hopcroft–Karp) between the points of `left`
// that are farther than t from the diagonal and all points of `right` (sorted
// by death), along edges no longer than t: does it cover those left points?
class ThresholdMatcher {
 public:
  bool saturates(const std::vector<Pair>& left, const std::vector<Pair>& right, real_t t) {
    adjacency_.clear();
    offsets_.assign(1, 0);
    for (const Pair& x : left) {
      if (half_life(x) <= t) continue;  // may go to the diagonal
      // Only deaths within t of x's can be neighbours.
      auto j = std::lower_bound(right.begin(), right.end(), Pair{0, x.death - t}, by_death);
      for (; j != right.end() && j->death <= x.death + t; ++j)
        if (l_inf(x, *j) <= t) adjacency_.push_back(static_cast<std::size_t>(j - right.begin()));
      if (adjacency_.size() == offsets_.back()) return false;  // nowhere to go
      offsets_.push_back(adjacency_.size());
    }
    const std::size_t n_left = offsets_.size() - 1;
    if (n_left > right.size()) return false;
    mate_left_.assign(n_left, kNone);
    mate_right_.assign(right.size(), kNone);
    std::size_t matched = greedy();
    while (matched < n_left && layer()) {
      next_.assign(offsets_.begin(), offsets_.end() - 1);
      for (std::size_t u = 0; u < n_left; ++u)
        if (mate_left_[u] == kNone && augment(u)) ++matched;
    }
    return matched == n_left;
  }

 private:
  std::size_t greedy() {
    std::size_t matched = 0;
    for (std::size_t u = 0; u + 1 < offsets_.size(); ++u) {
      for (std::size_t k = offsets_[u]; k < offsets_[u + 1]; ++k) {
        if (mate_right_[adjacency_[k]] == kNone) {
          mate_left_[u] = adjacency_[k];
          mate_right_[adjacency_[k]] = u;
          ++matched;
          break;
        }
      }
    }
    return matched;
  }

  // Breadth-first layers of alternating paths from the free left points;
  // true if some path reaches a free right point.
  bool layer() {
    const std::size_t n_left = offsets_.size() - 1;
    depth_.assign(n_left, kNone);
    queue_.clear();
    for (std::size_t u = 0; u < n_left; ++u) {
      if (mate_left_[u] == kNone) {
        depth_[u] = 0;
        queue_.push_back(u);
      }
    }
    bool found = false;
    for (std::size_t head = 0; head < queue_.size(); ++head) {
      const std::size_t u = queue_[head];
      for (std::size_t k = offsets_[u]; k < offsets_[u + 1]; ++k) {
        const std::size_t w = mate_right_[adjacency_[k]];
        if (w == kNone) {
          found = true;
        } else if (depth_[w] == kNone) {
          depth_[w] = depth_[u] + 1;
          queue_.push_back(w);
        }
      }
    }
    return found;
  }

  bool augment(std::size_t u) {
    for (std::size_t& k = next_[u]; k < offsets_[u + 1]; ++k) {
      const std::size_t v = adjacency_[k];
      const std::size_t w = mate_right_[v];
      if (w == kNone || (depth_[w] == depth_[u] + 1 && augment(w))) {
        mate_left_[u] = v;
        mate_right_[v] = u;
        return true;
      }
    }
    depth_[u] = kNone;
    return false;
  }

  std::vector<std::size_t> adjacency_, offsets_, next_, mate_left_, mate_right_, depth_, queue_;
};

real_t ground_distance(const Pair& x, const Pair& y, real_t p) {
  const real_t db = std::abs(x.birth - y.birth), dd = std::abs(x.death - y.death);
  if (std::isinf(p)) return std::max(db, dd);
  if (p == 1) return db + dd;
  if (p == 2) return std::sqrt(db * db + dd * dd);
  return std::pow(std::pow(db, p) + std::pow(dd, p), 1 / p);
}

// L^p distance to the diagonal, reached at ((b + d) / 2, (b + d) / 2) for every p.
real_t diagonal_distance(const Pair& x, real_t p) {
  const real_t h = half_life(x);
  if (std::isinf(p)) return h;
  if (p == 1) return 2 * h;
  if (p == 2) return std::sqrt(2 * h * h);
  return h * std::pow(2, 1 / p);
}

real_t power(real_t x, real_t order) {
  if (order == 1) return x;
  if (order == 2) return x * x;
  return std::pow(x, order);
}

}  // namespace

SplitDiagram split(const DiagramView& d) {
  SplitDiagram out;
  out.finite.reserve(d.size);
  for (std::size_t i = 0; i < d.size; ++i) {
    const real_t birth = d.pairs[2 * i], death = d.pairs[2 * i + 1];
    if (std::isnan(birth) || std::isnan(death)) throw InputError(problem(d, i, "has a NaN coordinate"));
    if (std::isinf(birth)) throw InputError(problem(d, i, "has an infinite birth"));
    if (death < birth) throw InputError(problem(d, i, "lies below the diagonal (death < birth)"));
    if (std::isinf(death)) {
      out.essential_births.push_back(birth);
    } else if (death > birth) {
      out.finite.push_back({birth, death});
    }
  }
  std::sort(out.essential_births.begin(), out.essential_births.end());
  return out;
}

// The distance is one of the candidate values (a pair's distance to the
// diagonal or between two pairs): the smallest candidate t at which a perfect
// matching of edges <= t exists. Each point not allowed on the diagonal at t
// must be matched across; by the Mendelsohn–Dulmage theorem a matching covering
// both sides' such points exists iff one exists for each side separately.
real_t bottleneck_finite(const std::vector<Pair>& a, const std::vector<Pair>& b) {
  std::vector<Pair> x(a), y(b);
  std::sort(x.begin(), x.end(), by_death);
  std::sort(y.begin(), y.end(), by_death);
  real_t upper = 0;  // everything to the diagonal
  for (const Pair& p : x) upper = std::max(upper, half_life(p));
  for (const Pair& p : y) upper = std::max(upper, half_life(p));
  // Each point travels at least min(distance to the diagonal, distance to the nearest point across).
  real_t lower = 0;
  for (const Pair& p : x) lower = std::max(lower, nearest_across(p, y));
  for (const Pair& p : y) lower = std::max(lower, nearest_across(p, x));
  if (lower >= upper) return upper;

  ThresholdMatcher matcher;
  auto feasible = [&](real_t t) { return matcher.saturates(x, y, t) && matcher.saturates(y, x, t); };
  if (feasible(lower)) return lower;
  // Bisect the values first, so that only the candidates of a short interval (lo, hi] are listed.
  real_t lo = lower, hi = upper;
  const std::size_t steps = 2 + static_cast<std::size_t>(std::log2(1.0 + double(x.size()) * double(y.size())) / 2);
  for (std::size_t i = 0; i < steps; ++i) {
    const real_t mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break;
    (feasible(mid) ? hi : lo) = mid;
  }
  std::vector<real_t> candidates;
  auto keep = [&](real_t c) {
    if (c > lo && c <= hi) candidates.push_back(c);
  };
  for (const Pair& p : x) {
    keep(half_life(p));
    auto q = std::lower_bound(y.begin(), y.end(), Pair{0, p.death - hi}, by_death);
    for (; q != y.end() && q->death <= p.death + hi; ++q) keep(l_inf(p, *q));
  }
  for (const Pair& p : y) keep(half_life(p));

  // Halve the candidates by their median until one is left; the answer stays among them.
  auto first = candidates.begin(), last = candidates.end();
  while (last - first > 1) {
    const auto mid = first + (last - first - 1) / 2;
    std::nth_element(first, mid, last);
    if (feasible(*mid)) {
      last = mid + 1;
    } else {
      first = mid + 1;
    }
  }
  return *first;
}

// Matching a_i with b_j beats sending both to the diagonal only where
// c(a_i, b_j) < c(a_i, diag) + c(b_j, diag); points with no such partner go
// to the diagonal. The rest is a square assignment: rows are those points of
// a, then one diagonal copy per such point of b; columns are those points of
// b, then one diagonal copy per such point of a. Diagonal copies are
// interchangeable, so a point may take any copy on the other side, and copies
// meet for free.
real_t wasserstein_finite_cost(const std::vector<Pair>& a, const std::vector<Pair>& b, real_t order,
                               real_t internal_p) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<real_t> to_diag_a(n), to_diag_b(m), across(n * m);
  for (std::size_t i = 0; i < n; ++i) to_diag_a[i] = power(diagonal_distance(a[i], internal_p), order);
  for (std::size_t j = 0; j < m; ++j) to_diag_b[j] = power(diagonal_distance(b[j], internal_p), order);
  std::vector<char> row_used(n, 0), col_used(m, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < m; ++j) {
      const real_t c = power(ground_distance(a[i], b[j], internal_p), order);
      across[i * m + j] = c;
      if (c < to_diag_a[i] + to_diag_b[j]) row_used[i] = col_used[j] = 1;
    }
  }
  std::vector<std::size_t> rows, cols;
  for (std::size_t i = 0; i < n; ++i)
    if (row_used[i]) rows.push_back(i);
  for (std::size_t j = 0; j < m; ++j)
    if (col_used[j]) cols.push_back(j);
  const std::size_t nr = rows.size(), nc = cols.size(), size = nr + nc;
  std::vector<real_t> cost(size * size, 0);
  for (std::size_t r = 0; r < nr; ++r) {
    real_t* row = &cost[r * size];
    for (std::size_t k = 0; k < nc; ++k) row[k] = across[rows[r] * m + cols[k]];
    std::fill(row + nc, row + size, to_diag_a[rows[r]]);
  }
  for (std::size_t k = 0; k < nc; ++k) cost[nr * size + k] = to_diag_b[cols[k]];
  for (std::size_t r = nr + 1; r < size; ++r) std::copy_n(&cost[nr * size], nc, &cost[r * size]);
  const std::vector<std::size_t> column = min_cost_assignment(cost, size, size);

  // The total from the original costs, in one order whatever the matching's.
  std::vector<char> a_matched(n, 0), b_matched(m, 0);
  for (std::size_t r = 0; r < nr; ++r)
    if (column[r] < nc) a_matched[rows[r]] = b_matched[cols[column[r]]] = 1;
  real_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!a_matched[i]) {
      total += to_diag_a[i];
    }
  }
  for (std::size_t r = 0; r < nr; ++r)
    if (column[r] < nc) total += across[rows[r] * m + cols[column[r]]];
  for (std::size_t j = 0; j < m; ++j)
    if (!b_matched[j]) total += to_diag_b[j];
  return total;
}

namespace {

// Successive shortest augmenting paths on reduced costs, with column
// potentials only (an assigned row's potential is implied by its column), in
// the manner of Jonker and Volgenant: one Dijkstra search per row.
class AssignmentSolver {
 public:
  AssignmentSolver(const std::vector<real_t>& cost, std::size_t n_rows, std::size_t n_cols)
      : cost_(cost),
        n_rows_(n_rows),
        n_cols_(n_cols),
        col_potential_(n_cols, 0),
        dist_(n_cols),
        col_of_(n_rows, kNone),
        row_of_(n_cols, kNone),
        pred_(n_cols),
        order_(n_cols) {}

  std::vector<std::size_t> solve() {
    if (n_rows_ == n_cols_) reduce_columns();
    for (std::size_t row = 0; row < n_rows_; ++row)
      if (col_of_[row] == kNone) augment_from(row);
    return col_of_;
  }

 private:
  real_t c(std::size_t i, std::size_t j) const { return cost_[i * n_cols_ + j]; }

  // Square problems only (every column ends up assigned, so its potential may
  // start at its smallest cost): each column goes to its cheapest row if that
  // row is free, which leaves that row's reduced costs non-negative.
  void reduce_columns() {
    for (std::size_t j = 0; j < n_cols_; ++j) {
      std::size_t best = 0;
      for (std::size_t i = 1; i < n_rows_; ++i) {
        // Among equal costs a free row wins, so tied columns spread over rows.
        if (c(i, j) < c(best, j) || (c(i, j) == c(best, j) && col_of_[best] != kNone && col_of_[i] == kNone)) best = i;
      }
      col_potential_[j] = c(best, j);
      if (col_of_[best] == kNone) {
        col_of_[best] = j;
        row_of_[j] = best;
      }
    }
  }

  // order_[settled, frontier) becomes the unscanned columns at the smallest
  // distance, `nearest`; true if one of them is free.
  bool next_frontier(std::size_t settled, std::size_t& frontier, real_t& nearest, std::size_t& end) {
    nearest = dist_[order_[frontier++]];
    for (std::size_t k = frontier; k < n_cols_; ++k) {
      const std::size_t j = order_[k];
      if (dist_[j] <= nearest) {
        if (dist_[j] < nearest) {
          frontier = settled;
          nearest = dist_[j];
        }
        order_[k] = order_[frontier];
        order_[frontier++] = j;
      }
    }
    for (std::size_t k = settled; k < frontier; ++k) {
      if (row_of_[order_[k]] == kNone) {
        end = order_[k];
        return true;
      }
    }
    return false;
  }

  // Dijkstra from a free row over the columns until a free column is reached;
  // then the settled columns' potentials move and the path flips.
  void augment_from(std::size_t free_row) {
    for (std::size_t j = 0; j < n_cols_; ++j) {
      dist_[j] = c(free_row, j) - col_potential_[j];
      pred_[j] = free_row;
      order_[j] = j;
    }
    // order_[0, settled): scanned; [settled, frontier): at distance `nearest`, not yet scanned.
    std::size_t settled = 0, frontier = 0, end = kNone;
    real_t nearest = 0;
    while (end == kNone) {
      if (frontier == settled && next_frontier(settled, frontier, nearest, end)) break;
      const std::size_t col = order_[settled++];
      const std::size_t row = row_of_[col];
      const real_t offset = c(row, col) - col_potential_[col] - nearest;
      for (std::size_t k = frontier; k < n_cols_; ++k) {
        const std::size_t j = order_[k];
        const real_t d = c(row, j) - col_potential_[j] - offset;
        if (d < dist_[j]) {
          dist_[j] = d;
          pred_[j] = row;
          if (d == nearest) {
            if (row_of_[j] == kNone) {
              end = j;
              break;
            }
            order_[k] = order_[frontier];
            order_[frontier++] = j;
          }
        }
      }
    }
    for (std::size_t k = 0; k < settled; ++k) col_potential_[order_[k]] += dist_[order_[k]] - nearest;
    std::size_t col = end;
    while (true) {
      const std::size_t row = pred_[col];
      row_of_[col] = row;
      std::swap(col, col_of_[row]);
      if (row == free_row) break;
    }
  }

  const std::vector<real_t>& cost_;
  std::size_t n_rows_, n_cols_;
  std::vector<real_t> col_potential_, dist_;
  std::vector<std::size_t> col_of_, row_of_, pred_, order_;
};

}  // namespace

std::vector<std::size_t> min_cost_assignment(const std::vector<real_t>& cost, std::size_t n_rows, std::size_t n_cols) {
  if (n_rows > n_cols) throw InputError("an assignment needs at least as many columns as rows");
  return AssignmentSolver(cost, n_rows, n_cols).solve();
}

real_t bottleneck_distance(const DiagramView& a, const DiagramView& b) {
  const SplitDiagram x = split(a), y = split(b);
  const real_t essential = essential_bottleneck(x.essential_births, y.essential_births);
  if (std::isinf(essential)) return kInf;
  return std::max(essential, bottleneck_finite(x.finite, y.finite));
}

real_t wasserstein_distance(const DiagramView& a, const DiagramView& b, real_t order, real_t internal_p) {
  if (!(order >= 1) || std::isinf(order)) throw InputError("order must be a finite number >= 1");
  if (!(internal_p >= 1)) throw InputError("internal_p must be >= 1 or inf");
  const SplitDiagram x = split(a), y = split(b);
  const real_t essential = essential_cost(x.essential_births, y.essential_births, order);
  if (std::isinf(essential)) return kInf;
  const real_t total = essential + wasserstein_finite_cost(x.finite, y.finite, order, internal_p);
  if (order == 1) return total;
  return order == 2 ? std::sqrt(total) : std::pow(total, 1 / order);
}

}  // namespace tda::matching
