/* The host: its main-thread task queue, the built-in loop, cancellation of
 * synchronous waits, and the inbox that delivers pipe messages on the main
 * thread. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "plugin/host/host_internal.h"

PluginHost* plugin_host_new(const PluginHostOptions* options) {
  PluginHostOptions none = {0};
  if (options == NULL)
    options = &none;
  PluginHost* h = calloc(1, sizeof(*h));
  if (h == NULL)
    return NULL;
  h->main_thread = pthread_self();
  h->post_hook = options->post_hook;
  h->hook_user = options->hook_user;
  h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  h->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  h->cancel = srpc_cancel_new();
  int error = errno;
  SrpcSignatureError why = SRPC_SIGNATURE_OK;
  h->service = srpc_service_new(options->methods, options->num_methods,
                                options->methods_user, &why, NULL);
  if (h->service == NULL)
    error = why != SRPC_SIGNATURE_OK ? EINVAL : ENOMEM;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = h->wake_fd};
  if (h->wake_fd < 0 || h->epoll_fd < 0 || h->cancel == NULL ||
      h->service == NULL ||
      epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->wake_fd, &ev) != 0) {
    if (h->service != NULL)
      error = errno;
    srpc_service_free(h->service);
    srpc_cancel_free(h->cancel);
    if (h->epoll_fd >= 0)
      close(h->epoll_fd);
    if (h->wake_fd >= 0)
      close(h->wake_fd);
    free(h);
    errno = error;
    return NULL;
  }
  pthread_mutex_init(&h->mu, NULL);
  atomic_init(&h->quit, false);
  return h;
}

void plugin_host_free(PluginHost* h) {
  if (h == NULL)
    return;
  /* Tasks still queued run now: some of them release what the layer
   * holds for the embedder's objects. */
  plugin_host_run_until_idle(h);
  while (h->watches != NULL) {
    HostWatch* w = h->watches;
    h->watches = w->next;
    free(w);
  }
  srpc_service_free(h->service);
  srpc_cancel_free(h->cancel);
  close(h->epoll_fd);
  close(h->wake_fd);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

bool host_on_main_thread(const PluginHost* h) {
  return pthread_equal(pthread_self(), h->main_thread) != 0;
}

void host_post_task(PluginHost* h, HostTask* t) {
  t->next = NULL;
  pthread_mutex_lock(&h->mu);
  bool was_empty = h->head == NULL;
  if (h->tail != NULL)
    h->tail->next = t;
  else
    h->head = t;
  h->tail = t;
  /* Wake whoever runs the tasks once per empty-to-queued change: the
   * runner takes the whole list at a time. Under the lock, so that the
   * hook or the eventfd is never told after the host is freed. */
  if (was_empty) {
    if (h->post_hook != NULL) {
      h->post_hook(h->hook_user);
    } else {
      uint64_t one = 1;
      (void)!write(h->wake_fd, &one, sizeof(one));
    }
  }
  pthread_mutex_unlock(&h->mu);
}

int plugin_call_on_main_thread(PluginHost* h, PluginTask fn, void* arg) {
  if (h == NULL || fn == NULL)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  HostTask* t = malloc(sizeof(*t));
  if (t == NULL)
    return PLUGIN_ERROR_NO_MEMORY;
  t->fn = fn;
  t->arg = arg;
  t->embedded = false;
  host_post_task(h, t);
  return PLUGIN_OK;
}

size_t plugin_host_run_pending(PluginHost* h) {
  pthread_mutex_lock(&h->mu);
  HostTask* t = h->head;
  h->head = h->tail = NULL;
  pthread_mutex_unlock(&h->mu);
  size_t ran = 0;
  while (t != NULL) {
    HostTask* next = t->next;
    PluginTask fn = t->fn;
    void* arg = t->arg;
    /* An embedded node may be posted again by its own task: done with it
     * before the call. */
    if (!t->embedded)
      free(t);
    fn(arg);
    ran++;
    t = next;
  }
  return ran;
}

static void drain_wake(PluginHost* h) {
  uint64_t count;
  (void)!read(h->wake_fd, &count, sizeof(count));
}

