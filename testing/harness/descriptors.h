// The descriptors open in this process, as /proc/self/fd lists them. No
// googletest here: fuzzers and helper programs use it too.

#ifndef TESTING_HARNESS_DESCRIPTORS_H_
#define TESTING_HARNESS_DESCRIPTORS_H_

#include <stddef.h>

#include <set>
#include <string>

namespace harness {

// The descriptors open in this process right now.
std::set<int> OpenDescriptors();

// How many descriptors are open in this process right now.
size_t CountOpenDescriptors();

// What descriptor `fd` refers to ("pipe:[123]", "/dev/null", ...), or "?".
std::string DescribeDescriptor(int fd);

}  // namespace harness

#endif  // TESTING_HARNESS_DESCRIPTORS_H_
