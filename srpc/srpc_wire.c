/* Encoding and decoding of one SRPC message body: the 28-byte header, the
 * 16-byte argument records (templates, then values), then the variable
 * bodies of arrays and strings in argument order. Every field is written
 * and read explicitly as little-endian. */

#include "srpc/srpc_wire.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t* p) {
  return (uint64_t)srpc_get_u32(p) | (uint64_t)srpc_get_u32(p + 4) << 32;
}

void srpc_buffer_free(SrpcBuffer* buffer) {
  free(buffer->data);
  buffer->data = NULL;
  buffer->len = buffer->cap = 0;
}

static bool buffer_reserve(SrpcBuffer* b, size_t more) {
  if (more <= b->cap - b->len)
    return true;
  if (more > SIZE_MAX / 2 - b->len)
    return false;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < more)
    cap *= 2;
  uint8_t* data = realloc(b->data, cap);
  if (data == NULL)
    return false;
  b->data = data;
  b->cap = cap;
  return true;
}

/* The variable body bytes of `arg` as a value (0 for scalars). */
static size_t body_bytes(const SrpcArg* arg) {
  if (arg->type == SRPC_TYPE_STRING)
    return arg->u.str ? strlen(arg->u.str) + 1 : 1;
  size_t size = srpc_type_element_size(arg->type);
  if (size != 0 && arg->count > SIZE_MAX / size)
    return SIZE_MAX; /* refused by the caller's size check */
  return (size_t)arg->count * size;
}

static bool valid_for_encoding(const SrpcArg* arg, bool as_value) {
  if (!srpc_type_is_valid(arg->type))
    return false;
  /* An array value must point at its elements unless it has none. */
  return !as_value || srpc_type_element_size(arg->type) == 0 ||
         arg->type == SRPC_TYPE_STRING || arg->count == 0 || arg->u.ptr != NULL;
}

/* Writes the 16-byte record of `arg`: a value, or a template (which carries
 * only the capacity of an array result). */
static void put_record(uint8_t* p, const SrpcArg* arg, bool as_value) {
  memset(p, 0, SRPC_ARG_BYTES);
  srpc_put_u32(p, (uint32_t)arg->type);
  switch (arg->type) {
    case SRPC_TYPE_BOOL:
      if (as_value)
        srpc_put_u32(p + 8, arg->u.bval ? 1 : 0);
      break;
    case SRPC_TYPE_INT:
      if (as_value)
        srpc_put_u32(p + 8, (uint32_t)arg->u.ival);
      break;
    case SRPC_TYPE_LONG:
      if (as_value)
        put_u64(p + 8, (uint64_t)arg->u.lval);
      break;
    case SRPC_TYPE_DOUBLE:
      if (as_value) {
        uint64_t bits;
        memcpy(&bits, &arg->u.dval, sizeof(bits));
        put_u64(p + 8, bits);
      }
      break;
    case SRPC_TYPE_STRING:
      if (as_value)
        srpc_put_u32(p + 8, (uint32_t)body_bytes(arg));
      break;
    case SRPC_TYPE_CHAR_ARRAY:
    case SRPC_TYPE_DOUBLE_ARRAY:
    case SRPC_TYPE_INT_ARRAY:
    case SRPC_TYPE_LONG_ARRAY:
      srpc_put_u32(p + 8, arg->count);
      break;
    default: /* handles: the descriptor travels beside the bytes */
      break;
  }
}

static void put_body(uint8_t* p, const SrpcArg* arg) {
  switch (arg->type) {
    case SRPC_TYPE_STRING:
      if (arg->u.str)
        memcpy(p, arg->u.str, body_bytes(arg));
      else
        p[0] = '\0';
      break;
    case SRPC_TYPE_CHAR_ARRAY:
      if (arg->count)
        memcpy(p, arg->u.carr, arg->count);
      break;
    case SRPC_TYPE_INT_ARRAY:
      for (uint32_t i = 0; i < arg->count; i++)
        srpc_put_u32(p + 4 * (size_t)i, (uint32_t)arg->u.iarr[i]);
      break;
    case SRPC_TYPE_LONG_ARRAY:
      for (uint32_t i = 0; i < arg->count; i++)
        put_u64(p + 8 * (size_t)i, (uint64_t)arg->u.larr[i]);
      break;
    case SRPC_TYPE_DOUBLE_ARRAY:
      for (uint32_t i = 0; i < arg->count; i++) {
        uint64_t bits;
        memcpy(&bits, &arg->u.darr[i], sizeof(bits));
        put_u64(p + 8 * (size_t)i, bits);
      }
      break;
  }
}

