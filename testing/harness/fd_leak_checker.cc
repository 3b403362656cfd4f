#include "testing/harness/fd_leak_checker.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace harness {

std::set<int> OpenDescriptors() {
  std::set<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    return fds;
  int self = dirfd(dir);
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.')
      continue;
    int fd = atoi(entry->d_name);
    if (fd != self)
      fds.insert(fd);
  }
  closedir(dir);
  return fds;
}

std::string DescribeDescriptor(int fd) {
  char path[64];
  char target[PATH_MAX];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof(target) - 1);
  if (n < 0)
    return "?";
  return std::string(target, static_cast<size_t>(n));
}

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
