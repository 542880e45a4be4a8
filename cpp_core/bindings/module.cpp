// pybind11 declarations of the engine: conversions only, no logic.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <string>

#include "tda/api.hpp"
#include "tda/cubical.hpp"
#include "tda/matching.hpp"

namespace py = pybind11;

namespace {

// Shared so a token outlives the call that polls it.
struct CancelToken {
  std::shared_ptr<std::atomic<bool>> flag = std::make_shared<std::atomic<bool>>(false);
};

using Points = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Image = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Indices = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

tda::matching::DiagramView diagram_view(const Points& pairs, const char* name) {
  if (pairs.ndim() != 2 || pairs.shape(1) != 2)
    throw tda::InputError(std::string(name) + " must be a (k, 2) array of (birth, death) pairs");
  return {pairs.data(), static_cast<std::size_t>(pairs.shape(0)), name};
}

tda::Monitor make_monitor(const py::object& progress, const CancelToken* cancel) {
  tda::Monitor::ProgressFn fn;
  if (!progress.is_none()) {
    fn = [progress](double fraction) {
      py::gil_scoped_acquire gil;
      progress(fraction);
    };
  }
  return tda::Monitor(std::move(fn), cancel ? cancel->flag.get() : nullptr);
}

tda::RipsRequest make_request(tda::index_t maxdim, double threshold, tda::coefficient_t coeff, int n_threads,
                              std::size_t memory_limit, tda::CollapseMode collapse, bool cocycles,
                              tda::MetricKind metric = tda::MetricKind::euclidean, double metric_p = 2) {
  tda::RipsRequest r;
  r.cocycles = cocycles;
  r.metric = {metric, metric_p};
  r.maxdim = maxdim;
  r.threshold = static_cast<tda::value_t>(threshold);
  r.modulus = coeff;
  r.n_threads = n_threads;
  r.memory_limit = memory_limit;
  r.collapse = collapse;
  return r;
}

py::dict to_python(const tda::RipsStats& stats) {
  py::list dimensions;
  for (const auto& d : stats.dimensions) {
    py::dict item;
    item["simplices"] = d.simplices;
    item["cleared"] = d.cleared;
    item["apparent"] = d.apparent;
    item["emergent"] = d.emergent;
    item["reduced"] = d.reduced;
    item["column_additions"] = d.column_additions;
    item["coboundaries"] = d.coboundaries;
    item["heap_pushes"] = d.heap_pushes;
    item["rereduced"] = d.rereduced;
    item["retired_entries"] = d.retired_entries;
    item["threads"] = d.threads;
    item["reduction_bytes"] = d.reduction_bytes;
    item["pairs"] = d.pairs;
    item["essential"] = d.essential;
    item["cocycle_bytes"] = d.cocycle_bytes;
    item["assembly_s"] = d.assembly_seconds;
    item["reduction_s"] = d.reduction_seconds;
    dimensions.append(item);
  }
  py::dict out;
  out["threads"] = stats.threads;
  out["points"] = stats.points;
  out["edges"] = stats.edges;
  out["edges_after_collapse"] = stats.edges_after_collapse;
  out["collapsed"] = stats.collapsed;
  out["distances_s"] = stats.distances_seconds;
  out["collapse_s"] = stats.collapse_seconds;
  out["dim0_s"] = stats.dim0_seconds;
  out["total_s"] = stats.total_seconds;
  out["estimated_bytes"] = stats.estimated_bytes;
  out["peak_bytes"] = stats.peak_bytes;
  out["dimensions"] = dimensions;
  return out;
}

py::dict to_python(const tda::RipsResult& result) {
  py::list diagrams;
  for (const auto& diagram : result.diagrams) {
    py::array_t<double> pairs({static_cast<py::ssize_t>(diagram.size()), py::ssize_t(2)});
    auto view = pairs.mutable_unchecked<2>();
    for (std::size_t i = 0; i < diagram.size(); ++i) {
      view(i, 0) = diagram[i].first;
      view(i, 1) = diagram[i].second;
    }
    diagrams.append(pairs);
  }
  // Cocycles as (k, d + 2) int64 arrays; none at all when they were not asked for.
  py::list cocycles;
  for (std::size_t d = 0; d < result.cocycles.size(); ++d) {
    py::list of_dim;
    const auto width = static_cast<py::ssize_t>(d + 2);
    for (const auto& rows : result.cocycles[d]) {
      py::array_t<std::int64_t> cocycle({static_cast<py::ssize_t>(rows.size()) / width, width});
      std::copy(rows.begin(), rows.end(), cocycle.mutable_data());
      of_dim.append(cocycle);
    }
    cocycles.append(of_dim);
  }
  py::dict out;
  out["diagrams"] = diagrams;
  out["cocycles"] = result.cocycles.empty() ? py::object(py::none()) : py::object(cocycles);
  out["sparse"] = result.sparse;
  out["threshold"] = static_cast<double>(result.threshold);
  out["estimated_bytes"] = result.estimated_bytes;
  out["stats"] = to_python(result.stats);
  return out;
}

py::dict to_python(const tda::RipsEstimate& estimate) {
  py::dict out;
  out["complete"] = estimate.complete;
  out["bytes"] = estimate.bytes;
  out["sparse"] = estimate.sparse;
  out["threshold"] = static_cast<double>(estimate.threshold);
  return out;
}

py::dict to_python(const tda::CubicalResult& result) {
  py::list pairs;
  for (const auto& diagram : result.pairs) {
    py::array_t<std::int64_t> pixels({static_cast<py::ssize_t>(diagram.size()), py::ssize_t(2)});
    auto view = pixels.mutable_unchecked<2>();
    for (std::size_t i = 0; i < diagram.size(); ++i) {
      view(i, 0) = diagram[i].first;
      view(i, 1) = diagram[i].second;
    }
    pairs.append(pixels);
  }
  py::dict out;
  out["pairs"] = pairs;
  out["estimated_bytes"] = result.estimated_bytes;
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "tda-ray persistent-homology engine (Vietoris-Rips persistent cohomology)";

  py::register_exception<tda::InputError>(m, "InputError", PyExc_ValueError);
  py::register_exception<tda::MemoryLimitExceeded>(m, "MemoryLimitError", PyExc_ValueError);
  py::register_exception<tda::Cancelled>(m, "Cancelled", PyExc_RuntimeError);

  py::class_<CancelToken>(m, "CancelToken", "Cancels a running computation from any thread.")
      .def(py::init<>())
      .def("cancel", [](CancelToken& t) { t.flag->store(true); })
      .def_property_readonly("cancelled", [](const CancelToken& t) { return t.flag->load(); });

  py::enum_<tda::CollapseMode>(m, "CollapseMode", "Edge collapse before the reduction.")
      .value("off", tda::CollapseMode::off)
      .value("on", tda::CollapseMode::on)
      .value("auto", tda::CollapseMode::automatic);

  py::enum_<tda::MetricKind>(m, "Metric", "Distance between the points of a cloud.")
      .value("euclidean", tda::MetricKind::euclidean)
      .value("manhattan", tda::MetricKind::manhattan)
      .value("chebyshev", tda::MetricKind::chebyshev)
      .value("cosine", tda::MetricKind::cosine, "1 - cosine similarity")
      .value("minkowski", tda::MetricKind::minkowski, "L^p, with metric_p");

  m.def("default_memory_limit", &tda::default_memory_limit, "Default memory budget of a run, in bytes.");

  m.def(
      "rips_from_points",
      [](Points points, tda::index_t maxdim, double threshold, tda::coefficient_t coeff, int n_threads,
         std::size_t memory_limit, py::object progress, const CancelToken* cancel, tda::CollapseMode collapse,
         tda::MetricKind metric, double metric_p, bool cocycles) {
        if (points.ndim() != 2) throw tda::InputError("points must be a 2-dimensional array");
        auto monitor = make_monitor(progress, cancel);
        const auto request =
            make_request(maxdim, threshold, coeff, n_threads, memory_limit, collapse, cocycles, metric, metric_p);
        tda::RipsResult result;
        {
          py::gil_scoped_release nogil;
          result = tda::rips_from_points(points.data(), points.shape(0), points.shape(1), request, monitor);
        }
        return to_python(result);
      },
      py::arg("points"), py::arg("maxdim"), py::arg("threshold"), py::arg("coeff"), py::arg("n_threads"),
      py::arg("memory_limit"), py::arg("progress") = py::none(), py::arg("cancel") = nullptr,
      py::arg("collapse") = tda::CollapseMode::automatic, py::arg("metric") = tda::MetricKind::euclidean,
      py::arg("metric_p") = 2.0, py::arg("cocycles") = false);

  m.def(
      "rips_from_lower_distances",
      [](Points lower, tda::index_t n, tda::index_t maxdim, double threshold, tda::coefficient_t coeff, int n_threads,
         std::size_t memory_limit, py::object progress, const CancelToken* cancel, tda::CollapseMode collapse,
         bool cocycles) {
        if (lower.ndim() != 1 || lower.shape(0) != n * (n - 1) / 2)
          throw tda::InputError("the lower triangle must hold n(n-1)/2 distances");
        auto monitor = make_monitor(progress, cancel);
        const auto request = make_request(maxdim, threshold, coeff, n_threads, memory_limit, collapse, cocycles);
        tda::RipsResult result;
        {
          py::gil_scoped_release nogil;
          result = tda::rips_from_lower_distances(lower.data(), n, request, monitor);
        }
        return to_python(result);
      },
      py::arg("lower"), py::arg("n"), py::arg("maxdim"), py::arg("threshold"), py::arg("coeff"), py::arg("n_threads"),
      py::arg("memory_limit"), py::arg("progress") = py::none(), py::arg("cancel") = nullptr,
      py::arg("collapse") = tda::CollapseMode::automatic, py::arg("cocycles") = false);

  m.def(
      "rips_from_sparse",
      [](Indices rows, Indices cols, Points values, tda::index_t n, tda::index_t maxdim, double threshold,
         tda::coefficient_t coeff, int n_threads, std::size_t memory_limit, py::object progress,
         const CancelToken* cancel, tda::CollapseMode collapse, bool cocycles) {
        if (rows.ndim() != 1 || cols.ndim() != 1 || values.ndim() != 1 || rows.shape(0) != values.shape(0) ||
            cols.shape(0) != values.shape(0))
          throw tda::InputError("rows, cols and values must be 1-dimensional arrays of the same length");
        auto monitor = make_monitor(progress, cancel);
        const auto request = make_request(maxdim, threshold, coeff, n_threads, memory_limit, collapse, cocycles);
        tda::RipsResult result;
        {
          py::gil_scoped_release nogil;
          result = tda::rips_from_sparse(rows.data(), cols.data(), values.data(), values.shape(0), n, request, monitor);
        }
        return to_python(result);
      },
      py::arg("rows"), py::arg("cols"), py::arg("values"), py::arg("n"), py::arg("maxdim"), py::arg("threshold"),
      py::arg("coeff"), py::arg("n_threads"), py::arg("memory_limit"), py::arg("progress") = py::none(),
      py::arg("cancel") = nullptr, py::arg("collapse") = tda::CollapseMode::automatic, py::arg("cocycles") = false);

  m.def(
      "estimate_rips_from_points",
      [](Points points, tda::index_t maxdim, double threshold, tda::coefficient_t coeff, std::size_t memory_limit,
         std::size_t max_pairs, const CancelToken* cancel, tda::MetricKind metric, double metric_p) {
        if (points.ndim() != 2) throw tda::InputError("points must be a 2-dimensional array");
        auto monitor = make_monitor(py::none(), cancel);
        const auto request =
            make_request(maxdim, threshold, coeff, 1, memory_limit, tda::CollapseMode::off, false, metric, metric_p);
        tda::RipsEstimate estimate;
        {
          py::gil_scoped_release nogil;
          estimate = tda::estimate_rips_from_points(points.data(), points.shape(0), points.shape(1), request, max_pairs,
                                                    monitor);
        }
        return to_python(estimate);
      },
      py::arg("points"), py::arg("maxdim"), py::arg("threshold"), py::arg("coeff"), py::arg("memory_limit"),
      py::arg("max_pairs"), py::arg("cancel") = nullptr, py::arg("metric") = tda::MetricKind::euclidean,
      py::arg("metric_p") = 2.0);

  py::enum_<tda::CubicalConstruction>(m, "CubicalConstruction", "Which cells the pixels of an image become.")
      .value("vertex", tda::CubicalConstruction::vertex, "V: pixels are vertices")
      .value("top_cell", tda::CubicalConstruction::top_cell, "T: pixels are top cells");

  m.def("cubical_estimate_bytes", &tda::cubical_estimate_bytes, py::arg("shape"), py::arg("construction"),
        "Bytes a cubical run of an image of this shape holds before its reduced columns grow.");

  m.def(
      "cubical_persistence",
      [](Image image, tda::index_t maxdim, tda::CubicalConstruction construction, double threshold, int n_threads,
         std::size_t memory_limit, py::object progress, const CancelToken* cancel) {
        const std::vector<tda::index_t> shape(image.shape(), image.shape() + image.ndim());
        tda::CubicalRequest request;
        request.maxdim = maxdim;
        request.construction = construction;
        request.threshold = threshold;
        request.n_threads = n_threads;
        request.memory_limit = memory_limit;
        auto monitor = make_monitor(progress, cancel);
        tda::CubicalResult result;
        {
          py::gil_scoped_release nogil;
          result = tda::cubical_persistence(image.data(), shape, request, monitor);
        }
        return to_python(result);
      },
      "Persistence pairs of an image's sublevel filtration as (birth, death) flat pixel indices (death -1: "
      "essential).",
      py::arg("image"), py::arg("maxdim"), py::arg("construction"), py::arg("threshold"), py::arg("n_threads"),
      py::arg("memory_limit"), py::arg("progress") = py::none(), py::arg("cancel") = nullptr);

  m.def(
      "bottleneck_distance",
      [](Points a, Points b) {
        const auto x = diagram_view(a, "dgm_a"), y = diagram_view(b, "dgm_b");
        py::gil_scoped_release nogil;
        return tda::matching::bottleneck_distance(x, y);
      },
      py::arg("dgm_a"), py::arg("dgm_b"));

  m.def(
      "wasserstein_distance",
      [](Points a, Points b, double order, double internal_p) {
        const auto x = diagram_view(a, "dgm_a"), y = diagram_view(b, "dgm_b");
        py::gil_scoped_release nogil;
        return tda::matching::wasserstein_distance(x, y, order, internal_p);
      },
      py::arg("dgm_a"), py::arg("dgm_b"), py::arg("order"), py::arg("internal_p"));
}
