/* plugin/js: the `plugin` global's host side: launching modules, calling
 * their methods, postMessage and onmessage, make_socket, and the waits. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/js/js_internal.h"

#define MODULE_KEY DUK_HIDDEN_SYMBOL("module")
#define SOCKET_KEY DUK_HIDDEN_SYMBOL("socket")
#define SIGNATURE_KEY DUK_HIDDEN_SYMBOL("signature")

/* ---- Calls -------------------------------------------------------------- */

void js_free_job(JsJob* job) {
  js_free_args(job->in, job->num_in);
  js_free_args(job->out, job->num_out);
  plugin_object_unref(job->proxy);
  free(job);
}

/* The outcome of a job as a script value: [-1] gets the error (or
 * undefined) and [-2]... callers push both. Returns true on success with
 * the results pushed, false with the error pushed. */
static bool push_outcome(duk_context* ctx, JsJob* job) {
  bool module_call = job->proxy == NULL;
  bool ok = module_call ? job->result == SRPC_RESULT_OK
                        : job->result == PLUGIN_OBJECT_OK;
  if (!ok) {
    js_push_error(ctx, module_call ? "srpc" : "object", job->result);
    return false;
  }
  js_push_results(ctx, job->out, job->num_out);
  return true;
}

void js_finish_job(PluginJs* js, JsJob* job, bool call_back) {
  duk_context* ctx = js->ctx;
  if (call_back) {
    js_stash_push(ctx, job->callback);
    duk_push_undefined(ctx); /* this */
    if (push_outcome(ctx, job)) {
      duk_push_null(ctx); /* callback(null, result) */
      duk_swap_top(ctx, -2);
    } else {
      duk_push_undefined(ctx); /* callback(error, undefined) */
    }
    js_call_handler(js, 2);
    js_exports_recheck(js, job->in, job->num_in);
  }
  js_stash_del(ctx, job->callback);
  js_stash_del(ctx, job->keep);
  js_free_job(job);
}

typedef struct Conversion {
  JsJob* job;
  size_t count;
  size_t failed; /* the argument that did not fit, or (size_t)-1 */
  char err[256];
} Conversion;

/* Under duk_safe_call: the `count` values on the stack into job->in. The
 * slot being converted is counted first, so that whatever it holds is
 * freed with the job even if a getter throws midway. */
static duk_ret_t convert_args(duk_context* ctx, void* udata) {
  Conversion* c = udata;
  /* The safe call runs in the caller's frame: the values are the top
   * `count`. */
  duk_idx_t base = duk_get_top(ctx) - (duk_idx_t)c->count;
  for (size_t i = 0; i < c->count; i++) {
    c->job->num_in = i + 1;
    if (js_to_arg(ctx, base + (duk_idx_t)i, c->job->ins[i], false,
                  &c->job->in[i], c->err, sizeof(c->err)) != 0) {
      c->failed = i;
      break;
    }
  }
  return 0;
}

