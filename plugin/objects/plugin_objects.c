/* Objects across a channel: export tables with random ids, proxies (one
 * per remote object), reference counts across the boundary with batched
 * release messages, and invocation through one variadic SRPC method.
 *
 * One lock (g_mu) covers every table and reference count of the layer:
 * calls take it for a lookup, never across a round trip. */

#include "plugin/objects/plugin_objects.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
  kBuckets = 1024,
  kRefBytes = 1 + PLUGIN_OBJECT_ID_BYTES, /* marker, id */
  kReleaseBatch = 256,
  kMaxForwardedMethods = 1024,
  /* Method numbers of the object service (0 is discovery). */
  kInvoke = 1,
  kRelease = 2,
  kRoot = 3,
  kMethods = 4,
};

/* Markers of a reference on the wire. */
#define MARK_OWNED 'O' /* an object the sender exports */
#define MARK_YOURS 'P' /* the sender's proxy of an object the receiver owns */

typedef struct Export {
  struct Export* next_in_bucket;
  struct Export* next_of_object;
  PluginObjects* ch;
  PluginObject* obj;
  uint8_t id[PLUGIN_OBJECT_ID_BYTES];
  uint32_t remote_refs; /* references the peer holds */
  /* References to it the peer sent back ("yours"), seen here, and the
   * number its last release said it had sent: the export stays until
   * every one of them has arrived, so that a reference in flight back to
   * the owner always resolves. */
  uint64_t mentions_seen;
  uint64_t mentions_expected;
} Export;

/* A method with its signature; 'o' kept. */
typedef struct Method {
  char name[256];
  char ins[SRPC_MAX_ARGS + 1];
  char outs[SRPC_MAX_ARGS + 1];
  PluginMethodFn fn;
} Method;

struct PluginObject {
  int refs; /* local references; under g_mu */
  bool proxy;
  /* A local object. */
  const PluginObjectClass* cls;
  void* user;
  Method* methods;
  size_t num_methods;
  Export* exports;
  /* A proxy. */
  PluginObjects* ch; /* NULL once the channel is gone */
  uint8_t id[PLUGIN_OBJECT_ID_BYTES];
  uint32_t remote_refs;   /* references to give back on release */
  uint64_t mentions_sent; /* references sent back to the owner */
  struct PluginObject* next_in_bucket;
  Method* remote; /* the owner's method table, fetched when forwarding */
  size_t num_remote;
};

typedef struct PendingRelease {
  uint8_t id[PLUGIN_OBJECT_ID_BYTES];
  uint32_t count;
  uint64_t mentions;
} PendingRelease;

struct PluginObjects {
  int fd;
  SrpcService* service;
  SrpcChannel* channel;
  pthread_t serve_thread;
  pthread_t release_thread;
  pthread_cond_t cv;         /* busy and incoming fell (for the free) */
  pthread_cond_t release_cv; /* releases pending, or stopping */
  bool closed;
  bool stopping;
  int busy;     /* calls in progress on `channel` */
  int incoming; /* calls from the peer not yet completed */
  Export* exports[kBuckets];
  size_t num_exports;
  PluginObject* proxies[kBuckets];
  size_t num_proxies;
  PluginObject* root;
  PendingRelease* pending;
  size_t num_pending;
  size_t cap_pending;
};

struct PluginObjectCall {
  SrpcRpc* rpc;
  PluginObjects* ch;
  PluginObject* target;
  const Method* method;
  SrpcArg* wire_in;  /* the SRPC inputs: [0] id, [1] name, the method's */
  SrpcArg* wire_out; /* the SRPC results: [0] status, then the method's */
  SrpcArg* in;       /* the method's inputs as the method sees them */
  SrpcArg* out;
  size_t num_in;
  size_t num_out;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

const char* plugin_object_result_string(int result) {
  switch (result) {
    case PLUGIN_OBJECT_OK:
      return "ok";
    case PLUGIN_OBJECT_NO_SUCH_OBJECT:
      return "no such object";
    case PLUGIN_OBJECT_NO_SUCH_METHOD:
      return "no such method";
    case PLUGIN_OBJECT_BAD_ARGUMENTS:
      return "bad arguments";
    case PLUGIN_OBJECT_METHOD_FAILED:
      return "method failed";
    case PLUGIN_OBJECT_CLOSED:
      return "channel closed";
    case PLUGIN_OBJECT_TIMED_OUT:
      return "timed out";
    case PLUGIN_OBJECT_CANCELLED:
      return "cancelled";
    case PLUGIN_OBJECT_NOT_A_PROXY:
      return "not a proxy";
    case PLUGIN_OBJECT_PROTOCOL:
      return "protocol error";
  }
  return "unknown result";
}

/* ---- Signatures ---- */

static char wire_type(char t) {
  return t == PLUGIN_TYPE_OBJECT ? SRPC_TYPE_CHAR_ARRAY : t;
}

/* Parses "name:ins:outs" with 'o' allowed. */
static bool parse_method(const char* signature, Method* m) {
  if (signature == NULL)
    return false;
  size_t len = strlen(signature);
  char* copy = malloc(len + 1);
  if (copy == NULL)
    return false;
  for (size_t i = 0; i <= len; i++)
    copy[i] = signature[i];
  /* Validate with 'o' read as 'C', after the name. */
  char* first = strchr(copy, ':');
  for (char* c = first; c != NULL && *c; c++) {
    if (*c == PLUGIN_TYPE_OBJECT)
      *c = SRPC_TYPE_CHAR_ARRAY;
  }
  SrpcSignature sig;
  bool ok = first != NULL &&
            srpc_signature_parse(copy, &sig) == SRPC_SIGNATURE_OK &&
            sig.ins[0] != SRPC_VARIADIC && sig.outs[0] != SRPC_VARIADIC;
  free(copy);
  if (!ok)
    return false;
  /* The same lengths, with the original letters. */
  const char* ins = strchr(signature, ':') + 1;
  const char* outs = strchr(ins, ':') + 1;
  memcpy(m->name, sig.name, sizeof(m->name));
  memcpy(m->ins, ins, (size_t)(outs - 1 - ins));
  m->ins[outs - 1 - ins] = '\0';
  strcpy(m->outs, outs);
  return true;
}

static const Method* find_method(const Method* table,
                                 size_t n,
                                 const char* name) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(table[i].name, name) == 0)
      return &table[i];
  }
  return NULL;
}

/* ---- Objects ---- */

PluginObject* plugin_object_new(const PluginObjectClass* cls, void* user) {
  if (cls == NULL || (cls->num_methods > 0 && cls->methods == NULL))
    return NULL;
  PluginObject* o = calloc(1, sizeof(*o));
  Method* methods =
      calloc(cls->num_methods ? cls->num_methods : 1, sizeof(Method));
  if (o == NULL || methods == NULL) {
    free(o);
    free(methods);
    return NULL;
  }
  for (size_t i = 0; i < cls->num_methods; i++) {
    if (!parse_method(cls->methods[i].signature, &methods[i]) ||
        cls->methods[i].fn == NULL ||
        find_method(methods, i, methods[i].name) != NULL) {
      free(o);
      free(methods);
      return NULL;
    }
    methods[i].fn = cls->methods[i].fn;
  }
  o->refs = 1;
  o->cls = cls;
  o->user = user;
  o->methods = methods;
  o->num_methods = cls->num_methods;
  return o;
}

