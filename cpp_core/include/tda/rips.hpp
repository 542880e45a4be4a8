// Persistent cohomology of the Vietoris–Rips filtration.
//
// The method follows the Ripser line of work (U. Bauer, "Ripser: efficient
// computation of Vietoris–Rips persistence barcodes", 2021): simplices are
// named by their index in the combinatorial number system and never stored
// with their boundaries; coboundary columns are enumerated on the fly and
// reduced in reverse filtration order with clearing; zero-persistence
// apparent pairs are skipped and re-derived when needed; emergent pairs are
// recognised before a column's coboundary is enumerated in full.
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "tda/core.hpp"
#include "tda/distance.hpp"
#include "tda/pivot_map.hpp"
#include "tda/stats.hpp"

namespace tda {

using Diagram = std::vector<std::pair<value_t, value_t>>;
// A representative cocycle of a class of dimension d, row by row: the d + 1
// vertices of a simplex (decreasing) and its coefficient in 0..p-1, as
// ripser.py gives them.
using Cocycle = std::vector<std::int64_t>;

// Most vertices a simplex of the reduction can have (maxdim + 2).
constexpr int kMaxVertices = 32;
// Distances among the vertices of one simplex: entry (i, j), j < i, at
// i * kMaxVertices + j, vertices in decreasing order.
using LocalDistances = std::array<value_t, kMaxVertices * kMaxVertices>;

// Orders a max-heap so that its top is the pivot of a coboundary column: the
// cofacet earliest in the filtration (smallest diameter, then largest index).
struct PivotOrder {
  // Diameters are non-negative, so their bit patterns order like the values;
  // one 128-bit comparison replaces two data-dependent branches.
  static unsigned __int128 key(const DiameterEntry& e) {
    std::uint32_t bits;
    std::memcpy(&bits, &e.diameter, sizeof bits);
    return (static_cast<unsigned __int128>(bits) << 64) | (~static_cast<std::uint64_t>(e.index));
  }
  bool operator()(const DiameterEntry& a, const DiameterEntry& b) const { return key(a) > key(b); }
};

// A binary heap that keeps its storage between columns.
class WorkingColumn {
 public:
  bool empty() const { return heap_.empty(); }
  const DiameterEntry& top() const { return heap_.front(); }
  void push(const DiameterEntry& e) {
    heap_.push_back(e);
    std::push_heap(heap_.begin(), heap_.end(), PivotOrder());
  }
  void pop() {
    std::pop_heap(heap_.begin(), heap_.end(), PivotOrder());
    heap_.pop_back();
  }
  void clear() { heap_.clear(); }
  std::size_t size() const { return heap_.size(); }
  // Bulk insertion: one heapify instead of one sift per entry.
  template <class It>
  void assign(It first, It last) {
    heap_.assign(first, last);
    std::make_heap(heap_.begin(), heap_.end(), PivotOrder());
  }

 private:
  std::vector<DiameterEntry> heap_;
};

struct RipsOptions {
  index_t maxdim = 1;
  value_t threshold = infinity;  // simplices with diameter <= threshold enter
  coefficient_t modulus = 2;
  int n_threads = 1;
  bool cocycles = false;  // keep a representative cocycle of every pair of dimension >= 1
};

template <class DistanceMatrix>
class CoboundaryEnumerator;
template <class DistanceMatrix>
class ColumnReducer;

template <class DistanceMatrix>
class RipsPersistence {
 public:
  RipsPersistence(const DistanceMatrix& dist, const RipsOptions& options, Monitor& monitor, MemoryBudget& budget,
                  RipsStats& stats);

  // Diagrams for dimensions 0..maxdim; zero-persistence pairs are omitted.
  std::vector<Diagram> compute();
  // With options.cocycles: per dimension, the cocycle of each pair of compute()'s diagram, in its order
  // (dimension 0: none).
  std::vector<std::vector<Cocycle>> take_cocycles() { return std::move(cocycles_); }

  // --- vocabulary shared with the coboundary enumerators ---
  index_t n() const { return n_; }
  const DistanceMatrix& dist() const { return dist_; }
  const BinomialTable& binomial() const { return binomial_; }
  value_t threshold() const { return threshold_; }

  // Vertices of a simplex, in decreasing order.
  void vertices_of(index_t index, index_t dim, index_t* out) const;
  value_t diameter_of(index_t index, index_t dim) const;

 private:
  friend class CoboundaryEnumerator<DistanceMatrix>;
  friend class ColumnReducer<DistanceMatrix>;
  using Enumerator = CoboundaryEnumerator<DistanceMatrix>;

  index_t max_vertex(index_t index, index_t k, index_t top) const;

  // A simplex whose vertices (decreasing) are already known.
  struct SimplexView {
    value_t diameter;
    index_t index;
    index_t dim;
    const index_t* vertices;
    const value_t* pairwise = nullptr;  // LocalDistances of the vertices, when known
  };
  struct Cofacet {
    DiameterEntry entry;  // index -1: none
    index_t vertex;       // the vertex added
  };
  struct Facet {
    DiameterEntry entry;  // index -1: none
    index_t removed;      // position (in decreasing order) of the vertex removed
  };

  // The cofacet of a simplex that would be its unreduced pivot when it has
  // the same diameter (the first of equal diameter in decreasing index),
  // found by `cofacets`, which then holds its vertex's distances.
  Cofacet zero_pivot_cofacet(const SimplexView& s, Enumerator& cofacets) const;
  void local_distances(const index_t* vertices, index_t dim, value_t* out) const;
  // The youngest facet with the same diameter (smallest index); its
  // coefficient is the sign of the simplex in the facet's coboundary.
  Facet zero_pivot_facet(const SimplexView& s) const;
  // Partners in zero-persistence apparent pairs, or index -1.
  DiameterEntry zero_apparent_cofacet(const SimplexView& s) const;
  DiameterEntry zero_apparent_facet(const SimplexView& s) const;
  DiameterEntry zero_apparent_facet(const DiameterIndex& simplex, index_t dim) const;

  void compute_dim_0(Diagram& diagram, std::vector<DiameterIndex>& edges, std::vector<DiameterIndex>& columns);
  void compute_pairs(const std::vector<DiameterIndex>& columns, PivotMap& pivots, index_t dim, Diagram& diagram);
  void assemble_columns(std::vector<DiameterIndex>& simplices, std::vector<DiameterIndex>& columns,
                        const PivotMap& pivots, index_t dim);

  DiameterEntry pop_pivot(WorkingColumn& column) const;
  DiameterEntry get_pivot(WorkingColumn& column) const;

  std::vector<DiameterIndex> edges() const;
  // The column's simplex plus its V (count-prefixed, or null), as cocycle rows.
  Cocycle cocycle_of(const DiameterIndex& column, const DiameterEntry* v, index_t dim) const;
  double progress_of(index_t dim, double fraction) const {
    return (double(dim) + fraction) / double(options_.maxdim + 1);
  }

  const DistanceMatrix& dist_;
  RipsOptions options_;
  index_t n_;
  value_t threshold_;
  BinomialTable binomial_;
  PrimeField field_;
  Monitor& monitor_;
  MemoryBudget& budget_;
  RipsStats& stats_;
  std::vector<std::vector<Cocycle>> cocycles_;
};

}  // namespace tda