duk_ret_t js_invoke(duk_context* ctx,
                    JsModule* module,
                    PluginObject* proxy,
                    const char* signature,
                    duk_idx_t first) {
  PluginJs* js = js_from_ctx(ctx);
  JsJob* job = calloc(1, sizeof(*job));
  if (job == NULL)
    return js_throw(ctx, "system", ENOMEM);
  /* "name:ins:outs"; the names were checked when the method was made. */
  const char* c1 = strchr(signature, ':');
  const char* c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
  size_t name_len = c1 != NULL ? (size_t)(c1 - signature) : 0;
  size_t ins_len = c2 != NULL ? (size_t)(c2 - c1 - 1) : 0;
  if (c2 == NULL || name_len >= sizeof(job->name) || ins_len > SRPC_MAX_ARGS ||
      strlen(c2 + 1) > SRPC_MAX_ARGS) {
    free(job);
    return duk_type_error(ctx, "not a method signature: %s", signature);
  }
  memcpy(job->name, signature, name_len);
  memcpy(job->ins, c1 + 1, ins_len);
  strcpy(job->outs, c2 + 1);
  job->module = module;
  job->proxy = proxy;
  if (proxy != NULL)
    plugin_object_ref(proxy);
  job->timeout_ms = js->call_timeout_ms;
  /* A module's method is called by its full signature: the types are
   * checked by the module too. */
  if (module != NULL)
    snprintf(job->name, sizeof(job->name), "%s", signature);

  duk_idx_t nargs = duk_get_top(ctx) - first;
  bool async = nargs == (duk_idx_t)ins_len + 1 &&
               duk_is_function(ctx, first + nargs - 1);
  if (nargs != (duk_idx_t)ins_len && !async) {
    js_free_job(job);
    return duk_type_error(ctx,
                          "%s takes %d argument%s (and, to call "
                          "asynchronously, a callback), not %d",
                          signature, (int)ins_len, ins_len == 1 ? "" : "s",
                          (int)nargs);
  }
  /* The arguments are converted under duk_safe_call: a getter may throw,
   * and the job must be freed whatever happens. */
  Conversion c = {job, ins_len, (size_t)-1, ""};
  for (duk_idx_t i = 0; i < (duk_idx_t)ins_len; i++)
    duk_dup(ctx, first + i);
  bool thrown = duk_safe_call(ctx, convert_args, &c, (duk_idx_t)ins_len, 1) !=
                DUK_EXEC_SUCCESS;
  if (thrown || c.failed != (size_t)-1) {
    js_exports_recheck(js, job->in, job->num_in);
    js_free_job(job);
    if (thrown)
      return duk_throw(ctx); /* what the getter threw */
    return duk_type_error(ctx, "argument %d of %s: %s", (int)c.failed + 1,
                          signature, c.err);
  }
  duk_pop(ctx);
  job->num_out = strlen(job->outs);
  js_prepare_results(job->outs, job->out);

  if (async) {
    job->callback = js_stash_put(ctx, first + nargs - 1);
    /* The arguments stay reachable (exported objects among them) until
     * the call ends. */
    duk_push_array(ctx);
    for (duk_idx_t i = 0; i < (duk_idx_t)ins_len; i++) {
      duk_dup(ctx, first + i);
      duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
    }
    job->keep = js_stash_put(ctx, -1);
    duk_pop(ctx);
  }
  if (js_submit(js, job) != 0) {
    js_exports_recheck(js, job->in, job->num_in);
    js_stash_del(ctx, job->callback);
    js_stash_del(ctx, job->keep);
    js_free_job(job);
    return js_throw(ctx, "system", EAGAIN);
  }
  if (async)
    return 0;
  js_wait_job(js, job);
  bool ok = push_outcome(ctx, job);
  js_exports_recheck(js, job->in, job->num_in);
  js_free_job(job);
  if (!ok)
    return duk_throw(ctx);
  return 1;
}

/* ---- Modules ------------------------------------------------------------ */

static JsModule* this_module(duk_context* ctx, bool live) {
  JsModule* m = js_this_pointer(ctx, MODULE_KEY);
  if (m == NULL && live)
    js_throw(ctx, "plugin", PLUGIN_ERROR_CLOSED);
  return m;
}

/* A discovered method: module.add(1, 2), or with a callback last. */
static duk_ret_t module_method(duk_context* ctx) {
  JsModule* m = this_module(ctx, true);
  duk_push_current_function(ctx);
  duk_get_prop_string(ctx, -1, SIGNATURE_KEY);
  char signature[1024];
  snprintf(signature, sizeof(signature), "%s", duk_get_string(ctx, -1));
  duk_pop_2(ctx);
  return js_invoke(ctx, m, NULL, signature, 0);
}

/* module.call(nameOrSignature, ...args): by name, from the discovered
 * table, or by full signature. */
