/* Socket pairs and the message calls: imc_socketpair, imc_sendmsg,
 * imc_recvmsg, and the descriptor handling they share with imc_connect.c. */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imc/imc.h"
#include "imc/imc_internal.h"

/* NaClImcMsgIoVec is laid out as struct iovec, so iov goes to the kernel
 * as it is, without a copy. */
_Static_assert(sizeof(struct NaClImcMsgIoVec) == sizeof(struct iovec),
               "iovec size");
_Static_assert(offsetof(struct NaClImcMsgIoVec, base) ==
                   offsetof(struct iovec, iov_base),
               "iovec base");
_Static_assert(offsetof(struct NaClImcMsgIoVec, length) ==
                   offsetof(struct iovec, iov_len),
               "iovec length");

/* SCM_RIGHTS cannot carry -1, so an invalid descriptor travels as a
 * placeholder: an empty memfd with these seals. A receiver turns any such
 * descriptor back into -1. */
#define PLACEHOLDER_SEALS \
  (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* Room for the most descriptors one message can carry, plus one: receiving
 * one more than the caller holds tells "too many for you" apart from "the
 * kernel could not install them". */
#define MAX_RECEIVED (IMC_MAX_DESCRIPTORS + 1)

void imc_internal_close_all(const int* fds, size_t n) {
  int saved = errno;
  for (size_t i = 0; i < n; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
  }
  errno = saved;
}

int imc_internal_memfd(const char* name) {
#ifdef MFD_NOEXEC_SEAL
  int fd =
      memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
  if (fd >= 0 || errno != EINVAL)
    return fd;
#endif
  return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

static int make_placeholder(void) {
  int fd = imc_internal_memfd("imc-invalid-descriptor");
  if (fd < 0)
    return -1;
  if (fcntl(fd, F_ADD_SEALS, PLACEHOLDER_SEALS) != 0) {
    imc_internal_close_all(&fd, 1);
    return -1;
  }
  return fd;
}

static bool is_placeholder(int fd) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & PLACEHOLDER_SEALS) != PLACEHOLDER_SEALS)
    return false;
  struct stat st;
  return fstat(fd, &st) == 0 && st.st_size == 0;
}

ssize_t imc_internal_send(int fd,
                          struct iovec* iov,
                          size_t iovcnt,
                          const int* fds,
                          size_t num_fds,
                          int sysflags) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * IMC_MAX_DESCRIPTORS)];
  } control;
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = iovcnt;
  int placeholder = -1;
  if (num_fds > 0) {
    mh.msg_control = control.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * num_fds);
    memset(control.buf, 0, mh.msg_controllen);
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&mh);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * num_fds);
    unsigned char* data = CMSG_DATA(cmsg);
    for (size_t i = 0; i < num_fds; i++) {
      int d = fds[i];
      if (d == IMC_INVALID_DESCRIPTOR) {
        if (placeholder < 0 && (placeholder = make_placeholder()) < 0)
          return -1;
        d = placeholder;
      }
      memcpy(data + i * sizeof(int), &d, sizeof(int));
    }
  }
  ssize_t sent;
  do {
    sent = sendmsg(fd, &mh, sysflags | MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (placeholder >= 0)
    imc_internal_close_all(&placeholder, 1);
  return sent;
}

/* Copies the descriptors of every SCM_RIGHTS message in `mh` to `out`;
 * returns how many. */
static size_t collect_descriptors(struct msghdr* mh, int* out) {
  size_t n = 0;
  for (struct cmsghdr* cmsg = CMSG_FIRSTHDR(mh); cmsg != NULL;
       cmsg = CMSG_NXTHDR(mh, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
      continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(cmsg);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, data + i * sizeof(int), sizeof(int));
      if (n < MAX_RECEIVED)
        out[n++] = fd;
      else
        close(fd);
    }
  }
  return n;
}

