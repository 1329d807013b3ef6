// One aligned, zero-initialised, move-only float buffer: parameters, gradients and optimizer
// state each live in one of these and layers get non-owning views (offsets) into it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <utility>

namespace tessera {

class FlatBuffer {
 public:
  FlatBuffer() = default;
  // Allocates count floats (64-byte aligned, zeroed, pages touched now rather than in the step;
  // successive buffers start at different offsets in a page, see flat_buffer.cpp).
  explicit FlatBuffer(int64_t count);
  FlatBuffer(FlatBuffer&& o) noexcept
      : raw_(std::move(o.raw_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  FlatBuffer& operator=(FlatBuffer&& o) noexcept {
    raw_ = std::move(o.raw_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    return *this;
  }
  FlatBuffer(const FlatBuffer&) = delete;
  FlatBuffer& operator=(const FlatBuffer&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }
  std::span<float> span() { return {data_, static_cast<size_t>(size_)}; }
  std::span<const float> span() const { return {data_, static_cast<size_t>(size_)}; }
  float* at(int64_t offset);
  const float* at(int64_t offset) const;
  void zero();

 private:
  struct Free {
    void operator()(char* p) const;
  };
  std::unique_ptr<char[], Free> raw_;  // the allocation; data_ is in it
  float* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace tessera
