// Prints the descriptors it was started with, then exits with argv[1].

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    return 100;
  int self = dirfd(dir);
  printf("fds:");
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.' && atoi(entry->d_name) != self)
      printf(" %s", entry->d_name);
  }
  printf("\n");
  closedir(dir);
  return argc > 1 ? atoi(argv[1]) : 0;
}
