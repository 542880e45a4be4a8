#include "tda/rips.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>

#include "coboundary.hpp"

namespace tda {

namespace {

class UnionFind {
 public:
  explicit UnionFind(index_t n) : parent_(n), rank_(n, 0) { std::iota(parent_.begin(), parent_.end(), 0); }
  index_t find(index_t x) {
    while (parent_[x] != x) {
      parent_[x] = parent_[parent_[x]];
      x = parent_[x];
    }
    return x;
  }
  void link(index_t a, index_t b) {
    if (rank_[a] < rank_[b]) std::swap(a, b);
    parent_[b] = a;
    if (rank_[a] == rank_[b]) ++rank_[a];
  }

 private:
  std::vector<index_t> parent_;
  std::vector<std::uint8_t> rank_;
};

// Sorts with up to two threads (halves sorted concurrently, then merged).
// The merge needs a buffer as large as the input; without room in the budget
// it sorts on one thread.
template <class T, class Compare>
void sort_parallel(std::vector<T>& v, Compare comp, int n_threads, MemoryBudget& budget) {
  const std::size_t buffer = v.size() * sizeof(T);
  if (n_threads < 2 || v.size() < (1u << 16) || budget.used() + buffer > budget.limit()) {
    std::sort(v.begin(), v.end(), comp);
    return;
  }
  budget.charge(buffer, "the merge buffer");
  auto mid = v.begin() + v.size() / 2;
  std::thread other([&] { std::sort(v.begin(), mid, comp); });
  std::sort(mid, v.end(), comp);
  other.join();
  std::inplace_merge(v.begin(), mid, v.end(), comp);
  budget.release(buffer);
}

constexpr DiameterEntry kNone{0, 0, -1};

}  // namespace

template <class D>
RipsPersistence<D>::RipsPersistence(const D& dist, const RipsOptions& options, Monitor& monitor, MemoryBudget& budget,
                                    RipsStats& stats)
    : dist_(dist),
      options_(options),
      n_(dist.size()),
      threshold_(options.threshold),
      binomial_(dist.size() + 1, options.maxdim + 2),
      field_(options.modulus),
      monitor_(monitor),
      budget_(budget),
      stats_(stats) {}

template <class D>
index_t RipsPersistence<D>::max_vertex(index_t index, index_t k, index_t top) const {
  // Largest v <= top with C(v, k) <= index; C(k - 1, k) = 0 bounds it below.
  if (binomial_(top, k) <= index) return top;
  index_t lo = k - 1, hi = top;
  while (hi - lo > 1) {
    const index_t mid = lo + (hi - lo) / 2;
    if (binomial_(mid, k) <= index)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

template <class D>
void RipsPersistence<D>::vertices_of(index_t index, index_t dim, index_t* out) const {
  index_t top = n_ - 1;
  for (index_t k = dim + 1; k > 0; --k) {
    if (k == 2) {
      // C(v, 2) <= index: solve the quadratic, then correct rounding.
      index_t v = static_cast<index_t>((1 + std::sqrt(1 + 8.0 * double(index))) / 2);
      v = std::min(v, top);
      while (v > 1 && binomial_(v, 2) > index) --v;
      while (v < top && binomial_(v + 1, 2) <= index) ++v;
      *out++ = v;
      index -= binomial_(v, 2);
      *out++ = index;  // C(w, 1) = w
      return;
    }
    if (k == 1) {
      *out++ = index;
      return;
    }
    top = max_vertex(index, k, top);
    *out++ = top;
    index -= binomial_(top, k);
    --top;
  }
}

template <class D>
value_t RipsPersistence<D>::diameter_of(index_t index, index_t dim) const {
  std::array<index_t, kMaxVertices> v;
  vertices_of(index, dim, v.data());
  value_t diameter = 0;
  for (index_t i = 0; i <= dim; ++i)
    for (index_t j = 0; j < i; ++j) diameter = std::max(diameter, dist_(v[i], v[j]));
  return diameter;
}

template <class D>
void RipsPersistence<D>::local_distances(const index_t* v, index_t dim, value_t* out) const {
  for (index_t i = 0; i <= dim; ++i)
    for (index_t j = 0; j < i; ++j) out[i * kMaxVertices + j] = dist_(v[i], v[j]);
}

template <class D>
typename RipsPersistence<D>::Cofacet RipsPersistence<D>::zero_pivot_cofacet(const SimplexView& s,
                                                                            Enumerator& cofacets) const {
  // The first cofacet the enumerator gives within the simplex's own diameter.
  cofacets.set(DiameterEntry{s.diameter, 1, s.index}, s.dim, s.vertices, field_.modulus(), s.diameter);
  DiameterEntry cofacet;
  if (!cofacets.next(cofacet)) return {kNone, -1};
  return {cofacet, cofacets.added_vertex()};
}

template <class D>
typename RipsPersistence<D>::Facet RipsPersistence<D>::zero_pivot_facet(const SimplexView& s) const {
  // Facets by removing v_0 (the top vertex), v_1, ...: increasing index, so
  // the first with the full diameter is the youngest one of that diameter.
  const index_t dim = s.dim;
  const index_t* v = s.vertices;
  LocalDistances computed;
  const value_t* d = s.pairwise;
  if (!d) {
    local_distances(v, dim, computed.data());
    d = computed.data();
  }
  index_t idx_above = 0, idx_below = 0;
  for (index_t i = 1; i <= dim; ++i) idx_below += binomial_(v[i], dim - i + 1);
  for (index_t r = 0; r <= dim; ++r) {
    bool full = false;
    for (index_t i = 0; i <= dim && !full; ++i)
      for (index_t j = 0; j < i; ++j)
        if (i != r && j != r && d[i * kMaxVertices + j] == s.diameter) {
          full = true;
          break;
        }
    if (full) {
      // Sign of the simplex in the facet's coboundary: (-1)^m with m = dim - r
      // vertices below the removed one.
      const coefficient_t sign = ((dim - r) & 1) ? field_.modulus() - 1 : 1;
      return {DiameterEntry{s.diameter, sign, idx_above + idx_below}, r};
    }
    if (r < dim) {
      idx_above += binomial_(v[r], dim - r);
      idx_below -= binomial_(v[r + 1], dim - r);
    }
  }
  return {kNone, -1};
}

template <class D>
DiameterEntry RipsPersistence<D>::zero_apparent_cofacet(const SimplexView& s) const {
  Enumerator cofacets(*this);
  const Cofacet cofacet = zero_pivot_cofacet(s, cofacets);
  if (cofacet.entry.index < 0) return kNone;
  std::array<index_t, kMaxVertices> w;
  const index_t position = insert_vertex(s.vertices, s.dim, cofacet.vertex, w.data());
  LocalDistances pairwise;
  const value_t* own = s.pairwise;
  LocalDistances computed;
  if (!own) {
    local_distances(s.vertices, s.dim, computed.data());
    own = computed.data();
  }
  insert_distances(own, s.dim, position, cofacets.added_distances(), pairwise.data());
  const Facet back =
      zero_pivot_facet({cofacet.entry.diameter, cofacet.entry.index, s.dim + 1, w.data(), pairwise.data()});
  return back.entry.index == s.index ? cofacet.entry : kNone;
}

template <class D>
DiameterEntry RipsPersistence<D>::zero_apparent_facet(const SimplexView& s) const {
  const Facet facet = zero_pivot_facet(s);
  if (facet.entry.index < 0) return kNone;
  std::array<index_t, kMaxVertices> w;
  for (index_t i = 0, k = 0; i <= s.dim; ++i)
    if (i != facet.removed) w[k++] = s.vertices[i];
  Enumerator cofacets(*this);
  const Cofacet back = zero_pivot_cofacet({facet.entry.diameter, facet.entry.index, s.dim - 1, w.data()}, cofacets);
  return back.entry.index == s.index ? facet.entry : kNone;
}

template <class D>
DiameterEntry RipsPersistence<D>::zero_apparent_facet(const DiameterIndex& simplex, index_t dim) const {
  std::array<index_t, kMaxVertices> v;
  vertices_of(simplex.index, dim, v.data());
  return zero_apparent_facet(SimplexView{simplex.diameter, simplex.index, dim, v.data()});
}

template <>
std::vector<DiameterIndex> RipsPersistence<DenseDistanceMatrix>::edges() const {
  std::vector<DiameterIndex> out;
  const auto& lower = dist_.lower();
  std::size_t count = 0;
  for (value_t d : lower) count += (d <= threshold_);
  budget_.charge(count * sizeof(DiameterIndex), "the edge list");
  out.reserve(count);
  std::size_t k = 0;
  for (index_t i = 1; i < n_; ++i)
    for (index_t j = 0; j < i; ++j, ++k)
      if (lower[k] <= threshold_) out.push_back({lower[k], binomial_(i, 2) + j});
  return out;
}

template <>
std::vector<DiameterIndex> RipsPersistence<SparseDistanceMatrix>::edges() const {
  std::vector<DiameterIndex> out;
  budget_.charge(dist_.edge_count() * sizeof(DiameterIndex), "the edge list");
  out.reserve(dist_.edge_count());
  for (index_t i = 0; i < n_; ++i)
    for (const Neighbor* nb = dist_.begin(i); nb != dist_.end(i) && nb->vertex < i; ++nb)
      if (nb->distance <= threshold_) out.push_back({nb->distance, binomial_(i, 2) + nb->vertex});
  return out;
}

template <class D>
void RipsPersistence<D>::compute_dim_0(Diagram& diagram, std::vector<DiameterIndex>& edges_out,
                                       std::vector<DiameterIndex>& columns) {
  Stopwatch watch;
  std::vector<DiameterIndex> edge_list = edges();
  stats_.edges_after_collapse = edge_list.size();
  monitor_.poll(progress_of(0, 0.1));
  // Filtration order: increasing diameter, ties by decreasing index.
  sort_parallel(
      edge_list,
      [](const DiameterIndex& a, const DiameterIndex& b) {
        return a.diameter < b.diameter || (a.diameter == b.diameter && a.index > b.index);
      },
      options_.n_threads, budget_);
  monitor_.poll(progress_of(0, 0.5));

  UnionFind components(n_);
  std::vector<DiameterIndex> cycle_edges;  // edges that close a cycle: candidates for dimension 1
  std::array<index_t, 2> v;
  for (const auto& e : edge_list) {
    vertices_of(e.index, 1, v.data());
    const index_t a = components.find(v[0]), b = components.find(v[1]);
    if (a != b) {
      components.link(a, b);
      if (e.diameter > 0) diagram.emplace_back(0, e.diameter);
    } else {
      cycle_edges.push_back(e);
    }
  }
  for (index_t i = 0; i < n_; ++i)
    if (components.find(i) == i) diagram.emplace_back(0, infinity);
  monitor_.poll(progress_of(0, 0.7));
  stats_.dimensions[0].simplices = std::size_t(n_);
  stats_.dimensions[0].pairs = static_cast<std::size_t>(
      std::count_if(diagram.begin(), diagram.end(), [](const auto& p) { return p.second < infinity; }));
  stats_.dimensions[0].essential = diagram.size() - stats_.dimensions[0].pairs;
  stats_.dim0_seconds += watch.lap();

  if (options_.maxdim >= 1) {
    // Edges in a zero-persistence apparent pair need no column; the test is
    // independent per edge, so it runs in parallel.
    std::vector<std::uint8_t> apparent(cycle_edges.size(), 0);
    parallel_for(options_.n_threads, cycle_edges.size(), [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        if (((i - begin) & 4095) == 0) {
          if (monitor_.cancel_requested()) return;
          if (begin == 0) monitor_.poll(progress_of(0, 0.7 + 0.25 * double(i) / double(std::max<std::size_t>(1, end))));
        }
        std::array<index_t, 2> ends;
        vertices_of(cycle_edges[i].index, 1, ends.data());
        LocalDistances own;
        own[kMaxVertices] = cycle_edges[i].diameter;
        apparent[i] = zero_apparent_cofacet(
                          SimplexView{cycle_edges[i].diameter, cycle_edges[i].index, 1, ends.data(), own.data()})
                          .index >= 0;
      }
    });
    monitor_.poll(progress_of(0, 0.95));
    std::size_t kept = 0;
    for (std::size_t i = 0; i < cycle_edges.size(); ++i) kept += !apparent[i];
    DimensionStats& one = stats_.dimensions[1];
    one.simplices = edge_list.size();
    one.cleared = edge_list.size() - cycle_edges.size();
    one.apparent = cycle_edges.size() - kept;
    one.assembly_seconds += watch.lap();
    budget_.charge(kept * sizeof(DiameterIndex), "the columns of dimension 1");
    columns.reserve(kept);
    for (std::size_t i = cycle_edges.size(); i-- > 0;)
      if (!apparent[i]) columns.push_back(cycle_edges[i]);
  }
  if (options_.maxdim >= 2) {
    edges_out.swap(edge_list);
  } else {
    budget_.release(edge_list.capacity() * sizeof(DiameterIndex));
  }
}

template <class D>
DiameterEntry RipsPersistence<D>::pop_pivot(WorkingColumn& column) const {
  while (!column.empty()) {
    DiameterEntry pivot = column.top();
    column.pop();
    while (!column.empty() && column.top().index == pivot.index) {
      pivot.coefficient = field_.add(pivot.coefficient, column.top().coefficient);
      column.pop();
    }
    if (pivot.coefficient != 0) return pivot;
  }
  return kNone;
}

template <class D>
DiameterEntry RipsPersistence<D>::get_pivot(WorkingColumn& column) const {
  const DiameterEntry pivot = pop_pivot(column);
  if (pivot.index >= 0) column.push(pivot);
  return pivot;
}

template <class D>
void RipsPersistence<D>::assemble_columns(std::vector<DiameterIndex>& simplices, std::vector<DiameterIndex>& columns,
                                          const PivotMap& pivots, index_t dim) {
  // Cofacets (of dimension `dim`) of the simplices of dimension dim - 1. A
  // cofacet is a column unless it is a pivot already (clearing) or in a
  // zero-persistence apparent pair.
  const bool keep_simplices = dim < options_.maxdim;
  const int parts = std::max(1, options_.n_threads);
  Stopwatch watch;
  std::vector<std::vector<DiameterIndex>> part_columns(parts), part_simplices(parts);
  // Per part: simplices, cleared, apparent.
  std::vector<std::array<std::size_t, 3>> part_counts(parts, {0, 0, 0});
  std::vector<std::size_t> bounds(parts + 1);
  for (int t = 0; t <= parts; ++t) bounds[t] = simplices.size() * t / parts;

  parallel_for(parts, parts, [&](std::size_t tb, std::size_t te) {
    for (std::size_t t = tb; t < te; ++t) {
      Enumerator cofacets(*this);
      auto& out_columns = part_columns[t];
      auto& out_simplices = part_simplices[t];
      auto& counts = part_counts[t];
      DiameterEntry cofacet;
      std::array<index_t, kMaxVertices> w;
      LocalDistances own, pairwise;
      for (std::size_t s = bounds[t]; s < bounds[t + 1]; ++s) {
        if (((s - bounds[t]) & 4095) == 0) {
          if (monitor_.cancel_requested()) return;
          // Part 0 runs on the calling thread, the only one that may report.
          if (t == 0) monitor_.poll(progress_of(dim, 0.5 * double(s) / double(std::max<std::size_t>(1, bounds[1]))));
        }
        const DiameterIndex& simplex = simplices[s];
        cofacets.set(DiameterEntry{simplex.diameter, 1, simplex.index}, dim - 1, field_.modulus());
        bool own_known = false;
        while (cofacets.next(cofacet, false)) {
          const DiameterIndex c{cofacet.diameter, cofacet.index};
          if (keep_simplices) out_simplices.push_back(c);
          ++counts[0];
          if (pivots.find(c.index) != PivotMap::kNoOwner) {
            ++counts[1];
            continue;
          }
          if (!own_known) {
            local_distances(cofacets.vertices(), dim - 1, own.data());
            own_known = true;
          }
          const index_t position = insert_vertex(cofacets.vertices(), dim - 1, cofacets.added_vertex(), w.data());
          insert_distances(own.data(), dim - 1, position, cofacets.added_distances(), pairwise.data());
          const SimplexView view{c.diameter, c.index, dim, w.data(), pairwise.data()};
          if (zero_apparent_facet(view).index >= 0 || zero_apparent_cofacet(view).index >= 0) {
            ++counts[2];
            continue;
          }
          out_columns.push_back(c);
        }
      }
    }
  });
  monitor_.poll(progress_of(dim, 0.5));

  auto gather = [&](std::vector<std::vector<DiameterIndex>>& parts_in, std::vector<DiameterIndex>& out,
                    const char* what) {
    std::size_t total = 0;
    for (auto& p : parts_in) total += p.size();
    budget_.charge(total * sizeof(DiameterIndex), what);
    out.clear();
    out.shrink_to_fit();
    out.swap(parts_in[0]);
    out.reserve(total);
    for (std::size_t t = 1; t < parts_in.size(); ++t) {
      out.insert(out.end(), parts_in[t].begin(), parts_in[t].end());
      std::vector<DiameterIndex>().swap(parts_in[t]);
    }
  };
  budget_.release(columns.capacity() * sizeof(DiameterIndex));
  gather(part_columns, columns, "the columns to reduce");
  if (keep_simplices) {
    budget_.release(simplices.capacity() * sizeof(DiameterIndex));
    gather(part_simplices, simplices, "the simplices of the next dimension");
  } else {
    budget_.release(simplices.capacity() * sizeof(DiameterIndex));
    std::vector<DiameterIndex>().swap(simplices);
  }
  sort_parallel(columns, GreaterDiameterOrSmallerIndex(), options_.n_threads, budget_);
  DimensionStats& stats = stats_.dimensions[dim];
  for (const auto& c : part_counts) {
    stats.simplices += c[0];
    stats.cleared += c[1];
    stats.apparent += c[2];
  }
  stats.assembly_seconds += watch.seconds();
}

template <class D>
std::vector<Diagram> RipsPersistence<D>::compute() {
  std::vector<Diagram> diagrams(options_.maxdim + 1);
  stats_.dimensions.assign(options_.maxdim + 1, DimensionStats{});
  cocycles_.assign(options_.cocycles ? options_.maxdim + 1 : 0, {});
  std::vector<DiameterIndex> simplices, columns;
  compute_dim_0(diagrams[0], simplices, columns);
  for (index_t dim = 1; dim <= options_.maxdim; ++dim) {
    budget_.charge(PivotMap::bytes_for(columns.size()), "the pivot table");
    PivotMap pivots(columns.size());
    compute_pairs(columns, pivots, dim, diagrams[dim]);
    if (dim < options_.maxdim) assemble_columns(simplices, columns, pivots, dim + 1);
    budget_.release(pivots.bytes());
  }
  monitor_.report(1.0);
  return diagrams;
}

template class RipsPersistence<DenseDistanceMatrix>;
template class RipsPersistence<SparseDistanceMatrix>;

}  // namespace tda
