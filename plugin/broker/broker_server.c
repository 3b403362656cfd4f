/* Serving a policy on a make_socket socket, on the host's main thread.
 *
 * A request is one datagram with exactly one descriptor: the socket to
 * answer on (one end of a socket pair the client made for this request).
 * Answering there, never on the shared socket, is what lets any number of
 * client threads use one broker socket with no lock across the round
 * trip. */

#include <errno.h>
#include <stdatomic.h>
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
  PluginSocket* socket;
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

static void on_request(PluginSocket* socket,
                       PluginMessage* m,
                       int error,
                       void* user) {
  (void)socket;
  (void)error;
  BrokerServer* s = user;
  if (m == NULL)
    return; /* the module closed its end: nothing more will come */
  if (m->num_fds != 1 || m->fds[0] < 0 || !is_reply_socket(m->fds[0])) {
    atomic_fetch_add(&s->malformed, 1);
    return; /* the message, and any descriptor in it, is freed for us */
  }
  atomic_fetch_add(&s->requests, 1);
  uint8_t reply[BROKER_REPLY_MAX_BYTES];
  int fd = -1;
  BrokerDecision d;
  size_t n = broker_handle_request(s->policy, m->data, m->len, reply, &fd, &d);
  if (d.op == 0)
    atomic_fetch_add(&s->malformed, 1);
  struct NaClImcMsgIoVec iov = {reply, n};
  struct NaClImcMsgHdr hdr = {&iov, 1, &fd, fd >= 0 ? 1u : 0u, 0};
  /* Never wait on the main thread: the reply socket is fresh and empty
   * unless the client filled it on purpose, and then it goes unanswered. */
  imc_sendmsg(m->fds[0], &hdr, IMC_NONBLOCK);
  if (fd >= 0)
    close(fd);
  if (s->log != NULL)
    s->log(&d, s->user);
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
  plugin_socket_close(s->socket);
  free(s);
}

uint64_t broker_server_requests(const BrokerServer* s) {
  return atomic_load(&((BrokerServer*)(uintptr_t)s)->requests);
}

uint64_t broker_server_malformed(const BrokerServer* s) {
  return atomic_load(&((BrokerServer*)(uintptr_t)s)->malformed);
}
