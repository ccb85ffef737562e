// The only file that knows Python exists: checks every array (dtype, C order, shape) while
// holding the GIL, allocates the results, then releases the GIL and calls the kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adam.h"
#include "common.h"
#include "dispatch.h"
#include "gru_masked.h"
#include "inference.h"

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

// NumPy's own ALIGNED flag (the data pointer and strides are multiples of the element size).
bool is_aligned(const py::array& arr) {
  return (arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
}

// A C-contiguous array of exactly dtype T and the given shape, or a TypeError/ValueError
// that names the argument. Python's fastgru.gru already converts; this is the second line.
template <typename T>
py::array_t<T> checked(py::handle obj, const char* name, const std::vector<py::ssize_t>& shape) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a NumPy array");
  }
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + " must have dtype " +
                         std::string(py::str(py::dtype::of<T>())) + "; got " +
                         std::string(py::str(arr.dtype())));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be C-contiguous");
  }
  if (!is_aligned(arr)) {  // the kernels read whole elements: a misaligned view is UB
    throw py::value_error(std::string(name) + " must be aligned to its element size (copy it, "
                          "e.g. with numpy.require(a, requirements='CA'))");
  }
  bool same = size_t(arr.ndim()) == shape.size();
  for (size_t i = 0; same && i < shape.size(); ++i) same = arr.shape(py::ssize_t(i)) == shape[i];
  if (!same) {
    const std::vector<py::ssize_t> got(arr.shape(), arr.shape() + arr.ndim());
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + "; got " +
                          shape_str(got));
  }
  return py::reinterpret_borrow<py::array_t<T>>(obj);
}

// `keep` holds the checked array. A py::object, not a py::array_t: a default-constructed
// array_t is a new (empty) NumPy array, an allocation per call for nothing.
template <typename T>
const T* optional_data(py::handle obj, const char* name, const std::vector<py::ssize_t>& shape,
                       py::object* keep) {
  if (obj.is_none()) return nullptr;
  auto arr = checked<T>(obj, name, shape);
  *keep = arr;
  return arr.data();
}

// Batch and steps of a (batch, time, input_size) input called `name`: 3-D, neither empty.
std::pair<size_t, size_t> input_dims(py::handle x, size_t input_size, const char* name = "x") {
  py::array arr = py::reinterpret_borrow<py::array>(x);
  if (!py::isinstance<py::array>(x) || arr.ndim() != 3) {
    throw py::value_error(std::string(name) + " must be a 3-D array (batch, time, input_size=" +
                          std::to_string(input_size) + ")");
  }
  if (arr.shape(0) <= 0 || arr.shape(1) <= 0) {
    throw py::value_error(std::string(name) + " must have batch > 0 and time > 0; got shape " +
                          shape_str({arr.shape(0), arr.shape(1), arr.shape(2)}));
  }
  return {size_t(arr.shape(0)), size_t(arr.shape(1))};
}

template <typename T>
py::array_t<T> empty(const std::vector<py::ssize_t>& shape) {
  return py::array_t<T>(shape);
}

std::vector<py::ssize_t> gru_bias_shape(bool reset_after, py::ssize_t H) {
  return reset_after ? std::vector<py::ssize_t>{2, 3 * H} : std::vector<py::ssize_t>{3 * H};
}

// Keras-layout GRU weights checked (arrays, 2-D, I and H > 0, dtype, C order, shapes) and
// packed for the active path.
template <typename T>
std::unique_ptr<PackedWeights<T>> checked_packed_gru(const KernelTable& table, py::handle kernel,
                                                     py::handle recurrent, py::handle bias,
                                                     bool reset_after, bool for_training) {
  if (!py::isinstance<py::array>(kernel) || !py::isinstance<py::array>(recurrent)) {
    throw py::type_error("GRU kernel and recurrent_kernel must be NumPy arrays");
  }
  py::array k = py::reinterpret_borrow<py::array>(kernel);
  py::array rk = py::reinterpret_borrow<py::array>(recurrent);
  if (rk.ndim() != 2 || k.ndim() != 2) {
    throw py::value_error("kernel (I, 3H) and recurrent_kernel (H, 3H) must be 2-D arrays");
  }
  const py::ssize_t H = rk.shape(0), I = k.shape(0);
  if (H <= 0 || I <= 0) throw py::value_error("GRU units and input_size must be > 0");
  auto kernel_arr = checked<T>(kernel, "kernel", {I, 3 * H});
  auto rec_arr = checked<T>(recurrent, "recurrent_kernel", {H, 3 * H});
  auto bias_arr = checked<T>(bias, "bias", gru_bias_shape(reset_after, H));
  return std::make_unique<PackedWeights<T>>(table.geometry<T>(), kernel_arr.data(),
                                            rec_arr.data(), bias_arr.data(), size_t(I),
                                            size_t(H), reset_after, for_training);
}

