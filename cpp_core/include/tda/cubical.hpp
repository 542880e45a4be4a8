// Persistent homology of the sublevel filtration of a 2-D image or a 3-D
// volume (cubical complexes, coefficients in Z/2).
//
// Dimension 0 is computed by union-find over the edges, the top homological
// dimension D - 1 by union-find over the dual graph of the top cells
// (Alexander duality, as in the CubicalRipser paper: Kaji, Sudo, Ahara 2020),
// and dimension 1 of a volume by a reduction of the squares' boundaries with
// clearing by the pairs of dimension 2, apparent and emergent pairs, and
// cells never stored with their faces (keys recomputed from pixel ranks).
// Homology rather than cohomology here: the reduced cycles are short, where
// the coboundaries of cocycles grow long (measured on a random 128^3 volume:
// about twice the time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "tda/core.hpp"

namespace tda {

// Which cells the pixels of an image become.
enum class CubicalConstruction {
  vertex,    // V: pixels are vertices; a cell takes the largest value of its vertices
  top_cell,  // T: pixels are top cells; a cell takes the smallest value of the top cells around it
};

struct CubicalRequest {
  index_t maxdim = 2;  // dimensions above D - 1 have no homology and come back empty
  CubicalConstruction construction = CubicalConstruction::vertex;
  double threshold = std::numeric_limits<double>::infinity();  // cells with larger values never enter
  int n_threads = 1;
  std::size_t memory_limit = 0;  // bytes; 0: default_memory_limit()
};

// A persistence pair named by the flat indices of the pixels whose values are
// its birth and death; death -1 for an essential class.
using PixelPair = std::pair<std::int64_t, std::int64_t>;

struct CubicalResult {
  std::vector<std::vector<PixelPair>> pairs;  // index = homology dimension; zero persistence omitted
  std::size_t estimated_bytes = 0;
};

// Bytes a run holds before its reduced columns grow (the up-front refusal).
std::size_t cubical_estimate_bytes(const std::vector<index_t>& shape, CubicalConstruction construction);

// values: the image, row-major, of the given shape (2 or 3 axes).
CubicalResult cubical_persistence(const double* values, const std::vector<index_t>& shape,
                                  const CubicalRequest& request, Monitor& monitor);

}  // namespace tda
