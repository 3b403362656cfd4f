/* Modules: launch with a BoundSocket, the double connect, the control
 * channel, the module's service, messages, synchronous waits, exit. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "imc/imc.h"
#include "plugin/common/plugin_protocol.h"
#include "plugin/common/plugin_time.h"
#include "plugin/host/host_internal.h"

extern char** environ;

enum { kDefaultStartTimeoutMs = 10000, kMaxExtraChannels = 64 };

/* A channel with a thread serving it. */
typedef struct ServedChannel {
  struct ServedChannel* next;
  SrpcChannel* channel;
  int fd; /* owned by the channel; kept to shut it down */
  pthread_t thread;
  bool running;
} ServedChannel;

struct PluginModule {
  HostInbox inbox; /* first: the inbox callbacks find the module from it */
  PluginHost* host;
  PluginModuleCallbacks cb;
  pid_t pid;
  int pidfd;
  int address; /* the module's SocketAddress */
  SrpcService* control_service;
  ServedChannel control;
  ServedChannel service;
  pthread_mutex_t mu; /* below */
  pthread_cond_t cv;
  ServedChannel* extra; /* channels the module asked for */
  size_t num_extra;
  bool exited;
  int status;
  bool waiter_started;
  pthread_t waiter;
  bool freed; /* by the embedder: no more callbacks */
  PluginObjects* objects;
  HostTask exit_task;
};

static PluginModule* from_inbox(HostInbox* in) {
  return (PluginModule*)in;
}

/* ---- Main-thread deliveries ---- */

static void module_deliver(HostInbox* in, PluginMessage* msg, int error) {
  PluginModule* m = from_inbox(in);
  if (m->cb.on_message != NULL)
    m->cb.on_message(m, msg, error, m->cb.user);
}

