/* Serving a policy on a make_socket socket, on the host's main thread.
 *
 * A request is one datagram with exactly one descriptor: the socket to
 * answer on (one end of a socket pair the client made for this request).
 * Answering there, never on the shared socket, is what lets any number of
 * client threads use one broker socket with no lock across the round
 * trip. */

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "imc/imc.h"
#include "plugin/broker/broker.h"
#include "plugin/broker/broker_wire.h"

struct BrokerServer {
  const BrokerPolicy* policy;
  BrokerLogFn log;
  void* user;
  PluginSocket* socket; /* served on the main thread */
  int fd;               /* served on `thread` */
  pthread_t thread;
  atomic_uint_least64_t requests;
  atomic_uint_least64_t malformed;
};

/* A reply socket must be a connected SOCK_SEQPACKET socket: anything else
 * (a pipe, a file) gets no answer. */
static bool is_reply_socket(int fd) {
  int type = 0;
  socklen_t len = sizeof(type);
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
         type == SOCK_SEQPACKET;
}

/* Handles one received request: `fds` are the descriptors that came with
 * it (the caller closes them afterwards). */
static void handle(BrokerServer* s,
                   const uint8_t* data,
                   size_t len,
                   const int* fds,
                   size_t num_fds) {
  if (num_fds != 1 || fds[0] < 0 || !is_reply_socket(fds[0])) {
    atomic_fetch_add(&s->malformed, 1);
    return;
  }
  uint8_t reply[BROKER_REPLY_MAX_BYTES];
  int fd = -1;
  BrokerDecision d;
  size_t n = broker_handle_request(s->policy, data, len, reply, &fd, &d);
  atomic_fetch_add(d.op == 0 ? &s->malformed : &s->requests, 1);
  struct NaClImcMsgIoVec iov = {reply, n};
  struct NaClImcMsgHdr hdr = {&iov, 1, &fd, fd >= 0 ? 1u : 0u, 0};
  /* Never wait: the reply socket is fresh and empty unless the client
   * filled it on purpose, and then it goes unanswered. */
  imc_sendmsg(fds[0], &hdr, IMC_NONBLOCK);
  if (fd >= 0)
    close(fd);
  if (s->log != NULL)
    s->log(&d, s->user);
}

static void on_request(PluginSocket* socket,
                       PluginMessage* m,
                       int error,
                       void* user) {
  (void)error;
  BrokerServer* s = user;
  if (m == NULL) {
    /* The end (the module closed, or a read failed): close ours too, so
     * that requests still queued in the kernel fail at once. */
    plugin_socket_close(socket);
    s->socket = NULL;
    return;
  }
  /* The message, and its descriptors, are freed for us afterwards. */
  handle(s, m->data, m->len, m->fds, m->num_fds);
}

static void* serve_thread(void* arg) {
  BrokerServer* s = arg;
  uint8_t buf[BROKER_REQUEST_MAX_BYTES + 1];
  int fds[2];
  for (;;) {
    struct NaClImcMsgIoVec iov = {buf, sizeof(buf)};
    struct NaClImcMsgHdr hdr = {&iov, 1, fds, 2, 0};
    int n = imc_recvmsg(s->fd, &hdr, 0);
    if (n < 0 && (errno == EMFILE || errno == ENFILE)) {
      /* The request was dropped (and its descriptors closed): its client
       * sees EPIPE. Go on serving the others. */
      atomic_fetch_add(&s->malformed, 1);
      continue;
    }
    if (n < 0 || (n == 0 && hdr.desc_length == 0 && hdr.flags == 0)) {
      /* Nothing more is served; requests still queued fail when
       * broker_server_free closes the socket. */
      shutdown(s->fd, SHUT_RDWR);
      return NULL;
    }
    if (hdr.flags & (RECVMSG_DATA_TRUNCATED | RECVMSG_DESC_TRUNCATED))
      atomic_fetch_add(&s->malformed, 1);
    else
      handle(s, buf, (size_t)n, fds, hdr.desc_length);
    for (size_t i = 0; i < hdr.desc_length; i++) {
      if (fds[i] >= 0)
        close(fds[i]);
    }
  }
}

int broker_serve_on_thread(const BrokerPolicy* policy,
                           BrokerLogFn log,
                           void* user,
                           BrokerServer** out) {
  if (policy == NULL || out == NULL) {
    errno = EINVAL;
    return -1;
  }
  BrokerServer* s = calloc(1, sizeof(*s));
  int pair[2];
  if (s == NULL || imc_socketpair(pair) != 0) {
    int e = errno;
    free(s);
    errno = e;
    return -1;
  }
  s->policy = policy;
  s->log = log;
  s->user = user;
  s->fd = pair[0];
  atomic_init(&s->requests, 0);
  atomic_init(&s->malformed, 0);
  int r = pthread_create(&s->thread, NULL, serve_thread, s);
  if (r != 0) {
    close(pair[0]);
    close(pair[1]);
    free(s);
    errno = r;
    return -1;
  }
  *out = s;
  return pair[1];
}

int broker_serve(PluginHost* host,
                 const BrokerPolicy* policy,
                 BrokerLogFn log,
                 void* user,
                 BrokerServer** out) {
  if (host == NULL || policy == NULL || out == NULL) {
    errno = EINVAL;
    return -1;
  }
  BrokerServer* s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -1;
  s->policy = policy;
  s->log = log;
  s->user = user;
  s->fd = -1;
  atomic_init(&s->requests, 0);
  atomic_init(&s->malformed, 0);
  int fd = plugin_make_socket(host, on_request, s, &s->socket);
  if (fd < 0) {
    int e = errno;
    free(s);
    errno = e;
    return -1;
  }
  *out = s;
  return fd;
}

void broker_server_free(BrokerServer* s) {
  if (s == NULL)
    return;
  if (s->fd < 0) {
    if (s->socket != NULL) /* not already closed at its end */
      plugin_socket_close(s->socket);
  } else {
    shutdown(s->fd, SHUT_RDWR); /* ends the thread's receive */
    pthread_join(s->thread, NULL);
    close(s->fd);
  }
  free(s);
}

uint64_t broker_server_requests(const BrokerServer* s) {
  return atomic_load(&((BrokerServer*)(uintptr_t)s)->requests);
}

uint64_t broker_server_malformed(const BrokerServer* s) {
  return atomic_load(&((BrokerServer*)(uintptr_t)s)->malformed);
}
