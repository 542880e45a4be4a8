// Reduction of the coboundary columns of one dimension, on any number of
// threads, without locks.
//
// The scheme is that of D. Morozov and A. Nigmetov ("Towards lockfree
// persistent homology", SPAA 2020) as giotto-ph applies it to Ripser's
// implicit matrices (J. B. Pérez, S. Hauke, U. Lupo, M. Caorsi, A. Dassatti,
// "giotto-ph: a python library for high-performance computation of persistent
// homology of Vietoris–Rips filtrations", 2021). Threads take chunks of columns
// in order. A column is only ever added to a later one, so every column stays
// its own coboundary plus earlier ones, whatever the interleaving; and a
// reduced matrix obtained by such additions has the same pivots as any other.
// A column that finds its pivot owned by a later column takes the pivot over
// by compare-and-swap, and the later column is reduced again. The pairs, hence
// the diagram, do not depend on the thread count; they are written out in
// column order at the end, so neither does their order.
//
// The V columns (the simplices added to each column) are published through
// one atomic pointer per column into per-thread blocks that never move and are
// freed only when the dimension is done, so a reader never sees freed memory.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "coboundary.hpp"
#include "tda/rips.hpp"

namespace tda {

namespace {

constexpr DiameterEntry kNone{0, 0, -1};

// Blocks of V entries owned by one thread; a column's entries are contiguous,
// preceded by one entry whose index is their count.
class ColumnArena {
 public:
  explicit ColumnArena(MemoryBudget& budget) : budget_(budget) {}
  ColumnArena(const ColumnArena&) = delete;
  ColumnArena& operator=(const ColumnArena&) = delete;
  ~ColumnArena() { budget_.release(charged_); }
  std::size_t charged() const { return charged_; }

  // A column holding `entries` (whose count it records), valid until the arena goes.
  const DiameterEntry* store(const std::vector<DiameterEntry>& entries) {
    const std::size_t n = entries.size() + 1;
    if (free_ < n) {
      block_ = std::max(n, std::min<std::size_t>(2 * block_, kMaxBlock));
      budget_.charge(block_ * sizeof(DiameterEntry), "the reduction matrix");
      charged_ += block_ * sizeof(DiameterEntry);
      blocks_.emplace_back(new DiameterEntry[block_]);
      next_ = blocks_.back().get();
      free_ = block_;
    }
    DiameterEntry* out = next_;
    out[0] = DiameterEntry{0, 0, static_cast<index_t>(entries.size())};
    std::copy(entries.begin(), entries.end(), out + 1);
    next_ += n;
    free_ -= n;
    return out;
  }

 private:
  static constexpr std::size_t kMaxBlock = std::size_t(1) << 16;
  MemoryBudget& budget_;
  std::vector<std::unique_ptr<DiameterEntry[]>> blocks_;
  DiameterEntry* next_ = nullptr;
  std::size_t free_ = 0;
  std::size_t block_ = 512;
  std::size_t charged_ = 0;
};

// What the reduction of one dimension shares between its threads.
struct SharedReduction {
  const std::vector<DiameterIndex>& columns;
  PivotMap& pivots;
  index_t dim;
  // Per column: its published V (null: none yet), the diameter of its pivot
  // (infinity: it reduced to zero), whether its emergent pair settled it.
  std::unique_ptr<std::atomic<const DiameterEntry*>[]> v;
  std::vector<value_t> death;
  std::vector<std::uint8_t> emergent;
  // Cocycles asked for: a column that reduces to zero publishes its V too.
  bool keep_essential;

