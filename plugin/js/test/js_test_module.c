/* The module the JavaScript tests (the scripts in plugin/js/test) launch from
 * plugin_shell. Its SRPC methods cover every argument type, every way a
 * call can fail, descriptors and the open() broker; its root object makes
 * counters (objects whose release the scripts watch for) and calls back
 * into objects the script exports.
 *
 * Messages from the host: "broker" with one descriptor makes that
 * descriptor the module's open() broker and answers "broker-ok"; every
 * other message is posted back as it came, descriptors included. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin/broker/broker_client.h"
#include "plugin/module/plugin_runtime.h"

static void done(SrpcRpc* rpc) {
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  out[0].u.ival = (int32_t)((uint32_t)in[0].u.ival + (uint32_t)in[1].u.ival);
  done(rpc);
}

/* Copies an array argument into a result of the same type. */
static int copy_array(const SrpcArg* in, SrpcArg* out) {
  size_t size = srpc_type_element_size(in->type);
  void* p = srpc_arg_alloc(out, in->count);
  if (p == NULL && in->count > 0)
    return SRPC_RESULT_NO_MEMORY;
  if (in->count > 0)
    memcpy(p, in->u.ptr, (size_t)in->count * size);
  return SRPC_RESULT_OK;
}

static void echo(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  srpc_rpc_complete(rpc, copy_array(&in[0], &out[0]));
}

/* types:bidlsCIDLh:bidlsCIDLh: every type, each given back. */
static void types(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int r = SRPC_RESULT_OK;
  for (int i = 0; i < 10 && r == SRPC_RESULT_OK; i++) {
    switch (in[i].type) {
      case SRPC_TYPE_STRING:
        if (srpc_arg_set_string(&out[i], in[i].u.str) != 0)
          r = SRPC_RESULT_NO_MEMORY;
        break;
      case SRPC_TYPE_HANDLE:
        out[i].u.hval = in[i].u.hval;
        in[i].u.hval = -1; /* handed back */
        break;
      case SRPC_TYPE_CHAR_ARRAY:
      case SRPC_TYPE_INT_ARRAY:
      case SRPC_TYPE_LONG_ARRAY:
      case SRPC_TYPE_DOUBLE_ARRAY:
        r = copy_array(&in[i], &out[i]);
        break;
      default:
        out[i].u = in[i].u;
    }
  }
  srpc_rpc_complete(rpc, r);
}

/* fail:i: completes with the given SRPC result. */
static void fail(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  srpc_rpc_complete(rpc, in[0].u.ival);
}

static void sleep_ms(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  usleep((useconds_t)in[0].u.ival * 1000);
  done(rpc);
}

static void exit_with(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)rpc;
  (void)out;
  (void)u;
  _exit(in[0].u.ival);
}

/* read_file:s:iC: errno (0: read), and the whole file, through the
 * broker the host gave in a message. */
static void read_file(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int fd = broker_open(in[0].u.str, O_RDONLY);
  out[0].u.ival = fd < 0 ? errno : 0;
  if (fd >= 0) {
    struct stat st;
    size_t size = fstat(fd, &st) == 0 ? (size_t)st.st_size : 0;
    if (size > out[1].count)
      size = out[1].count;
    char* p = srpc_arg_alloc(&out[1], (uint32_t)size);
    ssize_t n = p != NULL ? pread(fd, p, size, 0) : 0;
    if (p != NULL && n != (ssize_t)size)
      out[0].u.ival = n < 0 ? errno : EIO;
    close(fd);
  }
  done(rpc);
}

