/* plugin/js: objects both ways (seed 001's proxies). A module's object
 * reaches a script as a proxy whose methods are functions (get_x/set_x
 * pairs also as a property x); dropping the proxy and letting the
 * collector take it releases the object at its owner. A script's object,
 * exported with plugin.exportObject, reaches modules as theirs; it is kept
 * alive while any module holds a reference, whatever the script does. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/js/js_internal.h"

#define PROXY_KEY DUK_HIDDEN_SYMBOL("proxy")
#define EXPORT_KEY DUK_HIDDEN_SYMBOL("export")
#define SIGNATURE_KEY DUK_HIDDEN_SYMBOL("signature")

/* ---- Exported objects ---------------------------------------------------- */

static void free_export(JsExport* exp) {
  if (exp == NULL)
    return;
  for (size_t i = 0; i < exp->num_methods; i++)
    free(exp->signatures[i]);
  free(exp->signatures);
  free(exp->defs);
  free(exp->names);
  free(exp->ins);
  free(exp->outs);
  free(exp);
}

static void export_destroy(void* user) {
  free_export(user);
}

/* A script object is pinned (strongly referenced from the stash) while a
 * module may hold it: while some call that carries it is under way
 * (`uses`) or it is exported on some channel. */
static void recheck_one(PluginJs* js, PluginObject* o) {
  if (o == NULL || plugin_object_is_proxy(o))
    return;
  JsExport* exp = plugin_object_user(o);
  if (exp != NULL && exp->key != 0 && exp->uses == 0 &&
      plugin_object_exports(o) == 0) {
    js_stash_del(js->ctx, exp->key);
    exp->key = 0;
  }
}

void js_export_use(duk_context* ctx, duk_idx_t idx, PluginObject* o) {
  if (o == NULL || plugin_object_is_proxy(o))
    return;
  JsExport* exp = plugin_object_user(o);
  if (exp->key == 0)
    exp->key = js_stash_put(ctx, idx);
  exp->uses++;
}

void js_export_done(PluginJs* js, PluginObject* o) {
  if (o == NULL || plugin_object_is_proxy(o))
    return;
  JsExport* exp = plugin_object_user(o);
  exp->uses--;
  recheck_one(js, o);
}

void js_exports_recheck(PluginJs* js, SrpcArg* args, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (args[i].type == PLUGIN_TYPE_OBJECT)
      js_export_done(js, args[i].u.ptr);
  }
}

typedef struct Recheck {
  PluginJs* js;
  PluginObject* object;
} Recheck;

static void recheck_task(void* arg) {
  Recheck* r = arg;
  if (r->js->ctx != NULL)
    recheck_one(r->js, r->object);
  plugin_object_unref(r->object);
  free(r);
}

/* A module let go of its last reference: if none holds one now, the script
 * side may be collected. Runs on the channel's thread. */
static void export_released(PluginObject* o, PluginObjects* ch, void* user) {
  (void)ch;
  JsExport* exp = user;
  Recheck* r = malloc(sizeof(*r));
  if (r == NULL)
    return; /* stays pinned: a leak of one object, never a crash */
  r->js = exp->js;
  r->object = o;
  plugin_object_ref(o);
  if (plugin_call_on_main_thread(exp->js->host, recheck_task, r) != PLUGIN_OK) {
    plugin_object_unref(o);
    free(r);
  }
}

void js_fail_incoming(JsIncoming* in) {
  plugin_object_call_complete(in->call, PLUGIN_OBJECT_METHOD_FAILED);
  free(in);
}

/* Every method of an exported object: queued for the main thread. */
static void export_method(PluginObjectCall* call,
                          SrpcArg* in,
                          SrpcArg* out,
                          void* user) {
  JsExport* exp = user;
  PluginJs* js = exp->js;
  JsIncoming* inc = calloc(1, sizeof(*inc));
  if (inc == NULL) {
    plugin_object_call_complete(call, PLUGIN_OBJECT_METHOD_FAILED);
    return;
  }
  *inc = (JsIncoming){NULL, call, in, out, exp};
  PluginObjects* ch = plugin_object_call_channel(call);
  pthread_mutex_lock(&js->mu);
  bool refuse = js->closing;
  for (JsModule* m = js->modules; m != NULL && !refuse; m = m->next)
    refuse = m->closing && m->objects == ch;
  if (!refuse) {
    if (js->incoming_tail != NULL)
      js->incoming_tail->next = inc;
    else
      js->incoming = inc;
    js->incoming_tail = inc;
    pthread_cond_broadcast(&js->cv);
  }
  pthread_mutex_unlock(&js->mu);
  if (refuse)
    js_fail_incoming(inc);
}

