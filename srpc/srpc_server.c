/* Services: method tables, discovery, dispatch of requests, completion. */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imc/imc.h"

#include "srpc/srpc_channel_internal.h"

static const char kDiscoverySignature[] = "service_discovery::C";

static void discovery_handler(SrpcRpc* rpc,
                              SrpcArg* in,
                              SrpcArg* out,
                              void* user) {
  (void)in;
  (void)user;
  const SrpcService* s = rpc->channel->service;
  if (s->discovery_len > rpc->capacity[0]) {
    srpc_rpc_complete(rpc, SRPC_RESULT_MESSAGE_TRUNCATED);
    return;
  }
  char* text = srpc_arg_alloc(&out[0], (uint32_t)s->discovery_len);
  if (text == NULL && s->discovery_len > 0) {
    srpc_rpc_complete(rpc, SRPC_RESULT_NO_MEMORY);
    return;
  }
  if (s->discovery_len > 0)
    memcpy(text, s->discovery, s->discovery_len);
  srpc_rpc_complete(rpc, SRPC_RESULT_OK);
}

void srpc_service_free(SrpcService* s) {
  if (s == NULL)
    return;
  free(s->sigs);
  free(s->handlers);
  free(s->discovery);
  free(s);
}

/* Appends "name:ins:outs\n" for every method to the discovery text. */
static int build_discovery(SrpcService* s) {
  size_t len = 0;
  for (size_t i = 0; i < s->count; i++)
    len += strlen(s->sigs[i].name) + strlen(s->sigs[i].ins) +
           strlen(s->sigs[i].outs) + 3;
  s->discovery = malloc(len + 1);
  if (s->discovery == NULL)
    return -1;
  size_t at = 0;
  for (size_t i = 0; i < s->count; i++) {
    const SrpcSignature* sig = &s->sigs[i];
    at += (size_t)snprintf(s->discovery + at, len + 1 - at, "%s:%s:%s\n",
                           sig->name, sig->ins, sig->outs);
  }
  s->discovery_len = len;
  return 0;
}

SrpcService* srpc_service_new(const SrpcMethod* methods,
                              size_t n,
                              void* user,
                              SrpcSignatureError* out_error,
                              size_t* out_index) {
  SrpcSignatureError err = SRPC_SIGNATURE_OK;
  size_t bad = 0;
  SrpcService* s = calloc(1, sizeof(*s));
  if (s == NULL || n >= SRPC_MAX_METHODS || (n > 0 && methods == NULL)) {
    free(s);
    return NULL;
  }
  s->count = n + 1;
  s->user = user;
  s->sigs = calloc(s->count, sizeof(*s->sigs));
  s->handlers = calloc(s->count, sizeof(*s->handlers));
  if (s->sigs == NULL || s->handlers == NULL) {
    srpc_service_free(s);
    return NULL;
  }
  srpc_signature_parse(kDiscoverySignature, &s->sigs[0]);
  s->handlers[0] = discovery_handler;
  for (size_t i = 0; i < n && err == SRPC_SIGNATURE_OK; i++) {
    bad = i;
    err = srpc_signature_parse(methods[i].signature, &s->sigs[i + 1]);
    if (err == SRPC_SIGNATURE_OK && methods[i].handler == NULL)
      err = SRPC_SIGNATURE_NULL;
    for (size_t j = 0; j <= i && err == SRPC_SIGNATURE_OK; j++) {
      if (strcmp(s->sigs[j].name, s->sigs[i + 1].name) == 0)
        err = SRPC_SIGNATURE_DUPLICATE;
    }
    s->handlers[i + 1] = methods[i].handler;
  }
  if (err != SRPC_SIGNATURE_OK || build_discovery(s) != 0) {
    if (out_error)
      *out_error = err;
    if (out_index)
      *out_index = bad;
    srpc_service_free(s);
    return NULL;
  }
  return s;
}

const char* srpc_service_discovery_text(const SrpcService* s, size_t* len) {
  *len = s->discovery_len;
  return s->discovery;
}

void* srpc_arg_alloc(SrpcArg* out, uint32_t count) {
  size_t size = srpc_type_element_size(out->type);
  if (size == 0 || out->type == SRPC_TYPE_STRING || count > out->count)
    return NULL;
  void* p = calloc(count ? count : 1, size);
  if (p == NULL)
    return NULL;
  free(out->u.ptr);
  out->u.ptr = p;
  out->count = count;
  return p;
}

int srpc_arg_set_string(SrpcArg* out, const char* s) {
  char* copy = strdup(s ? s : "");
  if (copy == NULL)
    return -1;
  free(out->u.str);
  out->u.str = copy;
  out->count = (uint32_t)strlen(copy);
  return 0;
}

