/* Internal to srpc/: the channel and service structures shared by
 * srpc_channel.c (calls, the reading loop), srpc_server.c (dispatch) and
 * srpc_client.c (invocation forms). */

#ifndef SRPC_SRPC_CHANNEL_INTERNAL_H_
#define SRPC_SRPC_CHANNEL_INTERNAL_H_

#include <pthread.h>
#include <stdbool.h>

#include "srpc/srpc.h"
#include "srpc/srpc_fragment.h"
#include "srpc/srpc_wire.h"

struct SrpcService {
  size_t count; /* methods, discovery (number 0) included */
  SrpcSignature* sigs;
  SrpcHandler* handlers;
  void* user;
  char* discovery;
  size_t discovery_len;
};

/* A call waiting for its reply. Lives on the caller's stack. */
typedef struct SrpcPendingCall {
  uint32_t id;
  bool done;
  int decode_result; /* of the reply, when done */
  SrpcMessage reply;
  struct SrpcPendingCall* next;
} SrpcPendingCall;

struct SrpcChannel {
  int fd;
  const SrpcService* service;
  size_t max_message_bytes;
  pthread_mutex_t send_mu; /* held for the datagrams of one message only */
  pthread_mutex_t mu;      /* everything below */
  pthread_cond_t cv;
  int refs;
  int wake_fd;         /* eventfd: interrupts a server loop's wait for input */
  int serving;         /* server loops running */
  int dispatching;     /* of those, running a handler (not able to read) */
  int bounded_waiting; /* bounded callers waiting for a reply */
  int outstanding;     /* requests dispatched and not yet completed */
  bool reading;        /* one thread at a time receives */
  bool closed;         /* end of stream or failure: no reply will come */
  bool failed;         /* closed by a read or framing error */
  bool break_requested;
  uint32_t next_id;
  SrpcPendingCall* pending;
  SrpcReassembly reassembly; /* used by the reading thread only */
  SrpcSignature* methods;    /* from discovery; under mu */
  size_t num_methods;
  SrpcSignature** old_methods; /* earlier tables, kept: pointers stay valid */
  size_t num_old_methods;
};

/* CLOCK_MONOTONIC now plus `ms`, for pthread_cond_timedwait on the
 * channel's condition variable (which uses that clock). */
struct timespec srpc_deadline_after(int ms);

struct SrpcRpc {
  SrpcChannel* channel;
  uint32_t request_id;
  uint32_t rpc_number;
  SrpcArg* in;
  size_t num_in;
  SrpcArg* out;
  size_t num_out;
  uint32_t* capacity; /* per result: what the caller can take */
  uint8_t* body;      /* the request's bytes, which char arrays of `in`
                         may point into (bits of `borrowed`) */
  uint64_t borrowed[2];
};

/* Encodes and sends one message. Returns SRPC_RESULT_OK, an encoding error,
 * or SRPC_RESULT_INTERNAL if the send failed. */
int srpc_channel_send(SrpcChannel* channel,
                      const SrpcHeader* header,
                      const SrpcArg* templates,
                      size_t num_templates,
                      const SrpcArg* values,
                      size_t num_values);

/* Drops a reference: the user's (srpc_channel_free) or a call's. */
void srpc_channel_unref(SrpcChannel* channel);

/* Counts a dispatched request; false (and nothing counted) when the
 * channel already has SRPC_MAX_OUTSTANDING_CALLS. */
bool srpc_channel_start_call(SrpcChannel* channel);
void srpc_channel_end_call(SrpcChannel* channel);

/* srpc_channel_lookup that also copies the signature, under the lock. */
int srpc_channel_find_method(SrpcChannel* channel,
                             const char* name_or_signature,
                             SrpcSignature* out);

/* Serves one decoded request (srpc_server.c). Takes ownership of `m`.
 * `decode_result` is how decoding went. */
void srpc_server_dispatch(SrpcChannel* channel,
                          SrpcMessage* m,
                          int decode_result);

/* Marks the channel for the server loop to end (after a BREAK). */
void srpc_channel_request_break(SrpcChannel* channel);

#endif /* SRPC_SRPC_CHANNEL_INTERNAL_H_ */