static duk_ret_t module_call(duk_context* ctx) {
  JsModule* m = this_module(ctx, true);
  const char* name = duk_require_string(ctx, 0);
  SrpcChannel* ch = plugin_module_channel(m->module);
  int n = srpc_channel_lookup(ch, name);
  if (n < 0)
    return js_throw(ctx, "srpc", SRPC_RESULT_BAD_RPC_NUMBER);
  const SrpcSignature* sig = srpc_channel_method(ch, (size_t)n);
  char signature[600];
  snprintf(signature, sizeof(signature), "%s:%s:%s", sig->name, sig->ins,
           sig->outs);
  return js_invoke(ctx, m, NULL, signature, 1);
}

/* Pushes {data: ArrayBuffer, descriptors: [Descriptor...]} taking the
 * message's descriptors. */
static void push_message(duk_context* ctx, PluginMessage* msg) {
  duk_push_object(ctx);
  js_push_bytes(ctx, msg->data, msg->len);
  duk_put_prop_string(ctx, -2, "data");
  duk_push_array(ctx);
  for (size_t i = 0; i < msg->num_fds; i++) {
    if (msg->fds[i] >= 0)
      js_push_descriptor(ctx, msg->fds[i]);
    else
      duk_push_null(ctx);
    msg->fds[i] = -1;
    duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
  }
  duk_put_prop_string(ctx, -2, "descriptors");
}

/* module.postMessage(data, [descriptors]) */
static duk_ret_t module_post(duk_context* ctx) {
  JsModule* m = this_module(ctx, true);
  size_t len;
  const uint8_t* data = js_get_bytes(ctx, 0, &len);
  if (data == NULL)
    return duk_type_error(ctx,
                          "postMessage: data must be an ArrayBuffer, a typed "
                          "array or a DataView");
  int fds[PLUGIN_MAX_MESSAGE_DESCRIPTORS];
  const char* why = NULL;
  int n =
      js_get_descriptor_list(ctx, 1, fds, PLUGIN_MAX_MESSAGE_DESCRIPTORS, &why);
  if (n < 0)
    return duk_type_error(ctx, "postMessage: %s", why);
  int r = plugin_module_post(m->module, data, len, fds, (size_t)n);
  if (r != PLUGIN_OK)
    return js_throw(ctx, "plugin", r);
  return 0;
}

static bool hooked_since(PluginJs* js, void* arg) {
  return js->hooks != *(uint64_t*)arg;
}

/* module.waitForMessage(timeoutMs): the module's next message, which its
 * onmessage will then not see; null on timeout. Meanwhile the main thread
 * runs the module's calls into script objects (a module may call back
 * before it posts), nothing else. */
static duk_ret_t module_wait(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  JsModule* m = this_module(ctx, true);
  int timeout = duk_get_int_default(ctx, 0, -1);
  int64_t deadline = timeout < 0 ? -1 : js_now_ms() + timeout;
  PluginMessage msg;
  int r;
  for (;;) {
    pthread_mutex_lock(&js->mu);
    uint64_t seen = js->hooks;
    pthread_mutex_unlock(&js->mu);
    r = plugin_module_wait_message(m->module, 0, &msg);
    if (r != PLUGIN_ERROR_TIMED_OUT)
      break;
    int64_t now = js_now_ms();
    if (deadline >= 0 && now >= deadline)
      break;
    /* A message arriving wakes the loop through the host's hook, unless
     * tasks were already waiting: look again every few ms then. */
    int64_t until = now + 5;
    if (deadline >= 0 && deadline < until)
      until = deadline;
    if (js_pump(js, false, true, until, hooked_since, &seen) ==
        PLUGIN_ERROR_CANCELLED) {
      r = PLUGIN_ERROR_CANCELLED;
      break;
    }
  }
  if (r == PLUGIN_ERROR_TIMED_OUT) {
    duk_push_null(ctx);
    return 1;
  }
  if (r != PLUGIN_OK)
    return js_throw(ctx, "plugin", r);
  push_message(ctx, &msg);
  plugin_message_free(&msg);
  return 1;
}

static duk_ret_t module_shutdown(duk_context* ctx);

