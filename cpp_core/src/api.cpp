#include "tda/api.hpp"

#include <cmath>
#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>

#include "coboundary.hpp"
#include "tda/collapse.hpp"

namespace tda {

namespace {

// Share of the available memory a run may take by default: leaves room for
// the interpreter, the caller's arrays and the other processes of a node.
constexpr double kDefaultMemoryShare = 0.8;
// Below this edge density a thresholded complex runs on neighbour lists.
constexpr double kSparseDensity = 0.3;

bool is_prime(coefficient_t p) {
  if (p < 2) return false;
  for (std::uint64_t f = 2; f * f <= p; ++f)
    if (p % f == 0) return false;
  return true;
}

// C(n, k) in double, enough to compare against a byte budget.
double binomial_estimate(double n, index_t k) {
  if (k < 0 || n < k) return 0;
  double r = 1;
  for (index_t i = 1; i <= k; ++i) r = r * (n - k + i) / i;
  return r;
}

bool binomial_fits(index_t n, index_t k) {
  // C(n, k) < 2^63, computed incrementally in 128 bits.
  if (k > n) return true;
  k = std::min(k, n - k);
  unsigned __int128 r = 1;
  for (index_t i = 1; i <= k; ++i) {
    r = r * static_cast<unsigned __int128>(n - k + i) / i;
    if (r >= (static_cast<unsigned __int128>(1) << 63)) return false;
  }
  return true;
}

std::string mib(double bytes) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << bytes / double(1 << 20) << " MiB";
  return out.str();
}

void validate(index_t n, const RipsRequest& r) {
  if (n < 1) throw InputError("the input is empty: at least one point is needed");
  if (n >= (index_t(1) << 31)) throw InputError("more than 2^31 - 1 points are not supported");
  if (r.maxdim < 0) throw InputError("maxdim must be non-negative");
  if (!is_prime(r.modulus)) throw InputError("coeff must be a prime number");
  if (std::isnan(r.threshold) || r.threshold < 0) throw InputError("threshold must be a non-negative number");
  if (r.n_threads < 1) throw InputError("n_threads must be at least 1");
}

// Homology above dimension n - 2 vanishes, so larger maxdim computes nothing
// new; capping it keeps the binomial table and the index range small.
index_t effective_maxdim(index_t n, index_t maxdim) { return std::min<index_t>(maxdim, std::max<index_t>(n - 2, 0)); }

void check_index_range(index_t n, index_t maxdim) {
  if (maxdim + 2 > kMaxVertices)
    throw InputError("maxdim " + std::to_string(maxdim) + " is above the supported " +
                     std::to_string(kMaxVertices - 2));
  if (!binomial_fits(n, maxdim + 2))
    throw InputError("simplex indices overflow 64 bits for n=" + std::to_string(n) +
                     " points at maxdim=" + std::to_string(maxdim) + "; lower maxdim or use fewer points");
}

// Simplices of dimension `dim` (dim + 1 vertices) within the threshold, each
// counted once from its top vertex: sum over v of C(lower degree of v, dim) is
// an upper bound; an exact count by clique enumeration refines it when the
// bound is over budget, stopping as soon as the budget is exceeded.
class SimplexCounter {
 public:
  explicit SimplexCounter(std::vector<std::vector<std::int32_t>>&& lower_neighbors)
      : lower_(std::move(lower_neighbors)) {}

  // Exact count of simplices with `dim` + 1 vertices, or a value above `cap`.
  double count(index_t dim, double cap, const Monitor& monitor) const {
    double total = 0;
    std::vector<std::int32_t> scratch;
    for (std::size_t v = 0; v < lower_.size() && total <= cap; ++v) {
      if ((v & 255) == 0 && monitor.cancel_requested()) throw Cancelled();
      total += cliques(lower_[v], dim, cap - total);
    }
    return total;
  }

