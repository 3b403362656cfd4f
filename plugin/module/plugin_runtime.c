/* The module runtime: accepts the host's connections, answers start-up,
 * serves the module's methods, and carries messages. One per process. */

#include "plugin/module/plugin_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "imc/imc.h"
#include "plugin/common/plugin_pipe.h"
#include "plugin/common/plugin_protocol.h"
#include "plugin/common/plugin_time.h"

typedef struct PendingPost {
  struct PendingPost* next;
  uint8_t* data;
  size_t len;
  int* fds;
  size_t num_fds;
} PendingPost;

typedef struct NamedAddress {
  struct NamedAddress* next;
  char* name;
  int fd;
} NamedAddress;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC */
  bool initialized;
  bool started;
  PluginRuntimeConfig config;
  int bound;
  SrpcService* control_service;
  SrpcService* service;
  SrpcChannel* control;
  SrpcChannel* host;
  PluginPipe* pipe;
  PendingPost* pending_head;
  PendingPost* pending_tail;
  size_t pending_bytes;
  size_t quota;
  NamedAddress* addresses;
  PluginObjects* objects;
  PluginObject* root;
} rt = {PTHREAD_MUTEX_INITIALIZER};

/* With rt.mu held: waits until the module is started, or the deadline
 * (NULL: none). Returns whether it is. */
static bool wait_started_locked(const struct timespec* deadline) {
  while (!rt.started) {
    if (deadline == NULL)
      pthread_cond_wait(&rt.cv, &rt.mu);
    else if (pthread_cond_timedwait(&rt.cv, &rt.mu, deadline) == ETIMEDOUT)
      break;
  }
  return rt.started;
}

/* ---- Channels served by detached threads ---- */

static void* serve_main(void* arg) {
  srpc_channel_serve(arg);
  return NULL;
}

/* In coverage builds, the profile runtime's writer: _exit skips the exit
 * handlers that would call it. */
extern int __llvm_profile_write_file(void) __attribute__((weak));

__attribute__((noreturn)) static void end_process(void) {
  if (rt.config.on_shutdown != NULL)
    rt.config.on_shutdown(rt.config.shutdown_user);
  if (__llvm_profile_write_file != NULL)
    __llvm_profile_write_file();
  _exit(0);
}

/* The control channel's loop: when it ends the host is gone (or cut the
 * module off), and the module ends too, as a module without its host has
 * nobody to serve. */
static void* control_main(void* arg) {
  srpc_channel_serve(arg);
  end_process();
}

static bool start_detached(void* (*fn)(void*), SrpcChannel* ch) {
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  bool ok = pthread_create(&t, &attr, fn, ch) == 0;
  pthread_attr_destroy(&attr);
  return ok;
}

/* ---- Messages ---- */

static void* message_main(void* arg) {
  PluginPipe* pipe = arg;
  for (;;) {
    PluginMessage m;
    int r = plugin_pipe_pop_wait(pipe, &m, NULL, -1, NULL);
    if (r != 1) {
      rt.config.on_message(NULL, rt.config.message_user); /* the end */
      return NULL;
    }
    rt.config.on_message(&m, rt.config.message_user);
    plugin_message_free(&m);
  }
}

static void over_quota(size_t queued, void* user) {
  (void)user;
  if (rt.config.on_quota != NULL)
    rt.config.on_quota(queued, rt.config.quota_user);
}

/* ---- Control methods (the host calls them) ---- */

