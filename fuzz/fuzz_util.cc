#include "fuzz/fuzz_util.h"

#include <dirent.h>

namespace fuzz {

size_t CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    return 0;
  size_t n = 0;
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.')
      n++;
  }
  closedir(dir);
  return n - 1;
}

}  // namespace fuzz
