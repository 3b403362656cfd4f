/* plugin/js: the heap, the main thread's loop, the workers that carry
 * blocking calls, descriptors and bytes, errors, and the `shell` global. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imc/imc.h"
#include "plugin/js/js_internal.h"

enum {
  kMaxWorkers = 64,
  kMaxReadBytes = 64 * 1024 * 1024,
};

/* ---- The stash ---------------------------------------------------------- */

static void push_stash_table(duk_context* ctx) {
  duk_push_heap_stash(ctx);
  if (!duk_get_prop_string(ctx, -1, "refs")) {
    duk_pop(ctx);
    duk_push_object(ctx);
    duk_dup(ctx, -1);
    duk_put_prop_string(ctx, -3, "refs");
  }
  duk_remove(ctx, -2);
}

uint64_t js_stash_put(duk_context* ctx, duk_idx_t idx) {
  PluginJs* js = js_from_ctx(ctx);
  idx = duk_normalize_index(ctx, idx);
  uint64_t key = ++js->next_key;
  push_stash_table(ctx);
  duk_dup(ctx, idx);
  duk_put_prop_index(ctx, -2, (duk_uarridx_t)key);
  duk_pop(ctx);
  return key;
}

void js_stash_push(duk_context* ctx, uint64_t key) {
  push_stash_table(ctx);
  duk_get_prop_index(ctx, -1, (duk_uarridx_t)key);
  duk_remove(ctx, -2);
}

void js_stash_del(duk_context* ctx, uint64_t key) {
  if (key == 0)
    return;
  push_stash_table(ctx);
  duk_del_prop_index(ctx, -1, (duk_uarridx_t)key);
  duk_pop(ctx);
}

bool js_get_own(duk_context* ctx, duk_idx_t idx, const char* key) {
  idx = duk_normalize_index(ctx, idx);
  if (!duk_is_object(ctx, idx)) {
    duk_push_undefined(ctx);
    return false;
  }
  duk_push_string(ctx, key);
  duk_get_prop_desc(ctx, idx, 0);
  if (!duk_is_object(ctx, -1)) {
    duk_pop(ctx);
    duk_push_undefined(ctx);
    return false;
  }
  duk_get_prop_string(ctx, -1, "value");
  duk_remove(ctx, -2);
  return true;
}

void* js_this_pointer(duk_context* ctx, const char* key) {
  duk_idx_t top = duk_get_top(ctx);
  duk_push_this(ctx);
  void* p = NULL;
  if (js_get_own(ctx, -1, key))
    p = duk_get_pointer(ctx, -1);
  duk_set_top(ctx, top);
  return p;
}

PluginJs* js_from_ctx(duk_context* ctx) {
  duk_memory_functions funcs;
  duk_get_memory_functions(ctx, &funcs);
  return funcs.udata;
}

int64_t js_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Errors ------------------------------------------------------------- */

static const char* message_of(const char* layer, int code) {
  if (strcmp(layer, "srpc") == 0)
    return srpc_result_string(code);
  if (strcmp(layer, "object") == 0)
    return plugin_object_result_string(code);
  if (strcmp(layer, "plugin") == 0)
    return plugin_result_string(code);
  return strerror(code);
}

void js_push_error(duk_context* ctx, const char* layer, int code) {
  duk_push_error_object(ctx, DUK_ERR_ERROR, "%s: %s (%d)", layer,
                        message_of(layer, code), code);
  duk_push_string(ctx, "PluginError");
  duk_put_prop_string(ctx, -2, "name");
  duk_push_string(ctx, layer);
  duk_put_prop_string(ctx, -2, "layer");
  duk_push_int(ctx, code);
  duk_put_prop_string(ctx, -2, "code");
}

duk_ret_t js_throw(duk_context* ctx, const char* layer, int code) {
  js_push_error(ctx, layer, code);
  return duk_throw(ctx);
}