/* Whether value `arg`'s body goes by reference (gathered encoding). */
static bool gathered(const SrpcArg* arg, bool gather) {
  return gather && arg->type == SRPC_TYPE_CHAR_ARRAY &&
         arg->count >= SRPC_GATHER_MIN_BYTES;
}

/* Encodes into `out`; with `segs`, large char arrays are referenced
 * instead of copied and the message is segs[0..*num_segs). */
static int encode(const SrpcHeader* header,
                  const SrpcArg* templates,
                  size_t num_templates,
                  const SrpcArg* values,
                  size_t num_values,
                  SrpcBuffer* out,
                  int* fds,
                  size_t* num_fds,
                  SrpcSegment* segs,
                  size_t* num_segs,
                  size_t* message_len) {
  *num_fds = 0;
  if (num_templates > SRPC_MAX_ARGS || num_values > SRPC_MAX_ARGS)
    return SRPC_RESULT_TOO_MANY_ARGS;
  size_t total =
      SRPC_HEADER_BYTES + SRPC_ARG_BYTES * (num_templates + num_values);
  size_t copied = total; /* what goes into `out` */
  for (size_t i = 0; i < num_templates; i++) {
    if (!valid_for_encoding(&templates[i], false))
      return SRPC_RESULT_BAD_ARG_TYPE;
  }
  for (size_t i = 0; i < num_values; i++) {
    if (!valid_for_encoding(&values[i], true))
      return SRPC_RESULT_BAD_ARG_TYPE;
    size_t body = body_bytes(&values[i]);
    if (body > UINT32_MAX || body > SIZE_MAX / 2 - total)
      return SRPC_RESULT_NO_MEMORY;
    total += body;
    if (!gathered(&values[i], segs != NULL))
      copied += body;
  }
  if (!buffer_reserve(out, copied))
    return SRPC_RESULT_NO_MEMORY;

  uint8_t* start = out->data + out->len;
  uint8_t* p = start;
  const uint32_t words[7] = {header->protocol_version, header->request_id,
                             header->is_request,       header->rpc_number,
                             header->result,           (uint32_t)num_values,
                             (uint32_t)num_templates};
  for (int i = 0; i < 7; i++, p += 4)
    srpc_put_u32(p, words[i]);
  for (size_t i = 0; i < num_templates; i++, p += SRPC_ARG_BYTES)
    put_record(p, &templates[i], false);
  for (size_t i = 0; i < num_values; i++, p += SRPC_ARG_BYTES)
    put_record(p, &values[i], true);
  uint8_t* run = start; /* the buffer's bytes not yet in a segment */
  size_t n = 0;
  for (size_t i = 0; i < num_values; i++) {
    if (gathered(&values[i], segs != NULL)) {
      if (p > run)
        segs[n++] = (SrpcSegment){run, (size_t)(p - run)};
      segs[n++] =
          (SrpcSegment){(const uint8_t*)values[i].u.carr, values[i].count};
      run = p;
    } else {
      put_body(p, &values[i]);
      p += body_bytes(&values[i]);
    }
    if (values[i].type == SRPC_TYPE_HANDLE)
      fds[(*num_fds)++] = values[i].u.hval;
  }
  if (segs != NULL) {
    if (p > run || n == 0)
      segs[n++] = (SrpcSegment){run, (size_t)(p - run)};
    *num_segs = n;
  }
  out->len += copied;
  if (message_len != NULL)
    *message_len = total;
  return SRPC_RESULT_OK;
}

int srpc_wire_encode(const SrpcHeader* header,
                     const SrpcArg* templates,
                     size_t num_templates,
                     const SrpcArg* values,
                     size_t num_values,
                     SrpcBuffer* out,
                     int* fds,
                     size_t* num_fds) {
  return encode(header, templates, num_templates, values, num_values, out, fds,
                num_fds, NULL, NULL, NULL);
}

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
                            size_t* num_fds) {
  return encode(header, templates, num_templates, values, num_values, out, fds,
                num_fds, segs, num_segs, message_len);
}

void srpc_args_release(SrpcArg* args, size_t n) {
  for (size_t i = 0; args != NULL && i < n; i++) {
    if (args[i].type == SRPC_TYPE_HANDLE) {
      if (args[i].u.hval >= 0)
        close(args[i].u.hval);
      args[i].u.hval = -1;
    } else if (srpc_type_element_size(args[i].type) != 0) {
      free(args[i].u.ptr);
      args[i].u.ptr = NULL;
    }
  }
}

void srpc_message_free(SrpcMessage* message) {
  for (size_t i = 0; message->values != NULL && i < 128; i++) {
    if (srpc_message_borrowed(message, i))
      message->values[i].u.ptr = NULL; /* the body's, freed below */
  }
  srpc_args_release(message->values, message->header.value_len);
  free(message->values);
  free(message->templates);
  free(message->body);
  message->values = message->templates = NULL;
  message->body = NULL;
  message->borrowed[0] = message->borrowed[1] = 0;
}