/* Ids from the peer choose their bucket: a key the peer does not know
 * keeps it from filling one chain. */
static uint64_t g_bucket_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void make_bucket_key(void) {
  if (getrandom(&g_bucket_key, sizeof(g_bucket_key), 0) !=
      (ssize_t)sizeof(g_bucket_key))
    g_bucket_key = (uint64_t)(uintptr_t)&g_bucket_key ^ 0x9e3779b97f4a7c15u;
}

static size_t bucket(const uint8_t* id) {
  uint64_t a, b;
  memcpy(&a, id, 8);
  memcpy(&b, id + 8, 8);
  uint64_t h = (a ^ g_bucket_key) * 0x9e3779b97f4a7c15u;
  h ^= (b + g_bucket_key) * 0xc2b2ae3d27d4eb4fu;
  return (size_t)(h >> 32) % kBuckets;
}

static void queue_release_locked(PluginObjects* ch,
                                 const uint8_t* id,
                                 uint32_t count,
                                 uint64_t mentions);

static void free_object(PluginObject* o) {
  if (!o->proxy && o->cls->destroy != NULL)
    o->cls->destroy(o->user);
  free(o->methods);
  free(o->remote);
  free(o);
}

void plugin_object_ref(PluginObject* o) {
  pthread_mutex_lock(&g_mu);
  o->refs++;
  pthread_mutex_unlock(&g_mu);
}

/* With g_mu held: drops a reference; returns the object if it must be
 * freed (after unlocking). */
static PluginObject* unref_locked(PluginObject* o) {
  if (--o->refs > 0)
    return NULL;
  if (o->proxy && o->ch != NULL) {
    PluginObject** p = &o->ch->proxies[bucket(o->id)];
    while (*p != o)
      p = &(*p)->next_in_bucket;
    *p = o->next_in_bucket;
    o->ch->num_proxies--;
    queue_release_locked(o->ch, o->id, o->remote_refs, o->mentions_sent);
  }
  return o;
}

void plugin_object_unref(PluginObject* o) {
  if (o == NULL)
    return;
  pthread_mutex_lock(&g_mu);
  PluginObject* dead = unref_locked(o);
  pthread_mutex_unlock(&g_mu);
  if (dead != NULL)
    free_object(dead);
}

int plugin_object_is_proxy(const PluginObject* o) {
  return o->proxy ? 1 : 0;
}

int plugin_object_is_alive(const PluginObject* o) {
  pthread_mutex_lock(&g_mu);
  int alive = !o->proxy || (o->ch != NULL && !o->ch->closed);
  pthread_mutex_unlock(&g_mu);
  return alive;
}

void* plugin_object_user(const PluginObject* o) {
  return o->user;
}

/* ---- References on the wire ---- */

static Export* find_export(PluginObjects* ch, const uint8_t* id) {
  for (Export* e = ch->exports[bucket(id)]; e != NULL; e = e->next_in_bucket) {
    if (memcmp(e->id, id, PLUGIN_OBJECT_ID_BYTES) == 0)
      return e;
  }
  return NULL;
}

/* The object exported on `ch` under `id`, with a reference for the
 * caller, or NULL. */
static PluginObject* exported(PluginObjects* ch, const uint8_t* id) {
  pthread_mutex_lock(&g_mu);
  Export* e = find_export(ch, id);
  PluginObject* o = e != NULL ? e->obj : NULL;
  if (o != NULL)
    o->refs++;
  pthread_mutex_unlock(&g_mu);
  return o;
}

static PluginObject* find_proxy(PluginObjects* ch, const uint8_t* id) {
  for (PluginObject* p = ch->proxies[bucket(id)]; p != NULL;
       p = p->next_in_bucket) {
    if (memcmp(p->id, id, PLUGIN_OBJECT_ID_BYTES) == 0)
      return p;
  }
  return NULL;
}

/* With g_mu held: writes a reference to `o` for the peer of `ch` into
 * out[kRefBytes] and returns its length (0 for NULL), or -1 if out of
 * memory. Exporting counts one more reference held by the peer. */
static int encode_ref_locked(PluginObjects* ch, PluginObject* o, uint8_t* out) {
  if (o == NULL || ch->closed)
    return 0; /* nobody to export to any more */
  if (o->proxy && o->ch == ch) {
    o->mentions_sent++;
    out[0] = MARK_YOURS;
    memcpy(out + 1, o->id, PLUGIN_OBJECT_ID_BYTES);
    return kRefBytes;
  }
  Export* e = o->exports;
  while (e != NULL && e->ch != ch)
    e = e->next_of_object;
  if (e == NULL) {
    e = calloc(1, sizeof(*e));
    if (e == NULL)
      return -1;
    do {
      if (getrandom(e->id, sizeof(e->id), 0) != (ssize_t)sizeof(e->id)) {
        free(e);
        return -1;
      }
    } while (find_export(ch, e->id) != NULL);
    e->ch = ch;
    e->obj = o;
    o->refs++; /* the export's own */
    e->next_of_object = o->exports;
    o->exports = e;
    size_t b = bucket(e->id);
    e->next_in_bucket = ch->exports[b];
    ch->exports[b] = e;
    ch->num_exports++;
  }
  e->remote_refs++;
  out[0] = MARK_OWNED;
  memcpy(out + 1, e->id, PLUGIN_OBJECT_ID_BYTES);
  return kRefBytes;
}

static void unlink_export_locked(Export* e);

/* With g_mu held: whether a released export has seen every reference the
 * peer sent back before releasing; then it leaves the tables and joins
 * *done (finish_release it after unlocking). */
static void retire_if_done_locked(Export* e, Export** done) {
  if (e->remote_refs == 0 && e->mentions_seen >= e->mentions_expected) {
    unlink_export_locked(e);
    e->next_in_bucket = *done;
    *done = e;
  }
}

/* With g_mu held: the object a reference from the peer names, with a
 * reference for the caller (*out NULL for an empty one). Returns a
 * PluginObjectResult. An export this retires joins *done. */
static int decode_ref_locked(PluginObjects* ch,
                             const uint8_t* data,
                             uint32_t len,
                             PluginObject** out,
                             Export** done) {
  *out = NULL;
  if (len == 0)
    return PLUGIN_OBJECT_OK;
  if (len != kRefBytes || data == NULL)
    return PLUGIN_OBJECT_BAD_ARGUMENTS;
  if (ch->closed)
    return PLUGIN_OBJECT_CLOSED;
  const uint8_t* id = data + 1;
  if (data[0] == MARK_YOURS) {
    Export* e = find_export(ch, id);
    if (e == NULL)
      return PLUGIN_OBJECT_NO_SUCH_OBJECT;
    e->obj->refs++;
    *out = e->obj;
    e->mentions_seen++;
    retire_if_done_locked(e, done);
    return PLUGIN_OBJECT_OK;
  }
  if (data[0] != MARK_OWNED)
    return PLUGIN_OBJECT_BAD_ARGUMENTS;
  PluginObject* p = find_proxy(ch, id);
  if (p == NULL) {
    p = calloc(1, sizeof(*p));
    if (p == NULL)
      return PLUGIN_OBJECT_PROTOCOL;
    p->proxy = true;
    p->ch = ch;
    memcpy(p->id, id, PLUGIN_OBJECT_ID_BYTES);
    size_t b = bucket(id);
    p->next_in_bucket = ch->proxies[b];
    ch->proxies[b] = p;
    ch->num_proxies++;
  }
  p->refs++;
  p->remote_refs++;
  *out = p;
  return PLUGIN_OBJECT_OK;
}

