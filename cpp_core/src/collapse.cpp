#include "tda/collapse.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace tda {

namespace {

// Below this share of all pairs an adjacency test is a binary search in a
// neighbour list; above it a square table of edge times pays for itself.
constexpr double kDenseShare = 1.0 / 16;
constexpr std::size_t kDenseBytes = std::size_t(64) << 20;

struct TimedEdge {
  value_t time;
  std::int32_t u, v;       // u > v
  std::size_t at_u, at_v;  // positions of v in u's list and of u in v's
};

struct TimedVertex {
  value_t time;
  std::int32_t vertex;
};

// A graph as one row of bits per vertex. The collapser keeps two, with the
// table: the edges present at the time being processed, and those not
// removed. Edges are taken in decreasing order and an edge only ever moves
// later, so at an edge's own time t the present graph is the input's edges up
// to t, less those already removed or moved: the first domination test of
// each edge, the only one most edges need, is a few word operations per
// candidate, and the common neighbours that join later are the bits of
// (alive and not present).
class AdjacencyBits {
 public:
  AdjacencyBits() = default;
  explicit AdjacencyBits(index_t n) : words_((std::size_t(n) + 63) / 64), bits_(std::size_t(n) * words_, 0) {}
  static std::size_t bytes_for(index_t n) { return std::size_t(n) * ((std::size_t(n) + 63) / 64) * 8; }

  bool empty() const { return bits_.empty(); }
  std::size_t words() const { return words_; }
  const std::uint64_t* row(index_t v) const { return bits_.data() + std::size_t(v) * words_; }
  bool has(index_t a, index_t b) const { return (row(a)[b >> 6] >> (b & 63)) & 1; }
  void add(index_t a, index_t b) {
    bits_[std::size_t(a) * words_ + (b >> 6)] |= std::uint64_t(1) << (b & 63);
    bits_[std::size_t(b) * words_ + (a >> 6)] |= std::uint64_t(1) << (a & 63);
  }
  void remove(index_t a, index_t b) {
    bits_[std::size_t(a) * words_ + (b >> 6)] &= ~(std::uint64_t(1) << (b & 63));
    bits_[std::size_t(b) * words_ + (a >> 6)] &= ~(std::uint64_t(1) << (a & 63));
  }

 private:
  std::size_t words_ = 0;
  std::vector<std::uint64_t> bits_;
};

class EdgeCollapser {
 public:
  EdgeCollapser(const SparseDistanceMatrix& graph, MemoryBudget& budget) : n_(graph.size()), budget_(budget) {
    offsets_.resize(n_ + 1, 0);
    for (index_t v = 0; v < n_; ++v) offsets_[v + 1] = offsets_[v] + graph.degree(v);
    charge(offsets_.size() * sizeof(std::size_t) + offsets_[n_] * sizeof(Neighbor) +
           offsets_[n_] / 2 * sizeof(TimedEdge));
    adjacency_.reserve(offsets_[n_]);
    for (index_t v = 0; v < n_; ++v) adjacency_.insert(adjacency_.end(), graph.begin(v), graph.end(v));
    const double pairs = double(n_) * double(n_);
    if (double(adjacency_.size()) >= kDenseShare * pairs && pairs * sizeof(value_t) <= kDenseBytes &&
        budget_.used() + pairs * sizeof(value_t) <= budget_.limit()) {
      charge(std::size_t(pairs) * sizeof(value_t) + 2 * AdjacencyBits::bytes_for(n_));
      table_.assign(std::size_t(pairs), infinity);
      present_graph_ = AdjacencyBits(n_);
      common_bits_.resize(present_graph_.words());
      for (index_t v = 0; v < n_; ++v)
        for (const Neighbor* nb = first(v); nb != last(v); ++nb) {
          table_[std::size_t(v) * n_ + nb->vertex] = nb->distance;
          if (nb->vertex < v) present_graph_.add(v, nb->vertex);
        }
      alive_ = present_graph_;
    }
  }
  EdgeCollapser(const EdgeCollapser&) = delete;
  EdgeCollapser& operator=(const EdgeCollapser&) = delete;
  ~EdgeCollapser() { budget_.release(charged_); }