static void report(PluginJs* js, duk_context* ctx, const char* what) {
  fprintf(js->err, "%s: %s\n", what, duk_safe_to_stacktrace(ctx, -1));
  fflush(js->err);
}

void js_call_handler(PluginJs* js, duk_idx_t nargs) {
  duk_context* ctx = js->ctx;
  if (duk_pcall_method(ctx, nargs) != DUK_EXEC_SUCCESS) {
    report(js, ctx, "uncaught error in a handler");
    js->uncaught++;
  }
  duk_pop(ctx);
}

/* ---- Bytes and descriptors ------------------------------------------------
 */

void js_push_bytes(duk_context* ctx, const void* data, size_t len) {
  void* p = duk_push_fixed_buffer(ctx, len);
  if (len > 0)
    memcpy(p, data, len);
  duk_push_buffer_object(ctx, -1, 0, len, DUK_BUFOBJ_ARRAYBUFFER);
  duk_remove(ctx, -2);
}

const uint8_t* js_get_bytes(duk_context* ctx, duk_idx_t idx, size_t* len) {
  *len = 0;
  if (!duk_is_buffer_data(ctx, idx))
    return NULL;
  duk_size_t size = 0;
  const uint8_t* p = duk_get_buffer_data(ctx, idx, &size);
  *len = size;
  /* An empty buffer has no data pointer; give a valid one. */
  return p != NULL ? p : (const uint8_t*)"";
}

#define FD_KEY DUK_HIDDEN_SYMBOL("fd")

static duk_ret_t descriptor_finalize(duk_context* ctx) {
  if (js_get_own(ctx, 0, FD_KEY)) {
    int fd = duk_get_int_default(ctx, -1, -1);
    if (fd >= 0)
      close(fd);
    duk_push_int(ctx, -1);
    duk_put_prop_string(ctx, 0, FD_KEY);
  }
  return 0;
}

void js_push_descriptor(duk_context* ctx, int fd) {
  duk_push_object(ctx);
  duk_push_int(ctx, fd);
  duk_put_prop_string(ctx, -2, FD_KEY);
  duk_push_heap_stash(ctx);
  duk_get_prop_string(ctx, -1, "DescriptorPrototype");
  duk_set_prototype(ctx, -3);
  duk_pop(ctx);
}

int js_get_descriptor(duk_context* ctx, duk_idx_t idx) {
  if (!duk_is_object(ctx, idx))
    return -1;
  int fd = -1;
  if (js_get_own(ctx, idx, FD_KEY))
    fd = duk_get_int_default(ctx, -1, -1);
  duk_pop(ctx);
  return fd;
}

static int this_descriptor(duk_context* ctx) {
  duk_push_this(ctx);
  int fd = js_get_descriptor(ctx, -1);
  duk_pop(ctx);
  if (fd < 0)
    return duk_type_error(ctx, "not an open descriptor");
  return fd;
}

static duk_ret_t descriptor_close(duk_context* ctx) {
  duk_push_this(ctx);
  duk_insert(ctx, 0);
  return descriptor_finalize(ctx);
}

static duk_ret_t descriptor_is_open(duk_context* ctx) {
  duk_push_this(ctx);
  duk_push_boolean(ctx, js_get_descriptor(ctx, -1) >= 0);
  return 1;
}

static duk_ret_t descriptor_number(duk_context* ctx) {
  duk_push_this(ctx);
  duk_push_int(ctx, js_get_descriptor(ctx, -1));
  return 1;
}

int js_get_descriptor_list(duk_context* ctx,
                           duk_idx_t idx,
                           int* fds,
                           size_t cap,
                           const char** why) {
  if (duk_is_undefined(ctx, idx) || duk_is_null(ctx, idx))
    return 0;
  if (!duk_is_array(ctx, idx)) {
    *why = "descriptors must be an array";
    return -1;
  }
  size_t n = duk_get_length(ctx, idx);
  if (n > cap) {
    *why = "too many descriptors";
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    duk_get_prop_index(ctx, idx, (duk_uarridx_t)i);
    fds[i] = js_get_descriptor(ctx, -1);
    duk_pop(ctx);
    if (fds[i] < 0) {
      *why = "not an open descriptor in the list";
      return -1;
    }
  }
  return (int)n;
}

