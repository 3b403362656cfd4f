// Prints the descriptors it was started with, then exits with argv[1].

#include <stdio.h>
#include <stdlib.h>

#include "testing/harness/descriptors.h"

int main(int argc, char** argv) {
  printf("fds:");
  for (int fd : harness::OpenDescriptors())
    printf(" %d", fd);
  printf("\n");
  return argc > 1 ? atoi(argv[1]) : 0;
}