  SparseDistanceMatrix run(const Monitor& monitor, CollapseCounts& counts, CollapseProbe probe) {
    // Last edge first; among equal lengths the reverse of the filtration's
    // tie order (any fixed order would do: ties may be broken either way).
    std::vector<TimedEdge> edges;
    edges.reserve(adjacency_.size() / 2);
    // u's entries below u come first in its sorted list; v's entries above v
    // are met in increasing order as u grows, so one cursor per v finds them.
    std::vector<std::size_t> above(n_);
    for (index_t v = 0; v < n_; ++v)
      above[v] = std::size_t(
          std::upper_bound(first(v), last(v), v, [](index_t x, const Neighbor& nb) { return x < nb.vertex; }) -
          adjacency_.data());
    for (index_t u = 0; u < n_; ++u)
      for (const Neighbor* nb = first(u); nb != last(u) && nb->vertex < u; ++nb)
        edges.push_back(
            {nb->distance, std::int32_t(u), nb->vertex, std::size_t(nb - adjacency_.data()), above[nb->vertex]++});
    std::sort(edges.begin(), edges.end(), [](const TimedEdge& a, const TimedEdge& b) {
      return a.time > b.time || (a.time == b.time && (a.u < b.u || (a.u == b.u && a.v < b.v)));
    });
    counts.edges_before = edges.size();
    std::size_t removed = 0;
    const std::size_t probe_end = probe.share > 0 ? static_cast<std::size_t>(probe.share * double(edges.size())) : 0;
    for (std::size_t k = 0, passed = 0; k < edges.size(); ++k) {
      if ((k & 1023) == 0 && monitor.cancel_requested()) throw Cancelled();
      if (k == probe_end && k > 0 && double(removed) < probe.removed * double(k)) {
        counts.abandoned = true;
        return SparseDistanceMatrix();
      }
      const TimedEdge& e = edges[k];
      // Edges longer than this one are gone from the present graph.
      for (; !present_graph_.empty() && edges[passed].time > e.time; ++passed)
        present_graph_.remove(edges[passed].u, edges[passed].v);
      const value_t time = settle_time(e);
      if (time == infinity) {
        set_time(e, infinity);
        if (!alive_.empty()) alive_.remove(e.u, e.v);
        ++removed;
      } else if (time != e.time) {
        set_time(e, time);
        ++counts.delayed;
      }
      if (time != e.time && !present_graph_.empty()) present_graph_.remove(e.u, e.v);
    }
    counts.edges_after = edges.size() - removed;
    return remaining();
  }

 private:
  void charge(std::size_t bytes) {
    budget_.charge(bytes, "the edge collapse");
    charged_ += bytes;
  }
  Neighbor* first(index_t v) { return adjacency_.data() + offsets_[v]; }
  Neighbor* last(index_t v) { return adjacency_.data() + offsets_[v + 1]; }
  const Neighbor* first(index_t v) const { return adjacency_.data() + offsets_[v]; }
  const Neighbor* last(index_t v) const { return adjacency_.data() + offsets_[v + 1]; }

  // The entry of b in a's list, or null. A binary search whose steps are
  // conditional moves: the comparisons are unpredictable.
  const Neighbor* search(index_t a, index_t b) const {
    const Neighbor* base = first(a);
    std::size_t len = offsets_[a + 1] - offsets_[a];
    if (len == 0) return nullptr;
    while (len > 1) {
      const std::size_t half = len / 2;
      base = base[half - 1].vertex < b ? base + half : base;
      len -= half;
    }
    return base->vertex == b ? base : nullptr;
  }

  // The current time of edge {a, b}: its length, or where it was moved to; infinity when absent.
  value_t time(index_t a, index_t b) const {
    if (!table_.empty()) return table_[std::size_t(a) * n_ + b];
    const Neighbor* it = search(a, b);
    return it ? it->distance : infinity;
  }

  // With the table, the table alone holds the times (the lists are rebuilt from it at the end).
  void set_time(const TimedEdge& e, value_t t) {
    if (!table_.empty())
      table_[std::size_t(e.u) * n_ + e.v] = table_[std::size_t(e.v) * n_ + e.u] = t;
    else
      adjacency_[e.at_u].distance = adjacency_[e.at_v].distance = t;
  }

  // Where edge e belongs: its own time if no vertex dominates it there, else
  // the first later time at which none does, or infinity if one always does.
  value_t settle_time(const TimedEdge& e) {
    index_t c = -1;
    if (!present_graph_.empty()) {
      c = present_dominator(e.u, e.v);
      if (c < 0) return e.time;
      later_neighbors(e.u, e.v);
    } else {
      common_neighbors(e.u, e.v, e.time);
      c = dominator(e.time);
    }
    value_t t = e.time;
    while (c >= 0) {
      // c dominates until the first time a vertex joins the common
      // neighbourhood before it is adjacent to c; then all that joined by
      // that time are in, and a dominator is looked for afresh.
      value_t breaks = infinity;
      for (const TimedVertex& w : later_)
        if (w.time < breaks && time(c, w.vertex) > w.time) breaks = w.time;
      if (breaks == infinity) return infinity;
      if (t == e.time && !present_graph_.empty()) present_from_bits();
      t = breaks;
      std::size_t kept = 0;
      for (const TimedVertex& w : later_) {
        if (w.time <= t)
          present_.push_back(w.vertex);
        else
          later_[kept++] = w;
      }
      later_.resize(kept);
      c = dominator(t);
    }
    return t;
  }

