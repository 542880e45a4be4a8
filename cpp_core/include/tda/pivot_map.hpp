// Pivot -> owning column, for clearing and reduction, shared by the threads
// that reduce one dimension. An open-addressing table with linear probing,
// allocated once for the dimension: a column owns at most one pivot at a time,
// so twice the column count bounds the load at one half and the table never
// rehashes (which is what lets threads probe it without locks). A key, once
// claimed, stays; its owner only ever moves to an earlier column, by
// compare-and-swap.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "tda/core.hpp"

namespace tda {

class PivotMap {
 public:
  // The owning column and the coefficient of the pivot in it, in one word so
  // that both change together: column << 32 | coefficient.
  using Owner = std::uint64_t;
  static constexpr Owner kNoOwner = ~Owner(0);  // coefficients are below 2^31, so no owner looks like this
  static Owner owner(std::size_t column, coefficient_t coefficient) { return (Owner(column) << 32) | coefficient; }
  static std::size_t column_of(Owner o) { return static_cast<std::size_t>(o >> 32); }
  static coefficient_t coefficient_of(Owner o) { return static_cast<coefficient_t>(o & 0xffffffffu); }

  explicit PivotMap(std::size_t columns) {
    std::size_t cap = 16;
    while (cap < 2 * columns) cap <<= 1;
    slots_.reset(new Slot[cap]);
    for (std::size_t i = 0; i < cap; ++i) {
      slots_[i].pivot.store(-1, std::memory_order_relaxed);
      slots_[i].owner.store(kNoOwner, std::memory_order_relaxed);
    }
    capacity_ = cap;
    mask_ = cap - 1;
    shift_ = 64;
    for (std::size_t c = cap; c > 1; c >>= 1) --shift_;
  }

  static std::size_t bytes_for(std::size_t columns) {
    std::size_t cap = 16;
    while (cap < 2 * columns) cap <<= 1;
    return cap * sizeof(Slot);
  }
  std::size_t bytes() const { return capacity_ * sizeof(Slot); }

  // The owner of `pivot`, or kNoOwner.
  Owner find(index_t pivot) const {
    for (std::size_t i = slot_of(pivot);; i = (i + 1) & mask_) {
      const index_t key = slots_[i].pivot.load(std::memory_order_acquire);
      if (key == pivot) return slots_[i].owner.load(std::memory_order_acquire);
      if (key < 0) return kNoOwner;
    }
  }

  // Makes `o` the owner of `pivot` if it has none. Returns kNoOwner on
  // success, else the owner that was there.
  Owner claim(index_t pivot, Owner o) {
    Slot& s = slot(pivot);
    Owner expected = kNoOwner;
    if (s.owner.compare_exchange_strong(expected, o, std::memory_order_acq_rel, std::memory_order_acquire))
      return kNoOwner;
    return expected;
  }

  // Replaces the owner `expected` of `pivot` by `o`; false (and `expected`
  // updated) when the owner changed meanwhile.
  bool replace(index_t pivot, Owner& expected, Owner o) {
    return slot(pivot).owner.compare_exchange_strong(expected, o, std::memory_order_acq_rel, std::memory_order_acquire);
  }

 private:
  struct Slot {
    std::atomic<index_t> pivot;  // simplex index, -1 while the slot is free
    std::atomic<Owner> owner;
  };

  Slot& slot(index_t pivot) {
    for (std::size_t i = slot_of(pivot);; i = (i + 1) & mask_) {
      index_t key = slots_[i].pivot.load(std::memory_order_acquire);
      if (key < 0 && slots_[i].pivot.compare_exchange_strong(key, pivot, std::memory_order_acq_rel)) key = pivot;
      if (key == pivot) return slots_[i];
    }
  }

  std::size_t slot_of(index_t key) const {
    // Fibonacci hashing spreads consecutive simplex indices over the table.
    return static_cast<std::size_t>((static_cast<std::uint64_t>(key) * 0x9E3779B97F4A7C15ull) >> shift_);
  }

  std::unique_ptr<Slot[]> slots_;
  std::size_t capacity_ = 0;
  std::size_t mask_ = 0;
  int shift_ = 64;
};

}  // namespace tda
