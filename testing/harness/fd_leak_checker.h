// A googletest listener that fails any test which ends with more open
// descriptors than it started with, naming each leaked descriptor and what it
// refers to (as /proc/self/fd shows it).

#ifndef TESTING_HARNESS_FD_LEAK_CHECKER_H_
#define TESTING_HARNESS_FD_LEAK_CHECKER_H_

#include <set>

#include "gtest/gtest.h"
#include "testing/harness/descriptors.h"

namespace harness {

class FdLeakChecker : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override;
  void OnTestEnd(const ::testing::TestInfo& info) override;

 private:
  std::set<int> before_;
};

}  // namespace harness

#endif  // TESTING_HARNESS_FD_LEAK_CHECKER_H_
