// Pivot -> column lookup used for clearing and reduction: an open-addressing
// table with linear probing. A node-based std::unordered_map costs a cache
// miss per probe and a heap allocation per pair; this keeps a flat array.
#pragma once

#include <cstdint>
#include <vector>

#include "tda/core.hpp"

namespace tda {

class PivotMap {
 public:
  struct Slot {
    index_t pivot;              // simplex index, -1 when empty
    std::uint32_t column;       // position in the column list
    coefficient_t coefficient;  // coefficient of the pivot in that column
  };

  PivotMap() { rebuild(16); }

  std::size_t size() const { return size_; }
  std::size_t bytes() const { return slots_.capacity() * sizeof(Slot); }

  // Prepare for about `expected` pairs without rehashing.
  void reserve(std::size_t expected) {
    std::size_t cap = 16;
    while (cap < 2 * expected) cap <<= 1;
    if (cap > slots_.size()) rehash(cap);
  }

  void clear() {
    for (auto& s : slots_) s.pivot = -1;
    size_ = 0;
  }

  const Slot* find(index_t pivot) const {
    std::size_t i = slot_of(pivot);
    for (;;) {
      const Slot& s = slots_[i];
      if (s.pivot == pivot) return &s;
      if (s.pivot < 0) return nullptr;
      i = (i + 1) & mask_;
    }
  }

  void insert(index_t pivot, std::size_t column, coefficient_t coefficient) {
    if (2 * (size_ + 1) > slots_.size()) rehash(slots_.size() * 2);
    std::size_t i = slot_of(pivot);
    while (slots_[i].pivot >= 0 && slots_[i].pivot != pivot) i = (i + 1) & mask_;
    if (slots_[i].pivot < 0) ++size_;
    slots_[i] = {pivot, static_cast<std::uint32_t>(column), coefficient};
  }

 private:
  std::size_t slot_of(index_t key) const {
    // Fibonacci hashing spreads consecutive simplex indices over the table.
    return static_cast<std::size_t>((static_cast<std::uint64_t>(key) * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void rebuild(std::size_t cap) {
    slots_.assign(cap, Slot{-1, 0, 0});
    mask_ = cap - 1;
    shift_ = 64;
    for (std::size_t c = cap; c > 1; c >>= 1) --shift_;
    size_ = 0;
  }
  void rehash(std::size_t cap) {
    std::vector<Slot> old;
    old.swap(slots_);
    rebuild(cap);
    for (const auto& s : old)
      if (s.pivot >= 0) insert(s.pivot, s.column, s.coefficient);
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  int shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace tda