typedef struct Incoming {
  PluginJs* js;
  JsIncoming* inc;
  const char* name;
  const char* ins;
  const char* outs;
  bool ok;
  char err[256];
  PluginObject* objects[SRPC_MAX_ARGS]; /* results going out, referenced */
  size_t num_objects;
} Incoming;

/* Under duk_safe_call (getters and the method itself may throw): looks the
 * method up, calls it, converts what it returns into the results. */
static duk_ret_t incoming_body(duk_context* ctx, void* udata) {
  Incoming* c = udata;
  JsExport* exp = c->inc->exp;
  js_stash_push(ctx, exp->key);
  if (exp->key == 0 || !duk_is_object(ctx, -1)) {
    snprintf(c->err, sizeof(c->err), "the object is gone");
    return 0;
  }
  duk_get_prop_string(ctx, -1, c->name);
  if (!duk_is_function(ctx, -1)) {
    snprintf(c->err, sizeof(c->err), "no function %s", c->name);
    return 0;
  }
  duk_swap_top(ctx, -2); /* [fn, this] */
  size_t num_in = strlen(c->ins);
  duk_require_stack(ctx, (duk_idx_t)num_in + 4);
  for (size_t i = 0; i < num_in; i++)
    js_push_arg(ctx, &c->inc->in[i], false);
  duk_call_method(ctx, (duk_idx_t)num_in);
  /* The return value into the results: one value, or an array of them. */
  size_t num_out = strlen(c->outs);
  duk_idx_t value = duk_get_top_index(ctx);
  if (num_out > 1 &&
      (!duk_is_array(ctx, value) || duk_get_length(ctx, value) != num_out)) {
    snprintf(c->err, sizeof(c->err), "must return an array of %zu results",
             num_out);
    return 0;
  }
  for (size_t i = 0; i < num_out; i++) {
    duk_idx_t at = value;
    if (num_out > 1) {
      duk_get_prop_index(ctx, value, (duk_uarridx_t)i);
      at = duk_get_top_index(ctx);
    }
    if (js_to_arg(ctx, at, c->outs[i], true, &c->inc->out[i], c->err,
                  sizeof(c->err)) != 0)
      return 0;
    if (c->outs[i] == PLUGIN_TYPE_OBJECT && c->inc->out[i].u.ptr != NULL) {
      c->objects[c->num_objects] = c->inc->out[i].u.ptr;
      plugin_object_ref(c->objects[c->num_objects++]);
    }
    if (num_out > 1)
      duk_pop(ctx);
  }
  c->ok = true;
  return 0;
}

/* The module the call came from, if any (main thread). */
static JsModule* module_of(PluginJs* js, PluginObjects* ch) {
  for (JsModule* m = js->modules; m != NULL; m = m->next) {
    if (m->objects == ch)
      return m;
  }
  return NULL;
}

void js_run_incoming(PluginJs* js, JsIncoming* inc) {
  duk_context* ctx = js->ctx;
  JsExport* exp = inc->exp;
  size_t index = plugin_object_call_method(inc->call);
  Incoming c = {js,
                inc,
                exp->names[index],
                exp->ins[index],
                exp->outs[index],
                false,
                "",
                {NULL},
                0};
  JsModule* m = module_of(js, plugin_object_call_channel(inc->call));
  if (m != NULL)
    m->running++;
  if (duk_safe_call(ctx, incoming_body, &c, 0, 1) != DUK_EXEC_SUCCESS) {
    fprintf(js->err, "exception in exported method %s: %s\n", c.name,
            duk_safe_to_stacktrace(ctx, -1));
  } else if (!c.ok) {
    fprintf(js->err, "exported method %s: %s\n", c.name, c.err);
  }
  duk_pop(ctx);
  plugin_object_call_complete(
      inc->call, c.ok ? PLUGIN_OBJECT_OK : PLUGIN_OBJECT_METHOD_FAILED);
  free(inc);
  for (size_t i = 0; i < c.num_objects; i++) {
    js_export_done(js, c.objects[i]);
    plugin_object_unref(c.objects[i]);
  }
  if (m != NULL && --m->running == 0 && m->free_pending)
    js_free_module(js, m);
}

