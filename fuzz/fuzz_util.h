// Helpers shared by the fuzz targets.

#ifndef FUZZ_FUZZ_UTIL_H_
#define FUZZ_FUZZ_UTIL_H_

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cstdio>

namespace fuzz {

// Reads the input front to back; past the end every read yields 0.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(Byte() | Byte() << 8); }
  bool Done() const { return pos_ >= size_; }
  size_t Left() const { return size_ - pos_; }
  // Up to `n` bytes from the input; sets *got to how many there were.
  const uint8_t* Take(size_t n, size_t* got) {
    *got = n < Left() ? n : Left();
    const uint8_t* p = data_ + pos_;
    pos_ += *got;
    return p;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Invariant checks: a violation is a crash libFuzzer reports.
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

}  // namespace fuzz

#endif  // FUZZ_FUZZ_UTIL_H_
