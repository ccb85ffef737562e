// Inference through a chain of GRU and Dense layers with every buffer kept between calls:
// the path model.predict takes, and the one-reading step a stream runs. Compiled once, with
// baseline flags; each GRU goes through the active SIMD path's forward kernel.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace fastgru {

enum class Activation { linear, relu, sigmoid, tanh, softmax };

// "linear", "relu", "sigmoid", "tanh" or "softmax"; throws std::invalid_argument otherwise.
Activation parse_activation(const std::string& name);
// The names parse_activation accepts.
std::vector<std::string> activation_names();

// y = activation(x * kernel + bias) on rows, Keras layout: kernel (inputs, units).
template <typename T>
struct DenseLayer {
  std::vector<T> kernel;
  std::vector<T> bias;
  size_t inputs = 0, units = 0;
  Activation activation = Activation::linear;

  void forward(const T* x, size_t rows, T* y) const;
};

// One layer of an InferenceModel: a GRU (gru set) or a Dense layer.
template <typename T>
struct InferenceLayer {
  std::unique_ptr<PackedWeights<T>> gru;
  bool return_sequences = false;  // GRU only
  DenseLayer<T> dense;            // Dense only

  size_t inputs() const { return gru ? gru->input_size : dense.inputs; }
  size_t outputs() const { return gru ? gru->units : dense.units; }
};

// A model that starts with a GRU. Immutable once built, so any number of streams may share
// it; callers own the scratch (and serialise calls that share one).
template <typename T>
class InferenceModel {
 public:
  InferenceModel(const KernelTable& table, std::vector<InferenceLayer<T>> layers);

  size_t input_size() const { return layers_.front().inputs(); }
  size_t output_size() const { return layers_.back().outputs(); }
  // True when predict returns one output per step (no GRU drops the time axis).
  bool sequence_output() const { return timed_.back() != 0; }
  // Units of each GRU layer, in order: the shape of a stream's state.
  const std::vector<size_t>& state_sizes() const { return state_sizes_; }

  // x (B, T, I) -> out (B, T, O) if sequence_output() else (B, O).
  // Returns false if scratch memory could not be had.
  bool predict(const T* x, size_t batch, size_t steps, T* out, std::vector<T>& scratch) const;
  // One reading per stream: x (B, I) -> out (B, O); states[k] (B, units_k) advance in place.
  bool step(const T* x, size_t batch, T* const* states, T* out, std::vector<T>& scratch) const;

 private:
  bool run_gru(const PackedWeights<T>& w, const T* x, const T* h0, size_t batch, size_t steps,
               T* out, T* h_last) const;

  const KernelTable& table_;
  std::vector<InferenceLayer<T>> layers_;
  std::vector<size_t> state_sizes_;
  std::vector<char> timed_;  // timed_[i]: layer i's output keeps the time axis
};

// Scratch vectors for predict calls that share one model. A call borrows a vector (a Lease)
// and gives it back when the lease ends, so concurrent calls each run on their own buffer
// without waiting, and a buffer that has grown is reused instead of allocated and zero-filled
// again. What stays idle is bounded: one vector always (as one shared buffer was before), more
// only up to kMaxIdle vectors and kMaxIdleBytes in all; the rest are freed.
template <typename T>
class ScratchPool {
 public:
  static constexpr size_t kMaxIdle = 4;
  static constexpr size_t kMaxIdleBytes = size_t(256) << 20;

  ScratchPool() { idle_.reserve(kMaxIdle); }  // so that giving back never allocates

  // One borrowed vector (sized by its last use; empty when none was idle), given back to the
  // pool when the lease goes out of scope, exceptions included.
  class Lease {
   public:
    explicit Lease(ScratchPool& pool) : pool_(pool), scratch_(pool.take()) {}
    ~Lease() { pool_.give_back(std::move(scratch_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    std::vector<T>& scratch() { return scratch_; }

   private:
    ScratchPool& pool_;
    std::vector<T> scratch_;
  };

  size_t idle_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return idle_.size();
  }

 private:
  std::vector<T> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle_.empty()) return {};
    std::vector<T> scratch = std::move(idle_.back());
    idle_.pop_back();
    idle_bytes_ -= bytes(scratch);
    return scratch;
  }

  // Keeps `scratch` if the bounds allow; otherwise its memory is freed when the caller's
  // vector goes out of scope, outside the lock.
  void give_back(std::vector<T>&& scratch) {
    const size_t size = bytes(scratch);
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle_.empty() || (idle_.size() < kMaxIdle && idle_bytes_ + size <= kMaxIdleBytes)) {
      idle_.push_back(std::move(scratch));
      idle_bytes_ += size;
    }
  }

  static size_t bytes(const std::vector<T>& v) { return v.capacity() * sizeof(T); }

  mutable std::mutex mutex_;
  std::vector<std::vector<T>> idle_;
  size_t idle_bytes_ = 0;
};

}  // namespace fastgru
