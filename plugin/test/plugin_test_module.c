/* A module for the plugin layer's tests: methods that exercise every path
 * of the runtime, and modes that misbehave at start-up.
 *
 *   plugin_test_module [--echo | --manual] [--log-at-start] [--early-posts]
 *   plugin_test_module --never-accept     sleeps without starting
 *   plugin_test_module --exit-now CODE    exits before starting
 *   plugin_test_module --accept-once      accepts the control channel only
 *
 * --echo: every message from the host is posted back, descriptors too.
 * --manual (the default): messages wait until `drain` reads them.
 * --early-posts: right after init (before the host has started it),
 * checks the runtime's refusals of bad input, sets a quota of 10 bytes and
 * posts 5 messages ("early0".."early4", the first with a descriptor of
 * /dev/null); exits 3 if a check fails. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imc/imc.h"
#include "plugin/module/plugin_runtime.h"

static char g_start_fds[256];  /* descriptors open when main began */
static uint32_t g_post_seq;    /* next sequence number we post */
static uint32_t g_receive_seq; /* next one we expect */

static void add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void echo(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  char* p = srpc_arg_alloc(&out[0], in[0].count);
  if (p == NULL && in[0].count > 0) {
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  if (in[0].count > 0)
    memcpy(p, in[0].u.carr, in[0].count);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

/* post:ii: posts `count` messages of `size` bytes (at least 4), each
 * starting with its sequence number, the rest a pattern of it. */
static void post(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  size_t size = in[1].u.ival < 4 ? 4 : (size_t)in[1].u.ival;
  uint8_t* buf = malloc(size);
  int r = buf != NULL ? SRPC_RESULT_OK : SRPC_RESULT_NO_MEMORY;
  for (int i = 0; r == SRPC_RESULT_OK && i < in[0].u.ival; i++) {
    uint32_t seq = g_post_seq++;
    memcpy(buf, &seq, 4);
    memset(buf + 4, (int)(seq & 0xff), size - 4);
    if (plugin_runtime_post(buf, size, NULL, 0) != PLUGIN_OK)
      r = SRPC_RESULT_APP_ERROR;
  }
  free(buf);
  srpc_rpc_complete(rpc, r);
}

/* drain:ii:lll receives `count` messages within `timeout_ms` and answers
 * (bytes, 1 if every sequence number was the next expected and every
 * body matched its pattern, descriptors received). */
static void drain(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int64_t bytes = 0, ok = 1, fds = 0;
  for (int i = 0; i < in[0].u.ival; i++) {
    PluginMessage m;
    int r = plugin_runtime_receive(&m, in[1].u.ival);
    if (r != PLUGIN_OK) {
      srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
      return;
    }
    bytes += (int64_t)m.len;
    fds += (int64_t)m.num_fds;
    uint32_t seq = 0;
    if (m.len >= 4)
      memcpy(&seq, m.data, 4);
    if (m.len < 4 || seq != g_receive_seq)
      ok = 0;
    for (size_t k = 4; k < m.len && ok; k++) {
      if (m.data[k] != (uint8_t)(seq & 0xff))
        ok = 0;
    }
    g_receive_seq = seq + 1;
    plugin_message_free(&m);
  }
  out[0].u.lval = bytes;
  out[1].u.lval = ok;
  out[2].u.lval = fds;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void sleep_ms(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  usleep((useconds_t)in[0].u.ival * 1000);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void crash(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)rpc;
  (void)in;
  (void)out;
  (void)u;
  abort();
}

static void exit_with(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)rpc;
  (void)out;
  (void)u;
  _exit(in[0].u.ival);
}

static void log_line(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  srpc_rpc_complete(rpc, plugin_runtime_log(in[0].u.ival, in[1].u.str));
}

/* Calls the host's "mul:ii:i" on `ch`. */
static int call_mul(SrpcChannel* ch, int a, int b, int32_t* product) {
  if (ch == NULL)
    return SRPC_RESULT_INTERNAL;
  int r = srpc_channel_discover(ch);
  if (r != SRPC_RESULT_OK)
    return r;
  return srpc_invoke(ch, "mul:ii:i", a, b, product);
}

static void host_mul(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int32_t product = 0;
  int r = call_mul(plugin_runtime_host_channel(), in[0].u.ival, in[1].u.ival,
                   &product);
  out[0].u.ival = product;
  srpc_rpc_complete(rpc, r);
}

static void channel_mul(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int32_t product = 0;
  int r = call_mul(plugin_runtime_open_channel(), in[0].u.ival, in[1].u.ival,
                   &product);
  out[0].u.ival = product;
  srpc_rpc_complete(rpc, r);
}

/* peer_add:sii:i: connects to the module given under name s and calls its
 * add. */
static void peer_add(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int address = plugin_runtime_wait_address(in[0].u.str, 5000);
  SrpcChannel* ch = address >= 0 ? plugin_runtime_connect(address, 5000) : NULL;
  if (address >= 0)
    close(address);
  int r = ch == NULL ? SRPC_RESULT_APP_ERROR : srpc_channel_discover(ch);
  int32_t sum = 0;
  if (r == SRPC_RESULT_OK)
    r = srpc_invoke(ch, "add", in[1].u.ival, in[2].u.ival, &sum);
  out[0].u.ival = sum;
  srpc_rpc_complete(rpc, r);
}

/* post_fd:h: posts "fd" with the descriptor it was given. */
static void post_fd(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  (void)u;
  int r = plugin_runtime_post("fd", 2, &in[0].u.hval, 1);
  srpc_rpc_complete(rpc,
                    r == PLUGIN_OK ? SRPC_RESULT_OK : SRPC_RESULT_APP_ERROR);
}

/* socket_send:hC: sends the bytes as one datagram on a make_socket
 * descriptor, with that descriptor's own duplicate attached, then waits
 * for one reply datagram and answers its bytes. */
static void socket_send(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int fd = in[0].u.hval;
  struct NaClImcMsgIoVec iov = {in[1].u.carr, in[1].count};
  struct NaClImcMsgHdr msg = {&iov, 1, &fd, 1, 0};
  if (imc_sendmsg(fd, &msg, 0) < 0) {
    srpc_rpc_complete(rpc, SRPC_RESULT_APP_ERROR);
    return;
  }
  char buf[256];
  struct NaClImcMsgIoVec riov = {buf, sizeof(buf)};
  struct NaClImcMsgHdr reply = {&riov, 1, NULL, 0, 0};
  int n = imc_recvmsg(fd, &reply, 0);
  char* p = n > 0 ? srpc_arg_alloc(&out[0], (uint32_t)n) : NULL;
  if (p != NULL)
    memcpy(p, buf, (size_t)n);
  srpc_rpc_complete(
      rpc, n > 0 && p != NULL ? SRPC_RESULT_OK : SRPC_RESULT_APP_ERROR);
}

static void queued(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  (void)u;
  out[0].u.lval = (int64_t)plugin_runtime_queued_bytes();
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static void start_fds(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  (void)u;
  srpc_rpc_complete(rpc, srpc_arg_set_string(&out[0], g_start_fds) == 0
                             ? SRPC_RESULT_OK
                             : SRPC_RESULT_NO_MEMORY);
}

static int g_quota_calls;

static void count_quota(size_t queued, void* u) {
  (void)queued;
  (void)u;
  g_quota_calls++;
}

static void quota_calls(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  (void)u;
  out[0].u.ival = g_quota_calls;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

/* Lists the open descriptors, ascending, as "0 1 2 3". */
static void list_fds(char* out, size_t size) {
  int fds[64];
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  struct dirent* e;
  int own = d != NULL ? dirfd(d) : -1;
  while (d != NULL && (e = readdir(d)) != NULL && n < 64) {
    if (e->d_name[0] != '.' && atoi(e->d_name) != own)
      fds[n++] = atoi(e->d_name);
  }
  if (d != NULL)
    closedir(d);
  for (int i = 1; i < n; i++) {
    for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
      int t = fds[j];
      fds[j] = fds[j - 1];
      fds[j - 1] = t;
    }
  }
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < n && used < size; i++)
    used += (size_t)snprintf(out + used, size - used, i ? " %d" : "%d", fds[i]);
}

/* log_long::: a log line longer than the host takes. */
static void log_long(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  (void)out;
  (void)u;
  char text[5001];
  memset(text, 'L', 5000);
  text[5000] = '\0';
  srpc_rpc_complete(rpc, plugin_runtime_log(0, text));
}

/* open_channels:i:i: asks the host for `n` more channels; answers how many
 * it got. */
static void open_channels(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)u;
  int got = 0;
  for (int i = 0; i < in[0].u.ival; i++) {
    if (plugin_runtime_open_channel() != NULL)
      got++;
  }
  out[0].u.ival = got;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

static const SrpcMethod kMethods[] = {
    {"log_long::", log_long},
    {"open_channels:i:i", open_channels},
    {"quota_calls::i", quota_calls},
    {"start_fds::s", start_fds},
    {"add:ii:i", add},
    {"echo:C:C", echo},
    {"post:ii:", post},
    {"drain:ii:lll", drain},
    {"sleep:i:", sleep_ms},
    {"crash::", crash},
    {"exit:i:", exit_with},
    {"log:is:", log_line},
    {"host_mul:ii:i", host_mul},
    {"channel_mul:ii:i", channel_mul},
    {"peer_add:sii:i", peer_add},
    {"post_fd:h:", post_fd},
    {"socket_send:hC:C", socket_send},
    {"queued::l", queued},
};

/* ---- The root object: what the object tests call. ---- */

static PluginObject* g_kept; /* keep:o: */

static void obj_add(PluginObjectCall* call,
                    SrpcArg* in,
                    SrpcArg* out,
                    void* u) {
  (void)u;
  out[0].u.ival = in[0].u.ival + in[1].u.ival;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

/* call_add:oii:i: calls add on the object it is given. */
static void obj_call_add(PluginObjectCall* call,
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
  out[0].u.ival = r == PLUGIN_OBJECT_OK ? sum.u.ival : -r;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

static void obj_keep(PluginObjectCall* call,
                     SrpcArg* in,
                     SrpcArg* out,
                     void* u) {
  (void)out;
  (void)u;
  plugin_object_ref(in[0].u.ptr);
  plugin_object_unref(g_kept);
  g_kept = in[0].u.ptr;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

static void obj_drop(PluginObjectCall* call,
                     SrpcArg* in,
                     SrpcArg* out,
                     void* u) {
  (void)in;
  (void)out;
  (void)u;
  plugin_object_unref(g_kept);
  g_kept = NULL;
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK);
}

static const PluginMethodDef kRootMethods[] = {
    {"add:ii:i", obj_add},
    {"call_add:oii:i", obj_call_add},
    {"keep:o:", obj_keep},
    {"drop::", obj_drop},
};
static const PluginObjectClass kRootClass = {
    kRootMethods, sizeof(kRootMethods) / sizeof(kRootMethods[0]), NULL, NULL};

static void echo_message(PluginMessage* m, void* u) {
  (void)u;
  if (m == NULL)
    return; /* the host's message channel ended */
  plugin_runtime_post(m->data, m->len, m->fds, m->num_fds);
}

int main(int argc, char** argv) {
  list_fds(g_start_fds, sizeof(g_start_fds));
  const char* mode = argc > 1 ? argv[1] : "--manual";
  if (strcmp(mode, "--never-accept") == 0) {
    for (;;)
      pause();
  }
  if (strcmp(mode, "--exit-now") == 0)
    return argc > 2 ? atoi(argv[2]) : 3;
  if (strcmp(mode, "--accept-once") == 0) {
    int fd = imc_accept(3);
    (void)fd;
    for (;;)
      pause();
  }
  PluginRuntimeConfig config = {0};
  config.methods = kMethods;
  config.num_methods = sizeof(kMethods) / sizeof(kMethods[0]);
  if (strcmp(mode, "--echo") == 0)
    config.on_message = echo_message;
  config.on_quota = count_quota;
  bool early = false;
  for (int i = 1; i < argc; i++)
    early |= strcmp(argv[i], "--early-posts") == 0;
  if (early) {
    /* Refusals before init, and of a bad table. */
    PluginMessage m;
    if (plugin_runtime_post("x", 1, NULL, 0) != PLUGIN_ERROR_INVALID_ARGUMENT ||
        plugin_runtime_receive(&m, 0) != PLUGIN_ERROR_INVALID_ARGUMENT ||
        plugin_runtime_wait_started(0) != PLUGIN_ERROR_INVALID_ARGUMENT ||
        plugin_runtime_wait_address("a", 0) != -1)
      return 3;
    SrpcMethod bad[] = {{"no colons", add}};
    PluginRuntimeConfig wrong = config;
    wrong.methods = bad;
    wrong.num_methods = 1;
    if (plugin_runtime_init(&wrong) != PLUGIN_ERROR_INVALID_ARGUMENT ||
        plugin_runtime_init(NULL) != PLUGIN_ERROR_INVALID_ARGUMENT)
      return 3;
  }
  int r = plugin_runtime_init(&config);
  if (r != PLUGIN_OK) {
    fprintf(stderr, "plugin_test_module: %s\n", plugin_result_string(r));
    return 2;
  }
  if (early) {
    if (plugin_runtime_init(&config) != PLUGIN_ERROR_INVALID_ARGUMENT)
      return 3; /* a second init */
    plugin_runtime_set_quota(10);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int bad_fd = 1000;
    if (plugin_runtime_post("x", 1, &bad_fd, 1) == PLUGIN_OK ||
        plugin_runtime_post(NULL, 5, NULL, 0) == PLUGIN_OK)
      return 3;
    for (int i = 0; i < 5; i++) {
      char text[8];
      snprintf(text, sizeof(text), "early%d", i);
      if (plugin_runtime_post(text, 6, i == 0 ? &devnull : NULL,
                              i == 0 ? 1 : 0) != PLUGIN_OK)
        return 3;
    }
    close(devnull);
  }
  PluginObject* root = plugin_object_new(&kRootClass, NULL);
  plugin_runtime_set_root_object(root);
  plugin_object_unref(root);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--log-at-start") == 0) {
      plugin_runtime_wait_started(-1);
      plugin_runtime_log(1, "started");
    }
  }
  for (;;)
    pause();
}