template <typename T>
class TypedGRU {
 public:
  TypedGRU(const KernelTable& table, py::handle kernel, py::handle recurrent, py::handle bias,
           bool reset_after)
      : table_(table),
        weights_(checked_packed_gru<T>(table, kernel, recurrent, bias, reset_after, true)) {}

  // New weights of the same shapes, packed into the existing buffers. Not while another
  // thread runs this object's kernels (the GIL is held here, but they run without it).
  void update(py::handle kernel, py::handle recurrent, py::handle bias) {
    PackedWeights<T>& w = *weights_;
    const auto I = py::ssize_t(w.input_size), H = py::ssize_t(w.units);
    auto kernel_arr = checked<T>(kernel, "kernel", {I, 3 * H});
    auto rec_arr = checked<T>(recurrent, "recurrent_kernel", {H, 3 * H});
    auto bias_arr = checked<T>(bias, "bias", gru_bias_shape(w.reset_after, H));
    w.pack(kernel_arr.data(), rec_arr.data(), bias_arr.data());
  }

  // Vectors of h*U the batch-1 latency path keeps in registers; 0 where it does not apply.
  int latency_vectors() const { return int(weights_->grouped_vectors()); }

  // training: also fill and return the tape; outputs: also return every step's state (B, T, H)
  // (a GRU that returns only its last state skips writing them).
  py::tuple forward(py::handle x_obj, py::handle h0_obj, bool training, bool outputs = true) const {
    const PackedWeights<T>& w = *weights_;
    const auto [B, steps] = input_dims(x_obj, w.input_size);
    const auto sB = py::ssize_t(B), sT = py::ssize_t(steps), sH = py::ssize_t(w.units);
    const auto sHp = py::ssize_t(w.padded_units);
    auto x = checked<T>(x_obj, "x", {sB, sT, py::ssize_t(w.input_size)});
    py::object h0_keep;
    const T* h0 = optional_data<T>(h0_obj, "h0", {sB, sH}, &h0_keep);
    py::object out = py::none();
    if (outputs) out = empty<T>({sB, sT, sH});
    auto h_last = empty<T>({sB, sH});
    py::object h_prev, gates, h_rec;  // the tape, training only (not default array_t's: see above)
    T* out_data = outputs ? py::reinterpret_borrow<py::array_t<T>>(out).mutable_data() : nullptr;
    ForwardArgs<T> args{&w, x.data(), h0, B, steps, out_data, h_last.mutable_data(),
                        {nullptr, nullptr, nullptr}, max_threads()};
    if (training) {
      auto hp = empty<T>({sT, sB, sHp}), hr = empty<T>({sT, sB, sHp});
      auto g = empty<T>({sT, sB, 3 * sHp});
      args.tape = {hp.mutable_data(), g.mutable_data(), hr.mutable_data()};
      h_prev = hp;
      gates = g;
      h_rec = hr;
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
    const auto [B, steps] = input_dims(x_obj, w.input_size);
    const auto sB = py::ssize_t(B), sT = py::ssize_t(steps), sH = py::ssize_t(w.units);
    const auto sI = py::ssize_t(w.input_size), sHp = py::ssize_t(w.padded_units);
    auto x = checked<T>(x_obj, "x", {sB, sT, sI});
    auto h_prev = checked<T>(h_prev_obj, "tape.h_prev", {sT, sB, sHp});
    auto gates = checked<T>(gates_obj, "tape.gates", {sT, sB, 3 * sHp});
    auto h_rec = checked<T>(h_rec_obj, "tape.h_rec", {sT, sB, sHp});
    py::object d_out_keep, d_h_last_keep;
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
    if (kernel.dtype().equal(py::dtype::of<float>())) {
      f32_ = std::make_unique<TypedGRU<float>>(table_, kernel, recurrent, bias, reset_after);
    } else if (kernel.dtype().equal(py::dtype::of<double>())) {
      f64_ = std::make_unique<TypedGRU<double>>(table_, kernel, recurrent, bias, reset_after);
    } else {
      throw py::type_error("kernel must have dtype float32 or float64; got " +
                           std::string(py::str(kernel.dtype())));
    }
  }

  py::tuple forward(py::handle x, py::handle h0) const {
    return f32_ ? f32_->forward(x, h0, false) : f64_->forward(x, h0, false);
  }
  py::tuple forward_train(py::handle x, py::handle h0, bool outputs) const {
    return f32_ ? f32_->forward(x, h0, true, outputs) : f64_->forward(x, h0, true, outputs);
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
  int latency_vectors() const { return f32_ ? f32_->latency_vectors() : f64_->latency_vectors(); }

 private:
  const KernelTable& table_;
  std::unique_ptr<TypedGRU<float>> f32_;
  std::unique_ptr<TypedGRU<double>> f64_;
};

template <typename T>
bool all_finite(const T* x, size_t n) {
  bool ok = true;
  for (size_t i = 0; i < n; ++i) ok &= std::isfinite(x[i]);
  return ok;
}

// model.predict for models that start with a GRU: the layers are converted once per weight
// version (fastgru.inference.InferenceSnapshot owns one), buffers are kept between calls.
template <typename T>
class TypedInferenceModel {
 public:
  // specs: fastgru.specs.GRUSpec / DenseSpec objects, in order, read by field name (the
  // contract in python/fastgru/specs.py; identity layers are dropped before they get here).
  explicit TypedInferenceModel(const py::list& specs) {
    const KernelTable& table = active_path();
    std::vector<InferenceLayer<T>> layers;
    for (const py::handle spec : specs) {
      if (!py::hasattr(spec, "kind")) {
        throw py::type_error("layer specs must be fastgru.specs.GRUSpec or DenseSpec objects");
      }
      const std::string kind = spec.attr("kind").cast<std::string>();
      InferenceLayer<T> layer;
      if (kind == "gru") {
        layer.gru = checked_packed_gru<T>(table, spec.attr("kernel"), spec.attr("recurrent_kernel"),
                                          spec.attr("bias"), spec.attr("reset_after").cast<bool>(),
                                          /*for_training=*/false);
        layer.return_sequences = spec.attr("return_sequences").cast<bool>();
      } else if (kind == "dense") {
        const py::object kernel_obj = spec.attr("kernel");
        if (!py::isinstance<py::array>(kernel_obj)) throw py::type_error("Dense kernel must be a NumPy array");
        py::array k = py::reinterpret_borrow<py::array>(kernel_obj);
        if (k.ndim() != 2) throw py::value_error("Dense kernel must be 2-D (inputs, units)");
        const py::ssize_t I = k.shape(0), O = k.shape(1);
        if (I <= 0 || O <= 0) throw py::value_error("Dense inputs and units must be > 0");
        auto kernel = checked<T>(kernel_obj, "kernel", {I, O});
        auto bias = checked<T>(spec.attr("bias"), "bias", {O});
        layer.dense.inputs = size_t(I);
        layer.dense.units = size_t(O);
        layer.dense.kernel.assign(kernel.data(), kernel.data() + I * O);
        layer.dense.bias.assign(bias.data(), bias.data() + O);
        try {
          layer.dense.activation = parse_activation(spec.attr("activation").cast<std::string>());
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      } else {
        throw py::value_error("unknown layer kind '" + kind + "'; expected 'gru' or 'dense'");
      }
      layers.push_back(std::move(layer));
    }
    try {
      model_ = std::make_shared<const InferenceModel<T>>(table, std::move(layers));
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }

  py::array predict(py::handle x_obj) {
    const size_t I = model_->input_size(), O = model_->output_size();
    const auto [batch, time] = input_dims(x_obj, I, "X");
    const auto B = py::ssize_t(batch), steps = py::ssize_t(time);
    auto x = checked<T>(x_obj, "X", {B, steps, py::ssize_t(I)});
    auto out = model_->sequence_output() ? py::array_t<T>({B, steps, py::ssize_t(O)})
                                         : py::array_t<T>({B, py::ssize_t(O)});
    const T* x_data = x.data();
    T* out_data = out.mutable_data();  // with the GIL: it reads the array's flags
    bool finite, ok = false;
    {
      py::gil_scoped_release release;
      finite = all_finite(x_data, size_t(B * steps) * I);
      if (finite) {
        // Scratch borrowed from the model's pool: concurrent calls never wait for each other.
        typename ScratchPool<T>::Lease lease(scratch_pool_);
        ok = model_->predict(x_data, size_t(B), size_t(steps), out_data, lease.scratch());
      }
    }
    if (!finite) throw py::value_error("X contains NaN or inf values");
    if (!ok) throw std::bad_alloc();
    return out;
  }

  std::shared_ptr<const InferenceModel<T>> model() const { return model_; }
  size_t idle_scratch_buffers() const { return scratch_pool_.idle_count(); }

 private:
  std::shared_ptr<const InferenceModel<T>> model_;
  ScratchPool<T> scratch_pool_;
};

// NumPy's own descriptor of native T, which every array of that dtype made the usual way
// shares. Held for the life of the process (one per T).
template <typename T>
PyObject* native_descr() {
  static PyObject* const descr = py::detail::npy_api::get().PyArray_DescrFromType_(
      py::detail::npy_format_descriptor<T>::value);
  return descr;
}

// The stream's fast test, done on NumPy's struct rather than through pybind11's wrappers (a
// step is under 1 us, so each wrapper's dtype object and reference counts show): obj is an
// ndarray with T's native descriptor, C-ordered, aligned and with `flags` set. False only
// means "take the general path", which accepts every such array too.
template <typename T>
bool plain_array(PyObject* obj, int flags) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(obj)) return false;
  const auto* a = py::detail::array_proxy(obj);
  const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                   py::detail::npy_api::NPY_ARRAY_ALIGNED_ | flags;
  return a->descr == native_descr<T>() && (a->flags & need) == need;
}

// A new C-ordered array of T. NumPy computes the strides and flags itself (pybind11's
// constructor passes strides, which costs NumPy a flags update).
template <typename T>
py::array_t<T> fresh_array(int ndim, const py::ssize_t* shape) {
  const auto& api = py::detail::npy_api::get();
  PyObject* descr = native_descr<T>();
  Py_INCREF(descr);  // NewFromDescr steals it
  PyObject* arr = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, ndim, shape, nullptr,
                                            nullptr, 0, nullptr);
  if (arr == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array_t<T>>(arr);
}

// x_t as a C-contiguous, aligned array of T; what predict refuses (complex, strings, objects)
// is refused here too, with the same wording.
template <typename T>
py::array_t<T> converted_reading(py::handle x_obj) {
  py::array any;
  try {
    any = py::module_::import("numpy").attr("asarray")(x_obj);
  } catch (const py::error_already_set&) {
    throw py::type_error("x_t must be a number or an array of numbers");
  }
  const char kind = any.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
    throw py::type_error("x_t must be a number or an array of numbers; got dtype " +
                         std::string(py::str(any.dtype())));
  }
  // numpy.require copies into a fresh (aligned, C-ordered) array whenever one is needed.
  py::object req = py::module_::import("numpy").attr("require")(any, py::dtype::of<T>(), "CA");
  return py::reinterpret_borrow<py::array_t<T>>(req);
}

// A stream's reading x_t as a C-ordered, aligned array of T, and whether it came flat
// ((features,), or a bare number when features == 1: a stream of one) rather than
// (batch, features). The one place these rules live: the C++ stream and the Python path
// (_core.checked_stream_reading, used by fastgru.streaming) both call it. Finiteness is
// checked by the caller (the C++ stream does it without the GIL).
template <typename T>
std::pair<py::array_t<T>, bool> checked_reading(py::handle x_obj, size_t batch, size_t I) {
  // (never a default-constructed array_t: pybind11 allocates an empty NumPy array for one)
  const bool usable = plain_array<T>(x_obj.ptr(), 0) ||
                      (py::isinstance<py::array_t<T>>(x_obj) &&
                       (py::reinterpret_borrow<py::array>(x_obj).flags() & py::array::c_style) &&
                       is_aligned(py::reinterpret_borrow<py::array>(x_obj)));
  const py::array_t<T> x = usable ? py::reinterpret_borrow<py::array_t<T>>(x_obj)  // as it is
                                  : converted_reading<T>(x_obj);
  if (x.ndim() == 2 && size_t(x.shape(0)) == batch && size_t(x.shape(1)) == I) return {x, false};
  if (batch == 1 && ((x.ndim() == 1 && size_t(x.shape(0)) == I) || (x.ndim() == 0 && I == 1))) {
    return {x, true};
  }
  std::vector<py::ssize_t> got(x.shape(), x.shape() + x.ndim());
  std::string msg = "x_t must have shape (batch, features) = (" + std::to_string(batch) + ", " +
                    std::to_string(I) + ")";
  if (batch == 1) msg += " or (features,) = (" + std::to_string(I) + ",)";
  msg += "; got " + shape_str(got);
  if (batch > 1 && x.ndim() == 1 && size_t(x.shape(0)) == I) {
    msg += " (a stream of batch_size " + std::to_string(batch) + " needs one row per stream)";
  }
  throw py::value_error(msg);
}

// checked_reading for the Python path, finiteness included: the reading as (batch, features).
template <typename T>
py::array_t<T> checked_stream_reading(py::handle x_obj, size_t batch, size_t I) {
  py::array_t<T> x = checked_reading<T>(x_obj, batch, I).first;
  if (!all_finite(x.data(), batch * I)) throw py::value_error("x_t contains NaN or inf values");
  return x.reshape({py::ssize_t(batch), py::ssize_t(I)});
}

// A stateful stream over an InferenceModel: one reading (per stream of the batch) a call.
template <typename T>
class TypedStream {
 public:
  TypedStream(const TypedInferenceModel<T>& model, size_t batch)
      : model_(model.model()), batch_(batch) {
    if (batch == 0) throw py::value_error("batch_size must be >= 1");
    for (size_t units : model_->state_sizes()) states_.emplace_back(batch * units, T(0));
    for (auto& s : states_) state_ptrs_.push_back(s.data());
  }

