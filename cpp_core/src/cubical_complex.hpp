// The cubical complex of an image, its cells named by 64-bit filtration keys.
//
// A D-dimensional image of shape n_0 x ... x n_{D-1} (row-major) spans a
// cubical complex whose cells sit on the doubled grid: coordinate x_i odd
// means the cell extends along axis i, so a cell's dimension is the number
// of its odd coordinates.
//  - V-construction: pixels are the vertices (x = 2c); a cell takes the
//    largest value of its vertices.
//  - T-construction: pixels are the top cells (x = 2c + 1); a cell takes the
//    smallest value of the top cells around it.
//
// Pixels are ranked once by (value, flat index). A cell's generator is the
// pixel that gives it its value (V: its vertex of largest rank, T: its
// adjacent top cell of smallest rank), and the cell is its generator's
// position plus an offset o in {-1, 0, 1}^D, so
//     key = rank(generator) << 7 | dim << 5 | code(o)
// names the cell and is a filtration order: by value, ties by rank, and a
// face before its cofaces (its generator has no larger rank; with the same
// generator, a smaller dimension). Keys are never stored per cell: a cell's
// key is recomputed from the ranks of its pixels when needed.
//
// The ranks live on the image padded by one pixel of `kMissing` on every
// side. A cell is addressed by its anchor (the padded index of floor(x / 2))
// and its parity pattern (bit i: x_i odd); its pixels are then the anchor
// plus constant offsets, and a cell outside the complex shows up as a
// missing rank (V: a missing vertex; T: no top cell around it).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "tda/core.hpp"
#include "tda/cubical.hpp"

namespace tda::cubical {

using key_t = std::uint64_t;    // rank(generator) << 7 | dim << 5 | offset code
using rank_t = std::uint32_t;   // position of a pixel in the filtration order
using pixel_t = std::uint32_t;  // flat row-major index of a pixel
using Construction = CubicalConstruction;

constexpr int kDimShift = 5;
constexpr int kRankShift = 7;
constexpr key_t kCodeMask = (key_t(1) << kDimShift) - 1;
// Rank of a padding pixel: later than every pixel.
constexpr rank_t kMissing = ~rank_t(0);
// Later than every cell: the key of the node at infinity of the dual graph, and "none".
constexpr key_t kInfinity = ~key_t(0);

constexpr int pow3(int k) { return k == 0 ? 1 : 3 * pow3(k - 1); }

// A cell: the padded index of floor(x / 2) (its anchor) and the parity
// pattern of x, packed as anchor << 3 | parity.
struct Cell {
  std::uint64_t id;
  static Cell make(index_t anchor, int parity) { return Cell{std::uint64_t(anchor) << 3 | std::uint64_t(parity)}; }
  index_t anchor() const { return static_cast<index_t>(id >> 3); }
  int parity() const { return static_cast<int>(id & 7); }
  // The cell with the anchor moved by `step` pixels and the parity bit of `axis` flipped.
  Cell moved(index_t step, int axis) const {
    return Cell{(id + (std::uint64_t(step) << 3)) ^ (std::uint64_t(1) << axis)};
  }
};

inline int popcount(int x) { return __builtin_popcount(static_cast<unsigned>(x)); }

// Ranks of the pixels and the cells' keys, facets and cofacets.
template <int D, Construction C>
class CubicalFiltration {
 public:
  static constexpr bool kVertex = C == Construction::vertex;
  static constexpr int kCodes = pow3(D);
  static constexpr int kCenter = (kCodes - 1) / 2;
  static constexpr int kPatterns = 1 << D;

  // order: the flat pixel indices by rank; present: how many of them enter
  // the filtration (values <= threshold), sorted_values: their values.
  CubicalFiltration(const std::array<index_t, D>& shape, const std::vector<pixel_t>& order,
                    std::vector<double>&& sorted_values, rank_t present)
      : shape_(shape), sorted_values_(std::move(sorted_values)), present_(present) {
    index_t padded = 1, flat = 1;
    for (int i = D - 1; i >= 0; --i) {
      stride_[i] = padded;
      flat_stride_[i] = flat;
      padded *= shape[i] + 2;
      flat *= shape[i];
    }
    padded_size_ = padded;
    rank_.assign(padded, kMissing);
    padded_order_.resize(order.size());
    for (std::size_t r = 0; r < order.size(); ++r) {
      padded_order_[r] = padded_of_flat(order[r]);
      rank_[padded_order_[r]] = static_cast<rank_t>(r);
    }
    build_tables();
    compute_stars();
  }

  static std::size_t bytes_per_pixel() {
    return sizeof(rank_t) + sizeof(index_t) + sizeof(double) + sizeof(std::uint32_t);
  }
  // Pixels, padded pixels (the range of anchors) and the number of pixels present.
  index_t pixels() const { return static_cast<index_t>(padded_order_.size()); }
  index_t padded_size() const { return padded_size_; }
  rank_t present() const { return present_; }
  index_t stride(int axis) const { return stride_[axis]; }

