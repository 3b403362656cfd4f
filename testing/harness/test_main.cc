// The main() of every test() binary.
//
// SIGPIPE is put back to its default disposition on purpose: a library send
// that forgets MSG_NOSIGNAL kills the test binary instead of passing unnoticed.

#include <signal.h>

#include "gtest/gtest.h"
#include "testing/harness/fd_leak_checker.h"

int main(int argc, char** argv) {
  // Ignored signals survive exec: undo whatever the parent set.
  signal(SIGPIPE, SIG_DFL);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(
      new harness::FdLeakChecker);
  return RUN_ALL_TESTS();
}
