/* Internal to imc/: shared by its source files, not part of the API. */

#ifndef IMC_IMC_INTERNAL_H_
#define IMC_IMC_INTERNAL_H_

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Sends one datagram of `iov` with `fds` attached (-1 entries become
 * placeholders). `sysflags` are MSG_* flags; MSG_NOSIGNAL is always added.
 * Retries on EINTR. Returns bytes sent or -1 with errno. */
ssize_t imc_internal_send(int fd,
                          struct iovec* iov,
                          size_t iovcnt,
                          const int* fds,
                          size_t num_fds,
                          int sysflags);

/* Receives one datagram into `iov` and at most `capacity` descriptors into
 * `fds` (placeholders come back as -1, extra descriptors are closed). Sets
 * *out_num_fds and *out_flags (RECVMSG_*). Retries on EINTR. Returns the
 * bytes stored, or -1 with errno (EMFILE when the kernel could not install
 * every descriptor: all of them are closed then). */
ssize_t imc_internal_recv(int fd,
                          struct iovec* iov,
                          size_t iovcnt,
                          int sysflags,
                          int* fds,
                          size_t capacity,
                          size_t* out_num_fds,
                          int* out_flags);

/* Creates a close-on-exec, sealable memfd (not executable where the kernel
 * knows how to say so). */
int imc_internal_memfd(const char* name);

/* Closes `fds[0..n)`, keeping errno. */
void imc_internal_close_all(const int* fds, size_t n);

#endif /* IMC_IMC_INTERNAL_H_ */