  // Common neighbours of u and v: those joined by time t, and the later ones with their joining times.
  void common_neighbors(index_t u, index_t v, value_t t) {
    present_.clear();
    later_.clear();
    witnesses_ = 0;
    if (!table_.empty()) {
      // Two rows of the table: no data-dependent choice of which list to advance.
      const value_t* row_u = table_.data() + std::size_t(u) * n_;
      const value_t* row_v = table_.data() + std::size_t(v) * n_;
      for (index_t w = 0; w < n_; ++w) {
        const value_t joins = std::max(row_u[w], row_v[w]);
        if (joins <= t)
          present_.push_back(std::int32_t(w));
        else if (joins < infinity)
          later_.push_back({joins, std::int32_t(w)});
      }
      return;
    }
    // A merge of the two sorted lists without data-dependent branches: every
    // step writes its candidate and keeps it only when it is a common
    // neighbour of the right kind.
    const Neighbor *a = first(u), *a_end = last(u), *b = first(v), *b_end = last(v);
    const std::size_t most = std::min(a_end - a, b_end - b);
    present_.resize(most);
    later_.resize(most);
    std::size_t np = 0, nl = 0;
    while (a != a_end && b != b_end) {
      const std::int32_t va = a->vertex, vb = b->vertex;
      const value_t joins = std::max(a->distance, b->distance);
      const bool common = va == vb;
      present_[np] = va;
      later_[nl] = {joins, va};
      np += common & (joins <= t);
      nl += common & (joins > t) & (joins < infinity);
      a += va <= vb;
      b += vb <= va;
    }
    present_.resize(np);
    later_.resize(nl);
  }

  // With the bits: the common neighbours that join after the edge's own time
  // (the present ones are in common_bits_).
  void later_neighbors(index_t u, index_t v) {
    later_.clear();
    const std::uint64_t *alive_u = alive_.row(u), *alive_v = alive_.row(v);
    const value_t* row_u = table_.data() + std::size_t(u) * n_;
    const value_t* row_v = table_.data() + std::size_t(v) * n_;
    for (std::size_t i = 0; i < alive_.words(); ++i)
      for (std::uint64_t rest = alive_u[i] & alive_v[i] & ~common_bits_[i]; rest; rest &= rest - 1) {
        const std::int32_t w = std::int32_t(i * 64 + __builtin_ctzll(rest));
        later_.push_back({std::max(row_u[w], row_v[w]), w});
      }
  }

  void present_from_bits() {
    present_.clear();
    for (std::size_t i = 0; i < common_bits_.size(); ++i)
      for (std::uint64_t rest = common_bits_[i]; rest; rest &= rest - 1)
        present_.push_back(std::int32_t(i * 64 + __builtin_ctzll(rest)));
  }

  // A vertex of the common neighbourhood adjacent at time t to all the
  // others, or -1. The vertices that refuted earlier candidates are tried
  // first on the next: one of them refutes most candidates at once.
  index_t dominator(value_t t) {
    // Without the table, the common neighbourhood (sorted) is merged with
    // each candidate's list: one pass instead of a search per neighbour.
    const bool merge = table_.empty();
    if (merge) std::sort(present_.begin(), present_.end());
    for (const std::int32_t c : present_) {
      if (refuted(c, t)) continue;
      const std::int32_t missing = merge ? first_outside(c, t) : first_outside_by_lookup(c, t);
      if (missing < 0) return c;
      remember_witness(missing);
    }
    return -1;
  }

  // The first common neighbour (other than c) not adjacent to c at time t, or -1.
  std::int32_t first_outside_by_lookup(std::int32_t c, value_t t) const {
    for (const std::int32_t w : present_)
      if (w != c && time(c, w) > t) return w;
    return -1;
  }
  std::int32_t first_outside(std::int32_t c, value_t t) const {
    const Neighbor *nb = first(c), *end = last(c);
    for (const std::int32_t w : present_) {
      if (w == c) continue;
      while (nb != end && nb->vertex < w) ++nb;
      if (nb == end || nb->vertex != w || nb->distance > t) return w;
    }
    return -1;
  }