/* ---- Releases ---- */

static void queue_release_locked(PluginObjects* ch,
                                 const uint8_t* id,
                                 uint32_t count,
                                 uint64_t mentions) {
  if (ch->closed || count == 0)
    return;
  if (ch->num_pending == ch->cap_pending) {
    size_t cap = ch->cap_pending ? 2 * ch->cap_pending : 64;
    PendingRelease* p = realloc(ch->pending, cap * sizeof(*p));
    if (p == NULL)
      return; /* the owner keeps it until the channel ends */
    ch->pending = p;
    ch->cap_pending = cap;
  }
  PendingRelease* r = &ch->pending[ch->num_pending++];
  memcpy(r->id, id, PLUGIN_OBJECT_ID_BYTES);
  r->count = count;
  r->mentions = mentions;
  pthread_cond_signal(&ch->release_cv);
}

/* Sends queued releases, a batch per message. */
static void* release_main(void* arg) {
  PluginObjects* ch = arg;
  uint8_t ids[kReleaseBatch * PLUGIN_OBJECT_ID_BYTES];
  int32_t counts[kReleaseBatch];
  int64_t mentions[kReleaseBatch];
  pthread_mutex_lock(&g_mu);
  for (;;) {
    while (!ch->stopping && ch->num_pending == 0)
      pthread_cond_wait(&ch->release_cv, &g_mu);
    if (ch->num_pending == 0)
      break;
    size_t n =
        ch->num_pending < kReleaseBatch ? ch->num_pending : kReleaseBatch;
    for (size_t i = 0; i < n; i++) {
      memcpy(ids + i * PLUGIN_OBJECT_ID_BYTES, ch->pending[i].id,
             PLUGIN_OBJECT_ID_BYTES);
      counts[i] = (int32_t)ch->pending[i].count;
      mentions[i] = (int64_t)ch->pending[i].mentions;
    }
    memmove(ch->pending, ch->pending + n,
            (ch->num_pending - n) * sizeof(*ch->pending));
    ch->num_pending -= n;
    bool closed = ch->closed;
    pthread_mutex_unlock(&g_mu);
    if (!closed) {
      SrpcArg in[3] = {{0}, {0}, {0}};
      in[0].type = SRPC_TYPE_CHAR_ARRAY;
      in[0].u.carr = (char*)ids;
      in[0].count = (uint32_t)(n * PLUGIN_OBJECT_ID_BYTES);
      in[1].type = SRPC_TYPE_INT_ARRAY;
      in[1].u.iarr = counts;
      in[1].count = (uint32_t)n;
      in[2].type = SRPC_TYPE_LONG_ARRAY;
      in[2].u.larr = mentions;
      in[2].count = (uint32_t)n;
      srpc_invoke_args(ch->channel, kRelease, in, 3, NULL, 0);
    }
    pthread_mutex_lock(&g_mu);
  }
  pthread_mutex_unlock(&g_mu);
  return NULL;
}

/* With g_mu held: takes `e` out of its tables. */
static void unlink_export_locked(Export* e) {
  PluginObjects* ch = e->ch;
  Export** p = &ch->exports[bucket(e->id)];
  while (*p != e)
    p = &(*p)->next_in_bucket;
  *p = e->next_in_bucket;
  ch->num_exports--;
  Export** q = &e->obj->exports;
  while (*q != e)
    q = &(*q)->next_of_object;
  *q = e->next_of_object;
}

/* Outside g_mu: tells the owner and drops the export's reference. */
static void finish_release(Export* e) {
  PluginObject* o = e->obj;
  if (!o->proxy && o->cls->on_released != NULL)
    o->cls->on_released(o, e->ch, o->user);
  free(e);
  plugin_object_unref(o);
}

static void finish_releases(Export* list) {
  while (list != NULL) {
    Export* next = list->next_in_bucket;
    finish_release(list);
    list = next;
  }
}

static void handle_release(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)out;
  PluginObjects* ch = u;
  size_t n = in[1].count;
  if (in[0].count != n * PLUGIN_OBJECT_ID_BYTES || in[2].count != n) {
    srpc_rpc_complete(rpc, SRPC_RESULT_BAD_ARG_TYPE);
    return;
  }
  Export* done = NULL;
  int unknown = 0;
  pthread_mutex_lock(&g_mu);
  for (size_t i = 0; i < n; i++) {
    Export* e = find_export(
        ch, (const uint8_t*)in[0].u.carr + i * PLUGIN_OBJECT_ID_BYTES);
    int32_t count = in[1].u.iarr[i];
    if (e == NULL || count <= 0) {
      unknown++; /* forged, stale or repeated: nothing to touch */
      continue;
    }
    /* A peer giving back more than it holds gives back all it holds. */
    e->remote_refs = (uint32_t)count >= e->remote_refs
                         ? 0
                         : e->remote_refs - (uint32_t)count;
    /* Each proxy sends one release, with what it sent back in its life:
     * the export waits for the sum. */
    e->mentions_expected += (uint64_t)in[2].u.larr[i];
    retire_if_done_locked(e, &done);
  }
  pthread_mutex_unlock(&g_mu);
  finish_releases(done);
  srpc_rpc_complete(rpc, unknown ? SRPC_RESULT_APP_ERROR : SRPC_RESULT_OK);
}

/* ---- Incoming invocations ---- */

/* Sets the results for a failure: every result stays empty. */
static void fail_results(SrpcArg* wire_out, size_t n, int status) {
  wire_out[0].u.ival = status;
  for (size_t i = 1; i < n; i++) {
    if (wire_out[i].type == SRPC_TYPE_STRING)
      srpc_arg_set_string(&wire_out[i], "");
  }
}

static void release_user_out(SrpcArg* out, const char* types, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char t = types[i];
    if (t == PLUGIN_TYPE_OBJECT) {
      out[i].u.ptr = NULL; /* the method's own reference: not ours */
    } else if (t == SRPC_TYPE_HANDLE) {
      if (out[i].u.hval >= 0)
        close(out[i].u.hval);
    } else if (srpc_type_element_size(t) != 0) {
      free(out[i].u.ptr);
    }
  }
}

