/* The broker's client: one request datagram carrying a fresh reply socket,
 * one reply datagram on it. */

#include "plugin/broker/broker_client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "imc/imc.h"
#include "plugin/broker/broker_wire.h"

static atomic_int g_default = -1;

/* `path` made absolute into buf; returns its length, or 0 with errno. */
static size_t absolute(const char* path, char* buf, size_t cap) {
  size_t len = strlen(path);
  if (path[0] == '/') {
    if (len >= cap) {
      errno = ENAMETOOLONG;
      return 0;
    }
    memcpy(buf, path, len + 1);
    return len;
  }
  if (getcwd(buf, cap) == NULL)
    return 0;
  size_t cwd = strlen(buf);
  if (cwd + 1 + len >= cap) {
    errno = ENAMETOOLONG;
    return 0;
  }
  if (buf[cwd - 1] != '/')
    buf[cwd++] = '/';
  memcpy(buf + cwd, path, len + 1);
  return cwd + len;
}

/* One round trip. Returns the host's result (>= 0, or -errno); *fd gets
 * the descriptor that came with it (or -1). */
static int round_trip(int broker,
                      uint32_t op,
                      uint32_t flags,
                      uint32_t mode,
                      const char* path,
                      int* fd,
                      struct stat* st) {
  *fd = -1;
  if (path == NULL)
    return -EFAULT;
  if (path[0] == '\0')
    return -ENOENT; /* as open("") */
  char abs[PATH_MAX];
  size_t len = absolute(path, abs, sizeof(abs));
  if (len == 0)
    return -errno;
  uint8_t request[BROKER_REQUEST_MAX_BYTES];
  size_t n = broker_encode_request(op, flags, mode, abs, len, request);
  if (n == 0)
    return -ENAMETOOLONG;
  int pair[2];
  if (imc_socketpair(pair) != 0)
    return -errno;
  struct NaClImcMsgIoVec iov = {request, n};
  struct NaClImcMsgHdr msg = {&iov, 1, &pair[1], 1, 0};
  int sent = imc_sendmsg(broker, &msg, 0);
  int error = errno;
  close(pair[1]); /* the host holds the only other copy now */
  if (sent < 0) {
    close(pair[0]);
    return error == ECONNRESET || error == ENOTCONN ? -EPIPE : -error;
  }
  uint8_t reply[BROKER_REPLY_MAX_BYTES + 1];
  int got_fd = -1;
  struct NaClImcMsgIoVec riov = {reply, sizeof(reply)};
  struct NaClImcMsgHdr rmsg = {&riov, 1, &got_fd, 1, 0};
  int r = imc_recvmsg(pair[0], &rmsg, 0);
  error = errno;
  close(pair[0]);
  if (r < 0)
    return -error; /* EMFILE: the descriptor was closed for us */
  if (r == 0 && rmsg.desc_length == 0)
    return -EPIPE; /* the host went away without answering */
  int32_t result = 0;
  if ((rmsg.flags & (RECVMSG_DATA_TRUNCATED | RECVMSG_DESC_TRUNCATED)) ||
      broker_decode_reply(reply, (size_t)r, &result, st) != 0 ||
      (result >= 0 && op == BROKER_OP_OPEN && got_fd < 0) ||
      (got_fd >= 0 && (op != BROKER_OP_OPEN || result < 0))) {
    if (rmsg.desc_length > 0 && got_fd >= 0)
      close(got_fd);
    return -EPROTO;
  }
  *fd = got_fd;
  return result;
}

int broker_open_at(int broker, const char* path, int flags, mode_t mode) {
  int fd;
  int r = round_trip(broker, BROKER_OP_OPEN, (uint32_t)flags, (uint32_t)mode,
                     path, &fd, NULL);
  if (r < 0) {
    errno = -r;
    return -1;
  }
  return fd;
}

static int stat_at(int broker, const char* path, struct stat* st, int flags) {
  int fd;
  struct stat tmp;
  int r =
      round_trip(broker, BROKER_OP_STAT, (uint32_t)flags, 0, path, &fd, &tmp);
  if (r < 0) {
    errno = -r;
    return -1;
  }
  if (st != NULL)
    *st = tmp;
  return 0;
}

int broker_stat_at(int broker, const char* path, struct stat* st) {
  return stat_at(broker, path, st, 0);
}

int broker_lstat_at(int broker, const char* path, struct stat* st) {
  return stat_at(broker, path, st, AT_SYMLINK_NOFOLLOW);
}

int broker_access_at(int broker, const char* path, int amode) {
  int fd;
  int r =
      round_trip(broker, BROKER_OP_ACCESS, (uint32_t)amode, 0, path, &fd, NULL);
  if (r < 0) {
    errno = -r;
    return -1;
  }
  return 0;
}

void broker_set_default(int broker) {
  atomic_store(&g_default, broker);
}

int broker_default(void) {
  return atomic_load(&g_default);
}

int broker_open(const char* path, int flags, ...) {
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  return broker_open_at(broker_default(), path, flags, mode);
}

int broker_stat(const char* path, struct stat* st) {
  return broker_stat_at(broker_default(), path, st);
}

int broker_access(const char* path, int amode) {
  return broker_access_at(broker_default(), path, amode);
}