  // The dominator search at the edge's own time on the present graph's bits:
  // a common neighbour c dominates when the common neighbourhood has no
  // vertex but c outside c's row.
  index_t present_dominator(index_t u, index_t v) {
    const std::size_t words = present_graph_.words();
    const std::uint64_t *row_u = present_graph_.row(u), *row_v = present_graph_.row(v);
    std::uint64_t* common = common_bits_.data();
    for (std::size_t i = 0; i < words; ++i) common[i] = row_u[i] & row_v[i];
    witnesses_ = 0;
    for (std::size_t i = 0; i < words; ++i)
      for (std::uint64_t rest = common[i]; rest; rest &= rest - 1) {
        const index_t c = index_t(i * 64) + __builtin_ctzll(rest);
        bool refuted = false;
        for (std::size_t k = 0; k < witnesses_ && !refuted; ++k)
          refuted = witness_[k] != c && !present_graph_.has(c, witness_[k]);
        if (refuted) continue;
        const std::uint64_t* row_c = present_graph_.row(c);
        std::size_t j = 0;
        for (; j < words; ++j) {
          std::uint64_t outside = common[j] & ~row_c[j];
          if (j == std::size_t(c >> 6)) outside &= ~(std::uint64_t(1) << (c & 63));
          if (outside) {
            remember_witness(std::int32_t(j * 64 + __builtin_ctzll(outside)));
            break;
          }
        }
        if (j == words) return c;
      }
    return -1;
  }

  bool refuted(std::int32_t c, value_t t) const {
    for (std::size_t i = 0; i < witnesses_; ++i)
      if (witness_[i] != c && time(c, witness_[i]) > t) return true;
    return false;
  }

  void remember_witness(std::int32_t w) {
    const std::size_t k = std::min(witnesses_, kWitnesses - 1);
    std::copy_backward(witness_.begin(), witness_.begin() + k, witness_.begin() + k + 1);
    witness_[0] = w;
    witnesses_ = k + 1;
  }

  SparseDistanceMatrix remaining() {
    if (!table_.empty())
      for (index_t v = 0; v < n_; ++v)
        for (Neighbor* nb = first(v); nb != last(v); ++nb) nb->distance = table_[std::size_t(v) * n_ + nb->vertex];
    std::vector<std::size_t> offsets(n_ + 1, 0);
    for (index_t v = 0; v < n_; ++v) {
      std::size_t kept = 0;
      for (const Neighbor* nb = first(v); nb != last(v); ++nb) kept += nb->distance < infinity;
      offsets[v + 1] = offsets[v] + kept;
    }
    budget_.charge(offsets.size() * sizeof(std::size_t) + offsets[n_] * sizeof(Neighbor), "the collapsed graph");
    std::vector<Neighbor> neighbors;
    neighbors.reserve(offsets[n_]);
    for (const Neighbor& nb : adjacency_)
      if (nb.distance < infinity) neighbors.push_back(nb);
    return SparseDistanceMatrix(n_, std::move(offsets), std::move(neighbors));
  }

  index_t n_;
  MemoryBudget& budget_;
  std::size_t charged_ = 0;
  std::vector<std::size_t> offsets_;
  std::vector<Neighbor> adjacency_;      // sorted by vertex; distance = the edge's current time
  std::vector<value_t> table_;           // n x n times, when dense enough
  AdjacencyBits present_graph_, alive_;  // with the table
  std::vector<std::uint64_t> common_bits_;
  std::vector<std::int32_t> present_;
  std::vector<TimedVertex> later_;
  // Common neighbours of the edge at hand that refuted a candidate, latest
  // first; they stay common neighbours as the neighbourhood only grows.
  static constexpr std::size_t kWitnesses = 8;
  std::array<std::int32_t, kWitnesses> witness_;
  std::size_t witnesses_ = 0;
};

}  // namespace

SparseDistanceMatrix collapse_edges(const SparseDistanceMatrix& graph, MemoryBudget& budget, const Monitor& monitor,
                                    CollapseCounts& counts, CollapseProbe probe) {
  EdgeCollapser collapser(graph, budget);
  return collapser.run(monitor, counts, probe);
}

std::size_t collapse_bytes(index_t n, std::size_t edges) {
  // The collapser's copy of the lists, its edge list, the table when dense
  // enough, and the collapsed lists.
  const double pairs = double(n) * double(n);
  const bool table = 2.0 * double(edges) >= kDenseShare * pairs && pairs * sizeof(value_t) <= kDenseBytes;
  return 2 * (std::size_t(n) + 1) * sizeof(std::size_t) + 4 * edges * sizeof(Neighbor) + edges * sizeof(TimedEdge) +
         (table ? std::size_t(pairs) * sizeof(value_t) + 2 * AdjacencyBits::bytes_for(n) : 0);
}

}  // namespace tda
