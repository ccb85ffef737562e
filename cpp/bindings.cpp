// The only file that knows Python exists: checks every array (dtype, C order, shape) while
// holding the GIL, allocates the results, then releases the GIL and calls the kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "dispatch.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

namespace fastgru {
namespace {

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// A C-contiguous array of exactly dtype T and the given shape, or a TypeError/ValueError
// that names the argument. Python's fastgru.gru already converts; this is the second line.
template <typename T>
py::array_t<T> checked(py::handle obj, const char* name, const std::vector<py::ssize_t>& shape) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a NumPy array");
  }
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + " must have dtype " +
                         std::string(py::str(py::dtype::of<T>())) + "; got " +
                         std::string(py::str(arr.dtype())));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be C-contiguous");
  }
  std::vector<py::ssize_t> got(arr.shape(), arr.shape() + arr.ndim());
  if (got != shape) {
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + "; got " +
                          shape_str(got));
  }
  return py::reinterpret_borrow<py::array_t<T>>(obj);
}

template <typename T>
const T* optional_data(py::handle obj, const char* name, const std::vector<py::ssize_t>& shape,
                       py::array_t<T>* keep) {
  if (obj.is_none()) return nullptr;
  *keep = checked<T>(obj, name, shape);
  return keep->data();
}

// Batch and steps of x, checked against the packed weights.
template <typename T>
std::pair<size_t, size_t> input_dims(py::handle x, const PackedWeights<T>& w) {
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (!py::isinstance<py::array>(x) || arr.ndim() != 3) {
    throw py::value_error("x must be a 3-D array (batch, time, input_size=" +
                          std::to_string(w.input_size) + ")");
  }
  if (arr.shape(0) <= 0 || arr.shape(1) <= 0) {
    throw py::value_error("x must have batch > 0 and time > 0; got shape " +
                          shape_str({arr.shape(0), arr.shape(1), arr.shape(2)}));
  }
  return {size_t(arr.shape(0)), size_t(arr.shape(1))};
}

template <typename T>
py::array_t<T> empty(const std::vector<py::ssize_t>& shape) {
  return py::array_t<T>(shape);
}

template <typename T>
class TypedGRU {
 public:
  TypedGRU(const KernelTable& table, py::handle kernel, py::handle recurrent, py::handle bias,
           bool reset_after)
      : table_(table) {
    py::array rk = py::reinterpret_borrow<py::array>(recurrent);
    py::array k = py::reinterpret_borrow<py::array>(kernel);
    if (!py::isinstance<py::array>(recurrent) || rk.ndim() != 2 || !py::isinstance<py::array>(kernel) ||
        k.ndim() != 2) {
      throw py::value_error("kernel (I, 3H) and recurrent_kernel (H, 3H) must be 2-D arrays");
    }
    const py::ssize_t H = rk.shape(0), I = k.shape(0);
    if (H <= 0 || I <= 0) throw py::value_error("units and input_size must be > 0");
    auto kernel_arr = checked<T>(kernel, "kernel", {I, 3 * H});
    auto rec_arr = checked<T>(recurrent, "recurrent_kernel", {H, 3 * H});
    auto bias_arr = checked<T>(bias, "bias", reset_after ? std::vector<py::ssize_t>{2, 3 * H}
                                                         : std::vector<py::ssize_t>{3 * H});
    weights_ = std::make_unique<PackedWeights<T>>(table.geometry<T>(), kernel_arr.data(),
                                                  rec_arr.data(), bias_arr.data(), size_t(I),
                                                  size_t(H), reset_after);
  }

  // New weights of the same shapes, packed into the existing buffers. Not while another
  // thread runs this object's kernels (the GIL is held here, but they run without it).
  void update(py::handle kernel, py::handle recurrent, py::handle bias) {
    PackedWeights<T>& w = *weights_;
    const auto I = py::ssize_t(w.input_size), H = py::ssize_t(w.units);
    auto kernel_arr = checked<T>(kernel, "kernel", {I, 3 * H});
    auto rec_arr = checked<T>(recurrent, "recurrent_kernel", {H, 3 * H});
    auto bias_arr = checked<T>(bias, "bias", w.reset_after ? std::vector<py::ssize_t>{2, 3 * H}
                                                           : std::vector<py::ssize_t>{3 * H});
    w.pack(kernel_arr.data(), rec_arr.data(), bias_arr.data());
  }