/* desc.send(data, [descriptors]): one IMC message on the descriptor (a
 * socket), without waiting: a full socket throws EAGAIN. */
static duk_ret_t descriptor_send(duk_context* ctx) {
  int fd = this_descriptor(ctx);
  size_t len;
  const uint8_t* data = js_get_bytes(ctx, 0, &len);
  if (data == NULL)
    return duk_type_error(ctx, "send: data must be an ArrayBuffer or a view");
  int fds[IMC_MAX_DESCRIPTORS];
  const char* why = NULL;
  int n = js_get_descriptor_list(ctx, 1, fds, IMC_MAX_DESCRIPTORS, &why);
  if (n < 0)
    return duk_type_error(ctx, "send: %s", why);
  struct NaClImcMsgIoVec iov = {(void*)(uintptr_t)data, len};
  struct NaClImcMsgHdr h = {&iov, 1, fds, (size_t)n, 0};
  if (imc_sendmsg(fd, &h, IMC_NONBLOCK) < 0)
    return js_throw(ctx, "system", errno);
  return 0;
}

/* desc.receive(): one waiting IMC message as {data, descriptors}, or null
 * if none is waiting; end of stream gives {data: empty, descriptors: [],
 * end: true}. */
static duk_ret_t descriptor_receive(duk_context* ctx) {
  int fd = this_descriptor(ctx);
  uint8_t* buf = duk_push_fixed_buffer(ctx, IMC_MAX_DATA_BYTES);
  int fds[IMC_MAX_DESCRIPTORS];
  struct NaClImcMsgIoVec iov = {buf, IMC_MAX_DATA_BYTES};
  struct NaClImcMsgHdr h = {&iov, 1, fds, IMC_MAX_DESCRIPTORS, 0};
  int n = imc_recvmsg(fd, &h, IMC_NONBLOCK);
  if (n < 0 && errno == EAGAIN) {
    duk_push_null(ctx);
    return 1;
  }
  if (n < 0)
    return js_throw(ctx, "system", errno);
  duk_push_object(ctx);
  js_push_bytes(ctx, buf, (size_t)n);
  duk_put_prop_string(ctx, -2, "data");
  duk_push_array(ctx);
  for (size_t i = 0; i < h.desc_length; i++) {
    js_push_descriptor(ctx, fds[i]);
    duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
  }
  duk_put_prop_string(ctx, -2, "descriptors");
  if (n == 0 && h.desc_length == 0) {
    duk_push_true(ctx);
    duk_put_prop_string(ctx, -2, "end");
  }
  return 1;
}

static void install_descriptor_prototype(duk_context* ctx) {
  duk_push_heap_stash(ctx);
  duk_push_object(ctx);
  static const duk_function_list_entry kFns[] = {
      {"close", descriptor_close, 0},     {"isOpen", descriptor_is_open, 0},
      {"number", descriptor_number, 0},   {"send", descriptor_send, 2},
      {"receive", descriptor_receive, 0}, {NULL, NULL, 0},
  };
  duk_put_function_list(ctx, -1, kFns);
  duk_push_c_function(ctx, descriptor_finalize, 1);
  duk_set_finalizer(ctx, -2);
  duk_put_prop_string(ctx, -2, "DescriptorPrototype");
  duk_pop(ctx);
}

/* ---- Workers and the main thread's loop -------------------------------- */

