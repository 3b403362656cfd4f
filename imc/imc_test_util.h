// Helpers for imc's tests, fuzzers and helper processes.

#ifndef IMC_IMC_TEST_UTIL_H_
#define IMC_IMC_TEST_UTIL_H_

#include <stddef.h>

#include <string>
#include <vector>

#include "imc/imc.h"

namespace imc_test {

// Sends `bytes` with `fds` as one message. Returns imc_sendmsg's result.
int Send(int fd,
         const std::string& bytes,
         const std::vector<int>& fds = {},
         int flags = 0);

struct Received {
  int result = -1;  // imc_recvmsg's return value
  int error = 0;    // errno when result is -1
  std::string bytes;
  std::vector<int> fds;
  int flags = 0;

  void CloseFds();  // closes every received descriptor that is not -1
};

// Receives one message of at most `max_bytes` and `max_fds` descriptors.
Received Receive(int fd,
                 size_t max_bytes = 65536,
                 size_t max_fds = 16,
                 int flags = 0);

// True if `a` and `b` refer to the same open file (same device and inode).
bool SameFile(int a, int b);

// True if `fd` has FD_CLOEXEC set.
bool IsCloseOnExec(int fd);

}  // namespace imc_test

#endif  // IMC_IMC_TEST_UTIL_H_