static void module_destroy(HostInbox* in) {
  PluginModule* m = from_inbox(in);
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static void exit_task(void* arg) {
  PluginModule* m = arg;
  if (!m->freed && m->cb.on_exit != NULL)
    m->cb.on_exit(m, m->status, m->cb.user);
  host_inbox_unref(&m->inbox);
}

typedef struct LogTask {
  PluginModule* module;
  int level;
  char text[];
} LogTask;

static void log_task(void* arg) {
  LogTask* t = arg;
  PluginModule* m = t->module;
  if (!m->freed && m->cb.on_log != NULL)
    m->cb.on_log(m, t->level, t->text, m->cb.user);
  host_inbox_unref(&m->inbox);
  free(t);
}

typedef struct QuotaTask {
  PluginModule* module;
  size_t queued;
} QuotaTask;

static void quota_task(void* arg) {
  QuotaTask* t = arg;
  PluginModule* m = t->module;
  if (!m->freed && m->cb.on_quota != NULL)
    m->cb.on_quota(m, t->queued, m->cb.user);
  host_inbox_unref(&m->inbox);
  free(t);
}

static void module_over_quota(size_t queued, void* user) {
  PluginModule* m = from_inbox(user);
  QuotaTask* t = malloc(sizeof(*t));
  if (t == NULL)
    return; /* a notification only; the message itself is queued */
  t->module = m;
  t->queued = queued;
  atomic_fetch_add(&m->inbox.refs, 1);
  if (plugin_call_on_main_thread(m->host, quota_task, t) != PLUGIN_OK) {
    host_inbox_unref(&m->inbox);
    free(t);
  }
}

/* ---- Threads ---- */

static void* waiter_main(void* arg) {
  PluginModule* m = arg;
  int status = 0;
  pid_t r;
  while ((r = waitpid(m->pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r < 0)
    status = -1; /* reaped elsewhere (or SIGCHLD ignored): unknown */
  pthread_mutex_lock(&m->mu);
  m->exited = true;
  m->status = status;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  atomic_fetch_add(&m->inbox.refs, 1);
  m->exit_task.fn = exit_task;
  m->exit_task.arg = m;
  m->exit_task.embedded = true;
  host_post_task(m->host, &m->exit_task);
  return NULL;
}

static void* serve_main(void* arg) {
  ServedChannel* c = arg;
  srpc_channel_serve(c->channel);
  return NULL;
}

/* Takes `fd`. */
static bool serve_channel(ServedChannel* c,
                          int fd,
                          const SrpcService* s,
                          size_t max_message_bytes) {
  c->fd = fd;
  c->channel = srpc_channel_new(fd, s, max_message_bytes);
  if (c->channel == NULL)
    return false;
  if (pthread_create(&c->thread, NULL, serve_main, c) != 0) {
    srpc_channel_free(c->channel);
    c->channel = NULL;
    return false;
  }
  c->running = true;
  return true;
}

static void stop_channel(ServedChannel* c) {
  if (c->channel == NULL)
    return;
  if (c->running) {
    shutdown(c->fd, SHUT_RDWR); /* ends the loop whatever the peer does */
    pthread_join(c->thread, NULL);
    c->running = false;
  }
  srpc_channel_free(c->channel);
  c->channel = NULL;
}

/* ---- The host's control methods, for the module ---- */

static void host_log(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)out;
  PluginModule* m = user;
  size_t len = in[1].count;
  if (len > PLUGIN_MAX_LOG_BYTES)
    len = PLUGIN_MAX_LOG_BYTES;
  LogTask* t = malloc(sizeof(*t) + len + 1);
  if (t == NULL) {
    srpc_rpc_complete(rpc, SRPC_RESULT_NO_MEMORY);
    return;
  }
  t->module = m;
  t->level = in[0].u.ival;
  memcpy(t->text, in[1].u.str, len);
  t->text[len] = '\0';
  atomic_fetch_add(&m->inbox.refs, 1);
  if (plugin_call_on_main_thread(m->host, log_task, t) != PLUGIN_OK) {
    host_inbox_unref(&m->inbox);
    free(t);
    srpc_rpc_complete(rpc, SRPC_RESULT_NO_MEMORY);
    return;
  }
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void host_channel(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* user) {
  (void)in;
  PluginModule* m = user;
  pthread_mutex_lock(&m->mu);
  bool room = m->num_extra < kMaxExtraChannels && !m->freed;
  if (room)
    m->num_extra++;
  pthread_mutex_unlock(&m->mu);
  if (!room) {
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  int pair[2] = {-1, -1};
  ServedChannel* c = calloc(1, sizeof(*c));
  bool ok = c != NULL && imc_socketpair(pair) == 0;
  if (ok && !serve_channel(c, pair[0], m->host->service, 0)) {
    close(pair[1]); /* pair[0] went with the channel */
    ok = false;
  }
  if (!ok) {
    free(c);
    pthread_mutex_lock(&m->mu);
    m->num_extra--;
    pthread_mutex_unlock(&m->mu);
    srpc_rpc_complete(rpc, SRPC_RESULT_NO_MEMORY);
    return;
  }
  pthread_mutex_lock(&m->mu);
  c->next = m->extra;
  m->extra = c;
  pthread_mutex_unlock(&m->mu);
  out[0].u.hval = pair[1]; /* sent, then closed */
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static const SrpcMethod kHostControl[] = {
    {PLUGIN_HOST_LOG, host_log},
    {PLUGIN_HOST_CHANNEL, host_channel},
};

/* ---- Launch ---- */

PluginModule* host_module_new_unlaunched(PluginHost* host,
                                         const PluginModuleCallbacks* cb) {
  PluginModule* m = calloc(1, sizeof(*m));
  if (m == NULL)
    return NULL;
  m->control_service = srpc_service_new(kHostControl, 2, m, NULL, NULL);
  if (m->control_service == NULL) {
    free(m);
    return NULL;
  }
  m->host = host;
  m->cb = *cb;
  m->pidfd = -1;
  m->address = -1;
  m->inbox.deliver = module_deliver;
  m->inbox.destroy = module_destroy;
  atomic_init(&m->inbox.refs, 1);
  pthread_mutex_init(&m->mu, NULL);
  plugin_cond_init(&m->cv);
  return m;
}

SrpcService* host_module_control_service(PluginModule* m) {
  return m->control_service;
}

/* The environment for the child: the given one (or ours) with
 * PLUGIN_MODULE_FD=3 in place of any earlier value. */
static char** child_environment(const char* const* envp, char* entry) {
  const char* const* src = envp != NULL ? envp : (const char* const*)environ;
  size_t n = 0;
  while (src[n] != NULL)
    n++;
  char** env = calloc(n + 2, sizeof(char*));
  if (env == NULL)
    return NULL;
  size_t k = 0;
  size_t prefix = strlen(PLUGIN_MODULE_FD_ENV);
  for (size_t i = 0; i < n; i++) {
    if (strncmp(src[i], PLUGIN_MODULE_FD_ENV, prefix) == 0 &&
        src[i][prefix] == '=')
      continue;
    env[k++] = (char*)(uintptr_t)src[i];
  }
  env[k++] = entry;
  env[k] = NULL;
  return env;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child_exec(const PluginLaunchOptions* o,
                       char* const* argv,
                       char* const* envp,
                       int bound,
                       int report,
                       struct sock_filter* filter,
                       size_t filter_len) {
  int error = 0;
  sigset_t all;
  sigemptyset(&all);
  pthread_sigmask(SIG_SETMASK, &all, NULL);
  /* Move both descriptors above 3, then put the BoundSocket at 3: dup2
   * onto a different number clears close-on-exec there. */
  int r = fcntl(report, F_DUPFD_CLOEXEC, PLUGIN_MODULE_BOUND_FD + 1);
  int b = fcntl(bound, F_DUPFD_CLOEXEC, PLUGIN_MODULE_BOUND_FD + 1);
  if (r < 0 || b < 0 || dup2(b, PLUGIN_MODULE_BOUND_FD) < 0) {
    error = errno;
  } else if (syscall(SYS_close_range, PLUGIN_MODULE_BOUND_FD + 1, ~0u,
                     4u /* CLOSE_RANGE_CLOEXEC */) != 0) {
    /* Older kernels: mark them one by one, up to the descriptor limit. */
    struct rlimit lim;
    int max = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < INT32_MAX
                  ? (int)lim.rlim_cur
                  : 1 << 20;
    for (int fd = PLUGIN_MODULE_BOUND_FD + 1; fd < max; fd++)
      fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (error == 0 && o->before_exec != NULL)
    error = o->before_exec(o->before_exec_user);
  if (error == 0 && o->sandbox)
    error = host_sandbox_enter(filter, filter_len);
  if (error == 0) {
    execve(o->path, argv, envp);
    error = errno;
  }
  if (r < 0)
    r = report;
  (void)!write(r, &error, sizeof(error));
  _exit(127);
}

/* Starts the process; on success m->pid and m->pidfd are set. Returns 0 or
 * an errno (the exec's own when it failed). */
static int spawn(PluginModule* m, const PluginLaunchOptions* o, int bound) {
  char fd_entry[32];
  snprintf(fd_entry, sizeof(fd_entry), "%s=%d", PLUGIN_MODULE_FD_ENV,
           PLUGIN_MODULE_BOUND_FD);
  const char* default_argv[2] = {o->path, NULL};
  const char* const* argv = o->argv != NULL ? o->argv : default_argv;
  char** env = child_environment(o->envp, fd_entry);
  int report[2];
  if (env == NULL)
    return ENOMEM;
  /* Built before fork: the child only installs it. */
  struct sock_filter filter[HOST_SANDBOX_MAX_FILTER];
  size_t filter_len = 0;
  if (o->sandbox) {
    filter_len = host_sandbox_filter(filter, HOST_SANDBOX_MAX_FILTER);
    if (filter_len == 0) {
      free(env);
      return ENOSYS;
    }
  }
  if (pipe2(report, O_CLOEXEC) != 0) {
    int error = errno;
    free(env);
    return error;
  }
  pid_t pid = fork();
  if (pid == 0)
    child_exec(o, (char* const*)(uintptr_t)argv, env, bound, report[1], filter,
               filter_len);
  int error = pid < 0 ? errno : 0;
  close(report[1]);
  free(env);
  if (pid > 0) {
    int child_error = 0;
    ssize_t n;
    while ((n = read(report[0], &child_error, sizeof(child_error))) < 0 &&
           errno == EINTR) {
    }
    if (n != 0 && n != (ssize_t)sizeof(child_error)) {
      /* A short or failed read: whether exec worked is unknown. */
      kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
      }
      error = n < 0 ? errno : EIO;
    } else if (n == (ssize_t)sizeof(child_error)) {
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
      }
      error = child_error != 0 ? child_error : ECHILD;
    } else {
      m->pid = pid;
      m->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
      if (m->pidfd < 0) {
        error = errno;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
      }
    }
  }
  close(report[0]);
  return error;
}

static void kill_module(PluginModule* m) {
  if (m->pidfd >= 0)
    syscall(SYS_pidfd_send_signal, m->pidfd, SIGKILL, NULL, 0);
}

/* Ends every thread and channel; the process is killed if still there.
 * Leaves the inbox and the structure. */
static bool wait_exit(PluginModule* m, int ms);

/* A module whose control channel closes ends itself (its runtime does):
 * give it that chance, briefly, before the kill. */
enum { kGraceOnFreeMs = 200 };

static void teardown(PluginModule* m) {
  pthread_mutex_lock(&m->mu);
  bool exited = m->exited;
  pthread_mutex_unlock(&m->mu);
  if (!exited && m->waiter_started && m->control.channel != NULL) {
    shutdown(m->control.fd, SHUT_RDWR);
    exited = wait_exit(m, kGraceOnFreeMs);
  }
  if (!exited)
    kill_module(m);
  if (m->waiter_started) {
    pthread_join(m->waiter, NULL);
    m->waiter_started = false;
  }
  plugin_objects_free(m->objects); /* its proxies die, its exports go */
  m->objects = NULL;
  stop_channel(&m->control);
  stop_channel(&m->service);
  pthread_mutex_lock(&m->mu);
  ServedChannel* extra = m->extra;
  m->extra = NULL;
  pthread_mutex_unlock(&m->mu);
  while (extra != NULL) {
    ServedChannel* next = extra->next;
    stop_channel(extra);
    free(extra);
    extra = next;
  }
  srpc_service_free(m->control_service);
  m->control_service = NULL;
  if (m->pidfd >= 0)
    close(m->pidfd);
  m->pidfd = -1;
  if (m->address >= 0)
    close(m->address);
  m->address = -1;
}

static int from_connect_error(int error) {
  if (error == ETIMEDOUT)
    return PLUGIN_ERROR_START_TIMEOUT;
  if (error == EMFILE || error == ENFILE)
    return PLUGIN_ERROR_NO_DESCRIPTORS;
  if (error == ENOMEM || error == ENOBUFS)
    return PLUGIN_ERROR_NO_MEMORY;
  return PLUGIN_ERROR_HANDSHAKE; /* EPIPE: it closed or died */
}

static int from_srpc(int r) {
  switch (r) {
    case SRPC_RESULT_OK:
      return PLUGIN_OK;
    case SRPC_RESULT_TIMED_OUT:
      return PLUGIN_ERROR_TIMED_OUT;
    case SRPC_RESULT_CANCELLED:
      return PLUGIN_ERROR_CANCELLED;
    case SRPC_RESULT_INTERNAL:
      return PLUGIN_ERROR_CLOSED;
    case SRPC_RESULT_NO_MEMORY:
      return PLUGIN_ERROR_NO_MEMORY;
  }
  return PLUGIN_ERROR_HANDSHAKE;
}

int plugin_module_launch(PluginHost* host,
                         const PluginLaunchOptions* o,
                         PluginModule** out) {
  if (host == NULL || o == NULL || o->path == NULL || out == NULL)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  if (!host_on_main_thread(host))
    return PLUGIN_ERROR_WRONG_THREAD;
  int timeout =
      o->start_timeout_ms > 0 ? o->start_timeout_ms : kDefaultStartTimeoutMs;
  struct timespec deadline = plugin_deadline_after(timeout);

  PluginModule* m = host_module_new_unlaunched(host, &o->callbacks);
  if (m == NULL)
    return PLUGIN_ERROR_NO_MEMORY;

  int result = PLUGIN_OK;
  int sock[2] = {-1, -1};
  int msg[2] = {-1, -1};
  if (imc_makeboundsock(sock) != 0 || imc_socketpair(msg) != 0) {
    result = errno == EMFILE || errno == ENFILE ? PLUGIN_ERROR_NO_DESCRIPTORS
                                                : PLUGIN_ERROR_SYSTEM;
    goto fail;
  }
  m->address = sock[1];
  int error = spawn(m, o, sock[0]);
  close(sock[0]);
  sock[0] = -1;
  if (error != 0) {
    errno = error;
    result = PLUGIN_ERROR_SPAWN;
    goto fail;
  }
  if (pthread_create(&m->waiter, NULL, waiter_main, m) != 0) {
    /* Nobody would reap it: do it here. */
    kill_module(m);
    while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&m->mu);
    m->exited = true;
    pthread_mutex_unlock(&m->mu);
    result = PLUGIN_ERROR_NO_MEMORY;
    goto fail;
  }
  m->waiter_started = true;

  /* Connection 1: the control channel. */
  int fd = imc_connect_ex(m->address, IMC_CONNECT_CONFIRM,
                          plugin_ms_left(&deadline));
  if (fd < 0) {
    result = from_connect_error(errno);
    goto fail;
  }
  if (!serve_channel(&m->control, fd, m->control_service, 0)) {
    result = PLUGIN_ERROR_NO_MEMORY;
    goto fail;
  }
  /* Connection 2: the module's service (and the host's, for the module). */
  fd = imc_connect_ex(m->address, IMC_CONNECT_CONFIRM,
                      plugin_ms_left(&deadline));
  if (fd < 0) {
    result = from_connect_error(errno);
    goto fail;
  }
  if (!serve_channel(&m->service, fd, host->service, o->max_message_bytes)) {
    result = PLUGIN_ERROR_NO_MEMORY;
    goto fail;
  }
  /* The message channel, then start. */
  PluginPipeConfig config = {PLUGIN_PIPE_FRAMED, o->max_message_bytes, NULL,
                             module_over_quota, NULL};
  int host_end = msg[0];
  msg[0] = -1;
  if (!host_inbox_start(&m->inbox, host, host_end, &config)) {
    result = PLUGIN_ERROR_NO_MEMORY;
    goto fail;
  }
  SrpcCallOptions copt = {plugin_ms_left(&deadline), host->cancel};
  SrpcArg in = {0};
  in.type = SRPC_TYPE_HANDLE;
  in.u.hval = msg[1];
  SrpcArg version = {0};
  version.type = SRPC_TYPE_INT;
  int start = srpc_channel_lookup(m->control.channel, PLUGIN_CONTROL_START);
  int r = SRPC_RESULT_OK;
  if (start < 0)
    r = srpc_channel_discover_opt(m->control.channel, &copt);
  start = srpc_channel_lookup(m->control.channel, PLUGIN_CONTROL_START);
  if (r == SRPC_RESULT_OK && start < 0)
    r = SRPC_RESULT_BAD_RPC_NUMBER;
  copt.timeout_ms = plugin_ms_left(&deadline);
  if (r == SRPC_RESULT_OK)
    r = srpc_invoke_args_opt(m->control.channel, (uint32_t)start, &in, 1,
                             &version, 1, &copt);
  close(msg[1]);
  msg[1] = -1;
  if (r == SRPC_RESULT_OK && version.u.ival != PLUGIN_PROTOCOL_VERSION)
    r = SRPC_RESULT_PROTOCOL_MISMATCH;
  copt.timeout_ms = plugin_ms_left(&deadline);
  if (r == SRPC_RESULT_OK)
    r = srpc_channel_discover_opt(m->service.channel, &copt);
  if (r != SRPC_RESULT_OK) {
    result =
        r == SRPC_RESULT_TIMED_OUT ? PLUGIN_ERROR_START_TIMEOUT : from_srpc(r);
    if (result == PLUGIN_ERROR_CLOSED)
      result = PLUGIN_ERROR_HANDSHAKE;
    goto fail;
  }
  *out = m;
  return PLUGIN_OK;

fail:
  error = errno;
  for (int i = 0; i < 2; i++) {
    if (sock[i] >= 0 && sock[i] != m->address)
      close(sock[i]);
    if (msg[i] >= 0)
      close(msg[i]);
  }
  pthread_mutex_lock(&m->mu);
  m->freed = true;
  pthread_mutex_unlock(&m->mu);
  teardown(m);
  if (m->inbox.pipe != NULL) {
    host_inbox_close(&m->inbox);
  } else {
    host_inbox_unref(&m->inbox);
  }
  errno = error;
  return result;
}

pid_t plugin_module_pid(const PluginModule* m) {
  return m->pid;
}

int plugin_module_post(PluginModule* m,
                       const void* data,
                       size_t len,
                       const int* fds,
                       size_t num_fds) {
  if (m == NULL || m->inbox.pipe == NULL)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  return plugin_pipe_send(m->inbox.pipe, data, len, fds, num_fds);
}

size_t plugin_module_queued_bytes(PluginModule* m) {
  return plugin_pipe_queued_bytes(m->inbox.pipe);
}

size_t plugin_module_queued_messages(PluginModule* m) {
  return plugin_pipe_queued_messages(m->inbox.pipe);
}

void plugin_module_set_quota(PluginModule* m, size_t bytes) {
  plugin_pipe_set_quota(m->inbox.pipe, bytes);
}

int plugin_module_wait_message(PluginModule* m,
                               int timeout_ms,
                               PluginMessage* out) {
  if (m == NULL || out == NULL)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  if (!host_on_main_thread(m->host))
    return PLUGIN_ERROR_WRONG_THREAD;
  int error = 0;
  int r = plugin_pipe_pop_wait(m->inbox.pipe, out, &error, timeout_ms,
                               m->host->cancel);
  if (r == 1)
    return PLUGIN_OK;
  if (r == -1)
    return PLUGIN_ERROR_CLOSED;
  return -r;
}

SrpcChannel* plugin_module_channel(PluginModule* m) {
  return m->service.channel;
}

int plugin_module_call(PluginModule* m,
                       const char* name,
                       int timeout_ms,
                       const SrpcArg* in,
                       size_t num_in,
                       SrpcArg* out,
                       size_t num_out) {
  if (m == NULL || name == NULL)
    return SRPC_RESULT_INTERNAL;
  int n = srpc_channel_lookup(m->service.channel, name);
  if (n < 0)
    return SRPC_RESULT_BAD_RPC_NUMBER;
  SrpcCallOptions opt = {timeout_ms, m->host->cancel};
  return srpc_invoke_args_opt(m->service.channel, (uint32_t)n, in, num_in, out,
                              num_out, &opt);
}

/* Calls a runtime method on the control channel. */
static int control_call(PluginModule* m,
                        const char* signature,
                        int timeout_ms,
                        const SrpcArg* in,
                        size_t num_in) {
  int n = srpc_channel_lookup(m->control.channel, signature);
  if (n < 0)
    return SRPC_RESULT_BAD_RPC_NUMBER;
  SrpcCallOptions opt = {timeout_ms, m->host->cancel};
  return srpc_invoke_args_opt(m->control.channel, (uint32_t)n, in, num_in, NULL,
                              0, &opt);
}

int plugin_module_give_address(PluginModule* to,
                               const char* name,
                               PluginModule* of) {
  if (to == NULL || of == NULL || name == NULL ||
      strlen(name) > PLUGIN_MAX_ADDRESS_NAME)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  if (!host_on_main_thread(to->host))
    return PLUGIN_ERROR_WRONG_THREAD;
  SrpcArg in[2] = {{0}, {0}};
  in[0].type = SRPC_TYPE_STRING;
  in[0].u.str = (char*)(uintptr_t)name;
  in[0].count = (uint32_t)strlen(name);
  in[1].type = SRPC_TYPE_HANDLE;
  in[1].u.hval = of->address;
  int r =
      control_call(to, PLUGIN_CONTROL_ADDRESS, kDefaultStartTimeoutMs, in, 2);
  return r == SRPC_RESULT_OK               ? PLUGIN_OK
         : r == SRPC_RESULT_BAD_RPC_NUMBER ? PLUGIN_ERROR_HANDSHAKE
                                           : from_srpc(r);
}

int plugin_module_objects(PluginModule* m, PluginObjects** out) {
  if (m == NULL || out == NULL)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  if (!host_on_main_thread(m->host))
    return PLUGIN_ERROR_WRONG_THREAD;
  if (m->objects == NULL) {
    int pair[2];
    if (imc_socketpair(pair) != 0)
      return errno == EMFILE || errno == ENFILE ? PLUGIN_ERROR_NO_DESCRIPTORS
                                                : PLUGIN_ERROR_SYSTEM;
    PluginObjects* objects = plugin_objects_new(pair[0]);
    if (objects == NULL) {
      close(pair[1]);
      return PLUGIN_ERROR_NO_MEMORY;
    }
    SrpcArg in = {0};
    in.type = SRPC_TYPE_HANDLE;
    in.u.hval = pair[1];
    int r =
        control_call(m, PLUGIN_CONTROL_OBJECTS, kDefaultStartTimeoutMs, &in, 1);
    close(pair[1]);
    if (r != SRPC_RESULT_OK) {
      plugin_objects_free(objects);
      return r == SRPC_RESULT_BAD_RPC_NUMBER ? PLUGIN_ERROR_HANDSHAKE
                                             : from_srpc(r);
    }
    m->objects = objects;
  }
  *out = m->objects;
  return PLUGIN_OK;
}

/* Waits until the process has been reaped, or `ms` (< 0: no limit). */
static bool wait_exit(PluginModule* m, int ms) {
  struct timespec deadline = plugin_deadline_after(ms < 0 ? 0 : ms);
  pthread_mutex_lock(&m->mu);
  while (!m->exited) {
    if (ms < 0)
      pthread_cond_wait(&m->cv, &m->mu);
    else if (pthread_cond_timedwait(&m->cv, &m->mu, &deadline) == ETIMEDOUT)
      break;
  }
  bool exited = m->exited;
  pthread_mutex_unlock(&m->mu);
  return exited;
}

int plugin_module_shutdown(PluginModule* m, int grace_ms, int* wait_status) {
  if (m == NULL)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  if (!host_on_main_thread(m->host))
    return PLUGIN_ERROR_WRONG_THREAD;
  if (grace_ms < 0)
    grace_ms = 0;
  if (!wait_exit(m, 0)) {
    struct timespec deadline = plugin_deadline_after(grace_ms);
    if (grace_ms > 0) {
      /* Not cancellable: a shutdown must not be skipped by a raised
       * flag. */
      int n = srpc_channel_lookup(m->control.channel, PLUGIN_CONTROL_SHUTDOWN);
      SrpcCallOptions opt = {grace_ms, NULL};
      if (n >= 0)
        srpc_invoke_args_opt(m->control.channel, (uint32_t)n, NULL, 0, NULL, 0,
                             &opt);
    }
    if (!wait_exit(m, plugin_ms_left(&deadline))) {
      kill_module(m);
      wait_exit(m, -1);
    }
  }
  if (wait_status != NULL)
    *wait_status = m->status;
  return PLUGIN_OK;
}

void plugin_module_free(PluginModule* m) {
  if (m == NULL)
    return;
  pthread_mutex_lock(&m->mu);
  m->freed = true;
  pthread_mutex_unlock(&m->mu);
  teardown(m);
  host_inbox_close(&m->inbox);
}