/* Reads one record at `p` into *arg (scalars and counts only). */
static int get_record(const uint8_t* p, SrpcArg* arg) {
  uint32_t tag = srpc_get_u32(p);
  if (tag > 0x7f || !srpc_type_is_valid((int)tag))
    return SRPC_RESULT_BAD_ARG_TYPE;
  memset(arg, 0, sizeof(*arg));
  arg->type = (int)tag;
  switch (arg->type) {
    case SRPC_TYPE_BOOL:
      arg->u.bval = srpc_get_u32(p + 8) != 0;
      break;
    case SRPC_TYPE_INT:
      arg->u.ival = (int32_t)srpc_get_u32(p + 8);
      break;
    case SRPC_TYPE_LONG:
      arg->u.lval = (int64_t)get_u64(p + 8);
      break;
    case SRPC_TYPE_DOUBLE: {
      uint64_t bits = get_u64(p + 8);
      memcpy(&arg->u.dval, &bits, sizeof(bits));
      break;
    }
    case SRPC_TYPE_HANDLE:
      arg->u.hval = -1;
      break;
    default:
      arg->count = srpc_get_u32(p + 8);
      break;
  }
  return SRPC_RESULT_OK;
}

/* Reads the body of array or string value `arg` (count already set from its
 * record) from [*p, end), advancing *p. */
static int get_body(const uint8_t** p,
                    const uint8_t* end,
                    SrpcArg* arg,
                    bool borrow,
                    bool* borrowed) {
  size_t size = srpc_type_element_size(arg->type);
  if (size == 0)
    return SRPC_RESULT_OK;
  if (arg->count > SIZE_MAX / size)
    return SRPC_RESULT_MESSAGE_TRUNCATED;
  size_t bytes = (size_t)arg->count * size;
  /* Checked against the bytes present before anything is allocated. */
  if (bytes > (size_t)(end - *p))
    return SRPC_RESULT_MESSAGE_TRUNCATED;
  const uint8_t* src = *p;
  *p += bytes;
  if (arg->type == SRPC_TYPE_STRING) {
    if (bytes == 0 || src[bytes - 1] != '\0' ||
        memchr(src, '\0', bytes - 1) != NULL)
      return SRPC_RESULT_BAD_ARG_TYPE;
    arg->count -= 1;
  }
  if (bytes == 0)
    return SRPC_RESULT_OK;
  if (borrow && arg->type == SRPC_TYPE_CHAR_ARRAY &&
      bytes >= SRPC_GATHER_MIN_BYTES) {
    arg->u.ptr = (void*)(uintptr_t)src; /* the message's own bytes */
    *borrowed = true;
    return SRPC_RESULT_OK;
  }
  uint8_t* data = malloc(bytes);
  if (data == NULL)
    return SRPC_RESULT_NO_MEMORY;
  arg->u.ptr = data;
  if (size == 1) {
    memcpy(data, src, bytes);
  } else if (size == 4) {
    for (size_t i = 0; i < arg->count; i++)
      arg->u.iarr[i] = (int32_t)srpc_get_u32(src + 4 * i);
  } else {
    for (size_t i = 0; i < arg->count; i++) {
      uint64_t v = get_u64(src + 8 * i);
      memcpy(data + 8 * i, &v, 8); /* int64 and double share the bits */
    }
  }
  return SRPC_RESULT_OK;
}

