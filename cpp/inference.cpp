#include "inference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace fastgru {

namespace {
// Every activation the inference copy applies, by Keras name (Python's layers.ACTIVATIONS names
// the same set; a test checks it).
const std::pair<const char*, Activation> kActivations[] = {
    {"linear", Activation::linear}, {"relu", Activation::relu}, {"sigmoid", Activation::sigmoid},
    {"tanh", Activation::tanh},     {"softmax", Activation::softmax},
};
}  // namespace

std::vector<std::string> activation_names() {
  std::vector<std::string> names;
  for (const auto& entry : kActivations) names.emplace_back(entry.first);
  return names;
}

Activation parse_activation(const std::string& name) {
  std::string expected;
  for (const auto& entry : kActivations) {
    if (name == entry.first) return entry.second;
    expected += (expected.empty() ? "" : ", ") + std::string(entry.first);
  }
  throw std::invalid_argument("unknown activation '" + name + "'; expected one of " + expected);
}

namespace {

template <typename T>
void activate(Activation a, T* y, size_t n) {
  switch (a) {
    case Activation::linear:
      return;
    case Activation::relu:
      for (size_t o = 0; o < n; ++o) y[o] = y[o] > T(0) ? y[o] : T(0);
      return;
    case Activation::sigmoid:
      for (size_t o = 0; o < n; ++o) {  // no overflow for large |y|
        const T e = std::exp(-std::fabs(y[o]));
        y[o] = y[o] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
      }
      return;
    case Activation::tanh:
      for (size_t o = 0; o < n; ++o) y[o] = std::tanh(y[o]);
      return;
    case Activation::softmax: {
      const T top = *std::max_element(y, y + n);
      T sum = 0;
      for (size_t o = 0; o < n; ++o) sum += (y[o] = std::exp(y[o] - top));
      for (size_t o = 0; o < n; ++o) y[o] /= sum;
      return;
    }
  }
}

}  // namespace

// Below this many outputs a Dense layer runs dot products (one chain per output, split four
// ways); from it, scaled kernel rows that the compiler vectorises across the outputs.
constexpr size_t kDotProductMaxUnits = 4;

template <typename T>
void DenseLayer<T>::forward(const T* x, size_t rows, T* y) const {
  const T* K = kernel.data();
  for (size_t r = 0; r < rows; ++r) {
    const T* xr = x + r * inputs;
    T* yr = y + r * units;
    if (units < kDotProductMaxUnits) {
      // Few outputs (a forecast head): dot products, four partial sums to break the chain.
      for (size_t o = 0; o < units; ++o) {
        T s[4] = {0, 0, 0, 0};
        size_t k = 0;
        for (; k + 4 <= inputs; k += 4) {
          for (int j = 0; j < 4; ++j) s[j] += xr[k + j] * K[(k + j) * units + o];
        }
        for (; k < inputs; ++k) s[0] += xr[k] * K[k * units + o];
        yr[o] = bias[o] + ((s[0] + s[1]) + (s[2] + s[3]));
      }
    } else {
      // Many outputs: rows of the kernel scaled and added, a loop the compiler vectorises.
      std::memcpy(yr, bias.data(), units * sizeof(T));
      for (size_t k = 0; k < inputs; ++k) {
        const T v = xr[k];
        const T* kr = K + k * units;
        for (size_t o = 0; o < units; ++o) yr[o] += v * kr[o];
      }
    }
    activate(activation, yr, units);
  }
}

template <typename T>
InferenceModel<T>::InferenceModel(const KernelTable& table, std::vector<InferenceLayer<T>> layers)
    : table_(table), layers_(std::move(layers)) {
  if (layers_.empty() || !layers_.front().gru) {
    throw std::invalid_argument("an inference model must start with a GRU layer");
  }
  bool sequence = true;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const InferenceLayer<T>& layer = layers_[i];
    if (i > 0 && layer.inputs() != layers_[i - 1].outputs()) {
      throw std::invalid_argument("layer " + std::to_string(i) + " takes " +
                                  std::to_string(layer.inputs()) + " inputs but layer " +
                                  std::to_string(i - 1) + " gives " +
                                  std::to_string(layers_[i - 1].outputs()));
    }
    if (layer.gru) {
      if (!sequence) {
        throw std::invalid_argument("layer " + std::to_string(i) +
                                    " is a GRU after a GRU without return_sequences: it needs "
                                    "a sequence");
      }
      sequence = layer.return_sequences;
      state_sizes_.push_back(layer.gru->units);
    }
    timed_.push_back(sequence);
  }
}

template <typename T>
bool InferenceModel<T>::run_gru(const PackedWeights<T>& w, const T* x, const T* h0, size_t batch,
                                size_t steps, T* out, T* h_last) const {
  ForwardArgs<T> args{&w, x, h0, batch, steps, out, h_last, {nullptr, nullptr, nullptr},
                      max_threads()};
  return table_.kernels<T>().forward(args);
}

template <typename T>
bool InferenceModel<T>::predict(const T* x, size_t batch, size_t steps, T* out,
                                std::vector<T>& scratch) const {
  // Layer i < last writes buffer i % 2 (the last one writes out): each buffer as large as
  // the largest output written there.
  auto rows = [&](size_t i) { return timed_[i] ? batch * steps : batch; };
  size_t sizes[2] = {0, 0};
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    sizes[i % 2] = std::max(sizes[i % 2], rows(i) * layers_[i].outputs());
  }
  if (scratch.size() < sizes[0] + sizes[1]) scratch.resize(sizes[0] + sizes[1]);
  T* buffers[2] = {scratch.data(), scratch.data() + sizes[0]};

  const T* cur = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const InferenceLayer<T>& layer = layers_[i];
    T* dst = i + 1 == layers_.size() ? out : buffers[i % 2];
    if (layer.gru) {
      const bool keep_steps = layer.return_sequences;
      if (!run_gru(*layer.gru, cur, nullptr, batch, steps, keep_steps ? dst : nullptr,
                   keep_steps ? nullptr : dst)) {
        return false;
      }
    } else {
      layer.dense.forward(cur, rows(i), dst);
    }
    cur = dst;
  }
  return true;
}

template <typename T>
bool InferenceModel<T>::step(const T* x, size_t batch, T* const* states, T* out,
                             std::vector<T>& scratch) const {
  // Dense layer i < last writes buffer i % 2 (a GRU writes its state, the last layer out).
  size_t sizes[2] = {0, 0};
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    if (!layers_[i].gru) sizes[i % 2] = std::max(sizes[i % 2], batch * layers_[i].outputs());
  }
  if (scratch.size() < sizes[0] + sizes[1]) scratch.resize(sizes[0] + sizes[1]);
  T* buffers[2] = {scratch.data(), scratch.data() + sizes[0]};

  const T* cur = x;
  size_t k = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const InferenceLayer<T>& layer = layers_[i];
    const bool last = i + 1 == layers_.size();
    if (layer.gru) {
      // One step; the kernel reads h0 before it writes h_last, so both may be the state.
      T* h = states[k++];
      if (!run_gru(*layer.gru, cur, h, batch, 1, nullptr, h)) return false;
      if (last) std::memcpy(out, h, batch * layer.gru->units * sizeof(T));
      cur = h;
    } else {
      T* dst = last ? out : buffers[i % 2];
      layer.dense.forward(cur, batch, dst);
      cur = dst;
    }
  }
  return true;
}

template struct DenseLayer<float>;
template struct DenseLayer<double>;
template class InferenceModel<float>;
template class InferenceModel<double>;

}  // namespace fastgru