 private:
  // Cliques of `size` more vertices drawn from `candidates` (sorted).
  double cliques(const std::vector<std::int32_t>& candidates, index_t size, double cap) const {
    if (size == 0) return 1;
    if (size == 1) return double(candidates.size());
    double total = 0;
    std::vector<std::int32_t> next;
    for (std::size_t i = 0; i < candidates.size() && total <= cap; ++i) {
      const auto& nb = lower_[candidates[i]];
      next.clear();
      std::set_intersection(candidates.begin(), candidates.begin() + i, nb.begin(), nb.end(), std::back_inserter(next));
      if (index_t(next.size()) >= size - 1) total += cliques(next, size - 1, cap - total);
    }
    return total;
  }

  std::vector<std::vector<std::int32_t>> lower_;
};

// SimplexCounter's counts over bitsets of lower neighbours: a word-wise AND
// replaces each sorted-list intersection. For the estimates, whose clouds are
// small enough for n^2 bits.
class BitsetCounter {
 public:
  explicit BitsetCounter(index_t n) : n_(n), words_((std::size_t(n) + 63) / 64), bits_(std::size_t(n) * words_, 0) {}
  static std::size_t bytes(index_t n) { return std::size_t(n) * ((std::size_t(n) + 63) / 64) * 8; }

  void add(index_t i, index_t j) { bits_[std::size_t(i) * words_ + std::size_t(j) / 64] |= 1ull << (j % 64); }

  // Exact count of simplices with `dim` + 1 vertices, or a value above `cap`.
  double count(index_t dim, double cap, const Monitor& monitor) const {
    std::vector<std::uint64_t> scratch(std::size_t(std::max<index_t>(dim, 1)) * words_);
    double total = 0;
    for (index_t v = 0; v < n_ && total <= cap; ++v) {
      if ((v & 255) == 0 && monitor.cancel_requested()) throw Cancelled();
      total += cliques(row(v), used_words(v), dim, cap - total, scratch.data());
    }
    return total;
  }

 private:
  const std::uint64_t* row(index_t v) const { return bits_.data() + std::size_t(v) * words_; }
  static std::size_t used_words(index_t v) { return (std::size_t(v) + 63) / 64; }  // lower neighbours are < v

  // Cliques of `size` more vertices drawn from the set `c` (its first `used` words).
  double cliques(const std::uint64_t* c, std::size_t used, index_t size, double cap, std::uint64_t* scratch) const {
    if (size == 0) return 1;
    double total = 0;
    for (std::size_t w = 0; w < used && total <= cap; ++w) {
      if (size == 1) {
        total += __builtin_popcountll(c[w]);
        continue;
      }
      for (std::uint64_t bits = c[w]; bits && total <= cap; bits &= bits - 1) {
        const index_t u = index_t(w * 64) + __builtin_ctzll(bits);
        const std::uint64_t* nb = row(u);
        const std::size_t next_used = used_words(u);
        std::size_t members = 0;
        for (std::size_t k = 0; k < next_used; ++k) members += __builtin_popcountll(scratch[k] = c[k] & nb[k]);
        if (index_t(members) < size - 1) continue;
        total += size == 2 ? double(members) : cliques(scratch, next_used, size - 1, cap - total, scratch + words_);
      }
    }
    return total;
  }