static duk_ret_t export_finalize(duk_context* ctx) {
  if (js_get_own(ctx, 0, EXPORT_KEY)) {
    JsExport* exp = duk_get_pointer(ctx, -1);
    duk_del_prop_string(ctx, 0, EXPORT_KEY);
    if (exp != NULL)
      plugin_object_unref(exp->object); /* the last one frees exp */
  }
  return 0;
}

/* Splits "name:ins:outs". */
static bool split_signature(const char* sig,
                            char* name,
                            char* ins,
                            char* outs) {
  const char* c1 = strchr(sig, ':');
  const char* c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
  if (c2 == NULL || c1 == sig || (size_t)(c1 - sig) >= 256 ||
      (size_t)(c2 - c1 - 1) > SRPC_MAX_ARGS || strlen(c2 + 1) > SRPC_MAX_ARGS)
    return false;
  memcpy(name, sig, (size_t)(c1 - sig));
  name[c1 - sig] = '\0';
  memcpy(ins, c1 + 1, (size_t)(c2 - c1 - 1));
  ins[c2 - c1 - 1] = '\0';
  strcpy(outs, c2 + 1);
  return true;
}

/* plugin.exportObject(object, ["name:ins:outs", ...]) -> object: modules
 * can now be given it ('o' arguments and results) and call those methods
 * on it (on the main thread, `this` the object). */
static duk_ret_t plugin_export_object(duk_context* ctx) {
  PluginJs* js = js_from_ctx(ctx);
  if (!duk_is_object(ctx, 0) || duk_is_function(ctx, 0) ||
      duk_is_buffer_data(ctx, 0))
    return duk_type_error(ctx, "exportObject: an object is required");
  bool taken = js_get_own(ctx, 0, EXPORT_KEY) || js_get_own(ctx, 0, PROXY_KEY);
  if (taken)
    return duk_type_error(ctx, "exportObject: already exported or a proxy");
  if (!duk_is_array(ctx, 1))
    return duk_type_error(ctx,
                          "exportObject: an array of signatures is "
                          "required");
  size_t n = duk_get_length(ctx, 1);
  if (n > 1024)
    return duk_type_error(ctx, "exportObject: at most 1024 methods");
  JsExport* exp = calloc(1, sizeof(*exp));
  if (exp == NULL)
    return js_throw(ctx, "system", ENOMEM);
  exp->js = js;
  exp->defs = calloc(n ? n : 1, sizeof(*exp->defs));
  exp->names = calloc(n ? n : 1, sizeof(*exp->names));
  exp->ins = calloc(n ? n : 1, sizeof(*exp->ins));
  exp->outs = calloc(n ? n : 1, sizeof(*exp->outs));
  exp->signatures = calloc(n ? n : 1, sizeof(*exp->signatures));
  if (exp->defs == NULL || exp->names == NULL || exp->ins == NULL ||
      exp->outs == NULL || exp->signatures == NULL) {
    free_export(exp);
    return js_throw(ctx, "system", ENOMEM);
  }
  for (size_t i = 0; i < n; i++) {
    duk_get_prop_index(ctx, 1, (duk_uarridx_t)i);
    const char* sig = duk_get_string(ctx, -1);
    bool ok = sig != NULL &&
              split_signature(sig, exp->names[i], exp->ins[i], exp->outs[i]);
    char* copy = ok ? strdup(sig) : NULL;
    duk_pop(ctx);
    if (copy == NULL) {
      free_export(exp);
      return duk_type_error(ctx,
                            "exportObject: signature %d is not "
                            "\"name:ins:outs\"",
                            (int)i);
    }
    exp->signatures[i] = copy;
    exp->defs[i].signature = copy;
    exp->defs[i].fn = export_method;
    exp->num_methods = i + 1;
  }
  exp->cls.methods = exp->defs;
  exp->cls.num_methods = n;
  exp->cls.on_released = export_released;
  exp->cls.destroy = export_destroy;
  exp->object = plugin_object_new(&exp->cls, exp);
  if (exp->object == NULL) {
    free_export(exp);
    return duk_type_error(ctx,
                          "exportObject: an invalid or repeated "
                          "signature");
  }
  duk_push_pointer(ctx, exp);
  duk_put_prop_string(ctx, 0, EXPORT_KEY);
  duk_push_c_function(ctx, export_finalize, 1);
  duk_set_finalizer(ctx, 0);
  duk_dup(ctx, 0);
  return 1;
}