int plugin_host_run(PluginHost* h) {
  if (!host_on_main_thread(h))
    return PLUGIN_ERROR_WRONG_THREAD;
  struct epoll_event events[16];
  while (!atomic_exchange(&h->quit, false)) {
    int n = epoll_wait(h->epoll_fd, events, 16, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return PLUGIN_ERROR_SYSTEM;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == h->wake_fd) {
        drain_wake(h);
        plugin_host_run_pending(h);
        continue;
      }
      /* Looked up for each event: an earlier callback of this batch may
       * have unwatched it. */
      for (HostWatch* w = h->watches; w != NULL; w = w->next) {
        if (w->fd == fd) {
          w->cb(fd, events[i].events, w->user);
          break;
        }
      }
    }
  }
  return PLUGIN_OK;
}

void plugin_host_quit(PluginHost* h) {
  atomic_store(&h->quit, true);
  uint64_t one = 1;
  (void)!write(h->wake_fd, &one, sizeof(one));
}

size_t plugin_host_run_until_idle(PluginHost* h) {
  size_t total = 0;
  for (;;) {
    if (h->post_hook == NULL)
      drain_wake(h);
    size_t n = plugin_host_run_pending(h);
    if (n == 0)
      return total;
    total += n;
  }
}

int plugin_host_watch_fd(PluginHost* h,
                         int fd,
                         uint32_t events,
                         PluginFdCallback cb,
                         void* user) {
  if (cb == NULL || fd < 0)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  HostWatch* w = calloc(1, sizeof(*w));
  if (w == NULL)
    return PLUGIN_ERROR_NO_MEMORY;
  w->fd = fd;
  w->cb = cb;
  w->user = user;
  struct epoll_event ev = {.events = events, .data.fd = fd};
  if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    free(w);
    return PLUGIN_ERROR_SYSTEM;
  }
  w->next = h->watches;
  h->watches = w;
  return PLUGIN_OK;
}

int plugin_host_unwatch_fd(PluginHost* h, int fd) {
  for (HostWatch** p = &h->watches; *p != NULL; p = &(*p)->next) {
    if ((*p)->fd == fd) {
      HostWatch* w = *p;
      *p = w->next;
      epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
      free(w);
      return PLUGIN_OK;
    }
  }
  return PLUGIN_ERROR_INVALID_ARGUMENT;
}

void plugin_host_cancel_waits(PluginHost* h) {
  srpc_cancel_signal(h->cancel);
}

void plugin_host_reset_cancel(PluginHost* h) {
  srpc_cancel_reset(h->cancel);
}

/* ---- Inbox ---- */

enum { kMessagesPerTask = 64 };

static void inbox_notify(void* user) {
  HostInbox* in = user;
  atomic_fetch_add(&in->refs, 1);
  host_post_task(in->host, &in->task);
}

static void inbox_free_pipe(HostInbox* in) {
  plugin_pipe_free(in->pipe);
  in->pipe = NULL;
}

/* The delivery task: a batch of messages, then the end if it came. */
static void inbox_drain(void* arg) {
  HostInbox* in = arg;
  in->in_drain = true;
  bool again = false;
  for (int i = 0; !in->closed; i++) {
    if (i == kMessagesPerTask) {
      again = true; /* let other tasks run; come back (still disarmed) */
      break;
    }
    PluginMessage m;
    int error = 0;
    int r = plugin_pipe_pop(in->pipe, &m, &error);
    if (r == 0)
      break;
    if (r < 0) {
      if (!in->close_reported) {
        in->close_reported = true;
        in->deliver(in, NULL, error);
      }
      break;
    }
    in->deliver(in, &m, 0);
    plugin_message_free(&m);
  }
  in->in_drain = false;
  if (in->closed && in->pipe != NULL)
    inbox_free_pipe(in);
  if (again && !in->closed) {
    host_post_task(in->host, &in->task); /* keeps this task's reference */
    return;
  }
  host_inbox_unref(in);
}

bool host_inbox_start(HostInbox* in,
                      PluginHost* host,
                      int fd,
                      const PluginPipeConfig* config) {
  in->host = host;
  in->task.fn = inbox_drain;
  in->task.arg = in;
  in->task.embedded = true;
  PluginPipeConfig c = *config;
  c.notify = inbox_notify;
  c.user = in;
  in->pipe = plugin_pipe_new(fd, &c);
  return in->pipe != NULL;
}

void host_inbox_close(HostInbox* in) {
  in->closed = true;
  if (!in->in_drain && in->pipe != NULL)
    inbox_free_pipe(in);
  host_inbox_unref(in);
}

void host_inbox_unref(HostInbox* in) {
  if (atomic_fetch_sub(&in->refs, 1) == 1)
    in->destroy(in);
}
