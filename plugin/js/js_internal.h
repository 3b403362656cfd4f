/* Internal to plugin/js: the state the binding's files share. The public
 * side is plugin_js.h; docs/javascript.md describes the JavaScript API and
 * the threading this file implements. */

#ifndef PLUGIN_JS_JS_INTERNAL_H_
#define PLUGIN_JS_JS_INTERNAL_H_

#include <duktape.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin/host/plugin_host.h"
#include "plugin/js/plugin_js.h"

/* A call that blocks (an SRPC call into a module, an object invocation)
 * runs on a worker thread, so that the main thread, while it waits, can
 * run the calls modules make into exported JavaScript objects (a module's
 * method may call back into the page before it answers). */
typedef struct JsJob JsJob;
struct JsJob {
  JsJob* next;
  PluginJs* js;
  /* What to call: a module's method, or a method of a proxy. */
  struct JsModule* module;
  PluginObject* proxy; /* a reference of the job's own */
  char name[256];
  char ins[SRPC_MAX_ARGS + 1];
  char outs[SRPC_MAX_ARGS + 1];
  int timeout_ms;
  SrpcArg in[SRPC_MAX_ARGS];
  SrpcArg out[SRPC_MAX_ARGS];
  size_t num_in;
  size_t num_out;
  int result;        /* an SrpcResult (module) or PluginObjectResult */
  bool done;         /* under js->mu */
  uint64_t callback; /* asynchronous: the stash key of the callback */
  uint64_t keep;     /* the stash key of the arguments (kept alive) */
};

/* A call from a module into an exported JavaScript object, waiting for the
 * main thread. */
typedef struct JsIncoming {
  struct JsIncoming* next;
  PluginObjectCall* call;
  SrpcArg* in;
  SrpcArg* out;
  struct JsExport* exp;
} JsIncoming;

/* A JavaScript object exported to modules. */
typedef struct JsExport {
  PluginJs* js;
  PluginObject* object; /* the script object holds one reference */
  PluginObjectClass cls;
  PluginMethodDef* defs;
  char** signatures; /* what defs point to */
  char (*names)[256];
  char (*ins)[SRPC_MAX_ARGS + 1];
  char (*outs)[SRPC_MAX_ARGS + 1];
  size_t num_methods;
  uint64_t key; /* stash key while pinned (a module may hold it); else 0 */
  int uses;     /* calls under way that carry it (main thread) */
} JsExport;

typedef struct JsModule {
  struct JsModule* next;
  PluginJs* js;
  PluginModule* module;
  PluginObjects* objects; /* once opened */
  uint64_t key;           /* stash key of the script's module object */
  int busy;               /* jobs in flight, under js->mu */
  bool closing;           /* under js->mu: incoming calls on its channel fail */
  int running;            /* its calls into script objects running now (main) */
  bool free_pending;      /* shut down from inside one of them: freed after */
} JsModule;

typedef struct JsSocket {
  struct JsSocket* next;
  PluginJs* js;
  PluginSocket* socket;
  uint64_t key; /* stash key of the script's socket object */
} JsSocket;

typedef struct JsWorker {
  pthread_t thread;
  struct JsWorker* next;
} JsWorker;

struct PluginJs {
  duk_context* ctx;
  PluginHost* host;
  SrpcCancel* cancel;
  FILE* out;
  FILE* err;
  char script_dir[4096];

  pthread_mutex_t mu;
  pthread_cond_t cv;        /* the main thread's wake-ups */
  pthread_cond_t worker_cv; /* work for the workers */
  bool host_pending;        /* the host posted tasks */
  uint64_t hooks;           /* times it did */
  bool cancelled;
  bool closing;  /* tearing down: incoming calls fail at once */
  bool stopping; /* workers end */
  JsJob* queue;  /* jobs for the workers */
  JsJob* queue_tail;
  int queued;      /* jobs in the queue */
  JsJob* finished; /* asynchronous jobs done, for the main thread */
  JsIncoming* incoming;
  JsIncoming* incoming_tail;
  JsWorker* workers;
  int num_workers;
  int idle_workers;
  int jobs_in_flight;

  /* Main thread only. */
  JsModule* modules;
  JsSocket* sockets;
  uint64_t next_key;
  uint64_t delivered; /* messages handed to script handlers */
  bool quit;
  int uncaught; /* errors thrown by handlers nobody caught */
  int call_timeout_ms;
};

/* ---- js_runtime.c ---- */

/* The heap stash: strong references by number. */
uint64_t js_stash_put(duk_context* ctx, duk_idx_t idx);
void js_stash_push(duk_context* ctx, uint64_t key); /* undefined if none */
void js_stash_del(duk_context* ctx, uint64_t key);

PluginJs* js_from_ctx(duk_context* ctx);
/* Pushes the value of the object's own property `key` (never one it
 * inherits: Object.create(x) must not reach x's native state); returns
 * whether it has one (else undefined is pushed). */
bool js_get_own(duk_context* ctx, duk_idx_t idx, const char* key);
/* The pointer `this` holds under its own hidden `key`, or NULL. */
void* js_this_pointer(duk_context* ctx, const char* key);

/* Throws a PluginError: layer "plugin", "srpc", "object" or "system"
 * (code: errno). Never returns. */