  SharedReduction(const std::vector<DiameterIndex>& c, PivotMap& p, index_t d, bool cocycles)
      : columns(c),
        pivots(p),
        dim(d),
        v(new std::atomic<const DiameterEntry*>[c.size()]),
        death(c.size()),
        emergent(c.size(), 0),
        keep_essential(cocycles) {
    for (std::size_t i = 0; i < c.size(); ++i) v[i].store(nullptr, std::memory_order_relaxed);
  }
  static std::size_t bytes_per_column() {
    return sizeof(std::atomic<const DiameterEntry*>) + sizeof(value_t) + sizeof(std::uint8_t);
  }
};

}  // namespace

// One thread's reducer: its working columns, enumerator and counters.
template <class D>
class ColumnReducer {
 public:
  using Engine = RipsPersistence<D>;

  // `arena` must outlive every thread of the dimension: they all read from it.
  ColumnReducer(const Engine& engine, SharedReduction& shared, ColumnArena& arena)
      : engine_(engine), field_(engine.field_), shared_(shared), arena_(arena), cofacets_(engine) {}

  DimensionStats counts;

  // Reduces column i: from its coboundary when `first`, else from its
  // published V. Returns i when i is done, or the later column whose pivot i
  // took, which must then be reduced again.
  std::size_t reduce(std::size_t i, bool first) {
    const DiameterIndex& column = shared_.columns[i];
    reduction_.clear();
    coboundary_.clear();
    DiameterEntry pivot;
    if (first) {
      bool settled = false;
      pivot = init_coboundary_and_get_pivot(i, settled);
      if (settled) return i;
    } else {
      ++counts.rereduced;
      add_simplex_coboundary(DiameterEntry{column.diameter, 1, column.index});
      if (const DiameterEntry* v = shared_.v[i].load(std::memory_order_acquire))
        for (const DiameterEntry* e = v + 1; e != v + 1 + v->index; ++e) {
          reduction_.push(*e);
          add_simplex_coboundary(*e);
        }
      pivot = engine_.get_pivot(coboundary_);
    }
    for (;;) {
      if (pivot.index < 0) {
        if (shared_.keep_essential) publish(i);
        shared_.death[i] = infinity;
        shared_.emergent[i] = 0;
        return i;
      }
      PivotMap::Owner owner = shared_.pivots.find(pivot.index);
      if (owner != PivotMap::kNoOwner) {
        const std::size_t j = PivotMap::column_of(owner);
        if (j < i) {
          const DiameterEntry* v = shared_.v[j].load(std::memory_order_acquire);
          // The owner is read again: if it is unchanged, v is the V that gave it this pivot.
          if (shared_.pivots.find(pivot.index) != owner) continue;
          add_column(j, v, factor(pivot, PivotMap::coefficient_of(owner)));
          pivot = engine_.get_pivot(coboundary_);
          continue;
        }
        // A later column holds the pivot: take it over; that column is reduced again.
        settle(i, pivot);
        if (shared_.pivots.replace(pivot.index, owner, PivotMap::owner(i, pivot.coefficient))) return j;
        reduction_.assign(published_.begin(), published_.end());
        continue;
      }
      const DiameterEntry facet = engine_.zero_apparent_facet({pivot.diameter, pivot.index}, shared_.dim + 1);
      if (facet.index >= 0) {
        // The apparent column is its own unreduced coboundary.
        ++counts.column_additions;
        reduction_.push(DiameterEntry{facet.diameter, factor(pivot, facet.coefficient), facet.index});
        add_simplex_coboundary(DiameterEntry{facet.diameter, factor(pivot, facet.coefficient), facet.index});
        pivot = engine_.get_pivot(coboundary_);
        continue;
      }
      settle(i, pivot);
      if (shared_.pivots.claim(pivot.index, PivotMap::owner(i, pivot.coefficient)) == PivotMap::kNoOwner) return i;
      // Another thread claimed it first; reduce on.
      reduction_.assign(published_.begin(), published_.end());
    }
  }

 private:
  coefficient_t factor(const DiameterEntry& pivot, coefficient_t owner_coefficient) const {
    return field_.neg(field_.mul(pivot.coefficient, field_.inverse(owner_coefficient)));
  }

