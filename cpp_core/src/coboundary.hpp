// Coboundary enumerators: the cofacets of a simplex in decreasing order of
// index, each with its diameter and the sign (-1)^m of the simplex in its
// boundary, m being the number of vertices below the added one.
//
// Adding vertex x to a simplex with vertices v_dim > ... > v_0 gives the
// cofacet index  sum_{v_i > x} C(v_i, i + 2) + C(x, m + 1) + sum_{v_i < x} C(v_i, i + 1),
// kept incrementally as x walks down (idx_above / idx_below).
#pragma once

#include <algorithm>
#include <array>

#include "tda/rips.hpp"

namespace tda {

// Vertices of a simplex with x added, kept in decreasing order; returns the
// position x took.
inline index_t insert_vertex(const index_t* v, index_t dim, index_t x, index_t* out) {
  index_t i = 0;
  for (; i <= dim && v[i] > x; ++i) out[i] = v[i];
  const index_t position = i;
  out[i] = x;
  for (; i <= dim; ++i) out[i + 1] = v[i];
  return position;
}

// LocalDistances of a simplex with a vertex inserted at `position`, from
// those of the simplex and the new vertex's distances `added` to its vertices.
inline void insert_distances(const value_t* pairwise, index_t dim, index_t position, const value_t* added,
                             value_t* out) {
  for (index_t i = 0; i <= dim; ++i) {
    const index_t ni = i < position ? i : i + 1;
    for (index_t j = 0; j < i; ++j)
      out[ni * kMaxVertices + (j < position ? j : j + 1)] = pairwise[i * kMaxVertices + j];
    if (ni > position)
      out[ni * kMaxVertices + position] = added[i];
    else
      out[position * kMaxVertices + ni] = added[i];
  }
}

// Both enumerators take a simplex either by index (its vertices are decoded)
// or with its vertices known, and a bound: only cofacets whose added vertex is
// within the bound of every vertex come out (the threshold, or the simplex's
// own diameter when looking for a cofacet of equal diameter). A candidate is
// dropped at the first distance beyond the bound.

template <>
class CoboundaryEnumerator<DenseDistanceMatrix> {
 public:
  using Engine = RipsPersistence<DenseDistanceMatrix>;
  explicit CoboundaryEnumerator(const Engine& engine)
      : engine_(engine), dist_(engine.dist()), binomial_(engine.binomial()), n_(engine.n()) {}

  void set(const DiameterEntry& simplex, index_t dim, coefficient_t modulus) {
    engine_.vertices_of(simplex.index, dim, decoded_.data());
    vertices_ = decoded_.data();
    start(simplex, dim, modulus, engine_.threshold());
  }
  // `vertices` (decreasing) must stay valid while the cofacets are enumerated.
  void set(const DiameterEntry& simplex, index_t dim, const index_t* vertices, coefficient_t modulus, value_t bound) {
    vertices_ = vertices;
    start(simplex, dim, modulus, bound);
  }

  const index_t* vertices() const { return vertices_; }
  index_t added_vertex() const { return x_; }
  // d(added vertex, v_i) of the last cofacet returned.
  const value_t* added_distances() const { return added_distances_.data(); }

  // Next cofacet within the bound; with all_cofacets false only those whose
  // new vertex is above every vertex of the simplex (each simplex of the next
  // dimension is then produced by exactly one of its facets).
  bool next(DiameterEntry& out, bool all_cofacets = true) {
    // The walk's state in locals, so that it stays in registers.
    index_t x = x_, m = m_, idx_below = idx_below_, idx_above = idx_above_;
    const index_t dim = dim_;
    const value_t bound = bound_;
    bool found = false;
    while (x > 0) {
      --x;
      if (m > 0 && x == vertices_[dim + 1 - m]) {
        if (!all_cofacets) break;
        idx_below -= binomial_(x, m);
        idx_above += binomial_(x, m + 1);
        --m;
        continue;
      }
      value_t diameter = simplex_.diameter;
      index_t i = 0;
      for (; i <= dim; ++i) {
        const value_t d = dist_(x, vertices_[i]);
        if (d > bound) break;
        added_distances_[i] = d;
        diameter = std::max(diameter, d);
      }
      if (i <= dim) continue;
      out.diameter = diameter;
      out.index = idx_above + binomial_(x, m + 1) + idx_below;
      out.coefficient = (m & 1) ? modulus_ - simplex_.coefficient : simplex_.coefficient;
      found = true;
      break;
    }
    x_ = x;
    m_ = m;
    idx_below_ = idx_below;
    idx_above_ = idx_above;
    return found;
  }

 private:
  void start(const DiameterEntry& simplex, index_t dim, coefficient_t modulus, value_t bound) {
    simplex_ = simplex;
    dim_ = dim;
    idx_below_ = simplex.index;
    idx_above_ = 0;
    x_ = n_;
    m_ = dim + 1;
    modulus_ = modulus;
    bound_ = bound;
  }