  // x_t: (features,) for a stream of one, or (batch, features). Returns (outputs,) or
  // (batch, outputs), written into `out` when given (no new array then).
  py::object step(py::handle x_obj, py::handle out_obj) {
    const size_t O = model_->output_size();
    auto [x, flat] = checked_reading<T>(x_obj, batch_, model_->input_size());
    const py::ssize_t shape[2] = {py::ssize_t(batch_), py::ssize_t(O)};
    const int ndim = flat ? 1 : 2;
    const py::ssize_t* out_shape = flat ? shape + 1 : shape;
    py::array_t<T> out = out_obj.is_none() ? fresh_array<T>(ndim, out_shape)
                                           : checked_out(out_obj, ndim, out_shape);
    // Both pointers taken while holding the GIL: mutable_data() checks the array's flags.
    const T* x_data = x.data();
    T* out_data = out.mutable_data();
    bool finite, ok = false;
    {
      py::gil_scoped_release release;
      finite = all_finite(x_data, batch_ * model_->input_size());
      if (finite) {
        std::lock_guard<std::mutex> lock(mutex_);
        ok = model_->step(x_data, batch_, state_ptrs_.data(), out_data, scratch_);
      }
    }
    if (!finite) throw py::value_error("x_t contains NaN or inf values");
    if (!ok) throw std::bad_alloc();
    return std::move(out);
  }

