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
  std::int32_t u, v;  // u > v
};

struct TimedVertex {
  value_t time;
  std::int32_t vertex;
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
      charge(std::size_t(pairs) * sizeof(value_t));
      table_.assign(std::size_t(pairs), infinity);
      for (index_t v = 0; v < n_; ++v)
        for (const Neighbor* nb = first(v); nb != last(v); ++nb)
          table_[std::size_t(v) * n_ + nb->vertex] = nb->distance;
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
    for (index_t u = 0; u < n_; ++u)
      for (const Neighbor* nb = first(u); nb != last(u) && nb->vertex < u; ++nb)
        edges.push_back({nb->distance, std::int32_t(u), nb->vertex});
    std::sort(edges.begin(), edges.end(), [](const TimedEdge& a, const TimedEdge& b) {
      return a.time > b.time || (a.time == b.time && (a.u < b.u || (a.u == b.u && a.v < b.v)));
    });
    counts.edges_before = edges.size();
    std::size_t removed = 0;
    const std::size_t probe_end = probe.share > 0 ? static_cast<std::size_t>(probe.share * double(edges.size())) : 0;
    for (std::size_t k = 0; k < edges.size(); ++k) {
      if ((k & 1023) == 0 && monitor.cancel_requested()) throw Cancelled();
      if (k == probe_end && k > 0 && double(removed) < probe.removed * double(k)) {
        counts.abandoned = true;
        return SparseDistanceMatrix();
      }
      const TimedEdge& e = edges[k];
      const value_t time = settle_time(e);
      if (time == infinity) {
        set_time(e.u, e.v, infinity);
        ++removed;
      } else if (time != e.time) {
        set_time(e.u, e.v, time);
        ++counts.delayed;
      }
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
  Neighbor* find(index_t a, index_t b) { return const_cast<Neighbor*>(search(a, b)); }

  // The current time of edge {a, b}: its length, or where it was moved to; infinity when absent.
  value_t time(index_t a, index_t b) const {
    if (!table_.empty()) return table_[std::size_t(a) * n_ + b];
    const Neighbor* it = search(a, b);
    return it ? it->distance : infinity;
  }

  void set_time(index_t a, index_t b, value_t t) {
    find(a, b)->distance = t;
    find(b, a)->distance = t;
    if (!table_.empty()) table_[std::size_t(a) * n_ + b] = table_[std::size_t(b) * n_ + a] = t;
  }

  // Where edge e belongs: its own time if no vertex dominates it there, else
  // the first later time at which none does, or infinity if one always does.
  value_t settle_time(const TimedEdge& e) {
    common_neighbors(e.u, e.v, e.time);
    value_t t = e.time;
    bool heap = false;
    auto later_first = [](const TimedVertex& a, const TimedVertex& b) { return a.time > b.time; };
    for (index_t c = dominator(t); c >= 0; c = dominator(t)) {
      // c keeps dominating until a vertex joins the common neighbourhood
      // before it is adjacent to c.
      if (!heap) {
        std::make_heap(later_.begin(), later_.end(), later_first);
        heap = true;
      }
      for (bool still = true; still;) {
        if (later_.empty()) return infinity;
        t = later_.front().time;
        while (!later_.empty() && later_.front().time <= t) {
          const TimedVertex w = later_.front();
          if (time(c, w.vertex) > w.time) still = false;
          present_.push_back(w.vertex);
          std::pop_heap(later_.begin(), later_.end(), later_first);
          later_.pop_back();
        }
      }
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

  // A vertex of the common neighbourhood adjacent at time t to all the
  // others, or -1. The vertices that refuted earlier candidates are tried
  // first on the next: one of them refutes most candidates at once.
  index_t dominator(value_t t) {
    for (const std::int32_t c : present_) {
      if (refuted(c, t)) continue;
      bool all = true;
      for (const std::int32_t w : present_)
        if (w != c && time(c, w) > t) {
          remember_witness(w);
          all = false;
          break;
        }
      if (all) return c;
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
  std::vector<Neighbor> adjacency_;  // sorted by vertex; distance = the edge's current time
  std::vector<value_t> table_;       // n x n times, when dense enough
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
         (table ? std::size_t(pairs) * sizeof(value_t) : 0);
}

}  // namespace tda