ssize_t imc_internal_recv(int fd,
                          struct iovec* iov,
                          size_t iovcnt,
                          int sysflags,
                          int* fds,
                          size_t capacity,
                          size_t* out_num_fds,
                          int* out_flags) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * MAX_RECEIVED)];
  } control;
  /* The kernel installs at most (controllen - header) / sizeof(int)
   * descriptors. CMSG_LEN, not CMSG_SPACE: its rounding would let one more
   * in than `room`. */
  size_t room =
      (capacity < IMC_MAX_DESCRIPTORS ? capacity : IMC_MAX_DESCRIPTORS) + 1;
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = iovcnt;
  mh.msg_control = control.buf;
  mh.msg_controllen = CMSG_LEN(sizeof(int) * room);
  ssize_t got;
  /* ECONNRESET on receive means only that our own sends went unread when
   * the peer closed; the kernel reports it once, ahead of whatever is still
   * queued for us. Retrying returns that data, then end of stream. */
  do {
    got = recvmsg(fd, &mh, sysflags | MSG_CMSG_CLOEXEC);
  } while (got < 0 && (errno == EINTR || errno == ECONNRESET));
  *out_num_fds = 0;
  *out_flags = 0;
  if (got < 0)
    return -1;

  int received[MAX_RECEIVED];
  size_t n = collect_descriptors(&mh, received);
  if ((mh.msg_flags & MSG_CTRUNC) && n < room) {
    /* Fewer than we had room for, yet truncated: the kernel failed to
     * install the rest (RLIMIT_NOFILE). A message missing descriptors is
     * not the message that was sent: drop it whole. */
    imc_internal_close_all(received, n);
    errno = EMFILE;
    return -1;
  }
  size_t keep = n;
  if (n > capacity) {
    keep = capacity;
    imc_internal_close_all(received + keep, n - keep);
    *out_flags |= RECVMSG_DESC_TRUNCATED;
  }
  if (mh.msg_flags & MSG_TRUNC)
    *out_flags |= RECVMSG_DATA_TRUNCATED;
  for (size_t i = 0; i < keep; i++) {
    fds[i] = received[i];
    if (is_placeholder(received[i])) {
      close(received[i]);
      fds[i] = IMC_INVALID_DESCRIPTOR;
    }
  }
  *out_num_fds = keep;
  return got;
}

int imc_socketpair(int pair[2]) {
  if (pair == NULL) {
    errno = EINVAL;
    return -1;
  }
  return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair);
}

static bool valid_header(const struct NaClImcMsgHdr* msg) {
  return msg != NULL && msg->iov_length <= IMC_MAX_IOVECS &&
         (msg->iov != NULL || msg->iov_length == 0) &&
         (msg->descv != NULL || msg->desc_length == 0);
}

int imc_sendmsg(int fd, const struct NaClImcMsgHdr* msg, int flags) {
  if (!valid_header(msg) || msg->desc_length > IMC_MAX_DESCRIPTORS ||
      (flags & ~IMC_NONBLOCK) != 0) {
    errno = EINVAL;
    return -1;
  }
  size_t total = 0;
  for (size_t i = 0; i < msg->iov_length; i++) {
    if (msg->iov[i].length > IMC_MAX_DATA_BYTES - total) {
      errno = EMSGSIZE;
      return -1;
    }
    total += msg->iov[i].length;
  }
  if (total == 0 && msg->desc_length == 0) {
    errno = EINVAL;
    return -1;
  }
  ssize_t sent = imc_internal_send(fd, (struct iovec*)msg->iov, msg->iov_length,
                                   msg->descv, msg->desc_length,
                                   (flags & IMC_NONBLOCK) ? MSG_DONTWAIT : 0);
  return (int)sent;
}

int imc_recvmsg(int fd, struct NaClImcMsgHdr* msg, int flags) {
  if (!valid_header(msg) || (flags & ~IMC_NONBLOCK) != 0) {
    errno = EINVAL;
    return -1;
  }
  size_t num_fds = 0;
  int out_flags = 0;
  ssize_t got =
      imc_internal_recv(fd, (struct iovec*)msg->iov, msg->iov_length,
                        (flags & IMC_NONBLOCK) ? MSG_DONTWAIT : 0, msg->descv,
                        msg->desc_length, &num_fds, &out_flags);
  if (got < 0)
    return -1;
  msg->desc_length = num_fds;
  msg->flags = out_flags;
  return (int)got;
}
