/* Internal to srpc/: a message over IMC datagrams. A message body longer
 * than a datagram is split; each datagram starts with length records (see
 * docs/srpc_protocol.md, "Framing"). */

#ifndef SRPC_SRPC_FRAGMENT_H_
#define SRPC_SRPC_FRAGMENT_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "srpc/srpc.h"
#include "srpc/srpc_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SRPC_LENGTH_RECORD_BYTES 8

/* Sends body[0..len) and fds[0..num_fds) as one message on `fd`, in
 * datagrams of at most `max_datagram` bytes (records included) and
 * SRPC_MAX_DATAGRAM_DESCRIPTORS descriptors. The caller must keep other
 * senders off `fd` until it returns. Returns 0; -1 with errno (imc's) if
 * nothing was sent; -2 with errno if the failure came after some datagrams
 * went out (the peer holds part of a message: the connection is unusable). */
int srpc_fragment_send(int fd,
                       const uint8_t* body,
                       size_t len,
                       const int* fds,
                       size_t num_fds,
                       size_t max_datagram);

/* The same for a message in pieces: segs[0..num_segs), which must add up
 * to `len` bytes (else -1, EINVAL, nothing sent). */
int srpc_fragment_send_segments(int fd,
                                const SrpcSegment* segs,
                                size_t num_segs,
                                size_t len,
                                const int* fds,
                                size_t num_fds,
                                size_t max_datagram);

/* Reassembly of one message from its datagrams; no I/O. */
typedef struct SrpcReassembly {
  size_t max_bytes; /* a message announcing more is a framing error */
  bool started;
  uint8_t* data;
  size_t cap;
  size_t total;
  size_t have;
  size_t total_fds;
  size_t have_fds;
  int fds[SRPC_MAX_ARGS];
  /* Out of memory for the body: the rest of the message is read and
   * dropped (its descriptors closed) so that the stream stays whole; only
   * its header is kept, to answer it. */
  bool dropping;
  uint8_t head[SRPC_HEADER_BYTES];
  size_t head_len;
} SrpcReassembly;

void srpc_reassembly_init(SrpcReassembly* r, size_t max_bytes);

/* Releases what `r` holds (memory, descriptors) and starts over. */
void srpc_reassembly_reset(SrpcReassembly* r);

/* Feeds one received datagram: its bytes, its descriptors (ownership passes
 * to `r` whatever the outcome) and imc_recvmsg's flags. Returns 1 when the
 * message is complete (see srpc_reassembly_take), 2 when it is complete
 * but was dropped for lack of memory (srpc_reassembly_take_header), 0 when
 * it needs more datagrams, -1 on a framing error (after which `r` is
 * reset). */
int srpc_reassembly_feed(SrpcReassembly* r,
                         const uint8_t* datagram,
                         size_t len,
                         int* fds,
                         size_t num_fds,
                         int recv_flags);

/* Hands over a complete message: the caller owns *out_data (free()) and the
 * descriptors copied to out_fds (room for SRPC_MAX_ARGS). Resets `r`. */
void srpc_reassembly_take(SrpcReassembly* r,
                          uint8_t** out_data,
                          size_t* out_len,
                          int* out_fds,
                          size_t* out_num_fds);

/* After a 2: the dropped message's first bytes (its header, if it was
 * that long) into head[SRPC_HEADER_BYTES]; returns how many. Resets `r`. */
size_t srpc_reassembly_take_header(SrpcReassembly* r, uint8_t* head);

/* Receives datagrams from `fd` into `r` until a message is complete.
 * Returns 1 (take it), 2 (dropped: take its header), 0 at end of stream
 * between messages, or -1 with
 * errno: EPROTO for a framing error or end of stream inside a message, or
 * imc_recvmsg's error. */
int srpc_fragment_receive(int fd, SrpcReassembly* r);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SRPC_SRPC_FRAGMENT_H_ */