void plugin_object_call_complete(PluginObjectCall* call, int result) {
  PluginObjects* ch = call->ch;
  const Method* m = call->method;
  int status = result == PLUGIN_OBJECT_OK ? PLUGIN_OBJECT_OK
                                          : PLUGIN_OBJECT_METHOD_FAILED;
  if (status == PLUGIN_OBJECT_OK) {
    /* Encode every object result first: all or nothing. */
    pthread_mutex_lock(&g_mu);
    for (size_t j = 0; j < call->num_out && status == PLUGIN_OBJECT_OK; j++) {
      if (m->outs[j] != PLUGIN_TYPE_OBJECT)
        continue;
      uint8_t ref[kRefBytes];
      int len = encode_ref_locked(ch, call->out[j].u.ptr, ref);
      char* p = len < 0 ? NULL
                        : srpc_arg_alloc(&call->wire_out[j + 1], (uint32_t)len);
      if (len < 0 || (len > 0 && p == NULL))
        status = PLUGIN_OBJECT_METHOD_FAILED;
      else if (len > 0)
        memcpy(p, ref, (size_t)len);
    }
    pthread_mutex_unlock(&g_mu);
  }
  if (status == PLUGIN_OBJECT_OK) {
    for (size_t j = 0; j < call->num_out; j++) {
      if (m->outs[j] == PLUGIN_TYPE_OBJECT)
        continue;
      SrpcArg* w = &call->wire_out[j + 1];
      if (srpc_type_element_size(w->type) != 0)
        free(w->u.ptr); /* srpc's empty start, replaced */
      w->u = call->out[j].u;
      w->count = call->out[j].count;
    }
    call->wire_out[0].u.ival = PLUGIN_OBJECT_OK;
  } else {
    release_user_out(call->out, m->outs, call->num_out);
    fail_results(call->wire_out, call->num_out + 1, status);
  }
  for (size_t i = 0; i < call->num_in; i++) {
    if (m->ins[i] == PLUGIN_TYPE_OBJECT)
      plugin_object_unref(call->in[i].u.ptr);
    else if (m->ins[i] == SRPC_TYPE_HANDLE)
      call->wire_in[i + 2].u.hval = call->in[i].u.hval; /* -1: kept */
  }
  plugin_object_unref(call->target);
  srpc_rpc_complete(call->rpc, SRPC_RESULT_OK);
  pthread_mutex_lock(&g_mu);
  if (--ch->incoming == 0)
    pthread_cond_broadcast(&ch->cv);
  pthread_mutex_unlock(&g_mu);
  free(call);
}

PluginObject* plugin_object_call_target(const PluginObjectCall* call) {
  return call->target;
}

size_t plugin_object_call_method(const PluginObjectCall* call) {
  const PluginObject* t = call->target;
  return (size_t)(call->method - (t->proxy ? t->remote : t->methods));
}

PluginObjects* plugin_object_call_channel(const PluginObjectCall* call) {
  return call->ch;
}

/* A proxy's method table, fetched from its owner once. Returns a
 * PluginObjectResult. */
static int fetch_methods(PluginObject* proxy,
                         int timeout_ms,
                         SrpcCancel* cancel);

/* The built-in method of a proxy exported onwards: the same call, made on
 * the proxy's own channel. Runs on the serving thread. */
static void forward(PluginObjectCall* call,
                    SrpcArg* in,
                    SrpcArg* out,
                    void* user) {
  (void)user;
  /* Array results need buffers of their capacity for the onward call. */
  int r = PLUGIN_OBJECT_OK;
  for (size_t j = 0; j < call->num_out; j++) {
    size_t size = srpc_type_element_size(out[j].type);
    if (out[j].type != SRPC_TYPE_STRING && size != 0 &&
        out[j].type != PLUGIN_TYPE_OBJECT &&
        srpc_arg_alloc(&out[j], out[j].count) == NULL)
      r = PLUGIN_OBJECT_METHOD_FAILED;
  }
  if (r == PLUGIN_OBJECT_OK)
    r = plugin_object_invoke(call->target, call->method->name, -1, NULL, in,
                             call->num_in, out, call->num_out);
  if (r != PLUGIN_OBJECT_OK) {
    /* Only the buffers made above are ours to free. */
    for (size_t j = 0; j < call->num_out; j++) {
      if (out[j].type != SRPC_TYPE_STRING && out[j].type != SRPC_TYPE_HANDLE &&
          out[j].type != PLUGIN_TYPE_OBJECT)
        free(out[j].u.ptr);
    }
    fail_results(call->wire_out, call->num_out + 1, r);
    for (size_t i = 0; i < call->num_in; i++) {
      if (call->method->ins[i] == PLUGIN_TYPE_OBJECT)
        plugin_object_unref(in[i].u.ptr);
    }
    plugin_object_unref(call->target);
    srpc_rpc_complete(call->rpc, SRPC_RESULT_OK);
    pthread_mutex_lock(&g_mu);
    if (--call->ch->incoming == 0)
      pthread_cond_broadcast(&call->ch->cv);
    pthread_mutex_unlock(&g_mu);
    free(call);
    return;
  }
  /* Results that were objects came with references of ours: completing
   * exports them (with references of the export's own), then ours go. */
  PluginObject* results[SRPC_MAX_ARGS];
  size_t n = 0;
  for (size_t j = 0; j < call->num_out; j++) {
    if (call->method->outs[j] == PLUGIN_TYPE_OBJECT && out[j].u.ptr != NULL)
      results[n++] = out[j].u.ptr;
  }
  plugin_object_call_complete(call, PLUGIN_OBJECT_OK); /* frees call */
  for (size_t i = 0; i < n; i++)
    plugin_object_unref(results[i]);
}

