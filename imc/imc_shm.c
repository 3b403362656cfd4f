/* Shared memory objects: sealed-size memfds. */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imc/imc.h"
#include "imc/imc_internal.h"

#define SIZE_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

int imc_mem_obj_create(size_t size) {
  if (size == 0 || size % IMC_MEM_OBJ_GRANULARITY != 0) {
    errno = EINVAL;
    return -1;
  }
  if (size > (size_t)INT64_MAX) {
    errno = EFBIG;
    return -1;
  }
  int fd = imc_internal_memfd("imc-shm");
  if (fd < 0)
    return -1;
  /* ftruncate only sets the size: pages are allocated, zero-filled, when
   * first touched. Sealing the size last means no holder can change it. */
  if (ftruncate(fd, (off_t)size) != 0 ||
      fcntl(fd, F_ADD_SEALS, SIZE_SEALS) != 0) {
    imc_internal_close_all(&fd, 1);
    return -1;
  }
  return fd;
}

int imc_mem_obj_size(int fd, size_t* out_size) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    if (errno != EBADF)
      errno = EINVAL;
    return -1;
  }
  if ((seals & SIZE_SEALS) != SIZE_SEALS || out_size == NULL) {
    errno = EINVAL;
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0)
    return -1;
  *out_size = (size_t)st.st_size;
  return 0;
}
