/* Channels: sending, the single-reader receive loop, request ids and the
 * matching of replies to waiting callers.
 *
 * No lock is held across a round trip. Whichever waiting thread finds no
 * one reading becomes the reader for one message: a reply wakes the caller
 * it belongs to, a request is served right there (an upcall) with the
 * reading role released, so others can read meanwhile. */

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "srpc/srpc_channel_internal.h"

/* With mu held: no reply can come any more. Wakes every waiter. */
static void mark_closed(SrpcChannel* ch) {
  ch->closed = true;
  pthread_cond_broadcast(&ch->cv);
}

SrpcChannel* srpc_channel_new(int fd,
                              const SrpcService* service,
                              size_t max_message_bytes) {
  SrpcChannel* ch = calloc(1, sizeof(*ch));
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ch == NULL || wake < 0) {
    if (wake >= 0)
      close(wake);
    free(ch);
    close(fd);
    return NULL;
  }
  ch->fd = fd;
  ch->wake_fd = wake;
  ch->service = service;
  ch->max_message_bytes =
      max_message_bytes ? max_message_bytes : SRPC_DEFAULT_MAX_MESSAGE_BYTES;
  pthread_mutex_init(&ch->send_mu, NULL);
  pthread_mutex_init(&ch->mu, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&ch->cv, &attr);
  pthread_condattr_destroy(&attr);
  ch->refs = 1;
  ch->next_id = 1;
  srpc_reassembly_init(&ch->reassembly, ch->max_message_bytes);
  return ch;
}

void srpc_channel_unref(SrpcChannel* ch) {
  pthread_mutex_lock(&ch->mu);
  int refs = --ch->refs;
  pthread_mutex_unlock(&ch->mu);
  if (refs > 0)
    return;
  srpc_reassembly_reset(&ch->reassembly);
  close(ch->fd);
  close(ch->wake_fd);
  free(ch->methods);
  for (size_t i = 0; i < ch->num_old_methods; i++)
    free(ch->old_methods[i]);
  free(ch->old_methods);
  pthread_cond_destroy(&ch->cv);
  pthread_mutex_destroy(&ch->mu);
  pthread_mutex_destroy(&ch->send_mu);
  free(ch);
}

void srpc_channel_free(SrpcChannel* ch) {
  if (ch == NULL)
    return;
  /* Deferred calls may still hold the channel to send their replies. Stop
   * reading now: the peer's further requests fail at once instead of
   * waiting on a channel nobody serves. */
  pthread_mutex_lock(&ch->mu);
  if (ch->refs > 1) {
    shutdown(ch->fd, SHUT_RD);
    mark_closed(ch);
  }
  pthread_mutex_unlock(&ch->mu);
  srpc_channel_unref(ch);
}

bool srpc_channel_start_call(SrpcChannel* ch) {
  pthread_mutex_lock(&ch->mu);
  bool ok = ch->outstanding < SRPC_MAX_OUTSTANDING_CALLS;
  if (ok) {
    ch->outstanding++;
    ch->refs++;
  }
  pthread_mutex_unlock(&ch->mu);
  return ok;
}

void srpc_channel_end_call(SrpcChannel* ch) {
  pthread_mutex_lock(&ch->mu);
  ch->outstanding--;
  pthread_mutex_unlock(&ch->mu);
  srpc_channel_unref(ch);
}

