/* srpc: Native Client's simple RPC, protocol 0xc0da0002.
 *
 * A method is described by a signature "name:ins:outs" whose ins and outs
 * are strings of type letters (SrpcType). docs/srpc_protocol.md gives every
 * byte on the wire; docs/srpc.md the API.
 *
 * This header holds the parts with no I/O: types, result codes, arguments
 * and signatures. Functions that fail return a result code or -1 as each
 * says; none keeps global state.
 */

#ifndef SRPC_SRPC_H_
#define SRPC_SRPC_H_

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SRPC_EXPORT __attribute__((visibility("default")))

/* The protocol version every message carries, and the only one spoken. */
#define SRPC_PROTOCOL_VERSION 0xc0da0002u

/* At most this many inputs, and this many outputs, per call. */
#define SRPC_MAX_ARGS 128

/* At most this many methods in one service (discovery rejects more). */
#define SRPC_MAX_METHODS 65536

/* A datagram is at most this many bytes, length records included. */
#define SRPC_MAX_DATAGRAM_BYTES 65536

/* At most this many descriptors are sent per datagram (what a receiver of
 * the original library can take); more are spread over later datagrams. */
#define SRPC_MAX_DATAGRAM_DESCRIPTORS 8

/* At most this many requests per channel may be dispatched and not yet
 * completed (deferred); more are answered SRPC_RESULT_NO_MEMORY. */
#define SRPC_MAX_OUTSTANDING_CALLS 1024

/* Default bound on a whole message: what a peer can make us allocate for
 * one message. */
#define SRPC_DEFAULT_MAX_MESSAGE_BYTES (64u * 1024 * 1024)

/* Result codes, the values on the wire. */
typedef enum SrpcResult {
  SRPC_RESULT_OK = 256,
  SRPC_RESULT_BREAK = 257,
  SRPC_RESULT_MESSAGE_TRUNCATED = 258,
  SRPC_RESULT_NO_MEMORY = 259,
  SRPC_RESULT_PROTOCOL_MISMATCH = 260,
  SRPC_RESULT_BAD_RPC_NUMBER = 261,
  SRPC_RESULT_BAD_ARG_TYPE = 262,
  SRPC_RESULT_TOO_FEW_ARGS = 263,
  SRPC_RESULT_TOO_MANY_ARGS = 264,
  SRPC_RESULT_IN_ARG_TYPE_MISMATCH = 265,
  SRPC_RESULT_OUT_ARG_TYPE_MISMATCH = 266,
  SRPC_RESULT_INTERNAL = 267,
  SRPC_RESULT_APP_ERROR = 268,
  /* Local outcomes of a call with SrpcCallOptions; never sent. */
  SRPC_RESULT_TIMED_OUT = 512,
  SRPC_RESULT_CANCELLED = 513,
} SrpcResult;

/* A short English description of `result` ("bad rpc number"), or "unknown
 * result" for values outside the enumeration. Never NULL. */
SRPC_EXPORT const char* srpc_result_string(int result);

/* Argument types; the value is the letter used in signatures and the tag on
 * the wire. */
typedef enum SrpcType {
  SRPC_TYPE_BOOL = 'b',
  SRPC_TYPE_CHAR_ARRAY = 'C',
  SRPC_TYPE_DOUBLE = 'd',
  SRPC_TYPE_DOUBLE_ARRAY = 'D',
  SRPC_TYPE_HANDLE = 'h',
  SRPC_TYPE_INT = 'i',
  SRPC_TYPE_INT_ARRAY = 'I',
  SRPC_TYPE_LONG = 'l',
  SRPC_TYPE_LONG_ARRAY = 'L',
  SRPC_TYPE_STRING = 's',
} SrpcType;

/* 1 if `letter` is one of the SrpcType letters, else 0. */
SRPC_EXPORT int srpc_type_is_valid(int letter);

/* Bytes per element of an array type ('C' 1, 'I' 4, 'D' and 'L' 8, 's' 1),
 * 0 for scalar types and unknown letters. */
SRPC_EXPORT size_t srpc_type_element_size(int letter);

/* One argument. `count` is the element count of an array ('C' 'D' 'I' 'L')
 * and, for a string, its length without the terminating NUL. */
typedef struct SrpcArg {
  int type; /* an SrpcType letter */
  uint32_t count;
  union {
    int32_t bval; /* 0 or 1 */
    int32_t ival;
    int64_t lval;
    double dval;
    int hval; /* a descriptor; -1 for none */
    char* carr;
    double* darr;
    int32_t* iarr;
    int64_t* larr;
    char* str; /* NUL-terminated */
    void* ptr;
  } u;
} SrpcArg;