static void control_start(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  pthread_mutex_lock(&rt.mu);
  if (rt.started || in[0].u.hval < 0) {
    pthread_mutex_unlock(&rt.mu);
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  PluginPipeConfig config = {PLUGIN_PIPE_FRAMED,
                             rt.config.max_message_bytes,
                             NULL,
                             over_quota,
                             NULL,
                             true};
  PluginPipe* pipe = plugin_pipe_new(in[0].u.hval, &config);
  in[0].u.hval = -1; /* the pipe has it (closed if that failed) */
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  bool ok =
      pipe != NULL && (rt.config.on_message == NULL ||
                       pthread_create(&t, &attr, message_main, pipe) == 0);
  pthread_attr_destroy(&attr);
  if (!ok) {
    /* A pipe for the process's lifetime is never freed; the host fails the
     * launch on this answer and ends the process. */
    pthread_mutex_unlock(&rt.mu);
    srpc_rpc_complete(rpc, SRPC_RESULT_NO_MEMORY);
    return;
  }
  /* What was posted before start goes first, in order (with no quota
   * yet: its notification was given when it was posted). */
  while (rt.pending_head != NULL) {
    PendingPost* p = rt.pending_head;
    rt.pending_head = p->next;
    plugin_pipe_send(pipe, p->data, p->len, p->fds, p->num_fds);
    for (size_t i = 0; i < p->num_fds; i++) {
      if (p->fds[i] >= 0)
        close(p->fds[i]);
    }
    free(p->fds);
    free(p->data);
    free(p);
  }
  rt.pending_tail = NULL;
  rt.pending_bytes = 0;
  plugin_pipe_set_quota(pipe, rt.quota);
  rt.pipe = pipe;
  rt.started = true;
  pthread_cond_broadcast(&rt.cv);
  pthread_mutex_unlock(&rt.mu);
  out[0].u.ival = PLUGIN_PROTOCOL_VERSION;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void control_shutdown(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  (void)out;
  (void)u;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
  end_process();
}

static void control_address(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  if (in[0].count > PLUGIN_MAX_ADDRESS_NAME) {
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  NamedAddress* a = calloc(1, sizeof(*a));
  if (a == NULL || (a->name = strdup(in[0].u.str)) == NULL) {
    free(a);
    srpc_rpc_complete(rpc, SRPC_RESULT_NO_MEMORY);
    return;
  }
  a->fd = in[1].u.hval;
  in[1].u.hval = -1;
  pthread_mutex_lock(&rt.mu);
  a->next = rt.addresses;
  rt.addresses = a;
  pthread_cond_broadcast(&rt.cv);
  pthread_mutex_unlock(&rt.mu);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void control_objects(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  pthread_mutex_lock(&rt.mu);
  if (rt.objects != NULL || in[0].u.hval < 0) {
    pthread_mutex_unlock(&rt.mu);
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR); /* one per module */
    return;
  }
  rt.objects = plugin_objects_new(in[0].u.hval);
  in[0].u.hval = -1; /* taken, even on failure */
  if (rt.objects != NULL && rt.root != NULL)
    plugin_objects_set_root(rt.objects, rt.root);
  pthread_cond_broadcast(&rt.cv);
  bool ok = rt.objects != NULL;
  pthread_mutex_unlock(&rt.mu);
  srpc_rpc_complete(rpc, ok ? SRPC_RESULT_OK : SRPC_RESULT_NO_MEMORY);
}

static void control_ping(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  (void)out;
  (void)u;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static const SrpcMethod kControl[] = {
    {PLUGIN_CONTROL_START, control_start},
    {PLUGIN_CONTROL_SHUTDOWN, control_shutdown},
    {PLUGIN_CONTROL_ADDRESS, control_address},
    {PLUGIN_CONTROL_PING, control_ping},
    {PLUGIN_CONTROL_OBJECTS, control_objects},
};

/* ---- Accepting ---- */

static void* accept_main(void* arg) {
  (void)arg;
  for (int n = 0;; n++) {
    int fd = imc_accept(rt.bound);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
          errno == ENOBUFS) {
        usleep(10000); /* wait for descriptors to free up */
        n--;
        continue;
      }
      return NULL; /* EPIPE: no SocketAddress left anywhere */
    }
    /* The host makes the first two connections before it gives anyone
     * else the address. */
    SrpcChannel* ch =
        srpc_channel_new(fd, n == 0 ? rt.control_service : rt.service,
                         n == 0 ? 0 : rt.config.max_message_bytes);
    if (ch == NULL || !start_detached(n == 0 ? control_main : serve_main, ch)) {
      srpc_channel_free(ch);
      if (n < 2)
        _exit(70); /* cannot serve the host at all */
      continue;
    }
    if (n < 2) {
      pthread_mutex_lock(&rt.mu);
      if (n == 0)
        rt.control = ch;
      else
        rt.host = ch;
      pthread_cond_broadcast(&rt.cv);
      pthread_mutex_unlock(&rt.mu);
    }
  }
}

int plugin_runtime_init(const PluginRuntimeConfig* config) {
  if (config == NULL)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  int bound = PLUGIN_MODULE_BOUND_FD;
  const char* env = getenv(PLUGIN_MODULE_FD_ENV);
  if (env != NULL) {
    char* end;
    long v = strtol(env, &end, 10);
    if (*env == '\0' || *end != '\0' || v < 0 || v > INT32_MAX)
      return PLUGIN_ERROR_INVALID_ARGUMENT;
    bound = (int)v;
  }
  int type = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(bound, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_SEQPACKET)
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  pthread_mutex_lock(&rt.mu);
  if (rt.initialized) {
    pthread_mutex_unlock(&rt.mu);
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  }
  rt.config = *config;
  rt.bound = bound;
  /* Not inherited by anything the module runs. */
  fcntl(bound, F_SETFD, FD_CLOEXEC);
  plugin_cond_init(&rt.cv);
  rt.control_service = srpc_service_new(
      kControl, sizeof(kControl) / sizeof(kControl[0]), NULL, NULL, NULL);
  SrpcSignatureError why = SRPC_SIGNATURE_OK;
  rt.service = srpc_service_new(config->methods, config->num_methods,
                                config->methods_user, &why, NULL);
  pthread_t t;
  pthread_attr_t tattr;
  pthread_attr_init(&tattr);
  pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
  int result = PLUGIN_OK;
  if (rt.service == NULL || rt.control_service == NULL) {
    result = why != SRPC_SIGNATURE_OK ? PLUGIN_ERROR_INVALID_ARGUMENT
                                      : PLUGIN_ERROR_NO_MEMORY;
  } else if (pthread_create(&t, &tattr, accept_main, NULL) != 0) {
    result = PLUGIN_ERROR_NO_MEMORY;
  }
  pthread_attr_destroy(&tattr);
  if (result != PLUGIN_OK) {
    srpc_service_free(rt.service);
    srpc_service_free(rt.control_service);
    rt.service = rt.control_service = NULL;
    pthread_cond_destroy(&rt.cv);
  } else {
    rt.initialized = true;
  }
  pthread_mutex_unlock(&rt.mu);
  return result;
}

int plugin_runtime_wait_started(int timeout_ms) {
  struct timespec d = plugin_deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
  pthread_mutex_lock(&rt.mu);
  if (!rt.initialized) {
    pthread_mutex_unlock(&rt.mu);
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  }
  bool ok = wait_started_locked(timeout_ms < 0 ? NULL : &d);
  pthread_mutex_unlock(&rt.mu);
  return ok ? PLUGIN_OK : PLUGIN_ERROR_TIMED_OUT;
}

int plugin_runtime_post(const void* data,
                        size_t len,
                        const int* fds,
                        size_t num_fds) {
  pthread_mutex_lock(&rt.mu);
  PluginPipe* pipe = rt.pipe;
  if (pipe != NULL || !rt.initialized) {
    pthread_mutex_unlock(&rt.mu);
    return pipe != NULL ? plugin_pipe_send(pipe, data, len, fds, num_fds)
                        : PLUGIN_ERROR_INVALID_ARGUMENT;
  }
  /* Before start-up: keep a copy, as the pipe would. */
  size_t max = rt.config.max_message_bytes ? rt.config.max_message_bytes
                                           : PLUGIN_DEFAULT_MAX_MESSAGE_BYTES;
  int result = PLUGIN_OK;
  PendingPost* p = NULL;
  if ((len > 0 && data == NULL) || (num_fds > 0 && fds == NULL) || len > max ||
      num_fds > PLUGIN_MAX_MESSAGE_DESCRIPTORS) {
    result = PLUGIN_ERROR_INVALID_ARGUMENT;
  } else if ((p = calloc(1, sizeof(*p))) == NULL ||
             (len > 0 && (p->data = malloc(len)) == NULL) ||
             (num_fds > 0 &&
              (p->fds = malloc(num_fds * sizeof(int))) == NULL)) {
    result = PLUGIN_ERROR_NO_MEMORY;
  } else {
    for (size_t i = 0; i < num_fds; i++) {
      p->fds[i] = fds[i] == -1 ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
      if (p->fds[i] < 0 && fds[i] != -1) {
        result = errno == EMFILE || errno == ENFILE
                     ? PLUGIN_ERROR_NO_DESCRIPTORS
                     : PLUGIN_ERROR_INVALID_ARGUMENT;
        for (size_t j = 0; j < i; j++) {
          if (p->fds[j] >= 0)
            close(p->fds[j]);
        }
        break;
      }
      p->num_fds = i + 1;
    }
  }
  if (result != PLUGIN_OK) {
    pthread_mutex_unlock(&rt.mu);
    if (p != NULL) {
      free(p->data);
      free(p->fds);
      free(p);
    }
    return result;
  }
  if (len > 0)
    memcpy(p->data, data, len);
  p->len = len;
  if (rt.pending_tail != NULL)
    rt.pending_tail->next = p;
  else
    rt.pending_head = p;
  rt.pending_tail = p;
  bool fire = rt.quota > 0 && rt.pending_bytes <= rt.quota &&
              rt.pending_bytes + len > rt.quota;
  rt.pending_bytes += len;
  size_t queued = rt.pending_bytes;
  pthread_mutex_unlock(&rt.mu);
  if (fire)
    over_quota(queued, NULL);
  return PLUGIN_OK;
}

size_t plugin_runtime_queued_bytes(void) {
  pthread_mutex_lock(&rt.mu);
  size_t n =
      rt.pipe != NULL ? plugin_pipe_queued_bytes(rt.pipe) : rt.pending_bytes;
  pthread_mutex_unlock(&rt.mu);
  return n;
}

void plugin_runtime_set_quota(size_t bytes) {
  pthread_mutex_lock(&rt.mu);
  rt.quota = bytes;
  if (rt.pipe != NULL)
    plugin_pipe_set_quota(rt.pipe, bytes);
  pthread_mutex_unlock(&rt.mu);
}

int plugin_runtime_receive(PluginMessage* out, int timeout_ms) {
  struct timespec d = plugin_deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
  pthread_mutex_lock(&rt.mu);
  if (out == NULL || !rt.initialized || rt.config.on_message != NULL) {
    pthread_mutex_unlock(&rt.mu);
    return PLUGIN_ERROR_INVALID_ARGUMENT;
  }
  bool ok = wait_started_locked(timeout_ms < 0 ? NULL : &d);
  PluginPipe* pipe = rt.pipe;
  pthread_mutex_unlock(&rt.mu);
  if (!ok)
    return PLUGIN_ERROR_TIMED_OUT;
  int r = plugin_pipe_pop_wait(pipe, out, NULL,
                               timeout_ms < 0 ? -1 : plugin_ms_left(&d), NULL);
  if (r == 1)
    return PLUGIN_OK;
  return r == -1 ? PLUGIN_ERROR_CLOSED : -r;
}

PluginObjects* plugin_runtime_objects(int timeout_ms) {
  struct timespec d = plugin_deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
  pthread_mutex_lock(&rt.mu);
  while (rt.initialized && rt.objects == NULL) {
    if (timeout_ms < 0)
      pthread_cond_wait(&rt.cv, &rt.mu);
    else if (pthread_cond_timedwait(&rt.cv, &rt.mu, &d) == ETIMEDOUT)
      break;
  }
  PluginObjects* objects = rt.objects;
  pthread_mutex_unlock(&rt.mu);
  return objects;
}

void plugin_runtime_set_root_object(PluginObject* root) {
  if (root != NULL)
    plugin_object_ref(root);
  pthread_mutex_lock(&rt.mu);
  PluginObject* old = rt.root;
  rt.root = root;
  if (rt.objects != NULL)
    plugin_objects_set_root(rt.objects, root);
  pthread_mutex_unlock(&rt.mu);
  plugin_object_unref(old);
}

SrpcChannel* plugin_runtime_host_channel(void) {
  pthread_mutex_lock(&rt.mu);
  SrpcChannel* ch = rt.host;
  pthread_mutex_unlock(&rt.mu);
  return ch;
}

static SrpcChannel* control_channel(void) {
  pthread_mutex_lock(&rt.mu);
  SrpcChannel* ch = rt.control;
  pthread_mutex_unlock(&rt.mu);
  return ch;
}

/* Calls a host control method: discovered on first use. */
static int host_control_call(const char* signature,
                             const SrpcArg* in,
                             size_t num_in,
                             SrpcArg* out,
                             size_t num_out) {
  SrpcChannel* ch = control_channel();
  if (ch == NULL)
    return SRPC_RESULT_INTERNAL;
  int n = srpc_channel_lookup(ch, signature);
  if (n < 0) {
    int r = srpc_channel_discover(ch);
    if (r != SRPC_RESULT_OK)
      return r;
    n = srpc_channel_lookup(ch, signature);
    if (n < 0)
      return SRPC_RESULT_BAD_RPC_NUMBER;
  }
  return srpc_invoke_args(ch, (uint32_t)n, in, num_in, out, num_out);
}

int plugin_runtime_log(int level, const char* text) {
  if (text == NULL)
    return SRPC_RESULT_BAD_ARG_TYPE;
  SrpcArg in[2] = {{0}, {0}};
  in[0].type = SRPC_TYPE_INT;
  in[0].u.ival = level;
  in[1].type = SRPC_TYPE_STRING;
  in[1].u.str = (char*)(uintptr_t)text;
  in[1].count = (uint32_t)strlen(text);
  return host_control_call(PLUGIN_HOST_LOG, in, 2, NULL, 0);
}

SrpcChannel* plugin_runtime_open_channel(void) {
  SrpcArg out = {0};
  out.type = SRPC_TYPE_HANDLE;
  out.u.hval = -1;
  if (host_control_call(PLUGIN_HOST_CHANNEL, NULL, 0, &out, 1) !=
      SRPC_RESULT_OK)
    return NULL;
  SrpcChannel* ch =
      srpc_channel_new(out.u.hval, rt.service, rt.config.max_message_bytes);
  if (ch != NULL && !start_detached(serve_main, ch)) {
    srpc_channel_free(ch);
    ch = NULL;
  }
  return ch;
}

int plugin_runtime_wait_address(const char* name, int timeout_ms) {
  if (name == NULL || !rt.initialized) {
    errno = EINVAL;
    return -1;
  }
  struct timespec d = plugin_deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
  int fd = -1;
  pthread_mutex_lock(&rt.mu);
  for (;;) {
    for (NamedAddress* a = rt.addresses; a != NULL; a = a->next) {
      if (strcmp(a->name, name) == 0) {
        fd = a->fd;
        break;
      }
    }
    if (fd >= 0)
      break;
    if (timeout_ms < 0) {
      pthread_cond_wait(&rt.cv, &rt.mu);
    } else if (pthread_cond_timedwait(&rt.cv, &rt.mu, &d) == ETIMEDOUT) {
      break;
    }
  }
  int dup = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  int error = fd < 0 ? ETIMEDOUT : errno;
  pthread_mutex_unlock(&rt.mu);
  if (dup < 0)
    errno = error;
  return dup;
}

SrpcChannel* plugin_runtime_connect(int address, int timeout_ms) {
  int fd = imc_connect_ex(address, IMC_CONNECT_CONFIRM, timeout_ms);
  if (fd < 0)
    return NULL;
  SrpcChannel* ch =
      srpc_channel_new(fd, rt.service, rt.config.max_message_bytes);
  if (ch != NULL && !start_detached(serve_main, ch)) {
    srpc_channel_free(ch);
    errno = EAGAIN;
    return NULL;
  }
  if (ch == NULL)
    errno = ENOMEM;
  return ch;
}
