// One aligned, zero-initialised, move-only float buffer: parameters, gradients and optimizer
// state each live in one of these and layers get non-owning views (offsets) into it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

namespace tessera {

class FlatBuffer {
 public:
  FlatBuffer() = default;
  // Allocates count floats (64-byte aligned, zeroed, pages touched now rather than in the step).
  explicit FlatBuffer(int64_t count);
  FlatBuffer(FlatBuffer&&) noexcept = default;
  FlatBuffer& operator=(FlatBuffer&&) noexcept = default;
  FlatBuffer(const FlatBuffer&) = delete;
  FlatBuffer& operator=(const FlatBuffer&) = delete;

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  int64_t size() const { return size_; }
  std::span<float> span() { return {data_.get(), static_cast<size_t>(size_)}; }
  std::span<const float> span() const { return {data_.get(), static_cast<size_t>(size_)}; }
  float* at(int64_t offset);
  const float* at(int64_t offset) const;
  void zero();

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data_;
  int64_t size_ = 0;
};

}  // namespace tessera