/* read_fd:h:C: what a descriptor holds, from its start. */
static void read_fd(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  char buf[4096];
  ssize_t n = pread(in[0].u.hval, buf, sizeof(buf), 0);
  if (n < 0) {
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  char* p = srpc_arg_alloc(&out[0], (uint32_t)n);
  if (p != NULL)
    memcpy(p, buf, (size_t)n);
  srpc_rpc_complete(
      rpc, p != NULL || n == 0 ? SRPC_RESULT_OK : SRPC_RESULT_NO_MEMORY);
}

/* post:C: posts the bytes to the host. */
static void post(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  int r = plugin_runtime_post(in[0].u.carr, in[0].count, NULL, 0);
  srpc_rpc_complete(rpc,
                    r == PLUGIN_OK ? SRPC_RESULT_OK : SRPC_RESULT_APP_ERROR);
}

static const SrpcMethod kMethods[] = {
    {"add:ii:i", add},
    {"echo:C:C", echo},
    {"types:bidlsCIDLh:bidlsCIDLh", types},
    {"fail:i:", fail},
    {"sleep:i:", sleep_ms},
    {"exit:i:", exit_with},
    {"read_file:s:iC", read_file},
    {"read_fd:h:C", read_fd},
    {"post:C:", post},
};

/* ---- Objects ---- */

static atomic_int g_live;     /* counters not yet destroyed */
static atomic_int g_released; /* counters the host released */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static PluginObject* g_kept; /* keep:o: */

static void complete(PluginObjectCall* call) {
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

static void counter_inc(PluginObjectCall* call,
                        SrpcArg* in,
                        SrpcArg* out,
                        void* u) {
  (void)in;
  out[0].u.ival = atomic_fetch_add((atomic_int*)u, 1) + 1;
  complete(call);
}

static void counter_get(PluginObjectCall* call,
                        SrpcArg* in,
                        SrpcArg* out,
                        void* u) {
  (void)in;
  out[0].u.ival = atomic_load((atomic_int*)u);
  complete(call);
}

static void counter_set(PluginObjectCall* call,
                        SrpcArg* in,
                        SrpcArg* out,
                        void* u) {
  (void)out;
  atomic_store((atomic_int*)u, in[0].u.ival);
  complete(call);
}

static void counter_released(PluginObject* o, PluginObjects* ch, void* u) {
  (void)o;
  (void)ch;
  (void)u;
  atomic_fetch_add(&g_released, 1);
}

static void counter_destroy(void* u) {
  free(u);
  atomic_fetch_sub(&g_live, 1);
}

static const PluginMethodDef kCounterMethods[] = {
    {"inc::i", counter_inc},
    {"get_value::i", counter_get},
    {"set_value:i:", counter_set},
};
static const PluginObjectClass kCounterClass = {
    kCounterMethods, sizeof(kCounterMethods) / sizeof(kCounterMethods[0]),
    counter_released, counter_destroy};

/* make_counter:i:o */
static void root_make_counter(PluginObjectCall* call,
                              SrpcArg* in,
                              SrpcArg* out,
                              void* u) {
  (void)u;
  atomic_int* value = malloc(sizeof(*value));
  PluginObject* o =
      value != NULL ? plugin_object_new(&kCounterClass, value) : NULL;
  if (o == NULL) {
    free(value);
    plugin_object_call_complete(call, PLUGIN_OBJECT_METHOD_FAILED);
    return;
  }
  atomic_init(value, in[0].u.ival);
  atomic_fetch_add(&g_live, 1);
  out[0].u.ptr = o; /* completing takes the layer's own reference */
  complete(call);
  plugin_object_unref(o);
}

/* live::ii: counters alive, and how many the host released. */
static void root_live(PluginObjectCall* call,
                      SrpcArg* in,
                      SrpcArg* out,
                      void* u) {
  (void)in;
  (void)u;
  out[0].u.ival = atomic_load(&g_live);
  out[1].u.ival = atomic_load(&g_released);
  complete(call);
}

/* call_add:oii:i: calls add:ii:i on the object given (a script's). */
static void root_call_add(PluginObjectCall* call,
                          SrpcArg* in,
                          SrpcArg* out,
                          void* u) {
  (void)u;
  SrpcArg args[2] = {{0}, {0}};
  args[0].type = args[1].type = SRPC_TYPE_INT;
  args[0].u.ival = in[1].u.ival;
  args[1].u.ival = in[2].u.ival;
  SrpcArg sum = {0};
  sum.type = SRPC_TYPE_INT;
  int r =
      plugin_object_invoke(in[0].u.ptr, "add", 10000, NULL, args, 2, &sum, 1);
  if (r != PLUGIN_OBJECT_OK) {
    plugin_object_call_complete(call, PLUGIN_OBJECT_METHOD_FAILED);
    return;
  }
  out[0].u.ival = sum.u.ival;
  complete(call);
}

/* greet:os:s: calls greet:s:s on the object given. */
static void root_greet(PluginObjectCall* call,
                       SrpcArg* in,
                       SrpcArg* out,
                       void* u) {
  (void)u;
  SrpcArg arg = in[1];
  SrpcArg result = {0};
  result.type = SRPC_TYPE_STRING;
  int r = plugin_object_invoke(in[0].u.ptr, "greet", 10000, NULL, &arg, 1,
                               &result, 1);
  if (r != PLUGIN_OBJECT_OK) {
    plugin_object_call_complete(call, PLUGIN_OBJECT_METHOD_FAILED);
    return;
  }
  out[0].u.str = result.u.str; /* handed on: srpc frees it */
  out[0].count = result.count;
  complete(call);
}

/* keep:o: holds the object; drop:: lets it go; kept_add:ii:i calls add on
 * it. */
static void root_keep(PluginObjectCall* call,
                      SrpcArg* in,
                      SrpcArg* out,
                      void* u) {
  (void)out;
  (void)u;
  plugin_object_ref(in[0].u.ptr);
  pthread_mutex_lock(&g_mu);
  PluginObject* old = g_kept;
  g_kept = in[0].u.ptr;
  pthread_mutex_unlock(&g_mu);
  plugin_object_unref(old);
  complete(call);
}

static void root_drop(PluginObjectCall* call,
                      SrpcArg* in,
                      SrpcArg* out,
                      void* u) {
  (void)in;
  (void)out;
  (void)u;
  pthread_mutex_lock(&g_mu);
  PluginObject* old = g_kept;
  g_kept = NULL;
  pthread_mutex_unlock(&g_mu);
  plugin_object_unref(old);
  complete(call);
}

static void root_kept_add(PluginObjectCall* call,
                          SrpcArg* in,
                          SrpcArg* out,
                          void* u) {
  pthread_mutex_lock(&g_mu);
  PluginObject* kept = g_kept;
  plugin_object_ref(kept);
  pthread_mutex_unlock(&g_mu);
  SrpcArg args[3] = {{0}, in[0], in[1]};
  args[0].type = PLUGIN_TYPE_OBJECT;
  args[0].u.ptr = kept;
  if (kept == NULL) {
    plugin_object_call_complete(call, PLUGIN_OBJECT_METHOD_FAILED);
    return;
  }
  root_call_add(call, args, out, u);
  plugin_object_unref(kept);
}

/* same:o:o gives the object back. */
static void root_same(PluginObjectCall* call,
                      SrpcArg* in,
                      SrpcArg* out,
                      void* u) {
  (void)u;
  out[0].u.ptr = in[0].u.ptr;
  complete(call);
}

static const PluginMethodDef kRootMethods[] = {
    {"make_counter:i:o", root_make_counter},
    {"live::ii", root_live},
    {"call_add:oii:i", root_call_add},
    {"greet:os:s", root_greet},
    {"keep:o:", root_keep},
    {"drop::", root_drop},
    {"kept_add:ii:i", root_kept_add},
    {"same:o:o", root_same},
};
static const PluginObjectClass kRootClass = {
    kRootMethods, sizeof(kRootMethods) / sizeof(kRootMethods[0]), NULL, NULL};

/* ---- Messages ---- */

static void on_message(PluginMessage* m, void* u) {
  (void)u;
  if (m == NULL)
    return; /* the host's message channel ended */
  if (m->len == 6 && memcmp(m->data, "broker", 6) == 0 && m->num_fds == 1) {
    broker_set_default(m->fds[0]);
    m->fds[0] = -1; /* kept */
    plugin_runtime_post("broker-ok", 9, NULL, 0);
  } else {
    plugin_runtime_post(m->data, m->len, m->fds, m->num_fds);
  }
}

int main(void) {
  PluginRuntimeConfig config = {0};
  config.methods = kMethods;
  config.num_methods = sizeof(kMethods) / sizeof(kMethods[0]);
  config.on_message = on_message;
  int r = plugin_runtime_init(&config);
  if (r != PLUGIN_OK) {
    fprintf(stderr, "js_test_module: %s\n", plugin_result_string(r));
    return 2;
  }
  PluginObject* root = plugin_object_new(&kRootClass, NULL);
  plugin_runtime_set_root_object(root);
  plugin_object_unref(root);
  for (;;)
    pause();
}
