#include "tda/api.hpp"

#include <cmath>
#include <fstream>
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
// the largest arrays the reduction holds.
template <class D>
std::size_t check_budget(const D& dist, value_t threshold, index_t maxdim, const MemoryBudget& budget,
                         const Monitor& monitor) {
  if (maxdim < 1) return budget.used();
  const double room = double(budget.limit()) - double(budget.used());
  const double per_simplex = sizeof(DiameterIndex);
  const std::vector<std::size_t> degree = lower_degrees(dist, threshold);
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
      SimplexCounter counter = counter_for(dist, threshold);
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
  RipsPersistence<D> engine(dist, options, r.monitor, r.budget, result.stats);
  result.diagrams = engine.compute();
  result.diagrams.resize(r.request.maxdim + 1);
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
  MemoryBudget budget(request.memory_limit ? request.memory_limit : default_memory_limit());
  Run r{request, monitor, budget, Stopwatch(), RipsStats()};
  const double dense_bytes = double(n) * (n - 1) / 2 * sizeof(value_t);
  // A thresholded cloud too large for a dense matrix goes straight to
  // neighbour lists; otherwise the dense matrix also yields the enclosing
  // radius, which can tighten the threshold.
  if (request.threshold < infinity && dense_bytes > 0.25 * double(budget.limit())) {
    SparseDistanceMatrix sparse =
        sparse_from_points(points, n, d, request.threshold, request.n_threads, budget, monitor);
    if (monitor.cancel_requested()) throw Cancelled();
    return run_sparse(std::move(sparse), effective_maxdim(n, request.maxdim), request.threshold, r);
  }
  if (dense_bytes > double(budget.limit()))
    throw MemoryLimitExceeded("the distance matrix of " + std::to_string(n) + " points needs " + mib(dense_bytes) +
                              ", above the memory limit of " + mib(double(budget.limit())) +
                              "; give a threshold (sparse neighbour lists) or use fewer points");
  DenseDistanceMatrix dist = dense_from_points(points, n, d, request.n_threads, budget, monitor);
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

}  // namespace tda