  py::tuple forward(py::handle x_obj, py::handle h0_obj, bool training) const {
    const PackedWeights<T>& w = *weights_;
    const auto [B, steps] = input_dims(x_obj, w);
    const auto sB = py::ssize_t(B), sT = py::ssize_t(steps), sH = py::ssize_t(w.units);
    const auto sHp = py::ssize_t(w.padded_units);
    auto x = checked<T>(x_obj, "x", {sB, sT, py::ssize_t(w.input_size)});
    py::array_t<T> h0_keep;
    const T* h0 = optional_data<T>(h0_obj, "h0", {sB, sH}, &h0_keep);
    auto out = empty<T>({sB, sT, sH});
    auto h_last = empty<T>({sB, sH});
    py::array_t<T> h_prev, gates, h_rec;
    ForwardArgs<T> args{&w, x.data(), h0, B, steps, out.mutable_data(), h_last.mutable_data(),
                        {nullptr, nullptr, nullptr}, max_threads()};
    if (training) {
      h_prev = empty<T>({sB, sT, sHp});
      gates = empty<T>({sB, sT, 3 * sHp});
      h_rec = empty<T>({sB, sT, sHp});
      args.tape = {h_prev.mutable_data(), gates.mutable_data(), h_rec.mutable_data()};
    }
    bool ok;
    {
      py::gil_scoped_release release;
      ok = table_.kernels<T>().forward(args);
    }
    if (!ok) throw std::bad_alloc();
    if (!training) return py::make_tuple(out, h_last);
    return py::make_tuple(out, h_last, h_prev, gates, h_rec);
  }

  py::tuple backward(py::handle x_obj, py::handle h_prev_obj, py::handle gates_obj,
                     py::handle h_rec_obj, py::handle d_out_obj, py::handle d_h_last_obj,
                     bool need_dx) const {
    const PackedWeights<T>& w = *weights_;
    const auto [B, steps] = input_dims(x_obj, w);
    const auto sB = py::ssize_t(B), sT = py::ssize_t(steps), sH = py::ssize_t(w.units);
    const auto sI = py::ssize_t(w.input_size), sHp = py::ssize_t(w.padded_units);
    auto x = checked<T>(x_obj, "x", {sB, sT, sI});
    auto h_prev = checked<T>(h_prev_obj, "tape.h_prev", {sB, sT, sHp});
    auto gates = checked<T>(gates_obj, "tape.gates", {sB, sT, 3 * sHp});
    auto h_rec = checked<T>(h_rec_obj, "tape.h_rec", {sB, sT, sHp});
    py::array_t<T> d_out_keep, d_h_last_keep;
    const T* d_out = optional_data<T>(d_out_obj, "d_out", {sB, sT, sH}, &d_out_keep);
    const T* d_h_last = optional_data<T>(d_h_last_obj, "d_h_last", {sB, sH}, &d_h_last_keep);
    py::object dx = py::none();
    if (need_dx) dx = empty<T>({sB, sT, sI});
    auto dh0 = empty<T>({sB, sH});
    auto dkernel = empty<T>({sI, 3 * sH});
    auto drec = empty<T>({sH, 3 * sH});
    auto dbias = w.reset_after ? empty<T>({2, 3 * sH}) : empty<T>({3 * sH});
    AlignedBuffer<T> workspace(w.backward_workspace(B, steps), /*zeroed=*/false);
    BackwardArgs<T> args{&w,
                         x.data(),
                         {const_cast<T*>(h_prev.data()), const_cast<T*>(gates.data()),
                          const_cast<T*>(h_rec.data())},
                         d_out,
                         d_h_last,
                         B,
                         steps,
                         need_dx ? py::reinterpret_borrow<py::array_t<T>>(dx).mutable_data() : nullptr,
                         dh0.mutable_data(),
                         dkernel.mutable_data(),
                         drec.mutable_data(),
                         dbias.mutable_data(),
                         workspace.data(),
                         max_threads()};
    bool ok;
    {
      py::gil_scoped_release release;
      ok = table_.kernels<T>().backward(args);
    }
    if (!ok) throw std::bad_alloc();
    return py::make_tuple(dx, dh0, dkernel, drec, dbias);
  }

 private:
  const KernelTable& table_;
  std::unique_ptr<PackedWeights<T>> weights_;
};

// The Python-facing object: one of the two typed GRUs, chosen by the weights' dtype.
class PackedGRU {
 public:
  PackedGRU(py::array kernel, py::array recurrent, py::array bias, bool reset_after)
      : table_(active_path()) {
    if (kernel.dtype().is(py::dtype::of<float>())) {
      f32_ = std::make_unique<TypedGRU<float>>(table_, kernel, recurrent, bias, reset_after);
    } else if (kernel.dtype().is(py::dtype::of<double>())) {
      f64_ = std::make_unique<TypedGRU<double>>(table_, kernel, recurrent, bias, reset_after);
    } else {
      throw py::type_error("kernel must have dtype float32 or float64; got " +
                           std::string(py::str(kernel.dtype())));
    }
  }

