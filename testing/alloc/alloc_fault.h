// Allocation-failure injection for tests: this source set replaces malloc,
// calloc, realloc and free in the test executable that links it (forwarding
// to glibc's own), so a test can make the n-th allocation of its thread
// fail and count what is still allocated. Only in builds without a
// sanitizer (a sanitizer's runtime owns malloc there).

#ifndef TESTING_ALLOC_ALLOC_FAULT_H_
#define TESTING_ALLOC_ALLOC_FAULT_H_

namespace alloc_fault {

// From now on, on the calling thread, `n` allocations succeed and the next
// one fails (returns NULL with errno ENOMEM); n < 0: none fail.
void FailAfter(long n);

// Allocations made to fail on this thread since the last FailAfter.
long Failures();

// Blocks allocated and not yet freed, in the whole process.
long Live();

}  // namespace alloc_fault

#endif  // TESTING_ALLOC_ALLOC_FAULT_H_
