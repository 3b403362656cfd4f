// Helpers for tests that need real processes: spawn a helper executable
// that GN built next to the test binary, fork a child running a function,
// wait with a timeout, and describe how a child ended.

#ifndef TESTING_HARNESS_CHILD_PROCESS_H_
#define TESTING_HARNESS_CHILD_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace harness {

// The path of executable `name` in the directory of the running test binary
// (where GN puts a test's data_deps executables).
std::string HelperPath(const std::string& name);

// A descriptor handed to a child: parent's `from` appears as `to`.
using FdMapping = std::pair<int, int>;

// Starts `path` with `args` (argv[0] is `path`). Only stdin, stdout, stderr
// and the descriptors in `fds` are open in the new program. Returns the pid,
// or -1 if fork failed.
pid_t SpawnProcess(const std::string& path,
                   const std::vector<std::string>& args,
                   const std::vector<FdMapping>& fds = {});

// Forks a child that runs `body` and exits with its return value. The child
// must only do what is safe after fork in a multithreaded process.
pid_t ForkChild(const std::function<int()>& body);

struct ChildStatus {
  bool timed_out = false;  // killed with SIGKILL by WaitForChild
  bool exited = false;     // exited normally with `exit_code`
  int exit_code = -1;
  int signal = 0;  // the signal that ended it, if not `exited`

  // "exited with code 3", "killed by SIGSEGV", "timed out after 100 ms".
  std::string Describe() const;
};

// Waits up to `timeout_ms` for `pid` to end; past that, kills it with
// SIGKILL, reaps it and reports timed_out. Never leaves a zombie.
ChildStatus WaitForChild(pid_t pid, int timeout_ms);

// Success iff the child exited normally with `code`; otherwise the failure
// message names the signal that killed it, or the timeout.
::testing::AssertionResult ExitedWithCode(const ChildStatus& status, int code);

// Runs `path args...` with stdout and stderr captured; returns its status and
// fills `output` with what it printed.
ChildStatus RunAndCapture(const std::string& path,
                          const std::vector<std::string>& args,
                          int timeout_ms,
                          std::string* output);

}  // namespace harness

#endif  // TESTING_HARNESS_CHILD_PROCESS_H_
