/* Splitting a message into datagrams and putting it back together. */

#include "srpc/srpc_fragment.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imc/imc.h"
#include "srpc/srpc_wire.h"

static void put_record(uint8_t* p, size_t bytes, size_t descs) {
  srpc_put_u32(p, (uint32_t)bytes);
  srpc_put_u32(p + 4, (uint32_t)descs);
}

int srpc_fragment_send(int fd,
                       const uint8_t* body,
                       size_t len,
                       const int* fds,
                       size_t num_fds,
                       size_t max_datagram) {
  if (len > UINT32_MAX || num_fds > SRPC_MAX_ARGS ||
      max_datagram <= 2 * SRPC_LENGTH_RECORD_BYTES ||
      max_datagram > SRPC_MAX_DATAGRAM_BYTES) {
    errno = EINVAL;
    return -1;
  }
  uint8_t records[2 * SRPC_LENGTH_RECORD_BYTES];
  size_t sent = 0, sent_fds = 0;
  bool first = true;
  while (first || sent < len || sent_fds < num_fds) {
    size_t overhead = (first ? 2 : 1) * SRPC_LENGTH_RECORD_BYTES;
    size_t chunk = len - sent;
    if (chunk > max_datagram - overhead)
      chunk = max_datagram - overhead;
    size_t chunk_fds = num_fds - sent_fds;
    if (chunk_fds > SRPC_MAX_DATAGRAM_DESCRIPTORS)
      chunk_fds = SRPC_MAX_DATAGRAM_DESCRIPTORS;
    if (first)
      put_record(records, len, num_fds);
    put_record(records + overhead - SRPC_LENGTH_RECORD_BYTES, chunk, chunk_fds);
    /* Pointer arithmetic only on what exists: body and fds may be NULL. */
    struct NaClImcMsgIoVec iov[2] = {
        {records, overhead},
        {chunk ? (void*)(uintptr_t)(body + sent) : NULL, chunk}};
    struct NaClImcMsgHdr msg = {
        iov, chunk ? 2u : 1u,
        chunk_fds ? (int*)(uintptr_t)(fds + sent_fds) : NULL, chunk_fds, 0};
    if (imc_sendmsg(fd, &msg, 0) < 0)
      return first ? -1 : -2;
    sent += chunk;
    sent_fds += chunk_fds;
    first = false;
  }
  return 0;
}

void srpc_reassembly_init(SrpcReassembly* r, size_t max_bytes) {
  memset(r, 0, sizeof(*r));
  r->max_bytes = max_bytes;
}

void srpc_reassembly_reset(SrpcReassembly* r) {
  for (size_t i = 0; i < r->have_fds; i++) {
    if (r->fds[i] >= 0)
      close(r->fds[i]);
  }
  free(r->data);
  srpc_reassembly_init(r, r->max_bytes);
}

static int framing_error(SrpcReassembly* r, int* fds, size_t num_fds) {
  for (size_t i = 0; i < num_fds; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
  }
  srpc_reassembly_reset(r);
  return -1;
}

/* Makes room for `more` bytes, growing with what arrives rather than with
 * what the first record announces. */
static bool reserve(SrpcReassembly* r, size_t more) {
  if (r->cap - r->have >= more)
    return true;
  size_t cap = r->cap ? r->cap : (r->total < 4096 ? r->total : 4096);
  while (cap - r->have < more)
    cap = cap > r->total / 2 ? r->total : cap * 2;
  uint8_t* data = realloc(r->data, cap);
  if (data == NULL)
    return false;
  r->data = data;
  r->cap = cap;
  return true;
}

