// FlatBuffer: 64-byte aligned allocation so every view can be vector-loaded.
#include "core/flat_buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace tessera {

FlatBuffer::FlatBuffer(int64_t count) : size_(count) {
  TESSERA_CHECK(count >= 0, "negative buffer size ", count);
  const size_t bytes = ((static_cast<size_t>(count) * sizeof(float) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes == 0 ? 64 : bytes);
  data_.reset(static_cast<float*>(p));
}

void FlatBuffer::Free::operator()(float* p) const { std::free(p); }

float* FlatBuffer::at(int64_t offset) {
  TESSERA_CHECK(offset >= 0 && offset <= size_, "offset ", offset, " outside buffer of ", size_);
  return data_.get() + offset;
}

const float* FlatBuffer::at(int64_t offset) const {
  TESSERA_CHECK(offset >= 0 && offset <= size_, "offset ", offset, " outside buffer of ", size_);
  return data_.get() + offset;
}

void FlatBuffer::zero() {
  if (size_ > 0) std::memset(data_.get(), 0, static_cast<size_t>(size_) * sizeof(float));
}

}  // namespace tessera
