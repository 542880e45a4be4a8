#include <algorithm>

#include "cubical_persistence.hpp"

namespace tda::cubical {

namespace {

constexpr std::uint32_t kUnborn = ~std::uint32_t(0);
// Pixels between two polls of the monitor.
constexpr index_t kPollEvery = 1 << 14;

// Union-find root with path halving; parents point to older nodes, so the
// root of a component is its oldest node (the elder rule needs no ranks).
inline std::uint32_t find_root(std::vector<std::uint32_t>& parent, std::uint32_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];
    x = parent[x];
  }
  return x;
}

// The one axis set in a parity pattern with a single bit (edges), or clear
// in one with a single zero (cells of codimension 1).
template <int D>
int only_axis(int parity, bool set) {
  for (int i = 0; i < D; ++i)
    if ((parity >> i & 1) == set) return i;
  return -1;
}

}  // namespace

template <int D, Construction C>
void CubicalPersistence<D, C>::pair(Diagram& diagram, key_t birth, key_t death) const {
  const rank_t b = Filtration::rank_of_key(birth), d = Filtration::rank_of_key(death);
  // The same generator means zero persistence, known without reading the values.
  if (b != d && f_.value_of_rank(b) != f_.value_of_rank(d)) diagram.emplace_back(f_.flat_pixel(b), f_.flat_pixel(d));
}

template <int D, Construction C>
void CubicalPersistence<D, C>::essential(Diagram& diagram, key_t birth) const {
  diagram.emplace_back(f_.flat_pixel(Filtration::rank_of_key(birth)), -1);
}

template <int D, Construction C>
double CubicalPersistence<D, C>::progress(int stage, double fraction) const {
  // Shares of the run by stage: dimension 0, the top dimension, dimension 1 of a volume.
  static constexpr double kStart2[] = {0.0, 0.5, 1.0, 1.0};
  static constexpr double kStart3[] = {0.0, 0.2, 0.4, 1.0};
  const double* start = D == 2 ? kStart2 : kStart3;
  return start[stage] + (start[stage + 1] - start[stage]) * fraction;
}

// Dimension 0: the vertices and edges in filtration order, components merged
// by union-find with the elder rule. The merging edges (paired with a vertex)
// are recorded in merged_: below a threshold, the other edges that are no
// square's pivot start essential classes.
template <int D, Construction C>
void CubicalPersistence<D, C>::compute_dim_0(Diagram& diagram) {
  const index_t nodes = f_.padded_size();
  const std::size_t bytes = nodes * (sizeof(std::uint32_t) + sizeof(key_t)) + f_.pixels() * sizeof(std::uint32_t);
  budget_.charge(bytes, "the components of dimension 0");
  merged_.assign(f_.pixels(), 0);
  // Vertices by anchor: V, the pixels; T, the corners of the pixels.
  std::vector<std::uint32_t> parent(nodes, kUnborn);
  std::vector<key_t> birth(nodes);

  const rank_t present = f_.present();
  for (rank_t r = 0; r < present; ++r) {
    if (r % kPollEvery == 0) monitor_.poll(progress(0, double(r) / present));
    const index_t p = f_.anchor_of_rank(r);
    for (int code : f_.star_codes(0)) {
      if (!f_.in_star(r, code)) continue;
      const auto v = static_cast<std::uint32_t>(f_.at(p, code).anchor());
      parent[v] = v;
      birth[v] = Filtration::make_key(r, 0, code);
    }
    for (int code : f_.star_codes(1)) {
      if (!f_.in_star(r, code)) continue;
      const Cell edge = f_.at(p, code);
      const index_t step = f_.stride(only_axis<D>(edge.parity(), true));
      std::uint32_t a = find_root(parent, static_cast<std::uint32_t>(edge.anchor()));
      std::uint32_t b = find_root(parent, static_cast<std::uint32_t>(edge.anchor() + step));
      if (a == b) continue;
      if (birth[a] < birth[b]) std::swap(a, b);  // a: the younger
      pair(diagram, birth[a], Filtration::make_key(r, 1, code));
      parent[a] = b;
      merged_[r] |= std::uint32_t(1) << code;
    }
  }
  for (index_t v = 0; v < nodes; ++v)
    if (parent[v] == v) essential(diagram, birth[v]);
  budget_.release(nodes * (sizeof(std::uint32_t) + sizeof(key_t)));
}

