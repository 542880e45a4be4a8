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
// after another in blocks of 2^20 entries, each behind a header entry holding
// its length: a column is found from its offset (block << 20 | position)
// alone. Blocks, not one growing vector: no doubling slack and no copy of
// everything at a reallocation (the columns are the largest structure of a
// volume's run).
class ColumnStore {
 public:
  using Offset = std::uint32_t;
  static constexpr int kBlockBits = 20;
  static constexpr std::size_t kBlock = std::size_t(1) << kBlockBits;
  // Offsets from here up are not offsets (EdgeStates uses them as tags).
  static constexpr Offset kLimit = ~Offset(0) - 15;

  template <class It>
  Offset add(It first, It last) {
    const std::size_t n = static_cast<std::size_t>(last - first) + 1;
    if (blocks_.empty() || blocks_.back().size() + n > blocks_.back().capacity()) {
      if (blocks_.size() + 1 >= (kLimit >> kBlockBits))
        throw MemoryLimitExceeded("the reduced columns exceed 2^32 entries; crop or downsample the volume");
      blocks_.emplace_back();
      blocks_.back().reserve(std::max(kBlock, n));  // a longer column gets a block of its own
      bytes_ += blocks_.back().capacity() * sizeof(Entry);
    }
    auto& block = blocks_.back();
    const auto offset = static_cast<Offset>((blocks_.size() - 1) << kBlockBits | block.size());
    block.push_back(Entry{static_cast<key_t>(n - 1), Cell{0}});
    block.insert(block.end(), first, last);
    return offset;
  }
  const Entry* begin(Offset col) const { return blocks_[col >> kBlockBits].data() + (col & (kBlock - 1)) + 1; }
  const Entry* end(Offset col) const { return begin(col) + (begin(col) - 1)->key; }
  std::size_t bytes() const { return bytes_; }

 private:
  std::vector<std::vector<Entry>> blocks_;
  std::size_t bytes_ = 0;
};

// What the reduction of dimension 1 knows of each edge, by position: the
// stored column whose pivot it is, the square it is in an apparent pair with
// (found while the columns are assembled; that square's boundary is its own
// reduced column), or nothing yet. One lookup answers all three.
class EdgeStates {
 public:
  static constexpr std::uint32_t kNone = ~std::uint32_t(0);
  static constexpr std::uint32_t kApparent = ColumnStore::kLimit;  // | axis << 1 | side

  void reset(index_t edges) { state_.assign(edges, kNone); }
  std::uint32_t operator[](index_t edge) const { return state_[edge]; }
  void set_column(index_t edge, ColumnStore::Offset column) { state_[edge] = column; }
  // The square is the edge's cofacet along `axis`, on the low (side 0) or high (side 1) side.
  void set_apparent(index_t edge, int axis, int side) { state_[edge] = kApparent | std::uint32_t(axis << 1 | side); }
  static bool is_column(std::uint32_t s) { return s < kApparent; }
  static int apparent_axis(std::uint32_t s) { return static_cast<int>(s >> 1 & 7); }
  static int apparent_side(std::uint32_t s) { return static_cast<int>(s & 1); }
  std::size_t bytes() const { return state_.capacity() * sizeof(std::uint32_t); }

 private:
  std::vector<std::uint32_t> state_;
};

// A boundary column being reduced: its cells in increasing key order, so the
// pivot (the latest facet) is the last. Over Z/2 adding a column is the
// symmetric difference of two sorted lists: one merge into the spare buffer,
// then the buffers swap. (A binary heap, as in Ripser, costs more here: the
// added columns are short and sorted, and a stored column is drained in order.)
class WorkingBoundary {
 public:
  void assign(const Entry* first, const Entry* last) {
    size_ = last - first;
    reserve(column_, size_);
    std::copy(first, last, column_.data());
  }
  const Entry* pivot() const { return size_ ? column_.data() + size_ - 1 : nullptr; }
  const Entry* begin() const { return column_.data(); }
  const Entry* end() const { return column_.data() + size_; }

  // Adds a column given in increasing order.
  void add(const Entry* first, const Entry* last) {
    reserve(spare_, size_ + (last - first));
    const Entry *a = column_.data(), *a_end = a + size_;
    Entry* out = spare_.data();
    while (a != a_end && first != last) {
      const key_t x = a->key, y = first->key;
      if (x < y) {
        *out++ = *a++;
      } else if (y < x) {
        *out++ = *first++;
      } else {
        ++a, ++first;  // equal cells cancel
      }
    }
    out = std::copy(a, a_end, out);
    out = std::copy(first, last, out);
    size_ = out - spare_.data();
    column_.swap(spare_);
  }

 private:
  static void reserve(std::vector<Entry>& v, std::size_t n) {
    if (v.size() < n) v.resize(std::max(n, 2 * v.size()));
  }
  std::vector<Entry> column_, spare_;
  std::size_t size_ = 0;
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
  // Edges by position (anchor and axis): neighbouring edges of a cycle sit together in memory.
  index_t edge_index(Cell edge) const { return edge.anchor() * D + __builtin_ctz(unsigned(edge.parity())); }
  void essential_edges(Diagram& diagram);

  void pair(Diagram& diagram, key_t birth, key_t death) const;
  void essential(Diagram& diagram, key_t birth) const;
  double progress(int stage, double fraction) const;

  const Filtration& f_;
  index_t maxdim_;
  int n_threads_;
  Monitor& monitor_;
  MemoryBudget& budget_;
  // By rank: bit `code` is set when the edge at that code from the pixel
  // joined two components (it is paired with a vertex).
  std::vector<std::uint32_t> merged_;
  // By rank, for volumes: bit `code` is set when the square at that code
  // from the pixel is paired with a cube (cleared in dimension 1).
  std::vector<std::uint32_t> paired_;
  // Dimension 1 of a volume, by edge_index.
  EdgeStates edges_;
  ColumnStore reduced_;
};

}  // namespace tda::cubical