  // Emergent pair: the first cofacet of equal diameter is the pivot of the
  // unreduced column; if no earlier column owns it, the column is reduced
  // already and the rest of its coboundary is never needed.
  DiameterEntry init_coboundary_and_get_pivot(std::size_t i, bool& settled) {
    const DiameterIndex& simplex = shared_.columns[i];
    const index_t dim = shared_.dim;
    bool check_emergent = true;
    scratch_.clear();
    ++counts.coboundaries;
    cofacets_.set(DiameterEntry{simplex.diameter, 1, simplex.index}, dim, field_.modulus());
    DiameterEntry cofacet;
    while (cofacets_.next(cofacet)) {
      if (check_emergent && cofacet.diameter == simplex.diameter) {
        check_emergent = false;
        if (shared_.pivots.find(cofacet.index) == PivotMap::kNoOwner && !has_apparent_facet(cofacet)) {
          shared_.death[i] = simplex.diameter;
          shared_.emergent[i] = 1;
          if (shared_.pivots.claim(cofacet.index, PivotMap::owner(i, cofacet.coefficient)) == PivotMap::kNoOwner) {
            settled = true;
            return cofacet;
          }
        }
      }
      scratch_.push_back(cofacet);
    }
    counts.heap_pushes += scratch_.size();
    coboundary_.assign(scratch_.begin(), scratch_.end());
    return engine_.get_pivot(coboundary_);
  }

  // Whether the cofacet just enumerated is in an apparent pair with one of its
  // facets (then that facet's column owns it, though it is not in the table).
  bool has_apparent_facet(const DiameterEntry& cofacet) const {
    const index_t dim = shared_.dim;
    std::array<index_t, kMaxVertices> w;
    LocalDistances own, pairwise;
    engine_.local_distances(cofacets_.vertices(), dim, own.data());
    const index_t position = insert_vertex(cofacets_.vertices(), dim, cofacets_.added_vertex(), w.data());
    insert_distances(own.data(), dim, position, cofacets_.added_distances(), pairwise.data());
    return engine_
               .zero_apparent_facet(
                   typename Engine::SimplexView{cofacet.diameter, cofacet.index, dim + 1, w.data(), pairwise.data()})
               .index >= 0;
  }

  void add_simplex_coboundary(const DiameterEntry& simplex) {
    ++counts.coboundaries;
    cofacets_.set(simplex, shared_.dim, field_.modulus());
    DiameterEntry cofacet;
    std::size_t pushed = 0;
    while (cofacets_.next(cofacet)) {
      coboundary_.push(cofacet);
      ++pushed;
    }
    counts.heap_pushes += pushed;
  }

  // Adds `factor` times column j, whose V is `v`.
  void add_column(std::size_t j, const DiameterEntry* v, coefficient_t factor) {
    ++counts.column_additions;
    const DiameterIndex& other = shared_.columns[j];
    const DiameterEntry head{other.diameter, factor, other.index};
    reduction_.push(head);
    add_simplex_coboundary(head);
    if (!v) return;
    for (const DiameterEntry* e = v + 1; e != v + 1 + v->index; ++e) {
      const DiameterEntry scaled{e->diameter, field_.mul(e->coefficient, factor), e->index};
      reduction_.push(scaled);
      add_simplex_coboundary(scaled);
    }
  }

  // Column i has `pivot`: publishes its V and its death before the pivot is
  // claimed, so whoever sees the claim sees them too.
  void settle(std::size_t i, const DiameterEntry& pivot) {
    publish(i);
    shared_.death[i] = pivot.diameter;
    shared_.emergent[i] = 0;
  }

  // Publishes column i's V (the reduction column, its entries summed).
  void publish(std::size_t i) {
    published_.clear();
    for (DiameterEntry e = engine_.pop_pivot(reduction_); e.index >= 0; e = engine_.pop_pivot(reduction_))
      published_.push_back(e);
    const DiameterEntry* old = shared_.v[i].load(std::memory_order_relaxed);
    if (old) counts.retired_entries += static_cast<std::size_t>(old->index);
    shared_.v[i].store(published_.empty() ? nullptr : arena_.store(published_), std::memory_order_release);
  }