/* module.root(): a proxy of the module's root object. */
static duk_ret_t module_root(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  JsModule* m = this_module(ctx, true);
  PluginObjects* objects = NULL;
  int r = plugin_module_objects(m->module, &objects);
  if (r != PLUGIN_OK)
    return js_throw(ctx, "plugin", r);
  pthread_mutex_lock(&js->mu);
  m->objects = objects;
  pthread_mutex_unlock(&js->mu);
  PluginObject* root = NULL;
  r = plugin_objects_root(objects, js->call_timeout_ms, &root);
  if (r != PLUGIN_OBJECT_OK)
    return js_throw(ctx, "object", r);
  js_push_object(ctx, root);
  return 1;
}

static duk_ret_t module_queued_bytes(duk_context* ctx) {
  JsModule* m = this_module(ctx, true);
  duk_push_number(ctx, (double)plugin_module_queued_bytes(m->module));
  return 1;
}

static duk_ret_t module_set_quota(duk_context* ctx) {
  JsModule* m = this_module(ctx, true);
  plugin_module_set_quota(m->module, (size_t)duk_require_number(ctx, 0));
  return 0;
}

/* Looks up the script's object for `m` and its handler `name`; pushes
 * [handler, module] and returns true if the handler is a function. */
static bool push_handler(PluginJs* js, uint64_t key, const char* name) {
  duk_context* ctx = js->ctx;
  js_stash_push(ctx, key);
  if (!duk_is_object(ctx, -1)) {
    duk_pop(ctx);
    return false;
  }
  duk_get_prop_string(ctx, -1, name);
  if (!duk_is_function(ctx, -1)) {
    duk_pop_2(ctx);
    return false;
  }
  duk_swap_top(ctx, -2); /* [handler, this] */
  return true;
}

static void on_module_message(PluginModule* module,
                              PluginMessage* msg,
                              int error,
                              void* user) {
  (void)module;
  JsModule* m = user;
  PluginJs* js = m->js;
  if (msg == NULL) {
    if (push_handler(js, m->key, "onclose")) {
      duk_push_int(js->ctx, error);
      js_call_handler(js, 1);
    }
    return;
  }
  js->delivered++;
  if (!push_handler(js, m->key, "onmessage"))
    return; /* nobody listens: dropped, as a page drops it */
  push_message(js->ctx, msg);
  js_stash_push(js->ctx, m->key);
  duk_put_prop_string(js->ctx, -2, "target");
  js_call_handler(js, 1);
}

static void on_module_exit(PluginModule* module, int status, void* user) {
  (void)module;
  JsModule* m = user;
  if (push_handler(m->js, m->key, "onexit")) {
    duk_push_int(m->js->ctx, status);
    js_call_handler(m->js, 1);
  }
}

static void on_module_log(PluginModule* module,
                          int level,
                          const char* text,
                          void* user) {
  (void)module;
  JsModule* m = user;
  if (push_handler(m->js, m->key, "onlog")) {
    duk_push_int(m->js->ctx, level);
    duk_push_string(m->js->ctx, text);
    js_call_handler(m->js, 2);
  }
}

static void on_module_quota(PluginModule* module, size_t queued, void* user) {
  (void)module;
  JsModule* m = user;
  if (push_handler(m->js, m->key, "onquota")) {
    duk_push_number(m->js->ctx, (double)queued);
    js_call_handler(m->js, 1);
  }
}

static bool module_idle(PluginJs* js, void* arg) {
  (void)js;
  return ((JsModule*)arg)->busy == 0;
}

/* Ends a module: calls on its object channel from now on fail, calls in
 * flight end, then the module is freed. */