  static key_t make_key(rank_t rank, int dim, int code) {
    return (key_t(rank) << kRankShift) | (key_t(dim) << kDimShift) | key_t(code);
  }
  static rank_t rank_of_key(key_t k) { return static_cast<rank_t>(k >> kRankShift); }
  static int code_of_key(key_t k) { return static_cast<int>(k & kCodeMask); }
  bool present(key_t k) const { return rank_of_key(k) < present_; }
  double value_of_rank(rank_t r) const { return sorted_values_[r]; }
  index_t anchor_of_rank(rank_t r) const { return padded_order_[r]; }
  rank_t rank_at(index_t padded) const { return rank_[padded]; }
  // The flat index of the pixel of a rank (for the output).
  std::int64_t flat_pixel(rank_t r) const {
    index_t rest = padded_order_[r], flat = 0;
    for (int i = 0; i < D; ++i) {
      flat += (rest / stride_[i] - 1) * flat_stride_[i];
      rest %= stride_[i];
    }
    return flat;
  }

  // The key of a cell; its rank is kMissing when the cell is not in the complex.
  key_t key(Cell c) const {
    const Pattern& pattern = patterns_[c.parity()];
    const rank_t* at = rank_.data() + c.anchor();
    // Unrolled by the number of pixels (1, 2, 4 or 8 in a volume).
    switch (pattern.n_pixels) {
      case 1:
        return make_key(at[pattern.pixel_offset[0]], pattern.dim, pattern.code[0]);
      case 2:
        return best_of<2>(pattern, at);
      case 4:
        return best_of<4>(pattern, at);
      default:
        return best_of<(D == 3 ? 8 : 4)>(pattern, at);
    }
  }
  // The cell of a key (which must be in the complex).
  Cell cell(key_t k) const { return at(padded_order_[rank_of_key(k)], code_of_key(k)); }
  // The cell at an offset code from the pixel at a padded index.
  Cell at(index_t pixel, int code) const { return Cell::make(pixel + anchor_offset_[code], parity_[code]); }

  // Whether the cell at `code` from the pixel of rank r is in the complex and
  // has that pixel as its generator.
  bool in_star(rank_t r, int code) const { return (star_[r] & need_[code]) == need_[code]; }
  // Offset codes of the cells of one dimension around a generator, ascending.
  const std::vector<int>& star_codes(int dim) const { return star_codes_[dim]; }

  // Within the star of one pixel keys are ordered by offset code, and the
  // facets (cofacets) of a star cell outside the star are earlier (later)
  // than those inside: V, they lack the pixel (have a later vertex); T, they
  // have an earlier top cell (lack the pixel). So the latest facet and the
  // earliest cofacet of a star cell, when in the star, are found from the
  // star mask alone. Returns the code, or -1 when no such cell is in the star.
  int latest_star_facet(rank_t r, int code) const {
    for (int j = n_star_facets_[code]; j-- > 0;)
      if (in_star(r, star_facets_[code][j])) return star_facets_[code][j];
    return -1;
  }
  int earliest_star_cofacet(rank_t r, int code) const {
    for (int j = 0; j < n_star_cofacets_[code]; ++j)
      if (in_star(r, star_cofacets_[code][j])) return star_cofacets_[code][j];
    return -1;
  }

  // Facets: for each odd axis, x_i - 1 and x_i + 1. Cofacets: for each even
  // axis, x_i - 1 and x_i + 1 (possibly outside the complex: check the key).
  template <class F>
  void for_each_facet(Cell c, F&& f) const {
    for (int i = 0; i < D; ++i) {
      if (!(c.parity() >> i & 1)) continue;
      f(c.moved(0, i));
      f(c.moved(stride_[i], i));
    }
  }
  template <class F>
  void for_each_cofacet(Cell c, F&& f) const {
    for (int i = 0; i < D; ++i) {
      if (c.parity() >> i & 1) continue;
      f(c.moved(-stride_[i], i));
      f(c.moved(0, i));
    }
  }

 private:
  // The pixels of the cells of one parity pattern, relative to the anchor,
  // and the offset code of the cell from each of them.
  struct Pattern {
    int dim = 0;
    int n_pixels = 0;
    std::array<index_t, kPatterns> pixel_offset{};
    std::array<std::uint8_t, kPatterns> code{};
  };

  // Bit `code` of star_[r]: the neighbour at that code of the pixel of rank r
  // is earlier (V) or later (T) in the filtration; a cell is in the pixel's
  // star when all its other pixels are. Computed in memory order, read in
  // rank order by the union-find passes.
  void compute_stars() {
    star_.assign(padded_order_.size(), 0);
    const index_t last = padded_size_ - stride_[0];
    for (index_t p = stride_[0]; p < last; ++p) {
      const rank_t r = rank_[p];
      if (r == kMissing) continue;
      std::uint32_t mask = 0;
      for (int code = 0; code < kCodes; ++code) {
        const rank_t other = rank_[p + neighbor_offset_[code]];
        mask |= std::uint32_t(kVertex ? other < r : other > r) << code;
      }
      star_[r] = mask;
    }
  }