  // `out` as given to step: a writeable array of T of the output's shape.
  static py::array_t<T> checked_out(py::handle out_obj, int ndim, const py::ssize_t* shape) {
    const PyObject* obj = out_obj.ptr();
    if (plain_array<T>(out_obj.ptr(), py::detail::npy_api::NPY_ARRAY_WRITEABLE_) &&
        py::detail::array_proxy(obj)->nd == ndim &&
        std::equal(shape, shape + ndim, py::detail::array_proxy(obj)->dimensions)) {
      return py::reinterpret_borrow<py::array_t<T>>(out_obj);  // what the checks below accept
    }
    auto out = checked<T>(out_obj, "out", std::vector<py::ssize_t>(shape, shape + ndim));
    if (!out.writeable()) throw py::value_error("out must be writeable");
    return out;
  }

  // The stream's step as a plain CPython builtin (vectorcall: pybind11's dispatcher, its
  // type lookups and argument vectors, cost ~0.1 us a call). A capsule holds the stream alive.
  static py::object step_function(std::shared_ptr<TypedStream> stream) {
    static PyMethodDef def = {
        "step",
        reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(&step_entry)),
        METH_FASTCALL | METH_KEYWORDS,
        "step(x_t, out=None)\n--\n\nFeed one reading; return the model output (see "
        "fastgru.streaming.Stream.step)."};
    py::capsule owner(new std::shared_ptr<TypedStream>(std::move(stream)), [](void* p) {
      delete static_cast<std::shared_ptr<TypedStream>*>(p);
    });
    PyObject* f = PyCFunction_NewEx(&def, owner.ptr(), nullptr);
    if (f == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(f);
  }