static int decode_args(const uint8_t* data,
                       size_t len,
                       size_t max_bytes,
                       bool borrow,
                       SrpcMessage* out) {
  const SrpcHeader* h = &out->header;
  size_t records = (size_t)h->template_len + h->value_len;
  if (records * SRPC_ARG_BYTES > len - SRPC_HEADER_BYTES)
    return SRPC_RESULT_MESSAGE_TRUNCATED;
  out->templates =
      calloc(h->template_len ? h->template_len : 1, sizeof(SrpcArg));
  out->values = calloc(h->value_len ? h->value_len : 1, sizeof(SrpcArg));
  if (out->templates == NULL || out->values == NULL)
    return SRPC_RESULT_NO_MEMORY;
  for (uint32_t i = 0; i < h->value_len; i++)
    out->values[i].type = SRPC_TYPE_INT; /* nothing to release yet */

  const uint8_t* p = data + SRPC_HEADER_BYTES;
  size_t capacity = 0;
  for (uint32_t i = 0; i < h->template_len; i++, p += SRPC_ARG_BYTES) {
    int r = get_record(p, &out->templates[i]);
    if (r != SRPC_RESULT_OK)
      return r;
    SrpcArg* t = &out->templates[i];
    if (t->type == SRPC_TYPE_STRING)
      t->count = 0; /* a string result's size is the server's to choose */
    size_t size = srpc_type_element_size(t->type);
    if (size != 0 && t->count > SIZE_MAX / size)
      return SRPC_RESULT_NO_MEMORY;
    /* A capacity is what the caller could take, not what it sends: one
     * beyond what this side would ever send is cut to that, so that a
     * handler can never be asked to make more than the limit. */
    size_t bytes = (size_t)t->count * size;
    if (bytes > max_bytes - capacity) {
      t->count = (uint32_t)((max_bytes - capacity) / size);
      bytes = (size_t)t->count * size;
    }
    capacity += bytes;
  }
  /* Records first, bodies after: a value is released only once read. */
  const uint8_t* bodies = p + (size_t)h->value_len * SRPC_ARG_BYTES;
  const uint8_t* end = data + len;
  for (uint32_t i = 0; i < h->value_len; i++, p += SRPC_ARG_BYTES) {
    SrpcArg arg;
    memset(&arg, 0, sizeof(arg));
    bool borrowed = false;
    int r = get_record(p, &arg);
    if (r == SRPC_RESULT_OK)
      r = get_body(&bodies, end, &arg, borrow, &borrowed);
    if (r != SRPC_RESULT_OK) {
      if (srpc_type_element_size(arg.type) != 0 && !borrowed)
        free(arg.u.ptr);
      return r;
    }
    out->values[i] = arg;
    if (borrowed)
      out->borrowed[i / 64] |= (uint64_t)1 << (i % 64);
  }
  return bodies == end ? SRPC_RESULT_OK : SRPC_RESULT_MESSAGE_TRUNCATED;
}

/* Gives the descriptors, in order, to the handle values; closes the rest. */
static int attach_descriptors(SrpcMessage* m, int* fds, size_t num_fds) {
  size_t used = 0;
  for (uint32_t i = 0; i < m->header.value_len; i++) {
    if (m->values[i].type != SRPC_TYPE_HANDLE)
      continue;
    if (used == num_fds)
      return SRPC_RESULT_MESSAGE_TRUNCATED;
    m->values[i].u.hval = fds[used];
    fds[used++] = -1;
  }
  return SRPC_RESULT_OK;
}

static void close_fds(int* fds, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
    fds[i] = -1;
  }
}

static int decode(const uint8_t* data,
                  size_t len,
                  int* fds,
                  size_t num_fds,
                  size_t max_bytes,
                  bool borrow,
                  SrpcMessage* out) {
  memset(out, 0, sizeof(*out));
  if (len < SRPC_HEADER_BYTES) {
    close_fds(fds, num_fds);
    return SRPC_RESULT_MESSAGE_TRUNCATED;
  }
  uint32_t words[7];
  for (int i = 0; i < 7; i++)
    words[i] = srpc_get_u32(data + 4 * i);
  out->header = (SrpcHeader){words[0], words[1], words[2], words[3],
                             words[4], words[5], words[6]};
  int r = SRPC_RESULT_OK;
  if (out->header.protocol_version != SRPC_PROTOCOL_VERSION)
    r = SRPC_RESULT_PROTOCOL_MISMATCH;
  else if (out->header.value_len > SRPC_MAX_ARGS ||
           out->header.template_len > SRPC_MAX_ARGS)
    r = SRPC_RESULT_TOO_MANY_ARGS;
  else if (len > max_bytes)
    r = SRPC_RESULT_NO_MEMORY;
  if (r == SRPC_RESULT_OK)
    r = decode_args(data, len, max_bytes, borrow, out);
  if (r == SRPC_RESULT_OK)
    r = attach_descriptors(out, fds, num_fds);
  close_fds(fds, num_fds);
  if (r != SRPC_RESULT_OK) {
    SrpcHeader header = out->header;
    srpc_message_free(out);
    out->header = header;
  }
  return r;
}

int srpc_wire_decode(const uint8_t* data,
                     size_t len,
                     int* fds,
                     size_t num_fds,
                     size_t max_bytes,
                     SrpcMessage* out) {
  return decode(data, len, fds, num_fds, max_bytes, false, out);
}

int srpc_wire_decode_body(uint8_t* data,
                          size_t len,
                          int* fds,
                          size_t num_fds,
                          size_t max_bytes,
                          SrpcMessage* out) {
  int r = decode(data, len, fds, num_fds, max_bytes, true, out);
  if (r == SRPC_RESULT_OK && (out->borrowed[0] | out->borrowed[1]) != 0)
    out->body = data; /* what its large char arrays point into */
  else
    free(data); /* nothing points into it (or decoding failed) */
  return r;
}