int srpc_reassembly_feed(SrpcReassembly* r,
                         const uint8_t* datagram,
                         size_t len,
                         int* fds,
                         size_t num_fds,
                         int recv_flags) {
  size_t overhead = (r->started ? 1 : 2) * SRPC_LENGTH_RECORD_BYTES;
  if (recv_flags != 0 || len < overhead)
    return framing_error(r, fds, num_fds);
  if (!r->started) {
    r->total = srpc_get_u32(datagram);
    r->total_fds = srpc_get_u32(datagram + 4);
    /* A message is at least a header; it carries at most one descriptor
     * per argument. */
    if (r->total < 28 || r->total > r->max_bytes ||
        r->total_fds > SRPC_MAX_ARGS)
      return framing_error(r, fds, num_fds);
    r->started = true;
  }
  const uint8_t* record = datagram + overhead - SRPC_LENGTH_RECORD_BYTES;
  size_t chunk = srpc_get_u32(record);
  size_t chunk_fds = srpc_get_u32(record + 4);
  if (chunk != len - overhead || chunk_fds != num_fds ||
      chunk > r->total - r->have || chunk_fds > r->total_fds - r->have_fds ||
      (chunk == 0 && chunk_fds == 0))
    return framing_error(r, fds, num_fds);
  const uint8_t* bytes = datagram + overhead;
  if (r->head_len < SRPC_HEADER_BYTES) {
    size_t n = SRPC_HEADER_BYTES - r->head_len;
    if (n > chunk)
      n = chunk;
    memcpy(r->head + r->head_len, bytes, n);
    r->head_len += n;
  }
  if (!r->dropping && !reserve(r, chunk)) {
    /* No memory for this message: read the rest of it, keep nothing. */
    r->dropping = true;
    free(r->data);
    r->data = NULL;
    r->cap = 0;
  }
  if (r->dropping) {
    for (size_t i = 0; i < num_fds; i++) {
      if (fds[i] >= 0)
        close(fds[i]);
      fds[i] = -1;
    }
  } else if (chunk > 0) {
    memcpy(r->data + r->have, bytes, chunk);
  }
  r->have += chunk;
  if (num_fds > 0)
    memcpy(r->fds + r->have_fds, fds, num_fds * sizeof(int));
  r->have_fds += num_fds;
  if (r->have != r->total || r->have_fds != r->total_fds)
    return 0;
  return r->dropping ? 2 : 1;
}

size_t srpc_reassembly_take_header(SrpcReassembly* r, uint8_t* head) {
  size_t n = r->head_len;
  memcpy(head, r->head, n);
  srpc_reassembly_reset(r);
  return n;
}

void srpc_reassembly_take(SrpcReassembly* r,
                          uint8_t** out_data,
                          size_t* out_len,
                          int* out_fds,
                          size_t* out_num_fds) {
  *out_data = r->data;
  *out_len = r->have;
  memcpy(out_fds, r->fds, r->have_fds * sizeof(int));
  *out_num_fds = r->have_fds;
  r->data = NULL;
  r->have_fds = 0;
  srpc_reassembly_reset(r);
}

int srpc_fragment_receive(int fd, SrpcReassembly* r) {
  uint8_t datagram[SRPC_MAX_DATAGRAM_BYTES];
  int fds[SRPC_MAX_ARGS];
  for (;;) {
    struct NaClImcMsgIoVec iov = {datagram, sizeof(datagram)};
    struct NaClImcMsgHdr msg = {&iov, 1, fds, SRPC_MAX_ARGS, 0};
    int got = imc_recvmsg(fd, &msg, 0);
    if (got < 0) {
      /* A lost datagram cannot be stitched around. */
      srpc_reassembly_reset(r);
      return -1;
    }
    if (got == 0 && msg.desc_length == 0) {
      if (!r->started)
        return 0;
      srpc_reassembly_reset(r);
      errno = EPROTO; /* the peer closed inside a message */
      return -1;
    }
    int done = srpc_reassembly_feed(r, datagram, (size_t)got, fds,
                                    msg.desc_length, msg.flags);
    if (done != 0) {
      if (done < 0)
        errno = EPROTO;
      return done;
    }
  }
}
