// Entry points of the engine: validate a request, choose the distance matrix
// kind, check the memory budget, run the reduction.
#pragma once

#include <atomic>
#include <cstddef>
#include <vector>

#include "tda/core.hpp"
#include "tda/distance.hpp"
#include "tda/rips.hpp"
#include "tda/stats.hpp"

namespace tda {

// Edge collapse before the reduction (see tda/collapse.hpp): `automatic`
// collapses from maxdim 2 on unless a probe of the longest edges finds it
// removes too few (see kAutoProbe in api.cpp).
enum class CollapseMode { off, on, automatic };

struct RipsRequest {
  index_t maxdim = 1;
  value_t threshold = infinity;  // infinity: the full filtration
  coefficient_t modulus = 2;
  int n_threads = 1;
  std::size_t memory_limit = 0;  // bytes; 0: default_memory_limit()
  CollapseMode collapse = CollapseMode::automatic;
  // Representative cocycles of the pairs of dimension >= 1; they live on the
  // uncollapsed complex, so "automatic" does not collapse and "on" is refused.
  bool cocycles = false;
  Metric metric;  // between points (rips_from_points and its estimate only)
};

struct RipsResult {
  std::vector<Diagram> diagrams;  // index = homology dimension
  // With request.cocycles: cocycles[d][i] represents diagrams[d][i] (dimension 0: none).
  std::vector<std::vector<Cocycle>> cocycles;
  bool sparse = false;           // which distance matrix kind ran
  value_t threshold = infinity;  // the threshold the reduction used
  std::size_t estimated_bytes = 0;
  RipsStats stats;
};

// What a run would hold before reducing, known from the points alone.
struct RipsEstimate {
  bool complete = false;         // false: cut short after max_pairs pairs; bytes is then a lower bound
  std::size_t bytes = 0;         // distance structure, edges and simplices (the budget's up-front charges)
  bool sparse = false;           // which distance matrix kind the run would use
  value_t threshold = infinity;  // the threshold the reduction would use
};

// A share of the memory this process can still use (MemAvailable, or the
// cgroup's remaining allowance where lower).
std::size_t default_memory_limit();

// Points: n x d, row-major.
RipsResult rips_from_points(const double* points, index_t n, index_t d, const RipsRequest& request, Monitor& monitor);

// Lower triangle of a distance matrix, row by row: d(1,0), d(2,0), d(2,1), ...
RipsResult rips_from_lower_distances(const double* lower, index_t n, const RipsRequest& request, Monitor& monitor);

// A sparse distance matrix by its stored entries (see sparse_from_triplets):
// absent pairs are no edge, so no enclosing radius bounds the filtration.
RipsResult rips_from_sparse(const std::int64_t* rows, const std::int64_t* cols, const double* values, std::size_t count,
                            index_t n, const RipsRequest& request, Monitor& monitor);

// rips_from_points' choices and up-front refusals (MemoryLimitExceeded,
// InputError) without its arrays: distances are computed on the fly and at
// most max_pairs pairs examined per pass; only an exact simplex count (when
// the degree bound is over the budget) holds the lower neighbour lists.
RipsEstimate estimate_rips_from_points(const double* points, index_t n, index_t d, const RipsRequest& request,
                                       std::size_t max_pairs, Monitor& monitor);

}  // namespace tda
