// Basic vocabulary of the engine: value and index types, errors, binomial
// coefficients for the combinatorial number system, arithmetic in Z/p, the
// run monitor (progress + cancellation) and the memory budget.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tda {

using value_t = float;         // filtration values (distances)
using index_t = std::int64_t;  // simplex index in the combinatorial number system
using coefficient_t = std::uint32_t;

constexpr value_t infinity = std::numeric_limits<value_t>::infinity();

// Bad input or parameters (maps to ValueError).
class InputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The estimated or actual memory of a run exceeds its budget.
class MemoryLimitExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The run was cancelled through its token.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("computation cancelled") {}
};

// A simplex with its filtration value.
struct DiameterIndex {
  value_t diameter;
  index_t index;
};

// A simplex with its filtration value and a coefficient, as it appears in a
// (co)boundary column. The coefficient sits in what would be padding.
struct DiameterEntry {
  value_t diameter;
  coefficient_t coefficient;
  index_t index;
};

// Reverse filtration order: columns are reduced from the largest diameter
// down; among equal diameters the simplex with the smaller index is later in
// the filtration (ties are broken by reverse colexicographic order).
struct GreaterDiameterOrSmallerIndex {
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return a.diameter > b.diameter || (a.diameter == b.diameter && a.index < b.index);
  }
};

// C(n, k) for 0 <= n <= n_max, 0 <= k <= k_max, laid out by k so that the
// coboundary loops (fixed k, varying n) read consecutive memory.
class BinomialTable {
 public:
  BinomialTable(index_t n_max, index_t k_max) : stride_(n_max + 1), table_((k_max + 1) * (n_max + 1), 0) {
    overflow_ = false;
    for (index_t n = 0; n <= n_max; ++n) {
      at(n, 0) = 1;
      for (index_t k = 1; k <= std::min(n, k_max); ++k) {
        const index_t a = at(n - 1, k - 1);
        const index_t b = (k <= n - 1) ? at(n - 1, k) : 0;
        if (a > std::numeric_limits<index_t>::max() - b) {
          overflow_ = true;
          at(n, k) = std::numeric_limits<index_t>::max();
        } else {
          at(n, k) = a + b;
        }
      }
    }
  }
  index_t operator()(index_t n, index_t k) const { return table_[k * stride_ + n]; }
  // True if some C(n, k) in the table does not fit into index_t.
  bool overflowed() const { return overflow_; }

 private:
  index_t& at(index_t n, index_t k) { return table_[k * stride_ + n]; }
  index_t stride_;
  std::vector<index_t> table_;
  bool overflow_;
};

// Arithmetic in the prime field Z/p.
class PrimeField {
 public:
  explicit PrimeField(coefficient_t p) : p_(p) {
    if (p < (1u << 16)) {
      inverse_.assign(p, 0);
      if (p > 1) inverse_[1] = 1;
      // inverse(a) = -(p / a) * inverse(p mod a)  (mod p)
      for (coefficient_t a = 2; a < p; ++a)
        inverse_[a] = p - static_cast<coefficient_t>((std::uint64_t(p / a) * inverse_[p % a]) % p);
    }
  }
  coefficient_t modulus() const { return p_; }
  coefficient_t add(coefficient_t a, coefficient_t b) const {
    const std::uint64_t s = std::uint64_t(a) + b;
    return static_cast<coefficient_t>(s >= p_ ? s - p_ : s);
  }
  coefficient_t mul(coefficient_t a, coefficient_t b) const {
    return static_cast<coefficient_t>((std::uint64_t(a) * b) % p_);
  }
  coefficient_t neg(coefficient_t a) const { return a == 0 ? 0 : p_ - a; }
  coefficient_t inverse(coefficient_t a) const {
    if (!inverse_.empty()) return inverse_[a];
    // Extended Euclid for fields too large for a table.
    std::int64_t t = 0, new_t = 1, r = p_, new_r = a;
    while (new_r != 0) {
      const std::int64_t q = r / new_r;
      t -= q * new_t;
      std::swap(t, new_t);
      r -= q * new_r;
      std::swap(r, new_r);
    }
    return static_cast<coefficient_t>(t < 0 ? t + p_ : t);
  }