  index_t n_;
  std::size_t words_;
  std::vector<std::uint64_t> bits_;
};

// Whichever of the two counters holds the lists.
struct EitherCounter {
  bool bitsets;
  BitsetCounter bits;
  SimplexCounter lists;
  double count(index_t dim, double cap, const Monitor& monitor) const {
    return bitsets ? bits.count(dim, cap, monitor) : lists.count(dim, cap, monitor);
  }
};

std::vector<std::size_t> lower_degrees(const DenseDistanceMatrix& dist, value_t threshold) {
  std::vector<std::size_t> degree(dist.size(), 0);
  for (index_t i = 1; i < dist.size(); ++i)
    for (index_t j = 0; j < i; ++j) degree[i] += dist.below(i, j) <= threshold;
  return degree;
}

std::vector<std::size_t> lower_degrees(const SparseDistanceMatrix& dist, value_t) {
  std::vector<std::size_t> degree(dist.size(), 0);
  for (index_t i = 0; i < dist.size(); ++i)
    for (const Neighbor* nb = dist.begin(i); nb != dist.end(i) && nb->vertex < i; ++nb) ++degree[i];
  return degree;
}

double upper_bound(const std::vector<std::size_t>& degree, index_t dim) {
  double total = 0;
  for (std::size_t d : degree) total += binomial_estimate(double(d), dim);
  return total;
}

SimplexCounter counter_for(const DenseDistanceMatrix& dist, value_t threshold) {
  std::vector<std::vector<std::int32_t>> lower(dist.size());
  for (index_t i = 1; i < dist.size(); ++i)
    for (index_t j = 0; j < i; ++j)
      if (dist.below(i, j) <= threshold) lower[i].push_back(std::int32_t(j));
  return SimplexCounter(std::move(lower));
}

SimplexCounter counter_for(const SparseDistanceMatrix& dist, value_t) {
  std::vector<std::vector<std::int32_t>> lower(dist.size());
  for (index_t i = 0; i < dist.size(); ++i)
    for (const Neighbor* nb = dist.begin(i); nb != dist.end(i) && nb->vertex < i; ++nb) lower[i].push_back(nb->vertex);
  return SimplexCounter(std::move(lower));
}

// Refuses, before any reduction, a run whose simplex lists cannot fit: the
// columns of dimension maxdim and the simplices of dimension maxdim - 1 are
// the largest arrays the reduction holds. `make_counter` builds the exact
// counter, only when the bound from the degrees is over. Returns the bytes
// the run then holds (the budget's use included).
template <class MakeCounter>
std::size_t budget_estimate(const std::vector<std::size_t>& degree, index_t maxdim, const MemoryBudget& budget,
                            MakeCounter&& make_counter, const Monitor& monitor) {
  if (maxdim < 1) return budget.used();
  const double room = double(budget.limit()) - double(budget.used());
  const double per_simplex = sizeof(DiameterIndex);
  // The edge list and the columns of dimension 1 are held together.
  const double edges = upper_bound(degree, 1);
  double estimate = 2 * per_simplex * edges;
  auto refuse = [&](index_t dim) {
    throw MemoryLimitExceeded("the complex has too many simplices for the memory limit: its simplices of dimension " +
                              std::to_string(dim) + " alone need more than " + mib(room) + " (limit " +
                              mib(double(budget.limit())) + "); lower the threshold or maxdim, or use fewer points");
  };
  if (estimate > room) refuse(1);
  if (maxdim >= 2) {
    // Cheap bound first from the degrees alone; exact counts only when it is over.
    double simplices = upper_bound(degree, maxdim) + upper_bound(degree, maxdim - 1);
    if (estimate + per_simplex * simplices > room) {
      const auto counter = make_counter();
      const double cap = (room - estimate) / per_simplex;
      const double top = counter.count(maxdim, cap, monitor);
      const double below = top > cap ? 0 : counter.count(maxdim - 1, cap - top, monitor);
      simplices = top + below;
      if (simplices > cap) refuse(maxdim);
    }
    estimate += per_simplex * simplices;
  }
  return budget.used() + static_cast<std::size_t>(estimate);
}

// What the stages of one request share.
struct Run {
  const RipsRequest& request;
  Monitor& monitor;
  MemoryBudget& budget;
  Stopwatch clock;
  RipsStats stats;
};

template <class D>
std::size_t check_budget(const D& dist, value_t threshold, index_t maxdim, const MemoryBudget& budget,
                         const Monitor& monitor) {
  if (maxdim < 1) return budget.used();
  return budget_estimate(
      lower_degrees(dist, threshold), maxdim, budget, [&] { return counter_for(dist, threshold); }, monitor);
}

template <class D>
RipsResult reduce(const D& dist, index_t maxdim, value_t threshold, bool sparse, Run& r) {
  RipsResult result;
  result.stats = r.stats;
  result.stats.distances_seconds = r.clock.seconds() - r.stats.collapse_seconds;
  result.stats.threads = r.request.n_threads;
  result.stats.points = static_cast<std::size_t>(dist.size());
  result.sparse = sparse;
  result.threshold = threshold;
  result.estimated_bytes = check_budget(dist, threshold, maxdim, r.budget, r.monitor);
  RipsOptions options;
  options.maxdim = maxdim;
  options.threshold = threshold;
  options.modulus = r.request.modulus;
  options.n_threads = r.request.n_threads;
  options.cocycles = r.request.cocycles;
  RipsPersistence<D> engine(dist, options, r.monitor, r.budget, result.stats);
  result.diagrams = engine.compute();
  result.diagrams.resize(r.request.maxdim + 1);
  if (r.request.cocycles) {
    result.cocycles = engine.take_cocycles();
    result.cocycles.resize(r.request.maxdim + 1);
  }
  result.stats.dimensions.resize(r.request.maxdim + 1);
  if (!result.stats.collapsed) result.stats.edges = result.stats.edges_after_collapse;
  result.stats.total_seconds = r.clock.seconds();
  result.stats.peak_bytes = r.budget.peak();
  result.stats.estimated_bytes = result.estimated_bytes;
  return result;
}

// "auto" collapses from dimension 2 on: in dimension 1 the apparent pairs
// leave little to reduce, and a collapse can cost as much as the whole run.
// From dimension 2 on, the edges a collapse removes take with them most of the
// simplices of the top dimensions, which is where the time goes, unless it
// removes few. The collapse takes the longest edges first, so after the first
// 5% of them (the longest, where the high-dimensional simplices are) it knows,
// and gives up unless at least half of them went (on the shared data sets 90%
// or more go where the collapse pays; under 20% on sphere_3_192, where it
// does not).
constexpr CollapseProbe kAutoProbe{0.05, 0.5};

// Which collapse a run gets: none, one that may give up, or a full one.
enum class CollapsePlan { none, probe, full };

CollapsePlan collapse_plan(index_t n, std::size_t edges, index_t maxdim, const Run& r) {
  if (r.request.cocycles) {
    if (r.request.collapse == CollapseMode::on)
      throw InputError("cocycles live on the uncollapsed complex: give collapse_edges false or \"auto\" with them");
    return CollapsePlan::none;
  }
  switch (r.request.collapse) {
    case CollapseMode::off:
      return CollapsePlan::none;
    case CollapseMode::on:
      return CollapsePlan::full;
    case CollapseMode::automatic:
      break;
  }
  if (maxdim < 2 || n < 3 || edges == 0) return CollapsePlan::none;
  // Only where it fits beside what the run holds already.
  if (r.budget.used() + collapse_bytes(n, edges) > r.budget.limit()) return CollapsePlan::none;
  return CollapsePlan::probe;
}

// The collapsed graph, or nothing when the probe gave up.
std::optional<SparseDistanceMatrix> collapse(const SparseDistanceMatrix& graph, CollapsePlan plan, Run& r) {
  const Stopwatch watch;
  CollapseCounts counts;
  SparseDistanceMatrix collapsed =
      collapse_edges(graph, r.budget, r.monitor, counts, plan == CollapsePlan::probe ? kAutoProbe : CollapseProbe{});
  r.stats.collapse_seconds = watch.seconds();
  if (counts.abandoned) return std::nullopt;
  r.stats.collapsed = true;
  r.stats.edges = counts.edges_before;
  return collapsed;
}

// Neighbour lists in hand: collapse them as planned, then run.
RipsResult run_sparse(SparseDistanceMatrix&& graph, index_t maxdim, value_t threshold, Run& r) {
  const CollapsePlan plan = collapse_plan(graph.size(), graph.edge_count(), maxdim, r);
  if (plan != CollapsePlan::none) {
    if (auto collapsed = collapse(graph, plan, r)) {
      r.budget.release(graph.bytes());
      graph = SparseDistanceMatrix();
      return reduce(*collapsed, maxdim, threshold, true, r);
    }
  }
  return reduce(graph, maxdim, threshold, true, r);
}

// Dense matrix in hand: pick the threshold and the matrix kind, collapse as
// planned, then run.
RipsResult run_dense(DenseDistanceMatrix&& dist, Run& r) {
  const index_t n = dist.size();
  const index_t maxdim = effective_maxdim(n, r.request.maxdim);
  // Beyond the enclosing radius every complex is a cone: no class is born
  // after it and all finite classes die by it, so it bounds the filtration
  // without changing any diagram.
  const value_t threshold = std::min(r.request.threshold, enclosing_radius(dist));
  const double pairs = double(n) * (n - 1) / 2;
  const std::size_t edges = n > 2 ? count_edges(dist, threshold) : 0;
  const bool sparse = r.request.threshold < infinity && n > 2 && double(edges) < kSparseDensity * pairs;
  const CollapsePlan plan = collapse_plan(n, edges, maxdim, r);
  if (!sparse && plan == CollapsePlan::none) return reduce(dist, maxdim, threshold, false, r);
  SparseDistanceMatrix graph = sparse_from_dense(dist, threshold, r.budget);
  if (plan != CollapsePlan::none) {
    if (auto collapsed = collapse(graph, plan, r)) {
      r.budget.release(graph.bytes() + dist.bytes());
      graph = SparseDistanceMatrix();
      dist.free_storage();
      return reduce(*collapsed, maxdim, threshold, true, r);
    }
  }
  if (!sparse) {
    r.budget.release(graph.bytes());
    graph = SparseDistanceMatrix();
    return reduce(dist, maxdim, threshold, false, r);
  }
  r.budget.release(dist.bytes());
  dist.free_storage();
  return reduce(graph, maxdim, threshold, true, r);
}

std::size_t meminfo_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::size_t value = 0;
  std::string unit;
  while (in >> key >> value >> unit)
    if (key == "MemAvailable:") return value * 1024;
  return 0;
}

