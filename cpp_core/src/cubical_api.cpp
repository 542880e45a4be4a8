// Entry point of the cubical engine: validate, rank the pixels, check the
// memory budget, run the reductions for the image's dimension and construction.
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <utility>

#include "cubical_persistence.hpp"
#include "tda/api.hpp"
#include "tda/cubical.hpp"

namespace tda {

namespace {

using cubical::pixel_t;
using cubical::rank_t;

constexpr index_t kMaxCubicalMaxdim = 30;

std::string mib(double bytes) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << bytes / double(1 << 20) << " MiB";
  return out.str();
}

// A value's bit pattern turned into an unsigned integer of the same order.
inline std::uint64_t ordered_bits(double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits >> 63) ? ~bits : bits | (std::uint64_t(1) << 63);
}

// The filtration order of the pixels: by value, ties by flat index. A stable
// least-significant-digit radix sort of the ordered bit patterns, 11 bits a
// pass; passes in which every key has the same digit are skipped (images of
// small integers in doubles vary in a few high bits only).
std::vector<pixel_t> sort_pixels(const double* values, std::size_t n, MemoryBudget& budget, Monitor& monitor) {
  struct Item {
    std::uint64_t key;
    pixel_t pixel;
  };
  constexpr int kBits = 11, kPasses = 6, kBuckets = 1 << kBits;
  const std::size_t scratch = 2 * n * sizeof(Item);
  budget.charge(scratch, "the sort of the pixels");
  std::vector<Item> items(n), other(n);
  std::vector<std::array<std::size_t, kBuckets>> count(kPasses);
  for (auto& c : count) c.fill(0);
  for (std::size_t i = 0; i < n; ++i) {
    items[i] = {ordered_bits(values[i]), static_cast<pixel_t>(i)};
    for (int pass = 0; pass < kPasses; ++pass) ++count[pass][(items[i].key >> (pass * kBits)) & (kBuckets - 1)];
  }
  for (int pass = 0; pass < kPasses; ++pass) {
    monitor.poll(0.0);
    auto& c = count[pass];
    if (*std::max_element(c.begin(), c.end()) == n) continue;
    std::size_t offset = 0;
    for (auto& slot : c) offset += std::exchange(slot, offset);
    for (const Item& item : items) other[c[(item.key >> (pass * kBits)) & (kBuckets - 1)]++] = item;
    items.swap(other);
  }
  std::vector<Item>().swap(other);
  std::vector<pixel_t> order(n);
  for (std::size_t r = 0; r < n; ++r) order[r] = items[r].pixel;
  budget.release(scratch);
  return order;
}

void validate(const double* values, const std::vector<index_t>& shape, const CubicalRequest& r) {
  if (shape.size() != 2 && shape.size() != 3)
    throw InputError("the image must have 2 or 3 axes, got " + std::to_string(shape.size()));
  double pixels = 1, padded = 1;
  for (index_t n : shape) {
    if (n < 1) throw InputError("the image is empty: every axis needs at least one pixel");
    pixels *= double(n);
    padded *= double(n + 2);
  }
  // Ranks, union-find nodes and edge slots are 32-bit indices over the image padded by one pixel a side
  // (one edge slot per axis and padded pixel of a volume).
  if (double(shape.size()) * padded >= double(std::uint32_t(-1)))
    throw InputError("images of more than about 2^32 / " + std::to_string(shape.size()) +
                     " pixels (with a one-pixel border) are not supported");
  if (r.maxdim < 0) throw InputError("maxdim must be non-negative");
  // Dimensions above D - 1 come back empty; a bound keeps that list small (the Rips engine's bound).
  if (r.maxdim > kMaxCubicalMaxdim)
    throw InputError("maxdim " + std::to_string(r.maxdim) + " is above the supported " +
                     std::to_string(kMaxCubicalMaxdim));
  if (std::isnan(r.threshold)) throw InputError("threshold must be a number");
  if (r.n_threads < 1) throw InputError("n_threads must be at least 1");
  const auto n = static_cast<std::size_t>(pixels);
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(values[i]))
      throw InputError("the image has a non-finite value at flat index " + std::to_string(i));
}

