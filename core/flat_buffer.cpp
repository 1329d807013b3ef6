// FlatBuffer: 64-byte aligned allocation so every view can be vector-loaded.
#include "core/flat_buffer.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace tessera {

namespace {
// Each buffer starts kStagger bytes on from the last one's start modulo a page (16 colours):
// the same element of the parameters, gradients, momentum and the fused update's buffers then
// falls in different L1 sets. Aligned alike (large blocks come page-aligned from mmap), a
// weight-gradient block's 6 rows a page apart in 5 buffers were 30 lines in one 8-way set.
constexpr size_t kStagger = 256, kColours = 16;
std::atomic<size_t> next_colour{0};
}  // namespace

FlatBuffer::FlatBuffer(int64_t count) : size_(count) {
  TESSERA_CHECK(count >= 0, "negative buffer size ", count);
  const size_t bytes = ((static_cast<size_t>(count) * sizeof(float) + 63) / 64) * 64;
  const size_t shift = next_colour.fetch_add(1) % kColours * kStagger;
  void* p = std::aligned_alloc(4096, (bytes + shift + 64 + 4095) / 4096 * 4096);
  if (p == nullptr) throw std::bad_alloc();
  raw_.reset(static_cast<char*>(p));
  data_ = reinterpret_cast<float*>(raw_.get() + shift);
  std::memset(data_, 0, bytes == 0 ? 64 : bytes);
}

void FlatBuffer::Free::operator()(char* p) const { std::free(p); }

float* FlatBuffer::at(int64_t offset) {
  TESSERA_CHECK(offset >= 0 && offset <= size_, "offset ", offset, " outside buffer of ", size_);
  return data_ + offset;
}

const float* FlatBuffer::at(int64_t offset) const {
  TESSERA_CHECK(offset >= 0 && offset <= size_, "offset ", offset, " outside buffer of ", size_);
  return data_ + offset;
}

void FlatBuffer::zero() {
  if (size_ > 0) std::memset(data_, 0, static_cast<size_t>(size_) * sizeof(float));
}

}  // namespace tessera