  void reset() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& s : states_) std::fill(s.begin(), s.end(), T(0));
  }

  py::list get_state() {
    std::lock_guard<std::mutex> lock(mutex_);
    py::list result;
    const auto& units = model_->state_sizes();
    for (size_t k = 0; k < states_.size(); ++k) {
      py::array_t<T> s({py::ssize_t(batch_), py::ssize_t(units[k])});
      std::memcpy(s.mutable_data(), states_[k].data(), states_[k].size() * sizeof(T));
      result.append(s);
    }
    return result;
  }

  void set_state(const py::sequence& states) {
    const auto& units = model_->state_sizes();
    if (size_t(py::len(states)) != states_.size()) {
      throw py::value_error("states must hold " + std::to_string(states_.size()) +
                            " arrays, one per GRU layer; got " + std::to_string(py::len(states)));
    }
    std::vector<py::array_t<T>> checked_states;
    for (size_t k = 0; k < states_.size(); ++k) {
      checked_states.push_back(checked<T>(states[k], "state",
                                          {py::ssize_t(batch_), py::ssize_t(units[k])}));
      if (!all_finite(checked_states.back().data(), batch_ * units[k])) {
        throw py::value_error("state contains NaN or inf values");
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t k = 0; k < states_.size(); ++k) {
      std::memcpy(states_[k].data(), checked_states[k].data(), states_[k].size() * sizeof(T));
    }
  }

  size_t batch_size() const { return batch_; }

 private:
  // step(x_t, out=None) called from Python: the arguments as pybind11 would bind them.
  static PyObject* step_entry(PyObject* owner, PyObject* const* args, Py_ssize_t nargs,
                              PyObject* kwnames) {
    try {
      PyObject* bound[2] = {nullptr, nullptr};  // x_t, out
      static const char* const names[2] = {"x_t", "out"};
      if (nargs > 2) {
        throw py::type_error("step() takes at most 2 arguments (" + std::to_string(nargs) +
                             " given)");
      }
      for (Py_ssize_t i = 0; i < nargs; ++i) bound[i] = args[i];
      const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
      for (Py_ssize_t k = 0; k < nkw; ++k) {
        PyObject* name = PyTuple_GET_ITEM(kwnames, k);
        int slot = -1;
        for (int j = 0; j < 2 && slot < 0; ++j) {
          if (PyUnicode_CompareWithASCIIString(name, names[j]) == 0) slot = j;
        }
        if (slot < 0) {
          throw py::type_error("step() got an unexpected keyword argument '" +
                               py::str(name).cast<std::string>() + "'");
        }
        if (bound[slot] != nullptr) {
          throw py::type_error(std::string("step() got multiple values for argument '") +
                               names[slot] + "'");
        }
        bound[slot] = args[nargs + k];
      }
      if (bound[0] == nullptr) throw py::type_error("step() missing required argument 'x_t'");
      auto* stream =
          static_cast<std::shared_ptr<TypedStream>*>(PyCapsule_GetPointer(owner, nullptr));
      if (stream == nullptr) return nullptr;
      return (*stream)->step(bound[0], bound[1] != nullptr ? bound[1] : Py_None).release().ptr();
    } catch (...) {
      py::detail::try_translate_exceptions();
      return nullptr;
    }
  }

  std::shared_ptr<const InferenceModel<T>> model_;
  size_t batch_;
  std::vector<std::vector<T>> states_;  // one (batch, units) array per GRU layer
  std::vector<T*> state_ptrs_;
  std::mutex mutex_;
  std::vector<T> scratch_;
};