/* A local extension: "*" as the whole of ins (or outs) in a signature
 * makes a variadic method, which takes any number of inputs of any types
 * (or gives whatever results the caller's templates ask for); the handler
 * reads the counts with srpc_rpc_num_in / srpc_rpc_num_out and the types
 * from the arguments. Nothing changes on the wire. */
#define SRPC_VARIADIC '*'

/* The parts of a signature "name:ins:outs". */
typedef struct SrpcSignature {
  char name[256];
  char ins[SRPC_MAX_ARGS + 1]; /* type letters, NUL-terminated */
  char outs[SRPC_MAX_ARGS + 1];
} SrpcSignature;

/* Why a signature was refused. */
typedef enum SrpcSignatureError {
  SRPC_SIGNATURE_OK = 0,
  SRPC_SIGNATURE_NULL,          /* no string given */
  SRPC_SIGNATURE_MISSING_COLON, /* not three parts separated by ':' */
  SRPC_SIGNATURE_EMPTY_NAME,
  SRPC_SIGNATURE_NAME_TOO_LONG, /* 255 bytes at most */
  SRPC_SIGNATURE_BAD_NAME_CHAR, /* a control character in the name */
  SRPC_SIGNATURE_UNKNOWN_TYPE,  /* a letter that is not an SrpcType */
  SRPC_SIGNATURE_TOO_MANY_ARGS, /* more than SRPC_MAX_ARGS ins or outs */
  SRPC_SIGNATURE_DUPLICATE,     /* a second method of the same name */
} SrpcSignatureError;

/* Parses `signature` ("name:ins:outs", nothing after outs) into *out.
 * Returns SRPC_SIGNATURE_OK or why it was refused; *out is only written on
 * success. */
SRPC_EXPORT SrpcSignatureError srpc_signature_parse(const char* signature,
                                                    SrpcSignature* out);

/* A description of `error` for messages. Never NULL. */
SRPC_EXPORT const char* srpc_signature_error_string(SrpcSignatureError error);

/* Parses a service discovery answer: "name:ins:outs\n" for each method, in
 * method-number order. Stores up to `max` signatures in out[] and returns
 * the number of methods, or -1 if any line is not a valid signature or the
 * text does not end with "\n" (the empty text is zero methods). */
SRPC_EXPORT int srpc_discovery_parse(const char* text,
                                     size_t len,
                                     SrpcSignature* out,
                                     size_t max);

/* ------------------------------------------------------------------------
 * Services: method tables.
 * ------------------------------------------------------------------------ */

typedef struct SrpcRpc SrpcRpc; /* one incoming call, until completed */

/* A method. `in` holds the inputs, typed as the signature says (owned by
 * the library; a handler that keeps a descriptor sets its hval to -1;
 * arrays may be read and written but not freed, reallocated or handed to
 * `out`: a large char array is part of the request's own bytes).
 * `out` holds the results to fill, typed as the signature says: scalars by
 * value; arrays start empty with `count` = the most elements the caller can
 * take (use srpc_arg_alloc); strings with srpc_arg_set_string or a
 * malloc'd u.str; handles by setting hval (the library sends and then
 * closes it). `in` and `out` stay valid until srpc_rpc_complete.
 * The handler must call srpc_rpc_complete exactly once, from any thread,
 * before or after it returns (after: deferred completion). */
typedef void (*SrpcHandler)(SrpcRpc* rpc,
                            SrpcArg* in,
                            SrpcArg* out,
                            void* user);

typedef struct SrpcMethod {
  const char* signature; /* "name:ins:outs" */
  SrpcHandler handler;
} SrpcMethod;

typedef struct SrpcService SrpcService;

/* Builds a service from `methods[0..n)`; they get method numbers 1..n, and
 * method 0 is service_discovery::C. `user` is passed to every handler.
 * Returns NULL if a signature is invalid or a name repeats; then *out_error
 * (if not NULL) says why and *out_index (if not NULL) which entry. */
SRPC_EXPORT SrpcService* srpc_service_new(const SrpcMethod* methods,
                                          size_t n,
                                          void* user,
                                          SrpcSignatureError* out_error,
                                          size_t* out_index);
SRPC_EXPORT void srpc_service_free(SrpcService* service);

/* The discovery text of `service` ("name:ins:outs\n" per method, method 0
 * first) and its length; owned by the service. */
SRPC_EXPORT const char* srpc_service_discovery_text(const SrpcService* service,
                                                    size_t* out_len);

/* For a handler: allocates `count` zeroed elements for array result `out`
 * (at most the count it came with) and returns them, or NULL. */
SRPC_EXPORT void* srpc_arg_alloc(SrpcArg* out, uint32_t count);

/* For a handler: sets string result `out` to a copy of `s`. Returns 0, or
 * -1 if out of memory. */
SRPC_EXPORT int srpc_arg_set_string(SrpcArg* out, const char* s);

