// The reductions of a cubical filtration, one per kind of dimension.
#pragma once

#include <algorithm>
#include <iterator>
#include <vector>

#include "cubical_complex.hpp"

namespace tda::cubical {

// A cell with its key.
struct Entry {
  key_t key;
  Cell cell;
  bool operator<(const Entry& other) const { return key < other.key; }
};

// Reduced boundary columns in increasing key order (pivot last), stored one
// after another, each behind a header entry holding its length: a column is
// found from its offset alone (one cache miss fewer than a table of bounds).
class ColumnStore {
 public:
  using Offset = std::uint32_t;
  static constexpr Offset kNone = ~Offset(0);

  template <class It>
  Offset add(It first, It last) {
    const std::size_t offset = entries_.size();
    if (offset + (last - first) + 1 >= kNone)
      throw MemoryLimitExceeded("the reduced columns exceed 2^32 entries; crop or downsample the volume");
    entries_.push_back(Entry{static_cast<key_t>(last - first), Cell{0}});
    entries_.insert(entries_.end(), first, last);
    return static_cast<Offset>(offset);
  }
  const Entry* begin(Offset col) const { return entries_.data() + col + 1; }
  const Entry* end(Offset col) const { return begin(col) + entries_[col].key; }
  std::size_t bytes() const { return entries_.capacity() * sizeof(Entry); }

 private:
  std::vector<Entry> entries_;
};

// A boundary column being reduced: its cells in increasing key order, so the
// pivot (the latest facet) is the last. Over Z/2 adding a column is the
// symmetric difference of two sorted lists: one merge, no heap.
class WorkingBoundary {
 public:
  void assign(const Entry* first, const Entry* last) { column_.assign(first, last); }
  const Entry* pivot() const { return column_.empty() ? nullptr : &column_.back(); }
  // Adds a column given in increasing order.
  void add(const Entry* first, const Entry* last) {
    merged_.clear();
    std::set_symmetric_difference(column_.begin(), column_.end(), first, last, std::back_inserter(merged_));
    column_.swap(merged_);
  }
  const std::vector<Entry>& entries() const { return column_; }

 private:
  std::vector<Entry> column_, merged_;
};

template <int D, Construction C>
class CubicalPersistence {
 public:
  using Filtration = CubicalFiltration<D, C>;
  using Diagram = std::vector<PixelPair>;

  CubicalPersistence(const Filtration& filtration, index_t maxdim, int n_threads, Monitor& monitor,
                     MemoryBudget& budget)
      : f_(filtration), maxdim_(maxdim), n_threads_(n_threads), monitor_(monitor), budget_(budget) {}

  // Diagrams of dimensions 0..min(maxdim, D - 1).
  std::vector<Diagram> compute();

 private:
  void compute_dim_0(Diagram& diagram);
  // Dimension 1 of a volume; the essential classes of dimension 2 (below a threshold) go to top_diagram.
  void compute_dim_1_of_volume(Diagram& diagram, Diagram* top_diagram);
  void compute_top_dim(Diagram& diagram);

  // Homology of dimension 1 of a volume.
  std::vector<key_t> assemble_columns();
  // The facets in increasing key order; returns their number.
  int boundary(Cell x, Entry* out) const;
  Entry earliest_cofacet(Cell x) const;
  Entry latest_facet(Cell x) const;
  // Edges by position (anchor and axis): neighbouring edges of a cycle sit together in memory.
  index_t edge_index(Cell edge) const { return edge.anchor() * D + __builtin_ctz(unsigned(edge.parity())); }
  // The cofacet in an apparent pair with this cell (the cell is its latest facet); key kInfinity if none.
  Entry apparent_cofacet(const Entry& cell) const;
  void essential_edges(Diagram& diagram);

  void pair(Diagram& diagram, key_t birth, key_t death) const;
  void essential(Diagram& diagram, key_t birth) const;
  double progress(int stage, double fraction) const;

  const Filtration& f_;
  index_t maxdim_;
  int n_threads_;
  Monitor& monitor_;
  MemoryBudget& budget_;
  // Per pixel: bit `code` is set when the edge at that code from the pixel
  // joined two components (a pivot of dimension 0, cleared in dimension 1).
  std::vector<std::uint32_t> merged_;
  // Per pixel, for volumes: bit `code` is set when the square at that code
  // is paired with a cube (cleared in dimension 1).
  std::vector<std::uint32_t> paired_;
  // Dimension 1 of a volume: the column of `reduced_` whose pivot is an edge, by edge_index.
  std::vector<ColumnStore::Offset> pivot_column_;
  ColumnStore reduced_;
};

}  // namespace tda::cubical