template <typename T>
void bind_inference(py::module_& m, const char* model_name, const char* stream_name) {
  py::class_<TypedStream<T>, std::shared_ptr<TypedStream<T>>>(m, stream_name)
      .def(py::init<const TypedInferenceModel<T>&, size_t>(), py::arg("model"),
           py::arg("batch_size"))
      // an attribute holding a builtin, called like the method it stands for: step(x_t, out=None)
      .def_property_readonly("step", &TypedStream<T>::step_function)
      .def("reset", &TypedStream<T>::reset)
      .def("get_state", &TypedStream<T>::get_state)
      .def("set_state", &TypedStream<T>::set_state, py::arg("states"))
      .def_property_readonly("batch_size", &TypedStream<T>::batch_size);
  py::class_<TypedInferenceModel<T>>(m, model_name)
      .def(py::init<const py::list&>(), py::arg("layers"))
      .def("predict", &TypedInferenceModel<T>::predict, py::arg("X"))
      // How many scratch buffers wait for the next predict (see ScratchPool's bounds).
      .def_property_readonly("idle_scratch_buffers",
                             &TypedInferenceModel<T>::idle_scratch_buffers);
}

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
  py::object vh_keep;  // (a default array_t would be an allocation per call)
  T* vh = nullptr;
  if (!v_hat.is_none()) {
    auto vh_arr = checked<T>(v_hat, "v_hat", shape);
    vh = vh_arr.mutable_data();
    vh_keep = vh_arr;
  }
  // Pointers taken with the GIL (mutable_data() reads the flags), the update without it.
  const size_t n = size_t(params.size());
  T* pd = params.mutable_data();
  const T* gd = grads.data();
  T* md = ms.mutable_data();
  T* vd = vs.mutable_data();
  py::gil_scoped_release release;
  adam_update<T>(n, pd, gd, md, vd, vh, T(alpha), T(c1), T(c2), T(eps));
}

