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

template <>
class CoboundaryEnumerator<DenseDistanceMatrix> {
 public:
  using Engine = RipsPersistence<DenseDistanceMatrix>;
  explicit CoboundaryEnumerator(const Engine& engine)
      : dist_(engine.dist()), binomial_(engine.binomial()), threshold_(engine.threshold()), n_(engine.n()) {}

  void set(const DiameterEntry& simplex, index_t dim, const Engine& engine, coefficient_t modulus) {
    simplex_ = simplex;
    dim_ = dim;
    engine.vertices_of(simplex.index, dim, vertices_.data());
    idx_below_ = simplex.index;
    idx_above_ = 0;
    x_ = n_;
    m_ = dim + 1;
    modulus_ = modulus;
  }

  // Next cofacet within the threshold; with all_cofacets false only those
  // whose new vertex is above every vertex of the simplex (each simplex of the
  // next dimension is then produced by exactly one of its facets).
  const index_t* vertices() const { return vertices_.data(); }
  index_t added_vertex() const { return x_; }
  // d(added vertex, v_i) of the last cofacet returned.
  const value_t* added_distances() const { return added_distances_.data(); }

  bool next(DiameterEntry& out, bool all_cofacets = true) {
    while (x_ > 0) {
      --x_;
      if (m_ > 0 && x_ == vertices_[dim_ + 1 - m_]) {
        if (!all_cofacets) return false;
        idx_below_ -= binomial_(x_, m_);
        idx_above_ += binomial_(x_, m_ + 1);
        --m_;
        continue;
      }
      value_t diameter = simplex_.diameter;
      for (index_t i = 0; i <= dim_; ++i) {
        added_distances_[i] = dist_(x_, vertices_[i]);
        diameter = std::max(diameter, added_distances_[i]);
      }
      if (diameter > threshold_) continue;
      out.diameter = diameter;
      out.index = idx_above_ + binomial_(x_, m_ + 1) + idx_below_;
      out.coefficient = (m_ & 1) ? modulus_ - simplex_.coefficient : simplex_.coefficient;
      return true;
    }
    return false;
  }

 private:
  const DenseDistanceMatrix& dist_;
  const BinomialTable& binomial_;
  value_t threshold_;
  index_t n_;
  DiameterEntry simplex_{};
  index_t dim_ = 0;
  std::array<index_t, kMaxVertices> vertices_;
  std::array<value_t, kMaxVertices> added_distances_;
  index_t idx_below_ = 0, idx_above_ = 0, x_ = 0, m_ = 0;
  coefficient_t modulus_ = 2;
};

template <>
class CoboundaryEnumerator<SparseDistanceMatrix> {
 public:
  using Engine = RipsPersistence<SparseDistanceMatrix>;
  explicit CoboundaryEnumerator(const Engine& engine)
      : dist_(engine.dist()), binomial_(engine.binomial()), threshold_(engine.threshold()) {}

  void set(const DiameterEntry& simplex, index_t dim, const Engine& engine, coefficient_t modulus) {
    simplex_ = simplex;
    dim_ = dim;
    engine.vertices_of(simplex.index, dim, vertices_.data());
    idx_below_ = simplex.index;
    idx_above_ = 0;
    m_ = dim + 1;
    modulus_ = modulus;
    // Walk the shortest neighbour list; test the others by merging.
    lead_ = 0;
    for (index_t i = 0; i <= dim; ++i) {
      cursor_[i] = dist_.end(vertices_[i]);
      if (dist_.degree(vertices_[i]) < dist_.degree(vertices_[lead_])) lead_ = i;
    }
  }

  const index_t* vertices() const { return vertices_.data(); }
  index_t added_vertex() const { return x_; }
  // d(added vertex, v_i) of the last cofacet returned.
  const value_t* added_distances() const { return added_distances_.data(); }

  bool next(DiameterEntry& out, bool all_cofacets = true) {
    const Neighbor* const lead_begin = dist_.begin(vertices_[lead_]);
    while (cursor_[lead_] != lead_begin) {
      const Neighbor& candidate = *--cursor_[lead_];
      const index_t x = candidate.vertex;
      if (!all_cofacets && x < vertices_[0]) return false;
      x_ = x;
      value_t diameter = std::max(simplex_.diameter, candidate.distance);
      added_distances_[lead_] = candidate.distance;
      bool common = true;
      for (index_t i = 0; i <= dim_; ++i) {
        if (i == lead_) continue;
        const Neighbor* begin = dist_.begin(vertices_[i]);
        const Neighbor*& c = cursor_[i];
        while (c != begin && (c - 1)->vertex > x) --c;
        if (c == begin || (c - 1)->vertex != x) {
          common = false;
          break;
        }
        added_distances_[i] = (c - 1)->distance;
        diameter = std::max(diameter, added_distances_[i]);
      }
      if (!common) continue;
      while (m_ > 0 && vertices_[dim_ + 1 - m_] > x) {
        const index_t v = vertices_[dim_ + 1 - m_];
        idx_below_ -= binomial_(v, m_);
        idx_above_ += binomial_(v, m_ + 1);
        --m_;
      }
      if (diameter > threshold_) continue;
      out.diameter = diameter;
      out.index = idx_above_ + binomial_(x, m_ + 1) + idx_below_;
      out.coefficient = (m_ & 1) ? modulus_ - simplex_.coefficient : simplex_.coefficient;
      return true;
    }
    return false;
  }

 private:
  const SparseDistanceMatrix& dist_;
  const BinomialTable& binomial_;
  value_t threshold_;
  DiameterEntry simplex_{};
  index_t dim_ = 0;
  std::array<index_t, kMaxVertices> vertices_;
  std::array<value_t, kMaxVertices> added_distances_;
  std::array<const Neighbor*, kMaxVertices> cursor_;
  index_t lead_ = 0;
  index_t idx_below_ = 0, idx_above_ = 0, m_ = 0, x_ = 0;
  coefficient_t modulus_ = 2;
};

}  // namespace tda