int srpc_channel_send(SrpcChannel* ch,
                      const SrpcHeader* header,
                      const SrpcArg* templates,
                      size_t num_templates,
                      const SrpcArg* values,
                      size_t num_values) {
  /* Large char arrays go from the caller's own buffers, not copied. */
  SrpcBuffer body = {0};
  int fds[SRPC_MAX_ARGS];
  size_t num_fds;
  SrpcSegment segs[2 * SRPC_MAX_ARGS + 1];
  size_t num_segs = 0, len = 0;
  int r = srpc_wire_encode_gather(header, templates, num_templates, values,
                                  num_values, &body, segs, &num_segs, &len, fds,
                                  &num_fds);
  if (r == SRPC_RESULT_OK && len > ch->max_message_bytes)
    r = SRPC_RESULT_NO_MEMORY;
  if (r == SRPC_RESULT_OK) {
    pthread_mutex_lock(&ch->send_mu);
    int sent = srpc_fragment_send_segments(ch->fd, segs, num_segs, len, fds,
                                           num_fds, SRPC_MAX_DATAGRAM_BYTES);
    if (sent == -2)
      shutdown(ch->fd, SHUT_RDWR); /* half a message: the stream is lost */
    pthread_mutex_unlock(&ch->send_mu);
    if (sent != 0)
      r = SRPC_RESULT_INTERNAL;
    if (sent == -2) {
      pthread_mutex_lock(&ch->mu);
      ch->failed = true;
      mark_closed(ch);
      pthread_mutex_unlock(&ch->mu);
    }
  }
  srpc_buffer_free(&body);
  return r;
}

void srpc_channel_request_break(SrpcChannel* ch) {
  pthread_mutex_lock(&ch->mu);
  if (ch->serving > 0) { /* without a server loop there is nothing to end */
    ch->break_requested = true;
    uint64_t one = 1;
    (void)!write(ch->wake_fd, &one, sizeof(one));
    pthread_cond_broadcast(&ch->cv);
  }
  pthread_mutex_unlock(&ch->mu);
}

struct timespec srpc_deadline_after(int ms) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