static int end_module(PluginJs* js, JsModule* m, int grace_ms) {
  pthread_mutex_lock(&js->mu);
  m->closing = true;
  JsIncoming* mine = NULL;
  for (JsIncoming** p = &js->incoming; *p != NULL;) {
    JsIncoming* in = *p;
    if (m->objects != NULL &&
        plugin_object_call_channel(in->call) == m->objects) {
      *p = in->next;
      in->next = mine;
      mine = in;
    } else {
      p = &in->next;
    }
  }
  js->incoming_tail = NULL;
  for (JsIncoming* in = js->incoming; in != NULL; in = in->next)
    js->incoming_tail = in;
  pthread_mutex_unlock(&js->mu);
  while (mine != NULL) {
    JsIncoming* next = mine->next;
    js_fail_incoming(mine);
    mine = next;
  }
  int status = -1;
  plugin_module_shutdown(m->module, grace_ms, &status);
  js_pump(js, false, false, -1, module_idle, m);
  js_stash_del(js->ctx, m->key);
  m->key = 0;
  /* From inside the module's own call into a script object the channel
   * cannot be freed (it waits for that call): after it, then. */
  if (m->running > 0)
    m->free_pending = true;
  else
    js_free_module(js, m);
  return status;
}

void js_free_module(PluginJs* js, JsModule* m) {
  pthread_mutex_lock(&js->mu);
  for (JsModule** p = &js->modules; *p != NULL; p = &(*p)->next) {
    if (*p == m) {
      *p = m->next;
      break;
    }
  }
  pthread_mutex_unlock(&js->mu);
  plugin_module_free(m->module);
  free(m);
}

/* module.shutdown(graceMs): asks it to exit, kills it after graceMs;
 * returns the wait status. The module object is dead afterwards. */
static duk_ret_t module_shutdown(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  JsModule* m = this_module(ctx, true);
  int grace = duk_get_int_default(ctx, 0, 1000);
  duk_push_this(ctx);
  duk_del_prop_string(ctx, -1, MODULE_KEY);
  duk_pop(ctx);
  duk_push_int(ctx, end_module(js, m, grace));
  return 1;
}

static duk_ret_t module_is_alive(duk_context* ctx) {
  duk_push_boolean(ctx, this_module(ctx, false) != NULL);
  return 1;
}

static const duk_function_list_entry kModuleFns[] = {
    {"call", module_call, DUK_VARARGS},
    {"postMessage", module_post, 2},
    {"waitForMessage", module_wait, 1},
    {"root", module_root, 0},
    {"queuedBytes", module_queued_bytes, 0},
    {"setQuota", module_set_quota, 1},
    {"shutdown", module_shutdown, 1},
    {"isAlive", module_is_alive, 0},
    {NULL, NULL, 0},
};