/* Sends the reply of `rpc` with `result` (SRPC_RESULT_OK, _APP_ERROR, or
 * _BREAK: reply OK, then the server loop on this channel returns) and frees
 * it. Any thread. */
SRPC_EXPORT void srpc_rpc_complete(SrpcRpc* rpc, int result);

/* The number of inputs and results of `rpc` (what its signature says, or,
 * for a variadic method, what the request carried and asked for). */
SRPC_EXPORT size_t srpc_rpc_num_in(const SrpcRpc* rpc);
SRPC_EXPORT size_t srpc_rpc_num_out(const SrpcRpc* rpc);

/* The method number of `rpc`, and the channel it arrived on (a handler may
 * call back to the caller on it: an upcall). */
SRPC_EXPORT uint32_t srpc_rpc_number(const SrpcRpc* rpc);
typedef struct SrpcChannel SrpcChannel;
SRPC_EXPORT SrpcChannel* srpc_rpc_channel(const SrpcRpc* rpc);

/* ------------------------------------------------------------------------
 * Channels: one connected IMC socket, calls both ways.
 * ------------------------------------------------------------------------ */

typedef struct SrpcChannel SrpcChannel;

/* Makes a channel on connected IMC socket `fd` (the channel owns it from
 * now on, even on failure). `service` (may be NULL: a pure client) serves
 * requests arriving on the channel; it must outlive the channel.
 * `max_message_bytes` bounds what a peer can make us allocate for one
 * message (0: SRPC_DEFAULT_MAX_MESSAGE_BYTES). Returns NULL if out of
 * memory. */
SRPC_EXPORT SrpcChannel* srpc_channel_new(int fd,
                                          const SrpcService* service,
                                          size_t max_message_bytes);

/* Drops the caller's reference. The socket is closed once no deferred call
 * still needs it; until then it is shut for reading (the peer's further
 * requests fail) and the deferred replies still go out. No thread may be
 * calling on or serving the channel. */
SRPC_EXPORT void srpc_channel_free(SrpcChannel* channel);

/* Serves requests until the peer closes (returns SRPC_RESULT_OK), a method
 * completes with SRPC_RESULT_BREAK (returns SRPC_RESULT_BREAK), or the
 * channel fails (returns SRPC_RESULT_INTERNAL: a read error, or a message
 * that could not even be framed, after which the channel is closed). While
 * it runs, replies to calls made on other threads are delivered too. */
SRPC_EXPORT int srpc_channel_serve(SrpcChannel* channel);

/* Serves every connection made to BoundSocket `bound` with `service`: each
 * accepted connection gets its own channel and thread running
 * srpc_channel_serve (a BREAK ends that connection only). Returns once no
 * connection can arrive any more (every SocketAddress closed) and every
 * connection has ended: SRPC_RESULT_OK; or SRPC_RESULT_INTERNAL if accept
 * fails otherwise (after the connections end). Does not close `bound`.
 * One thread per connection: thousands of connections are thousands of
 * threads. */
SRPC_EXPORT int srpc_serve_bound(int bound,
                                 const SrpcService* service,
                                 size_t max_message_bytes);

/* Calls method `rpc_number` with inputs in[0..num_in) and results
 * out[0..num_out). Each out[i] is typed by the caller; arrays give their
 * buffer in u.ptr and its capacity in count (count becomes the number
 * received), or u.ptr NULL to receive a malloc'd array of at most `count`
 * elements (the caller frees it, even when count becomes 0: it may be
 * NULL); strings arrive malloc'd in u.str (the caller frees); handles
 * arrive in hval (the caller owns them). Blocks until the reply, serving
 * requests that arrive meanwhile. Any number of threads may call at once.
 * Returns the reply's result code, or: SRPC_RESULT_INTERNAL (the channel is
 * closed or failed: the peer is gone), SRPC_RESULT_MESSAGE_TRUNCATED (a
 * result does not fit its buffer), SRPC_RESULT_OUT_ARG_TYPE_MISMATCH (the
 * results are not what was asked for), or an encoding error.
 * A caller on a channel with a service runs, on its own thread, the
 * handlers of requests that arrive while it waits: it must not hold a lock
 * those handlers take. */
SRPC_EXPORT int srpc_invoke_args(SrpcChannel* channel,
                                 uint32_t rpc_number,
                                 const SrpcArg* in,
                                 size_t num_in,
                                 SrpcArg* out,
                                 size_t num_out);

/* A cancellation flag that any thread can raise to end the waits that use
 * it (SrpcCallOptions), promptly. It stays raised until reset, so a cancel
 * that races with the start of a wait is not lost. */
typedef struct SrpcCancel SrpcCancel;