/* Milliseconds from now until `deadline`, rounded up; 0 once past. */
static int ms_until(const struct timespec* deadline) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t ns = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000000000 +
               (deadline->tv_nsec - now.tv_nsec);
  if (ns <= 0)
    return 0;
  int64_t ms = (ns + 999999) / 1000000;
  return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* Before reading: waits for input on the channel, or for `stop_fd` (the
 * wake-up of a server loop, or a caller's cancel flag) or `deadline`.
 * True if there is input to read. */
static bool wait_for_input(SrpcChannel* ch,
                           int stop_fd,
                           const struct timespec* deadline) {
  struct pollfd pfd[2] = {{ch->fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  for (;;) {
    int timeout = deadline != NULL ? ms_until(deadline) : -1;
    int n = poll(pfd, stop_fd >= 0 ? 2 : 1, timeout);
    if (n > 0)
      return (pfd[1].revents & POLLIN) == 0 || stop_fd < 0;
    if (n == 0)
      return false;
    if (errno != EINTR)
      return true; /* let the read report it */
  }
}

static SrpcPendingCall* find_pending(SrpcChannel* ch, uint32_t id) {
  for (SrpcPendingCall* c = ch->pending; c != NULL; c = c->next) {
    if (c->id == id && !c->done)
      return c;
  }
  return NULL;
}

/* Called with mu held and `reading` clear: receives and handles one message
 * (mu is released meanwhile). Returns with mu held and `reading` clear.
 * A caller with a bound passes its cancel descriptor (or -1) and deadline
 * (or NULL); it may return without reading. */
static void read_one(SrpcChannel* ch,
                     bool server_loop,
                     int cancel_fd,
                     const struct timespec* deadline) {
  ch->reading = true;
  /* Only a deferred call can ask for a break while this loop waits for
   * input: wait on the wake-up too only then, and spare the common path a
   * system call. */
  int stop_fd = server_loop && ch->outstanding > 0 ? ch->wake_fd : cancel_fd;
  bool interruptible = stop_fd >= 0 || deadline != NULL;
  pthread_mutex_unlock(&ch->mu);
  if (interruptible && !wait_for_input(ch, stop_fd, deadline)) {
    pthread_mutex_lock(&ch->mu);
    ch->reading = false;
    pthread_cond_broadcast(&ch->cv);
    return;
  }
  int got = srpc_fragment_receive(ch->fd, &ch->reassembly);
  SrpcMessage m;
  int decoded = SRPC_RESULT_INTERNAL;
  size_t len = 0;
  if (got == 1) {
    uint8_t* data;
    int fds[SRPC_MAX_ARGS];
    size_t num_fds;
    srpc_reassembly_take(&ch->reassembly, &data, &len, fds, &num_fds);
    /* The message keeps the bytes: its char arrays point into them. */
    decoded = srpc_wire_decode_body(data, len, fds, num_fds,
                                    ch->max_message_bytes, &m);
  } else if (got == 2) {
    /* Read whole but dropped for lack of memory: answered (or, for a
     * reply, reported to its caller) as NO_MEMORY, by its header. */
    uint8_t head[SRPC_HEADER_BYTES];
    len = srpc_reassembly_take_header(&ch->reassembly, head);
    srpc_wire_decode(head, len, NULL, 0, ch->max_message_bytes, &m);
    decoded = SRPC_RESULT_NO_MEMORY;
  }
  pthread_mutex_lock(&ch->mu);
  ch->reading = false;
  pthread_cond_broadcast(&ch->cv);
  if ((got != 1 && got != 2) || len < SRPC_HEADER_BYTES) {
    /* End of stream, a read error, or a message that cannot be addressed:
     * the channel is done. Shut it so the peer learns too. */
    if (got == 1 || got < 0) {
      shutdown(ch->fd, SHUT_RDWR);
      ch->failed = true;
    }
    mark_closed(ch);
    return;
  }
  if (!m.header.is_request) {
    SrpcPendingCall* call = find_pending(ch, m.header.request_id);
    if (call == NULL) {
      srpc_message_free(&m); /* a reply nobody waits for: dropped */
      return;
    }
    call->reply = m;
    call->decode_result = decoded;
    call->done = true;
    return;
  }
  if (server_loop)
    ch->dispatching++;
  pthread_mutex_unlock(&ch->mu);
  srpc_server_dispatch(ch, &m, decoded);
  pthread_mutex_lock(&ch->mu);
  if (server_loop) {
    ch->dispatching--;
    if (ch->bounded_waiting > 0)
      pthread_cond_broadcast(&ch->cv); /* one may wait for us to read */
  }
}

int srpc_channel_serve(SrpcChannel* ch) {
  pthread_mutex_lock(&ch->mu);
  ch->serving++;
  int result = SRPC_RESULT_OK;
  for (;;) {
    if (ch->break_requested) {
      ch->break_requested = false;
      uint64_t count;
      (void)!read(ch->wake_fd, &count, sizeof(count));
      result = SRPC_RESULT_BREAK;
      break;
    }
    if (ch->closed) {
      if (ch->failed)
        result = SRPC_RESULT_INTERNAL;
      break;
    }
    if (!ch->reading)
      read_one(ch, true, -1, NULL);
    else
      pthread_cond_wait(&ch->cv, &ch->mu);
  }
  ch->serving--;
  pthread_mutex_unlock(&ch->mu);
  return result;
}

/* Moves reply value `v` into the caller's result `out` (same type, and an
 * array that fits: take_results checked). */
/* Moves one value of the reply into the caller's result. `copy` is, for
 * an array the caller wants allocated that is part of the message's own
 * bytes, a buffer already made for it. */
static void copy_result(SrpcArg* v, void* copy, SrpcArg* out) {
  size_t size = srpc_type_element_size(v->type);
  if (v->type == SRPC_TYPE_STRING) {
    out->u.str = v->u.str;
    out->count = v->count;
    v->u.str = NULL;
  } else if (size != 0 && out->u.ptr == NULL && copy != NULL) {
    memcpy(copy, v->u.ptr, (size_t)v->count * size);
    out->u.ptr = copy;
    out->count = v->count;
  } else if (size != 0 && out->u.ptr == NULL) {
    out->u.ptr = v->u.ptr; /* the caller asked for the array itself */
    out->count = v->count;
    v->u.ptr = NULL;
  } else if (size != 0) {
    if (v->count > 0)
      memcpy(out->u.ptr, v->u.ptr, (size_t)v->count * size);
    out->count = v->count;
  } else if (v->type == SRPC_TYPE_HANDLE) {
    out->u.hval = v->u.hval;
    v->u.hval = -1;
  } else {
    out->u = v->u;
  }
}

/* Moves the reply's values into the caller's results: all or nothing. */
static int reply_result(const SrpcMessage* reply);

static int take_results(SrpcMessage* reply, SrpcArg* out, size_t num_out) {
  int r = reply_result(reply);
  if (r != SRPC_RESULT_OK)
    return r;
  if (reply->header.value_len != num_out)
    return SRPC_RESULT_OUT_ARG_TYPE_MISMATCH;
  /* Check everything first, so that nothing reaches the caller's buffers
   * unless all of it does. */
  for (size_t i = 0; i < num_out; i++) {
    const SrpcArg* v = &reply->values[i];
    if (v->type != out[i].type)
      return SRPC_RESULT_OUT_ARG_TYPE_MISMATCH;
    if (v->type != SRPC_TYPE_STRING && srpc_type_element_size(v->type) &&
        v->count > out[i].count)
      return SRPC_RESULT_MESSAGE_TRUNCATED;
  }
  /* Arrays the caller wants allocated that are part of the message's
   * bytes get buffers of their own, all of them before anything moves. */
  void* copies[SRPC_MAX_ARGS] = {NULL};
  for (size_t i = 0; i < num_out; i++) {
    const SrpcArg* v = &reply->values[i];
    if (out[i].u.ptr != NULL || !srpc_message_borrowed(reply, i) ||
        v->count == 0)
      continue;
    copies[i] = malloc((size_t)v->count * srpc_type_element_size(v->type));
    if (copies[i] == NULL) {
      for (size_t k = 0; k < i; k++)
        free(copies[k]);
      return SRPC_RESULT_NO_MEMORY;
    }
  }
  for (size_t i = 0; i < num_out; i++)
    copy_result(&reply->values[i], copies[i], &out[i]);
  return SRPC_RESULT_OK;
}

/* A reply's result as the caller sees it: a value outside the protocol's
 * range (the local outcomes included) is the peer's error. */
static int reply_result(const SrpcMessage* reply) {
  uint32_t r = reply->header.result;
  return r >= SRPC_RESULT_OK && r <= SRPC_RESULT_APP_ERROR
             ? (int)r
             : SRPC_RESULT_INTERNAL;
}

/* Sends a request and waits for its reply, within `opt` if not NULL; on
 * success the reply is left in call->reply for the caller to consume and
 * free. */
static int round_trip(SrpcChannel* ch,
                      uint32_t rpc_number,
                      const SrpcArg* in,
                      size_t num_in,
                      const SrpcArg* templates,
                      size_t num_out,
                      const SrpcCallOptions* opt,
                      SrpcPendingCall* call) {
  memset(call, 0, sizeof(*call));
  SrpcCancel* cancel = opt != NULL ? opt->cancel : NULL;
  struct timespec deadline_storage;
  const struct timespec* deadline = NULL;
  if (opt != NULL && opt->timeout_ms >= 0) {
    deadline_storage = srpc_deadline_after(opt->timeout_ms);
    deadline = &deadline_storage;
  }
  SrpcCancelWaiter waiter = {&ch->mu, &ch->cv, NULL};
  if (cancel != NULL) {
    if (srpc_cancel_is_signalled(cancel))
      return SRPC_RESULT_CANCELLED;
    srpc_cancel_add_waiter(cancel, &waiter);
  }
  pthread_mutex_lock(&ch->mu);
  if (ch->closed) {
    pthread_mutex_unlock(&ch->mu);
    if (cancel != NULL)
      srpc_cancel_remove_waiter(cancel, &waiter);
    return SRPC_RESULT_INTERNAL;
  }
  call->id = ch->next_id++;
  if (ch->next_id == 0)
    ch->next_id = 1; /* 0 is what the original library's callers use */
  call->next = ch->pending;
  ch->pending = call;
  pthread_mutex_unlock(&ch->mu);

  SrpcHeader h = {SRPC_PROTOCOL_VERSION, call->id, 1, rpc_number,
                  SRPC_RESULT_OK,        0,        0};
  int r = srpc_channel_send(ch, &h, templates, num_out, in, num_in);

  bool bounded = cancel != NULL || deadline != NULL;
  int cancel_fd = cancel != NULL ? srpc_cancel_fd(cancel) : -1;
  pthread_mutex_lock(&ch->mu);
  if (bounded)
    ch->bounded_waiting++;
  while (r == SRPC_RESULT_OK && !call->done) {
    if (ch->closed) {
      r = SRPC_RESULT_INTERNAL;
    } else if (cancel != NULL && srpc_cancel_is_signalled(cancel)) {
      r = SRPC_RESULT_CANCELLED;
    } else if (deadline != NULL && ms_until(deadline) == 0) {
      r = SRPC_RESULT_TIMED_OUT;
    } else if (!ch->reading && !(bounded && ch->serving > ch->dispatching)) {
      read_one(ch, false, cancel_fd, deadline);
    } else if (deadline != NULL) {
      pthread_cond_timedwait(&ch->cv, &ch->mu, deadline);
    } else {
      pthread_cond_wait(&ch->cv, &ch->mu);
    }
  }
  if (bounded)
    ch->bounded_waiting--;
  for (SrpcPendingCall** p = &ch->pending; *p != NULL; p = &(*p)->next) {
    if (*p == call) {
      *p = call->next;
      break;
    }
  }
  pthread_mutex_unlock(&ch->mu);
  if (cancel != NULL)
    srpc_cancel_remove_waiter(cancel, &waiter);
  if (r == SRPC_RESULT_OK && call->decode_result != SRPC_RESULT_OK) {
    r = call->decode_result;
    srpc_message_free(&call->reply);
  } else if (r != SRPC_RESULT_OK && call->done) {
    srpc_message_free(&call->reply);
  }
  return r;
}

int srpc_invoke_args(SrpcChannel* ch,
                     uint32_t rpc_number,
                     const SrpcArg* in,
                     size_t num_in,
                     SrpcArg* out,
                     size_t num_out) {
  return srpc_invoke_args_opt(ch, rpc_number, in, num_in, out, num_out, NULL);
}

int srpc_invoke_args_opt(SrpcChannel* ch,
                         uint32_t rpc_number,
                         const SrpcArg* in,
                         size_t num_in,
                         SrpcArg* out,
                         size_t num_out,
                         const SrpcCallOptions* opt) {
  if (num_in > SRPC_MAX_ARGS || num_out > SRPC_MAX_ARGS)
    return SRPC_RESULT_TOO_MANY_ARGS;
  SrpcPendingCall call;
  int r = round_trip(ch, rpc_number, in, num_in, out, num_out, opt, &call);
  if (r != SRPC_RESULT_OK)
    return r;
  r = take_results(&call.reply, out, num_out);
  srpc_message_free(&call.reply);
  return r;
}

int srpc_channel_discover(SrpcChannel* ch) {
  return srpc_channel_discover_opt(ch, NULL);
}

int srpc_channel_discover_opt(SrpcChannel* ch, const SrpcCallOptions* opt) {
  SrpcArg t = {0};
  t.type = SRPC_TYPE_CHAR_ARRAY;
  t.count = (uint32_t)(ch->max_message_bytes < UINT32_MAX
                           ? ch->max_message_bytes - SRPC_HEADER_BYTES -
                                 SRPC_ARG_BYTES
                           : UINT32_MAX);
  SrpcPendingCall call;
  int r = round_trip(ch, 0, NULL, 0, &t, 1, opt, &call);
  if (r != SRPC_RESULT_OK)
    return r;
  r = reply_result(&call.reply);
  if (r == SRPC_RESULT_OK &&
      (call.reply.header.value_len != 1 || call.reply.values[0].type != 'C'))
    r = SRPC_RESULT_OUT_ARG_TYPE_MISMATCH;
  if (r == SRPC_RESULT_OK) {
    const char* text = call.reply.values[0].u.carr;
    size_t len = call.reply.values[0].count;
    int n = srpc_discovery_parse(text, len, NULL, 0);
    SrpcSignature* sigs = n > 0 ? calloc((size_t)n, sizeof(*sigs)) : NULL;
    if (n < 0) {
      r = SRPC_RESULT_BAD_ARG_TYPE;
    } else if (n > 0 && sigs == NULL) {
      r = SRPC_RESULT_NO_MEMORY;
    } else {
      srpc_discovery_parse(text, len, sigs, (size_t)n);
      pthread_mutex_lock(&ch->mu);
      SrpcSignature** old = NULL;
      if (ch->methods != NULL) {
        old =
            realloc(ch->old_methods, (ch->num_old_methods + 1) * sizeof(*old));
      }
      if (ch->methods != NULL && old == NULL) {
        free(sigs);
        r = SRPC_RESULT_NO_MEMORY;
      } else {
        if (old != NULL) {
          old[ch->num_old_methods++] = ch->methods;
          ch->old_methods = old;
        }
        ch->methods = sigs;
        ch->num_methods = (size_t)n;
      }
      pthread_mutex_unlock(&ch->mu);
    }
  }
  srpc_message_free(&call.reply);
  return r;
}

size_t srpc_channel_method_count(const SrpcChannel* ch) {
  SrpcChannel* c = (SrpcChannel*)(uintptr_t)ch;
  pthread_mutex_lock(&c->mu);
  size_t n = c->num_methods;
  pthread_mutex_unlock(&c->mu);
  return n;
}

const SrpcSignature* srpc_channel_method(const SrpcChannel* ch, size_t i) {
  SrpcChannel* c = (SrpcChannel*)(uintptr_t)ch;
  pthread_mutex_lock(&c->mu);
  const SrpcSignature* s = i < c->num_methods ? &c->methods[i] : NULL;
  pthread_mutex_unlock(&c->mu);
  return s;
}

int srpc_channel_find_method(SrpcChannel* ch,
                             const char* name_or_sig,
                             SrpcSignature* out) {
  if (name_or_sig == NULL)
    return -1;
  SrpcSignature want;
  bool full = strchr(name_or_sig, ':') != NULL;
  if (full && srpc_signature_parse(name_or_sig, &want) != SRPC_SIGNATURE_OK)
    return -1;
  int found = -1;
  pthread_mutex_lock(&ch->mu);
  for (size_t i = 0; i < ch->num_methods && i <= INT32_MAX; i++) {
    const SrpcSignature* s = &ch->methods[i];
    if (full ? strcmp(s->name, want.name) == 0 &&
                   strcmp(s->ins, want.ins) == 0 &&
                   strcmp(s->outs, want.outs) == 0
             : strcmp(s->name, name_or_sig) == 0) {
      found = (int)i;
      if (out != NULL)
        *out = *s;
      break;
    }
  }
  pthread_mutex_unlock(&ch->mu);
  return found;
}

int srpc_channel_lookup(const SrpcChannel* ch, const char* name_or_sig) {
  return srpc_channel_find_method((SrpcChannel*)(uintptr_t)ch, name_or_sig,
                                  NULL);
}