  const Engine& engine_;
  const PrimeField& field_;
  SharedReduction& shared_;
  ColumnArena& arena_;
  CoboundaryEnumerator<D> cofacets_;
  WorkingColumn reduction_, coboundary_;
  std::vector<DiameterEntry> scratch_, published_;
};

namespace {

void add_counts(DimensionStats& into, const DimensionStats& c) {
  into.column_additions += c.column_additions;
  into.coboundaries += c.coboundaries;
  into.heap_pushes += c.heap_pushes;
  into.rereduced += c.rereduced;
  into.retired_entries += c.retired_entries;
}

// Columns a thread takes at a time: small enough that the threads stay close
// together in the column order (a column reduced far ahead of the earlier ones
// is more likely to claim a pivot that one of them owns, and be reduced
// again), large enough that taking them costs nothing.
std::size_t chunk_size(std::size_t columns, int threads) {
  return std::clamp<std::size_t>(columns / (std::size_t(threads) * 64), 16, 1024);
}

}  // namespace

template <class D>
void RipsPersistence<D>::compute_pairs(const std::vector<DiameterIndex>& columns, PivotMap& pivots, index_t dim,
                                       Diagram& diagram) {
  if (columns.size() >= (std::size_t(1) << 32))
    throw MemoryLimitExceeded("more than 2^32 columns in one dimension; lower the threshold or maxdim");
  Stopwatch watch;
  DimensionStats& stats = stats_.dimensions[dim];
  const std::size_t shared_bytes = columns.size() * SharedReduction::bytes_per_column();
  budget_.charge(shared_bytes, "the reduction's column data");
  SharedReduction shared(columns, pivots, dim, options_.cocycles);

  const std::size_t chunk = chunk_size(columns.size(), options_.n_threads);
  const int threads = static_cast<int>(std::clamp<std::size_t>(columns.size() / (2 * chunk), 1, options_.n_threads));
  std::atomic<std::size_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex merge;
  std::condition_variable wake;
  int finished = 0;
  const double start = dim >= 2 ? 0.5 : 0.0;  // from dimension 2 on, half of a dimension's share went to assembly
  const double total = std::max<double>(1, columns.size());

  std::vector<std::unique_ptr<ColumnArena>> arenas;
  for (int t = 0; t < threads; ++t) arenas.emplace_back(new ColumnArena(budget_));
  // With one thread the caller reduces and reports progress itself; with more, it only watches (wakes every
  // 100 ms) while the workers reduce, so progress and cancel keep their pace however long a column takes.
  auto fraction = [&]() { return progress_of(dim, start + (1 - start) * double(done.load()) / total); };
  auto work = [&](int t, bool reports) {
    try {
      ColumnReducer<D> reducer(*this, shared, *arenas[t]);
      auto keep_going = [&]() {
        if (!reports) return !monitor_.cancel_requested();
        monitor_.poll(fraction());  // throws Cancelled
        return true;
      };
      while (!stop.load(std::memory_order_relaxed) && keep_going()) {
        const std::size_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
        if (begin >= columns.size()) break;
        const std::size_t end = std::min(columns.size(), begin + chunk);
        for (std::size_t i = begin; i < end; ++i) {
          if (((i - begin) & 7) == 7 && !keep_going()) break;  // within a chunk too: long columns take seconds
          // A column that took a later column's pivot hands that column back to be reduced again.
          std::size_t held = i, next_column = reducer.reduce(i, true);
          while (next_column != held) {
            held = next_column;
            next_column = reducer.reduce(held, false);
          }
        }
        done.fetch_add(end - begin, std::memory_order_relaxed);
      }
      std::lock_guard<std::mutex> lock(merge);
      add_counts(stats, reducer.counts);
    } catch (...) {
      std::lock_guard<std::mutex> lock(merge);
      if (!error) error = std::current_exception();
      stop.store(true);
    }
    std::lock_guard<std::mutex> lock(merge);
    ++finished;
    wake.notify_all();
  };
  if (threads == 1) {
    work(0, true);
  } else {
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) workers.emplace_back(work, t, false);
    std::unique_lock<std::mutex> lock(merge);
    while (finished < threads) {
      wake.wait_for(lock, std::chrono::milliseconds(100));
      if (finished < threads && !error) {
        lock.unlock();
        try {
          monitor_.poll(fraction());
        } catch (...) {
          stop.store(true);  // the workers see the cancel flag (or this) within a few columns
          std::lock_guard<std::mutex> relock(merge);
          if (!error) error = std::current_exception();
        }
        lock.lock();
      }
    }
    lock.unlock();
    for (auto& w : workers) w.join();
  }
  stats.threads = std::max(stats.threads, threads);
  stats.reduction_bytes = shared_bytes;
  for (const auto& arena : arenas) stats.reduction_bytes += arena->charged();
  budget_.release(shared_bytes);
  if (error) std::rethrow_exception(error);
  if (monitor_.cancel_requested()) throw Cancelled();

