/* Internal to plugin/: how one postMessage message travels as IMC
 * datagrams (docs/plugin.md, "Message framing"). Pure: no I/O. */

#ifndef PLUGIN_COMMON_PLUGIN_FRAME_H_
#define PLUGIN_COMMON_PLUGIN_FRAME_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin/common/plugin_message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every datagram starts with two little-endian 32-bit words: a kind and a
 * value. */
#define PLUGIN_FRAME_HEADER_BYTES 8
#define PLUGIN_FRAME_BEGIN 0x4e474542u /* "BEGN": value = message bytes */
#define PLUGIN_FRAME_MORE 0x45524f4du  /* "MORE": value = offset */

/* Message bytes carried by one datagram at most. */
#define PLUGIN_FRAME_MAX_CHUNK (64u * 1024)
#define PLUGIN_FRAME_MAX_DATAGRAM \
  (PLUGIN_FRAME_HEADER_BYTES + PLUGIN_FRAME_MAX_CHUNK)

/* Writes the header of the datagram that carries message bytes from
 * `offset` on, of a message of `total` bytes, and returns how many bytes
 * it carries. */
size_t plugin_frame_header(uint8_t header[PLUGIN_FRAME_HEADER_BYTES],
                           size_t total,
                           size_t offset);

/* Putting a message back together. */
typedef struct PluginReassembly {
  size_t max_bytes;
  bool started;
  uint8_t* data;
  size_t total;
  size_t have;
  int* fds;
  size_t num_fds;
} PluginReassembly;

void plugin_reassembly_init(PluginReassembly* r, size_t max_bytes);

/* Frees what `r` holds and starts over. */
void plugin_reassembly_reset(PluginReassembly* r);

/* Feeds one datagram, its descriptors (owned by `r` from now on, whatever
 * happens) and imc_recvmsg's flags. Returns 1 when a message is complete
 * (plugin_reassembly_take), 0 when more datagrams are needed, -1 with
 * errno EPROTO (a framing error), EMSGSIZE (over max_bytes) or ENOMEM;
 * `r` is reset then. */
int plugin_reassembly_feed(PluginReassembly* r,
                           const uint8_t* datagram,
                           size_t len,
                           int* fds,
                           size_t num_fds,
                           int recv_flags);

/* Moves the complete message into *out and resets `r`. */
void plugin_reassembly_take(PluginReassembly* r, PluginMessage* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PLUGIN_COMMON_PLUGIN_FRAME_H_ */