/* Returns a lowered flag, or NULL if out of memory or descriptors. */
SRPC_EXPORT SrpcCancel* srpc_cancel_new(void);
/* No wait may still be using it. */
SRPC_EXPORT void srpc_cancel_free(SrpcCancel* cancel);
/* Raises the flag and wakes every wait using it. Any thread. */
SRPC_EXPORT void srpc_cancel_signal(SrpcCancel* cancel);
/* Lowers the flag. */
SRPC_EXPORT void srpc_cancel_reset(SrpcCancel* cancel);
SRPC_EXPORT int srpc_cancel_is_signalled(const SrpcCancel* cancel);
/* An eventfd that polls readable while the flag is raised (owned by the
 * flag: do not read or close it), to wait on it beside other descriptors. */
SRPC_EXPORT int srpc_cancel_fd(const SrpcCancel* cancel);

/* For waits of one's own on a condition variable: while `waiter` is added,
 * raising the flag broadcasts waiter->cv with waiter->mu held, so a waiter
 * that checks srpc_cancel_is_signalled under mu before sleeping is never
 * left asleep. Add and remove without holding mu; `waiter` must stay valid
 * until removed. */
typedef struct SrpcCancelWaiter {
  pthread_mutex_t* mu;
  pthread_cond_t* cv;
  struct SrpcCancelWaiter* next; /* the flag's */
} SrpcCancelWaiter;
SRPC_EXPORT void srpc_cancel_add_waiter(SrpcCancel* cancel,
                                        SrpcCancelWaiter* waiter);
SRPC_EXPORT void srpc_cancel_remove_waiter(SrpcCancel* cancel,
                                           SrpcCancelWaiter* waiter);

/* How long a call may wait for its reply, and what can end it early. */
typedef struct SrpcCallOptions {
  int timeout_ms;     /* < 0: no limit */
  SrpcCancel* cancel; /* NULL: none */
} SrpcCallOptions;

/* srpc_invoke_args with a bound on the wait: returns SRPC_RESULT_TIMED_OUT
 * once `options->timeout_ms` have passed without a reply, or
 * SRPC_RESULT_CANCELLED as soon as `options->cancel` is raised (at once if
 * it already is, before anything is sent). The request may still reach the
 * peer and run there; its late reply is discarded (descriptors in it are
 * closed). The bound covers the wait for the reply: sending a large
 * request to a peer that does not read can still block.
 * While a server loop (srpc_channel_serve) is free to read on the
 * channel, a bounded caller leaves the reading to it and only waits, so the
 * bound holds whatever the peer sends; when none is (there is none, or
 * every one is running a handler: perhaps this very call's), it reads
 * itself, and a peer that stops in the middle of a message can hold it
 * past the bound. */
SRPC_EXPORT int srpc_invoke_args_opt(SrpcChannel* channel,
                                     uint32_t rpc_number,
                                     const SrpcArg* in,
                                     size_t num_in,
                                     SrpcArg* out,
                                     size_t num_out,
                                     const SrpcCallOptions* options);

/* Calls method 0 and keeps the peer's method table on the channel. Returns
 * SRPC_RESULT_OK or the failure. */
SRPC_EXPORT int srpc_channel_discover(SrpcChannel* channel);
/* The same with a bound on the wait, as srpc_invoke_args_opt. */
SRPC_EXPORT int srpc_channel_discover_opt(SrpcChannel* channel,
                                          const SrpcCallOptions* options);

/* After srpc_channel_discover: the number of methods and method i's
 * signature (NULL past the end; valid until the channel is freed, even if
 * discovery runs again). */
SRPC_EXPORT size_t srpc_channel_method_count(const SrpcChannel* channel);
SRPC_EXPORT const SrpcSignature* srpc_channel_method(const SrpcChannel* channel,
                                                     size_t i);

/* The method number of `name_or_signature` ("add", or "add:ii:i" to match
 * the types too) among the discovered methods, or -1. */
SRPC_EXPORT int srpc_channel_lookup(const SrpcChannel* channel,
                                    const char* name_or_signature);

/* Calls a discovered method by name or full signature, with arguments in
 * the varargs style of Native Client: for each input by its type letter,
 *   b: int   i: int32_t   l: int64_t   d: double   h: int   s: const char*
 *   C: uint32_t count, const char*     I: uint32_t count, const int32_t*
 *   L: uint32_t count, const int64_t*  D: uint32_t count, const double*
 * then for each result a pointer:
 *   b: int*   i: int32_t*   l: int64_t*   d: double*   h: int*
 *   s: char** (malloc'd for the caller)
 *   C/I/L/D: uint32_t* count (in: capacity, out: received), then the buffer.
 * Returns as srpc_invoke_args, or SRPC_RESULT_BAD_RPC_NUMBER if no such
 * method was discovered. */
SRPC_EXPORT int srpc_invoke(SrpcChannel* channel,
                            const char* name_or_signature,
                            ...);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SRPC_SRPC_H_ */