/* plugin.launch(path, [args], {sandbox, startTimeoutMs}) -> module */
static duk_ret_t plugin_launch(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  const char* path = duk_require_string(ctx, 0);
  const char* argv[66];
  size_t argc = 0;
  duk_require_stack(ctx, 70);
  argv[argc++] = path;
  if (!duk_is_undefined(ctx, 1) && !duk_is_null(ctx, 1)) {
    if (!duk_is_array(ctx, 1) || duk_get_length(ctx, 1) > 64)
      return duk_type_error(ctx,
                            "launch: args must be an array of at most "
                            "64 strings");
    size_t n = duk_get_length(ctx, 1);
    for (size_t i = 0; i < n; i++) {
      duk_get_prop_index(ctx, 1, (duk_uarridx_t)i);
      if (!duk_is_string(ctx, -1))
        return duk_type_error(ctx, "launch: args must be strings");
      argv[argc++] = duk_get_string(ctx, -1); /* kept on the stack */
    }
  }
  argv[argc] = NULL;
  PluginLaunchOptions options = {0};
  options.path = path;
  options.argv = argv;
  if (duk_is_object(ctx, 2)) {
    duk_get_prop_string(ctx, 2, "sandbox");
    options.sandbox = duk_to_boolean(ctx, -1) ? 1 : 0;
    duk_get_prop_string(ctx, 2, "startTimeoutMs");
    options.start_timeout_ms = duk_get_int_default(ctx, -1, 0);
    duk_pop_2(ctx);
  }
  JsModule* m = calloc(1, sizeof(*m));
  if (m == NULL)
    return js_throw(ctx, "system", ENOMEM);
  m->js = js;
  options.callbacks.on_message = on_module_message;
  options.callbacks.on_exit = on_module_exit;
  options.callbacks.on_log = on_module_log;
  options.callbacks.on_quota = on_module_quota;
  options.callbacks.user = m;
  int r = plugin_module_launch(js->host, &options, &m->module);
  if (r != PLUGIN_OK) {
    int saved = errno;
    free(m);
    js_push_error(ctx, "plugin", r);
    duk_push_int(ctx, saved);
    duk_put_prop_string(ctx, -2, "errno");
    return duk_throw(ctx);
  }
  pthread_mutex_lock(&js->mu);
  m->next = js->modules;
  js->modules = m;
  pthread_mutex_unlock(&js->mu);

  duk_push_object(ctx);
  duk_push_pointer(ctx, m);
  duk_put_prop_string(ctx, -2, MODULE_KEY);
  duk_put_function_list(ctx, -1, kModuleFns);
  duk_push_int(ctx, (int)plugin_module_pid(m->module));
  duk_put_prop_string(ctx, -2, "pid");
  /* The discovered methods, as functions and as a list. */
  SrpcChannel* ch = plugin_module_channel(m->module);
  size_t count = srpc_channel_method_count(ch);
  duk_push_array(ctx);
  for (size_t i = 0; i < count; i++) {
    const SrpcSignature* sig = srpc_channel_method(ch, i);
    duk_push_sprintf(ctx, "%s:%s:%s", sig->name, sig->ins, sig->outs);
    duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
    if (duk_has_prop_string(ctx, -2, sig->name) ||
        strcmp(sig->name, "service_discovery") == 0)
      continue; /* a built-in's name: reachable with call() */
    duk_push_c_function(ctx, module_method, DUK_VARARGS);
    duk_push_sprintf(ctx, "%s:%s:%s", sig->name, sig->ins, sig->outs);
    duk_put_prop_string(ctx, -2, SIGNATURE_KEY);
    duk_put_prop_string(ctx, -3, sig->name);
  }
  duk_put_prop_string(ctx, -2, "methods");
  m->key = js_stash_put(ctx, -1); /* alive until it is shut down */
  return 1;
}

/* ---- make_socket -----------------------------------------------------------
 */

static JsSocket* this_socket(duk_context* ctx) {
  JsSocket* s = js_this_pointer(ctx, SOCKET_KEY);
  if (s == NULL)
    js_throw(ctx, "plugin", PLUGIN_ERROR_CLOSED);
  return s;
}

