#include "testing/harness/descriptors.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

size_t CountOpenDescriptors() {
  return OpenDescriptors().size();
}

}  // namespace harness
