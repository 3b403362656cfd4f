/* Message framing and the layer's result strings. */

#include "plugin/common/plugin_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imc/imc.h"

static void put_u32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

void plugin_message_free(PluginMessage* m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->num_fds; i++) {
    if (m->fds[i] >= 0)
      close(m->fds[i]);
  }
  free(m->fds);
  free(m->data);
  memset(m, 0, sizeof(*m));
}

const char* plugin_result_string(int result) {
  switch (result) {
    case PLUGIN_OK:
      return "ok";
    case PLUGIN_ERROR_INVALID_ARGUMENT:
      return "invalid argument";
    case PLUGIN_ERROR_NO_MEMORY:
      return "out of memory";
    case PLUGIN_ERROR_NO_DESCRIPTORS:
      return "out of descriptors";
    case PLUGIN_ERROR_CLOSED:
      return "peer closed";
    case PLUGIN_ERROR_TIMED_OUT:
      return "timed out";
    case PLUGIN_ERROR_CANCELLED:
      return "cancelled";
    case PLUGIN_ERROR_SPAWN:
      return "program could not be started";
    case PLUGIN_ERROR_START_TIMEOUT:
      return "module did not accept its connections in time";
    case PLUGIN_ERROR_HANDSHAKE:
      return "module start-up failed";
    case PLUGIN_ERROR_WRONG_THREAD:
      return "not called on the main thread";
    case PLUGIN_ERROR_SYSTEM:
      return "system error";
  }
  return "unknown result";
}

size_t plugin_frame_header(uint8_t header[PLUGIN_FRAME_HEADER_BYTES],
                           size_t total,
                           size_t offset) {
  size_t chunk = total - offset;
  if (chunk > PLUGIN_FRAME_MAX_CHUNK)
    chunk = PLUGIN_FRAME_MAX_CHUNK;
  put_u32(header, offset == 0 ? PLUGIN_FRAME_BEGIN : PLUGIN_FRAME_MORE);
  put_u32(header + 4, (uint32_t)(offset == 0 ? total : offset));
  return chunk;
}

void plugin_reassembly_init(PluginReassembly* r, size_t max_bytes) {
  memset(r, 0, sizeof(*r));
  r->max_bytes = max_bytes;
}

void plugin_reassembly_reset(PluginReassembly* r) {
  PluginMessage m = {r->data, 0, r->fds, r->num_fds};
  plugin_message_free(&m);
  plugin_reassembly_init(r, r->max_bytes);
}

static void close_all(int* fds, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
  }
}

static int fail(PluginReassembly* r, int* fds, size_t num_fds, int error) {
  close_all(fds, num_fds);
  plugin_reassembly_reset(r);
  errno = error;
  return -1;
}

int plugin_reassembly_feed(PluginReassembly* r,
                           const uint8_t* datagram,
                           size_t len,
                           int* fds,
                           size_t num_fds,
                           int recv_flags) {
  if (len < PLUGIN_FRAME_HEADER_BYTES ||
      (recv_flags & (RECVMSG_DATA_TRUNCATED | RECVMSG_DESC_TRUNCATED)) ||
      num_fds > PLUGIN_MAX_MESSAGE_DESCRIPTORS)
    return fail(r, fds, num_fds, EPROTO);
  uint32_t kind = get_u32(datagram);
  uint32_t value = get_u32(datagram + 4);
  size_t chunk = len - PLUGIN_FRAME_HEADER_BYTES;
  const uint8_t* body = datagram + PLUGIN_FRAME_HEADER_BYTES;
  if (chunk > PLUGIN_FRAME_MAX_CHUNK)
    return fail(r, fds, num_fds, EPROTO);
  if (kind == PLUGIN_FRAME_BEGIN) {
    if (r->started || chunk > value ||
        (chunk < value && chunk != PLUGIN_FRAME_MAX_CHUNK))
      return fail(r, fds, num_fds, EPROTO);
    if (value > r->max_bytes)
      return fail(r, fds, num_fds, EMSGSIZE);
    r->started = true;
    r->total = value;
    if (value > 0) {
      r->data = malloc(value);
      if (r->data == NULL)
        return fail(r, fds, num_fds, ENOMEM);
    }
    if (num_fds > 0) {
      r->fds = malloc(num_fds * sizeof(int));
      if (r->fds == NULL)
        return fail(r, fds, num_fds, ENOMEM);
      memcpy(r->fds, fds, num_fds * sizeof(int));
      r->num_fds = num_fds;
    }
  } else if (kind == PLUGIN_FRAME_MORE) {
    /* Descriptors ride on the first datagram only; every later one is a
     * full chunk except the last. */
    size_t left = r->total - r->have;
    if (!r->started || num_fds > 0 || value != r->have || chunk == 0 ||
        chunk > left || (chunk < left && chunk != PLUGIN_FRAME_MAX_CHUNK))
      return fail(r, fds, num_fds, EPROTO);
  } else {
    return fail(r, fds, num_fds, EPROTO);
  }
  if (chunk > 0)
    memcpy(r->data + r->have, body, chunk);
  r->have += chunk;
  return r->have == r->total ? 1 : 0;
}

void plugin_reassembly_take(PluginReassembly* r, PluginMessage* out) {
  out->data = r->data;
  out->len = r->total;
  out->fds = r->fds;
  out->num_fds = r->num_fds;
  r->data = NULL;
  r->fds = NULL;
  r->num_fds = 0;
  plugin_reassembly_init(r, r->max_bytes);
}