duk_ret_t js_throw(duk_context* ctx, const char* layer, int code);
/* Pushes the same error without throwing. */
void js_push_error(duk_context* ctx, const char* layer, int code);

/* Calls the function at [-nargs-2] with `this` at [-nargs-1] and nargs
 * arguments, protected: an error is reported (and counted) instead of
 * thrown. Leaves nothing on the stack. */
void js_call_handler(PluginJs* js, duk_idx_t nargs);

/* Descriptor objects: push one owning `fd`; read one (borrowed; -1 and a
 * message if `idx` is not an open descriptor). */
void js_push_descriptor(duk_context* ctx, int fd);
int js_get_descriptor(duk_context* ctx, duk_idx_t idx);
/* The descriptors of the array at `idx` (undefined or null: none) into
 * fds[cap] (borrowed). Returns the count, or -1 and a reason in *why. */
int js_get_descriptor_list(duk_context* ctx,
                           duk_idx_t idx,
                           int* fds,
                           size_t cap,
                           const char** why);

/* Pushes an ArrayBuffer holding a copy of data[len]. */
void js_push_bytes(duk_context* ctx, const void* data, size_t len);
/* The bytes of an ArrayBuffer, a typed array or a DataView; NULL if `idx`
 * is none of them. */
const uint8_t* js_get_bytes(duk_context* ctx, duk_idx_t idx, size_t* len);

/* Jobs. js_submit queues one (errno-style 0 or EAGAIN); js_wait_job runs
 * the main thread's incoming calls until the job is done. */
int js_submit(PluginJs* js, JsJob* job);
void js_wait_job(PluginJs* js, JsJob* job);

/* Runs incoming calls (and with `tasks`, the host's tasks and finished
 * asynchronous jobs) until ready(js, arg) is true under js->mu, the
 * deadline (ms on the monotonic clock, < 0: none) passes, or, if
 * `cancellable`, the waits are cancelled. Returns PLUGIN_OK,
 * PLUGIN_ERROR_TIMED_OUT or PLUGIN_ERROR_CANCELLED. */
int js_pump(PluginJs* js,
            bool tasks,
            bool cancellable,
            int64_t deadline_ms,
            bool (*ready)(PluginJs* js, void* arg),
            void* arg);
int64_t js_now_ms(void);

/* ---- js_values.c ---- */

/* Converts the value at `idx` to an argument of SRPC type `type` (or 'o').
 * For a call (handler false) what it points to is malloc'd (js_free_args
 * frees it); for a handler's result (true) arrays and strings are made
 * with srpc_arg_alloc/srpc_arg_set_string and a descriptor is duplicated.
 * Returns 0, or -1 with a reason in err. */
int js_to_arg(duk_context* ctx,
              duk_idx_t idx,
              char type,
              bool handler,
              SrpcArg* arg,
              char* err,
              size_t err_len);
/* Frees what js_to_arg (handler false) or a call's results hold. */
void js_free_args(SrpcArg* args, size_t n);
/* Pushes the value of `arg`. Results (owned) give up what they hold:
 * descriptors and objects move into the script objects. Borrowed inputs
 * (owned false) are copied: a descriptor is duplicated, an object gets a
 * reference of its own. */
void js_push_arg(duk_context* ctx, SrpcArg* arg, bool owned);
/* Results as a script sees them: undefined, the one value, or an array. */
void js_push_results(duk_context* ctx, SrpcArg* out, size_t n);
/* Prepares a call's results: types, no buffers, capacities. */
void js_prepare_results(const char* outs, SrpcArg* out);

/* ---- js_objects.c ---- */

void js_objects_install(duk_context* ctx, duk_idx_t plugin_idx);
/* Pushes the script value for an object: a proxy's wrapper (taking the
 * reference given), or an exported object itself (dropping it). */
void js_push_object(duk_context* ctx, PluginObject* object);
/* The object a script value stands for (borrowed), NULL for null; -1 in
 * *bad if the value is neither. */
PluginObject* js_get_object(duk_context* ctx, duk_idx_t idx, bool* bad);
/* An exported object going out in a call or a result (the value at idx):
 * pinned until the matching js_export_done, and after that while a
 * module holds it. Proxies and NULL are ignored. Main thread. */
void js_export_use(duk_context* ctx, duk_idx_t idx, PluginObject* object);
void js_export_done(PluginJs* js, PluginObject* object);
/* js_export_done for every object among a call's arguments. */
void js_exports_recheck(PluginJs* js, SrpcArg* args, size_t n);
void js_run_incoming(PluginJs* js, JsIncoming* in);
void js_fail_incoming(JsIncoming* in);

/* ---- js_plugin.c ---- */

void js_plugin_install(duk_context* ctx, duk_idx_t plugin_idx);
/* The call behind every method function: module methods and proxy
 * methods. */
duk_ret_t js_invoke(duk_context* ctx,
                    JsModule* module,
                    PluginObject* proxy,
                    const char* signature,
                    duk_idx_t first_arg);
/* Unlinks and frees a module that has been shut down (main thread). */
void js_free_module(PluginJs* js, JsModule* m);
/* The end of an asynchronous job, on the main thread. */
void js_finish_job(PluginJs* js, JsJob* job, bool call_back);
void js_free_job(JsJob* job);

#endif /* PLUGIN_JS_JS_INTERNAL_H_ */