// An optimizer's state array, flushed in place (flush_subnormal_values).
template <typename T>
void flush_subnormal(py::handle state) {
  py::array a = py::reinterpret_borrow<py::array>(state);
  auto s = checked<T>(state, "state", std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  T* data = s.mutable_data();
  const size_t n = size_t(s.size());
  py::gil_scoped_release release;
  flush_subnormal_values<T>(n, data);
}

// GRU(recurrent_dropout>0): Keras-layout weights and per-gate masks (gru_masked.h).
template <typename T>
MaskedDims masked_dims(py::handle x, py::handle recurrent, bool reset_after) {
  if (!py::isinstance<py::array>(recurrent) ||
      py::reinterpret_borrow<py::array>(recurrent).ndim() != 2) {
    throw py::value_error("recurrent_kernel must be a 2-D array (H, 3H)");
  }
  const auto H = size_t(py::reinterpret_borrow<py::array>(recurrent).shape(0));
  if (H == 0) throw py::value_error("GRU units must be > 0");
  py::array xa = py::reinterpret_borrow<py::array>(x);
  const auto I = py::isinstance<py::array>(x) && xa.ndim() == 3 ? size_t(xa.shape(2)) : size_t(0);
  const auto [B, S] = input_dims(x, I);
  if (I == 0) throw py::value_error("x must have input_size > 0");
  return MaskedDims{B, S, I, H, reset_after};
}

template <typename T>
py::tuple masked_forward_train(py::handle x, py::handle h0, py::handle kernel,
                               py::handle recurrent, py::handle bias, py::handle input_masks,
                               py::handle recurrent_masks, bool reset_after) {
  const MaskedDims d = masked_dims<T>(x, recurrent, reset_after);
  const auto B = py::ssize_t(d.batch), S = py::ssize_t(d.steps), I = py::ssize_t(d.input_size),
             H = py::ssize_t(d.units);
  auto xa = checked<T>(x, "x", {B, S, I});
  auto h0a = checked<T>(h0, "h0", {B, H});
  auto ka = checked<T>(kernel, "kernel", {I, 3 * H});
  auto ra = checked<T>(recurrent, "recurrent_kernel", {H, 3 * H});
  auto ba = checked<T>(bias, "bias", gru_bias_shape(reset_after, H));
  auto ima = checked<T>(input_masks, "input_masks", {3, B, I});
  auto rma = checked<T>(recurrent_masks, "recurrent_masks", {3, B, H});
  auto out = empty<T>({B, S, H});
  auto h_last = empty<T>({B, H});
  auto gates = empty<T>({B, S, 3 * H});
  auto h_rec = empty<T>({B, S, H});
  T *po = out.mutable_data(), *ph = h_last.mutable_data(), *pg = gates.mutable_data(),
    *pr = h_rec.mutable_data();
  {
    py::gil_scoped_release release;
    gru_masked_forward_train<T>(d, xa.data(), h0a.data(), ka.data(), ra.data(), ba.data(),
                                ima.data(), rma.data(), po, ph, pg, pr);
  }
  return py::make_tuple(out, h_last, gates, h_rec);
}

template <typename T>
py::tuple masked_backward(py::handle x, py::handle h0, py::handle out, py::handle gates,
                          py::handle h_rec, py::handle kernel, py::handle recurrent,
                          py::handle input_masks, py::handle recurrent_masks, py::handle d_out,
                          py::handle d_h_last, bool reset_after, bool need_dx) {
  const MaskedDims d = masked_dims<T>(x, recurrent, reset_after);
  const auto B = py::ssize_t(d.batch), S = py::ssize_t(d.steps), I = py::ssize_t(d.input_size),
             H = py::ssize_t(d.units);
  auto xa = checked<T>(x, "x", {B, S, I});
  auto h0a = checked<T>(h0, "h0", {B, H});
  auto oa = checked<T>(out, "out", {B, S, H});
  auto ga = checked<T>(gates, "gates", {B, S, 3 * H});
  auto hra = checked<T>(h_rec, "h_rec", {B, S, H});
  auto ka = checked<T>(kernel, "kernel", {I, 3 * H});
  auto ra = checked<T>(recurrent, "recurrent_kernel", {H, 3 * H});
  auto ima = checked<T>(input_masks, "input_masks", {3, B, I});
  auto rma = checked<T>(recurrent_masks, "recurrent_masks", {3, B, H});
  py::object keep_dout, keep_dlast;
  const T* pdo = optional_data<T>(d_out, "d_out", {B, S, H}, &keep_dout);
  const T* pdl = optional_data<T>(d_h_last, "d_h_last", {B, H}, &keep_dlast);
  py::object dx = py::none();
  T* pdx = nullptr;
  if (need_dx) {
    auto dxa = empty<T>({B, S, I});
    pdx = dxa.mutable_data();
    dx = dxa;
  }
  auto dh0 = empty<T>({B, H});
  auto dk = empty<T>({I, 3 * H});
  auto dr = empty<T>({H, 3 * H});
  auto db = empty<T>(gru_bias_shape(reset_after, H));
  T *pdh0 = dh0.mutable_data(), *pdk = dk.mutable_data(), *pdr = dr.mutable_data(),
    *pdb = db.mutable_data();
  {
    py::gil_scoped_release release;
    gru_masked_backward<T>(d, xa.data(), h0a.data(), oa.data(), ga.data(), hra.data(), ka.data(),
                           ra.data(), ima.data(), rma.data(), pdo, pdl, pdx, pdh0, pdk, pdr, pdb);
  }
  return py::make_tuple(dx, dh0, dk, dr, db);
}

bool is_float32(py::handle x) {
  if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a NumPy array");
  return py::reinterpret_borrow<py::array>(x).dtype().equal(py::dtype::of<float>());
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
  d["threads"] = max_threads();
#else
  // A deliberate build without OpenMP (FASTGRU_OPENMP=OFF, or a compiler without it, such as
  // Apple clang): set_num_threads is accepted, but the kernels run on the calling thread.
  d["openmp"] = "disabled (single-threaded build)";
  d["cpu_threads"] = 1;
  d["threads"] = 1;
#endif
  d["adaptive_threads"] = adaptive_threads();
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
      .def("forward_train", &PackedGRU::forward_train, py::arg("x"), py::arg("h0"),
           py::arg("outputs") = true)
      .def("backward", &PackedGRU::backward, py::arg("x"), py::arg("h_prev"), py::arg("gates"),
           py::arg("h_rec"), py::arg("d_out"), py::arg("d_h_last"), py::arg("need_dx") = true)
      .def("update", &PackedGRU::update, py::arg("kernel"), py::arg("recurrent_kernel"),
           py::arg("bias"))
      .def_property_readonly("simd", &PackedGRU::simd)
      .def_property_readonly("latency_vectors", &PackedGRU::latency_vectors);
  bind_inference<float>(m, "InferenceModelFloat32", "StreamFloat32");
  bind_inference<double>(m, "InferenceModelFloat64", "StreamFloat64");
  m.def("adam_step", [](py::array p, py::handle g, py::handle m, py::handle v, py::handle v_hat,
                        double alpha, double c1, double c2, double eps) {
    if (p.dtype().equal(py::dtype::of<float>())) return adam_step<float>(p, g, m, v, v_hat, alpha, c1, c2, eps);
    adam_step<double>(p, g, m, v, v_hat, alpha, c1, c2, eps);
  });
  m.def("flush_subnormal", [](py::array state) {
    if (state.dtype().equal(py::dtype::of<float>())) return flush_subnormal<float>(state);
    flush_subnormal<double>(state);
  }, py::arg("state"));
  m.def("gru_masked_forward_train",
        [](py::handle x, py::handle h0, py::handle k, py::handle r, py::handle b, py::handle im,
           py::handle rm, bool reset_after) {
          if (is_float32(x)) return masked_forward_train<float>(x, h0, k, r, b, im, rm, reset_after);
          return masked_forward_train<double>(x, h0, k, r, b, im, rm, reset_after);
        },
        py::arg("x"), py::arg("h0"), py::arg("kernel"), py::arg("recurrent_kernel"),
        py::arg("bias"), py::arg("input_masks"), py::arg("recurrent_masks"),
        py::arg("reset_after"));
  m.def("gru_masked_backward",
        [](py::handle x, py::handle h0, py::handle out, py::handle gates, py::handle h_rec,
           py::handle k, py::handle r, py::handle im, py::handle rm, py::handle d_out,
           py::handle d_h_last, bool reset_after, bool need_dx) {
          if (is_float32(x))
            return masked_backward<float>(x, h0, out, gates, h_rec, k, r, im, rm, d_out,
                                          d_h_last, reset_after, need_dx);
          return masked_backward<double>(x, h0, out, gates, h_rec, k, r, im, rm, d_out,
                                         d_h_last, reset_after, need_dx);
        },
        py::arg("x"), py::arg("h0"), py::arg("out"), py::arg("gates"), py::arg("h_rec"),
        py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("input_masks"),
        py::arg("recurrent_masks"), py::arg("d_out"), py::arg("d_h_last"),
        py::arg("reset_after"), py::arg("need_dx") = true);
  m.def("config", &config);
  m.def("activation_names", &activation_names);
  m.def("checked_stream_reading",
        [](py::handle x_t, size_t batch, size_t features, bool float64) -> py::object {
          if (float64) return checked_stream_reading<double>(x_t, batch, features);
          return checked_stream_reading<float>(x_t, batch, features);
        },
        py::arg("x_t"), py::arg("batch"), py::arg("features"), py::arg("float64"));
  m.def("set_num_threads", [](long long n) {
    if (n < 1 || n > thread_limit()) {
      throw py::value_error("n must be between 1 and " + std::to_string(thread_limit()) +
                            " (4 threads per processor, at least 64); got " + std::to_string(n));
    }
    set_max_threads(int(n));
  });
  m.def("get_num_threads", &max_threads);
  m.def("thread_limit", &thread_limit);
  m.def("set_adaptive_threads", &set_adaptive_threads, py::arg("on"));
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