 private:
  coefficient_t p_;
  std::vector<coefficient_t> inverse_;
};

// Progress reporting and cancellation, polled by the computing thread only.
class Monitor {
 public:
  using ProgressFn = std::function<void(double)>;
  Monitor(ProgressFn progress, const std::atomic<bool>* cancel_flag)
      : progress_(std::move(progress)), cancel_flag_(cancel_flag), last_(clock::now()) {}

  bool cancel_requested() const { return cancel_flag_ && cancel_flag_->load(std::memory_order_relaxed); }

  // Throws Cancelled if requested; reports progress at most every 100 ms.
  void poll(double fraction) {
    if (cancel_requested()) throw Cancelled();
    if (!progress_) return;
    const auto now = clock::now();
    if (now - last_ >= std::chrono::milliseconds(100)) {
      last_ = now;
      progress_(std::clamp(fraction, 0.0, 1.0));
    }
  }
  void report(double fraction) {
    if (cancel_requested()) throw Cancelled();
    if (progress_) progress_(std::clamp(fraction, 0.0, 1.0));
  }

 private:
  using clock = std::chrono::steady_clock;
  ProgressFn progress_;
  const std::atomic<bool>* cancel_flag_;
  clock::time_point last_;
};

// Bytes held by the large structures of a run, checked against a limit so a
// request that does not fit fails with a clear error instead of an OOM kill.
// Every thread of a run charges the same budget, so the count is atomic.
class MemoryBudget {
 public:
  explicit MemoryBudget(std::size_t limit) : limit_(limit) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;
  std::size_t limit() const { return limit_; }
  std::size_t used() const { return used_.load(std::memory_order_relaxed); }
  // Most bytes held at once so far.
  std::size_t peak() const { return peak_.load(std::memory_order_relaxed); }
  void charge(std::size_t bytes, const char* what) {
    const std::size_t now = used_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (now > limit_) {
      used_.fetch_sub(bytes, std::memory_order_relaxed);
      throw MemoryLimitExceeded(std::string("the computation needs more memory than its limit of ") +
                                std::to_string(limit_ >> 20) + " MiB (while allocating " + what +
                                "); lower the threshold or maxdim, or use fewer points");
    }
    std::size_t high = peak_.load(std::memory_order_relaxed);
    while (now > high && !peak_.compare_exchange_weak(high, now, std::memory_order_relaxed)) {
    }
  }
  void release(std::size_t bytes) {
    std::size_t now = used_.load(std::memory_order_relaxed);
    while (!used_.compare_exchange_weak(now, now - std::min(bytes, now), std::memory_order_relaxed)) {
    }
  }

 private:
  std::size_t limit_;
  std::atomic<std::size_t> used_{0};
  std::atomic<std::size_t> peak_{0};
};

// Wall-clock seconds since construction (or the last restart), for the phase times of a run's statistics.
class Stopwatch {
 public:
  Stopwatch() : start_(clock::now()) {}
  double seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }
  // Seconds so far, then starts again.
  double lap() {
    const auto now = clock::now();
    const double s = std::chrono::duration<double>(now - start_).count();
    start_ = now;
    return s;
  }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point start_;
};

// Runs body(begin, end) over [0, count) split into n_threads contiguous ranges.
template <class Body>
void parallel_for(int n_threads, std::size_t count, Body&& body) {
  if (n_threads <= 1 || count < 2) {
    body(std::size_t(0), count);
    return;
  }
  const std::size_t parts = std::min<std::size_t>(n_threads, count);
  std::vector<std::thread> workers;
  workers.reserve(parts - 1);
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  auto run = [&](std::size_t b, std::size_t e) {
    try {
      body(b, e);
    } catch (...) {
      if (!failed.exchange(true)) error = std::current_exception();
    }
  };
  for (std::size_t t = 1; t < parts; ++t) workers.emplace_back(run, count * t / parts, count * (t + 1) / parts);
  run(0, count / parts);
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace tda