// Dimension D - 1 by duality: a (D-1)-cell's coboundary holds at most two top
// cells, so the coboundary matrix is the incidence matrix of the dual graph
// (top cells, plus one node for the outside and the cells above the
// threshold). Its reduction in reverse filtration order is union-find in
// which a component's oldest node is its latest top cell.
template <int D, Construction C>
void CubicalPersistence<D, C>::compute_top_dim(Diagram& diagram) {
  const index_t tops = f_.padded_size();
  const auto outside = static_cast<std::uint32_t>(tops);
  budget_.charge((tops + 1) * (sizeof(std::uint32_t) + sizeof(key_t)), "the dual graph");
  std::vector<std::uint32_t> parent(tops + 1, kUnborn);
  std::vector<key_t> oldest(tops + 1, 0);
  parent[outside] = outside;
  oldest[outside] = kInfinity;
  // Top cells are born when first met; those outside the complex or above the threshold are the outside.
  auto node_of = [&](Cell top) {
    const auto t = static_cast<std::uint32_t>(top.anchor());
    if (parent[t] == kUnborn) {
      const key_t k = f_.key(top);
      parent[t] = f_.present(k) ? t : outside;
      oldest[t] = k;
    }
    return t;
  };
  // Below the threshold the last complex may have homology in dimension D - 1.
  const bool truncated = f_.present() < f_.pixels();
  if (D == 3) {
    budget_.charge(f_.pixels() * sizeof(std::uint32_t), "the pairs of dimension 2");
    paired_.assign(f_.pixels(), 0);
  }

  const auto& codes = f_.star_codes(D - 1);
  for (rank_t r = f_.present(); r-- > 0;) {
    if (r % kPollEvery == 0) monitor_.poll(progress(1, 1.0 - double(r) / f_.present()));
    const index_t p = f_.anchor_of_rank(r);
    for (auto it = codes.rbegin(); it != codes.rend(); ++it) {
      if (!f_.in_star(r, *it)) continue;
      const Cell cell = f_.at(p, *it);
      const int axis = only_axis<D>(cell.parity(), false);
      std::uint32_t a = find_root(parent, node_of(cell.moved(-f_.stride(axis), axis)));
      std::uint32_t b = find_root(parent, node_of(cell.moved(0, axis)));
      const key_t key = Filtration::make_key(r, D - 1, *it);
      if (a == b) {
        // A zero column: the cell kills a class of dimension D - 2 or starts an essential one; for a
        // volume the reduction of dimension 1 tells which.
        if (D == 2 && truncated && !(merged_[r] >> *it & 1)) essential(diagram, key);
        continue;
      }
      if (oldest[a] > oldest[b]) std::swap(a, b);  // a: the younger
      pair(diagram, key, oldest[a]);
      parent[a] = b;
      if (D == 3) paired_[r] |= std::uint32_t(1) << *it;
    }
  }
  budget_.release((tops + 1) * (sizeof(std::uint32_t) + sizeof(key_t)));
}

template <int D, Construction C>
int CubicalPersistence<D, C>::boundary(Cell x, Entry* out) const {
  int n = 0;
  f_.for_each_facet(x, [&](Cell y) { out[n++] = Entry{f_.key(y), y}; });
  if (n == 4) {
    // A square's four edges: a sorting network of five exchanges.
    auto order = [&](int i, int j) {
      if (out[j] < out[i]) std::swap(out[i], out[j]);
    };
    order(0, 1), order(2, 3), order(0, 2), order(1, 3), order(1, 2);
  } else {
    std::sort(out, out + n);
  }
  return n;
}

// The squares that need a column: not cleared (those paired with a cube by
// the dual computation are positive) and not in an apparent pair (a square
// that is the earliest cofacet of its latest facet is paired with it; the
// pair is recorded in edges_). Both tests are local, so the pixels are
// visited in memory order, in parallel; the columns are then sorted into
// filtration order.
template <int D, Construction C>
std::vector<key_t> CubicalPersistence<D, C>::assemble_columns() {
  const index_t size = f_.padded_size();
  const int parts = std::max(1, n_threads_);
  std::vector<std::vector<key_t>> found(parts);
  parallel_for(parts, parts, [&](std::size_t tb, std::size_t te) {
    for (std::size_t t = tb; t < te; ++t) {
      const index_t begin = size * index_t(t) / parts, end = size * index_t(t + 1) / parts;
      for (index_t p = begin; p < end; ++p) {
        if ((p - begin) % kPollEvery == 0) {
          if (monitor_.cancel_requested()) return;
          // Part 0 runs on the calling thread, the only one that may report.
          if (t == 0) monitor_.poll(progress(2, 0.3 * double(p) / double(std::max<index_t>(1, end))));
        }
        const rank_t r = f_.rank_at(p);
        if (r >= f_.present()) continue;  // padding, or above the threshold
        for (int code : f_.star_codes(2)) {
          if (!f_.in_star(r, code) || (paired_[r] >> code & 1)) continue;
          // Apparent pairs share their generator (the earliest cofacet of an edge outside the star is later
          // than those inside), so the star mask decides.
          const int facet = f_.latest_star_facet(r, code);
          if (facet >= 0 && f_.earliest_star_cofacet(r, facet) == code) {
            const Cell edge = f_.at(p, facet), square = f_.at(p, code);
            const int axis = __builtin_ctz(unsigned(square.parity() ^ edge.parity()));
            edges_.set_apparent(edge_index(edge), axis, square.anchor() == edge.anchor());
            continue;
          }
          found[t].push_back(Filtration::make_key(r, 2, code));
        }
      }
    }
  });
  monitor_.poll(progress(2, 0.3));
  std::size_t total = 0;
  for (const auto& part : found) total += part.size();
  budget_.charge(total * sizeof(key_t), "the columns of dimension 2");
  std::vector<key_t> columns;
  columns.reserve(total);
  for (auto& part : found) {
    columns.insert(columns.end(), part.begin(), part.end());
    std::vector<key_t>().swap(part);
  }
  std::sort(columns.begin(), columns.end());
  return columns;
}