uint32_t srpc_rpc_number(const SrpcRpc* rpc) {
  return rpc->rpc_number;
}

SrpcChannel* srpc_rpc_channel(const SrpcRpc* rpc) {
  return rpc->channel;
}

size_t srpc_rpc_num_in(const SrpcRpc* rpc) {
  return rpc->num_in;
}

size_t srpc_rpc_num_out(const SrpcRpc* rpc) {
  return rpc->num_out;
}

static bool is_variadic(const char* types) {
  return types[0] == SRPC_VARIADIC;
}

/* Does the request match the method's signature? */
static int check_types(const SrpcMessage* m, const SrpcSignature* sig) {
  if (is_variadic(sig->ins) && is_variadic(sig->outs))
    return SRPC_RESULT_OK;
  size_t ins = strlen(sig->ins), outs = strlen(sig->outs);
  if (!is_variadic(sig->ins)) {
    if (m->header.value_len < ins)
      return SRPC_RESULT_TOO_FEW_ARGS;
    if (m->header.value_len > ins)
      return SRPC_RESULT_TOO_MANY_ARGS;
    for (size_t i = 0; i < ins; i++) {
      if (m->values[i].type != sig->ins[i])
        return SRPC_RESULT_IN_ARG_TYPE_MISMATCH;
    }
  }
  if (!is_variadic(sig->outs)) {
    if (m->header.template_len != outs)
      return SRPC_RESULT_OUT_ARG_TYPE_MISMATCH;
    for (size_t i = 0; i < outs; i++) {
      if (m->templates[i].type != sig->outs[i])
        return SRPC_RESULT_OUT_ARG_TYPE_MISMATCH;
    }
  }
  return SRPC_RESULT_OK;
}

static void reply_error(SrpcChannel* ch, const SrpcHeader* request, int r) {
  SrpcHeader h = {SRPC_PROTOCOL_VERSION,
                  request->request_id,
                  0,
                  request->rpc_number,
                  (uint32_t)r,
                  0,
                  0};
  srpc_channel_send(ch, &h, NULL, 0, NULL, 0);
}

void srpc_server_dispatch(SrpcChannel* ch, SrpcMessage* m, int decoded) {
  const SrpcService* s = ch->service;
  int r = decoded;
  if (r == SRPC_RESULT_OK && (s == NULL || m->header.rpc_number >= s->count))
    r = SRPC_RESULT_BAD_RPC_NUMBER;
  const SrpcSignature* sig =
      r == SRPC_RESULT_OK ? &s->sigs[m->header.rpc_number] : NULL;
  if (sig != NULL)
    r = check_types(m, sig);
  SrpcRpc* rpc = NULL;
  size_t outs = sig == NULL              ? 0
                : is_variadic(sig->outs) ? m->header.template_len
                                         : strlen(sig->outs);
  bool counted = false;
  if (r == SRPC_RESULT_OK) {
    counted = srpc_channel_start_call(ch);
    if (!counted)
      r = SRPC_RESULT_NO_MEMORY; /* too many calls not yet completed */
  }
  if (r == SRPC_RESULT_OK) {
    rpc = calloc(1, sizeof(*rpc));
    if (rpc != NULL) {
      rpc->out = calloc(outs ? outs : 1, sizeof(SrpcArg));
      rpc->capacity = calloc(outs ? outs : 1, sizeof(uint32_t));
    }
    if (rpc == NULL || rpc->out == NULL || rpc->capacity == NULL)
      r = SRPC_RESULT_NO_MEMORY;
  }
  if (r != SRPC_RESULT_OK) {
    if (rpc != NULL) {
      free(rpc->out);
      free(rpc->capacity);
      free(rpc);
    }
    reply_error(ch, &m->header, r);
    srpc_message_free(m);
    if (counted)
      srpc_channel_end_call(ch);
    return;
  }
  rpc->channel = ch;
  rpc->request_id = m->header.request_id;
  rpc->rpc_number = m->header.rpc_number;
  rpc->in = m->values;
  rpc->num_in = m->header.value_len;
  rpc->num_out = outs;
  for (size_t i = 0; i < outs; i++) {
    rpc->out[i].type = m->templates[i].type; /* what check_types allowed */
    rpc->capacity[i] = m->templates[i].count;
    rpc->out[i].count = m->templates[i].count;
    if (rpc->out[i].type == SRPC_TYPE_HANDLE)
      rpc->out[i].u.hval = -1;
  }
  rpc->body = m->body;
  rpc->borrowed[0] = m->borrowed[0];
  rpc->borrowed[1] = m->borrowed[1];
  m->values = NULL;
  m->body = NULL;
  free(m->templates);
  m->templates = NULL;
  s->handlers[rpc->rpc_number](rpc, rpc->in, rpc->out, s->user);
}