std::size_t cgroup_remaining() {
  std::ifstream max_file("/sys/fs/cgroup/memory.max");
  std::string max_text;
  if (!(max_file >> max_text) || max_text == "max") return 0;
  std::ifstream current_file("/sys/fs/cgroup/memory.current");
  std::size_t current = 0;
  current_file >> current;
  const std::size_t limit = std::stoull(max_text);
  return limit > current ? limit - current : 1;
}

// --- estimates from the points alone (no distance matrix held) ---------------

// Distances computed from the points as dense_from_points computes them: in
// double by the same PointMetric, rounded once to value_t.
class PointDistances {
 public:
  explicit PointDistances(const PointMetric& metric) : metric_(metric) {}
  index_t size() const { return metric_.size(); }
  double coordinate(index_t i, index_t k) const { return metric_.coordinate(i, k); }
  value_t operator()(index_t i, index_t j) const { return static_cast<value_t>(metric_(i, j)); }
  index_t widest_axis() const { return metric_.widest_axis(); }
  bool bounded_by_coordinates() const { return metric_.bounded_by_coordinates(); }

 private:
  const PointMetric& metric_;
};

// Calls visit(i, j), i > j, for every pair within `threshold`: over the whole
// triangle, or with `sweep` the pairs sparse_from_points finds. False, with
// the visit cut short, once more than `max_pairs` pairs have been examined.
template <class Visit>
bool for_each_pair_within(const PointDistances& dist, value_t threshold, bool sweep, std::size_t max_pairs,
                          const Monitor& monitor, Visit&& visit) {
  const index_t n = dist.size();
  std::size_t examined = 0;
  if (!sweep) {
    for (index_t i = 1; i < n; ++i) {
      if ((examined += i) > max_pairs) return false;
      if ((i & 255) == 0 && monitor.cancel_requested()) throw Cancelled();
      for (index_t j = 0; j < i; ++j)
        if (dist(i, j) <= threshold) visit(i, j);
    }
    return true;
  }
  const index_t axis = dist.widest_axis();
  std::vector<index_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](index_t a, index_t b) { return dist.coordinate(a, axis) < dist.coordinate(b, axis); });
  const double t = dist.bounded_by_coordinates() ? double(threshold) : INFINITY;
  for (index_t a = 0; a < n; ++a) {
    if ((a & 1023) == 0 && monitor.cancel_requested()) throw Cancelled();
    const index_t i = order[a];
    const double reach = dist.coordinate(i, axis) + t;
    for (index_t b = a + 1; b < n && dist.coordinate(order[b], axis) <= reach; ++b) {
      if (++examined > max_pairs) return false;
      const index_t j = order[b];
      if (dist(i, j) <= threshold) visit(std::max(i, j), std::min(i, j));
    }
  }
  return true;
}

