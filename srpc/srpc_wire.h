/* Internal to srpc/: encoding and decoding of one message body (no I/O).
 * docs/srpc_protocol.md is the specification this implements. */

#ifndef SRPC_SRPC_WIRE_H_
#define SRPC_SRPC_WIRE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "srpc/srpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Little-endian fields, whatever the host's byte order. */
static inline void srpc_put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t srpc_get_u32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

#define SRPC_HEADER_BYTES 28
#define SRPC_ARG_BYTES 16

typedef struct SrpcHeader {
  uint32_t protocol_version;
  uint32_t request_id;
  uint32_t is_request;
  uint32_t rpc_number;
  uint32_t result;
  uint32_t value_len;    /* input values (request) or results (reply) */
  uint32_t template_len; /* result templates: requests only */
} SrpcHeader;

/* A decoded message. Values own their arrays, strings and descriptors;
 * templates carry only a type and, for arrays, the capacity the caller
 * offers for that result. */
typedef struct SrpcMessage {
  SrpcHeader header;
  SrpcArg* templates;
  SrpcArg* values;
  /* With srpc_wire_decode_body: the message's bytes, which its char arrays
   * point into (bit i of `borrowed` set for value i) instead of owning a
   * copy. */
  uint8_t* body;
  uint64_t borrowed[2];
} SrpcMessage;

/* Whether value i of `m` points into m->body. */
static inline bool srpc_message_borrowed(const SrpcMessage* m, size_t i) {
  return (m->borrowed[i / 64] >> (i % 64)) & 1u;
}

/* A growable byte buffer. */
typedef struct SrpcBuffer {
  uint8_t* data;
  size_t len;
  size_t cap;
} SrpcBuffer;

void srpc_buffer_free(SrpcBuffer* buffer);

/* Appends the encoding of the header, `num_templates` templates and
 * `num_values` values to `out` (the header's value_len and template_len are
 * taken from the counts). The descriptors of 'h' values are stored, in
 * order, in fds[] (room for num_values entries) and counted in *num_fds; the
 * caller keeps ownership of them.
 * Returns SRPC_RESULT_OK, SRPC_RESULT_BAD_ARG_TYPE (an unknown type letter
 * or a NULL array with a non-zero count), SRPC_RESULT_TOO_MANY_ARGS, or
 * SRPC_RESULT_NO_MEMORY. */
int srpc_wire_encode(const SrpcHeader* header,
                     const SrpcArg* templates,
                     size_t num_templates,
                     const SrpcArg* values,
                     size_t num_values,
                     SrpcBuffer* out,
                     int* fds,
                     size_t* num_fds);

/* A piece of an encoded message. */
typedef struct SrpcSegment {
  const uint8_t* data;
  size_t len;
} SrpcSegment;

/* Char arrays at least this long are gathered, not copied. */
#define SRPC_GATHER_MIN_BYTES 4096

/* As srpc_wire_encode, but the bodies of char arrays of at least
 * SRPC_GATHER_MIN_BYTES are not copied: the message is the concatenation
 * of segs[0..*num_segs) (room for 2 * num_values + 1), which point into
 * `out` (which must not change meanwhile) and into the values' own arrays;
 * *message_len is its length. */
int srpc_wire_encode_gather(const SrpcHeader* header,
                            const SrpcArg* templates,
                            size_t num_templates,
                            const SrpcArg* values,
                            size_t num_values,
                            SrpcBuffer* out,
                            SrpcSegment* segs,
                            size_t* num_segs,
                            size_t* message_len,
                            int* fds,
                            size_t* num_fds);

/* Decodes the message body data[0..len) with its descriptors fds[0..n).
 * Takes ownership of the descriptors whatever happens: those of 'h' values
 * move into the message, the rest are closed.
 * `max_bytes` bounds what the message may make us allocate, result
 * capacities included.
 * Whenever len >= SRPC_HEADER_BYTES, out->header is filled in (so an error
 * reply can be addressed) even if decoding fails. On success the message
 * owns its memory: release it with srpc_message_free.
 * Returns SRPC_RESULT_OK, or SRPC_RESULT_MESSAGE_TRUNCATED (bytes or
 * descriptors missing, or bytes left over), SRPC_RESULT_PROTOCOL_MISMATCH,
 * SRPC_RESULT_TOO_MANY_ARGS (value_len or template_len over 128),
 * SRPC_RESULT_BAD_ARG_TYPE (an unknown tag, or a string that is not
 * NUL-terminated exactly at its end), SRPC_RESULT_NO_MEMORY (over
 * `max_bytes`, or allocation failed). */
int srpc_wire_decode(const uint8_t* data,
                     size_t len,
                     int* fds,
                     size_t num_fds,
                     size_t max_bytes,
                     SrpcMessage* out);

/* As srpc_wire_decode, but takes `data` (malloc'd), whatever happens: its
 * char arrays of SRPC_GATHER_MIN_BYTES or more point into it instead of
 * being copied (one copy less for large messages), and the message keeps
 * it while any does; otherwise it is freed at once. */
int srpc_wire_decode_body(uint8_t* data,
                          size_t len,
                          int* fds,
                          size_t num_fds,
                          size_t max_bytes,
                          SrpcMessage* out);

/* Frees what a decoded message owns and closes its descriptors. */
void srpc_message_free(SrpcMessage* message);

/* Frees the arrays and strings of args[0..n) and closes their descriptors
 * (entries of -1 are skipped); leaves the args themselves. */
void srpc_args_release(SrpcArg* args, size_t n);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SRPC_SRPC_WIRE_H_ */