/* Checks the handler's results against what the caller can take. */
static int check_results(SrpcRpc* rpc) {
  for (size_t i = 0; i < rpc->num_out; i++) {
    SrpcArg* out = &rpc->out[i];
    if (out->type == SRPC_TYPE_STRING || srpc_type_element_size(out->type) == 0)
      continue;
    if (out->u.ptr == NULL)
      out->count = 0; /* never filled: an empty array */
    if (out->count > rpc->capacity[i])
      return SRPC_RESULT_INTERNAL;
  }
  return SRPC_RESULT_OK;
}

void srpc_rpc_complete(SrpcRpc* rpc, int result) {
  SrpcChannel* ch = rpc->channel;
  bool brk = result == SRPC_RESULT_BREAK;
  if (brk)
    result = SRPC_RESULT_OK;
  if (result == SRPC_RESULT_OK)
    result = check_results(rpc);
  SrpcHeader h = {SRPC_PROTOCOL_VERSION,
                  rpc->request_id,
                  0,
                  rpc->rpc_number,
                  (uint32_t)result,
                  0,
                  0};
  int sent = srpc_channel_send(ch, &h, NULL, 0, rpc->out,
                               result == SRPC_RESULT_OK ? rpc->num_out : 0);
  if (sent != SRPC_RESULT_OK && sent != SRPC_RESULT_INTERNAL) {
    /* The results could not be encoded: say so instead. */
    h.result = (uint32_t)sent;
    srpc_channel_send(ch, &h, NULL, 0, NULL, 0);
  }
  for (size_t i = 0; i < rpc->num_in; i++) {
    if ((rpc->borrowed[i / 64] >> (i % 64)) & 1u)
      rpc->in[i].u.ptr = NULL; /* part of the body, freed below */
  }
  srpc_args_release(rpc->in, rpc->num_in);
  srpc_args_release(rpc->out, rpc->num_out);
  free(rpc->body);
  free(rpc->in);
  free(rpc->out);
  free(rpc->capacity);
  free(rpc);
  if (brk)
    srpc_channel_request_break(ch);
  srpc_channel_end_call(ch);
}

/* srpc_serve_bound: connection threads, and the count the acceptor waits
 * on before it returns. */
typedef struct BoundServer {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int live;
} BoundServer;

typedef struct Connection {
  BoundServer* server;
  SrpcChannel* channel;
} Connection;

static void* connection_main(void* arg) {
  Connection* c = arg;
  srpc_channel_serve(c->channel);
  srpc_channel_free(c->channel);
  pthread_mutex_lock(&c->server->mu);
  c->server->live--;
  pthread_cond_broadcast(&c->server->cv);
  pthread_mutex_unlock(&c->server->mu);
  free(c);
  return NULL;
}

/* Starts a thread serving `fd`; closes it if that is not possible. */
static void start_connection(BoundServer* server,
                             int fd,
                             const SrpcService* service,
                             size_t max_bytes) {
  Connection* c = calloc(1, sizeof(*c));
  SrpcChannel* ch = srpc_channel_new(fd, service, max_bytes);
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  bool started = false;
  if (c != NULL && ch != NULL) {
    c->server = server;
    c->channel = ch;
    pthread_mutex_lock(&server->mu);
    server->live++;
    pthread_mutex_unlock(&server->mu);
    /* Once started, `c` is the thread's: it may be gone already. */
    started = pthread_create(&thread, &attr, connection_main, c) == 0;
    if (!started) {
      pthread_mutex_lock(&server->mu);
      server->live--;
      pthread_mutex_unlock(&server->mu);
    }
  }
  pthread_attr_destroy(&attr);
  if (!started) {
    free(c);
    srpc_channel_free(ch);
  }
}

int srpc_serve_bound(int bound,
                     const SrpcService* service,
                     size_t max_message_bytes) {
  BoundServer server;
  pthread_mutex_init(&server.mu, NULL);
  pthread_cond_init(&server.cv, NULL);
  server.live = 0;
  int result = SRPC_RESULT_OK;
  for (;;) {
    int fd = imc_accept(bound);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        usleep(10000); /* that request is lost; later ones may fit */
        continue;
      }
      if (errno != EPIPE)
        result = SRPC_RESULT_INTERNAL;
      break;
    }
    start_connection(&server, fd, service, max_message_bytes);
  }
  pthread_mutex_lock(&server.mu);
  while (server.live > 0)
    pthread_cond_wait(&server.cv, &server.mu);
  pthread_mutex_unlock(&server.mu);
  pthread_cond_destroy(&server.cv);
  pthread_mutex_destroy(&server.mu);
  return result;
}