// Dimension 1 of a volume: the boundary columns of the squares (four edges
// each) reduced in filtration order with clearing (the twist of Chen and
// Kerber), after the dual computation has found the squares that are paired
// with cubes. The reduced columns are kept: they are short cycles, so adding
// one costs no recomputation of boundaries.
template <int D, Construction C>
void CubicalPersistence<D, C>::compute_dim_1_of_volume(Diagram& diagram, Diagram* top_diagram) {
  budget_.charge(f_.padded_size() * D * sizeof(std::uint32_t), "the pivots of dimension 1");
  edges_.reset(f_.padded_size() * D);
  const std::vector<key_t> columns = assemble_columns();
  std::size_t charged = 0;
  WorkingBoundary working;
  std::array<Entry, 2 * D> facets;
  const double total = std::max<double>(1, columns.size());
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (i % kPollEvery == 0) {
      monitor_.poll(progress(2, 0.3 + 0.7 * (i / total)));
      const std::size_t now = reduced_.bytes();
      if (now > charged) budget_.charge(now - charged, "the reduced columns of dimension 1"), charged = now;
    }
    const key_t square = columns[i];
    const int n = boundary(f_.cell(square), facets.data());
    const Entry& last = facets[n - 1];
    // Emergent pair: the latest facet is no other column's pivot, so the column is reduced already.
    if (edges_[edge_index(last.cell)] == EdgeStates::kNone) {
      edges_.set_column(edge_index(last.cell), reduced_.add(facets.data(), facets.data() + n));
      pair(diagram, last.key, square);
      continue;
    }
    working.assign(facets.data(), facets.data() + n);
    for (;;) {
      const Entry* pivot = working.pivot();
      if (!pivot) {
        // A cycle, and not paired with a cube: the square starts an essential class of dimension 2.
        if (top_diagram) essential(*top_diagram, square);
        break;
      }
      const index_t slot = edge_index(pivot->cell);
      const std::uint32_t state = edges_[slot];
      if (state == EdgeStates::kNone) {
        pair(diagram, pivot->key, square);
        edges_.set_column(slot, reduced_.add(working.begin(), working.end()));
        break;
      }
      if (EdgeStates::is_column(state)) {
        working.add(reduced_.begin(state), reduced_.end(state));
        continue;
      }
      // An apparent column is its own unreduced boundary.
      const int axis = EdgeStates::apparent_axis(state);
      const Cell partner = pivot->cell.moved(EdgeStates::apparent_side(state) ? 0 : -f_.stride(axis), axis);
      const int m = boundary(partner, facets.data());
      working.add(facets.data(), facets.data() + m);
    }
  }
  budget_.release(columns.capacity() * sizeof(key_t));
  if (f_.present() < f_.pixels()) essential_edges(diagram);
}

// Below the threshold, the edges that start a cycle (not merging two
// components) and are no square's pivot start essential classes.
template <int D, Construction C>
void CubicalPersistence<D, C>::essential_edges(Diagram& diagram) {
  for (rank_t r = 0; r < f_.present(); ++r) {
    if (r % kPollEvery == 0) monitor_.poll(progress(2, 1.0));
    const index_t p = f_.anchor_of_rank(r);
    for (int code : f_.star_codes(1)) {
      if (!f_.in_star(r, code) || (merged_[r] >> code & 1)) continue;
      if (edges_[edge_index(f_.at(p, code))] == EdgeStates::kNone) essential(diagram, Filtration::make_key(r, 1, code));
    }
  }
}

template <int D, Construction C>
std::vector<typename CubicalPersistence<D, C>::Diagram> CubicalPersistence<D, C>::compute() {
  const index_t top = std::min<index_t>(maxdim_, D - 1);
  std::vector<Diagram> diagrams(top + 1);
  compute_dim_0(diagrams[0]);
  if (D == 2 && top == 1) compute_top_dim(diagrams[1]);
  if (D == 3 && top >= 1) {
    // The pairs of dimension 2 clear the columns of dimension 1 even when they are not asked for.
    Diagram scratch;
    compute_top_dim(top == 2 ? diagrams[2] : scratch);
    compute_dim_1_of_volume(diagrams[1], top == 2 ? &diagrams[2] : nullptr);
  }
  monitor_.report(1.0);
  return diagrams;
}

template class CubicalPersistence<2, Construction::vertex>;
template class CubicalPersistence<2, Construction::top_cell>;
template class CubicalPersistence<3, Construction::vertex>;
template class CubicalPersistence<3, Construction::top_cell>;

}  // namespace tda::cubical
