// Edge collapse of a filtered flag complex: removes or delays edges without
// changing the persistence diagram in any dimension.
//
// An edge {u, v} is dominated at time t by a vertex c when c is adjacent to u,
// v and to every common neighbour of u and v at t; removing it then is a
// collapse of the flag complex (J.-D. Boissonnat, S. Pritam, "Edge collapse and
// persistence of flag complexes", SoCG 2020). The filtered version follows
// M. Glisse, S. Pritam, "Swap, shift and trim to edge collapse a filtered flag
// complex" (SoCG 2022): edges are taken from the last to the first; an edge
// dominated at its time is moved later, to the first time its common
// neighbourhood grows past every dominator (shift), or dropped when that never
// happens (trim). The result is a graph with fewer, sometimes later, edges whose
// flag filtration has the same diagram.
#pragma once

#include <cstddef>

#include "tda/core.hpp"
#include "tda/distance.hpp"

namespace tda {

struct CollapseCounts {
  std::size_t edges_before = 0;
  std::size_t edges_after = 0;
  std::size_t delayed = 0;  // kept, but at a later time than their length
  bool abandoned = false;   // the probe found too little to remove
};

// The collapse that gives up early, for runs that only want it if it pays:
// after the first `share` of the edges (the longest, where the
// high-dimensional simplices are), it stops unless at least `removed` of them
// went.
struct CollapseProbe {
  double share = 0;  // 0: never give up
  double removed = 0;
};

// The collapsed graph of `graph` (all its edges, whatever their length); an
// empty graph when the probe gave up (counts.abandoned).
SparseDistanceMatrix collapse_edges(const SparseDistanceMatrix& graph, MemoryBudget& budget, const Monitor& monitor,
                                    CollapseCounts& counts, CollapseProbe probe = {});

// Bytes a collapse of `edges` edges on `n` vertices may allocate at most.
std::size_t collapse_bytes(index_t n, std::size_t edges);

}  // namespace tda
