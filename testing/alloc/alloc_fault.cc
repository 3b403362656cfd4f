#include "testing/alloc/alloc_fault.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include <atomic>

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t n, size_t size);
void* __libc_realloc(void* p, size_t size);
void __libc_free(void* p);
}

namespace {

// Plain thread-locals: no constructor, so nothing here allocates.
__thread long t_countdown = -1;
__thread long t_failures = 0;
std::atomic<long> g_live{0};

bool ShouldFail() {
  if (t_countdown < 0)
    return false;
  if (t_countdown-- > 0)
    return false;
  t_failures++;
  errno = ENOMEM;
  return true;
}

}  // namespace

namespace alloc_fault {

void FailAfter(long n) {
  t_countdown = n;
  t_failures = 0;
}

long Failures() {
  return t_failures;
}

long Live() {
  return g_live.load();
}

}  // namespace alloc_fault

#define EXPORTED __attribute__((visibility("default")))

extern "C" {

EXPORTED void* malloc(size_t size) {
  if (ShouldFail())
    return nullptr;
  void* p = __libc_malloc(size);
  if (p != nullptr)
    g_live++;
  return p;
}

EXPORTED void* calloc(size_t n, size_t size) {
  if (ShouldFail())
    return nullptr;
  void* p = __libc_calloc(n, size);
  if (p != nullptr)
    g_live++;
  return p;
}

EXPORTED void* realloc(void* old, size_t size) {
  if (old == nullptr)
    return malloc(size);
  if (size == 0) {
    free(old);
    return nullptr;
  }
  if (ShouldFail())
    return nullptr;  // `old` stays the caller's
  return __libc_realloc(old, size);
}

EXPORTED void free(void* p) {
  if (p == nullptr)
    return;
  g_live--;
  __libc_free(p);
}

}  // extern "C"