template <int D, CubicalConstruction C>
std::vector<std::vector<PixelPair>> run(const double* values, const std::vector<index_t>& shape,
                                        const CubicalRequest& request, Monitor& monitor, MemoryBudget& budget) {
  using Filtration = cubical::CubicalFiltration<D, C>;
  std::array<index_t, D> dims;
  std::copy(shape.begin(), shape.end(), dims.begin());
  index_t n = 1, padded = 1;
  for (index_t s : shape) n *= s, padded *= s + 2;
  budget.charge(n * (sizeof(index_t) + sizeof(double)) + padded * sizeof(rank_t), "the ranks of the pixels");
  std::vector<pixel_t> order = sort_pixels(values, n, budget, monitor);
  std::vector<double> sorted(n);
  for (index_t r = 0; r < n; ++r) sorted[r] = values[order[r]];
  // Pixels above the threshold come last in the order: count those below.
  const auto present = static_cast<rank_t>(
      std::partition_point(sorted.begin(), sorted.end(), [&](double v) { return v <= request.threshold; }) -
      sorted.begin());
  Filtration filtration(dims, order, std::move(sorted), present);
  std::vector<pixel_t>().swap(order);
  cubical::CubicalPersistence<D, C> engine(filtration, request.maxdim, request.n_threads, monitor, budget);
  return engine.compute();
}

template <int D>
std::vector<std::vector<PixelPair>> run(const double* values, const std::vector<index_t>& shape,
                                        const CubicalRequest& request, Monitor& monitor, MemoryBudget& budget) {
  if (request.construction == CubicalConstruction::vertex)
    return run<D, CubicalConstruction::vertex>(values, shape, request, monitor, budget);
  return run<D, CubicalConstruction::top_cell>(values, shape, request, monitor, budget);
}

}  // namespace

// Bytes of the structures a run holds at once, before any work: per pixel,
// the ranks on the padded grid, the order, the sorted values and the star
// and clearing masks; then the larger of the sort's scratch and the
// union-find arrays (with, for a volume, the table of pivots of dimension 1).
// The reduced columns of dimension 1 are charged as they grow.
std::size_t cubical_estimate_bytes(const std::vector<index_t>& shape, CubicalConstruction) {
  double pixels = 1, padded = 1;
  for (index_t n : shape) pixels *= double(n), padded *= double(n + 2);
  const double ranks =
      padded * sizeof(rank_t) + pixels * (sizeof(index_t) + sizeof(double) + 3 * sizeof(std::uint32_t));
  const double sort = pixels * (2 * 16 + sizeof(pixel_t));
  double union_find = padded * (sizeof(std::uint32_t) + sizeof(std::uint64_t));
  if (shape.size() == 3) union_find += padded * 3 * sizeof(std::uint32_t);
  return static_cast<std::size_t>(ranks + std::max(sort, union_find));
}

CubicalResult cubical_persistence(const double* values, const std::vector<index_t>& shape,
                                  const CubicalRequest& request, Monitor& monitor) {
  validate(values, shape, request);
  MemoryBudget budget(request.memory_limit ? request.memory_limit : default_memory_limit());
  CubicalResult result;
  result.estimated_bytes = cubical_estimate_bytes(shape, request.construction);
  if (result.estimated_bytes > budget.limit()) {
    std::string dims;
    for (index_t n : shape) dims += (dims.empty() ? "" : " x ") + std::to_string(n);
    throw MemoryLimitExceeded("the cubical complex of a " + dims + " image needs about " +
                              mib(double(result.estimated_bytes)) + ", above the memory limit of " +
                              mib(double(budget.limit())) + "; crop or downsample it");
  }
  result.pairs = shape.size() == 2 ? run<2>(values, shape, request, monitor, budget)
                                   : run<3>(values, shape, request, monitor, budget);
  result.pairs.resize(request.maxdim + 1);
  return result;
}

}  // namespace tda