  py::tuple forward(py::handle x, py::handle h0) const {
    return f32_ ? f32_->forward(x, h0, false) : f64_->forward(x, h0, false);
  }
  py::tuple forward_train(py::handle x, py::handle h0) const {
    return f32_ ? f32_->forward(x, h0, true) : f64_->forward(x, h0, true);
  }
  py::tuple backward(py::handle x, py::handle h_prev, py::handle gates, py::handle h_rec,
                     py::handle d_out, py::handle d_h_last, bool need_dx) const {
    return f32_ ? f32_->backward(x, h_prev, gates, h_rec, d_out, d_h_last, need_dx)
                : f64_->backward(x, h_prev, gates, h_rec, d_out, d_h_last, need_dx);
  }
  void update(py::handle kernel, py::handle recurrent, py::handle bias) {
    if (f32_) {
      f32_->update(kernel, recurrent, bias);
    } else {
      f64_->update(kernel, recurrent, bias);
    }
  }
  std::string simd() const { return table_.name; }

 private:
  const KernelTable& table_;
  std::unique_ptr<TypedGRU<float>> f32_;
  std::unique_ptr<TypedGRU<double>> f64_;
};

// The optimizer state is the optimizer's own (C-contiguous, one dtype); checked anyway.
template <typename T>
void adam_step(py::handle p, py::handle g, py::handle m, py::handle v, py::handle v_hat,
               double alpha, double c1, double c2, double eps) {
  py::array pa = py::reinterpret_borrow<py::array>(p);
  const std::vector<py::ssize_t> shape(pa.shape(), pa.shape() + pa.ndim());
  auto params = checked<T>(p, "params", shape);
  auto grads = checked<T>(g, "grads", shape);
  auto ms = checked<T>(m, "m", shape);
  auto vs = checked<T>(v, "v", shape);
  py::array_t<T> vh_keep;
  T* vh = v_hat.is_none() ? nullptr : (vh_keep = checked<T>(v_hat, "v_hat", shape)).mutable_data();
  adam_update<T>(size_t(params.size()), params.mutable_data(), grads.data(), ms.mutable_data(),
                 vs.mutable_data(), vh, T(alpha), T(c1), T(c2), T(eps));
}

py::dict config() {
  py::dict d;
  d["simd"] = active_path().name;
  std::vector<std::string> supported;
  for (const KernelTable* t : supported_paths()) supported.emplace_back(t->name);
  d["simd_supported"] = supported;
  d["simd_compiled"] = compiled_paths();
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#else
  d["compiler"] = "unknown";
#endif
#ifdef _OPENMP
  d["openmp"] = std::to_string(_OPENMP);
  d["cpu_threads"] = omp_get_num_procs();
#else
  d["openmp"] = "disabled";
  d["cpu_threads"] = 1;
#endif
  d["threads"] = max_threads();
  return d;
}

}  // namespace
}  // namespace fastgru

PYBIND11_MODULE(_core, m) {
  using namespace fastgru;
  m.doc() = "fastgru C++ kernels (internal; use the fastgru package)";
  py::class_<PackedGRU>(m, "PackedGRU")
      .def(py::init<py::array, py::array, py::array, bool>(), py::arg("kernel"),
           py::arg("recurrent_kernel"), py::arg("bias"), py::arg("reset_after"))
      .def("forward", &PackedGRU::forward, py::arg("x"), py::arg("h0"))
      .def("forward_train", &PackedGRU::forward_train, py::arg("x"), py::arg("h0"))
      .def("backward", &PackedGRU::backward, py::arg("x"), py::arg("h_prev"), py::arg("gates"),
           py::arg("h_rec"), py::arg("d_out"), py::arg("d_h_last"), py::arg("need_dx") = true)
      .def("update", &PackedGRU::update, py::arg("kernel"), py::arg("recurrent_kernel"),
           py::arg("bias"))
      .def_property_readonly("simd", &PackedGRU::simd);
  m.def("adam_step", [](py::array p, py::handle g, py::handle m, py::handle v, py::handle v_hat,
                        double alpha, double c1, double c2, double eps) {
    if (p.dtype().is(py::dtype::of<float>())) return adam_step<float>(p, g, m, v, v_hat, alpha, c1, c2, eps);
    adam_step<double>(p, g, m, v, v_hat, alpha, c1, c2, eps);
  });
  m.def("config", &config);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("n must be >= 1");
    set_max_threads(n);
  });
  m.def("get_num_threads", &max_threads);
  m.def("set_simd", [](const std::string& name) {
    try {
      select_path(name);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  });
  // Importing fails loudly if FASTGRU_SIMD names a path this CPU cannot run.
  try {
    active_path();
  } catch (const std::invalid_argument& e) {
    throw py::import_error(std::string("FASTGRU_SIMD: ") + e.what());
  }
}
