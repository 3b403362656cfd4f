/* make_socket: a socket pair whose host end delivers every datagram to a
 * main-thread callback. */

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "imc/imc.h"
#include "plugin/host/host_internal.h"

struct PluginSocket {
  HostInbox inbox; /* first: the inbox callbacks find the socket from it */
  PluginSocketCallback callback;
  void* user;
};

static void socket_deliver(HostInbox* in, PluginMessage* msg, int error) {
  PluginSocket* s = (PluginSocket*)in;
  s->callback(s, msg, error, s->user);
}

static void socket_destroy(HostInbox* in) {
  free(in);
}

int plugin_make_socket(PluginHost* host,
                       PluginSocketCallback callback,
                       void* user,
                       PluginSocket** out_socket) {
  if (host == NULL || callback == NULL) {
    errno = EINVAL;
    return -1;
  }
  PluginSocket* s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -1;
  int pair[2];
  if (imc_socketpair(pair) != 0) {
    int error = errno;
    free(s);
    errno = error;
    return -1;
  }
  s->callback = callback;
  s->user = user;
  s->inbox.deliver = socket_deliver;
  s->inbox.destroy = socket_destroy;
  atomic_init(&s->inbox.refs, 1);
  PluginPipeConfig config = {PLUGIN_PIPE_RAW, 0, NULL, NULL, NULL};
  if (!host_inbox_start(&s->inbox, host, pair[0], &config)) {
    close(pair[1]);
    free(s);
    errno = ENOMEM;
    return -1;
  }
  if (out_socket != NULL)
    *out_socket = s;
  return pair[1];
}

int plugin_socket_send(PluginSocket* s,
                       const void* data,
                       size_t len,
                       const int* fds,
                       size_t num_fds) {
  if (s == NULL || s->inbox.pipe == NULL)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  return plugin_pipe_send(s->inbox.pipe, data, len, fds, num_fds);
}

size_t plugin_socket_queued_bytes(PluginSocket* s) {
  return s->inbox.pipe != NULL ? plugin_pipe_queued_bytes(s->inbox.pipe) : 0;
}

void plugin_socket_close(PluginSocket* s) {
  if (s != NULL)
    host_inbox_close(&s->inbox);
}