static void forget_socket(PluginJs* js, JsSocket* s) {
  for (JsSocket** p = &js->sockets; *p != NULL; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  js_stash_push(js->ctx, s->key);
  duk_del_prop_string(js->ctx, -1, SOCKET_KEY);
  duk_pop(js->ctx);
  js_stash_del(js->ctx, s->key);
  plugin_socket_close(s->socket);
  free(s);
}

static void on_socket_message(PluginSocket* socket,
                              PluginMessage* msg,
                              int error,
                              void* user) {
  (void)socket;
  JsSocket* s = user;
  PluginJs* js = s->js;
  duk_context* ctx = js->ctx;
  js_stash_push(ctx, s->key);
  duk_get_prop_string(ctx, -1, "callback");
  duk_swap_top(ctx, -2); /* [callback, socket] */
  if (msg == NULL) {
    /* The end: callback(null, error), then the socket is closed, unless
     * the callback closed it. */
    duk_push_null(ctx);
    duk_push_int(ctx, error);
    js_call_handler(js, 2);
    for (JsSocket* t = js->sockets; t != NULL; t = t->next) {
      if (t == s) {
        forget_socket(js, s);
        break;
      }
    }
    return;
  }
  js->delivered++;
  push_message(ctx, msg);
  js_stash_push(ctx, s->key);
  duk_put_prop_string(ctx, -2, "target");
  js_call_handler(js, 1);
}

/* socket.send(data, [descriptors]): to the module's end; never blocks. */
static duk_ret_t socket_send(duk_context* ctx) {
  JsSocket* s = this_socket(ctx);
  size_t len;
  const uint8_t* data = js_get_bytes(ctx, 0, &len);
  if (data == NULL)
    return duk_type_error(ctx, "send: data must be an ArrayBuffer or a view");
  int fds[PLUGIN_MAX_MESSAGE_DESCRIPTORS];
  const char* why = NULL;
  int n =
      js_get_descriptor_list(ctx, 1, fds, PLUGIN_MAX_MESSAGE_DESCRIPTORS, &why);
  if (n < 0)
    return duk_type_error(ctx, "send: %s", why);
  int r = plugin_socket_send(s->socket, data, len, fds, (size_t)n);
  if (r != PLUGIN_OK)
    return js_throw(ctx, "plugin", r);
  return 0;
}

static duk_ret_t socket_close(duk_context* ctx) {
  JsSocket* s = this_socket(ctx);
  forget_socket(js_from_ctx(ctx), s);
  return 0;
}

/* plugin.make_socket(callback) -> Descriptor (the module's end). The
 * callback gets each message ({data, descriptors, target: the socket})
 * and, at the end, (null, errno). descriptor.socket sends the other way. */
static duk_ret_t plugin_make_socket_js(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  if (!duk_is_function(ctx, 0))
    return duk_type_error(ctx, "make_socket: a callback is required");
  JsSocket* s = calloc(1, sizeof(*s));
  if (s == NULL)
    return js_throw(ctx, "system", ENOMEM);
  s->js = js;
  int fd = plugin_make_socket(js->host, on_socket_message, s, &s->socket);
  if (fd < 0) {
    int saved = errno;
    free(s);
    return js_throw(ctx, "system", saved);
  }
  s->next = js->sockets;
  js->sockets = s;
  duk_push_object(ctx);
  duk_push_pointer(ctx, s);
  duk_put_prop_string(ctx, -2, SOCKET_KEY);
  duk_dup(ctx, 0);
  duk_put_prop_string(ctx, -2, "callback");
  duk_push_c_function(ctx, socket_send, 2);
  duk_put_prop_string(ctx, -2, "send");
  duk_push_c_function(ctx, socket_close, 0);
  duk_put_prop_string(ctx, -2, "close");
  s->key = js_stash_put(ctx, -1);
  js_push_descriptor(ctx, fd);
  duk_swap_top(ctx, -2);
  duk_put_prop_string(ctx, -2, "socket");
  return 1;
}

/* ---- Waiting --------------------------------------------------------------
 */

static bool delivered_since(PluginJs* js, void* arg) {
  return js->delivered != *(uint64_t*)arg;
}

/* plugin.waitForMessage(timeoutMs): runs the loop until one message has
 * been handed to a handler (true) or the time passes (false); throws when
 * the waits are cancelled. */
static duk_ret_t plugin_wait_for_message(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  int timeout = duk_get_int_default(ctx, 0, -1);
  uint64_t before = js->delivered;
  int r = js_pump(js, true, true, timeout < 0 ? -1 : js_now_ms() + timeout,
                  delivered_since, &before);
  if (r == PLUGIN_ERROR_CANCELLED)
    return js_throw(ctx, "plugin", r);
  duk_push_boolean(ctx, r == PLUGIN_OK);
  return 1;
}

static bool quit_asked(PluginJs* js, void* arg) {
  (void)arg;
  return js->quit;
}

/* plugin.run(timeoutMs): the loop until plugin.quit() (true) or the time
 * passes (false). */
static duk_ret_t plugin_run(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  int timeout = duk_get_int_default(ctx, 0, -1);
  js->quit = false;
  int r = js_pump(js, true, true, timeout < 0 ? -1 : js_now_ms() + timeout,
                  quit_asked, NULL);
  js->quit = false;
  if (r == PLUGIN_ERROR_CANCELLED)
    return js_throw(ctx, "plugin", r);
  duk_push_boolean(ctx, r == PLUGIN_OK);
  return 1;
}

static duk_ret_t plugin_quit(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  pthread_mutex_lock(&js->mu);
  js->quit = true;
  pthread_mutex_unlock(&js->mu);
  return 0;
}

/* plugin.callTimeoutMs, read and written as a property. */
static duk_ret_t get_call_timeout(duk_context* ctx) {
  duk_push_int(ctx, js_from_ctx(ctx)->call_timeout_ms);
  return 1;
}

static duk_ret_t set_call_timeout(duk_context* ctx) {
  js_from_ctx(ctx)->call_timeout_ms = duk_require_int(ctx, 0);
  return 0;
}

static void put_codes(duk_context* ctx,
                      const char* name,
                      const char* const* names,
                      int first,
                      int count) {
  duk_push_object(ctx);
  for (int i = 0; i < count; i++) {
    if (names[i] == NULL)
      continue;
    duk_push_int(ctx, first + i);
    duk_put_prop_string(ctx, -2, names[i]);
  }
  duk_put_prop_string(ctx, -2, name);
}

void js_plugin_install(duk_context* ctx, duk_idx_t plugin_idx) {
  plugin_idx = duk_normalize_index(ctx, plugin_idx);
  static const duk_function_list_entry kFns[] = {
      {"launch", plugin_launch, 3},
      {"make_socket", plugin_make_socket_js, 1},
      {"waitForMessage", plugin_wait_for_message, 1},
      {"run", plugin_run, 1},
      {"quit", plugin_quit, 0},
      {NULL, NULL, 0},
  };
  duk_put_function_list(ctx, plugin_idx, kFns);
  duk_push_string(ctx, "callTimeoutMs");
  duk_push_c_function(ctx, get_call_timeout, 0);
  duk_push_c_function(ctx, set_call_timeout, 1);
  duk_def_prop(ctx, plugin_idx,
               DUK_DEFPROP_HAVE_GETTER | DUK_DEFPROP_HAVE_SETTER);

  /* The result codes, by layer, for scripts to compare e.code with. */
  duk_push_object(ctx);
  static const char* const kPlugin[] = {"OK",
                                        "INVALID_ARGUMENT",
                                        "NO_MEMORY",
                                        "NO_DESCRIPTORS",
                                        "CLOSED",
                                        "TIMED_OUT",
                                        "CANCELLED",
                                        "SPAWN",
                                        "START_TIMEOUT",
                                        "HANDSHAKE",
                                        NULL,
                                        "WRONG_THREAD",
                                        "SYSTEM"};
  put_codes(ctx, "plugin", kPlugin, 0, 13);
  static const char* const kSrpc[] = {"OK",
                                      "BREAK",
                                      "MESSAGE_TRUNCATED",
                                      "NO_MEMORY",
                                      "PROTOCOL_MISMATCH",
                                      "BAD_RPC_NUMBER",
                                      "BAD_ARG_TYPE",
                                      "TOO_FEW_ARGS",
                                      "TOO_MANY_ARGS",
                                      "IN_ARG_TYPE_MISMATCH",
                                      "OUT_ARG_TYPE_MISMATCH",
                                      "INTERNAL",
                                      "APP_ERROR"};
  put_codes(ctx, "srpc", kSrpc, SRPC_RESULT_OK, 13);
  duk_get_prop_string(ctx, -1, "srpc");
  duk_push_int(ctx, SRPC_RESULT_TIMED_OUT);
  duk_put_prop_string(ctx, -2, "TIMED_OUT");
  duk_push_int(ctx, SRPC_RESULT_CANCELLED);
  duk_put_prop_string(ctx, -2, "CANCELLED");
  duk_pop(ctx);
  static const char* const kObject[] = {"OK",
                                        "NO_SUCH_OBJECT",
                                        "NO_SUCH_METHOD",
                                        "BAD_ARGUMENTS",
                                        "METHOD_FAILED",
                                        "CLOSED",
                                        "TIMED_OUT",
                                        "CANCELLED",
                                        "NOT_A_PROXY",
                                        "PROTOCOL"};
  put_codes(ctx, "object", kObject, 0, 10);
  duk_put_prop_string(ctx, plugin_idx, "results");
}