  std::vector<Cocycle>* cocycles = options_.cocycles ? &cocycles_[dim] : nullptr;
  std::size_t cocycle_bytes = 0;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    const value_t death = shared.death[i];
    const bool essential = death == infinity;
    if (essential || death > columns[i].diameter) {
      diagram.emplace_back(columns[i].diameter, death);
      ++(essential ? stats.essential : stats.pairs);
      if (cocycles) {
        cocycles->push_back(cocycle_of(columns[i], shared.v[i].load(std::memory_order_relaxed), dim));
        const std::size_t bytes = cocycles->back().size() * sizeof(std::int64_t);
        budget_.charge(bytes, "the cocycles");  // held until the result is returned
        cocycle_bytes += bytes;
      }
    }
    stats.emergent += shared.emergent[i];
  }
  stats.cocycle_bytes += cocycle_bytes;
  stats.reduced += columns.size() - stats.emergent;
  stats.reduction_seconds += watch.seconds();
}

template <class D>
Cocycle RipsPersistence<D>::cocycle_of(const DiameterIndex& column, const DiameterEntry* v, index_t dim) const {
  std::vector<DiameterEntry> entries{DiameterEntry{column.diameter, 1, column.index}};
  if (v) entries.insert(entries.end(), v + 1, v + 1 + v->index);
  // Filtration order (the order ripser.py lists them in): diameter, then decreasing index.
  std::sort(entries.begin(), entries.end(), [](const DiameterEntry& a, const DiameterEntry& b) {
    return a.diameter < b.diameter || (a.diameter == b.diameter && a.index > b.index);
  });
  Cocycle out;
  out.reserve(entries.size() * std::size_t(dim + 2));
  std::array<index_t, kMaxVertices> vertices;
  for (const DiameterEntry& e : entries) {
    vertices_of(e.index, dim, vertices.data());
    out.insert(out.end(), vertices.begin(), vertices.begin() + dim + 1);  // decreasing, as ripser.py
    out.push_back(std::int64_t(e.coefficient));
  }
  return out;
}

template void RipsPersistence<DenseDistanceMatrix>::compute_pairs(const std::vector<DiameterIndex>&, PivotMap&, index_t,
                                                                  Diagram&);
template void RipsPersistence<SparseDistanceMatrix>::compute_pairs(const std::vector<DiameterIndex>&, PivotMap&,
                                                                   index_t, Diagram&);
template Cocycle RipsPersistence<DenseDistanceMatrix>::cocycle_of(const DiameterIndex&, const DiameterEntry*,
                                                                  index_t) const;
template Cocycle RipsPersistence<SparseDistanceMatrix>::cocycle_of(const DiameterIndex&, const DiameterEntry*,
                                                                   index_t) const;

}  // namespace tda
