/* Internal to plugin/: one connected IMC socket carrying messages both
 * ways, with an unlimited send queue and a bounded receive queue.
 *
 * Sending never blocks: a message is sent at once if the socket takes it
 * without waiting and nothing is queued before it; otherwise it is copied
 * into the send queue, which a writer thread (started on first need)
 * drains with blocking sends. The queue has no limit; its size is
 * accounted and a soft quota raises a notification.
 *
 * A reader thread receives messages into the receive queue, which holds at
 * most PLUGIN_PIPE_RECEIVE_WINDOW bytes, _MESSAGES messages and
 * _DESCRIPTORS descriptors (or one message, if bigger): while
 * it is full the reader stops, the kernel buffer fills, and the peer's
 * messages wait in the peer's own send queue. A flood costs its sender. */

#ifndef PLUGIN_COMMON_PLUGIN_PIPE_H_
#define PLUGIN_COMMON_PLUGIN_PIPE_H_

#include <stdbool.h>
#include <stddef.h>

#include "plugin/common/plugin_message.h"
#include "srpc/srpc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PLUGIN_PIPE_RECEIVE_WINDOW (1024u * 1024)
#define PLUGIN_PIPE_RECEIVE_MESSAGES 4096
/* Descriptors received and not yet taken, beyond which the reader stops:
 * what one peer can make this process hold open (plus one message's). */
#define PLUGIN_PIPE_RECEIVE_DESCRIPTORS 64

typedef struct PluginPipe PluginPipe;

typedef enum PluginPipeMode {
  PLUGIN_PIPE_FRAMED, /* postMessage framing: any size up to a bound */
  PLUGIN_PIPE_RAW,    /* one datagram is one message (make_socket) */
} PluginPipeMode;

typedef struct PluginPipeConfig {
  PluginPipeMode mode;
  size_t max_message_bytes; /* framed: 0 = PLUGIN_DEFAULT_MAX_MESSAGE_BYTES */
  /* Called on the reader thread when a message is queued while the pipe is
   * armed, and when the pipe closes; disarms it (plugin_pipe_pop re-arms
   * when it finds the queue empty). Must not block. May be NULL. */
  void (*notify)(void* user);
  /* Called (on the posting thread, after the message is queued) when the
   * send queue grows past the quota; called again only after the queue has
   * fallen to half the quota or below. May be NULL. */
  void (*over_quota)(size_t queued_bytes, void* user);
  void* user;
  /* The pipe lives as long as the process (the module runtime's): its
   * threads are detached and plugin_pipe_free must not be called. */
  bool for_process_lifetime;
} PluginPipeConfig;

/* Takes `fd` (a connected IMC socket; closed on failure too) and starts the
 * reader. Returns NULL if out of memory or threads. */
PluginPipe* plugin_pipe_new(int fd, const PluginPipeConfig* config);

/* Shuts the socket, joins the threads, drops what is queued (closing its
 * descriptors) and frees. Not from the notify callback. */
void plugin_pipe_free(PluginPipe* pipe);

/* Queues a message; descriptors are duplicated (the caller keeps its
 * own). Never blocks. Returns PLUGIN_OK, PLUGIN_ERROR_CLOSED (the peer is
 * gone: nothing more can be delivered), _INVALID_ARGUMENT (too big, too
 * many descriptors, a bad descriptor), _NO_DESCRIPTORS or _NO_MEMORY. */
int plugin_pipe_send(PluginPipe* pipe,
                     const void* data,
                     size_t len,
                     const int* fds,
                     size_t num_fds);

/* Bytes and messages queued for sending and not yet taken by the socket. */
size_t plugin_pipe_queued_bytes(PluginPipe* pipe);
size_t plugin_pipe_queued_messages(PluginPipe* pipe);
void plugin_pipe_set_quota(PluginPipe* pipe, size_t bytes);

/* Takes the next received message. Returns 1 (a message in *out), 0 (none
 * now; the pipe is re-armed) or -1 (none, and none will come: the pipe is
 * closed; *close_error is 0 for an orderly close by the peer, else the
 * errno that ended it). */
int plugin_pipe_pop(PluginPipe* pipe, PluginMessage* out, int* close_error);

/* plugin_pipe_pop that waits up to `timeout_ms` (< 0: no limit) for a
 * message, or until `cancel` (may be NULL) is raised. Returns 1, -1 (as
 * above), or PLUGIN_ERROR_TIMED_OUT / PLUGIN_ERROR_CANCELLED negated. */
int plugin_pipe_pop_wait(PluginPipe* pipe,
                         PluginMessage* out,
                         int* close_error,
                         int timeout_ms,
                         SrpcCancel* cancel);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_COMMON_PLUGIN_PIPE_H_ */