value_t enclosing_radius(const PointDistances& dist, const Monitor& monitor) {
  const index_t n = dist.size();
  if (n < 2) return 0;
  std::vector<value_t> row_max(n, 0);
  for (index_t i = 1; i < n; ++i) {
    if ((i & 255) == 0 && monitor.cancel_requested()) throw Cancelled();
    for (index_t j = 0; j < i; ++j) {
      const value_t d = dist(i, j);
      row_max[i] = std::max(row_max[i], d);
      row_max[j] = std::max(row_max[j], d);
    }
  }
  return *std::min_element(row_max.begin(), row_max.end());
}

void refuse_dense(index_t n, double dense_bytes, const MemoryBudget& budget) {
  throw MemoryLimitExceeded("the distance matrix of " + std::to_string(n) + " points needs " + mib(dense_bytes) +
                            ", above the memory limit of " + mib(double(budget.limit())) +
                            "; give a threshold (sparse neighbour lists) or use fewer points");
}

}  // namespace

std::size_t default_memory_limit() {
  std::size_t available = meminfo_available();
  const std::size_t cgroup = cgroup_remaining();
  if (cgroup && (!available || cgroup < available)) available = cgroup;
  if (!available) available = std::size_t(4) << 30;
  return static_cast<std::size_t>(double(available) * kDefaultMemoryShare);
}

