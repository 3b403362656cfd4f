/* BoundSocket / SocketAddress: imc_makeboundsock, imc_connect, imc_accept.
 *
 * A bound socket is a socket pair. Connecting creates a new pair and sends
 * one end to the address in a one-byte request; accepting receives it.
 * docs/imc.md describes the bytes. */

#include <errno.h>
#include <limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "imc/imc.h"
#include "imc/imc_internal.h"

/* The request bytes, and the confirmation an acceptor sends back on the new
 * connection when asked for one. */
enum {
  kConnectRequest = 'c',
  kConfirmedConnectRequest = 'C',
  kConnectConfirmation = 'a',
};

int imc_makeboundsock(int sock_and_addr[2]) {
  if (imc_socketpair(sock_and_addr) != 0)
    return -1;
  /* Pending connect requests queue in the address end's send buffer. Ask for
   * the most the kernel allows (it caps the request at net.core.wmem_max and
   * doubles it), so the backlog is the kernel's, not an arbitrary one. */
  int size = INT_MAX / 2;
  (void)setsockopt(sock_and_addr[1], SOL_SOCKET, SO_SNDBUF, &size,
                   sizeof(size));
  /* Nothing is ever sent to an address. Shutting its read side also marks
   * it: accept refuses a socket that is shut for reading, so a connector
   * cannot hand in a copy of the address as its "connection". */
  (void)shutdown(sock_and_addr[1], SHUT_RD);
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to `timeout_ms` (negative: forever) for the acceptor's
 * confirmation on `fd` and consumes it. Returns 0 or -1 with errno. */
static int await_confirmation(int fd, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  struct pollfd pfd = {fd, POLLIN, 0};
  for (;;) {
    int wait = -1;
    if (timeout_ms >= 0) {
      int64_t left = deadline - now_ms();
      wait = left > 0 ? (int)(left < INT_MAX ? left : INT_MAX) : 0;
    }
    int ready = poll(&pfd, 1, wait);
    if (ready > 0)
      break;
    if (ready == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    if (errno != EINTR)
      return -1;
  }
  char byte = 0;
  struct iovec iov = {&byte, 1};
  size_t num_fds;
  int flags;
  int fds[1];
  ssize_t got =
      imc_internal_recv(fd, &iov, 1, MSG_DONTWAIT, fds, 1, &num_fds, &flags);
  if (got < 0)
    return -1;
  imc_internal_close_all(fds, num_fds);
  if (got == 0 && num_fds == 0) {
    errno = ECONNREFUSED; /* closed before anyone accepted */
    return -1;
  }
  if (got != 1 || byte != kConnectConfirmation || num_fds != 0 || flags != 0) {
    errno = EPROTO;
    return -1;
  }
  return 0;
}

int imc_connect_ex(int address, int flags, int timeout_ms) {
  if ((flags & ~(IMC_NONBLOCK | IMC_CONNECT_CONFIRM)) != 0) {
    errno = EINVAL;
    return -1;
  }
  int pair[2];
  if (imc_socketpair(pair) != 0)
    return -1;
  char byte = (flags & IMC_CONNECT_CONFIRM) ? kConfirmedConnectRequest
                                            : kConnectRequest;
  struct iovec iov = {&byte, 1};
  ssize_t sent = imc_internal_send(address, &iov, 1, &pair[1], 1,
                                   (flags & IMC_NONBLOCK) ? MSG_DONTWAIT : 0);
  imc_internal_close_all(&pair[1], 1);
  if (sent < 0) {
    /* The BoundSocket end is gone: nobody can ever accept. */
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
      errno = ECONNREFUSED;
    imc_internal_close_all(&pair[0], 1);
    return -1;
  }
  if ((flags & IMC_CONNECT_CONFIRM) &&
      await_confirmation(pair[0], timeout_ms) != 0) {
    imc_internal_close_all(&pair[0], 1);
    return -1;
  }
  return pair[0];
}

int imc_connect(int address) {
  return imc_connect_ex(address, 0, -1);
}

/* True if `fd` is a connected AF_UNIX SOCK_SEQPACKET socket that is not a
 * SocketAddress: something imc_sendmsg and imc_recvmsg can use. */
static bool is_connected_imc_socket(int fd) {
  int type = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_SEQPACKET)
    return false;
  struct sockaddr_storage peer;
  len = sizeof(peer);
  /* Fails with ENOTCONN for listening and unconnected sockets. */
  if (getpeername(fd, (struct sockaddr*)&peer, &len) != 0 ||
      len < sizeof(peer.ss_family) || peer.ss_family != AF_UNIX)
    return false;
  /* Shut for reading while its peer lives: a SocketAddress. (A connection
   * whose connector has since closed shows POLLHUP too, and is accepted:
   * what it sent before closing is still there to read.) */
  struct pollfd pfd = {fd, POLLRDHUP, 0};
  if (poll(&pfd, 1, 0) < 0)
    return false;
  return !((pfd.revents & POLLRDHUP) && !(pfd.revents & POLLHUP));
}

/* True if no connect request can reach `bound` any more: every address is
 * closed and no message with a byte in it is queued. (Zero-length datagrams,
 * which no connector sends, read exactly like end of stream; SIOCINQ counts
 * the queued bytes, so they cannot hide a real request behind them.) */
static bool no_request_can_arrive(int bound) {
  struct pollfd pfd = {bound, POLLIN | POLLRDHUP, 0};
  if (poll(&pfd, 1, 0) <= 0 || (pfd.revents & (POLLHUP | POLLRDHUP)) == 0)
    return false;
  int queued = 0;
  return ioctl(bound, SIOCINQ, &queued) != 0 || queued == 0;
}

int imc_accept(int bound) {
  for (;;) {
    char byte = 0;
    struct iovec iov = {&byte, 1};
    int fds[1] = {-1};
    size_t num_fds;
    int flags;
    ssize_t got =
        imc_internal_recv(bound, &iov, 1, 0, fds, 1, &num_fds, &flags);
    if (got < 0)
      return -1;
    if (got == 0 && num_fds == 0 && flags == 0) {
      /* End of stream, or a stray empty datagram from a peer that is not
       * playing by the rules: only the first ends accept. */
      if (no_request_can_arrive(bound)) {
        errno = EPIPE;
        return -1;
      }
      continue;
    }
    bool well_formed =
        got == 1 && flags == 0 && num_fds == 1 &&
        (byte == kConnectRequest || byte == kConfirmedConnectRequest) &&
        is_connected_imc_socket(fds[0]);
    if (well_formed && byte == kConfirmedConnectRequest) {
      char ack = kConnectConfirmation;
      struct iovec ack_iov = {&ack, 1};
      /* A fresh socket has room for one byte; failure means the connector
       * gave up and closed its end: nothing to hand out. */
      well_formed =
          imc_internal_send(fds[0], &ack_iov, 1, NULL, 0, MSG_DONTWAIT) == 1;
    }
    if (well_formed)
      return fds[0];
    imc_internal_close_all(fds, num_fds);
  }
}
