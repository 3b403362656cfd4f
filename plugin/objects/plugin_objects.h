/* plugin: objects across the host/module boundary (seed 001's "proxying
 * objects"). Either side exports objects (a method table with SRPC
 * signatures, plus user data); the other side holds proxies it invokes by
 * method name with typed SRPC arguments. References travel inside calls,
 * in both directions, and come back to their owner as the original object.
 * docs/plugin.md, "Objects", gives the protocol and the lifetime rules.
 *
 * In method signatures the letter 'o' stands for an object reference (on
 * the wire: a 17-byte char array). In SrpcArg an 'o' value is a
 * PluginObject* in u.ptr (NULL: no object). */

#ifndef PLUGIN_OBJECTS_PLUGIN_OBJECTS_H_
#define PLUGIN_OBJECTS_PLUGIN_OBJECTS_H_

#include <stddef.h>
#include <stdint.h>

#include "srpc/srpc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PLUGIN_OBJECTS_EXPORT __attribute__((visibility("default")))

/* The SrpcArg type letter of an object reference. */
#define PLUGIN_TYPE_OBJECT 'o'

/* Bytes of an object id on the wire: random, never reused. */
#define PLUGIN_OBJECT_ID_BYTES 16

/* Outcomes of an invocation (and the status on the wire). */
typedef enum PluginObjectResult {
  PLUGIN_OBJECT_OK = 0,
  PLUGIN_OBJECT_NO_SUCH_OBJECT = 1, /* an id the owner never issued, or one
                                       released */
  PLUGIN_OBJECT_NO_SUCH_METHOD = 2,
  PLUGIN_OBJECT_BAD_ARGUMENTS = 3, /* types not the method's; a bad
                                      object reference */
  PLUGIN_OBJECT_METHOD_FAILED = 4, /* the method completed with an error */
  PLUGIN_OBJECT_CLOSED = 5,        /* the channel (or the process) is gone:
                                      every proxy of it is dead */
  PLUGIN_OBJECT_TIMED_OUT = 6,
  PLUGIN_OBJECT_CANCELLED = 7,
  PLUGIN_OBJECT_NOT_A_PROXY = 8, /* invoke needs a proxy */
  PLUGIN_OBJECT_PROTOCOL = 9,    /* the peer answered something else */
} PluginObjectResult;

PLUGIN_OBJECTS_EXPORT const char* plugin_object_result_string(int result);

typedef struct PluginObjects PluginObjects; /* one end of an object channel */
typedef struct PluginObject PluginObject;   /* an object here, or a proxy */
typedef struct PluginObjectCall PluginObjectCall;

/* A method. `in` are the inputs typed as the signature says ('o': a
 * PluginObject* borrowed for the call; plugin_object_ref to keep it).
 * `out` are the results to fill as an SRPC handler does; for 'o', set
 * u.ptr to an object (the layer takes its own reference) or NULL. Call
 * plugin_object_call_complete once, from any thread, before or after
 * returning. */
typedef void (*PluginMethodFn)(PluginObjectCall* call,
                               SrpcArg* in,
                               SrpcArg* out,
                               void* user);

typedef struct PluginMethodDef {
  const char* signature; /* "name:ins:outs"; letters of SrpcType and 'o' */
  PluginMethodFn fn;
} PluginMethodDef;

typedef struct PluginObjectClass {
  const PluginMethodDef* methods;
  size_t num_methods;
  /* The peer of `channel` dropped its last reference (the owner's "the
   * proxy was collected"); also when that channel ends. Runs without the
   * layer's lock, on the channel's thread, or on the thread of a call that
   * received the last reference the peer was sending back. May be NULL. */
  void (*on_released)(PluginObject* object, PluginObjects* channel, void* user);
  /* The object's last reference went: free `user`. May be NULL. */
  void (*destroy)(void* user);
} PluginObjectClass;

/* Makes a local object with one reference (the caller's). `cls` must
 * outlive it. NULL if a signature is invalid or out of memory. */
PLUGIN_OBJECTS_EXPORT PluginObject* plugin_object_new(
    const PluginObjectClass* cls,
    void* user);

PLUGIN_OBJECTS_EXPORT void plugin_object_ref(PluginObject* object);
/* Dropping a proxy's last reference releases it at its owner. */
PLUGIN_OBJECTS_EXPORT void plugin_object_unref(PluginObject* object);

PLUGIN_OBJECTS_EXPORT int plugin_object_is_proxy(const PluginObject* object);
/* For a proxy: whether its channel still works. */
PLUGIN_OBJECTS_EXPORT int plugin_object_is_alive(const PluginObject* object);
PLUGIN_OBJECTS_EXPORT void* plugin_object_user(const PluginObject* object);

/* Completes an incoming call: PLUGIN_OBJECT_OK, or _METHOD_FAILED. */
PLUGIN_OBJECTS_EXPORT void plugin_object_call_complete(PluginObjectCall* call,
                                                       int result);
/* The object a call is for, and the channel it came on. */
PLUGIN_OBJECTS_EXPORT PluginObject* plugin_object_call_target(
    const PluginObjectCall* call);