static void* worker_main(void* arg) {
  PluginJs* js = arg;
  pthread_mutex_lock(&js->mu);
  for (;;) {
    while (js->queue == NULL && !js->stopping)
      pthread_cond_wait(&js->worker_cv, &js->mu);
    if (js->queue == NULL)
      break;
    JsJob* job = js->queue;
    js->queue = job->next;
    if (js->queue == NULL)
      js->queue_tail = NULL;
    js->queued--;
    js->idle_workers--;
    pthread_mutex_unlock(&js->mu);

    if (job->proxy != NULL) {
      job->result = plugin_object_invoke(job->proxy, job->name, job->timeout_ms,
                                         js->cancel, job->in, job->num_in,
                                         job->out, job->num_out);
    } else {
      job->result =
          plugin_module_call(job->module->module, job->name, job->timeout_ms,
                             job->in, job->num_in, job->out, job->num_out);
    }

    pthread_mutex_lock(&js->mu);
    js->idle_workers++;
    js->jobs_in_flight--;
    if (job->module != NULL)
      job->module->busy--;
    job->done = true;
    if (job->callback != 0) {
      job->next = js->finished;
      js->finished = job;
    }
    pthread_cond_broadcast(&js->cv);
  }
  pthread_mutex_unlock(&js->mu);
  return NULL;
}

int js_submit(PluginJs* js, JsJob* job) {
  job->js = js;
  job->done = false;
  job->next = NULL;
  pthread_mutex_lock(&js->mu);
  int r = 0;
  /* Every queued job needs an idle worker of its own: a job never waits
   * behind a slow one while the pool can grow. */
  if (js->idle_workers <= js->queued && js->num_workers < kMaxWorkers) {
    JsWorker* w = calloc(1, sizeof(*w));
    if (w != NULL && pthread_create(&w->thread, NULL, worker_main, js) == 0) {
      w->next = js->workers;
      js->workers = w;
      js->num_workers++;
      js->idle_workers++;
    } else {
      free(w);
      r = js->num_workers == 0 ? EAGAIN : 0; /* others will get to it */
    }
  }
  if (r == 0) {
    if (js->queue_tail != NULL)
      js->queue_tail->next = job;
    else
      js->queue = job;
    js->queue_tail = job;
    js->queued++;
    js->jobs_in_flight++;
    if (job->module != NULL)
      job->module->busy++;
    pthread_cond_signal(&js->worker_cv);
  }
  pthread_mutex_unlock(&js->mu);
  return r;
}

static bool job_done(PluginJs* js, void* arg) {
  (void)js;
  return ((JsJob*)arg)->done;
}

void js_wait_job(PluginJs* js, JsJob* job) {
  js_pump(js, false, false, -1, job_done, job);
}

