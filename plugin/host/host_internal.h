/* Internal to plugin/host: the host structure, its task queue, and the
 * inbox that turns a message pipe into main-thread callbacks. */

#ifndef PLUGIN_HOST_HOST_INTERNAL_H_
#define PLUGIN_HOST_HOST_INTERNAL_H_

#include <linux/filter.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "plugin/common/plugin_pipe.h"
#include "plugin/host/host_testing.h"
#include "plugin/host/plugin_host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A queued task. Nodes are malloc'd by plugin_call_on_main_thread, or
 * embedded in an object that posts at most one at a time (then `embedded`
 * keeps the loop from freeing it). */
typedef struct HostTask {
  struct HostTask* next;
  PluginTask fn;
  void* arg;
  bool embedded;
} HostTask;

typedef struct HostWatch {
  struct HostWatch* next;
  int fd;
  PluginFdCallback cb;
  void* user;
} HostWatch;

struct PluginHost {
  pthread_t main_thread;
  void (*post_hook)(void*);
  void* hook_user;
  pthread_mutex_t mu;
  HostTask* head;
  HostTask* tail;
  int wake_fd;  /* eventfd: tasks are waiting, or quit */
  int epoll_fd; /* built-in loop */
  atomic_bool quit;
  HostWatch* watches;
  SrpcCancel* cancel;
  SrpcService* service; /* the embedder's methods */
};

/* Any thread: queues an embedded node. */
void host_post_task(PluginHost* host, HostTask* task);

bool host_on_main_thread(const PluginHost* host);

/* Message pipe -> main-thread deliveries, shared by sockets and modules.
 * Holds references: the owner's and one per scheduled delivery task. */
typedef struct HostInbox {
  PluginHost* host;
  PluginPipe* pipe;
  HostTask task;
  atomic_int refs;
  bool closed;         /* by the owner: deliver nothing more */
  bool in_drain;       /* a delivery task is calling out */
  bool close_reported; /* the end was delivered */
  /* Main thread: one message, or (msg NULL) the end. */
  void (*deliver)(struct HostInbox* inbox, PluginMessage* msg, int error);
  /* When the last reference goes. */
  void (*destroy)(struct HostInbox* inbox);
} HostInbox;

/* Makes the pipe on `fd` (taken) and starts delivering. The owner has
 * set refs (to 1, its own) and the callbacks. Returns false if
 * that failed (fd closed). */
bool host_inbox_start(HostInbox* inbox,
                      PluginHost* host,
                      int fd,
                      const PluginPipeConfig* config);

/* Main thread: no delivery after this; frees the pipe (now or when the
 * running delivery returns) and drops the owner's reference. */
void host_inbox_close(HostInbox* inbox);

void host_inbox_unref(HostInbox* inbox);

/* The sandbox filter (host_sandbox.c): written into out[0..cap), returns
 * its length (0 if cap is too small or the architecture has none).
 * host_sandbox_enter installs it for the calling process and what it
 * executes; only system calls, so it may run between fork and exec.
 * Returns 0 or an errno. */
#define HOST_SANDBOX_MAX_FILTER 512
size_t host_sandbox_filter(struct sock_filter* out, size_t cap);
int host_sandbox_enter(struct sock_filter* filter, size_t n);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_HOST_HOST_INTERNAL_H_ */
