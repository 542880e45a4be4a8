// What a run did, so that every change in speed can be explained: the
// simplices of each dimension, how many of them the shortcuts (clearing,
// apparent and emergent pairs) kept out of the reduction, how much work the
// reduction did, and where the wall time went.
#pragma once

#include <cstddef>
#include <vector>

namespace tda {

struct DimensionStats {
  // Simplices of this dimension within the threshold. From dimension 1 on,
  // each is cleared, apparent, emergent or reduced:
  //   simplices == cleared + apparent + emergent + reduced.
  std::size_t simplices = 0;
  std::size_t cleared = 0;           // a pivot of dimension - 1 (in dimension 1: an edge of the spanning forest)
  std::size_t apparent = 0;          // in a zero-persistence apparent pair, as facet or as cofacet
  std::size_t emergent = 0;          // a column whose first cofacet of equal diameter was its pivot
  std::size_t reduced = 0;           // a column reduced by additions (or to zero: an essential class)
  std::size_t column_additions = 0;  // reduced columns (with their V) and apparent facets added
  std::size_t coboundaries = 0;      // simplex coboundaries enumerated by the reduction
  std::size_t heap_pushes = 0;       // entries that went through the working coboundary heap
  std::size_t rereduced = 0;         // columns whose pivot an earlier column took (threads only)
  std::size_t retired_entries = 0;   // V entries left behind by those re-reductions
  std::size_t pairs = 0;             // pairs of positive persistence
  std::size_t essential = 0;         // classes that never die
  std::size_t cocycle_bytes = 0;     // the representative cocycles returned (when asked for)
  int threads = 0;                   // threads the reduction ran on (fewer than asked for few columns)
  std::size_t reduction_bytes = 0;   // memory the reduction charged: column data and V
  double assembly_seconds = 0;       // finding the columns (dimension 1: the apparent test of the edges)
  double reduction_seconds = 0;
};

struct RipsStats {
  int threads = 1;
  std::size_t points = 0;
  std::size_t edges = 0;                 // within the threshold
  std::size_t edges_after_collapse = 0;  // what the reduction ran on (== edges without collapse)
  bool collapsed = false;
  double distances_seconds = 0;  // distance matrix or neighbour lists, enclosing radius, sparse conversion
  double collapse_seconds = 0;
  double dim0_seconds = 0;  // edge list, sort, union-find
  double total_seconds = 0;
  std::size_t estimated_bytes = 0;         // the up-front estimate the budget was checked against
  std::size_t peak_bytes = 0;              // most memory the run's budget held at once
  std::vector<DimensionStats> dimensions;  // index = homology dimension
};

}  // namespace tda