  template <int N>
  static key_t best_of(const Pattern& pattern, const rank_t* at) {
    rank_t best = at[pattern.pixel_offset[0]];
    int which = 0;
    for (int j = 1; j < N; ++j) {
      const rank_t r = at[pattern.pixel_offset[j]];
      if (kVertex ? r > best : r < best) best = r, which = j;
    }
    return make_key(best, pattern.dim, pattern.code[which]);
  }

  index_t padded_of_flat(index_t flat) const {
    index_t padded = 0;
    for (int i = 0; i < D; ++i) {
      padded += (flat / flat_stride_[i] + 1) * stride_[i];
      flat %= flat_stride_[i];
    }
    return padded;
  }

  void build_tables() {
    for (int parity = 0; parity < kPatterns; ++parity) {
      Pattern& pattern = patterns_[parity];
      pattern.dim = popcount(parity);
      // V: the vertices anchor + s over the odd axes; T: the top cells anchor - s over the even axes.
      const int spread = kVertex ? parity : (kPatterns - 1) & ~parity;
      for (int s = 0; s < kPatterns; ++s) {
        if (s & ~spread) continue;
        index_t offset = 0;
        int code = 0;
        for (int i = 0, power = 1; i < D; ++i, power *= 3) {
          const int si = s >> i & 1, pi = parity >> i & 1;
          offset += (kVertex ? si : -si) * stride_[i];
          const int o = kVertex ? pi - 2 * si : (pi ? 0 : 2 * si - 1);
          code += (o + 1) * power;
        }
        pattern.pixel_offset[pattern.n_pixels] = offset;
        pattern.code[pattern.n_pixels++] = static_cast<std::uint8_t>(code);
      }
    }
    for (int code = 0; code < kCodes; ++code) {
      std::array<int, D> o;
      index_t neighbor = 0, anchor = 0;
      int parity = 0, nonzero = 0;
      for (int i = 0, c = code; i < D; ++i, c /= 3) {
        o[i] = c % 3 - 1;
        nonzero += o[i] != 0;
        neighbor += o[i] * stride_[i];
        // x = 2g + o (V) or 2g + 1 + o (T); the anchor is floor(x / 2).
        const int shift = kVertex ? (o[i] < 0 ? -1 : 0) : (o[i] > 0 ? 1 : 0);
        anchor += shift * stride_[i];
        if (kVertex ? o[i] != 0 : o[i] == 0) parity |= 1 << i;
      }
      neighbor_offset_[code] = neighbor;
      anchor_offset_[code] = anchor;
      // The star cells one dimension down or up from this one differ in one offset (codes ascending). V: a
      // facet sets a nonzero offset to 0, a cofacet a zero one to -1 or 1; T the other way round.
      for (int other = 0; other < kCodes; ++other) {
        int changes = 0, from = 0, to = 0;
        for (int i = 0, c = other; i < D; ++i, c /= 3) {
          if (c % 3 - 1 == o[i]) continue;
          ++changes, from = o[i], to = c % 3 - 1;
        }
        if (changes != 1 || (from != 0 && to != 0)) continue;
        const bool facet = kVertex ? to == 0 : from == 0;
        auto& list = facet ? star_facets_[code] : star_cofacets_[code];
        int& count = facet ? n_star_facets_[code] : n_star_cofacets_[code];
        list[count++] = static_cast<std::uint8_t>(other);
      }
      parity_[code] = parity;
      star_codes_[kVertex ? nonzero : D - nonzero].push_back(code);
      // The cell's other pixels: the neighbours at s != 0 with s_i in {0, o_i}.
      for (int other = 0; other < kCodes; ++other) {
        if (other == kCenter) continue;
        bool within = true;
        for (int i = 0, c = other; i < D; ++i, c /= 3) within &= (c % 3 - 1 == 0 || c % 3 - 1 == o[i]);
        if (within) need_[code] |= std::uint32_t(1) << other;
      }
    }
  }

  std::array<index_t, D> shape_;
  std::array<index_t, D> stride_{}, flat_stride_{};
  index_t padded_size_ = 0;
  std::vector<rank_t> rank_;
  std::vector<index_t> padded_order_;
  std::vector<double> sorted_values_;
  rank_t present_;
  std::array<Pattern, kPatterns> patterns_;
  std::array<index_t, kCodes> neighbor_offset_{}, anchor_offset_{};
  std::array<int, kCodes> parity_{};
  std::vector<std::uint32_t> star_;
  std::array<std::uint32_t, kCodes> need_{};
  std::array<std::array<std::uint8_t, 2 * D>, kCodes> star_facets_{}, star_cofacets_{};
  std::array<int, kCodes> n_star_facets_{}, n_star_cofacets_{};
  std::array<std::vector<int>, D + 1> star_codes_;
};

}  // namespace tda::cubical