RipsResult rips_from_points(const double* points, index_t n, index_t d, const RipsRequest& request, Monitor& monitor) {
  validate(n, request);
  if (d < 1) throw InputError("points need at least one coordinate");
  check_index_range(n, effective_maxdim(n, request.maxdim));
  const PointMetric metric(points, n, d, request.metric);
  MemoryBudget budget(request.memory_limit ? request.memory_limit : default_memory_limit());
  Run r{request, monitor, budget, Stopwatch(), RipsStats()};
  const double dense_bytes = double(n) * (n - 1) / 2 * sizeof(value_t);
  // A thresholded cloud too large for a dense matrix goes straight to
  // neighbour lists; otherwise the dense matrix also yields the enclosing
  // radius, which can tighten the threshold.
  if (request.threshold < infinity && dense_bytes > 0.25 * double(budget.limit())) {
    SparseDistanceMatrix sparse = sparse_from_points(metric, request.threshold, request.n_threads, budget, monitor);
    if (monitor.cancel_requested()) throw Cancelled();
    return run_sparse(std::move(sparse), effective_maxdim(n, request.maxdim), request.threshold, r);
  }
  if (dense_bytes > double(budget.limit())) refuse_dense(n, dense_bytes, budget);
  DenseDistanceMatrix dist = dense_from_points(metric, request.n_threads, budget, monitor);
  if (monitor.cancel_requested()) throw Cancelled();
  return run_dense(std::move(dist), r);
}

RipsResult rips_from_lower_distances(const double* lower, index_t n, const RipsRequest& request, Monitor& monitor) {
  validate(n, request);
  check_index_range(n, effective_maxdim(n, request.maxdim));
  MemoryBudget budget(request.memory_limit ? request.memory_limit : default_memory_limit());
  Run r{request, monitor, budget, Stopwatch(), RipsStats()};
  const std::size_t pairs = std::size_t(n) * (n - 1) / 2;
  budget.charge(pairs * sizeof(value_t), "the distance matrix");
  std::vector<value_t> values(pairs);
  for (std::size_t k = 0; k < pairs; ++k) {
    if (!(lower[k] >= 0) || std::isinf(lower[k]))
      throw InputError("distances must be finite and non-negative (entry " + std::to_string(k) + ")");
    values[k] = static_cast<value_t>(lower[k]) + value_t(0);  // -0.0 -> +0.0: orders by bit pattern
  }
  return run_dense(DenseDistanceMatrix(n, std::move(values)), r);
}

