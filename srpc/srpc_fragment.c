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

int srpc_fragment_send_segments(int fd,
                                const SrpcSegment* segs,
                                size_t num_segs,
                                size_t len,
                                const int* fds,
                                size_t num_fds,
                                size_t max_datagram) {
  size_t sum = 0;
  for (size_t i = 0; i < num_segs; i++)
    sum += segs[i].len;
  if (len > UINT32_MAX || sum != len || num_fds > SRPC_MAX_ARGS ||
      max_datagram <= 2 * SRPC_LENGTH_RECORD_BYTES ||
      max_datagram > SRPC_MAX_DATAGRAM_BYTES) {
    errno = EINVAL;
    return -1;
  }
  uint8_t records[2 * SRPC_LENGTH_RECORD_BYTES];
  size_t sent = 0, sent_fds = 0;
  size_t seg = 0, seg_off = 0; /* where the next byte comes from */
  bool first = true;
  while (first || sent < len || sent_fds < num_fds) {
    size_t overhead = (first ? 2 : 1) * SRPC_LENGTH_RECORD_BYTES;
    struct NaClImcMsgIoVec iov[IMC_MAX_IOVECS];
    size_t num_iov = 1;
    size_t chunk = 0;
    size_t room = max_datagram - overhead;
    /* Gather the datagram's bytes from the segments, as far as it and the
     * iovec table go. */
    while (chunk < room && sent + chunk < len && num_iov < IMC_MAX_IOVECS &&
           seg < num_segs) {
      if (seg_off == segs[seg].len) {
        seg++;
        seg_off = 0;
        continue;
      }
      size_t take = segs[seg].len - seg_off;
      if (take > room - chunk)
        take = room - chunk;
      if (take > len - sent - chunk)
        take = len - sent - chunk;
      iov[num_iov++] = (struct NaClImcMsgIoVec){
          (void*)(uintptr_t)(segs[seg].data + seg_off), take};
      seg_off += take;
      chunk += take;
    }
    size_t chunk_fds = num_fds - sent_fds;
    if (chunk_fds > SRPC_MAX_DATAGRAM_DESCRIPTORS)
      chunk_fds = SRPC_MAX_DATAGRAM_DESCRIPTORS;
    if (first)
      put_record(records, len, num_fds);
    put_record(records + overhead - SRPC_LENGTH_RECORD_BYTES, chunk, chunk_fds);
    iov[0] = (struct NaClImcMsgIoVec){records, overhead};
    /* Pointer arithmetic only on what exists: fds may be NULL. */
    struct NaClImcMsgHdr msg = {
        iov, num_iov, chunk_fds ? (int*)(uintptr_t)(fds + sent_fds) : NULL,
        chunk_fds, 0};
    if (imc_sendmsg(fd, &msg, 0) < 0)
      return first ? -1 : -2;
    sent += chunk;
    sent_fds += chunk_fds;
    first = false;
  }
  return 0;
}

int srpc_fragment_send(int fd,
                       const uint8_t* body,
                       size_t len,
                       const int* fds,
                       size_t num_fds,
                       size_t max_datagram) {
  SrpcSegment whole = {body, len};
  return srpc_fragment_send_segments(fd, &whole, 1, len, fds, num_fds,
                                     max_datagram);
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

/* Takes a datagram's chunk (already checked against its record) into the
 * message. `bytes` is where the chunk is: in the datagram, or (in_place)
 * already at data + have. */
static int take_chunk(SrpcReassembly* r,
                      const uint8_t* bytes,
                      size_t chunk,
                      int* fds,
                      size_t num_fds,
                      bool in_place) {
  if (r->head_len < SRPC_HEADER_BYTES) {
    size_t n = SRPC_HEADER_BYTES - r->head_len;
    if (n > chunk)
      n = chunk;
    memcpy(r->head + r->head_len, bytes, n);
    r->head_len += n;
  }
  if (!in_place && !r->dropping && !reserve(r, chunk)) {
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
  } else if (chunk > 0 && !in_place) {
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

/* Checks a datagram's length record against what it carries and what the
 * message still expects. */
static bool chunk_fits(const SrpcReassembly* r,
                       const uint8_t* record,
                       size_t chunk_len,
                       size_t num_fds) {
  size_t chunk = srpc_get_u32(record);
  size_t chunk_fds = srpc_get_u32(record + 4);
  return chunk == chunk_len && chunk_fds == num_fds &&
         chunk <= r->total - r->have &&
         chunk_fds <= r->total_fds - r->have_fds &&
         (chunk != 0 || chunk_fds != 0);
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
  if (!chunk_fits(r, record, len - overhead, num_fds))
    return framing_error(r, fds, num_fds);
  return take_chunk(r, datagram + overhead, len - overhead, fds, num_fds,
                    false);
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

/* Inside a message: receives the next datagram with its bytes going
 * straight to where they belong in the message (one copy less). Returns
 * as srpc_reassembly_feed, or -3 if there is no room to do it so (the
 * caller receives as usual), or -4 on a receive error or end of stream
 * (errno set). */
static int receive_in_place(int fd, SrpcReassembly* r, int* fds) {
  size_t room = r->total - r->have;
  if (room > SRPC_MAX_DATAGRAM_BYTES - SRPC_LENGTH_RECORD_BYTES)
    room = SRPC_MAX_DATAGRAM_BYTES - SRPC_LENGTH_RECORD_BYTES;
  if (room == 0 || !reserve(r, room))
    return -3;
  uint8_t record[SRPC_LENGTH_RECORD_BYTES];
  struct NaClImcMsgIoVec iov[2] = {{record, sizeof(record)},
                                   {r->data + r->have, room}};
  struct NaClImcMsgHdr msg = {iov, 2, fds, SRPC_MAX_ARGS, 0};
  int got = imc_recvmsg(fd, &msg, 0);
  if (got < 0)
    return -4;
  if (got == 0 && msg.desc_length == 0) {
    errno = EPROTO; /* the peer closed inside a message */
    return -4;
  }
  /* A datagram longer than the message's rest is truncated: an error. */
  if (msg.flags != 0 || (size_t)got < sizeof(record) ||
      !chunk_fits(r, record, (size_t)got - sizeof(record), msg.desc_length))
    return framing_error(r, fds, msg.desc_length);
  return take_chunk(r, r->data + r->have, (size_t)got - sizeof(record), fds,
                    msg.desc_length, true);
}

int srpc_fragment_receive(int fd, SrpcReassembly* r) {
  uint8_t datagram[SRPC_MAX_DATAGRAM_BYTES];
  int fds[SRPC_MAX_ARGS];
  for (;;) {
    int done = -3;
    if (r->started && !r->dropping)
      done = receive_in_place(fd, r, fds);
    if (done == -4) {
      /* A lost datagram cannot be stitched around. */
      int saved = errno;
      srpc_reassembly_reset(r);
      errno = saved;
      return -1;
    }
    if (done == -3) {
      struct NaClImcMsgIoVec iov = {datagram, sizeof(datagram)};
      struct NaClImcMsgHdr msg = {&iov, 1, fds, SRPC_MAX_ARGS, 0};
      int got = imc_recvmsg(fd, &msg, 0);
      if (got < 0) {
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
      done = srpc_reassembly_feed(r, datagram, (size_t)got, fds,
                                  msg.desc_length, msg.flags);
    }
    if (done != 0) {
      if (done < 0)
        errno = EPROTO;
      return done;
    }
  }
}