  const Engine& engine_;
  const DenseDistanceMatrix& dist_;
  const BinomialTable& binomial_;
  index_t n_;
  DiameterEntry simplex_{};
  index_t dim_ = 0;
  std::array<index_t, kMaxVertices> decoded_;
  const index_t* vertices_ = decoded_.data();
  std::array<value_t, kMaxVertices> added_distances_;
  index_t idx_below_ = 0, idx_above_ = 0, x_ = 0, m_ = 0;
  coefficient_t modulus_ = 2;
  value_t bound_ = infinity;
};

template <>
class CoboundaryEnumerator<SparseDistanceMatrix> {
 public:
  using Engine = RipsPersistence<SparseDistanceMatrix>;
  explicit CoboundaryEnumerator(const Engine& engine)
      : engine_(engine), dist_(engine.dist()), binomial_(engine.binomial()) {}

  void set(const DiameterEntry& simplex, index_t dim, coefficient_t modulus) {
    engine_.vertices_of(simplex.index, dim, decoded_.data());
    vertices_ = decoded_.data();
    start(simplex, dim, modulus, engine_.threshold());
  }
  // `vertices` (decreasing) must stay valid while the cofacets are enumerated.
  void set(const DiameterEntry& simplex, index_t dim, const index_t* vertices, coefficient_t modulus, value_t bound) {
    vertices_ = vertices;
    start(simplex, dim, modulus, bound);
  }

  const index_t* vertices() const { return vertices_; }
  index_t added_vertex() const { return x_; }
  // d(added vertex, v_i) of the last cofacet returned.
  const value_t* added_distances() const { return added_distances_.data(); }

  // Common neighbours of the vertices, in decreasing order: the shortest list
  // is walked, the others merged along.
  bool next(DiameterEntry& out, bool all_cofacets = true) {
    // The loop's invariants in locals, so that they stay in registers.
    const index_t dim = dim_, lead = lead_;
    const value_t bound = bound_;
    const Neighbor* const lead_begin = dist_.begin(vertices_[lead]);
    const Neighbor*& lead_cursor = cursor_[lead];
    while (lead_cursor != lead_begin) {
      const Neighbor& candidate = *--lead_cursor;
      const index_t x = candidate.vertex;
      if (!all_cofacets && x < vertices_[0]) return false;
      if (candidate.distance > bound) continue;
      value_t diameter = std::max(simplex_.diameter, candidate.distance);
      added_distances_[lead] = candidate.distance;
      index_t i = 0;
      for (; i <= dim; ++i) {
        if (i == lead) continue;
        const Neighbor* begin = dist_.begin(vertices_[i]);
        const Neighbor*& c = cursor_[i];
        while (c != begin && (c - 1)->vertex > x) --c;
        if (c == begin || (c - 1)->vertex != x || (c - 1)->distance > bound) break;
        added_distances_[i] = (c - 1)->distance;
        diameter = std::max(diameter, added_distances_[i]);
      }
      if (i <= dim) continue;
      x_ = x;
      while (m_ > 0 && vertices_[dim + 1 - m_] > x) {
        const index_t v = vertices_[dim + 1 - m_];
        idx_below_ -= binomial_(v, m_);
        idx_above_ += binomial_(v, m_ + 1);
        --m_;
      }
      out.diameter = diameter;
      out.index = idx_above_ + binomial_(x, m_ + 1) + idx_below_;
      out.coefficient = (m_ & 1) ? modulus_ - simplex_.coefficient : simplex_.coefficient;
      return true;
    }
    return false;
  }

 private:
  void start(const DiameterEntry& simplex, index_t dim, coefficient_t modulus, value_t bound) {
    simplex_ = simplex;
    dim_ = dim;
    idx_below_ = simplex.index;
    idx_above_ = 0;
    m_ = dim + 1;
    modulus_ = modulus;
    bound_ = bound;
    lead_ = 0;
    for (index_t i = 0; i <= dim; ++i) {
      cursor_[i] = dist_.end(vertices_[i]);
      if (dist_.degree(vertices_[i]) < dist_.degree(vertices_[lead_])) lead_ = i;
    }
  }

  const Engine& engine_;
  const SparseDistanceMatrix& dist_;
  const BinomialTable& binomial_;
  DiameterEntry simplex_{};
  index_t dim_ = 0;
  std::array<index_t, kMaxVertices> decoded_;
  const index_t* vertices_ = decoded_.data();
  std::array<value_t, kMaxVertices> added_distances_;
  std::array<const Neighbor*, kMaxVertices> cursor_;
  index_t lead_ = 0;
  index_t idx_below_ = 0, idx_above_ = 0, m_ = 0, x_ = 0;
  coefficient_t modulus_ = 2;
  value_t bound_ = infinity;
};

}  // namespace tda
