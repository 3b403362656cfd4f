#include "testing/harness/fd_leak_checker.h"

#include <string>

namespace harness {

void FdLeakChecker::OnTestStart(const ::testing::TestInfo&) {
  before_ = OpenDescriptors();
}

// googletest calls OnTestEnd of later-appended listeners first, while the
// test is still current, so a failure added here belongs to the test and is
// printed with it.
void FdLeakChecker::OnTestEnd(const ::testing::TestInfo&) {
  std::set<int> after = OpenDescriptors();
  std::string leaked;
  for (int fd : after) {
    if (before_.count(fd) == 0)
      leaked += "\n  leaked descriptor " + std::to_string(fd) + " -> " +
                DescribeDescriptor(fd);
  }
  if (!leaked.empty())
    ADD_FAILURE() << "the test left descriptors open:" << leaked;
}

}  // namespace harness