/* plugin.exports(object): on how many channels a module holds it. */
static duk_ret_t plugin_exports(duk_context* ctx) {
  bool bad = false;
  PluginObject* o = js_get_object(ctx, 0, &bad);
  if (bad || o == NULL || plugin_object_is_proxy(o))
    return duk_type_error(ctx, "exports: an exported object is required");
  duk_push_number(ctx, (double)plugin_object_exports(o));
  return 1;
}

/* ---- Proxies ------------------------------------------------------------- */

static PluginObject* this_proxy(duk_context* ctx) {
  PluginObject* o = js_this_pointer(ctx, PROXY_KEY);
  if (o == NULL)
    js_throw(ctx, "object", PLUGIN_OBJECT_NOT_A_PROXY);
  return o;
}

static duk_ret_t proxy_method(duk_context* ctx) {
  PluginObject* o = this_proxy(ctx);
  duk_push_current_function(ctx);
  duk_get_prop_string(ctx, -1, SIGNATURE_KEY);
  char signature[600];
  snprintf(signature, sizeof(signature), "%s", duk_get_string(ctx, -1));
  duk_pop_2(ctx);
  return js_invoke(ctx, NULL, o, signature, 0);
}

/* proxy.invoke(name, ...args): by name, from the owner's table. */
static duk_ret_t proxy_invoke(duk_context* ctx) {
  PluginObject* o = this_proxy(ctx);
  const char* name = duk_require_string(ctx, 0);
  size_t count = 0;
  plugin_object_method_count(o, 0, NULL, &count); /* fetched already */
  char signature[600];
  for (size_t i = 0; i < count; i++) {
    if (plugin_object_method_signature(o, i, signature, sizeof(signature)) &&
        strncmp(signature, name, strlen(name)) == 0 &&
        signature[strlen(name)] == ':')
      return js_invoke(ctx, NULL, o, signature, 1);
  }
  return js_throw(ctx, "object", PLUGIN_OBJECT_NO_SUCH_METHOD);
}

static duk_ret_t proxy_finalize(duk_context* ctx) {
  if (js_get_own(ctx, 0, PROXY_KEY)) {
    PluginObject* o = duk_get_pointer(ctx, -1);
    duk_del_prop_string(ctx, 0, PROXY_KEY);
    plugin_object_unref(o); /* the owner hears of it */
  }
  return 0;
}

static duk_ret_t proxy_release(duk_context* ctx) {
  duk_push_this(ctx);
  duk_insert(ctx, 0);
  return proxy_finalize(ctx);
}

static duk_ret_t proxy_is_alive(duk_context* ctx) {
  PluginObject* o = js_this_pointer(ctx, PROXY_KEY);
  duk_push_boolean(ctx, o != NULL && plugin_object_is_alive(o));
  return 1;
}

/* Defines property `prop` with the getter and/or setter methods. */
static void define_accessor(duk_context* ctx,
                            duk_idx_t obj,
                            const char* prop,
                            const char* getter,
                            const char* setter) {
  duk_uint_t flags = DUK_DEFPROP_SET_ENUMERABLE;
  duk_push_string(ctx, prop);
  if (getter != NULL) {
    duk_push_c_function(ctx, proxy_method, 0);
    duk_push_string(ctx, getter);
    duk_put_prop_string(ctx, -2, SIGNATURE_KEY);
    flags |= DUK_DEFPROP_HAVE_GETTER;
  }
  if (setter != NULL) {
    duk_push_c_function(ctx, proxy_method, 1);
    duk_push_string(ctx, setter);
    duk_put_prop_string(ctx, -2, SIGNATURE_KEY);
    flags |= DUK_DEFPROP_HAVE_SETTER;
  }
  duk_def_prop(ctx, obj, flags);
}