int js_pump(PluginJs* js,
            bool tasks,
            bool cancellable,
            int64_t deadline_ms,
            bool (*ready)(PluginJs* js, void* arg),
            void* arg) {
  pthread_mutex_lock(&js->mu);
  for (;;) {
    if (ready(js, arg)) {
      pthread_mutex_unlock(&js->mu);
      return PLUGIN_OK;
    }
    if (js->incoming != NULL) {
      JsIncoming* in = js->incoming;
      js->incoming = in->next;
      if (js->incoming == NULL)
        js->incoming_tail = NULL;
      pthread_mutex_unlock(&js->mu);
      js_run_incoming(js, in);
      pthread_mutex_lock(&js->mu);
      continue;
    }
    if (tasks && js->finished != NULL) {
      /* Oldest first. */
      JsJob** p = &js->finished;
      while ((*p)->next != NULL)
        p = &(*p)->next;
      JsJob* job = *p;
      *p = NULL;
      pthread_mutex_unlock(&js->mu);
      js_finish_job(js, job, true);
      pthread_mutex_lock(&js->mu);
      continue;
    }
    if (tasks && js->host_pending) {
      js->host_pending = false;
      pthread_mutex_unlock(&js->mu);
      plugin_host_run_pending(js->host);
      pthread_mutex_lock(&js->mu);
      continue;
    }
    if (cancellable && js->cancelled) {
      pthread_mutex_unlock(&js->mu);
      return PLUGIN_ERROR_CANCELLED;
    }
    if (deadline_ms < 0) {
      pthread_cond_wait(&js->cv, &js->mu);
      continue;
    }
    int64_t now = js_now_ms();
    if (now >= deadline_ms) {
      pthread_mutex_unlock(&js->mu);
      return PLUGIN_ERROR_TIMED_OUT;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (deadline_ms - now) * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_cond_timedwait(&js->cv, &js->mu, &ts);
  }
}

static void host_hook(void* user) {
  PluginJs* js = user;
  pthread_mutex_lock(&js->mu);
  js->host_pending = true;
  js->hooks++;
  pthread_cond_broadcast(&js->cv);
  pthread_mutex_unlock(&js->mu);
}

/* ---- print and shell ---------------------------------------------------- */

static duk_ret_t js_print(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  duk_idx_t n = duk_get_top(ctx);
  for (duk_idx_t i = 0; i < n; i++)
    fprintf(js->out, "%s%s", i ? " " : "", duk_safe_to_string(ctx, i));
  fputc('\n', js->out);
  fflush(js->out);
  return 0;
}

/* shell.open(path, mode): "r", "w" (create or truncate) or "rw". */
static duk_ret_t shell_open(duk_context* ctx) {
  const char* path = duk_require_string(ctx, 0);
  const char* mode = duk_get_string_default(ctx, 1, "r");
  int flags;
  if (strcmp(mode, "r") == 0)
    flags = O_RDONLY;
  else if (strcmp(mode, "w") == 0)
    flags = O_WRONLY | O_CREAT | O_TRUNC;
  else if (strcmp(mode, "rw") == 0)
    flags = O_RDWR | O_CREAT;
  else
    return duk_type_error(ctx, "open: mode must be \"r\", \"w\" or \"rw\"");
  int fd = open(path, flags | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0)
    return js_throw(ctx, "system", errno);
  js_push_descriptor(ctx, fd);
  return 1;
}

/* shell.read(descriptor): everything from offset 0 (a file). */
static duk_ret_t shell_read(duk_context* ctx) {
  int fd = js_get_descriptor(ctx, 0);
  if (fd < 0)
    return duk_type_error(ctx, "read: not an open descriptor");
  struct stat st;
  if (fstat(fd, &st) != 0)
    return js_throw(ctx, "system", errno);
  if (!S_ISREG(st.st_mode))
    return js_throw(ctx, "system", EINVAL);
  if (st.st_size > kMaxReadBytes)
    return js_throw(ctx, "system", EFBIG);
  size_t size = (size_t)st.st_size;
  uint8_t* p = duk_push_fixed_buffer(ctx, size);
  size_t got = 0;
  while (got < size) {
    ssize_t n = pread(fd, p + got, size - got, (off_t)got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return js_throw(ctx, "system", errno);
    if (n == 0)
      break;
    got += (size_t)n;
  }
  duk_push_buffer_object(ctx, -1, 0, got, DUK_BUFOBJ_ARRAYBUFFER);
  return 1;
}

/* shell.write(descriptor, data) */
static duk_ret_t shell_write(duk_context* ctx) {
  int fd = js_get_descriptor(ctx, 0);
  size_t len;
  const uint8_t* data = js_get_bytes(ctx, 1, &len);
  if (fd < 0 || data == NULL)
    return duk_type_error(ctx, "write: (descriptor, ArrayBuffer)");
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return js_throw(ctx, "system", errno);
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* shell.descriptorCount(): descriptors open in this process. */
static duk_ret_t shell_descriptor_count(duk_context* ctx) {
  DIR* d = opendir("/proc/self/fd");
  if (d == NULL)
    return js_throw(ctx, "system", errno);
  int n = 0;
  struct dirent* e;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  duk_push_int(ctx, n - 1); /* not the directory's own */
  return 1;
}

/* shell.gc(): a full collection; finalizers run. */
static duk_ret_t shell_gc(duk_context* ctx) {
  duk_gc(ctx, 0);
  duk_gc(ctx, 0); /* what the first one's finalizers let go */
  return 0;
}

static duk_ret_t shell_now(duk_context* ctx) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  duk_push_number(ctx, (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6);
  return 1;
}

static duk_ret_t shell_sleep(duk_context* ctx) {
  int ms = duk_require_int(ctx, 0);
  if (ms > 0)
    usleep((useconds_t)ms * 1000);
  return 0;
}

typedef struct CancelTimer {
  PluginJs* js;
  int ms;
} CancelTimer;

static void cancel_now(PluginJs* js) {
  plugin_host_cancel_waits(js->host);
  srpc_cancel_signal(js->cancel);
  pthread_mutex_lock(&js->mu);
  js->cancelled = true;
  pthread_cond_broadcast(&js->cv);
  pthread_mutex_unlock(&js->mu);
}

static void* cancel_timer_main(void* arg) {
  CancelTimer* t = arg;
  usleep((useconds_t)t->ms * 1000);
  cancel_now(t->js);
  free(t);
  return NULL;
}

/* shell.cancelWaitsAfter(ms): what a browser's "stop script" does, from
 * another thread, ms from now. The thread is joined at the end. */
static duk_ret_t shell_cancel_after(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  CancelTimer* t = malloc(sizeof(*t));
  if (t == NULL)
    return js_throw(ctx, "system", ENOMEM);
  t->js = js;
  t->ms = duk_require_int(ctx, 0);
  JsWorker* w = calloc(1, sizeof(*w));
  if (w == NULL || pthread_create(&w->thread, NULL, cancel_timer_main, t)) {
    free(w);
    free(t);
    return js_throw(ctx, "system", EAGAIN);
  }
  pthread_mutex_lock(&js->mu);
  w->next = js->workers; /* joined with the workers */
  js->workers = w;
  pthread_mutex_unlock(&js->mu);
  return 0;
}

/* plugin.cancelWaits() and plugin.resetCancel(). */
static duk_ret_t plugin_cancel_waits(duk_context* ctx) {
  cancel_now(js_from_ctx(ctx));
  return 0;
}

static duk_ret_t plugin_reset_cancel(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  plugin_host_reset_cancel(js->host);
  srpc_cancel_reset(js->cancel);
  pthread_mutex_lock(&js->mu);
  js->cancelled = false;
  pthread_mutex_unlock(&js->mu);
  return 0;
}

static int eval_file(PluginJs* js, const char* path, bool report_errors);

/* shell.load(path): runs another script, relative to the first one's
 * directory. */
static duk_ret_t shell_load(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  const char* name = duk_require_string(ctx, 0);
  char path[PATH_MAX];
  int len = name[0] == '/'
                ? snprintf(path, sizeof(path), "%s", name)
                : snprintf(path, sizeof(path), "%s/%s", js->script_dir, name);
  if (len < 0 || (size_t)len >= sizeof(path))
    return js_throw(ctx, "system", ENAMETOOLONG);
  FILE* f = fopen(path, "re");
  if (f == NULL)
    return js_throw(ctx, "system", errno);
  fclose(f);
  if (eval_file(js, path, false) != 0)
    return duk_throw(ctx); /* the error is on the stack */
  return 0;
}

static void install_globals(PluginJs* js) {
  duk_context* ctx = js->ctx;
  duk_push_global_object(ctx);
  duk_push_c_function(ctx, js_print, DUK_VARARGS);
  duk_put_prop_string(ctx, -2, "print");

  duk_push_object(ctx);
  static const duk_function_list_entry kShell[] = {
      {"open", shell_open, 2},   {"read", shell_read, 1},
      {"write", shell_write, 2}, {"descriptorCount", shell_descriptor_count, 0},
      {"gc", shell_gc, 0},       {"now", shell_now, 0},
      {"sleep", shell_sleep, 1}, {"cancelWaitsAfter", shell_cancel_after, 1},
      {"load", shell_load, 1},   {NULL, NULL, 0},
  };
  duk_put_function_list(ctx, -1, kShell);
  duk_push_array(ctx);
  duk_put_prop_string(ctx, -2, "args");
  duk_put_prop_string(ctx, -2, "shell");

  duk_push_object(ctx);
  static const duk_function_list_entry kPlugin[] = {
      {"cancelWaits", plugin_cancel_waits, 0},
      {"resetCancel", plugin_reset_cancel, 0},
      {NULL, NULL, 0},
  };
  duk_put_function_list(ctx, -1, kPlugin);
  js_plugin_install(ctx, -1);
  js_objects_install(ctx, -1);
  duk_put_prop_string(ctx, -2, "plugin");
  duk_pop(ctx);
}

/* ---- Life ---------------------------------------------------------------- */

static void fatal(void* udata, const char* msg) {
  PluginJs* js = udata;
  fprintf(js != NULL ? js->err : stderr, "plugin_js: fatal: %s\n",
          msg ? msg : "(no message)");
  abort();
}

static void* js_alloc(void* udata, duk_size_t size) {
  (void)udata;
  return malloc(size);
}

static void* js_realloc(void* udata, void* ptr, duk_size_t size) {
  (void)udata;
  return realloc(ptr, size);
}

static void js_dealloc(void* udata, void* ptr) {
  (void)udata;
  free(ptr);
}

PluginJs* plugin_js_new(FILE* out, FILE* err) {
  PluginJs* js = calloc(1, sizeof(*js));
  if (js == NULL)
    return NULL;
  js->out = out != NULL ? out : stdout;
  js->err = err != NULL ? err : stderr;
  js->call_timeout_ms = 60000;
  pthread_mutex_init(&js->mu, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&js->cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_cond_init(&js->worker_cv, NULL);
  PluginHostOptions options = {0};
  options.post_hook = host_hook;
  options.hook_user = js;
  js->host = plugin_host_new(&options);
  js->cancel = srpc_cancel_new();
  js->ctx = duk_create_heap(js_alloc, js_realloc, js_dealloc, js, fatal);
  if (js->host == NULL || js->cancel == NULL || js->ctx == NULL) {
    plugin_js_free(js);
    return NULL;
  }
  install_descriptor_prototype(js->ctx);
  install_globals(js);
  return js;
}

/* Compiles and runs a file. Leaves the error on the stack if it throws
 * (and, with report_errors, reports it and pops it). */
static int eval_file(PluginJs* js, const char* path, bool report_errors) {
  duk_context* ctx = js->ctx;
  FILE* f = fopen(path, "re");
  if (f == NULL) {
    fprintf(js->err, "plugin_js: %s: %s\n", path, strerror(errno));
    return 2;
  }
  char* text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 65536;
      char* grown = realloc(text, cap);
      if (grown == NULL)
        break;
      text = grown;
    }
    size_t n = fread(text + len, 1, cap - len, f);
    if (n == 0)
      break;
    len += n;
  }
  fclose(f);
  duk_push_lstring(ctx, text != NULL ? text : "", len);
  free(text);
  duk_push_string(ctx, path);
  int r = duk_pcompile(ctx, DUK_COMPILE_SHEBANG);
  if (r == 0)
    r = duk_pcall(ctx, 0);
  if (r != 0) {
    if (report_errors) {
      report(js, ctx, "uncaught error");
      duk_pop(ctx);
    }
    return 1;
  }
  duk_pop(ctx);
  return 0;
}

int plugin_js_run_file(PluginJs* js,
                       const char* path,
                       int argc,
                       const char* const* args) {
  duk_context* ctx = js->ctx;
  const char* slash = strrchr(path, '/');
  if (slash == NULL)
    snprintf(js->script_dir, sizeof(js->script_dir), ".");
  else
    snprintf(js->script_dir, sizeof(js->script_dir), "%.*s",
             (int)(slash - path), path);
  duk_push_global_object(ctx);
  duk_get_prop_string(ctx, -1, "shell");
  duk_push_array(ctx);
  for (int i = 0; i < argc; i++) {
    duk_push_string(ctx, args[i]);
    duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
  }
  duk_put_prop_string(ctx, -2, "args");
  duk_pop_2(ctx);
  return eval_file(js, path, true);
}

int plugin_js_uncaught_errors(const PluginJs* js) {
  return js->uncaught;
}

static bool nothing_in_flight(PluginJs* js, void* arg) {
  (void)arg;
  return js->jobs_in_flight == 0;
}

void plugin_js_free(PluginJs* js) {
  if (js == NULL)
    return;
  if (js->ctx != NULL) {
    /* From now on calls into the script fail at once. */
    pthread_mutex_lock(&js->mu);
    js->closing = true;
    JsIncoming* in = js->incoming;
    js->incoming = js->incoming_tail = NULL;
    pthread_mutex_unlock(&js->mu);
    while (in != NULL) {
      JsIncoming* next = in->next;
      js_fail_incoming(in);
      in = next;
    }
    for (JsModule* m = js->modules; m != NULL; m = m->next)
      plugin_module_shutdown(m->module, 0, NULL);
    /* Calls in flight end now that the modules are gone. */
    js_pump(js, false, false, -1, nothing_in_flight, NULL);
    for (;;) {
      pthread_mutex_lock(&js->mu);
      JsModule* m = js->modules;
      if (m != NULL)
        js->modules = m->next;
      pthread_mutex_unlock(&js->mu);
      if (m == NULL)
        break;
      plugin_module_free(m->module);
      free(m);
    }
    while (js->sockets != NULL) {
      JsSocket* s = js->sockets;
      js->sockets = s->next;
      plugin_socket_close(s->socket);
      free(s);
    }
  }
  pthread_mutex_lock(&js->mu);
  js->stopping = true;
  pthread_cond_broadcast(&js->worker_cv);
  JsWorker* w = js->workers;
  js->workers = NULL;
  JsJob* finished = js->finished;
  js->finished = NULL;
  pthread_mutex_unlock(&js->mu);
  while (w != NULL) {
    JsWorker* next = w->next;
    pthread_join(w->thread, NULL);
    free(w);
    w = next;
  }
  while (finished != NULL) {
    JsJob* next = finished->next;
    js_finish_job(js, finished, false);
    finished = next;
  }
  if (js->ctx != NULL) {
    duk_context* ctx = js->ctx;
    js->ctx = NULL;        /* tasks still queued must not touch it */
    duk_destroy_heap(ctx); /* finalizers close and release */
  }
  if (js->host != NULL) {
    plugin_host_run_pending(js->host);
    plugin_host_free(js->host);
  }
  if (js->cancel != NULL)
    srpc_cancel_free(js->cancel);
  pthread_cond_destroy(&js->worker_cv);
  pthread_cond_destroy(&js->cv);
  pthread_mutex_destroy(&js->mu);
  free(js);
}

int plugin_js_run_script(const char* path, int argc, const char* const* args) {
  PluginJs* js = plugin_js_new(NULL, NULL);
  if (js == NULL) {
    fprintf(stderr, "plugin_js: cannot make the heap\n");
    return 1;
  }
  int r = plugin_js_run_file(js, path, argc, args);
  if (r == 0 && plugin_js_uncaught_errors(js) > 0)
    r = 1;
  plugin_js_free(js);
  return r;
}