static void handle_invoke(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  PluginObjects* ch = u;
  size_t num_in = srpc_rpc_num_in(rpc), num_out = srpc_rpc_num_out(rpc);
  if (num_in < 2 || in[0].type != SRPC_TYPE_CHAR_ARRAY ||
      in[0].count != PLUGIN_OBJECT_ID_BYTES || in[1].type != SRPC_TYPE_STRING ||
      num_out < 1 || out[0].type != SRPC_TYPE_INT) {
    srpc_rpc_complete(rpc, SRPC_RESULT_BAD_ARG_TYPE);
    return;
  }
  PluginObject* target = exported(ch, (const uint8_t*)in[0].u.carr);
  if (target == NULL) {
    fail_results(out, num_out, PLUGIN_OBJECT_NO_SUCH_OBJECT);
    srpc_rpc_complete(rpc, SRPC_RESULT_OK);
    return;
  }
  const Method* m = NULL;
  int status = PLUGIN_OBJECT_OK;
  if (target->proxy) {
    status = fetch_methods(target, -1, NULL);
    if (status == PLUGIN_OBJECT_OK)
      m = find_method(target->remote, target->num_remote, in[1].u.str);
  } else {
    m = find_method(target->methods, target->num_methods, in[1].u.str);
  }
  if (status == PLUGIN_OBJECT_OK && m == NULL)
    status = PLUGIN_OBJECT_NO_SUCH_METHOD;
  size_t n_in = num_in - 2, n_out = num_out - 1;
  if (status == PLUGIN_OBJECT_OK &&
      (n_in != strlen(m->ins) || n_out != strlen(m->outs)))
    status = PLUGIN_OBJECT_BAD_ARGUMENTS;
  for (size_t i = 0; status == PLUGIN_OBJECT_OK && i < n_in; i++) {
    if (in[i + 2].type != wire_type(m->ins[i]))
      status = PLUGIN_OBJECT_BAD_ARGUMENTS;
  }
  for (size_t j = 0; status == PLUGIN_OBJECT_OK && j < n_out; j++) {
    if (out[j + 1].type != wire_type(m->outs[j]) ||
        (m->outs[j] == PLUGIN_TYPE_OBJECT && out[j + 1].count < kRefBytes))
      status = PLUGIN_OBJECT_BAD_ARGUMENTS;
  }
  PluginObjectCall* call = NULL;
  if (status == PLUGIN_OBJECT_OK) {
    call = calloc(1, sizeof(*call) + (n_in + n_out + 2) * sizeof(SrpcArg));
    if (call == NULL)
      status = PLUGIN_OBJECT_METHOD_FAILED;
  }
  if (status == PLUGIN_OBJECT_OK) {
    call->rpc = rpc;
    call->ch = ch;
    pthread_mutex_lock(&g_mu);
    ch->incoming++;
    pthread_mutex_unlock(&g_mu);
    call->target = target;
    call->method = m;
    call->wire_in = in;
    call->wire_out = out;
    call->in = (SrpcArg*)(call + 1);
    call->out = call->in + n_in + 1;
    call->num_in = n_in;
    call->num_out = n_out;
    /* Inputs: the wire's, with object references resolved. */
    Export* retired = NULL;
    pthread_mutex_lock(&g_mu);
    size_t decoded = 0;
    for (; decoded < n_in && status == PLUGIN_OBJECT_OK; decoded++) {
      call->in[decoded] = in[decoded + 2];
      if (m->ins[decoded] == PLUGIN_TYPE_OBJECT) {
        PluginObject* o;
        status = decode_ref_locked(ch, (const uint8_t*)in[decoded + 2].u.carr,
                                   in[decoded + 2].count, &o, &retired);
        call->in[decoded].type = PLUGIN_TYPE_OBJECT;
        call->in[decoded].u.ptr = o;
      }
    }
    PluginObject* undo[SRPC_MAX_ARGS];
    size_t num_undo = 0;
    if (status != PLUGIN_OBJECT_OK) {
      for (size_t i = 0; i + 1 < decoded; i++) {
        if (m->ins[i] == PLUGIN_TYPE_OBJECT && call->in[i].u.ptr != NULL)
          undo[num_undo++] = call->in[i].u.ptr;
      }
    }
    pthread_mutex_unlock(&g_mu);
    finish_releases(retired);
    for (size_t i = 0; i < num_undo; i++)
      plugin_object_unref(undo[i]);
    if (status != PLUGIN_OBJECT_OK) {
      pthread_mutex_lock(&g_mu);
      ch->incoming--;
      pthread_mutex_unlock(&g_mu);
      free(call);
      call = NULL;
    }
  }
  if (status != PLUGIN_OBJECT_OK) {
    plugin_object_unref(target);
    fail_results(out, num_out, status);
    srpc_rpc_complete(rpc, SRPC_RESULT_OK);
    return;
  }
  for (size_t j = 0; j < n_out; j++) {
    call->out[j] = out[j + 1];
    memset(&call->out[j].u, 0, sizeof(call->out[j].u));
    if (m->outs[j] == PLUGIN_TYPE_OBJECT) {
      call->out[j].type = PLUGIN_TYPE_OBJECT;
      call->out[j].count = 0;
    } else if (m->outs[j] == SRPC_TYPE_HANDLE) {
      call->out[j].u.hval = -1;
    }
  }
  if (target->proxy)
    forward(call, call->in, call->out, NULL);
  else
    m->fn(call, call->in, call->out, target->user);
}

/* ---- Roots and method tables ---- */