RipsResult rips_from_sparse(const std::int64_t* rows, const std::int64_t* cols, const double* values, std::size_t count,
                            index_t n, const RipsRequest& request, Monitor& monitor) {
  validate(n, request);
  const index_t maxdim = effective_maxdim(n, request.maxdim);
  check_index_range(n, maxdim);
  MemoryBudget budget(request.memory_limit ? request.memory_limit : default_memory_limit());
  Run r{request, monitor, budget, Stopwatch(), RipsStats()};
  SparseDistanceMatrix graph = sparse_from_triplets(rows, cols, values, count, n, request.threshold, budget);
  return run_sparse(std::move(graph), maxdim, request.threshold, r);
}

RipsEstimate estimate_rips_from_points(const double* points, index_t n, index_t d, const RipsRequest& request,
                                       std::size_t max_pairs, Monitor& monitor) {
  validate(n, request);
  if (d < 1) throw InputError("points need at least one coordinate");
  const index_t maxdim = effective_maxdim(n, request.maxdim);
  check_index_range(n, maxdim);
  MemoryBudget budget(request.memory_limit ? request.memory_limit : default_memory_limit());
  const PointMetric metric(points, n, d, request.metric);
  const PointDistances dist(metric);
  const double pairs = double(n) * (n - 1) / 2;
  const double dense_bytes = pairs * sizeof(value_t);
  // The same choice of distance matrix as rips_from_points and run_dense.
  const bool sweep = request.threshold < infinity && dense_bytes > 0.25 * double(budget.limit());
  RipsEstimate out;
  out.threshold = request.threshold;
  if (!sweep) {
    if (dense_bytes > double(budget.limit())) refuse_dense(n, dense_bytes, budget);
    budget.charge(static_cast<std::size_t>(dense_bytes), "the distance matrix");
    out.bytes = budget.used();
    if (pairs > double(max_pairs)) return out;
    out.threshold = std::min(request.threshold, enclosing_radius(dist, monitor));
  }
  std::vector<std::size_t> degree(n, 0);
  std::size_t edges = 0;
  auto count = [&](index_t i, index_t) { ++degree[i], ++edges; };
  if (!for_each_pair_within(dist, out.threshold, sweep, max_pairs, monitor, count)) return out;
  const std::size_t lists = 2 * edges * sizeof(Neighbor) + (std::size_t(n) + 1) * sizeof(std::size_t);
  if (sweep) {
    // sparse_from_points holds its pair lists (about 24 bytes a pair) while it builds the neighbour lists.
    if (lists + 24 * edges > budget.limit() - budget.used())
      throw MemoryLimitExceeded("the pairs within the threshold need more memory than the limit of " +
                                std::to_string(budget.limit() >> 20) + " MiB; lower the threshold or use fewer points");
    out.bytes = lists + 24 * edges;
    budget.charge(lists, "the neighbour lists");
    out.sparse = true;
  } else if (request.threshold < infinity && n > 2 && double(edges) < kSparseDensity * pairs) {
    budget.charge(lists, "the neighbour lists");  // built while the dense matrix is still held
    out.bytes = std::max(out.bytes, budget.used());
    budget.release(static_cast<std::size_t>(dense_bytes));
    out.sparse = true;
  }
  // The exact count, only when the degree bound is over: bitsets for a small cloud, else sorted lists.
  constexpr std::size_t kBitsetBytes = std::size_t(64) << 20;
  const bool bitsets = BitsetCounter::bytes(n) <= kBitsetBytes;
  auto exact_counter = [&] {
    std::vector<std::vector<std::int32_t>> lower(bitsets ? 0 : n);
    BitsetCounter bits(bitsets ? n : 0);
    for_each_pair_within(dist, out.threshold, sweep, max_pairs, monitor, [&](index_t i, index_t j) {
      if (bitsets)
        bits.add(i, j);
      else
        lower[i].push_back(std::int32_t(j));
    });
    for (auto& l : lower) std::sort(l.begin(), l.end());
    return EitherCounter{bitsets, std::move(bits), SimplexCounter(std::move(lower))};
  };
  out.bytes = std::max(out.bytes, budget_estimate(degree, maxdim, budget, exact_counter, monitor));
  out.complete = true;
  return out;
}

}  // namespace tda