static void push_proxy(duk_context* ctx, PluginObject* o) {
  PluginJs* js = js_from_ctx(ctx);
  duk_push_object(ctx);
  duk_idx_t obj = duk_get_top_index(ctx);
  duk_push_heap_stash(ctx);
  duk_get_prop_string(ctx, -1, "ProxyPrototype");
  duk_set_prototype(ctx, obj);
  duk_pop(ctx);
  duk_push_pointer(ctx, o);
  duk_put_prop_string(ctx, obj, PROXY_KEY);

  size_t count = 0;
  int r =
      plugin_object_method_count(o, js->call_timeout_ms, js->cancel, &count);
  duk_push_array(ctx);
  char sig[600], name[256], ins[SRPC_MAX_ARGS + 1], outs[SRPC_MAX_ARGS + 1];
  for (size_t i = 0; r == PLUGIN_OBJECT_OK && i < count; i++) {
    if (plugin_object_method_signature(o, i, sig, sizeof(sig)) == 0 ||
        !split_signature(sig, name, ins, outs))
      continue;
    duk_push_string(ctx, sig);
    duk_put_prop_index(ctx, -2, (duk_uarridx_t)i);
    if (!duk_has_prop_string(ctx, obj, name)) {
      duk_push_c_function(ctx, proxy_method, DUK_VARARGS);
      duk_push_string(ctx, sig);
      duk_put_prop_string(ctx, -2, SIGNATURE_KEY);
      duk_put_prop_string(ctx, obj, name);
    }
    /* get_x::T and set_x:T: also make a property x. */
    bool getter =
        strncmp(name, "get_", 4) == 0 && ins[0] == '\0' && strlen(outs) == 1;
    bool setter =
        strncmp(name, "set_", 4) == 0 && strlen(ins) == 1 && outs[0] == '\0';
    if ((getter || setter) && name[4] != '\0' &&
        !duk_has_prop_string(ctx, obj, name + 4)) {
      /* Look for the other half. */
      char other[600], want[260];
      snprintf(want, sizeof(want), "%s_%s:", getter ? "set" : "get", name + 4);
      const char* pair = NULL;
      for (size_t j = 0; j < count; j++) {
        if (plugin_object_method_signature(o, j, other, sizeof(other)) &&
            strncmp(other, want, strlen(want)) == 0) {
          pair = other;
          break;
        }
      }
      define_accessor(ctx, obj, name + 4, getter ? sig : pair,
                      setter ? sig : pair);
    }
  }
  duk_put_prop_string(ctx, obj, "methods");
  if (r != PLUGIN_OBJECT_OK) {
    /* Without its table the proxy still releases; invoke() fails. */
    fprintf(js->err, "proxy: no method table: %s\n",
            plugin_object_result_string(r));
  }
}

void js_push_object(duk_context* ctx, PluginObject* o) {
  if (plugin_object_is_proxy(o)) {
    push_proxy(ctx, o); /* takes the reference */
    return;
  }
  /* One of ours, back home: the script's own object. */
  JsExport* exp = plugin_object_user(o);
  if (exp != NULL && exp->key != 0) {
    js_stash_push(ctx, exp->key);
  } else {
    fprintf(js_from_ctx(ctx)->err, "exported object came back unpinned\n");
    duk_push_null(ctx);
  }
  plugin_object_unref(o);
}

PluginObject* js_get_object(duk_context* ctx, duk_idx_t idx, bool* bad) {
  *bad = false;
  if (duk_is_null_or_undefined(ctx, idx))
    return NULL;
  PluginObject* o = NULL;
  if (js_get_own(ctx, idx, EXPORT_KEY)) {
    JsExport* exp = duk_get_pointer(ctx, -1);
    o = exp != NULL ? exp->object : NULL;
  } else {
    duk_pop(ctx);
    if (js_get_own(ctx, idx, PROXY_KEY))
      o = duk_get_pointer(ctx, -1);
  }
  duk_pop(ctx);
  if (o == NULL)
    *bad = true;
  return o;
}

void js_objects_install(duk_context* ctx, duk_idx_t plugin_idx) {
  plugin_idx = duk_normalize_index(ctx, plugin_idx);
  duk_push_c_function(ctx, plugin_export_object, 2);
  duk_put_prop_string(ctx, plugin_idx, "exportObject");
  duk_push_c_function(ctx, plugin_exports, 1);
  duk_put_prop_string(ctx, plugin_idx, "exports");

  duk_push_heap_stash(ctx);
  duk_push_object(ctx);
  static const duk_function_list_entry kFns[] = {
      {"invoke", proxy_invoke, DUK_VARARGS},
      {"release", proxy_release, 0},
      {"isAlive", proxy_is_alive, 0},
      {NULL, NULL, 0},
  };
  duk_put_function_list(ctx, -1, kFns);
  duk_push_c_function(ctx, proxy_finalize, 1);
  duk_set_finalizer(ctx, -2);
  duk_put_prop_string(ctx, -2, "ProxyPrototype");
  duk_pop(ctx);
}