PLUGIN_OBJECTS_EXPORT PluginObjects* plugin_object_call_channel(
    const PluginObjectCall* call);

/* Which of the target's methods a call is for: its index in the class's
 * table (one function can then serve every method of a class). */
PLUGIN_OBJECTS_EXPORT size_t
plugin_object_call_method(const PluginObjectCall* call);

/* ---- Channels ---- */

/* Serves objects on connected IMC socket `fd` (taken, even on failure),
 * with a thread of its own. NULL if out of memory. */
PLUGIN_OBJECTS_EXPORT PluginObjects* plugin_objects_new(int fd);

/* Ends the channel: every proxy of it is dead (calls give
 * PLUGIN_OBJECT_CLOSED), every object exported on it is released
 * (on_released runs). Waits for every call from the peer to be completed
 * (a method that completes later must do so). Not from a method running
 * on this channel. */
PLUGIN_OBJECTS_EXPORT void plugin_objects_free(PluginObjects* channel);

/* The object the peer gets from plugin_objects_root (NULL: none). */
PLUGIN_OBJECTS_EXPORT void plugin_objects_set_root(PluginObjects* channel,
                                                   PluginObject* root);

/* A proxy of the peer's root object (the caller's reference). Returns a
 * PluginObjectResult; NO_SUCH_OBJECT if the peer has none. */
PLUGIN_OBJECTS_EXPORT int plugin_objects_root(PluginObjects* channel,
                                              int timeout_ms,
                                              PluginObject** out);

/* Objects exported on the channel, and proxies held from it. */
PLUGIN_OBJECTS_EXPORT size_t plugin_objects_exported(PluginObjects* channel);
PLUGIN_OBJECTS_EXPORT size_t plugin_objects_proxies(PluginObjects* channel);

/* ---- Invoking ---- */

/* Calls method `name` of `proxy` with in[0..num_in) and results
 * out[0..num_out) typed as srpc_invoke_args wants them, plus 'o' (an
 * object in u.ptr; a result object is the caller's reference). Waits up
 * to `timeout_ms` (< 0: no limit) unless `cancel` (may be NULL) is raised.
 * Any thread. Returns a PluginObjectResult. */
PLUGIN_OBJECTS_EXPORT int plugin_object_invoke(PluginObject* proxy,
                                               const char* name,
                                               int timeout_ms,
                                               SrpcCancel* cancel,
                                               const SrpcArg* in,
                                               size_t num_in,
                                               SrpcArg* out,
                                               size_t num_out);

/* The same call without waiting for it: it runs on a thread of the layer's
 * own, which calls done(result, out, num_out, user) when the call ends
 * (result as plugin_object_invoke's). `in` and `out`, and what they point
 * to, must stay valid until then. Returns PLUGIN_OBJECT_OK if the call was
 * started (`done` then runs exactly once), or an error (it does not run).
 * An embedder with a main thread posts from `done` to it. */
typedef void (*PluginInvokeDone)(int result,
                                 SrpcArg* out,
                                 size_t num_out,
                                 void* user);
PLUGIN_OBJECTS_EXPORT int plugin_object_invoke_async(PluginObject* proxy,
                                                     const char* name,
                                                     int timeout_ms,
                                                     SrpcCancel* cancel,
                                                     const SrpcArg* in,
                                                     size_t num_in,
                                                     SrpcArg* out,
                                                     size_t num_out,
                                                     PluginInvokeDone done,
                                                     void* user);

/* The object's methods: a local object's own; a proxy's, fetched from its
 * owner on first use (waiting up to `timeout_ms`, < 0: no limit, unless
 * `cancel` is raised) and kept. Returns a PluginObjectResult and the
 * number in *count. Any thread. */
PLUGIN_OBJECTS_EXPORT int plugin_object_method_count(PluginObject* object,
                                                     int timeout_ms,
                                                     SrpcCancel* cancel,
                                                     size_t* count);
/* Method `index` (below the count) as "name:ins:outs", 'o' included,
 * NUL-terminated in buf[size]. Returns its length, or 0 if there is no
 * such method (or the count was never asked for a proxy) or it does not
 * fit. */
PLUGIN_OBJECTS_EXPORT size_t
plugin_object_method_signature(const PluginObject* object,
                               size_t index,
                               char* buf,
                               size_t size);

/* For a local object: on how many channels it is exported now (some peer
 * holds a reference or one is in flight). 0 for a proxy. An embedder with
 * a garbage collector keeps the object's script side alive while this is
 * not 0 (docs/javascript.md). */
PLUGIN_OBJECTS_EXPORT size_t plugin_object_exports(const PluginObject* object);

/* Properties, by convention: a readable property p is a method
 * "get_p::T", a writable one "set_p:T:". These call them. */
PLUGIN_OBJECTS_EXPORT int plugin_object_get(PluginObject* proxy,
                                            const char* property,
                                            int timeout_ms,
                                            SrpcArg* value);
PLUGIN_OBJECTS_EXPORT int plugin_object_set(PluginObject* proxy,
                                            const char* property,
                                            int timeout_ms,
                                            const SrpcArg* value);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_OBJECTS_PLUGIN_OBJECTS_H_ */