static void handle_root(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  (void)in;
  PluginObjects* ch = u;
  uint8_t ref[kRefBytes];
  int status = PLUGIN_OBJECT_OK;
  pthread_mutex_lock(&g_mu);
  if (ch->root == NULL)
    status = PLUGIN_OBJECT_NO_SUCH_OBJECT;
  else if (out[1].count < kRefBytes)
    status = PLUGIN_OBJECT_BAD_ARGUMENTS; /* checked before exporting */
  int len =
      status == PLUGIN_OBJECT_OK ? encode_ref_locked(ch, ch->root, ref) : 0;
  pthread_mutex_unlock(&g_mu);
  if (len < 0)
    status = PLUGIN_OBJECT_METHOD_FAILED;
  char* p = len > 0 ? srpc_arg_alloc(&out[1], (uint32_t)len) : NULL;
  if (p != NULL)
    memcpy(p, ref, (size_t)len);
  out[0].u.ival = status;
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

/* The method table as text: "name:ins:outs\n" each. */
static void handle_methods(SrpcRpc* rpc, SrpcArg* in, SrpcArg* out, void* u) {
  PluginObjects* ch = u;
  if (in[0].count != PLUGIN_OBJECT_ID_BYTES) {
    srpc_rpc_complete(rpc, SRPC_RESULT_BAD_ARG_TYPE);
    return;
  }
  PluginObject* o = exported(ch, (const uint8_t*)in[0].u.carr);
  int status = o == NULL ? PLUGIN_OBJECT_NO_SUCH_OBJECT : PLUGIN_OBJECT_OK;
  if (o != NULL && o->proxy)
    status = fetch_methods(o, -1, NULL);
  if (status == PLUGIN_OBJECT_OK) {
    const Method* table = o->proxy ? o->remote : o->methods;
    size_t n = o->proxy ? o->num_remote : o->num_methods;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
      len += strlen(table[i].name) + strlen(table[i].ins) +
             strlen(table[i].outs) + 3;
    char* p = len > 0 ? srpc_arg_alloc(&out[1], (uint32_t)len) : NULL;
    if (len > 0 && p == NULL) {
      status = PLUGIN_OBJECT_METHOD_FAILED;
    } else {
      size_t at = 0;
      for (size_t i = 0; i < n; i++) {
        size_t k = strlen(table[i].name);
        memcpy(p + at, table[i].name, k);
        at += k;
        p[at++] = ':';
        k = strlen(table[i].ins);
        memcpy(p + at, table[i].ins, k);
        at += k;
        p[at++] = ':';
        k = strlen(table[i].outs);
        memcpy(p + at, table[i].outs, k);
        at += k;
        p[at++] = '\n';
      }
    }
  }
  out[0].u.ival = status;
  plugin_object_unref(o);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

/* Calls one of the service's own methods on `ch`. */
static int service_call(PluginObjects* ch,
                        uint32_t number,
                        int timeout_ms,
                        SrpcCancel* cancel,
                        const SrpcArg* in,
                        size_t num_in,
                        SrpcArg* out,
                        size_t num_out) {
  pthread_mutex_lock(&g_mu);
  bool closed = ch->closed || ch->stopping;
  if (!closed)
    ch->busy++;
  pthread_mutex_unlock(&g_mu);
  if (closed)
    return PLUGIN_OBJECT_CLOSED;
  SrpcCallOptions opt = {timeout_ms, cancel};
  int r =
      srpc_invoke_args_opt(ch->channel, number, in, num_in, out, num_out, &opt);
  pthread_mutex_lock(&g_mu);
  if (--ch->busy == 0)
    pthread_cond_broadcast(&ch->cv);
  pthread_mutex_unlock(&g_mu);
  switch (r) {
    case SRPC_RESULT_OK:
      return PLUGIN_OBJECT_OK;
    case SRPC_RESULT_TIMED_OUT:
      return PLUGIN_OBJECT_TIMED_OUT;
    case SRPC_RESULT_CANCELLED:
      return PLUGIN_OBJECT_CANCELLED;
    case SRPC_RESULT_INTERNAL:
      return PLUGIN_OBJECT_CLOSED;
  }
  return PLUGIN_OBJECT_PROTOCOL;
}

static int fetch_methods(PluginObject* proxy,
                         int timeout_ms,
                         SrpcCancel* cancel) {
  pthread_mutex_lock(&g_mu);
  bool have = proxy->remote != NULL;
  PluginObjects* ch = proxy->ch;
  bool usable = ch != NULL && !ch->closed && !ch->stopping;
  uint8_t id[PLUGIN_OBJECT_ID_BYTES];
  memcpy(id, proxy->id, sizeof(id));
  if (!have && usable)
    ch->busy++; /* in the same section: the channel cannot go meanwhile */
  pthread_mutex_unlock(&g_mu);
  if (have)
    return PLUGIN_OBJECT_OK;
  if (!usable)
    return PLUGIN_OBJECT_CLOSED;
  SrpcArg in = {0};
  in.type = SRPC_TYPE_CHAR_ARRAY;
  in.u.carr = (char*)id;
  in.count = sizeof(id);
  SrpcArg out[2] = {{0}, {0}};
  out[0].type = SRPC_TYPE_INT;
  out[1].type = SRPC_TYPE_CHAR_ARRAY;
  char* text = malloc(65536);
  int r = PLUGIN_OBJECT_METHOD_FAILED;
  if (text != NULL) {
    out[1].u.carr = text;
    out[1].count = 65535;
    SrpcCallOptions opt = {timeout_ms, cancel};
    int sr = srpc_invoke_args_opt(ch->channel, kMethods, &in, 1, out, 2, &opt);
    r = sr == SRPC_RESULT_OK          ? PLUGIN_OBJECT_OK
        : sr == SRPC_RESULT_INTERNAL  ? PLUGIN_OBJECT_CLOSED
        : sr == SRPC_RESULT_TIMED_OUT ? PLUGIN_OBJECT_TIMED_OUT
        : sr == SRPC_RESULT_CANCELLED ? PLUGIN_OBJECT_CANCELLED
                                      : PLUGIN_OBJECT_PROTOCOL;
  }
  pthread_mutex_lock(&g_mu);
  if (--ch->busy == 0)
    pthread_cond_broadcast(&ch->cv);
  pthread_mutex_unlock(&g_mu);
  if (text == NULL)
    return r;
  if (r == PLUGIN_OBJECT_OK && out[0].u.ival != PLUGIN_OBJECT_OK)
    r = out[0].u.ival;
  Method* table = NULL;
  size_t n = 0;
  if (r == PLUGIN_OBJECT_OK) {
    text[out[1].count] = '\0';
    for (const char* c = text; *c; c++)
      n += *c == '\n';
    if (n > kMaxForwardedMethods) {
      free(text);
      return PLUGIN_OBJECT_PROTOCOL; /* no object needs more */
    }
    table = calloc(n ? n : 1, sizeof(Method));
    char* line = text;
    for (size_t i = 0; table != NULL && i < n; i++) {
      char* nl = strchr(line, '\n');
      *nl = '\0';
      if (!parse_method(line, &table[i])) {
        r = PLUGIN_OBJECT_PROTOCOL;
        break;
      }
      table[i].fn = forward;
      line = nl + 1;
    }
    if (table == NULL)
      r = PLUGIN_OBJECT_METHOD_FAILED;
  }
  free(text);
  pthread_mutex_lock(&g_mu);
  if (r == PLUGIN_OBJECT_OK && proxy->remote == NULL) {
    proxy->remote = table;
    proxy->num_remote = n;
    table = NULL;
  }
  pthread_mutex_unlock(&g_mu);
  free(table);
  return r;
}

/* ---- Channels ---- */

/* With the serving loop ended: the peer is gone. Every proxy of the
 * channel dies; every export is released. */
static void close_channel(PluginObjects* ch) {
  Export* done = NULL;
  PluginObject* root;
  pthread_mutex_lock(&g_mu);
  ch->closed = true;
  for (size_t b = 0; b < kBuckets; b++) {
    while (ch->exports[b] != NULL) {
      Export* e = ch->exports[b];
      unlink_export_locked(e);
      e->next_in_bucket = done;
      done = e;
    }
    for (PluginObject* p = ch->proxies[b]; p != NULL;) {
      PluginObject* next = p->next_in_bucket;
      p->ch = NULL;
      p->next_in_bucket = NULL;
      p = next;
    }
    ch->proxies[b] = NULL;
  }
  ch->num_proxies = 0;
  ch->num_pending = 0;
  root = ch->root;
  ch->root = NULL;
  pthread_cond_broadcast(&ch->cv);
  pthread_mutex_unlock(&g_mu);
  while (done != NULL) {
    Export* next = done->next_in_bucket;
    finish_release(done);
    done = next;
  }
  plugin_object_unref(root);
}

static void* serve_main(void* arg) {
  PluginObjects* ch = arg;
  srpc_channel_serve(ch->channel);
  shutdown(ch->fd, SHUT_RDWR); /* waiting callers fail at once */
  close_channel(ch);
  return NULL;
}

PluginObjects* plugin_objects_new(int fd) {
  pthread_once(&g_key_once, make_bucket_key);
  PluginObjects* ch = calloc(1, sizeof(*ch));
  if (ch == NULL) {
    close(fd);
    return NULL;
  }
  const SrpcMethod methods[] = {
      {"invoke:*:*", handle_invoke},
      {"release:CIL:", handle_release},
      {"root::iC", handle_root},
      {"methods:C:iC", handle_methods},
  };
  ch->fd = fd;
  ch->service = srpc_service_new(methods, 4, ch, NULL, NULL);
  ch->channel =
      ch->service != NULL ? srpc_channel_new(fd, ch->service, 0) : NULL;
  if (ch->service == NULL)
    close(fd);
  pthread_cond_init(&ch->cv, NULL);
  pthread_cond_init(&ch->release_cv, NULL);
  if (ch->channel == NULL ||
      pthread_create(&ch->serve_thread, NULL, serve_main, ch) != 0) {
    srpc_channel_free(ch->channel);
    srpc_service_free(ch->service);
    pthread_cond_destroy(&ch->cv);
    pthread_cond_destroy(&ch->release_cv);
    free(ch);
    return NULL;
  }
  if (pthread_create(&ch->release_thread, NULL, release_main, ch) != 0) {
    shutdown(fd, SHUT_RDWR);
    pthread_join(ch->serve_thread, NULL);
    srpc_channel_free(ch->channel);
    srpc_service_free(ch->service);
    pthread_cond_destroy(&ch->cv);
    pthread_cond_destroy(&ch->release_cv);
    free(ch);
    return NULL;
  }
  return ch;
}

void plugin_objects_free(PluginObjects* ch) {
  if (ch == NULL)
    return;
  shutdown(ch->fd, SHUT_RDWR);
  pthread_join(ch->serve_thread, NULL); /* closes the channel's tables */
  pthread_mutex_lock(&g_mu);
  ch->stopping = true;
  pthread_cond_signal(&ch->release_cv);
  while (ch->busy > 0 || ch->incoming > 0)
    pthread_cond_wait(&ch->cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  pthread_join(ch->release_thread, NULL);
  srpc_channel_free(ch->channel);
  srpc_service_free(ch->service);
  pthread_cond_destroy(&ch->cv);
  pthread_cond_destroy(&ch->release_cv);
  free(ch->pending);
  free(ch);
}

void plugin_objects_set_root(PluginObjects* ch, PluginObject* root) {
  if (root != NULL)
    plugin_object_ref(root);
  pthread_mutex_lock(&g_mu);
  PluginObject* old = ch->closed ? root : ch->root;
  if (!ch->closed)
    ch->root = root;
  pthread_mutex_unlock(&g_mu);
  plugin_object_unref(old);
}

int plugin_objects_root(PluginObjects* ch, int timeout_ms, PluginObject** out) {
  *out = NULL;
  uint8_t ref[kRefBytes];
  SrpcArg res[2] = {{0}, {0}};
  res[0].type = SRPC_TYPE_INT;
  res[1].type = SRPC_TYPE_CHAR_ARRAY;
  res[1].u.carr = (char*)ref;
  res[1].count = sizeof(ref);
  int r = service_call(ch, kRoot, timeout_ms, NULL, NULL, 0, res, 2);
  if (r != PLUGIN_OBJECT_OK)
    return r;
  if (res[0].u.ival != PLUGIN_OBJECT_OK)
    return res[0].u.ival > 0 && res[0].u.ival <= PLUGIN_OBJECT_PROTOCOL
               ? res[0].u.ival
               : PLUGIN_OBJECT_PROTOCOL;
  Export* retired = NULL;
  pthread_mutex_lock(&g_mu);
  r = ch->closed ? PLUGIN_OBJECT_CLOSED
                 : decode_ref_locked(ch, ref, res[1].count, out, &retired);
  pthread_mutex_unlock(&g_mu);
  finish_releases(retired);
  if (r == PLUGIN_OBJECT_OK && (*out == NULL || !(*out)->proxy)) {
    plugin_object_unref(*out);
    *out = NULL;
    r = PLUGIN_OBJECT_PROTOCOL; /* a root must be the peer's */
  }
  return r;
}

size_t plugin_objects_exported(PluginObjects* ch) {
  pthread_mutex_lock(&g_mu);
  size_t n = ch->num_exports;
  pthread_mutex_unlock(&g_mu);
  return n;
}

size_t plugin_objects_proxies(PluginObjects* ch) {
  pthread_mutex_lock(&g_mu);
  size_t n = ch->num_proxies;
  pthread_mutex_unlock(&g_mu);
  return n;
}

/* ---- Outgoing invocations ---- */

int plugin_object_invoke(PluginObject* proxy,
                         const char* name,
                         int timeout_ms,
                         SrpcCancel* cancel,
                         const SrpcArg* in,
                         size_t num_in,
                         SrpcArg* out,
                         size_t num_out) {
  if (proxy == NULL || !proxy->proxy)
    return PLUGIN_OBJECT_NOT_A_PROXY;
  if (name == NULL || num_in + 2 > SRPC_MAX_ARGS ||
      num_out + 1 > SRPC_MAX_ARGS || (num_in > 0 && in == NULL) ||
      (num_out > 0 && out == NULL))
    return PLUGIN_OBJECT_BAD_ARGUMENTS;
  pthread_mutex_lock(&g_mu);
  PluginObjects* ch = proxy->ch;
  uint8_t id[PLUGIN_OBJECT_ID_BYTES];
  memcpy(id, proxy->id, sizeof(id));
  if (ch == NULL || ch->closed) {
    pthread_mutex_unlock(&g_mu);
    return PLUGIN_OBJECT_CLOSED;
  }
  SrpcArg wire_in[SRPC_MAX_ARGS];
  SrpcArg wire_out[SRPC_MAX_ARGS];
  uint8_t refs[SRPC_MAX_ARGS][kRefBytes];
  int r = PLUGIN_OBJECT_OK;
  memset(&wire_in[0], 0, 2 * sizeof(SrpcArg));
  wire_in[0].type = SRPC_TYPE_CHAR_ARRAY;
  wire_in[0].u.carr = (char*)id;
  wire_in[0].count = sizeof(id);
  wire_in[1].type = SRPC_TYPE_STRING;
  wire_in[1].u.str = (char*)(uintptr_t)name;
  wire_in[1].count = (uint32_t)strlen(name);
  for (size_t i = 0; i < num_in && r == PLUGIN_OBJECT_OK; i++) {
    wire_in[i + 2] = in[i];
    if (in[i].type == PLUGIN_TYPE_OBJECT) {
      int len = encode_ref_locked(ch, in[i].u.ptr, refs[i]);
      if (len < 0)
        r = PLUGIN_OBJECT_METHOD_FAILED;
      wire_in[i + 2].type = SRPC_TYPE_CHAR_ARRAY;
      wire_in[i + 2].u.carr = (char*)refs[i];
      wire_in[i + 2].count = len < 0 ? 0 : (uint32_t)len;
    }
  }
  if (r == PLUGIN_OBJECT_OK)
    ch->busy++;
  pthread_mutex_unlock(&g_mu);
  if (r != PLUGIN_OBJECT_OK)
    return r;

  memset(&wire_out[0], 0, sizeof(SrpcArg));
  wire_out[0].type = SRPC_TYPE_INT;
  uint8_t out_refs[SRPC_MAX_ARGS][kRefBytes];
  for (size_t j = 0; j < num_out; j++) {
    wire_out[j + 1] = out[j];
    if (out[j].type == PLUGIN_TYPE_OBJECT) {
      wire_out[j + 1].type = SRPC_TYPE_CHAR_ARRAY;
      wire_out[j + 1].u.carr = (char*)out_refs[j];
      wire_out[j + 1].count = kRefBytes;
    }
  }
  SrpcCallOptions opt = {timeout_ms, cancel};
  int sr = srpc_invoke_args_opt(ch->channel, kInvoke, wire_in, num_in + 2,
                                wire_out, num_out + 1, &opt);
  r = sr == SRPC_RESULT_OK          ? PLUGIN_OBJECT_OK
      : sr == SRPC_RESULT_TIMED_OUT ? PLUGIN_OBJECT_TIMED_OUT
      : sr == SRPC_RESULT_CANCELLED ? PLUGIN_OBJECT_CANCELLED
      : sr == SRPC_RESULT_INTERNAL  ? PLUGIN_OBJECT_CLOSED
                                    : PLUGIN_OBJECT_PROTOCOL;
  if (r == PLUGIN_OBJECT_OK && wire_out[0].u.ival != PLUGIN_OBJECT_OK) {
    r = wire_out[0].u.ival >= 0 && wire_out[0].u.ival <= PLUGIN_OBJECT_PROTOCOL
            ? wire_out[0].u.ival
            : PLUGIN_OBJECT_PROTOCOL;
    /* Failed calls carry empty results; give back what srpc made. */
    for (size_t j = 0; j < num_out; j++) {
      SrpcArg* w = &wire_out[j + 1];
      if (w->type == SRPC_TYPE_STRING)
        free(w->u.str);
      else if (w->type == SRPC_TYPE_HANDLE && w->u.hval >= 0)
        close(w->u.hval);
      else if (out[j].type != PLUGIN_TYPE_OBJECT && out[j].u.ptr == NULL &&
               srpc_type_element_size(w->type) != 0)
        free(w->u.ptr); /* an array srpc allocated for the caller */
    }
  } else if (r == PLUGIN_OBJECT_OK) {
    Export* retired = NULL;
    pthread_mutex_lock(&g_mu);
    size_t j = 0;
    for (; j < num_out && r == PLUGIN_OBJECT_OK; j++) {
      if (out[j].type != PLUGIN_TYPE_OBJECT)
        continue;
      PluginObject* o = NULL;
      r = ch->closed ? PLUGIN_OBJECT_CLOSED
                     : decode_ref_locked(ch, out_refs[j], wire_out[j + 1].count,
                                         &o, &retired);
      wire_out[j + 1].u.ptr = o;
    }
    pthread_mutex_unlock(&g_mu);
    finish_releases(retired);
    for (size_t k = 0; k < num_out; k++) {
      if (out[k].type == PLUGIN_TYPE_OBJECT) {
        if (r == PLUGIN_OBJECT_OK)
          out[k].u.ptr = wire_out[k + 1].u.ptr;
        else if (k + 1 < j)
          plugin_object_unref(wire_out[k + 1].u.ptr);
      } else if (r == PLUGIN_OBJECT_OK) {
        out[k].u = wire_out[k + 1].u;
        out[k].count = wire_out[k + 1].count;
      } else if (out[k].type == SRPC_TYPE_STRING) {
        free(wire_out[k + 1].u.str); /* not the caller's after all */
      } else if (out[k].u.ptr == NULL &&
                 srpc_type_element_size(out[k].type) != 0) {
        free(wire_out[k + 1].u.ptr);
      } else if (out[k].type == SRPC_TYPE_HANDLE &&
                 wire_out[k + 1].u.hval >= 0) {
        close(wire_out[k + 1].u.hval);
      }
    }
  }
  pthread_mutex_lock(&g_mu);
  if (--ch->busy == 0)
    pthread_cond_broadcast(&ch->cv);
  pthread_mutex_unlock(&g_mu);
  return r;
}

typedef struct AsyncCall {
  PluginObject* proxy;
  char* name;
  int timeout_ms;
  SrpcCancel* cancel;
  const SrpcArg* in;
  size_t num_in;
  SrpcArg* out;
  size_t num_out;
  PluginInvokeDone done;
  void* user;
} AsyncCall;

static void* async_main(void* arg) {
  AsyncCall* a = arg;
  int r = plugin_object_invoke(a->proxy, a->name, a->timeout_ms, a->cancel,
                               a->in, a->num_in, a->out, a->num_out);
  a->done(r, a->out, a->num_out, a->user);
  plugin_object_unref(a->proxy);
  free(a->name);
  free(a);
  return NULL;
}

int plugin_object_invoke_async(PluginObject* proxy,
                               const char* name,
                               int timeout_ms,
                               SrpcCancel* cancel,
                               const SrpcArg* in,
                               size_t num_in,
                               SrpcArg* out,
                               size_t num_out,
                               PluginInvokeDone done,
                               void* user) {
  if (proxy == NULL || !proxy->proxy)
    return PLUGIN_OBJECT_NOT_A_PROXY;
  if (name == NULL || done == NULL)
    return PLUGIN_OBJECT_BAD_ARGUMENTS;
  AsyncCall* a = calloc(1, sizeof(*a));
  char* copy = strdup(name);
  if (a == NULL || copy == NULL) {
    free(a);
    free(copy);
    return PLUGIN_OBJECT_METHOD_FAILED;
  }
  *a = (AsyncCall){proxy,  copy, timeout_ms, cancel, in,
                   num_in, out,  num_out,    done,   user};
  plugin_object_ref(proxy); /* held for the call */
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int r = pthread_create(&t, &attr, async_main, a);
  pthread_attr_destroy(&attr);
  if (r != 0) {
    plugin_object_unref(proxy);
    free(copy);
    free(a);
    return PLUGIN_OBJECT_METHOD_FAILED;
  }
  return PLUGIN_OBJECT_OK;
}

int plugin_object_method_count(PluginObject* object,
                               int timeout_ms,
                               SrpcCancel* cancel,
                               size_t* count) {
  if (object == NULL || count == NULL)
    return PLUGIN_OBJECT_BAD_ARGUMENTS;
  *count = 0;
  int r = object->proxy ? fetch_methods(object, timeout_ms, cancel)
                        : PLUGIN_OBJECT_OK;
  pthread_mutex_lock(&g_mu);
  if (r == PLUGIN_OBJECT_OK)
    *count = object->proxy ? object->num_remote : object->num_methods;
  pthread_mutex_unlock(&g_mu);
  return r;
}

size_t plugin_object_method_signature(const PluginObject* object,
                                      size_t index,
                                      char* buf,
                                      size_t size) {
  if (object == NULL || buf == NULL)
    return 0;
  /* A proxy's table, once fetched, never changes. */
  pthread_mutex_lock(&g_mu);
  const Method* table = object->proxy ? object->remote : object->methods;
  size_t n = object->proxy ? object->num_remote : object->num_methods;
  pthread_mutex_unlock(&g_mu);
  if (index >= n)
    return 0;
  const Method* m = &table[index];
  int len = snprintf(buf, size, "%s:%s:%s", m->name, m->ins, m->outs);
  return len < 0 || (size_t)len >= size ? 0 : (size_t)len;
}

size_t plugin_object_exports(const PluginObject* object) {
  size_t n = 0;
  pthread_mutex_lock(&g_mu);
  if (object != NULL && !object->proxy) {
    for (const Export* e = object->exports; e != NULL; e = e->next_of_object)
      n++;
  }
  pthread_mutex_unlock(&g_mu);
  return n;
}

int plugin_object_get(PluginObject* proxy,
                      const char* property,
                      int timeout_ms,
                      SrpcArg* value) {
  char name[256];
  if (property == NULL || strlen(property) > sizeof(name) - 5)
    return PLUGIN_OBJECT_BAD_ARGUMENTS;
  strcpy(name, "get_");
  strcat(name, property);
  return plugin_object_invoke(proxy, name, timeout_ms, NULL, NULL, 0, value, 1);
}

int plugin_object_set(PluginObject* proxy,
                      const char* property,
                      int timeout_ms,
                      const SrpcArg* value) {
  char name[256];
  if (property == NULL || strlen(property) > sizeof(name) - 5)
    return PLUGIN_OBJECT_BAD_ARGUMENTS;
  strcpy(name, "set_");
  strcat(name, property);
  return plugin_object_invoke(proxy, name, timeout_ms, NULL, value, 1, NULL, 0);
}
